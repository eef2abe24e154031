//! DexVLA through the CLI on bad input: each mistake is refused with a message naming the
//! file, key, camera or value at fault, a non-zero exit, and nothing half-written.

mod common;

use common::dexvla::*;
use common::*;
use std::path::{Path, PathBuf};

/// The `reasoning_stop` case exported once per test binary.
fn export() -> PathBuf {
    exported_dexvla(&dexvla_case("reasoning_stop"))
}

fn case_dir(name: &str) -> PathBuf {
    dexvla_root().join(name)
}

fn camera_args(obs: &Path, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .flat_map(|key| {
            [
                "--image".to_string(),
                format!(
                    "observation.images.{key}={}",
                    obs.join(format!("{key}.png")).display()
                ),
            ]
        })
        .collect()
}

const CAMERAS: [&str; 3] = ["cam_high", "cam_left_wrist", "cam_right_wrist"];

fn state(values: &[&str]) -> String {
    format!("--state={}", values.join(","))
}

fn fourteen() -> Vec<&'static str> {
    vec!["0.1"; 14]
}

/// Runs `vjx run` on the export with `args`; returns (success, stderr).
fn run(args: &[String]) -> (bool, String) {
    let out = vjx().arg("run").arg(export()).args(args).output().unwrap();
    (out.status.success(), stderr(&out))
}

fn obs() -> PathBuf {
    case_dir("shared/obs_0")
}

#[test]
fn a_missing_camera_is_named() {
    let mut args = camera_args(&obs(), &CAMERAS[..2]);
    args.extend([state(&fourteen()), "--task".into(), "fold".into()]);
    let (ok, err) = run(&args);
    assert!(!ok);
    assert!(
        err.contains("camera `observation.images.cam_right_wrist` is missing"),
        "{err}"
    );
}

#[test]
fn a_state_of_the_wrong_length_is_refused() {
    let mut args = camera_args(&obs(), &CAMERAS);
    args.extend([state(&["0.1"; 12]), "--task".into(), "fold".into()]);
    let (ok, err) = run(&args);
    assert!(!ok);
    assert!(
        err.contains("state has 12 values, this policy needs 14"),
        "{err}"
    );
}

#[test]
fn a_nan_in_the_state_is_named_by_index() {
    let mut values = fourteen();
    values[3] = "NaN";
    let mut args = camera_args(&obs(), &CAMERAS);
    args.extend([state(&values), "--task".into(), "fold".into()]);
    let (ok, err) = run(&args);
    assert!(!ok);
    assert!(
        err.contains("state value NaN at index 3 is not finite"),
        "{err}"
    );
}

#[test]
fn the_task_is_required() {
    let mut args = camera_args(&obs(), &CAMERAS);
    args.push(state(&fourteen()));
    let (ok, err) = run(&args);
    assert!(!ok);
    assert!(err.contains("pass --task"), "{err}");
}

#[test]
fn a_prompt_longer_than_the_text_profile_is_refused() {
    let mut args = camera_args(&obs(), &CAMERAS);
    let task = "fold the shirt ".repeat(200);
    args.extend([state(&fourteen()), "--task".into(), task]);
    let (ok, err) = run(&args);
    assert!(!ok);
    assert!(
        err.contains("shape profile admits") && err.contains("shorten the task"),
        "{err}"
    );
}

#[test]
fn statistics_left_as_a_pickle_name_the_converter_and_nothing_is_written() {
    let work = tempfile::tempdir().unwrap();
    let train_output = work.path().join("train_output");
    copy_tree(
        &case_dir("reasoning_stop").join("train_output"),
        &train_output,
    );
    std::fs::remove_file(train_output.join("dataset_stats.json")).unwrap();
    let out = work.path().join("export");
    let result = vjx()
        .args(["export", "--checkpoint"])
        .arg(train_output.join("checkpoint-100"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!result.status.success());
    let err = stderr(&result);
    assert!(
        err.contains("dataset_stats.pkl") && err.contains("scripts/dexvla_stats_to_json.py"),
        "{err}"
    );
    assert!(!out.exists());
    assert!(leftover_staging_dirs(work.path()).is_empty());
}

#[test]
fn a_statistic_of_the_wrong_width_names_the_file_and_key() {
    let work = tempfile::tempdir().unwrap();
    let train_output = work.path().join("train_output");
    copy_tree(
        &case_dir("reasoning_stop").join("train_output"),
        &train_output,
    );
    let stats_path = train_output.join("dataset_stats.json");
    let mut stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats_path).unwrap()).unwrap();
    stats["action_max"] = serde_json::json!([1.0, 2.0]);
    std::fs::write(&stats_path, stats.to_string()).unwrap();
    let result = vjx()
        .args(["export", "--checkpoint"])
        .arg(train_output.join("checkpoint-100"))
        .arg("--out")
        .arg(work.path().join("export"))
        .output()
        .unwrap();
    assert!(!result.status.success());
    let err = stderr(&result);
    assert!(
        err.contains("dataset_stats.json") && err.contains("`action_max` has 2 values"),
        "{err}"
    );
}

/// The fixture observation as `vjx` arguments (cameras, state, task).
fn fixture_observation() -> Vec<String> {
    observation_args(&case_dir("reasoning_stop/obs_0"))
}

#[test]
fn bench_reports_prefill_each_decoded_token_and_ten_diffusion_steps() {
    let out = vjx()
        .arg("bench")
        .arg(export())
        .args(fixture_observation())
        .args(["--iters", "1", "--warmup", "0", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stages = &report["stages_ms"];
    assert!(stages["prefill"]["p50"].as_f64().unwrap() > 0.0, "{report}");
    // Eight tokens generated, the last (<|im_end|>) never fed back: seven decode steps.
    assert_eq!(stages["decode_token"]["runs_per_chunk"], 7.0, "{report}");
    assert_eq!(stages["diffusion_step"]["runs_per_chunk"], 10.0, "{report}");
    assert_eq!(report["policy_type"], "dexvla");
}

#[test]
fn every_graph_is_taken_by_tensorrt_with_a_shape_profile() {
    let out = vjx()
        .arg("check")
        .arg(export())
        .args(["--json", "--strict"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["unsupported"], 0, "{report}");
    assert_eq!(
        report["summary"]["dynamic_inputs_without_profile"], 0,
        "{report}"
    );
}

#[test]
fn replan_every_sets_the_actions_executed_per_chunk_and_is_bounded_by_the_chunk() {
    let work = tempfile::tempdir().unwrap();
    let checkpoint = case_dir("reasoning_stop/train_output/checkpoint-100");
    let export_with = |n: &str, out: &Path| {
        vjx()
            .args(["export", "--replan-every", n, "--checkpoint"])
            .arg(&checkpoint)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let out = work.path().join("every16");
    let result = export_with("16", &out);
    assert!(result.status.success(), "{}", stderr(&result));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["policy"]["n_action_steps"], 16);

    let result = export_with("51", &work.path().join("every51"));
    assert!(!result.status.success());
    assert!(
        stderr(&result).contains("--replan-every 51: must be between 1 and the chunk size 50"),
        "{}",
        stderr(&result)
    );
}
