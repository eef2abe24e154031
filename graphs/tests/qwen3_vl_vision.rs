//! The Qwen3-VL vision tower graph: its host-side tables, its shapes on tiny random weights,
//! its weight errors, and parity with upstream on every golden fixture.

mod common;

use common::{
    f32_input, i64_input, npy_f32, npy_i64, rel_l2, run_graph, run_graph_as_written, Input, Runner,
    SafetensorsFile, FP16_EVERYWHERE_BAR,
};
use std::path::{Path, PathBuf};
use vjx_graphs::half_everywhere::write_half_everywhere;
use vjx_graphs::qwen3_vl::vision::{
    build_vision_graph, deepstack_output_name, IMAGE_EMBEDS, PIXEL_VALUES, POS_EMBED_INDEX,
    POS_EMBED_WEIGHT, ROPE_COS, ROPE_SIN,
};
use vjx_graphs::qwen3_vl::vision_inputs::{vision_inputs, VisionInputs};
use vjx_graphs::qwen3_vl::{Qwen3VlConfig, VisionConfig};
use vjx_graphs::weights::MemoryWeights;
use vjx_graphs::{WeightError, WeightTensor};

const VISUAL_PREFIX: &str = "model.qwen.model.model.visual.";
const PARITY_BAR: f64 = 1e-4;

/// Qwen3-VL-2B's vision numbers that the tables depend on (48×48 position grid, head 64).
fn qwen3_vl_2b_vision() -> VisionConfig {
    serde_json::from_value(serde_json::json!({
        "depth": 24, "hidden_size": 1024, "num_heads": 16, "intermediate_size": 4096,
        "out_hidden_size": 2048, "num_position_embeddings": 2304,
        "deepstack_visual_indexes": [5, 11, 17]
    }))
    .unwrap()
}

/// Small enough to build from random weights in milliseconds: 4×4 position grid, head 8.
fn tiny_vision() -> VisionConfig {
    serde_json::from_value(serde_json::json!({
        "depth": 3, "hidden_size": 16, "num_heads": 2, "intermediate_size": 32,
        "out_hidden_size": 12, "patch_size": 2, "num_position_embeddings": 16,
        "deepstack_visual_indexes": [0, 2]
    }))
    .unwrap()
}

/// Every tensor the tower reads, filled with a fixed pseudo-random pattern.
fn tiny_weights(cfg: &VisionConfig) -> MemoryWeights {
    let (h, i, o) = (cfg.hidden_size, cfg.intermediate_size, cfg.out_hidden_size);
    let block = h * cfg.spatial_merge_size * cfg.spatial_merge_size;
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        (
            "patch_embed.proj.weight".into(),
            vec![
                h,
                cfg.in_channels,
                cfg.temporal_patch_size,
                cfg.patch_size,
                cfg.patch_size,
            ],
        ),
        ("patch_embed.proj.bias".into(), vec![h]),
        (
            "pos_embed.weight".into(),
            vec![cfg.num_position_embeddings, h],
        ),
    ];
    for l in 0..cfg.depth {
        for (name, shape) in [
            ("norm1.weight", vec![h]),
            ("norm1.bias", vec![h]),
            ("norm2.weight", vec![h]),
            ("norm2.bias", vec![h]),
            ("attn.qkv.weight", vec![3 * h, h]),
            ("attn.qkv.bias", vec![3 * h]),
            ("attn.proj.weight", vec![h, h]),
            ("attn.proj.bias", vec![h]),
            ("mlp.linear_fc1.weight", vec![i, h]),
            ("mlp.linear_fc1.bias", vec![i]),
            ("mlp.linear_fc2.weight", vec![h, i]),
            ("mlp.linear_fc2.bias", vec![h]),
        ] {
            shapes.push((format!("blocks.{l}.{name}"), shape));
        }
    }
    let merger = |at: String, norm: usize| {
        vec![
            (format!("{at}.norm.weight"), vec![norm]),
            (format!("{at}.norm.bias"), vec![norm]),
            (format!("{at}.linear_fc1.weight"), vec![block, block]),
            (format!("{at}.linear_fc1.bias"), vec![block]),
            (format!("{at}.linear_fc2.weight"), vec![o, block]),
            (format!("{at}.linear_fc2.bias"), vec![o]),
        ]
    };
    shapes.extend(merger("merger".into(), h));
    for k in 0..cfg.deepstack_visual_indexes.len() {
        shapes.extend(merger(format!("deepstack_merger_list.{k}"), block));
    }

    let mut weights = MemoryWeights::default();
    let mut seed = 1u32;
    for (name, shape) in shapes {
        let data = (0..shape.iter().product::<usize>())
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        weights.tensors.insert(
            format!("{VISUAL_PREFIX}{name}"),
            WeightTensor::new(shape, data),
        );
    }
    weights
}

/// Runs a built graph on one image's rows; returns `[image_embeds, deepstack_0, …]`.
fn run_vision(
    onnx: &Path,
    cfg: &VisionConfig,
    pixels: Vec<f32>,
    tables: VisionInputs,
) -> Vec<ndarray::ArrayD<f32>> {
    run_vision_with(run_graph, onnx, cfg, pixels, tables)
}

fn run_vision_with(
    runner: Runner,
    onnx: &Path,
    cfg: &VisionConfig,
    pixels: Vec<f32>,
    tables: VisionInputs,
) -> Vec<ndarray::ArrayD<f32>> {
    let n = tables.num_patches;
    let head_dim = cfg.head_dim();
    let inputs: Vec<Input> = vec![
        f32_input(&[n, cfg.patch_dim()], pixels),
        i64_input(&[4, n], tables.pos_embed_index),
        f32_input(&[4, n], tables.pos_embed_weight),
        f32_input(&[n, head_dim], tables.rope_cos),
        f32_input(&[n, head_dim], tables.rope_sin),
    ];
    runner(onnx, inputs)
}

// ---- host-side tables ----

#[test]
fn position_corners_of_a_4x4_grid_on_the_48_side_table() {
    // linspace(0, 47, 4) = [0, 15.666667, 31.333332, 47]: floors 0, 15, 31, 47.
    let t = vision_inputs(&qwen3_vl_2b_vision(), [1, 4, 4]);
    assert_eq!(t.num_patches, 16);
    let n = t.num_patches;
    let corner = |c: usize, patch: usize| {
        (
            t.pos_embed_index[c * n + patch],
            t.pos_embed_weight[c * n + patch],
        )
    };

    // Patch 0 is grid (0, 0): all weight on the top-left corner, row 0 of the table.
    assert_eq!(corner(0, 0), (0, 1.0));
    assert_eq!(corner(1, 0), (1, 0.0));
    assert_eq!(corner(2, 0), (48, 0.0));
    assert_eq!(corner(3, 0), (49, 0.0));

    // Patch 3 is grid (1, 1) (second row of the first 2×2 block): rows 15..16, cols 15..16,
    // both fractions 0.666667.
    let frac = 15.666667f32 - 15.0;
    assert_eq!(corner(0, 3).0, 15 * 48 + 15);
    assert_eq!(corner(1, 3).0, 15 * 48 + 16);
    assert_eq!(corner(2, 3).0, 16 * 48 + 15);
    assert_eq!(corner(3, 3).0, 16 * 48 + 16);
    assert!((corner(0, 3).1 - (1.0 - frac) * (1.0 - frac)).abs() < 1e-6);
    assert!((corner(3, 3).1 - frac * frac).abs() < 1e-6);

    // Patch 15 is grid (3, 3): the last table row, whose ceil is clipped onto itself.
    assert_eq!(corner(0, 15), (47 * 48 + 47, 1.0));
    assert_eq!(corner(3, 15), (47 * 48 + 47, 0.0));
}

#[test]
fn position_weights_sum_to_one_for_every_patch() {
    let t = vision_inputs(&qwen3_vl_2b_vision(), [1, 6, 10]);
    let n = t.num_patches;
    for patch in 0..n {
        let sum: f32 = (0..4).map(|c| t.pos_embed_weight[c * n + patch]).sum();
        assert!((sum - 1.0).abs() < 1e-6, "patch {patch}: {sum}");
    }
}

#[test]
fn patches_follow_merge_block_order() {
    // Grid 2×4 with merge 2: blocks (0,0) then (0,1); inside each, (0,0) (0,1) (1,0) (1,1).
    // Patch 4 is therefore grid (0, 2); on a 48-side table a 4-wide axis puts col 2 at 31.33.
    let t = vision_inputs(&qwen3_vl_2b_vision(), [1, 2, 4]);
    let n = t.num_patches;
    assert_eq!(t.pos_embed_index[4], 31); // row 0, col floor 31
    assert_eq!(t.pos_embed_index[2], 47 * 48); // patch 2 = grid (1, 0): row 47, col 0
    assert_eq!(t.pos_embed_index[2 * n + 2], 47 * 48); // its ceil row is clipped to 47
}

#[test]
fn rope_rows_hold_row_then_column_angles_twice() {
    // head_dim 64: 16 frequencies 1/10000^(j/16); patch 3 sits at grid (1, 1), patch 6 at (1, 2).
    let cfg = qwen3_vl_2b_vision();
    let t = vision_inputs(&cfg, [1, 4, 4]);
    let d = cfg.head_dim();
    let row = |patch: usize| &t.rope_cos[patch * d..(patch + 1) * d];
    let srow = |patch: usize| &t.rope_sin[patch * d..(patch + 1) * d];

    assert!(row(0).iter().all(|&c| c == 1.0) && srow(0).iter().all(|&s| s == 0.0));
    let inv_freq_1 = 0.562_341_33f32; // 1 / 10000^(1/16)
    let p6 = row(6);
    assert!((p6[0] - 1f32.cos()).abs() < 1e-6); // row 1, j = 0
    assert!((p6[1] - inv_freq_1.cos()).abs() < 1e-6); // row 1, j = 1
    assert!((p6[16] - 2f32.cos()).abs() < 1e-6); // col 2, j = 0
    assert!((p6[17] - (2.0 * inv_freq_1).cos()).abs() < 1e-6); // col 2, j = 1
    assert_eq!(&p6[..32], &p6[32..]);
    assert!((srow(6)[16] - 2f32.sin()).abs() < 1e-6);
}

#[test]
fn frames_repeat_the_same_rows() {
    let cfg = qwen3_vl_2b_vision();
    let one = vision_inputs(&cfg, [1, 4, 6]);
    let two = vision_inputs(&cfg, [2, 4, 6]);
    assert_eq!(two.num_patches, 48);
    assert_eq!(two.rope_sin[..one.rope_sin.len()], one.rope_sin[..]);
    assert_eq!(two.rope_sin[one.rope_sin.len()..], one.rope_sin[..]);
    assert_eq!(two.pos_embed_index[..24], two.pos_embed_index[24..48]);
}

// ---- graph shape and errors ----

#[test]
fn tiny_tower_emits_one_token_per_merge_block_for_each_output() {
    let cfg = tiny_vision();
    let weights = tiny_weights(&cfg);
    let model = build_vision_graph(&cfg, &weights, VISUAL_PREFIX).unwrap();
    let names: Vec<&str> = model.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, [IMAGE_EMBEDS, "deepstack_0", "deepstack_1"]);
    let inputs: Vec<&str> = model.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        inputs,
        [
            PIXEL_VALUES,
            POS_EMBED_INDEX,
            POS_EMBED_WEIGHT,
            ROPE_COS,
            ROPE_SIN
        ]
    );

    let dir = tempfile::tempdir().unwrap();
    let written = model.write_with(dir.path(), "vision", &weights).unwrap();
    for grid in [[1, 4, 6], [1, 2, 2]] {
        let tables = vision_inputs(&cfg, grid);
        let n = tables.num_patches;
        let pixels = (0..n * cfg.patch_dim())
            .map(|i| ((i % 7) as f32 - 3.0) / 3.0)
            .collect();
        let outs = run_vision(&written.graph_file, &cfg, pixels, tables);
        assert_eq!(outs.len(), 3);
        for out in &outs {
            assert_eq!(out.shape(), [n / 4, cfg.out_hidden_size], "grid {grid:?}");
            assert!(out.iter().all(|v| v.is_finite()));
        }
    }
}

#[test]
fn deepstack_outputs_are_numbered_from_zero() {
    assert_eq!(deepstack_output_name(0), "deepstack_0");
    assert_eq!(deepstack_output_name(2), "deepstack_2");
}

#[test]
fn misshaped_weight_is_named_with_both_shapes() {
    let cfg = tiny_vision();
    let mut weights = tiny_weights(&cfg);
    let name = format!("{VISUAL_PREFIX}blocks.1.attn.qkv.weight");
    weights
        .tensors
        .insert(name.clone(), WeightTensor::new(vec![48, 8], vec![0.0; 384]));
    let err = build_vision_graph(&cfg, &weights, VISUAL_PREFIX)
        .err()
        .unwrap();
    match &err {
        WeightError::Shape {
            name: n,
            found,
            expected,
            ..
        } => {
            assert_eq!(n, &name);
            assert_eq!(found, &[48, 8]);
            assert_eq!(expected, &[48, 16]);
        }
        other => panic!("expected a shape error, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains(&name) && message.contains("[48, 8]") && message.contains("[48, 16]"));
}

#[test]
fn missing_weight_is_named() {
    let cfg = tiny_vision();
    let mut weights = tiny_weights(&cfg);
    let name = format!("{VISUAL_PREFIX}deepstack_merger_list.1.norm.bias");
    weights.tensors.remove(&name);
    let err = build_vision_graph(&cfg, &weights, VISUAL_PREFIX)
        .err()
        .unwrap();
    assert!(
        matches!(&err, WeightError::Missing { name: n, .. } if n == &name),
        "{err}"
    );
}

#[test]
fn prefix_without_trailing_dot_names_the_same_weights() {
    let cfg = tiny_vision();
    let weights = tiny_weights(&cfg);
    let bare = VISUAL_PREFIX.trim_end_matches('.');
    assert!(build_vision_graph(&cfg, &weights, bare).is_ok());
}

#[test]
fn unsupported_activation_is_a_config_error() {
    let mut cfg = tiny_vision();
    cfg.hidden_act = "relu6".into();
    let err = build_vision_graph(&cfg, &tiny_weights(&cfg), VISUAL_PREFIX)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("vision_config.hidden_act"),
        "{err}"
    );
}

// ---- parity with upstream ----

/// Builds the vision graph of `case` from its checkpoint; returns its config and the graph file.
fn write_case_vision_graph(case: &Path, dir: &Path) -> (VisionConfig, PathBuf) {
    let config_path = case.join("backbone/config.json");
    let config = std::fs::read_to_string(&config_path)
        .unwrap_or_else(|e| panic!("{}: {e}", config_path.display()));
    let cfg = Qwen3VlConfig::from_json_str(&config).unwrap().vision_config;
    let weights = SafetensorsFile::open(&case.join("checkpoint/model.safetensors"));
    let model = build_vision_graph(&cfg, &weights, VISUAL_PREFIX).unwrap();
    let onnx = model
        .write_with(dir, "vision", &weights)
        .unwrap()
        .graph_file;
    (cfg, onnx)
}

/// Runs the vision graph `onnx` on every observation of `case`; returns the relative L2 error
/// of each output against upstream, named `<obs> <output>`.
fn errors_against_upstream(
    case: &Path,
    cfg: &VisionConfig,
    onnx: &Path,
    runner: Runner,
) -> Vec<(String, f64)> {
    let taps = cfg.deepstack_visual_indexes.len();
    let mut errors = Vec::new();
    for obs in common::observations(case) {
        let expected = obs.join("expected");
        let pixels = npy_f32(&expected.join("pixel_values.npy"));
        let grids = npy_i64(&expected.join("image_grid_thw.npy"));
        let pixels = pixels.as_slice().unwrap();
        let patch_dim = cfg.patch_dim();

        // Outputs of all images concatenated, as upstream returns them.
        let mut got: Vec<Vec<f32>> = vec![Vec::new(); 1 + taps];
        let mut row = 0;
        for grid in grids.outer_iter() {
            let [t, h, w] = [grid[0] as usize, grid[1] as usize, grid[2] as usize];
            // Upstream attends within each frame, so each frame is one graph call.
            for _ in 0..t {
                let tables = vision_inputs(cfg, [1, h, w]);
                let n = tables.num_patches;
                let rows = pixels[row * patch_dim..(row + n) * patch_dim].to_vec();
                row += n;
                for (acc, out) in got
                    .iter_mut()
                    .zip(run_vision_with(runner, onnx, cfg, rows, tables))
                {
                    acc.extend(out.iter());
                }
            }
        }
        assert_eq!(
            row * patch_dim,
            pixels.len(),
            "{}: rows left over",
            obs.display()
        );

        let mut references = vec![("vision_embeds".to_string(), &got[0])];
        for k in 0..taps {
            references.push((deepstack_output_name(k), &got[1 + k]));
        }
        for (name, out) in references {
            let reference = npy_f32(&expected.join(format!("{name}.npy")));
            let err = rel_l2(out, reference.as_slice().unwrap());
            println!("{} {name}: rel L2 {err:.3e}", obs.display());
            errors.push((format!("{} {name}", obs.display()), err));
        }
    }
    errors
}

#[test]
fn vision_tower_matches_upstream_on_every_fixture() {
    for case in common::fixture_cases() {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, onnx) = write_case_vision_graph(&case, dir.path());
        for (what, err) in errors_against_upstream(&case, &cfg, &onnx, run_graph) {
            assert!(err <= PARITY_BAR, "{what}: rel L2 {err:.3e}");
        }
    }
}

#[test]
fn vision_tower_with_every_layer_in_fp16_stays_within_bar_on_massive_activations() {
    let case = common::fixtures_root().join("outliers");
    let dir = tempfile::tempdir().unwrap();
    let (cfg, onnx) = write_case_vision_graph(&case, dir.path());
    let half = dir.path().join("vision_fp16_everywhere.onnx");
    write_half_everywhere(&onnx, &half).unwrap();
    for (what, err) in errors_against_upstream(&case, &cfg, &half, run_graph_as_written) {
        assert!(
            err <= FP16_EVERYWHERE_BAR,
            "{what}: rel L2 {err:.3e} in fp16 everywhere"
        );
    }
}
