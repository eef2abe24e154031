//! DexVLA end to end: every fixture case (the original repository's layout and the LeRobot
//! port's; FiLM on generated reasoning and TinyVLA's mean pool) exported and run through the
//! `vjx` CLI on tract and on ONNX Runtime's CPU provider matches the original repository's
//! FP32 evaluation at every stage: integer tensors (ids, grids, positions, generated tokens,
//! timesteps, the cropped 8-bit frames) exactly, float stages within relative L2 1e-4; an FP16
//! export within 1e-2 with the same generated tokens. INT8 is refused (docs/dexvla.md).

mod common;

use common::dexvla::*;
use common::*;
use ndarray::ArrayD;
use serde_json::Value;
use std::path::Path;

const FP32_BAR: f64 = 1e-4;

/// `vjx run --dump --json` on one observation with its injected DDIM noise: the JSON report
/// and the dump dir.
fn run_dumped(export: &Path, obs: &Path, backend: &str) -> (Value, tempfile::TempDir) {
    let dump = tempfile::tempdir().unwrap();
    let out = vjx()
        .arg("run")
        .arg(export)
        .args(observation_args(obs))
        .args(["--backend", backend, "--noise"])
        .arg(obs.join("noise.npy"))
        .arg("--dump")
        .arg(dump.path())
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vjx run --backend {backend} failed on {}: {}",
        obs.display(),
        stderr(&out)
    );
    (serde_json::from_slice(&out.stdout).unwrap(), dump)
}

/// The error of one dumped stage against upstream: 0 or ∞ for integer tensors, relative L2
/// for floats.
fn stage_error(expected: &Path, got: &Path) -> f64 {
    let stage = expected.file_stem().unwrap().to_string_lossy();
    if let Ok(e) = ndarray_npy::read_npy::<_, ArrayD<i64>>(expected) {
        let g: ArrayD<i64> = ndarray_npy::read_npy(got).unwrap();
        assert_eq!(g.shape(), e.shape(), "`{stage}` shape");
        return if g == e { 0.0 } else { f64::INFINITY };
    }
    if let Ok(e) = ndarray_npy::read_npy::<_, ArrayD<u8>>(expected) {
        let g: ArrayD<f32> = ndarray_npy::read_npy(got).unwrap();
        assert_eq!(g.shape(), e.shape(), "`{stage}` shape");
        let same = g.iter().zip(e.iter()).all(|(g, e)| *g == f32::from(*e));
        return if same { 0.0 } else { f64::INFINITY };
    }
    let e: ArrayD<f32> = ndarray_npy::read_npy(expected).unwrap();
    let g: ArrayD<f32> = ndarray_npy::read_npy(got).unwrap();
    assert_eq!(g.shape(), e.shape(), "`{stage}` shape");
    rel_l2(g.as_slice().unwrap(), e.as_slice().unwrap())
}

/// The largest relative L2 a float stage may have at `precision` (integer stages are exact
/// at every precision).
fn bar(precision: &str) -> f64 {
    match precision {
        "fp32" => FP32_BAR,
        "fp16" => 1e-2,
        other => panic!("no bar for precision {other}"),
    }
}

fn every_stage_matches_upstream(backend: &str) {
    every_stage_within_bar(backend, "fp32");
}

fn every_stage_within_bar(backend: &str, precision: &str) {
    let mut errors = StageErrors::default();
    for case in dexvla_cases() {
        let export = exported_dexvla_at(&case, precision);
        for obs in observations(&case) {
            let (_, dump) = run_dumped(&export, &obs, backend);
            let mut expected: Vec<_> = std::fs::read_dir(obs.join("expected"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "npy"))
                .collect();
            expected.sort();
            for exp in expected {
                let stage = exp.file_stem().unwrap().to_string_lossy().into_owned();
                let got = dump.path().join(format!("{stage}.npy"));
                assert!(got.is_file(), "{}: no `{stage}` dumped", obs.display());
                let err = stage_error(&exp, &got);
                errors.record(&stage, err, bar(precision), || {
                    format!("{}: {stage} {err:.3e}", obs.display())
                });
            }
        }
    }
    errors.finish(&format!("{backend} {precision} (DexVLA)"));
}

#[test]
fn every_dexvla_fixture_matches_upstream_at_every_stage_on_tract() {
    every_stage_matches_upstream("tract");
}

#[test]
fn every_dexvla_fixture_matches_upstream_at_every_stage_on_ort_cpu() {
    every_stage_matches_upstream("ort");
}

#[test]
fn fp16_export_stays_within_its_bar_on_tract() {
    every_stage_within_bar("tract", "fp16");
}

#[test]
fn fp16_export_stays_within_its_bar_on_ort_cpu() {
    every_stage_within_bar("ort", "fp16");
}

#[test]
fn int8_export_is_refused_with_the_reason() {
    let out = scratch().join("dexvla-int8-refused");
    let result = vjx()
        .args(["export", "--precision", "int8", "--checkpoint"])
        .arg(checkpoint_dir(&dexvla_case("reasoning_stop")))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!result.status.success());
    let err = stderr(&result);
    assert!(
        err.contains("DexVLA exports fp32 or fp16") && err.contains("docs/dexvla.md"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn the_json_report_carries_upstream_reasoning_text_and_why_it_stopped() {
    for (name, stop) in [
        ("reasoning_stop", "end_of_turn"),
        ("reasoning_limit", "token_limit"),
    ] {
        let case = dexvla_case(name);
        let obs = case.join("obs_0");
        let (report, _dump) = run_dumped(&exported_dexvla(&case), &obs, "tract");
        let text = std::fs::read_to_string(obs.join("expected/reasoning.txt")).unwrap();
        assert_eq!(report["reasoning"].as_str().unwrap(), text.trim(), "{name}");
        assert_eq!(report["reasoning_stop"], stop, "{name}");
        let generated: ArrayD<i64> =
            ndarray_npy::read_npy(obs.join("expected/generated_ids.npy")).unwrap();
        assert_eq!(report["reasoning_tokens"], generated.len(), "{name}");
    }
}

#[test]
fn tinyvla_generates_nothing_and_reports_no_reasoning() {
    let case = dexvla_case("tinyvla");
    let (report, dump) = run_dumped(&exported_dexvla(&case), &case.join("obs_0"), "tract");
    assert!(report.get("reasoning").is_none(), "{report}");
    assert!(!dump.path().join("generated_ids.npy").exists());
}

#[test]
fn both_layouts_record_their_policy_as_dexvla() {
    for name in ["reasoning_stop", "reasoning_limit"] {
        let manifest: Value = serde_json::from_str(
            &std::fs::read_to_string(exported_dexvla(&dexvla_case(name)).join("manifest.json"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["policy"]["type"], "dexvla", "{name}");
    }
}
