//! The samplers against upstream: DDIM against diffusers' `DDIMScheduler` on a recorded
//! trajectory (`fixtures/ddim_reference.json`, from `make_ddim_reference.py`).

use serde_json::Value;
use std::path::Path;
use vjx_runtime::sampler::{Ddim, DdimConfig, Sampler};

fn reference() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ddim_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn ddim_has_diffusers_alphas_and_leading_timesteps() {
    let r = reference();
    let ddim = Ddim::new(DdimConfig::default(), 10);
    assert_eq!(
        ddim.alphas_cumprod(),
        floats(&r["alphas_cumprod"]).as_slice()
    );
    let want: Vec<usize> = r["timesteps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(ddim.integer_timesteps(), want.as_slice());
    assert_eq!(
        ddim.integer_timesteps(),
        &[90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    );
}

#[test]
fn ddim_follows_diffusers_step_by_step_with_clipping() {
    let r = reference();
    let ddim = Ddim::new(DdimConfig::default(), 10);
    let mut x = floats(&r["start"]);
    let outputs = r["model_outputs"].as_array().unwrap();
    let samples = r["samples"].as_array().unwrap();
    for (i, (eps, want)) in outputs.iter().zip(samples).enumerate() {
        ddim.step(i, &mut x, &floats(eps));
        let diff = max_abs_diff(&x, &floats(want));
        assert!(diff <= 1e-5, "step {i}: max |Δ| {diff}");
    }
}

#[test]
fn ddim_without_clipping_leaves_the_clean_estimate_unbounded() {
    let clipped = Ddim::new(DdimConfig::default(), 10);
    let free = Ddim::new(
        DdimConfig {
            clip_sample_range: None,
            ..DdimConfig::default()
        },
        10,
    );
    // At t = 0 with ᾱ_prev = 1 the step returns the clean estimate itself.
    let (mut a, mut b) = ([3.0f32], [3.0f32]);
    clipped.step(9, &mut a, &[0.0]);
    free.step(9, &mut b, &[0.0]);
    assert_eq!(a, [1.0]);
    assert!(b[0] > 2.9, "{b:?}");
}
