//! The LingBot-VA config, RoPE tables and transformer graphs against LeRobot's
//! `WanTransformer3DModel` (tiny, float32; see make_lingbot_transformer_reference.py): a
//! sequence of video and action forwards sharing one KV cache, replayed with the cache pools and
//! valid-slot bias upstream had before each forward.

mod common;

use common::{f32_input, i64_input, npy_f32, npy_i64, rel_l2, run_graph, Input, SafetensorsFile};
use ndarray::ArrayD;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use vjx_graphs::lingbot_va::rope::{action_grid, rope_tables, video_grid};
use vjx_graphs::lingbot_va::transformer::{
    build_action_step_graph, build_text_condition_graph, build_video_step_graph, cache_key_name,
    cache_value_name, cross_key_name, cross_value_name, updated_key_name, updated_value_name,
    CACHE_BIAS, CACHE_SLOTS, NOISY_ACTIONS, NOISY_LATENTS, ROPE_COS, ROPE_SIN, TEXT_EMBEDS,
    TIMESTEPS, VELOCITY,
};
use vjx_graphs::lingbot_va::{CameraLayout, LingbotVaConfig, LingbotVaConfigError};
use vjx_graphs::Model;

const PREFIX: &str = "transformer.";
const PARITY: f64 = 1e-4;
const CASES: [&str; 2] = ["b1", "b2_cfg"];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lingbot_transformer")
}

fn config_json() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture_dir().join("config.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn config() -> LingbotVaConfig {
    LingbotVaConfig::from_json_str(&config_json().to_string()).unwrap()
}

fn with_fields(
    fields: &[(&str, serde_json::Value)],
) -> Result<LingbotVaConfig, LingbotVaConfigError> {
    let mut json = config_json();
    for (key, value) in fields {
        json[*key] = value.clone();
    }
    LingbotVaConfig::from_json_str(&json.to_string())
}

fn weights() -> SafetensorsFile {
    SafetensorsFile::open(&fixture_dir().join("model.safetensors"))
}

fn data(a: ArrayD<f32>) -> Vec<f32> {
    a.as_standard_layout().iter().copied().collect()
}

/// One recorded forward of `calls.json`.
struct Call {
    dir: PathBuf,
    action: bool,
    frame_start: usize,
}

fn calls(case: &str) -> Vec<Call> {
    let dir = fixture_dir().join(case);
    let text = std::fs::read_to_string(dir.join("calls.json")).unwrap();
    let list: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    list.iter()
        .enumerate()
        .map(|(k, c)| Call {
            dir: dir.join(format!("call{k}")),
            action: c["stream"] == "action",
            frame_start: c["frame_start"].as_u64().unwrap() as usize,
        })
        .collect()
}

fn grid(cfg: &LingbotVaConfig, call: &Call) -> Vec<[f64; 3]> {
    if call.action {
        action_grid(call.frame_start, cfg.frame_chunk_size, cfg.action_per_frame)
    } else {
        let (h2, w2) = cfg.token_grid();
        video_grid(call.frame_start, cfg.frame_chunk_size, h2, w2)
    }
}

/// A written graph with its input and output names in graph order.
struct Graph {
    onnx: PathBuf,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

fn write(model: Model, dir: &Path, stem: &str) -> Graph {
    let inputs = model.inputs.iter().map(|s| s.name.clone()).collect();
    let outputs = model.outputs.iter().map(|s| s.name.clone()).collect();
    let onnx = model.write_with(dir, stem, &weights()).unwrap().graph_file;
    Graph {
        onnx,
        inputs,
        outputs,
    }
}

impl Graph {
    fn run(&self, mut feeds: HashMap<String, Input>) -> HashMap<String, ArrayD<f32>> {
        let inputs = self
            .inputs
            .iter()
            .map(|n| {
                feeds
                    .remove(n)
                    .unwrap_or_else(|| panic!("no feed for input {n}"))
            })
            .collect();
        assert!(
            feeds.is_empty(),
            "unused feeds: {:?}",
            feeds.keys().collect::<Vec<_>>()
        );
        self.outputs
            .iter()
            .cloned()
            .zip(run_graph(&self.onnx, inputs))
            .collect()
    }
}

fn feed(a: ArrayD<f32>) -> Input {
    Input::F32(a)
}

#[test]
fn config_reads_the_lerobot_dump() {
    let cfg = config();
    assert_eq!(cfg.patch_size, [1, 2, 2]);
    assert_eq!(
        (
            cfg.num_attention_heads,
            cfg.attention_head_dim,
            cfg.inner_dim()
        ),
        (2, 24, 48)
    );
    assert_eq!(
        (cfg.in_channels, cfg.out_channels, cfg.action_dim),
        (48, 48, 30)
    );
    assert_eq!(
        (cfg.text_dim, cfg.freq_dim, cfg.ffn_dim, cfg.num_layers),
        (32, 32, 96, 2)
    );
    assert!(cfg.cross_attn_norm);
    assert_eq!(cfg.eps, 1e-6);
    assert_eq!(cfg.camera_layout, CameraLayout::WidthConcat);
    assert_eq!(cfg.obs_cam_keys, ["observation.images.image"]);
    assert_eq!(
        (cfg.frame_chunk_size, cfg.action_per_frame, cfg.attn_window),
        (2, 4, 4)
    );
    assert_eq!(
        (cfg.num_inference_steps, cfg.action_num_inference_steps),
        (20, 50)
    );
    assert_eq!((cfg.snr_shift, cfg.action_snr_shift), (5.0, 0.05));
    assert_eq!(cfg.used_action_channel_ids, (0..7).collect::<Vec<_>>());
    assert_eq!((cfg.video_exec_step, cfg.max_sequence_length), (-1, 512));
    assert_eq!(cfg.wan_pretrained_path, "unreachable/lingbot-va-tiny");
    assert_eq!(cfg.dtype, "float32");
    assert_eq!(
        cfg.input_features["observation.images.image"]["type"],
        "VISUAL"
    );
    // 64×64 → 4×4 latent → 2×2 tokens per frame; 2 frames of 4 actions; (4/2)·(8+8) slots.
    assert_eq!((cfg.latent_hw(), cfg.token_grid()), ((4, 4), (2, 2)));
    assert_eq!(
        (cfg.video_tokens_per_chunk(), cfg.action_tokens_per_chunk()),
        (8, 8)
    );
    assert_eq!(cfg.cache_size(), 32);
    assert!(cfg.use_cfg());
    assert_eq!(cfg.batch_size(), 2);
}

#[test]
fn config_sizes_the_libero_and_robotwin_caches() {
    let libero = with_fields(&[
        (
            "obs_cam_keys",
            serde_json::json!(["observation.images.image", "observation.images.image2"]),
        ),
        ("height", 128.into()),
        ("width", 128.into()),
        ("frame_chunk_size", 4.into()),
        ("attn_window", 30.into()),
    ])
    .unwrap();
    assert_eq!(libero.latent_hw(), (8, 16));
    assert_eq!(
        (
            libero.video_tokens_per_chunk(),
            libero.action_tokens_per_chunk()
        ),
        (128, 16)
    );
    assert_eq!(libero.cache_size(), 2160);

    let robotwin = with_fields(&[
        ("camera_layout", "robotwin_tshape".into()),
        (
            "obs_cam_keys",
            serde_json::json!(["head_camera", "left_camera", "right_camera"]),
        ),
        ("height", 256.into()),
        ("width", 320.into()),
        ("action_per_frame", 16.into()),
        ("attn_window", 72.into()),
        ("guidance_scale", 1.0.into()),
    ])
    .unwrap();
    assert_eq!(robotwin.latent_hw(), (24, 20));
    assert_eq!(
        (
            robotwin.video_tokens_per_chunk(),
            robotwin.action_tokens_per_chunk()
        ),
        (240, 32)
    );
    assert_eq!(robotwin.cache_size(), 9792);
    assert!(!robotwin.use_cfg());
}

#[test]
fn config_ignores_unknown_fields_and_names_a_missing_one() {
    assert!(with_fields(&[("some_future_field", 3.into())]).is_ok());
    let mut json = config_json();
    json.as_object_mut().unwrap().remove("frame_chunk_size");
    match LingbotVaConfig::from_json_str(&json.to_string()) {
        Err(LingbotVaConfigError::MissingField { field }) => assert_eq!(field, "frame_chunk_size"),
        other => panic!("expected MissingField, got {other:?}"),
    }
}

#[test]
fn config_rejects_another_policy_type_and_unknown_layouts() {
    let wrong_type = with_fields(&[("type", "vla_jepa".into())]);
    assert!(matches!(
        wrong_type,
        Err(LingbotVaConfigError::InvalidField { field: "type", .. })
    ));
    assert!(matches!(
        with_fields(&[("camera_layout", "grid".into())]),
        Err(LingbotVaConfigError::Json(_))
    ));
    assert!(matches!(
        with_fields(&[("used_action_channel_ids", serde_json::json!([0, 30]))]),
        Err(LingbotVaConfigError::InvalidField {
            field: "used_action_channel_ids",
            ..
        })
    ));
}

#[test]
fn rope_tables_match_upstream_for_every_recorded_grid() {
    let cfg = config();
    for case in CASES {
        for call in calls(case) {
            let (cos, sin) = rope_tables(cfg.attention_head_dim, &grid(&cfg, &call));
            for (ours, file) in [(&cos, "rope_cos.npy"), (&sin, "rope_sin.npy")] {
                let want = data(npy_f32(&call.dir.join(file)));
                assert_eq!(ours.len(), want.len(), "{}", call.dir.display());
                let worst = ours
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst <= 1e-6,
                    "{} {file}: max abs diff {worst:e}",
                    call.dir.display()
                );
            }
        }
    }
}

#[test]
fn text_condition_matches_upstream_cross_attention_keys_and_values() {
    let cfg = config();
    let tmp = tempfile::tempdir().unwrap();
    let graph = write(
        build_text_condition_graph(&cfg, &weights(), PREFIX).unwrap(),
        tmp.path(),
        "text_condition",
    );
    for case in CASES {
        let dir = fixture_dir().join(case);
        let feeds = HashMap::from([(
            TEXT_EMBEDS.to_string(),
            feed(npy_f32(&dir.join("text_embeds.npy"))),
        )]);
        let out = graph.run(feeds);
        for i in 0..cfg.num_layers {
            for name in [cross_key_name(i), cross_value_name(i)] {
                let want = npy_f32(&dir.join(format!("{name}.npy")));
                assert_eq!(out[&name].shape(), want.shape(), "{case} {name}");
                let err = rel_l2(&data(out[&name].clone()), &data(want));
                println!("{case} {name}: rel L2 {err:.3e}");
                assert!(err <= PARITY, "{case} {name}: rel L2 {err:e}");
            }
        }
    }
}

/// Upstream's cache pools, replayed: the initial pools plus every earlier forward's writes.
struct Pools {
    keys: Vec<ArrayD<f32>>,
    values: Vec<ArrayD<f32>>,
}

impl Pools {
    fn initial(dir: &Path, layers: usize) -> Self {
        let load = |kind: &str| -> Vec<ArrayD<f32>> {
            (0..layers)
                .map(|i| npy_f32(&dir.join(format!("initial_{kind}_{i}.npy"))))
                .collect()
        };
        Pools {
            keys: load("key"),
            values: load("value"),
        }
    }

    /// Writes upstream's new K/V of `call` at the slots it used.
    fn apply(&mut self, call: &Call) {
        let slots = npy_i64(&call.dir.join("slots.npy"));
        for (pools, kind) in [(&mut self.keys, "key"), (&mut self.values, "value")] {
            for (i, pool) in pools.iter_mut().enumerate() {
                let new = npy_f32(&call.dir.join(format!("new_{kind}_{i}.npy")));
                for (j, &slot) in slots.iter().enumerate() {
                    for b in 0..pool.shape()[0] {
                        let src = new.slice(ndarray::s![b, j, .., ..]).to_owned();
                        pool.slice_mut(ndarray::s![b, slot as usize, .., ..])
                            .assign(&src);
                    }
                }
            }
        }
    }
}

/// The per-token timesteps: each frame's value repeated over its tokens.
fn per_token(timesteps: &ArrayD<f32>, tokens_per_frame: usize) -> ArrayD<f32> {
    let (batch, frames) = (timesteps.shape()[0], timesteps.shape()[1]);
    let flat: Vec<f32> = timesteps
        .as_standard_layout()
        .iter()
        .flat_map(|&t| std::iter::repeat_n(t, tokens_per_frame))
        .collect();
    ArrayD::from_shape_vec(vec![batch, frames * tokens_per_frame], flat).unwrap()
}

/// `pool[:, slots[j]]` for every j: `[batch, tokens, heads, head_dim]`.
fn at_slots(pool: &ArrayD<f32>, slots: &[i64]) -> ArrayD<f32> {
    let index: Vec<usize> = slots.iter().map(|&s| s as usize).collect();
    pool.select(ndarray::Axis(1), &index)
}

/// `pool` without the slots in `slots`.
fn outside_slots(pool: &ArrayD<f32>, slots: &[i64]) -> ArrayD<f32> {
    let others: Vec<usize> = (0..pool.shape()[1])
        .filter(|s| !slots.contains(&(*s as i64)))
        .collect();
    pool.select(ndarray::Axis(1), &others)
}

/// `got` matches upstream's `want` within the parity bar.
fn check_parity(call: &Call, case: &str, output: &str, got: ArrayD<f32>, want: ArrayD<f32>) {
    assert_eq!(got.shape(), want.shape(), "{} {output}", call.dir.display());
    let err = rel_l2(&data(got), &data(want));
    println!(
        "{case}/{} {output}: rel L2 {err:.3e}",
        call.dir.file_name().unwrap().to_string_lossy()
    );
    assert!(
        err <= PARITY,
        "{} {output}: rel L2 {err:e}",
        call.dir.display()
    );
}

/// Replays the forwards of `case`; returns how many of them evicted cache slots.
fn replay_case(case: &str, video: &Graph, action: &Graph) -> usize {
    let cfg = config();
    let dir = fixture_dir().join(case);
    let mut pools = Pools::initial(&dir, cfg.num_layers);
    let mut evicting = 0;
    for call in calls(case) {
        let valid_before = npy_i64(&call.dir.join("valid_before.npy"));
        let cache_valid = npy_i64(&call.dir.join("cache_valid.npy"));
        evicting += usize::from(valid_before != cache_valid);
        let tokens_per_frame = if call.action {
            cfg.action_per_frame
        } else {
            let (h2, w2) = cfg.token_grid();
            h2 * w2
        };
        let (cos, sin) = rope_tables(cfg.attention_head_dim, &grid(&cfg, &call));
        let len = cos.len() / (cfg.attention_head_dim / 2);
        let rope_shape = [len, cfg.attention_head_dim / 2];
        // The slots the forward reads besides its own tokens: valid, and not evicted by its allocation.
        let bias: Vec<f32> = npy_i64(&call.dir.join("cache_valid.npy"))
            .iter()
            .map(|&valid| if valid != 0 { 0.0 } else { f32::NEG_INFINITY })
            .collect();
        let noisy_name = if call.action {
            NOISY_ACTIONS
        } else {
            NOISY_LATENTS
        };
        let timesteps = per_token(&npy_f32(&call.dir.join("timesteps.npy")), tokens_per_frame);
        let slots: Vec<i64> = npy_i64(&call.dir.join("slots.npy"))
            .iter()
            .copied()
            .collect();
        let mut feeds = HashMap::from([
            (
                noisy_name.to_string(),
                feed(npy_f32(&call.dir.join("noisy.npy"))),
            ),
            (TIMESTEPS.to_string(), feed(timesteps)),
            (ROPE_COS.to_string(), f32_input(&rope_shape, cos)),
            (ROPE_SIN.to_string(), f32_input(&rope_shape, sin)),
            (CACHE_BIAS.to_string(), f32_input(&[bias.len()], bias)),
            (
                CACHE_SLOTS.to_string(),
                i64_input(&[slots.len()], slots.clone()),
            ),
        ]);
        for i in 0..cfg.num_layers {
            feeds.insert(cache_key_name(i), feed(pools.keys[i].clone()));
            feeds.insert(cache_value_name(i), feed(pools.values[i].clone()));
            for name in [cross_key_name(i), cross_value_name(i)] {
                feeds.insert(
                    name.clone(),
                    feed(npy_f32(&dir.join(format!("{name}.npy")))),
                );
            }
        }
        let graph = if call.action { action } else { video };
        let out = graph.run(feeds);

        let velocity = npy_f32(&call.dir.join("velocity.npy"));
        check_parity(&call, case, VELOCITY, out[VELOCITY].clone(), velocity);
        for i in 0..cfg.num_layers {
            for (output, pool, kind) in [
                (updated_key_name(i), &pools.keys[i], "key"),
                (updated_value_name(i), &pools.values[i], "value"),
            ] {
                let updated = &out[&output];
                assert_eq!(
                    updated.shape(),
                    pool.shape(),
                    "{} {output}",
                    call.dir.display()
                );
                let want = npy_f32(&call.dir.join(format!("new_{kind}_{i}.npy")));
                check_parity(&call, case, &output, at_slots(updated, &slots), want);
                assert_eq!(
                    outside_slots(updated, &slots),
                    outside_slots(pool, &slots),
                    "{} {output}: the slots not written keep their entries",
                    call.dir.display()
                );
            }
        }
        pools.apply(&call);
    }
    evicting
}

fn step_graphs(dir: &Path) -> (Graph, Graph) {
    let cfg = config();
    let w = weights();
    let video = write(
        build_video_step_graph(&cfg, &w, PREFIX).unwrap(),
        dir,
        "video_step",
    );
    let action = write(
        build_action_step_graph(&cfg, &w, PREFIX).unwrap(),
        dir,
        "action_step",
    );
    (video, action)
}

#[test]
fn step_graphs_replay_upstream_forwards_over_a_filling_and_evicting_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let (video, action) = step_graphs(tmp.path());
    let evicting = replay_case("b1", &video, &action);
    assert!(
        evicting >= 1,
        "the b1 sequence should run a forward on a full cache"
    );
}

#[test]
fn step_graphs_replay_upstream_forwards_with_a_cfg_batch_of_two_prompts() {
    let tmp = tempfile::tempdir().unwrap();
    let (video, action) = step_graphs(tmp.path());
    let _ = replay_case("b2_cfg", &video, &action);
}

#[test]
fn step_graphs_declare_the_contract_io() {
    let cfg = config();
    let w = weights();
    let video = build_video_step_graph(&cfg, &w, PREFIX).unwrap();
    let names: Vec<&str> = video.inputs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            NOISY_LATENTS,
            TIMESTEPS,
            ROPE_COS,
            ROPE_SIN,
            CACHE_BIAS,
            CACHE_SLOTS,
            "cache_key_0",
            "cache_value_0",
            "cache_key_1",
            "cache_value_1",
            "cross_key_0",
            "cross_value_0",
            "cross_key_1",
            "cross_value_1",
        ]
    );
    let action = build_action_step_graph(&cfg, &w, PREFIX).unwrap();
    assert_eq!(action.inputs[0].name, NOISY_ACTIONS);
    let outputs: Vec<&str> = action.outputs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        outputs,
        [
            VELOCITY,
            "updated_key_0",
            "updated_value_0",
            "updated_key_1",
            "updated_value_1"
        ]
    );
}
