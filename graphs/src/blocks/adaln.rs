//! Adaptive LayerNorm (adaLN) of the diffusion transformers: an affine-free LayerNorm whose
//! scale and shift come from the timestep embedding.

use super::Prefixed;
use crate::builder::{GraphBuilder, Value};
use crate::nn;
use crate::weights::WeightError;

/// `norm(x) · (1 + scale) + shift`, with `norm` the LayerNorm without affine parameters and
/// `scale`, `shift` broadcast against `x`.
pub fn modulate(g: &mut GraphBuilder, x: &Value, eps: f32, scale: &Value, shift: &Value) -> Value {
    let normed = nn::standardize(g, x, eps);
    let one = g.scalar_f32(1.0);
    let gain = g.add(scale, &one);
    let scaled = g.mul(&normed, &gain);
    g.add(&scaled, shift)
}

/// The `count` equal chunks of `local(silu_c)` (a Linear `dim → count · dim`), in the order
/// upstream's `.chunk(count, dim=-1)` returns them.
pub fn modulation_chunks(
    g: &mut GraphBuilder,
    at: &Prefixed,
    silu_c: &Value,
    local: &str,
    dim: usize,
    count: usize,
) -> Result<Vec<Value>, WeightError> {
    let all = at.linear(g, silu_c, local, dim, count * dim)?;
    Ok((0..count as i64)
        .map(|i| g.slice(&all, -1, i * dim as i64, (i + 1) * dim as i64))
        .collect())
}
