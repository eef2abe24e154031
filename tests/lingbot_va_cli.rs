//! `vjx export` / `vjx episode` / `vjx bench` on LingBot-VA: the Wan backbone found through
//! `wan_pretrained_path` in a Hugging Face cache, clear errors on bad input, and the bench JSON.

mod common;

use common::{copy_tree, exported_lingbot, lingbot_case, stderr, vjx};
use std::path::PathBuf;

const COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";

fn case(name: &str) -> PathBuf {
    lingbot_case(name)
}

/// The `small_window` export the episode and bench tests share.
fn exported() -> PathBuf {
    exported_lingbot(&case("small_window"))
}

#[test]
fn export_finds_the_wan_backbone_named_by_wan_pretrained_path_in_the_hub_cache() {
    let c = case("small_window");
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("hub/models--robbyant--lingbot-va-base");
    copy_tree(&c.join("wan"), &repo.join("snapshots").join(COMMIT));
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    let out_dir = dir.path().join("out");
    let out = vjx()
        .env("HF_HUB_CACHE", dir.path().join("hub"))
        .env("HF_HUB_OFFLINE", "1")
        .args(["export", "--json", "--checkpoint"])
        .arg(c.join("checkpoint"))
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["policy_type"], "lingbot_va");
    assert!(
        report["backbone"].as_str().unwrap().ends_with(COMMIT),
        "{report}"
    );
    let roles: Vec<&str> = report["graphs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["role"].as_str().unwrap())
        .collect();
    for role in [
        "text_encoder",
        "vae_encode_first",
        "vae_encode_stream",
        "text_condition",
        "video_step",
        "action_step",
    ] {
        assert!(roles.contains(&role), "no {role} graph in {roles:?}");
    }
}

#[test]
fn export_without_the_wan_backbone_names_wan_pretrained_path_and_writes_nothing() {
    let c = case("small_window");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("empty-hub")).unwrap();
    let out_dir = dir.path().join("out");
    let out = vjx()
        .env("HF_HUB_CACHE", dir.path().join("empty-hub"))
        .env("HF_HUB_OFFLINE", "1")
        .args(["export", "--checkpoint"])
        .arg(c.join("checkpoint"))
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("wan_pretrained_path") && err.contains("robbyant/lingbot-va-base"),
        "{err}"
    );
    assert!(!out_dir.exists());
    assert!(common::leftover_staging_dirs(dir.path()).is_empty());
}

#[test]
fn export_of_a_backbone_whose_text_width_differs_names_both_files() {
    let c = case("small_window");
    let dir = tempfile::tempdir().unwrap();
    let wan = dir.path().join("wan");
    copy_tree(&c.join("wan"), &wan);
    let config_path = wan.join("text_encoder/config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["d_model"] = serde_json::json!(48);
    std::fs::write(&config_path, config.to_string()).unwrap();
    let out_dir = dir.path().join("out");
    let out = vjx()
        .args(["export", "--checkpoint"])
        .arg(c.join("checkpoint"))
        .arg("--backbone")
        .arg(&wan)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("text_encoder/config.json")
            && err.contains("d_model 48")
            && err.contains("text_dim"),
        "{err}"
    );
    assert!(!out_dir.exists());
}

#[test]
fn export_at_fp16_is_refused_for_lingbot_va() {
    let c = case("small_window");
    let dir = tempfile::tempdir().unwrap();
    let out = vjx()
        .args(["export", "--precision", "fp16", "--checkpoint"])
        .arg(c.join("checkpoint"))
        .arg("--backbone")
        .arg(c.join("wan"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("fp32"), "{}", stderr(&out));
    assert!(!dir.path().join("out").exists());
}

/// Writes `episode` (with absolute image paths) to a temp file and runs `vjx episode` on it.
fn run_episode(episode: serde_json::Value, extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("episode.json");
    std::fs::write(&file, episode.to_string()).unwrap();
    vjx()
        .arg("episode")
        .arg(exported())
        .arg("--episode")
        .arg(&file)
        .args(extra)
        .output()
        .unwrap()
}

/// The fixture episode with absolute paths, so it can be rewritten elsewhere.
fn fixture_episode() -> serde_json::Value {
    let c = case("small_window");
    let mut episode: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.join("episode.json")).unwrap()).unwrap();
    for call in episode["calls"].as_array_mut().unwrap() {
        for (_, file) in call["images"].as_object_mut().unwrap() {
            *file = serde_json::json!(c.join(file.as_str().unwrap()));
        }
    }
    for entry in episode["noise"].as_array_mut().unwrap() {
        for key in ["latents", "actions"] {
            entry[key] = serde_json::json!(c.join(entry[key].as_str().unwrap()));
        }
    }
    episode
}

#[test]
fn episode_with_an_unknown_camera_names_the_key_and_the_call() {
    let mut episode = fixture_episode();
    let images = episode["calls"][3]["images"].as_object_mut().unwrap();
    let (key, path) = images
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    images.remove(&key);
    images.insert("observation.images.elsewhere".into(), path);
    let out = run_episode(episode, &["--json"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("observation.images.elsewhere") && err.contains("call 3"),
        "{err}"
    );
}

#[test]
fn episode_with_noise_of_the_wrong_shape_names_the_shape() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.npy");
    ndarray_npy::write_npy(&wrong, &ndarray::Array2::<f32>::zeros((3, 4))).unwrap();
    let mut episode = fixture_episode();
    episode["noise"][1]["actions"] = serde_json::json!(wrong);
    let out = run_episode(episode, &["--json"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("chunk 1") && err.contains("[3, 4]"), "{err}");
}

#[test]
fn bench_reports_each_stage_its_runs_per_chunk_and_the_cache_memory() {
    let out = vjx()
        .arg("bench")
        .arg(exported())
        .args(["--iters", "2", "--warmup", "0", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["policy_type"], "lingbot_va");
    assert_eq!(report["iters"], 2);
    let stages = report["stages_ms"].as_object().unwrap();
    for stage in ["vae_encode", "cache_update", "video_step", "action_step"] {
        assert!(
            stages[stage]["p50"].as_f64().unwrap() > 0.0,
            "{stage}: {report}"
        );
    }
    // small_window: 20 video steps + the t = 0 step, 50 action steps + the t = 0 step.
    assert_eq!(stages["video_step"]["runs_per_chunk"], 21.0);
    assert_eq!(stages["action_step"]["runs_per_chunk"], 51.0);
    // 2 blocks × (K, V) × 2 CFG rows × 20 slots × 2 heads × 24 dims × 4 bytes.
    assert_eq!(
        report["cache_memory"]["kv_cache_bytes"],
        2 * 2 * 2 * 20 * 2 * 24 * 4
    );
    assert!(report["cache_memory"]["vae_cache_bytes"].as_u64().unwrap() > 0);
    assert_eq!(report["n_action_steps"], 8);
}
