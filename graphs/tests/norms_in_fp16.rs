//! The norm statistics stay finite and accurate when every layer runs in FP16 (what TensorRT's
//! FP16 mode may do to an FP32 graph), on hidden states with the outlier channels real Qwen
//! models carry. The textbook `mean(x²)` form, kept here as the hazard, overflows on them.

mod common;

use common::{f32_input, rel_l2, run_graph_as_written};
use std::path::{Path, PathBuf};
use vjx_graphs::builder::{DType, Dim, GraphBuilder, Value};
use vjx_graphs::half_everywhere::write_half_everywhere;
use vjx_graphs::nn;
use vjx_graphs::weights::MemoryWeights;
use vjx_graphs::WeightTensor;

const ROWS: usize = 4;
const DIM: usize = 64;
const EPS: f32 = 1e-6;

/// Hidden states with values of a few units, and on rows 0 and 2 the massive activations of
/// real Qwen models on two fixed channels (up to 2.5e4: its square is 6e8, FP16 tops at 65504).
fn hidden_with_outliers() -> Vec<f32> {
    let mut x: Vec<f32> = (0..ROWS * DIM)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 4.0)
        .collect();
    for row in [0, 2] {
        x[row * DIM + 5] = 1.5e4;
        x[row * DIM + 19] = -2.5e4;
    }
    x
}

fn norm_weight() -> MemoryWeights {
    let mut w = MemoryWeights::default();
    let gammas = (0..DIM).map(|i| gamma(i) as f32).collect();
    let betas = (0..DIM).map(|i| beta(i) as f32).collect();
    w.tensors
        .insert("norm.weight".into(), WeightTensor::new(vec![DIM], gammas));
    w.tensors
        .insert("norm.bias".into(), WeightTensor::new(vec![DIM], betas));
    w
}

fn gamma(i: usize) -> f64 {
    1.0 + (i % 7) as f64 * 0.05
}

fn beta(i: usize) -> f64 {
    (i % 5) as f64 * 0.1
}

/// Qwen's RMSNorm in f64.
fn rms_norm_reference(x: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(DIM) {
        let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / DIM as f64;
        let inv = 1.0 / (ms + EPS as f64).sqrt();
        out.extend(
            row.iter()
                .enumerate()
                .map(|(i, &v)| (v as f64 * inv * gamma(i)) as f32),
        );
    }
    out
}

/// `nn.LayerNorm` with affine parameters in f64.
fn layer_norm_reference(x: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(DIM) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / DIM as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / DIM as f64;
        let inv = 1.0 / (var + EPS as f64).sqrt();
        out.extend(
            row.iter()
                .enumerate()
                .map(|(i, &v)| ((v as f64 - mean) * inv * gamma(i) + beta(i)) as f32),
        );
    }
    out
}

/// Writes a one-norm graph and its FP16-everywhere twin; returns both paths.
fn write_norm_graph(
    dir: &Path,
    stem: &str,
    norm: impl FnOnce(&mut GraphBuilder, &Value) -> Value,
) -> (PathBuf, PathBuf) {
    let mut g = GraphBuilder::new(stem);
    let x = g.input("x", DType::F32, &[Dim::from(ROWS), Dim::from(DIM)]);
    let y = norm(&mut g, &x);
    g.output(&y, "y", DType::F32, &[Dim::from(ROWS), Dim::from(DIM)]);
    let fp32 = g
        .finish()
        .write_with(dir, stem, &norm_weight())
        .unwrap()
        .graph_file;
    let fp16 = dir.join(format!("{stem}_fp16.onnx"));
    write_half_everywhere(&fp32, &fp16).unwrap();
    (fp32, fp16)
}

fn run_norm(graph: &Path) -> Vec<f32> {
    let out = run_graph_as_written(graph, vec![f32_input(&[ROWS, DIM], hidden_with_outliers())]);
    out[0].iter().copied().collect()
}

/// The FP16 bar of the exports (docs/precision.md).
const FP16_BAR: f64 = 1e-2;

fn assert_matches_in_fp32_and_fp16_everywhere(fp32: &Path, fp16: &Path, want: &[f32]) {
    let err32 = rel_l2(&run_norm(fp32), want);
    assert!(err32 < 1e-6, "fp32 graph: rel L2 {err32:.2e}");
    let got16 = run_norm(fp16);
    assert!(
        got16.iter().all(|v| v.is_finite()),
        "fp16 everywhere: non-finite output"
    );
    let err16 = rel_l2(&got16, want);
    assert!(err16 < FP16_BAR, "fp16 everywhere: rel L2 {err16:.2e}");
}

#[test]
fn rms_norm_matches_f64_on_outliers_in_fp32_and_in_fp16_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (fp32, fp16) = write_norm_graph(dir.path(), "rms", |g, x| {
        nn::rms_norm(g, &norm_weight(), x, "norm.weight", DIM, EPS).unwrap()
    });
    assert_matches_in_fp32_and_fp16_everywhere(
        &fp32,
        &fp16,
        &rms_norm_reference(&hidden_with_outliers()),
    );
}

#[test]
fn layer_norm_matches_f64_on_outliers_in_fp32_and_in_fp16_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (fp32, fp16) = write_norm_graph(dir.path(), "ln", |g, x| {
        nn::layer_norm(g, &norm_weight(), x, Some("norm"), DIM, EPS).unwrap()
    });
    assert_matches_in_fp32_and_fp16_everywhere(
        &fp32,
        &fp16,
        &layer_norm_reference(&hidden_with_outliers()),
    );
}

#[test]
fn l2_norm_of_an_all_zero_slice_is_finite_and_tiny_not_nan() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = GraphBuilder::new("l2");
    let x = g.input("x", DType::F32, &[Dim::from(2usize), Dim::from(3usize)]);
    let y = nn::l2_norm(&mut g, &x, &[1], 1e-12);
    g.output(&y, "y", DType::F32, &[Dim::from(2usize), Dim::from(1usize)]);
    let graph = g.finish().write(dir.path(), "l2").unwrap().graph_file;
    let out = run_graph_as_written(
        &graph,
        vec![f32_input(&[2, 3], vec![0.0, 0.0, 0.0, 3.0e4, -4.0e4, 0.0])],
    );
    let norms: Vec<f32> = out[0].iter().copied().collect();
    assert!(
        norms[0].is_finite() && norms[0] < 1e-11,
        "all-zero slice: {}",
        norms[0]
    );
    assert_eq!(norms[1], 5.0e4);
}

/// The hazard the scaled statistics remove: `mean(x²)` written plainly is exact in FP32 but
/// overflows once TensorRT's FP16 mode picks FP16 for the square.
#[test]
fn textbook_rms_norm_overflows_in_fp16_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (fp32, fp16) = write_norm_graph(dir.path(), "textbook", |g, x| {
        let sq = g.mul(x, x);
        let mean = g.reduce("ReduceMean", &sq, &[-1]);
        let eps = g.scalar_f32(EPS);
        let var = g.add(&mean, &eps);
        let rms = g.sqrt(&var);
        let normed = g.div(x, &rms);
        let weight = nn::vector(g, &norm_weight(), "norm.weight", DIM).unwrap();
        g.mul(&normed, &weight)
    });
    let want = rms_norm_reference(&hidden_with_outliers());
    assert!(rel_l2(&run_norm(&fp32), &want) < 1e-6);
    let err16 = rel_l2(&run_norm(&fp16), &want);
    assert!(
        err16.is_nan() || err16 >= FP16_BAR,
        "the textbook form unexpectedly survived FP16: rel L2 {err16:.2e}"
    );
}
