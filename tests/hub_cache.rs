//! `vjx export` finds hub ids in a Hugging Face cache laid out as huggingface_hub writes it,
//! and says where it looked when a model is neither local nor cached (offline).

mod common;

use common::*;
use std::path::Path;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Puts `files_from` into `<cache>/models--org--name/snapshots/<COMMIT>/` with refs/main.
fn cache_model(cache: &Path, repo_id: &str, files_from: &Path) {
    let repo = cache.join(format!("models--{}", repo_id.replace('/', "--")));
    let snapshot = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    for e in std::fs::read_dir(files_from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, snapshot.join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn export_resolves_checkpoint_and_backbone_hub_ids_from_the_cache() {
    let case = any_case();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    cache_model(&cache, "lerobot/tiny-vla-jepa", &case.join("checkpoint"));
    cache_model(&cache, "Qwen/Qwen3-VL-2B-Instruct", &case.join("backbone"));
    let out_dir = dir.path().join("out");
    let out = vjx()
        .env("HF_HUB_CACHE", &cache)
        .env("HF_HUB_OFFLINE", "1")
        .args([
            "export",
            "--json",
            "--checkpoint",
            "lerobot/tiny-vla-jepa",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["checkpoint"].as_str().unwrap().ends_with(COMMIT),
        "{report}"
    );
    assert!(
        report["backbone"]
            .as_str()
            .unwrap()
            .contains("models--Qwen--Qwen3-VL-2B-Instruct"),
        "{report}"
    );
    assert!(out_dir.join("manifest.json").is_file());
}

#[test]
fn export_offline_of_an_uncached_hub_id_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("empty-hub");
    std::fs::create_dir_all(&cache).unwrap();
    let out_dir = dir.path().join("out");
    let out = vjx()
        .env("HF_HUB_CACHE", &cache)
        .env("HF_HUB_OFFLINE", "1")
        .args([
            "export",
            "--checkpoint",
            "lerobot/not-in-any-cache",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("lerobot/not-in-any-cache"), "{err}");
    assert!(err.contains(&cache.display().to_string()), "{err}");
    assert!(!out_dir.exists());
}

#[test]
fn a_lerobot_dexvla_checkpoint_and_its_qwen2_vl_path_resolve_from_the_cache() {
    let case = common::dexvla::dexvla_case("reasoning_limit");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    cache_model(&cache, "someone/dexvla-tiny", &case.join("lerobot"));
    cache_model(&cache, "Qwen/Qwen2-VL-2B-Instruct", &case.join("qwen2_vl"));
    let config = cache.join(format!(
        "models--someone--dexvla-tiny/snapshots/{COMMIT}/config.json"
    ));
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    json["qwen2_vl_path"] = "Qwen/Qwen2-VL-2B-Instruct".into();
    std::fs::write(&config, json.to_string()).unwrap();
    let out_dir = dir.path().join("out");
    let out = vjx()
        .env("HF_HUB_CACHE", &cache)
        .env("HF_HUB_OFFLINE", "1")
        .args([
            "export",
            "--json",
            "--checkpoint",
            "someone/dexvla-tiny",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["policy_type"], "dexvla");
    assert!(
        report["backbone"]
            .as_str()
            .unwrap()
            .contains("models--Qwen--Qwen2-VL-2B-Instruct"),
        "{report}"
    );
}
