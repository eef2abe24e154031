//! Layers shared by the model modules, written as plain ONNX ops so that every graph runs on
//! tract as well as on ONNX Runtime. Linear weights are stored transposed (`[in, out]`) under
//! the checkpoint's own name.

use crate::builder::{Attr, GraphBuilder, Value};
use crate::weights::{WeightError, WeightSource};

/// `x @ W^T + b` for a PyTorch `nn.Linear` at `prefix` (`prefix.weight`, `prefix.bias`).
pub fn linear(
    g: &mut GraphBuilder,
    w: &dyn WeightSource,
    x: &Value,
    prefix: &str,
    in_features: usize,
    out_features: usize,
    bias: bool,
) -> Result<Value, WeightError> {
    let wname = format!("{prefix}.weight");
    let weight = if g.has_weight(&wname) {
        crate::builder::Value(wname)
    } else {
        let t = w.get_shaped(&wname, &[out_features, in_features])?.transposed_2d();
        g.weight(&wname, &t.shape, t.data)
    };
    let y = g.matmul(x, &weight);
    if !bias {
        return Ok(y);
    }
    let bname = format!("{prefix}.bias");
    let b = w.get_shaped(&bname, &[out_features])?;
    let b = g.weight(&bname, &b.shape, b.data);
    Ok(g.add(&y, &b))
}

/// A 1-D parameter (norm weight, bias) loaded with its shape checked.
pub fn vector(
    g: &mut GraphBuilder,
    w: &dyn WeightSource,
    name: &str,
    len: usize,
) -> Result<Value, WeightError> {
    let t = w.get_shaped(name, &[len])?;
    Ok(g.weight(name, &t.shape, t.data))
}

/// LayerNorm over the last axis; `affine` names the `prefix.weight`/`prefix.bias` pair.
pub fn layer_norm(
    g: &mut GraphBuilder,
    w: &dyn WeightSource,
    x: &Value,
    affine: Option<&str>,
    dim: usize,
    eps: f32,
) -> Result<Value, WeightError> {
    let (scale, bias) = match affine {
        Some(prefix) => (
            vector(g, w, &format!("{prefix}.weight"), dim)?,
            vector(g, w, &format!("{prefix}.bias"), dim)?,
        ),
        None => (
            g.const_f32("ln_ones", &[dim], vec![1.0; dim]),
            g.const_f32("ln_zeros", &[dim], vec![0.0; dim]),
        ),
    };
    Ok(g.op(
        "LayerNormalization",
        &[x, &scale, &bias],
        vec![("axis", Attr::Int(-1)), ("epsilon", Attr::Float(eps))],
    ))
}

/// Qwen's RMSNorm: `x * rsqrt(mean(x²) + eps) * weight`, over the last axis.
pub fn rms_norm(
    g: &mut GraphBuilder,
    w: &dyn WeightSource,
    x: &Value,
    weight_name: &str,
    dim: usize,
    eps: f32,
) -> Result<Value, WeightError> {
    let weight = vector(g, w, weight_name, dim)?;
    let sq = g.mul(x, x);
    let mean = g.reduce_mean_last(&sq);
    let e = g.scalar_f32(eps);
    let var = g.add(&mean, &e);
    let rms = g.sqrt(&var);
    let normed = g.div(x, &rms);
    Ok(g.mul(&normed, &weight))
}

pub fn silu(g: &mut GraphBuilder, x: &Value) -> Value {
    let s = g.sigmoid(x);
    g.mul(x, &s)
}

/// GELU with the exact erf form (`nn.GELU()`).
pub fn gelu_erf(g: &mut GraphBuilder, x: &Value) -> Value {
    let inv_sqrt2 = g.scalar_f32(std::f32::consts::FRAC_1_SQRT_2);
    let scaled = g.mul(x, &inv_sqrt2);
    let erf = g.op("Erf", &[&scaled], vec![]);
    let one = g.scalar_f32(1.0);
    let half = g.scalar_f32(0.5);
    let onep = g.add(&erf, &one);
    let hx = g.mul(x, &half);
    g.mul(&hx, &onep)
}

/// GELU with the tanh approximation (`gelu_pytorch_tanh`, `approximate="tanh"`).
pub fn gelu_tanh(g: &mut GraphBuilder, x: &Value) -> Value {
    let c = g.scalar_f32((2.0f32 / std::f32::consts::PI).sqrt());
    let k = g.scalar_f32(0.044715);
    let x2 = g.mul(x, x);
    let x3 = g.mul(&x2, x);
    let kx3 = g.mul(&x3, &k);
    let inner = g.add(x, &kx3);
    let arg = g.mul(&inner, &c);
    let t = g.tanh(&arg);
    let one = g.scalar_f32(1.0);
    let half = g.scalar_f32(0.5);
    let onep = g.add(&t, &one);
    let hx = g.mul(x, &half);
    g.mul(&hx, &onep)
}

/// `rotate_half(x) = cat(-x[..., d/2:], x[..., :d/2])` on the last axis of width `dim`.
pub fn rotate_half(g: &mut GraphBuilder, x: &Value, dim: usize) -> Value {
    let half = (dim / 2) as i64;
    let first = g.slice(x, -1, 0, half);
    let second = g.slice(x, -1, half, dim as i64);
    let neg = g.neg(&second);
    g.concat(&[&neg, &first], -1)
}

/// `x * cos + rotate_half(x) * sin`, with cos/sin broadcast against `x`.
pub fn apply_rotary(g: &mut GraphBuilder, x: &Value, cos: &Value, sin: &Value, dim: usize) -> Value {
    let rot = rotate_half(g, x, dim);
    let a = g.mul(x, cos);
    let b = g.mul(&rot, sin);
    g.add(&a, &b)
}

/// Scaled dot-product attention on `[heads, q_len, d]` × `[heads, k_len, d]`.
/// `bias`, when given, is added to the scores (e.g. a causal mask of 0 / -inf-like values).
pub fn attention(
    g: &mut GraphBuilder,
    q: &Value,
    k: &Value,
    v: &Value,
    head_dim: usize,
    bias: Option<&Value>,
) -> Value {
    let kt = g.transpose(k, &[0, 2, 1]);
    let scores = g.matmul(q, &kt);
    let scale = g.scalar_f32(1.0 / (head_dim as f32).sqrt());
    let mut scores = g.mul(&scores, &scale);
    if let Some(b) = bias {
        scores = g.add(&scores, b);
    }
    let probs = g.softmax(&scores, -1);
    g.matmul(&probs, v)
}

/// `[len, heads*d]` → `[heads, len, d]`.
pub fn split_heads(g: &mut GraphBuilder, x: &Value, heads: usize, head_dim: usize) -> Value {
    let r = g.reshape(x, &[-1, heads as i64, head_dim as i64]);
    g.transpose(&r, &[1, 0, 2])
}

/// `[heads, len, d]` → `[len, heads*d]`.
pub fn merge_heads(g: &mut GraphBuilder, x: &Value, heads: usize, head_dim: usize) -> Value {
    let t = g.transpose(x, &[1, 0, 2]);
    g.reshape(&t, &[-1, (heads * head_dim) as i64])
}
