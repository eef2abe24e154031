//! The VLA-JEPA policy config and the DiT action-head step graph, against LeRobot's goldens:
//! the host-side Euler loop over the step graph reproduces every per-step velocity and the
//! normalized action chunk from the captured conditioning and normalized state.

mod common;

use common::{
    f32_input, fixture_cases, i64_input, npy_f32, observations, rel_l2, run_graph, Input,
    SafetensorsFile,
};
use std::path::Path;
use vjx_graphs::qwen3_vl::config::Qwen3VlConfig;
use vjx_graphs::vla_jepa::config::VlaJepaConfig;
use vjx_graphs::vla_jepa::dit::{
    action_time_frequencies, build_dit_step_graph, euler_step_size, euler_timesteps,
    timestep_proj_frequencies, CONDITIONING, NOISY_ACTIONS, STATE, TIMESTEP, VELOCITY,
};
use vjx_graphs::weights::MemoryWeights;
use vjx_graphs::{WeightError, WeightTensor};

const PREFIX: &str = "model.action_model.";
const PARITY: f64 = 1e-4;

fn read_config(case: &Path) -> VlaJepaConfig {
    let path = case.join("checkpoint/config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    VlaJepaConfig::from_json_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn backbone_hidden(case: &Path) -> usize {
    let text = std::fs::read_to_string(case.join("backbone/config.json")).unwrap();
    let cfg: Qwen3VlConfig = serde_json::from_str(&text).unwrap();
    cfg.text_config.hidden_size
}

/// Keys of the `input_features` entries of `type` in the raw JSON, in file order.
fn raw_feature_keys(case: &Path, kind: &str) -> Vec<String> {
    let text = std::fs::read_to_string(case.join("checkpoint/config.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["input_features"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, f)| f["type"] == kind)
        .map(|(k, _)| k.clone())
        .collect()
}

fn write_graph(
    model: vjx_graphs::Model,
    weights: &dyn vjx_graphs::WeightSource,
    dir: &Path,
) -> std::path::PathBuf {
    model
        .write_with(dir, "dit_step", weights)
        .unwrap()
        .graph_file
}

/// Inputs in graph order: noisy actions, timestep, state (when used), conditioning.
fn step_inputs(
    x: &[f32],
    chunk: usize,
    a: usize,
    t: i64,
    state: Option<&[f32]>,
    cond: &[f32],
    cond_shape: [usize; 2],
) -> Vec<Input> {
    let mut inputs = vec![f32_input(&[chunk, a], x.to_vec()), i64_input(&[1], vec![t])];
    if let Some(s) = state {
        inputs.push(f32_input(&[s.len()], s.to_vec()));
    }
    inputs.push(f32_input(&cond_shape, cond.to_vec()));
    inputs
}

#[test]
fn config_parses_every_fixture_with_cameras_in_file_order() {
    for case in fixture_cases() {
        let cfg = read_config(&case);
        assert_eq!(
            cfg.camera_keys(),
            raw_feature_keys(&case, "VISUAL"),
            "{}",
            case.display()
        );
        let has_state = !raw_feature_keys(&case, "STATE").is_empty();
        assert_eq!(cfg.state_dim().is_some(), has_state, "{}", case.display());
    }
}

#[test]
fn config_reads_the_two_cam_fixture_values() {
    let case = fixture_cases()
        .into_iter()
        .find(|c| c.ends_with("two_cam_resize"))
        .expect("two_cam_resize fixture");
    let cfg = read_config(&case);
    assert_eq!(
        cfg.camera_keys(),
        ["observation.images.agentview", "observation.images.wrist"]
    );
    assert_eq!(cfg.state_dim(), Some(8));
    assert_eq!(cfg.action_dim(), 7);
    assert_eq!(cfg.resize_images_to, Some([80, 112]));
    let dims = cfg.dit_dims();
    // DiT-test preset: 2 heads × 8; width of the head MLPs from action_hidden_size.
    assert_eq!((dims.heads, dims.head_dim, dims.inner_dim), (2, 8, 16));
    assert_eq!((dims.num_layers, dims.output_dim, dims.chunk), (4, 32, 7));
}

#[test]
fn dit_step_graph_reproduces_upstream_euler_loop() {
    let tmp = tempfile::tempdir().unwrap();
    for case in fixture_cases() {
        let cfg = read_config(&case);
        let cond_dim = backbone_hidden(&case);
        let weights = SafetensorsFile::open(&case.join("checkpoint/model.safetensors"));
        let model = build_dit_step_graph(&cfg, cond_dim, &weights, PREFIX).unwrap();
        let case_dir = tmp.path().join(case.file_name().unwrap());
        std::fs::create_dir_all(&case_dir).unwrap();
        let onnx = write_graph(model, &weights, &case_dir);

        let (chunk, a) = (cfg.chunk_size, cfg.action_dim());
        let dt = euler_step_size(&cfg);
        for obs in observations(&case) {
            let expected = obs.join("expected");
            let mut x = npy_f32(&obs.join("noise.npy")).into_raw_vec_and_offset().0;
            let cond = npy_f32(&expected.join("embodied_hidden.npy"));
            let cond_shape = [cond.shape()[0], cond.shape()[1]];
            let cond = cond.into_raw_vec_and_offset().0;
            let state_file = expected.join("state_normalized.npy");
            let state = state_file
                .is_file()
                .then(|| npy_f32(&state_file).into_raw_vec_and_offset().0);
            assert_eq!(
                state.is_some(),
                cfg.state_dim().is_some(),
                "{}",
                obs.display()
            );

            let mut worst = 0f64;
            for (step, t) in euler_timesteps(&cfg).into_iter().enumerate() {
                let inputs = step_inputs(&x, chunk, a, t, state.as_deref(), &cond, cond_shape);
                let v = run_graph(&onnx, inputs)
                    .remove(0)
                    .into_raw_vec_and_offset()
                    .0;
                let want = npy_f32(&expected.join(format!("velocity_step{step}.npy")));
                let err = rel_l2(&v, want.as_slice().unwrap());
                assert!(
                    err <= PARITY,
                    "{} step {step} (t={t}): rel L2 {err:e}",
                    obs.display()
                );
                worst = worst.max(err);
                for (xi, vi) in x.iter_mut().zip(&v) {
                    *xi += dt * vi;
                }
            }
            let want = npy_f32(&expected.join("actions_normalized.npy"));
            let err = rel_l2(&x, want.as_slice().unwrap());
            assert!(
                err <= PARITY,
                "{} actions_normalized: rel L2 {err:e}",
                obs.display()
            );
            println!(
                "{}: worst velocity rel L2 {worst:.3e}, actions_normalized {err:.3e}",
                obs.display()
            );
        }
    }
}

#[test]
fn euler_buckets_truncate_step_fractions() {
    let mut cfg = VlaJepaConfig::default();
    assert_eq!(euler_timesteps(&cfg), [0, 250, 500, 750]);
    assert_eq!(euler_step_size(&cfg), 0.25);
    cfg.num_inference_timesteps = 3;
    assert_eq!(euler_timesteps(&cfg), [0, 333, 666]);
    cfg.num_inference_timesteps = 5;
    assert_eq!(euler_timesteps(&cfg), [0, 200, 400, 600, 800]);
    cfg.num_inference_timesteps = 10;
    assert_eq!(
        euler_timesteps(&cfg),
        [0, 100, 200, 300, 400, 500, 600, 700, 800, 900]
    );
}

#[test]
fn timestep_projection_frequencies_span_one_to_one_ten_thousandth() {
    let f = timestep_proj_frequencies();
    assert_eq!(f.len(), 128);
    assert_eq!(f[0], 1.0);
    // downscale_freq_shift=1: the last of 128 frequencies is exactly 10000^-1.
    assert!((f[127] - 1e-4).abs() < 1e-9, "{}", f[127]);
    assert!((f[1] - (-(10000f64.ln()) / 127.0).exp() as f32).abs() < 1e-7);
}

#[test]
fn action_time_frequencies_use_half_width_divisor() {
    let f = action_time_frequencies(768);
    assert_eq!(f.len(), 384);
    assert_eq!(f[0], 1.0);
    // exp(-k ln(10000) / 384): k = 192 gives 10000^-0.5 = 0.01.
    assert!((f[192] - 0.01).abs() < 1e-8, "{}", f[192]);
    assert!((f[383] - (-383.0 * 10000f64.ln() / 384.0).exp() as f32).abs() < 1e-9);
}

/// A DiT-test sized head (2 heads × 8, 2 layers, hidden 12) with deterministic pseudo-random weights.
fn tiny_config(with_state: bool) -> VlaJepaConfig {
    let state = if with_state {
        r#", "observation.state": {"type": "STATE", "shape": [3]}"#
    } else {
        ""
    };
    let json = format!(
        r#"{{"type": "vla_jepa",
            "input_features": {{"observation.images.b": {{"type": "VISUAL", "shape": [3, 8, 8]}},
                                "observation.images.a": {{"type": "VISUAL", "shape": [3, 8, 8]}}{state}}},
            "output_features": {{"action": {{"type": "ACTION", "shape": [4]}}}},
            "chunk_size": 5, "action_model_type": "DiT-test", "action_num_layers": 2,
            "action_hidden_size": 12, "num_embodied_action_tokens_per_instruction": 6,
            "action_max_seq_len": 16}}"#
    );
    VlaJepaConfig::from_json_str(&json).unwrap()
}

fn tiny_weights(cfg: &VlaJepaConfig, cond_dim: usize) -> MemoryWeights {
    let dims = cfg.dit_dims();
    let (d, h, a) = (dims.inner_dim, dims.output_dim, cfg.action_dim());
    let mut shapes: Vec<(String, Vec<usize>)> = Vec::new();
    let mut lin = |name: &str, out_f: usize, in_f: usize| {
        shapes.push((format!("{PREFIX}{name}.weight"), vec![out_f, in_f]));
        shapes.push((format!("{PREFIX}{name}.bias"), vec![out_f]));
    };
    lin("model.timestep_encoder.timestep_embedder.linear_1", d, 256);
    lin("model.timestep_encoder.timestep_embedder.linear_2", d, d);
    for i in 0..dims.num_layers {
        let kv_in = if i % 2 == 0 { cond_dim } else { d };
        let b = format!("model.transformer_blocks.{i}");
        lin(&format!("{b}.norm1.linear"), 2 * d, d);
        lin(&format!("{b}.attn1.to_q"), d, d);
        lin(&format!("{b}.attn1.to_k"), d, kv_in);
        lin(&format!("{b}.attn1.to_v"), d, kv_in);
        lin(&format!("{b}.attn1.to_out.0"), d, d);
        lin(&format!("{b}.ff.net.0.proj"), 4 * d, d);
        lin(&format!("{b}.ff.net.2"), d, 4 * d);
    }
    lin("model.proj_out_1", 2 * d, d);
    lin("model.proj_out_2", h, d);
    lin("action_encoder.layer1", d, a);
    lin("action_encoder.layer2", d, 2 * d);
    lin("action_encoder.layer3", d, d);
    lin("action_decoder.layer1", h, h);
    lin("action_decoder.layer2", a, h);
    lin("state_encoder.layer1", h, 3);
    lin("state_encoder.layer2", d, h);
    shapes.push((
        format!("{PREFIX}future_tokens.weight"),
        vec![dims.num_future_tokens, d],
    ));
    shapes.push((
        format!("{PREFIX}position_embedding.weight"),
        vec![dims.position_rows, d],
    ));

    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.4
    };
    let mut w = MemoryWeights::default();
    for (name, shape) in shapes {
        let data = (0..shape.iter().product::<usize>())
            .map(|_| next())
            .collect();
        w.tensors.insert(name, WeightTensor::new(shape, data));
    }
    w
}

#[test]
fn step_graph_declares_inputs_and_velocity_shape() {
    let cond_dim = 10;
    let cfg = tiny_config(true);
    let weights = tiny_weights(&cfg, cond_dim);
    let model = build_dit_step_graph(&cfg, cond_dim, &weights, PREFIX).unwrap();
    let names: Vec<&str> = model.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, [NOISY_ACTIONS, TIMESTEP, STATE, CONDITIONING]);
    assert_eq!(model.outputs[0].name, VELOCITY);

    let tmp = tempfile::tempdir().unwrap();
    let onnx = write_graph(model, &weights, tmp.path());
    let x: Vec<f32> = (0..20).map(|i| (i as f32 * 0.37).sin()).collect();
    let cond: Vec<f32> = (0..60).map(|i| (i as f32 * 0.11).cos()).collect();
    let out = run_graph(
        &onnx,
        step_inputs(&x, 5, 4, 250, Some(&[0.1, -0.2, 0.3]), &cond, [6, cond_dim]),
    );
    assert_eq!(out[0].shape(), [5, 4]);
    assert!(out[0].iter().all(|v| v.is_finite()));
}

#[test]
fn step_graph_without_state_has_no_state_input_and_depends_on_timestep() {
    let cond_dim = 10;
    let cfg = tiny_config(false);
    assert_eq!(
        cfg.camera_keys(),
        ["observation.images.b", "observation.images.a"]
    );
    let weights = tiny_weights(&cfg, cond_dim);
    let model = build_dit_step_graph(&cfg, cond_dim, &weights, PREFIX).unwrap();
    let names: Vec<&str> = model.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, [NOISY_ACTIONS, TIMESTEP, CONDITIONING]);

    let tmp = tempfile::tempdir().unwrap();
    let onnx = write_graph(model, &weights, tmp.path());
    let x: Vec<f32> = (0..20).map(|i| (i as f32 * 0.37).sin()).collect();
    let cond: Vec<f32> = (0..60).map(|i| (i as f32 * 0.11).cos()).collect();
    let at =
        |t: i64| run_graph(&onnx, step_inputs(&x, 5, 4, t, None, &cond, [6, cond_dim])).remove(0);
    let (v0, v500) = (at(0), at(500));
    assert_eq!(v0.shape(), [5, 4]);
    assert!(rel_l2(v0.as_slice().unwrap(), v500.as_slice().unwrap()) > 1e-3);
}

#[test]
fn misshaped_weight_is_named_with_both_shapes() {
    let cond_dim = 10;
    let cfg = tiny_config(true);
    let mut w = tiny_weights(&cfg, cond_dim);
    let name = format!("{PREFIX}model.transformer_blocks.0.attn1.to_k.weight");
    w.tensors
        .insert(name.clone(), WeightTensor::new(vec![16, 9], vec![0.0; 144]));
    let err = build_dit_step_graph(&cfg, cond_dim, &w, PREFIX)
        .err()
        .expect("shape error");
    match &err {
        WeightError::Shape {
            name: n,
            found,
            expected,
            ..
        } => {
            assert_eq!(n, &name);
            assert_eq!(found, &[16, 9]);
            assert_eq!(expected, &[16, 10]);
        }
        other => panic!("expected a shape error, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&name) && msg.contains("[16, 9]") && msg.contains("[16, 10]"),
        "{msg}"
    );
}

#[test]
fn config_rejects_unknown_action_model_type() {
    let err = VlaJepaConfig::from_json_str(
        r#"{"type": "vla_jepa", "action_model_type": "DiT-XXL",
            "input_features": {"observation.images.a": {"type": "VISUAL", "shape": [3, 8, 8]}}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("DiT-XXL"), "{err}");
}

#[test]
fn config_defaults_match_upstream_dit_b() {
    let cfg = VlaJepaConfig::from_json_str(
        r#"{"type": "vla_jepa", "input_features": {"observation.images.a": {"type": "VISUAL", "shape": [3, 8, 8]}}}"#,
    )
    .unwrap();
    let dims = cfg.dit_dims();
    assert_eq!(
        (dims.heads, dims.head_dim, dims.inner_dim, dims.num_layers),
        (12, 64, 768, 16)
    );
    assert_eq!(
        (
            dims.output_dim,
            dims.ff_dim,
            dims.num_future_tokens,
            dims.position_rows
        ),
        (1024, 3072, 32, 1024)
    );
    assert_eq!(cfg.state_dim(), None);
    assert_eq!(cfg.action_dim(), 7);
    assert_eq!(cfg.num_inference_timesteps, 4);
    assert_eq!(cfg.num_action_prompt_steps(), 3);
}
