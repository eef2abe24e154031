//! The DexVLA fixtures (`tests/fixtures/dexvla/`): cases in either checkpoint layout, their
//! exports, and their observations as `vjx` arguments.

use super::{repo_root, scratch, stderr, vjx};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub fn dexvla_root() -> PathBuf {
    repo_root().join("tests/fixtures/dexvla")
}

pub fn case_json(case: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(case.join("case.json")).unwrap()).unwrap()
}

/// Every case with a case.json; fails the test when there are none.
pub fn dexvla_cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dexvla_root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 3, "DexVLA fixture cases missing");
    cases
}

pub fn dexvla_case(name: &str) -> PathBuf {
    let case = dexvla_root().join(name);
    assert!(
        case.join("case.json").is_file(),
        "fixture case {name} missing"
    );
    case
}

/// The checkpoint dir `vjx export` is pointed at in this case's layout.
pub fn checkpoint_dir(case: &Path) -> PathBuf {
    let json = case_json(case);
    match json["layout"].as_str().unwrap() {
        "up" => case.join(json["paths"]["checkpoint"].as_str().unwrap()),
        _ => case.join("lerobot"),
    }
}

/// Exports `case` at FP32 once per test binary, with the case's generation limit.
pub fn exported_dexvla(case: &Path) -> PathBuf {
    exported_dexvla_at(case, "fp32")
}

pub fn exported_dexvla_at(case: &Path, precision: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let name = case.file_name().unwrap().to_string_lossy().into_owned();
    let out = scratch().join(format!("dexvla-{name}-{precision}"));
    if !out.join("manifest.json").is_file() {
        let mut export = vjx();
        export
            .args(["export", "--json", "--precision", precision, "--checkpoint"])
            .arg(checkpoint_dir(case))
            .arg("--out")
            .arg(&out);
        if let Some(limit) = case_json(case)["max_new_tokens"].as_u64() {
            export.args(["--max-new-tokens", &limit.to_string()]);
        }
        let result = export.output().unwrap();
        assert!(
            result.status.success(),
            "export of {name} failed: {}",
            stderr(&result)
        );
    }
    out
}

/// A fixture observation as `vjx` arguments:
/// `--image observation.images.<camera>=<png> ... --state ... --task ...`.
pub fn observation_args(obs: &Path) -> Vec<String> {
    let inputs: Value =
        serde_json::from_str(&std::fs::read_to_string(obs.join("inputs.json")).unwrap()).unwrap();
    let mut args = Vec::new();
    let keys = inputs["camera_keys"].as_array().unwrap();
    for (key, file) in keys.iter().zip(inputs["cameras"].as_array().unwrap()) {
        args.push("--image".to_string());
        args.push(format!(
            "observation.images.{}={}",
            key.as_str().unwrap(),
            obs.join(file.as_str().unwrap()).display()
        ));
    }
    let state: Vec<String> = inputs["state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap().to_string())
        .collect();
    args.push(format!("--state={}", state.join(",")));
    args.push("--task".to_string());
    args.push(inputs["task"].as_str().unwrap().to_string());
    args
}
