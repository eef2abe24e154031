//! Shared helpers for the end-to-end tests: fixture cases, one cached export per case, the
//! `vjx` binary, and the relative L2 error.
#![allow(dead_code)]

pub mod dexvla;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures_root() -> PathBuf {
    repo_root().join("tests/fixtures/vla_jepa")
}

/// Every fixture case; fails the test when there are none.
pub fn cases() -> Vec<PathBuf> {
    let root = fixtures_root();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("fixtures missing at {}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("checkpoint/config.json").is_file())
        .collect();
    cases.sort();
    assert!(
        !cases.is_empty(),
        "no fixture cases under {}",
        root.display()
    );
    cases
}

pub fn case(name: &str) -> PathBuf {
    let p = fixtures_root().join(name);
    assert!(
        p.join("checkpoint/config.json").is_file(),
        "fixture case {name} missing"
    );
    p
}

/// The first case (alphabetically): the one the bad-input tests break in various ways.
pub fn any_case() -> PathBuf {
    cases().into_iter().next().unwrap()
}

pub fn observations(case: &Path) -> Vec<PathBuf> {
    let mut obs: Vec<PathBuf> = std::fs::read_dir(case)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("obs_"))
        .collect();
    obs.sort();
    assert!(!obs.is_empty(), "no obs_* dirs in {}", case.display());
    obs
}

pub fn vjx() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vjx"))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A scratch dir kept for the whole test binary run.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// Exports `case` at FP32 once per test binary and returns the export dir.
pub fn exported(case: &Path) -> PathBuf {
    exported_at(case, "fp32")
}

/// Exports `case` at `precision` (fp32, fp16, int8) once per test binary.
pub fn exported_at(case: &Path, precision: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let name = case.file_name().unwrap().to_string_lossy().into_owned();
    let out = scratch().join(format!("export-{name}-{precision}"));
    if !out.join("manifest.json").is_file() {
        let status = vjx()
            .args(["export", "--json", "--precision", precision, "--checkpoint"])
            .arg(case.join("checkpoint"))
            .arg("--backbone")
            .arg(case.join("backbone"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "export of {name} failed: {}",
            stderr(&status)
        );
    }
    out
}

/// The observation of a fixture as `vjx run` arguments: `--image k=path ... --state ... --task ...`.
pub fn run_args(obs: &Path) -> Vec<String> {
    let inputs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(obs.join("inputs.json")).unwrap()).unwrap();
    let mut args = Vec::new();
    for (key, file) in inputs["images"].as_object().unwrap() {
        args.push("--image".to_string());
        args.push(format!(
            "{key}={}",
            obs.join(file.as_str().unwrap()).display()
        ));
    }
    if let Some(state) = inputs["state"].as_array() {
        let values: Vec<String> = state
            .iter()
            .map(|v| format!("{}", v.as_f64().unwrap()))
            .collect();
        args.push(format!("--state={}", values.join(",")));
    }
    if let Some(task) = inputs["task"].as_str() {
        args.push("--task".to_string());
        args.push(task.to_string());
    }
    args
}

/// ‖out − ref‖ / ‖ref‖.
pub fn rel_l2(out: &[f32], reference: &[f32]) -> f64 {
    assert_eq!(out.len(), reference.len(), "length mismatch");
    let (mut num, mut den) = (0f64, 0f64);
    for (o, r) in out.iter().zip(reference) {
        num += ((*o - *r) as f64).powi(2);
        den += (*r as f64).powi(2);
    }
    (num / den.max(1e-30)).sqrt()
}

/// Temp dirs an interrupted or failed export could leave beside `out`.
pub fn leftover_staging_dirs(parent: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(parent)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with(".vjx-export-")
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A LingBot-VA fixture case dir (`tests/fixtures/lingbot_va/<name>`).
pub fn lingbot_case(name: &str) -> PathBuf {
    let p = repo_root().join("tests/fixtures/lingbot_va").join(name);
    assert!(
        p.join("checkpoint/config.json").is_file(),
        "LingBot-VA fixture case {name} missing"
    );
    p
}

/// Exports a LingBot-VA `case` (its checkpoint with its `wan/` backbone) once per test binary.
pub fn exported_lingbot(case: &Path) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = scratch().join(format!(
        "lingbot-{}",
        case.file_name().unwrap().to_string_lossy()
    ));
    if !out.join("manifest.json").is_file() {
        let result = vjx()
            .args(["export", "--json", "--checkpoint"])
            .arg(case.join("checkpoint"))
            .arg("--backbone")
            .arg(case.join("wan"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "export of {} failed: {}",
            case.display(),
            stderr(&result)
        );
    }
    out
}

/// Copies a dir tree (a fixture or an export) that a test may then break.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

/// A copy of `export` whose every graph runs all its float math in f16
/// (`vjx_graphs::half_everywhere`: what TensorRT's FP16 mode may do to an FP32 graph), weights
/// inline, with the manifest's file list and checksums updated to match.
pub fn half_everywhere_copy(export: &Path) -> PathBuf {
    let name = export.file_name().unwrap().to_string_lossy().into_owned();
    let out = scratch().join(format!("{name}-half-everywhere"));
    if out.join("manifest.json").is_file() {
        return out;
    }
    copy_tree(export, &out);
    edit_manifest(&out, |manifest| {
        let roles: Vec<String> = manifest["graphs"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        for role in roles {
            let entry = &mut manifest["graphs"][&role];
            let file = entry["file"].as_str().unwrap().to_string();
            vjx_graphs::half_everywhere::write_half_everywhere(
                &export.join(&file),
                &out.join(&file),
            )
            .unwrap();
            if let Some(data) = entry["data_file"].as_str().map(str::to_string) {
                std::fs::remove_file(out.join(&data)).unwrap();
                manifest["files"].as_object_mut().unwrap().remove(&data);
            }
            manifest["graphs"][&role]["data_file"] = serde_json::Value::Null;
            let sha = vjx_runtime::manifest::sha256_file(&out.join(&file)).unwrap();
            manifest["files"][&file] = serde_json::Value::String(sha);
        }
    });
    out
}

/// Rewrites the manifest of `export` after `edit`, with its own checksum recomputed: what a
/// hand edit needs to get past that checksum, so that a test reaches what lies behind it.
pub fn edit_manifest(export: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    use vjx_runtime::manifest::{seal, CHECKSUM_KEY};
    let path = export.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut manifest);
    manifest.as_object_mut().unwrap().remove(CHECKSUM_KEY);
    let text = serde_json::to_string_pretty(&manifest).unwrap();
    std::fs::write(&path, seal(&text).unwrap()).unwrap();
}

/// Rewrites `file` of `export` after `edit`, with its checksum in the manifest (and the
/// manifest's own) recomputed.
pub fn edit_export_json(export: &Path, file: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = export.join(file);
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut json);
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let sha = vjx_runtime::manifest::sha256_file(&path).unwrap();
    edit_manifest(export, |manifest| manifest["files"][file] = sha.into());
}

/// The worst error of each stage over a parity run, and the stages over their bar.
#[derive(Default)]
pub struct StageErrors {
    worst: std::collections::BTreeMap<String, f64>,
    failures: Vec<String>,
}

impl StageErrors {
    /// Records `stage`'s `err` at `place`; over `bar`, the failure is described by `failure`.
    pub fn record(&mut self, stage: &str, err: f64, bar: f64, failure: impl FnOnce() -> String) {
        let w = self.worst.entry(stage.to_string()).or_insert(0.0);
        *w = w.max(err);
        if err > bar {
            self.failures.push(failure());
        }
    }

    /// Prints the worst error per stage under `title`, then fails if any stage was over its bar.
    pub fn finish(self, title: &str) {
        println!("{title}: worst error per stage:");
        for (stage, err) in &self.worst {
            println!("  {stage:<20} {err:.3e}");
        }
        assert!(
            self.failures.is_empty(),
            "{title}: stages over the bar:\n{}",
            self.failures.join("\n")
        );
    }
}
