//! `vjx run` and `vjx bench` on `--backend ort` with whichever ONNX Runtime ORT_DYLIB_PATH names:
//! they work and say which release they ran on. CI runs this file on several releases, with
//! VJX_EXPECT_ORT_VERSION set to the one it installed.

mod common;

use common::*;

/// The release the run must report: VJX_EXPECT_ORT_VERSION, else the one in ORT_DYLIB_PATH's
/// file name, else only that it is an ONNX Runtime 1.x.
fn expected_release() -> String {
    if let Ok(v) = std::env::var("VJX_EXPECT_ORT_VERSION") {
        return format!("ONNX Runtime {v} (");
    }
    let from_name = std::env::var("ORT_DYLIB_PATH").ok().and_then(|p| {
        let name = std::path::Path::new(&p)
            .file_name()?
            .to_string_lossy()
            .into_owned();
        let version = name.strip_prefix("libonnxruntime.so.")?.to_string();
        (version.split('.').count() == 3).then_some(version)
    });
    match from_name {
        Some(v) => format!("ONNX Runtime {v} ("),
        None => "ONNX Runtime 1.".to_string(),
    }
}

#[test]
fn run_on_ort_predicts_a_chunk_and_names_the_onnx_runtime_release() {
    let case = any_case();
    let obs = &observations(&case)[0];
    let out = vjx()
        .arg("run")
        .arg(exported(&case))
        .args(run_args(obs))
        .args(["--backend", "ort"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vjx run --backend ort failed: {}",
        stderr(&out)
    );
    let log = stderr(&out);
    assert!(
        log.contains(&expected_release()),
        "`{}` not in:\n{log}",
        expected_release()
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "no actions printed"
    );
}

#[test]
fn bench_reports_first_and_warm_start_and_the_library() {
    let out = vjx()
        .arg("bench")
        .arg(exported(&any_case()))
        .args([
            "--iters",
            "1",
            "--warmup",
            "0",
            "--json",
            "--backend",
            "ort",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = json["first_start_ms"].as_f64().unwrap();
    assert!(
        first > 0.0 && json["warm_start_ms"].as_f64().unwrap() > 0.0,
        "{json}"
    );
    assert_eq!(
        json["load_ms"].as_f64(),
        Some(first),
        "load_ms stays the first start"
    );
    assert_eq!(
        json["first_start_engine_cache"], "not_used",
        "the CPU has no TensorRT engines"
    );
    assert_eq!(json["runtime_library"]["name"], "ONNX Runtime");
    let version = json["runtime_library"]["version"].as_str().unwrap();
    assert!(
        format!("ONNX Runtime {version} (").starts_with(&expected_release()),
        "{version}"
    );
    assert_eq!(
        json["placements"].as_array().unwrap().len(),
        4,
        "one placement per graph, not per load"
    );
}

#[test]
fn an_unknown_trt_fp16_value_is_refused_with_the_choices() {
    let out = vjx()
        .arg("run")
        .arg(exported(&any_case()))
        .args(["--backend", "ort", "--trt-fp16", "half"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let log = stderr(&out);
    assert!(
        log.contains("half") && log.contains("auto") && log.contains("off"),
        "{log}"
    );
}
