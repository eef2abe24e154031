//! The Qwen3-VL text stack and its M-RoPE tables against upstream.
//!
//! Fixture parity: for every fixture observation, the host-side position ids equal upstream's
//! `position_ids` exactly, and the graph's readout at the `<|embodied_action|>` rows matches
//! upstream's `embodied_hidden` (the last decoder layer's output) within rel L2 1e-4, fed with
//! upstream's own `vision_embeds` and `deepstack_k`.
//!
//! Tiny-model checks: the graph's interface and properties that need no reference (readout
//! of a subset, causality, the image-row merge), on in-memory pseudo-random weights.

mod common;

use common::*;
use std::path::Path;
use vjx_graphs::qwen3_vl::rope;
use vjx_graphs::qwen3_vl::text::{self, TextGraphOptions};
use vjx_graphs::qwen3_vl::{Qwen3VlConfig, TextConfig};
use vjx_graphs::weights::MemoryWeights;
use vjx_graphs::{WeightSource, WeightTensor};

const LANGUAGE_MODEL: &str = "model.qwen.model.model.language_model.";
const TIED_LM_HEAD: &str = "model.qwen.model.lm_head.weight";
const PARITY_BAR: f64 = 1e-4;

/// Everything the text graph takes for one observation, in the graph's input order.
struct TextInputs {
    input_ids: Vec<i64>,
    image_embeds: Vec<f32>,
    deepstack: Vec<Vec<f32>>,
    image_row_index: Vec<i64>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    bias: Vec<f32>,
    readout_index: Vec<i64>,
}

impl TextInputs {
    fn new(
        cfg: &TextConfig,
        input_ids: Vec<i64>,
        positions: &[Vec<i64>; 3],
        image_token_id: i64,
        image_embeds: Vec<f32>,
        deepstack: Vec<Vec<f32>>,
        readout_index: Vec<i64>,
    ) -> Self {
        let (cos, sin) = rope::mrope_cos_sin(cfg, positions);
        TextInputs {
            image_row_index: rope::image_row_index(&input_ids, image_token_id),
            bias: rope::causal_bias(input_ids.len()),
            input_ids,
            image_embeds,
            deepstack,
            cos,
            sin,
            readout_index,
        }
    }

    /// Runs the graph at `onnx`; returns `readout_hidden` as a flat `[readout, hidden]`.
    fn run(&self, onnx: &Path, cfg: &TextConfig) -> Vec<f32> {
        self.run_with(run_graph, onnx, cfg)
    }

    fn run_with(&self, runner: Runner, onnx: &Path, cfg: &TextConfig) -> Vec<f32> {
        let (seq, hidden, head_dim) = (self.input_ids.len(), cfg.hidden_size, cfg.head_dim());
        let image_tokens = self.image_embeds.len() / hidden;
        let mut inputs = vec![
            i64_input(&[seq], self.input_ids.clone()),
            f32_input(&[image_tokens, hidden], self.image_embeds.clone()),
        ];
        for features in &self.deepstack {
            inputs.push(f32_input(&[image_tokens, hidden], features.clone()));
        }
        inputs.extend([
            i64_input(&[seq], self.image_row_index.clone()),
            f32_input(&[seq, head_dim], self.cos.clone()),
            f32_input(&[seq, head_dim], self.sin.clone()),
            f32_input(&[seq, seq], self.bias.clone()),
            i64_input(&[self.readout_index.len()], self.readout_index.clone()),
        ]);
        let outputs = runner(onnx, inputs);
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0].shape(), &[self.readout_index.len(), hidden]);
        outputs[0].iter().copied().collect()
    }
}

fn write_graph(
    model: vjx_graphs::Model,
    weights: &dyn vjx_graphs::WeightSource,
    dir: &Path,
) -> std::path::PathBuf {
    model.write_with(dir, "text", weights).unwrap().graph_file
}

// ---------------------------------------------------------------------------------------------
// Fixture parity
// ---------------------------------------------------------------------------------------------

fn backbone_config(case: &Path) -> Qwen3VlConfig {
    let path = case.join("backbone/config.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Qwen3VlConfig::from_json_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn policy_config(case: &Path) -> serde_json::Value {
    let path = case.join("checkpoint/config.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn image_grids(obs: &Path) -> Vec<[usize; 3]> {
    let grid = npy_i64(&obs.join("expected/image_grid_thw.npy"));
    assert_eq!(grid.ndim(), 2, "image_grid_thw is [n_img, 3]");
    grid.outer_iter()
        .map(|row| [row[0] as usize, row[1] as usize, row[2] as usize])
        .collect()
}

fn flat_i64(obs: &Path, name: &str) -> Vec<i64> {
    npy_i64(&obs.join("expected").join(name))
        .iter()
        .copied()
        .collect()
}

fn flat_f32(obs: &Path, name: &str) -> Vec<f32> {
    npy_f32(&obs.join("expected").join(name))
        .iter()
        .copied()
        .collect()
}

/// The rows upstream reads: the occurrences of `<|embodied_action|>`. VLA-JEPA adds that token
/// to the tokenizer last (after the `<|action_k|>` tokens), so it has the largest id of any
/// prompt token; the checks below confirm the choice by its count.
fn embodied_rows(input_ids: &[i64], expected_rows: usize) -> Vec<i64> {
    let embodied_id = *input_ids.iter().max().unwrap();
    let rows: Vec<i64> = (0..input_ids.len() as i64)
        .filter(|&i| input_ids[i as usize] == embodied_id)
        .collect();
    assert_eq!(
        rows.len(),
        expected_rows,
        "the largest id ({embodied_id}) should be <|embodied_action|>, once per embodied row"
    );
    rows
}

#[test]
fn position_ids_equal_upstream_get_rope_index_on_every_fixture() {
    for case in fixture_cases() {
        let cfg = backbone_config(&case);
        for obs in observations(&case) {
            let input_ids = flat_i64(&obs, "input_ids.npy");
            let expected = npy_i64(&obs.join("expected/position_ids.npy"));
            assert_eq!(expected.shape(), &[3, input_ids.len()], "{}", obs.display());
            let rows = rope::mrope_position_ids(
                &input_ids,
                &image_grids(&obs),
                cfg.image_token_id,
                cfg.vision_config.spatial_merge_size,
            );
            for (axis, row) in rows.iter().enumerate() {
                let want: Vec<i64> = expected
                    .index_axis(ndarray::Axis(0), axis)
                    .iter()
                    .copied()
                    .collect();
                assert_eq!(row, &want, "{} position row {axis}", obs.display());
            }
        }
    }
}

/// Builds the text graph of `case` from its checkpoint into `dir`.
fn write_case_text_graph(case: &Path, dir: &Path) -> std::path::PathBuf {
    let cfg = backbone_config(case);
    let weights = SafetensorsFile::open(&case.join("checkpoint/model.safetensors"));
    let embed_weight_name = weights
        .first_present(&[
            &format!("{LANGUAGE_MODEL}embed_tokens.weight"),
            TIED_LM_HEAD,
        ])
        .unwrap()
        .to_string();
    let opts = TextGraphOptions {
        prefix: LANGUAGE_MODEL.to_string(),
        embed_weight_name,
        num_deepstack: cfg.vision_config.deepstack_visual_indexes.len(),
    };
    write_graph(
        text::build_text_graph(&cfg.text_config, &weights, &opts).unwrap(),
        &weights,
        dir,
    )
}

/// Runs the text graph `onnx` on every observation of `case`, fed with upstream's own vision
/// outputs; returns each observation's `embodied_hidden` relative L2 error against upstream.
fn readout_errors(case: &Path, onnx: &Path, runner: Runner) -> Vec<(std::path::PathBuf, f64)> {
    let cfg = backbone_config(case);
    let text_cfg = &cfg.text_config;
    let embodied_per_prompt = policy_config(case)["num_embodied_action_tokens_per_instruction"]
        .as_u64()
        .expect("num_embodied_action_tokens_per_instruction in checkpoint/config.json")
        as usize;
    let num_deepstack = cfg.vision_config.deepstack_visual_indexes.len();
    let mut errors = Vec::new();
    for obs in observations(case) {
        let input_ids = flat_i64(&obs, "input_ids.npy");
        let reference = npy_f32(&obs.join("expected/embodied_hidden.npy"));
        assert_eq!(
            reference.shape(),
            &[embodied_per_prompt, text_cfg.hidden_size]
        );
        let readout_index = embodied_rows(&input_ids, embodied_per_prompt);
        let positions = rope::mrope_position_ids(
            &input_ids,
            &image_grids(&obs),
            cfg.image_token_id,
            cfg.vision_config.spatial_merge_size,
        );
        let deepstack = (0..num_deepstack)
            .map(|k| flat_f32(&obs, &format!("deepstack_{k}.npy")))
            .collect();
        let inputs = TextInputs::new(
            text_cfg,
            input_ids,
            &positions,
            cfg.image_token_id,
            flat_f32(&obs, "vision_embeds.npy"),
            deepstack,
            readout_index,
        );
        let out = inputs.run_with(runner, onnx, text_cfg);
        let reference: Vec<f32> = reference.iter().copied().collect();
        let err = rel_l2(&out, &reference);
        eprintln!("{}: embodied_hidden rel L2 {err:.3e}", obs.display());
        errors.push((obs, err));
    }
    errors
}

#[test]
fn readout_matches_upstream_embodied_hidden_on_every_fixture() {
    for case in fixture_cases() {
        let dir = tempfile::tempdir().unwrap();
        let onnx = write_case_text_graph(&case, dir.path());
        for (obs, err) in readout_errors(&case, &onnx, run_graph) {
            assert!(err <= PARITY_BAR, "{}: rel L2 {err:.3e}", obs.display());
        }
    }
}

#[test]
fn readout_with_every_layer_in_fp16_stays_within_bar_on_massive_activations() {
    let case = fixtures_root().join("outliers");
    let dir = tempfile::tempdir().unwrap();
    let onnx = write_case_text_graph(&case, dir.path());
    let half = dir.path().join("text_fp16_everywhere.onnx");
    vjx_graphs::half_everywhere::write_half_everywhere(&onnx, &half).unwrap();
    for (obs, err) in readout_errors(&case, &half, run_graph_as_written) {
        assert!(
            err <= FP16_EVERYWHERE_BAR,
            "{}: rel L2 {err:.3e} in fp16 everywhere",
            obs.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tiny in-memory model
// ---------------------------------------------------------------------------------------------

const TINY_IMAGE_TOKEN: i64 = 40;
const TINY_PREFIX: &str = "lm.";
const TINY_EMBED: &str = "head.weight";
const TINY_DEEPSTACK: usize = 2;

fn tiny_config() -> TextConfig {
    serde_json::from_str(
        r#"{"hidden_size": 16, "num_hidden_layers": 3, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 8, "intermediate_size": 24,
            "vocab_size": 50, "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_theta": 10000.0, "mrope_section": [2, 1, 1],
                                "rope_type": "default"}}"#,
    )
    .unwrap()
}

/// Deterministic values in [-scale, scale) (xorshift), so the tests need no RNG crate.
struct Noise(u64);

impl Noise {
    fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }
}

/// Weights for every tensor the text graph reads, with the embedding under the tied LM head
/// name only (as VLA-JEPA checkpoints store it).
fn tiny_weights(cfg: &TextConfig) -> MemoryWeights {
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let (h, d, i) = (cfg.hidden_size, cfg.head_dim(), cfg.intermediate_size);
    let (q, kv) = (cfg.num_attention_heads * d, cfg.num_key_value_heads * d);
    let mut w = MemoryWeights::default();
    let mut put = |name: String, shape: Vec<usize>, scale: f32, offset: f32| {
        let n = shape.iter().product();
        let data = noise
            .values(n, scale)
            .into_iter()
            .map(|v| v + offset)
            .collect();
        w.tensors.insert(name, WeightTensor::new(shape, data));
    };
    put(TINY_EMBED.into(), vec![cfg.vocab_size, h], 1.0, 0.0);
    for l in 0..cfg.num_hidden_layers {
        let p = format!("{TINY_PREFIX}layers.{l}.");
        put(format!("{p}input_layernorm.weight"), vec![h], 0.2, 1.0);
        put(
            format!("{p}post_attention_layernorm.weight"),
            vec![h],
            0.2,
            1.0,
        );
        put(format!("{p}self_attn.q_norm.weight"), vec![d], 0.2, 1.0);
        put(format!("{p}self_attn.k_norm.weight"), vec![d], 0.2, 1.0);
        put(format!("{p}self_attn.q_proj.weight"), vec![q, h], 0.4, 0.0);
        put(format!("{p}self_attn.k_proj.weight"), vec![kv, h], 0.4, 0.0);
        put(format!("{p}self_attn.v_proj.weight"), vec![kv, h], 0.4, 0.0);
        put(format!("{p}self_attn.o_proj.weight"), vec![h, q], 0.4, 0.0);
        put(format!("{p}mlp.gate_proj.weight"), vec![i, h], 0.4, 0.0);
        put(format!("{p}mlp.up_proj.weight"), vec![i, h], 0.4, 0.0);
        put(format!("{p}mlp.down_proj.weight"), vec![h, i], 0.4, 0.0);
    }
    w
}

struct TinyModel {
    cfg: TextConfig,
    _dir: tempfile::TempDir,
    onnx: std::path::PathBuf,
}

impl TinyModel {
    fn build() -> Self {
        let cfg = tiny_config();
        let opts = TextGraphOptions {
            prefix: TINY_PREFIX.to_string(),
            embed_weight_name: TINY_EMBED.to_string(),
            num_deepstack: TINY_DEEPSTACK,
        };
        let weights = tiny_weights(&cfg);
        let model = text::build_text_graph(&cfg, &weights, &opts).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let onnx = write_graph(model, &weights, dir.path());
        TinyModel {
            cfg,
            _dir: dir,
            onnx,
        }
    }

    /// `input_ids` with one 4×4-patch image (4 merged tokens) in it; image features are noise
    /// drawn from `seed`.
    fn inputs(&self, input_ids: Vec<i64>, seed: u64, readout_index: Vec<i64>) -> TextInputs {
        let grids: Vec<[usize; 3]> = if input_ids.contains(&TINY_IMAGE_TOKEN) {
            vec![[1, 4, 4]]
        } else {
            vec![]
        };
        let positions = rope::mrope_position_ids(&input_ids, &grids, TINY_IMAGE_TOKEN, 2);
        let image_tokens = input_ids.iter().filter(|&&t| t == TINY_IMAGE_TOKEN).count();
        let mut noise = Noise(seed);
        let n = image_tokens * self.cfg.hidden_size;
        TextInputs::new(
            &self.cfg,
            input_ids,
            &positions,
            TINY_IMAGE_TOKEN,
            noise.values(n, 1.0),
            (0..TINY_DEEPSTACK).map(|_| noise.values(n, 1.0)).collect(),
            readout_index,
        )
    }
}

const IMG: i64 = TINY_IMAGE_TOKEN;
const TINY_PROMPT: [i64; 10] = [1, 2, 3, IMG, IMG, IMG, IMG, 4, 5, 6];

#[test]
fn graph_declares_inputs_in_the_documented_order() {
    let cfg = tiny_config();
    let opts = TextGraphOptions {
        prefix: TINY_PREFIX.to_string(),
        embed_weight_name: TINY_EMBED.to_string(),
        num_deepstack: TINY_DEEPSTACK,
    };
    let model = text::build_text_graph(&cfg, &tiny_weights(&cfg), &opts).unwrap();
    let names: Vec<&str> = model.inputs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            text::INPUT_IDS,
            text::IMAGE_EMBEDS,
            "deepstack_0",
            "deepstack_1",
            text::IMAGE_ROW_INDEX,
            text::ROPE_COS,
            text::ROPE_SIN,
            text::ATTENTION_BIAS,
            text::READOUT_INDEX,
        ]
    );
    let outputs: Vec<&str> = model.outputs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(outputs, [text::READOUT_HIDDEN]);
}

#[test]
fn a_missing_weight_is_named_in_the_error() {
    let cfg = tiny_config();
    let mut weights = tiny_weights(&cfg);
    weights
        .tensors
        .remove("lm.layers.1.self_attn.k_norm.weight");
    let opts = TextGraphOptions {
        prefix: TINY_PREFIX.to_string(),
        embed_weight_name: TINY_EMBED.to_string(),
        num_deepstack: TINY_DEEPSTACK,
    };
    let err = text::build_text_graph(&cfg, &weights, &opts).err().unwrap();
    assert!(
        err.to_string()
            .contains("lm.layers.1.self_attn.k_norm.weight"),
        "{err}"
    );
}

#[test]
fn readout_returns_one_hidden_row_per_requested_row() {
    let tiny = TinyModel::build();
    let out = tiny
        .inputs(TINY_PROMPT.to_vec(), 7, vec![8, 9])
        .run(&tiny.onnx, &tiny.cfg);
    assert_eq!(out.len(), 2 * tiny.cfg.hidden_size);
    assert!(out.iter().all(|v| v.is_finite()));
}

#[test]
fn reading_some_rows_equals_those_rows_of_reading_all() {
    let tiny = TinyModel::build();
    let h = tiny.cfg.hidden_size;
    let all = tiny
        .inputs(TINY_PROMPT.to_vec(), 7, (0..10).collect())
        .run(&tiny.onnx, &tiny.cfg);
    let some = tiny
        .inputs(TINY_PROMPT.to_vec(), 7, vec![9, 2, 5])
        .run(&tiny.onnx, &tiny.cfg);
    for (k, row) in [9usize, 2, 5].into_iter().enumerate() {
        let err = rel_l2(&some[k * h..(k + 1) * h], &all[row * h..(row + 1) * h]);
        assert!(err < 1e-6, "row {row}: rel L2 {err:.3e}");
    }
}

#[test]
fn later_tokens_do_not_change_earlier_rows() {
    let tiny = TinyModel::build();
    let mut changed = TINY_PROMPT.to_vec();
    changed[9] = 33;
    let a = tiny
        .inputs(TINY_PROMPT.to_vec(), 7, vec![8])
        .run(&tiny.onnx, &tiny.cfg);
    let b = tiny.inputs(changed, 7, vec![8]).run(&tiny.onnx, &tiny.cfg);
    assert_eq!(a, b);
}

#[test]
fn image_rows_are_driven_by_image_features_not_by_their_placeholder_embedding() {
    let tiny = TinyModel::build();
    let base = tiny
        .inputs(TINY_PROMPT.to_vec(), 7, vec![9])
        .run(&tiny.onnx, &tiny.cfg);

    // The placeholder's own embedding row is never read: replace it and nothing changes.
    let mut zeroed = tiny_weights(&tiny.cfg);
    let table = zeroed.tensors.get_mut(TINY_EMBED).unwrap();
    let h = tiny.cfg.hidden_size;
    table.data[IMG as usize * h..(IMG as usize + 1) * h].fill(123.0);
    let opts = TextGraphOptions {
        prefix: TINY_PREFIX.to_string(),
        embed_weight_name: TINY_EMBED.to_string(),
        num_deepstack: TINY_DEEPSTACK,
    };
    let dir = tempfile::tempdir().unwrap();
    let onnx = write_graph(
        text::build_text_graph(&tiny.cfg, &zeroed, &opts).unwrap(),
        &zeroed,
        dir.path(),
    );
    let same = tiny
        .inputs(TINY_PROMPT.to_vec(), 7, vec![9])
        .run(&onnx, &tiny.cfg);
    assert_eq!(base, same);

    // Other image features (and DeepStack features) do change the text rows after them.
    let other = tiny
        .inputs(TINY_PROMPT.to_vec(), 8, vec![9])
        .run(&tiny.onnx, &tiny.cfg);
    assert!(rel_l2(&other, &base) > 1e-3);
}

#[test]
fn a_text_only_prompt_runs_with_zero_image_tokens() {
    let tiny = TinyModel::build();
    let out = tiny
        .inputs(vec![1, 2, 3, 4], 7, vec![3])
        .run(&tiny.onnx, &tiny.cfg);
    assert_eq!(out.len(), tiny.cfg.hidden_size);
    assert!(out.iter().all(|v| v.is_finite()));
}
