//! The text graph with Qwen2-style decoder layers (no q/k norms, biases on q, k and v) against
//! transformers' `Qwen2Model`: a tiny random model written by `make_qwen2_text_reference.py`,
//! whose last decoder layer's output must be matched within rel L2 1e-4 on every row.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use vjx_graphs::blocks::decoder::DecoderStyle;
use vjx_graphs::qwen3_vl::rope;
use vjx_graphs::qwen3_vl::text::{self, TextGraphOptions};
use vjx_graphs::qwen3_vl::TextConfig;
use vjx_graphs::{Precision, WeightSource};

const PARITY_BAR: f64 = 1e-4;
/// An id the tiny vocabulary never uses: no row is an image row.
const NO_IMAGE_TOKEN: i64 = -1;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2_text")
}

fn config() -> TextConfig {
    let path = fixture_dir().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn options() -> TextGraphOptions {
    TextGraphOptions {
        prefix: String::new(),
        embed_weight_name: "embed_tokens.weight".to_string(),
        num_deepstack: 0,
    }
}

fn prompts() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("input_ids.npy").is_file())
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "no prompts in {}",
        fixture_dir().display()
    );
    dirs
}

/// Runs the graph on a text-only prompt with plain 1-D positions; every row is read out.
fn last_layer_hidden(onnx: &Path, cfg: &TextConfig, input_ids: Vec<i64>) -> Vec<f32> {
    let (seq, hidden, head_dim) = (input_ids.len(), cfg.hidden_size, cfg.head_dim());
    let positions: Vec<i64> = (0..seq as i64).collect();
    let (cos, sin) = rope::mrope_cos_sin(cfg, &[positions.clone(), positions.clone(), positions]);
    let inputs = vec![
        i64_input(&[seq], input_ids.clone()),
        f32_input(&[0, hidden], vec![]),
        i64_input(&[seq], rope::image_row_index(&input_ids, NO_IMAGE_TOKEN)),
        f32_input(&[seq, head_dim], cos),
        f32_input(&[seq, head_dim], sin),
        f32_input(&[seq, seq], rope::causal_bias(seq)),
        i64_input(&[seq], (0..seq as i64).collect()),
    ];
    let outputs = run_graph(onnx, inputs);
    assert_eq!(outputs[0].shape(), &[seq, hidden]);
    outputs[0].iter().copied().collect()
}

#[test]
fn the_fixture_has_qkv_biases_and_no_qk_norms() {
    let weights = SafetensorsFile::open(&fixture_dir().join("model.safetensors"));
    for which in ["q", "k", "v"] {
        assert!(weights.contains(&format!("layers.0.self_attn.{which}_proj.bias")));
    }
    assert!(!weights.contains("layers.0.self_attn.o_proj.bias"));
    assert!(!weights.contains("layers.0.self_attn.q_norm.weight"));
    assert!(!weights.contains("layers.0.self_attn.k_norm.weight"));
}

#[test]
fn qwen2_style_stack_matches_transformers_qwen2_on_every_row() {
    let cfg = config();
    let weights = SafetensorsFile::open(&fixture_dir().join("model.safetensors"));
    let model = text::build_text_graph_styled(
        &cfg,
        &weights,
        &options(),
        Precision::F32,
        DecoderStyle::QWEN2,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let onnx = model
        .write_with(dir.path(), "text", &weights)
        .unwrap()
        .graph_file;
    for prompt in prompts() {
        let input_ids: Vec<i64> = npy_i64(&prompt.join("input_ids.npy"))
            .iter()
            .copied()
            .collect();
        let reference: Vec<f32> = npy_f32(&prompt.join("last_layer_hidden.npy"))
            .iter()
            .copied()
            .collect();
        let out = last_layer_hidden(&onnx, &cfg, input_ids);
        let err = rel_l2(&out, &reference);
        eprintln!("{}: last-layer hidden rel L2 {err:.3e}", prompt.display());
        assert!(err <= PARITY_BAR, "{}: rel L2 {err:.3e}", prompt.display());
    }
}

#[test]
fn the_qwen3_style_asks_for_the_q_norm_the_qwen2_fixture_lacks() {
    let cfg = config();
    let weights = SafetensorsFile::open(&fixture_dir().join("model.safetensors"));
    let err = text::build_text_graph(&cfg, &weights, &options())
        .err()
        .expect("a Qwen3-style build needs q_norm");
    assert!(err.to_string().contains("self_attn.q_norm.weight"), "{err}");
}
