//! `vjx check` on real exports: every fp32 and fp16 graph of every fixture case is taken whole
//! by the ONNX parsers of TensorRT 10.3 (JetPack 6.1/6.2) and 8.6 (JetPack 6.0); an int8 export
//! is reported with its dynamically quantized products, which ONNX Runtime runs on the CPU; bad
//! input gets a clear error and a non-zero exit.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const TARGETS: [&str; 2] = ["tensorrt-10.3", "tensorrt-8.6"];

fn check_json(export: &Path, target: &str) -> Value {
    let out = vjx()
        .arg("check")
        .arg(export)
        .args(["--json", "--target", target])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vjx check {} failed: {}",
        export.display(),
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// "<export> on <target>: <graph>: <op> <node>: <reason>" for every node or opset that falls off.
fn refusals(export: &Path, target: &str) -> Vec<String> {
    let report = check_json(export, target);
    let mut found = Vec::new();
    for g in report["graphs"].as_array().unwrap() {
        let graph = g["role"].as_str().unwrap();
        if g["opset_supported"] != Value::Bool(true) {
            found.push(format!(
                "{} on {target}: {graph}: opset {}",
                export.display(),
                g["opset"]
            ));
        }
        for u in g["unsupported"].as_array().unwrap() {
            let text = |key: &str| u[key].as_str().unwrap_or("").to_string();
            found.push(format!(
                "{} on {target}: {graph}: {} {}: {}",
                export.display(),
                text("op"),
                text("node"),
                text("reason")
            ));
        }
    }
    found
}

fn lingbot_cases() -> Vec<PathBuf> {
    let root = repo_root().join("tests/fixtures/lingbot_va");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("checkpoint/config.json").is_file())
        .collect();
    cases.sort();
    assert_eq!(
        cases.len(),
        4,
        "the four LingBot-VA fixture cases under {}",
        root.display()
    );
    cases
}

#[test]
fn every_fp32_and_fp16_vla_jepa_export_is_taken_whole_by_tensorrt_10_3_and_8_6() {
    let cases = cases();
    let names: Vec<String> = cases
        .iter()
        .map(|c| c.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "no_resize_nostate",
            "outliers",
            "real_vocab",
            "two_cam_resize",
            "world_model"
        ],
        "the VLA-JEPA fixture cases"
    );
    let mut found = Vec::new();
    for case in &cases {
        for precision in ["fp32", "fp16"] {
            let export = exported_at(case, precision);
            for target in TARGETS {
                found.extend(refusals(&export, target));
            }
        }
    }
    assert!(
        found.is_empty(),
        "nodes off TensorRT:\n{}",
        found.join("\n")
    );
}

/// LingBot-VA exports only fp32 today (`vjx export --precision fp16` refuses it).
#[test]
fn every_lingbot_va_export_is_taken_whole_by_tensorrt_10_3_and_8_6() {
    let mut found = Vec::new();
    for case in lingbot_cases() {
        let export = exported_lingbot(&case);
        for target in TARGETS {
            found.extend(refusals(&export, target));
        }
    }
    assert!(
        found.is_empty(),
        "nodes off TensorRT:\n{}",
        found.join("\n")
    );
}

#[test]
fn an_int8_export_names_its_dynamic_quantization_nodes_and_their_cpu_islands() {
    let export = exported_at(&any_case(), "int8");
    let report = check_json(&export, "tensorrt-10.3");
    let unsupported: Vec<&Value> = report["graphs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["unsupported"].as_array().unwrap())
        .collect();
    let of_op = |op: &str| {
        unsupported
            .iter()
            .filter(|u| u["op"] == op)
            .copied()
            .collect::<Vec<_>>()
    };
    let (quantize, matmul) = (of_op("DynamicQuantizeLinear"), of_op("MatMulInteger"));
    assert!(!quantize.is_empty(), "no DynamicQuantizeLinear reported");
    assert_eq!(
        quantize.len(),
        matmul.len(),
        "one MatMulInteger per quantized activation"
    );
    for u in quantize.iter().chain(&matmul) {
        assert!(!u["node"].as_str().unwrap().is_empty());
        assert!(
            u["reason"]
                .as_str()
                .unwrap()
                .contains("has no importer for"),
            "{u}"
        );
        assert_eq!(u["fallback"], "cpu", "{u}");
    }
    assert_eq!(
        matmul[0]["fallback_reason"],
        "the CUDA provider's MatMulInteger takes i8 on its input 0, this node has u8"
    );
    assert_eq!(
        quantize[0]["fallback_reason"],
        "the CUDA provider has no DynamicQuantizeLinear kernel"
    );
    assert_eq!(report["summary"]["falls_off_tensorrt"], true);
    assert_eq!(
        report["summary"]["unsupported"].as_u64().unwrap() as usize,
        unsupported.len()
    );
}

#[test]
fn strict_fails_an_int8_export_and_passes_an_fp32_one() {
    let int8 = exported_at(&any_case(), "int8");
    let out = vjx()
        .arg("check")
        .arg(&int8)
        .arg("--strict")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "--strict must fail when nodes fall off TensorRT"
    );
    let err = stderr(&out);
    assert!(
        err.contains("--strict:") && err.contains("fall off TensorRT 10.3"),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("DynamicQuantizeLinear"),
        "the report still prints"
    );

    let without = vjx().arg("check").arg(&int8).output().unwrap();
    assert!(
        without.status.success(),
        "without --strict the check reports and exits 0: {}",
        stderr(&without)
    );

    let fp32 = exported_at(&any_case(), "fp32");
    let out = vjx()
        .arg("check")
        .arg(&fp32)
        .arg("--strict")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn the_human_report_has_one_block_per_graph_and_a_summary_line() {
    let export = exported_at(&any_case(), "fp32");
    let out = vjx().arg("check").arg(&export).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("TensorRT 10.3 (JetPack 6.1/6.2) check of "),
        "{text}"
    );
    for role in ["vision", "text", "dit_step"] {
        let header = format!("{role} ({role}.onnx): opset 17, ");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&header) && l.ends_with("all taken by TensorRT 10.3")),
            "no block for {role}:\n{text}"
        );
    }
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("summary: ") && last.contains(" 0 not taken by TensorRT 10.3;"),
        "{last}"
    );
}

#[test]
fn dynamic_inputs_show_the_profiles_the_runtime_gives() {
    let vla = check_json(&exported_at(&any_case(), "fp32"), "tensorrt-10.3");
    let graph = |report: &Value, role: &str| {
        report["graphs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["role"] == role)
            .cloned()
            .unwrap()
    };
    let text = graph(&vla, "text");
    let ids = text["dynamic_inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "input_ids")
        .unwrap();
    assert_eq!(ids["shape"], serde_json::json!(["seq"]));
    let (min, opt, max) = (
        ids["profile"]["min"][0].as_u64().unwrap(),
        ids["profile"]["opt"][0].as_u64().unwrap(),
        ids["profile"]["max"][0].as_u64().unwrap(),
    );
    assert!(
        min < opt && opt < max,
        "the prompt length profile {min} < {opt} < {max}"
    );
    assert!(
        graph(&vla, "dit_step")["dynamic_inputs"]
            .as_array()
            .unwrap()
            .is_empty(),
        "dit_step is fully static"
    );

    let lingbot = check_json(&exported_lingbot(&lingbot_cases()[0]), "tensorrt-10.3");
    let action = graph(&lingbot, "action_step");
    let inputs = action["dynamic_inputs"].as_array().unwrap();
    assert!(
        inputs.iter().any(|d| d["name"] == "cache_bias"),
        "the KV cache length is open: {inputs:?}"
    );
    assert!(
        inputs.iter().all(|d| d["profile"].is_null()),
        "LingBot-VA is loaded without profiles"
    );
    assert_eq!(
        lingbot["summary"]["dynamic_inputs_without_profile"], lingbot["summary"]["dynamic_inputs"],
        "every LingBot-VA dynamic input is reported without a profile"
    );
}

/// TensorRT 8.5 (JetPack 5.1) has no LayerNormalization importer; the graphs write their norms
/// with plain ops, so 8.5 takes every node too.
#[test]
fn tensorrt_8_5_takes_every_node_of_the_fp32_and_fp16_exports() {
    let mut found = Vec::new();
    for precision in ["fp32", "fp16"] {
        found.extend(refusals(
            &exported_at(&any_case(), precision),
            "tensorrt-8.5",
        ));
    }
    found.extend(refusals(
        &exported_lingbot(&lingbot_cases()[0]),
        "tensorrt-8.5",
    ));
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn bad_input_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-export-here");
    let out = vjx().arg("check").arg(&missing).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("{}: no such directory", missing.display())),
        "{}",
        stderr(&out)
    );

    let out = vjx().arg("check").arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no manifest.json"),
        "{}",
        stderr(&out)
    );

    let out = vjx()
        .arg("check")
        .arg(dir.path())
        .args(["--target", "tensorrt-7.1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("tensorrt-7.1") && err.contains("tensorrt-10.3"),
        "{err}"
    );

    let broken = dir.path().join("broken");
    copy_tree(&exported_at(&any_case(), "fp32"), &broken);
    std::fs::write(broken.join("text.onnx"), b"\xff\xff\xff not a protobuf").unwrap();
    let out = vjx().arg("check").arg(&broken).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}: not an ONNX model",
            broken.join("text.onnx").display()
        )),
        "{err}"
    );
}
