//! LingBot-VA host-side pieces against upstream LeRobot: the flow-matching scheduler, the
//! KV-cache slot bookkeeping, camera preprocessing and layouts, and the action chunk.
//! References: `fixtures/lingbot_host/`, written by `make_lingbot_host_reference.py`.

use ndarray::{s, Array3, Array4, Array5, ArrayD, ArrayView4, Ix3, Ix5};
use serde_json::Value;
use std::path::{Path, PathBuf};
use vjx_runtime::normalization::{FeatureNorm, NormMode};
use vjx_runtime::npy::read_f32;
use vjx_runtime::policy::lingbot_va::actions::{
    select_used_channels, zero_unused_channels, UsedChannels,
};
use vjx_runtime::policy::lingbot_va::camera::{
    camera_frame, resize_bilinear, robotwin_tshape, stack_cameras, vae_frames, width_concat,
};
use vjx_runtime::policy::lingbot_va::kv_cache::{CacheError, CacheUpdate, SlotCache};
use vjx_runtime::sampler::FlowMatchScheduler;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lingbot_host")
}

fn npy(rel: &str) -> ArrayD<f32> {
    read_f32(&fixtures().join(rel)).unwrap()
}

fn npy3(rel: &str) -> Array3<f32> {
    npy(rel).into_dimensionality::<Ix3>().unwrap()
}

fn npy5(rel: &str) -> Array5<f32> {
    npy(rel).into_dimensionality::<Ix5>().unwrap()
}

fn json(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(rel)).unwrap()).unwrap()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn rel_l2(out: &[f32], reference: &[f32]) -> f64 {
    assert_eq!(out.len(), reference.len());
    let diff: f64 = out
        .iter()
        .zip(reference)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    let norm: f64 = reference.iter().map(|b| f64::from(*b).powi(2)).sum();
    (diff / norm).sqrt()
}

fn flat(array: &ArrayD<f32>) -> Vec<f32> {
    array.iter().copied().collect()
}

// ---------------------------------------------------------------------------------------------
// Scheduler

const SCHEDULES: [(usize, f64, &str); 4] = [
    (20, 5.0, "n20_s5.0"),
    (25, 5.0, "n25_s5.0"),
    (50, 0.05, "n50_s0.05"),
    (50, 1.0, "n50_s1.0"),
];

#[test]
fn shifted_sigmas_and_loop_timesteps_match_upstream_bit_for_bit() {
    for (steps, shift, case) in SCHEDULES {
        let mut scheduler = FlowMatchScheduler::new(shift);
        scheduler.set_timesteps(steps);
        let sigmas = npy(&format!("scheduler/{case}/sigmas.npy"));
        let timesteps = npy(&format!("scheduler/{case}/timesteps.npy"));
        assert_eq!(
            bits(scheduler.sigmas()),
            bits(&flat(&sigmas)),
            "{case} sigmas"
        );
        assert_eq!(
            bits(&scheduler.timesteps_with_final_zero()),
            bits(&flat(&timesteps)),
            "{case} loop timesteps"
        );
    }
}

#[test]
fn euler_step_at_every_loop_timestep_matches_upstream_bit_for_bit() {
    for (steps, shift, case) in SCHEDULES {
        let mut scheduler = FlowMatchScheduler::new(shift);
        scheduler.set_timesteps(steps);
        let sample = flat(&npy(&format!("scheduler/{case}/sample.npy")));
        let velocity = flat(&npy(&format!("scheduler/{case}/velocity.npy")));
        let stepped = npy(&format!("scheduler/{case}/stepped.npy"));
        for (i, t) in scheduler
            .timesteps_with_final_zero()
            .into_iter()
            .enumerate()
        {
            let mut x = sample.clone();
            scheduler.step(&mut x, &velocity, t);
            let expected: Vec<f32> = stepped
                .index_axis(ndarray::Axis(0), i)
                .iter()
                .copied()
                .collect();
            assert_eq!(bits(&x), bits(&expected), "{case} step at t={t}");
        }
    }
}

#[test]
fn unshifted_grid_is_torch_linspace() {
    // With shift 1 the sigmas are linspace(1, 0, n + 1)[:-1] unchanged (s·σ/(1 + 0·σ) = σ).
    let table = json("linspace_1_0.json");
    for (count, values) in table.as_object().unwrap() {
        let count: usize = count.parse().unwrap();
        let expected: Vec<f32> = values
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let mut scheduler = FlowMatchScheduler::new(1.0);
        scheduler.set_timesteps(count - 1);
        assert_eq!(
            bits(scheduler.sigmas()),
            bits(&expected[..count - 1]),
            "linspace(1, 0, {count})"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// KV cache

fn bools(value: &Value) -> Vec<bool> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_bool().unwrap())
        .collect()
}

fn indices(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

/// One block's pools `[batch, size, heads, head_dim]`, written as the step graph writes them.
struct Pools {
    keys: Array4<f32>,
    values: Array4<f32>,
}

impl Pools {
    fn zeros(shape: [usize; 4]) -> Self {
        Pools {
            keys: Array4::zeros(shape),
            values: Array4::zeros(shape),
        }
    }

    /// Token j of every batch row (`[batch, slots.len(), heads, head_dim]`) goes to `slots[j]`.
    fn write(&mut self, slots: &[usize], new_keys: &[f32], new_values: &[f32]) {
        let [batch, _, heads, head_dim] = *self.keys.shape() else {
            unreachable!("Array4")
        };
        let shape = (batch, slots.len(), heads, head_dim);
        for (pool, new) in [(&mut self.keys, new_keys), (&mut self.values, new_values)] {
            let new = ArrayView4::from_shape(shape, new).unwrap();
            for (j, &slot) in slots.iter().enumerate() {
                pool.slice_mut(s![.., slot, .., ..])
                    .assign(&new.slice(s![.., j, .., ..]));
            }
        }
    }
}

#[test]
fn slot_cache_replays_upstream_wan_attention_trace() {
    let trace = json("kv/trace.json");
    let dim = |key: &str| trace[key].as_u64().unwrap() as usize;
    let (size, batch, heads, head_dim) = (dim("size"), dim("batch"), dim("heads"), dim("head_dim"));
    let new_keys = npy("kv/new_keys.npy");
    let new_values = npy("kv/new_values.npy");
    let k_pools = npy("kv/k_pools.npy");
    let v_pools = npy("kv/v_pools.npy");

    let mut cache = SlotCache::new(size);
    let mut pools = Pools::zeros([batch, size, heads, head_dim]);
    let mut token_offset = 0;
    for (n, step) in trace["steps"].as_array().unwrap().iter().enumerate() {
        let tokens = step["tokens"].as_u64().unwrap() as usize;
        let what = format!("step {n}: {} of {tokens} tokens", step["op"]);
        match step["op"].as_str().unwrap() {
            "clear_pred" => cache.clear_pred(),
            "forward" => {
                let update = CacheUpdate::from_upstream(step["update_cache"].as_i64().unwrap());
                match cache.begin(tokens) {
                    Err(err) => {
                        assert!(step.get("error").is_some(), "{what}: unexpected {err}");
                        assert_eq!(
                            err,
                            CacheError::Exhausted {
                                needed: tokens,
                                free: size,
                                size
                            }
                        );
                    }
                    Ok(pending) => {
                        assert_eq!(pending.slots(), indices(&step["slots"]), "{what} slots");
                        // Upstream attends over its mask with the new slots set; the graph gets
                        // the same set without them, plus the new tokens themselves.
                        let mut expected_bias = bools(&step["mask_at_attention"]);
                        for &slot in pending.slots() {
                            expected_bias[slot] = false;
                        }
                        let expected_bias: Vec<f32> = expected_bias
                            .iter()
                            .map(|&v| if v { 0.0 } else { f32::NEG_INFINITY })
                            .collect();
                        assert_eq!(pending.bias(), expected_bias, "{what} bias");

                        let range = token_offset..token_offset + tokens;
                        let slice = |a: &ArrayD<f32>| {
                            flat(
                                &a.slice_axis(ndarray::Axis(1), range.clone().into())
                                    .to_owned(),
                            )
                        };
                        let (k, v) = (slice(&new_keys), slice(&new_values));
                        token_offset += tokens;
                        if let Some(slots) = pending.finish(update) {
                            pools.write(&slots, &k, &v);
                        }
                    }
                }
            }
            other => panic!("unknown op {other}"),
        }
        let after = &step["after"];
        assert_eq!(cache.valid(), bools(&after["mask"]), "{what} mask");
        let ids: Vec<i64> = after["id"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(cache.ids(), ids, "{what} ids");
        assert_eq!(cache.is_pred(), bools(&after["is_pred"]), "{what} is_pred");

        // Valid slots hold exactly upstream's K/V (discarded calls' slots are never read).
        for (pool, reference) in [(&pools.keys, &k_pools), (&pools.values, &v_pools)] {
            let reference = reference.index_axis(ndarray::Axis(0), n);
            for slot in (0..size).filter(|&s| cache.valid()[s]) {
                for b in 0..batch {
                    let ours = pool.slice(ndarray::s![b, slot, .., ..]);
                    let theirs = reference.slice(ndarray::s![b, slot, .., ..]);
                    assert_eq!(ours, theirs, "{what} pool row b={b} slot={slot}");
                }
            }
        }
    }
    assert_eq!(
        token_offset,
        new_keys.shape()[1],
        "every recorded forward replayed"
    );
}

#[test]
fn valid_count_and_bias_follow_the_mask() {
    let mut cache = SlotCache::new(5);
    let _ = cache.begin(3).unwrap().finish(CacheUpdate::KeepPredicted);
    let _ = cache.begin(1).unwrap().finish(CacheUpdate::KeepObserved);
    assert_eq!(cache.valid_count(), 4);
    cache.clear_pred();
    assert_eq!(cache.valid_count(), 1);
    let inf = f32::NEG_INFINITY;
    assert_eq!(cache.bias(), vec![inf, inf, inf, 0.0, inf]);
}

// ---------------------------------------------------------------------------------------------
// Camera

#[test]
fn bilinear_resize_matches_torch_interpolate() {
    for (input, h, w) in [
        ("a", 16, 20),
        ("a", 17, 29),
        ("a", 23, 31),
        ("a", 30, 17),
        ("b", 32, 40),
        ("b", 7, 50),
        ("c", 16, 16),
    ] {
        let image = npy3(&format!("camera/input_{input}.npy"));
        let reference = npy(&format!("camera/resize_{input}_{h}x{w}.npy"));
        let out = resize_bilinear(image.view(), h, w);
        assert_eq!(out.shape(), reference.shape());
        let err = rel_l2(out.as_slice().unwrap(), &flat(&reference));
        assert!(err <= 1e-6, "{input} -> {h}x{w}: rel L2 {err:e}");
    }
}

#[test]
fn camera_frame_with_hflip_matches_upstream_camera_frame() {
    let image = npy3("camera/input_a.npy");
    let reference = npy("camera/camera_frame_a_hflip_16x20.npy"); // [1, 3, 1, H, W]
    let out = camera_frame(image.view(), [16, 20], true);
    let err = rel_l2(out.as_slice().unwrap(), &flat(&reference));
    assert!(err <= 1e-6, "rel L2 {err:e}");
}

#[test]
fn two_camera_clip_matches_upstream_encode_frames_input() {
    let a = npy3("camera/input_a.npy");
    let c = npy3("camera/input_c.npy");
    let c_crop = c.slice(ndarray::s![.., ..20, ..25]);
    let cam0 = vae_frames(&[a.view(), c_crop], [16, 16], false).unwrap();
    let cam1 = vae_frames(&[c.view(), a.view()], [16, 16], false).unwrap();
    let clips = stack_cameras(&[cam0, cam1]).unwrap();
    let reference = npy("camera/vae_frames_2cam_2t_16x16.npy");
    assert_eq!(clips.shape(), reference.shape());
    let err = rel_l2(
        clips.as_standard_layout().as_slice().unwrap(),
        &flat(&reference),
    );
    assert!(err <= 1e-6, "rel L2 {err:e}");
}

#[test]
fn width_concat_matches_upstream_layout() {
    let latents = npy5("layout/width_concat_in.npy");
    let out = width_concat(latents.view());
    assert_eq!(out.into_dyn(), npy("layout/width_concat_out.npy"));
}

#[test]
fn robotwin_tshape_matches_upstream_layout() {
    let head = npy5("layout/tshape_head.npy");
    let wrists = npy5("layout/tshape_wrists.npy");
    let out = robotwin_tshape(head.view(), wrists.view()).unwrap();
    assert_eq!(out.into_dyn(), npy("layout/tshape_out.npy"));
}

// ---------------------------------------------------------------------------------------------
// Actions

fn used_channels(name: &str) -> UsedChannels {
    let ids = indices(&json("actions/meta.json")[name]);
    UsedChannels::new(ids, 30).unwrap()
}

#[test]
fn returned_chunk_matches_upstream_predict_action_chunk() {
    let actions = npy3("actions/model_actions.npy");
    for name in ["libero", "robotwin"] {
        for first in [true, false] {
            let chunk = select_used_channels(actions.view(), &used_channels(name), first).unwrap();
            let reference = npy(&format!("actions/{name}_first{}.npy", u8::from(first)));
            assert_eq!(chunk.into_dyn(), reference, "{name} first={first}");
        }
    }
}

#[test]
fn zeroing_unused_channels_matches_upstream_bit_for_bit() {
    for name in ["libero", "robotwin"] {
        let mut actions = npy3("actions/model_actions.npy");
        zero_unused_channels(actions.view_mut(), &used_channels(name)).unwrap();
        let reference = npy(&format!("actions/{name}_zeroed.npy"));
        assert_eq!(
            bits(actions.as_slice().unwrap()),
            bits(&flat(&reference)),
            "{name}"
        );
    }
}

#[test]
fn quantile_unnormalization_matches_lerobot_unnormalizer() {
    let meta = json("actions/meta.json");
    let floats = |key: &str| -> Vec<f32> {
        meta[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    let norm = FeatureNorm {
        mode: NormMode::Quantiles,
        q01: Some(floats("q01")),
        q99: Some(floats("q99")),
        ..Default::default()
    };
    let mut chunk = npy("actions/libero_first1.npy");
    let width = chunk.shape()[1];
    for row in chunk.as_slice_mut().unwrap().chunks_mut(width) {
        norm.unnormalize(row);
    }
    let reference = npy("actions/libero_first1_unnormalized.npy");
    assert_eq!(bits(&flat(&chunk)), bits(&flat(&reference)));
}
