//! Layers shared by the model modules, written as plain ONNX ops so that every graph runs on
//! tract as well as on ONNX Runtime. Linear weights are stored transposed (`[in, out]`) under
//! the checkpoint's own name.

use crate::builder::{Attr, DType, Encoding, GraphBuilder, Layout, Precision, Value};
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
    let y = project(
        g,
        w,
        x,
        &format!("{prefix}.weight"),
        &[out_features, in_features],
    )?;
    if !bias {
        return Ok(y);
    }
    let b = vector(g, w, &format!("{prefix}.bias"), out_features)?;
    Ok(g.add(&y, &b))
}

/// `x @ W^T` for a checkpoint weight of shape `[out, ...]` flattened to `[out, in]` (a Linear,
/// or a convolution whose kernel covers its whole input patch), at the builder's precision.
pub fn project(
    g: &mut GraphBuilder,
    w: &dyn WeightSource,
    x: &Value,
    weight_name: &str,
    source_shape: &[usize],
) -> Result<Value, WeightError> {
    match g.precision() {
        Precision::F32 => {
            let weight = g.checkpoint_weight(
                w,
                weight_name,
                source_shape,
                Layout::Transposed,
                Encoding::F32,
            )?;
            Ok(g.matmul(x, &weight))
        }
        Precision::F16 => {
            let weight = g.checkpoint_weight(
                w,
                weight_name,
                source_shape,
                Layout::Transposed,
                Encoding::F16,
            )?;
            let xh = g.cast(x, DType::F16);
            let y = g.matmul(&xh, &weight);
            Ok(g.cast(&y, DType::F32))
        }
        Precision::Int8 => {
            let scale_name = int8_scale_name(weight_name);
            let encoding = Encoding::Int8 {
                scale_name: scale_name.clone(),
                axis: 1,
            };
            let weight =
                g.checkpoint_weight(w, weight_name, source_shape, Layout::Transposed, encoding)?;
            Ok(int8_matmul(g, x, &weight, &scale_name))
        }
    }
}

/// `x @ weight` for an int8 `weight` (`[in, out]`) with one scale per output column in the
/// initializer `scale_name`: the pattern ONNX Runtime fuses into DynamicQuantizeMatMul (u8 × s8
/// GEMM).
fn int8_matmul(g: &mut GraphBuilder, x: &Value, weight: &Value, scale_name: &str) -> Value {
    let quantized = g.op_multi("DynamicQuantizeLinear", &[x], 3, vec![]);
    let (xq, x_scale, x_zero) = (&quantized[0], &quantized[1], &quantized[2]);
    let acc = g.op("MatMulInteger", &[xq, weight, x_zero], vec![]);
    let acc = g.cast(&acc, DType::F32);
    let scale = g.mul(x_scale, &Value(scale_name.to_string()));
    g.mul(&acc, &scale)
}

/// The initializer holding the per-channel scales of an int8 checkpoint tensor.
fn int8_scale_name(weight_name: &str) -> String {
    format!("{weight_name}.int8_scale")
}

/// Rows `indices` of the checkpoint table `name` (`[rows, cols]`) as f32, the table stored at
/// the builder's precision (int8 with one scale per row).
pub fn gather_rows(
    g: &mut GraphBuilder,
    w: &dyn WeightSource,
    name: &str,
    shape: [usize; 2],
    indices: &Value,
) -> Result<Value, WeightError> {
    match g.precision() {
        Precision::F32 => {
            let table = g.checkpoint_weight(w, name, &shape, Layout::AsIs, Encoding::F32)?;
            Ok(g.gather(&table, indices, 0))
        }
        Precision::F16 => {
            let table = g.checkpoint_weight(w, name, &shape, Layout::AsIs, Encoding::F16)?;
            let rows = g.gather(&table, indices, 0);
            Ok(g.cast(&rows, DType::F32))
        }
        Precision::Int8 => {
            let scale_name = int8_scale_name(name);
            let encoding = Encoding::Int8 {
                scale_name: scale_name.clone(),
                axis: 0,
            };
            let table = g.checkpoint_weight(w, name, &shape, Layout::AsIs, encoding)?;
            let rows = g.gather(&table, indices, 0);
            let rows = g.cast(&rows, DType::F32);
            let scales = g.gather(&Value(scale_name), indices, 0);
            let scales = g.unsqueeze(&scales, &[-1]);
            Ok(g.mul(&rows, &scales))
        }
    }
}

/// `x @ table^T` for the checkpoint table `name` (`[rows, cols]`, e.g. a tied LM head over
/// the token embedding), stored as [`gather_rows`] stores it so that both share one copy.
pub fn tied_projection(
    g: &mut GraphBuilder,
    w: &dyn WeightSource,
    name: &str,
    shape: [usize; 2],
    x: &Value,
) -> Result<Value, WeightError> {
    let trans_b = || vec![("transB", Attr::Int(1))];
    match g.precision() {
        Precision::F32 => {
            let table = g.checkpoint_weight(w, name, &shape, Layout::AsIs, Encoding::F32)?;
            Ok(g.op("Gemm", &[x, &table], trans_b()))
        }
        Precision::F16 => {
            let table = g.checkpoint_weight(w, name, &shape, Layout::AsIs, Encoding::F16)?;
            let xh = g.cast(x, DType::F16);
            let y = g.op("Gemm", &[&xh, &table], trans_b());
            Ok(g.cast(&y, DType::F32))
        }
        Precision::Int8 => {
            let scale_name = int8_scale_name(name);
            let encoding = Encoding::Int8 {
                scale_name: scale_name.clone(),
                axis: 0,
            };
            let table = g.checkpoint_weight(w, name, &shape, Layout::AsIs, encoding)?;
            let columns = g.transpose(&table, &[1, 0]);
            Ok(int8_matmul(g, x, &columns, &scale_name))
        }
    }
}

/// A 1-D parameter (norm weight, bias) loaded with its shape checked; always f32.
pub fn vector(
    g: &mut GraphBuilder,
    w: &dyn WeightSource,
    name: &str,
    len: usize,
) -> Result<Value, WeightError> {
    g.checkpoint_weight(w, name, &[len], Layout::AsIs, Encoding::F32)
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
    let normed = standardize(g, x, eps);
    let Some(prefix) = affine else {
        return Ok(normed);
    };
    let scale = vector(g, w, &format!("{prefix}.weight"), dim)?;
    let bias = vector(g, w, &format!("{prefix}.bias"), dim)?;
    let scaled = g.mul(&normed, &scale);
    Ok(g.add(&scaled, &bias))
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
    let rms = root_mean_square(g, x, &[-1], eps);
    let normed = g.div(x, &rms);
    Ok(g.mul(&normed, &weight))
}

// The norm statistics below never square `x` itself. Each one first divides by the peak
// `k = max(|x|)` over the reduced axes, so that every square and every sum of squares stays
// within [0, n], then multiplies `k` back in after the root. The results equal the textbook
// forms, but they stay finite when a provider runs them in FP16 (TensorRT may pick FP16 for
// any layer of an FP32 graph): Qwen's hidden states carry outlier channels of 1e3..1e4, whose
// squares are far beyond FP16's 65504. `docs/precision.md` has the measured effect.

/// `(x / k, k)` with `k = max(max(|x|) over axes, floor)`, kept for broadcasting.
fn scale_by_peak(g: &mut GraphBuilder, x: &Value, axes: &[i64], floor: f32) -> (Value, Value) {
    let magnitude = g.abs(x);
    let peak = g.reduce("ReduceMax", &magnitude, axes);
    let floor = g.scalar_f32(floor);
    let k = g.max(&peak, &floor);
    (g.div(x, &k), k)
}

/// `(sqrt(eps) / k)²`: `eps` on the scale of `x / k` (at most 1, as `k >= sqrt(eps)`).
fn scaled_eps(g: &mut GraphBuilder, k: &Value, eps: f32) -> Value {
    let root_eps = g.scalar_f32(eps.sqrt());
    let t = g.div(&root_eps, k);
    g.mul(&t, &t)
}

/// `sqrt(mean(x²) + eps)` over `axes`, kept.
pub fn root_mean_square(g: &mut GraphBuilder, x: &Value, axes: &[i64], eps: f32) -> Value {
    let (y, k) = scale_by_peak(g, x, axes, eps.sqrt());
    let sq = g.mul(&y, &y);
    let mean_sq = g.reduce("ReduceMean", &sq, axes);
    let eps = scaled_eps(g, &k, eps);
    let var = g.add(&mean_sq, &eps);
    let root = g.sqrt(&var);
    g.mul(&root, &k)
}

/// `sqrt(sum(x²))` over `axes`, kept; `floor` bounds the peak from below so that an all-zero
/// slice gives 0 rather than 0/0.
pub fn l2_norm(g: &mut GraphBuilder, x: &Value, axes: &[i64], floor: f32) -> Value {
    let (y, k) = scale_by_peak(g, x, axes, floor);
    let sq = g.mul(&y, &y);
    let sum_sq = g.reduce("ReduceSum", &sq, axes);
    let root = g.sqrt(&sum_sq);
    g.mul(&root, &k)
}

/// LayerNorm over the last axis without affine parameters: `(x - mean) / sqrt(var + eps)`,
/// written as `x / σ - mean(x/k) / s` with `σ = k·s`, so that neither `x - mean` nor `σ` can
/// exceed about twice the peak of `x`.
pub fn standardize(g: &mut GraphBuilder, x: &Value, eps: f32) -> Value {
    let (y, k) = scale_by_peak(g, x, &[-1], eps.sqrt());
    let mean = g.reduce("ReduceMean", &y, &[-1]);
    let centered = g.sub(&y, &mean);
    let sq = g.mul(&centered, &centered);
    let var = g.reduce("ReduceMean", &sq, &[-1]);
    let eps = scaled_eps(g, &k, eps);
    let var = g.add(&var, &eps);
    let s = g.sqrt(&var);
    let sigma = g.mul(&s, &k);
    let scaled = g.div(x, &sigma);
    let shift = g.div(&mean, &s);
    g.sub(&scaled, &shift)
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
