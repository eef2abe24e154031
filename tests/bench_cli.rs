//! `vjx bench --json` and `vjx export --json` report what scripts read.

mod common;

use common::*;

fn bench_json(export: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let out = vjx()
        .arg("bench")
        .arg(export)
        .args(["--iters", "3", "--warmup", "0", "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vjx bench {extra:?} failed: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bench_json_has_latency_percentiles_stages_rates_and_memory() {
    let json = bench_json(
        &exported(&any_case()),
        &["--backend", "tract", "--threads", "1"],
    );
    assert_eq!(json["backend"], "tract");
    assert_eq!(json["device"], "cpu");
    assert_eq!(json["precision"], "fp32");
    assert_eq!(json["threads"], 1);
    assert_eq!(json["iters"], 3);
    let l = &json["latency_ms"];
    let (min, p50, p90, p99, max) = (
        l["min"].as_f64().unwrap(),
        l["p50"].as_f64().unwrap(),
        l["p90"].as_f64().unwrap(),
        l["p99"].as_f64().unwrap(),
        l["max"].as_f64().unwrap(),
    );
    assert!(
        0.0 < min && min <= p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
        "{l}"
    );
    for stage in ["preprocess", "vision", "text", "dit_step0", "postprocess"] {
        assert!(
            json["stages_ms"][stage]["p50"].as_f64().is_some(),
            "stage {stage} missing"
        );
    }
    let chunks_per_s = json["chunks_per_s"].as_f64().unwrap();
    assert!((chunks_per_s - 1e3 / p50).abs() < 1e-9 * chunks_per_s.max(1.0));
    let n = json["n_action_steps"].as_f64().unwrap();
    assert!((json["control_hz"].as_f64().unwrap() - n * chunks_per_s).abs() < 1e-6);
    assert!(json["peak_rss_mb"].as_f64().unwrap() > 0.0);
    assert!(json["first_call_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_on_ort_auto_reports_where_each_graph_ran() {
    let json = bench_json(
        &exported(&any_case()),
        &["--backend", "ort", "--device", "auto"],
    );
    let placements = json["placements"].as_array().unwrap();
    let graphs: Vec<&str> = placements
        .iter()
        .map(|p| p["graph"].as_str().unwrap())
        .collect();
    assert_eq!(
        graphs,
        [
            "vision.onnx",
            "text.onnx",
            "dit_condition.onnx",
            "dit_step.onnx"
        ]
    );
    // Without a GPU build of ONNX Runtime (or without a GPU) each graph falls back to the CPU
    // and says why TensorRT and CUDA were passed over; on a GPU host it lands on one of them.
    for p in placements {
        let fallbacks = p["fallbacks"].as_array().unwrap();
        match p["provider"].as_str().unwrap() {
            "CPUExecutionProvider" => assert_eq!(fallbacks.len(), 2, "{p}"),
            "CUDAExecutionProvider" => assert_eq!(fallbacks.len(), 1, "{p}"),
            "TensorrtExecutionProvider" => assert!(fallbacks.is_empty(), "{p}"),
            other => panic!("unknown provider {other}: {p}"),
        }
    }
}

#[test]
fn bench_reports_the_exports_precision() {
    let json = bench_json(&exported_at(&any_case(), "int8"), &["--backend", "ort"]);
    assert_eq!(json["precision"], "int8");
}

#[test]
fn export_json_reports_precision_weight_bytes_time_and_memory() {
    let case = any_case();
    let dir = tempfile::tempdir().unwrap();
    let out = vjx()
        .args(["export", "--json", "--precision", "fp16", "--checkpoint"])
        .arg(case.join("checkpoint"))
        .arg("--backbone")
        .arg(case.join("backbone"))
        .arg("--out")
        .arg(dir.path().join("e"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["precision"], "fp16");
    let graphs_bytes: u64 = json["graphs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["weight_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(json["weight_bytes"].as_u64().unwrap(), graphs_bytes);
    assert!(json["seconds"].as_f64().unwrap() > 0.0);
    assert!(json["peak_rss_mb"].as_f64().unwrap() > 0.0);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("e/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["precision"], "fp16");
}

#[test]
fn an_unknown_precision_is_refused() {
    let case = any_case();
    let out = vjx()
        .args(["export", "--precision", "int4", "--checkpoint"])
        .arg(case.join("checkpoint"))
        .arg("--out")
        .arg(scratch().join("never"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("int4"), "{}", stderr(&out));
    assert!(!scratch().join("never").exists());
}
