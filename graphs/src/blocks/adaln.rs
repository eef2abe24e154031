//! Adaptive LayerNorm (adaLN) of the diffusion transformers: an affine-free LayerNorm whose
//! scale and shift come from the timestep embedding.

use crate::builder::{GraphBuilder, Value};
use crate::nn;

/// `norm(x) · (1 + scale) + shift`, with `norm` the LayerNorm without affine parameters and
/// `scale`, `shift` broadcast against `x`.
pub fn modulate(g: &mut GraphBuilder, x: &Value, eps: f32, scale: &Value, shift: &Value) -> Value {
    let normed = nn::standardize(g, x, eps);
    let one = g.scalar_f32(1.0);
    let gain = g.add(scale, &one);
    let scaled = g.mul(&normed, &gain);
    g.add(&scaled, shift)
}
