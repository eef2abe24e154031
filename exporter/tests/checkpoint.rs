//! Resolving `--checkpoint` / `--backbone`: local dirs, the Hugging Face cache layout, the
//! environment variables that pick the cache, and the errors when nothing is found.
//! The hub is not reachable from the test machine; the download path is exercised only
//! through its failure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use vjx_exporter::checkpoint::{
    resolve, resolve_with, CacheRoot, Origin, ResolveError, ResolveOptions,
};

const REPO: &str = "lerobot/vla_jepa_libero";
const MAIN_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const TAG_COMMIT: &str = "fedcba9876543210fedcba9876543210fedcba98";

/// Serializes the tests that change the process environment.
static ENV_LOCK: Mutex<()> = Mutex::new(());

fn touch(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"{}").unwrap();
}

/// Lays out `models--org--name/{refs/<rev>, snapshots/<hash>/<files>}` under `cache`.
fn cache_snapshot(
    cache: &Path,
    repo: &str,
    revision: Option<&str>,
    commit: &str,
    files: &[&str],
) -> PathBuf {
    let repo_dir = cache.join(format!("models--{}", repo.replace('/', "--")));
    if let Some(revision) = revision {
        let reference = repo_dir.join("refs").join(revision);
        std::fs::create_dir_all(reference.parent().unwrap()).unwrap();
        std::fs::write(reference, commit).unwrap();
    }
    let snapshot = repo_dir.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    for f in files {
        touch(&snapshot.join(f));
    }
    snapshot
}

fn offline_with(roots: &[&Path]) -> ResolveOptions {
    ResolveOptions {
        cache_roots: roots
            .iter()
            .map(|dir| CacheRoot {
                dir: dir.to_path_buf(),
                from: "test",
            })
            .collect(),
        offline: true,
        progress: false,
        endpoint: "https://huggingface.co".to_string(),
        token: None,
    }
}

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn a_local_dir_with_every_file_resolves_to_itself() {
    let dir = tempfile::tempdir().unwrap();
    touch(&dir.path().join("config.json"));
    touch(&dir.path().join("model.safetensors"));
    let spec = dir.path().to_str().unwrap();
    let repo = resolve_with(
        spec,
        None,
        &["config.json", "model.safetensors"],
        &offline_with(&[]),
    )
    .unwrap();
    assert_eq!(repo.origin, Origin::Local);
    assert_eq!(repo.root, dir.path());
    assert_eq!(repo.path("config.json"), dir.path().join("config.json"));
}

#[test]
fn a_local_dir_missing_a_required_file_names_the_file_and_the_dir() {
    let dir = tempfile::tempdir().unwrap();
    touch(&dir.path().join("config.json"));
    let spec = dir.path().to_str().unwrap();
    let err = resolve_with(
        spec,
        None,
        &["config.json", "tokenizer.json"],
        &offline_with(&[]),
    )
    .unwrap_err();
    assert!(
        matches!(&err, ResolveError::MissingLocalFile { file, dir: d } if file == "tokenizer.json" && d == dir.path()),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("tokenizer.json") && message.contains(spec),
        "{message}"
    );
}

#[test]
fn a_local_path_that_is_a_file_is_not_a_checkpoint_dir() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.safetensors");
    touch(&file);
    let err = resolve_with(
        file.to_str().unwrap(),
        None,
        &["config.json"],
        &offline_with(&[]),
    )
    .unwrap_err();
    assert!(matches!(err, ResolveError::NotADirectory { .. }), "{err:?}");
}

#[test]
fn a_missing_path_that_is_not_a_hub_id_says_so() {
    let err = resolve_with(
        "/no/such/checkpoint/dir",
        None,
        &["config.json"],
        &offline_with(&[]),
    )
    .unwrap_err();
    assert!(
        matches!(err, ResolveError::NotADirOrHubId { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("/no/such/checkpoint/dir"), "{err}");
}

#[test]
fn a_hub_id_resolves_through_refs_main_to_its_snapshot() {
    let cache = tempfile::tempdir().unwrap();
    let snapshot = cache_snapshot(
        cache.path(),
        REPO,
        Some("main"),
        MAIN_COMMIT,
        &["config.json", "model.safetensors"],
    );
    let repo = resolve_with(
        REPO,
        None,
        &["config.json", "model.safetensors"],
        &offline_with(&[cache.path()]),
    )
    .unwrap();
    assert_eq!(repo.origin, Origin::Cache);
    assert_eq!(repo.root, snapshot);
}

#[test]
fn a_named_revision_resolves_through_its_own_ref() {
    let cache = tempfile::tempdir().unwrap();
    cache_snapshot(
        cache.path(),
        REPO,
        Some("main"),
        MAIN_COMMIT,
        &["config.json"],
    );
    let tagged = cache_snapshot(
        cache.path(),
        REPO,
        Some("v1.0"),
        TAG_COMMIT,
        &["config.json"],
    );
    let repo = resolve_with(
        REPO,
        Some("v1.0"),
        &["config.json"],
        &offline_with(&[cache.path()]),
    )
    .unwrap();
    assert_eq!(repo.root, tagged);
}

#[test]
fn a_revision_with_a_slash_uses_the_nested_ref_file() {
    let cache = tempfile::tempdir().unwrap();
    let pr = cache_snapshot(
        cache.path(),
        REPO,
        Some("refs/pr/3"),
        TAG_COMMIT,
        &["config.json"],
    );
    let repo = resolve_with(
        REPO,
        Some("refs/pr/3"),
        &["config.json"],
        &offline_with(&[cache.path()]),
    )
    .unwrap();
    assert_eq!(repo.root, pr);
}

#[test]
fn a_commit_hash_revision_maps_straight_to_its_snapshot() {
    let cache = tempfile::tempdir().unwrap();
    cache_snapshot(
        cache.path(),
        REPO,
        Some("main"),
        MAIN_COMMIT,
        &["config.json"],
    );
    let pinned = cache_snapshot(cache.path(), REPO, None, TAG_COMMIT, &["config.json"]);
    let repo = resolve_with(
        REPO,
        Some(TAG_COMMIT),
        &["config.json"],
        &offline_with(&[cache.path()]),
    )
    .unwrap();
    assert_eq!(repo.root, pinned);
}

#[test]
fn the_cache_is_hf_hub_cache_then_hf_home_hub_then_the_home_default() {
    let options = ResolveOptions::from_vars(vars(&[
        ("HF_HUB_CACHE", "/caches/hub-cache"),
        ("HF_HOME", "/caches/hf-home"),
        ("HOME", "/home/robot"),
    ]));
    let dirs: Vec<PathBuf> = options.cache_roots.iter().map(|r| r.dir.clone()).collect();
    assert_eq!(
        dirs,
        vec![
            PathBuf::from("/caches/hub-cache"),
            PathBuf::from("/caches/hf-home/hub"),
            PathBuf::from("/home/robot/.cache/huggingface/hub"),
        ]
    );

    let only_home = ResolveOptions::from_vars(vars(&[("HOME", "/home/robot")]));
    assert_eq!(
        only_home.cache_roots[0].dir,
        PathBuf::from("/home/robot/.cache/huggingface/hub")
    );
    assert_eq!(only_home.cache_roots.len(), 1);
}

#[test]
fn hf_hub_cache_wins_when_both_caches_hold_the_model() {
    let hub_cache = tempfile::tempdir().unwrap();
    let hf_home = tempfile::tempdir().unwrap();
    let preferred = cache_snapshot(
        hub_cache.path(),
        REPO,
        Some("main"),
        MAIN_COMMIT,
        &["config.json"],
    );
    cache_snapshot(
        &hf_home.path().join("hub"),
        REPO,
        Some("main"),
        TAG_COMMIT,
        &["config.json"],
    );
    let options = ResolveOptions {
        offline: true,
        ..ResolveOptions::from_vars(vars(&[
            ("HF_HUB_CACHE", hub_cache.path().to_str().unwrap()),
            ("HF_HOME", hf_home.path().to_str().unwrap()),
        ]))
    };
    assert_eq!(
        resolve_with(REPO, None, &["config.json"], &options)
            .unwrap()
            .root,
        preferred
    );
}

#[test]
fn a_model_cached_only_under_hf_home_is_still_found() {
    let hub_cache = tempfile::tempdir().unwrap();
    let hf_home = tempfile::tempdir().unwrap();
    let snapshot = cache_snapshot(
        &hf_home.path().join("hub"),
        REPO,
        Some("main"),
        MAIN_COMMIT,
        &["config.json"],
    );
    let options = ResolveOptions {
        offline: true,
        ..ResolveOptions::from_vars(vars(&[
            ("HF_HUB_CACHE", hub_cache.path().to_str().unwrap()),
            ("HF_HOME", hf_home.path().to_str().unwrap()),
        ]))
    };
    assert_eq!(
        resolve_with(REPO, None, &["config.json"], &options)
            .unwrap()
            .root,
        snapshot
    );
}

#[test]
fn hf_hub_offline_accepts_the_values_huggingface_hub_accepts() {
    for value in ["1", "true", "TRUE", "yes", "on"] {
        assert!(
            ResolveOptions::from_vars(vars(&[("HF_HUB_OFFLINE", value)])).offline,
            "{value}"
        );
    }
    for value in ["0", "false", "", "no"] {
        assert!(
            !ResolveOptions::from_vars(vars(&[("HF_HUB_OFFLINE", value)])).offline,
            "{value}"
        );
    }
    assert!(!ResolveOptions::from_vars(vars(&[])).offline);
}

#[test]
fn offline_and_not_cached_lists_every_place_looked_and_the_fixes() {
    let hub_cache = tempfile::tempdir().unwrap();
    let hf_home = tempfile::tempdir().unwrap();
    let options = ResolveOptions {
        offline: true,
        ..ResolveOptions::from_vars(vars(&[
            ("HF_HUB_CACHE", hub_cache.path().to_str().unwrap()),
            ("HF_HOME", hf_home.path().to_str().unwrap()),
        ]))
    };
    let err = resolve_with(REPO, None, &["config.json"], &options).unwrap_err();
    assert!(
        matches!(err, ResolveError::NotCachedOffline { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    for place in [
        PathBuf::from(REPO),
        hub_cache.path().join("models--lerobot--vla_jepa_libero"),
        hf_home
            .path()
            .join("hub")
            .join("models--lerobot--vla_jepa_libero"),
    ] {
        assert!(
            message.contains(&place.display().to_string()),
            "{} not in: {message}",
            place.display()
        );
    }
    for fix in ["--backbone <dir>", "HF_HUB_CACHE", "HF_HUB_OFFLINE"] {
        assert!(message.contains(fix), "`{fix}` not in: {message}");
    }
}

#[test]
fn offline_with_a_partial_snapshot_names_the_missing_files() {
    let cache = tempfile::tempdir().unwrap();
    let snapshot = cache_snapshot(
        cache.path(),
        REPO,
        Some("main"),
        MAIN_COMMIT,
        &["config.json"],
    );
    let err = resolve_with(
        REPO,
        None,
        &["config.json", "model.safetensors"],
        &offline_with(&[cache.path()]),
    )
    .unwrap_err();
    match &err {
        ResolveError::NotCachedOffline { missing, .. } => {
            assert_eq!(missing, &vec!["model.safetensors".to_string()])
        }
        other => panic!("expected NotCachedOffline, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&snapshot.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_missing_revision_is_not_found_even_when_main_is_cached() {
    let cache = tempfile::tempdir().unwrap();
    cache_snapshot(
        cache.path(),
        REPO,
        Some("main"),
        MAIN_COMMIT,
        &["config.json"],
    );
    let err = resolve_with(
        REPO,
        Some("v2.0"),
        &["config.json"],
        &offline_with(&[cache.path()]),
    )
    .unwrap_err();
    assert!(
        matches!(&err, ResolveError::NotCachedOffline { revision, .. } if revision == "v2.0"),
        "{err:?}"
    );
}

#[test]
fn an_unreachable_hub_fails_the_download_naming_file_cache_and_fixes() {
    let cache = tempfile::tempdir().unwrap();
    let options = ResolveOptions {
        offline: false,
        // Nothing listens on the discard port: the connection is refused at once.
        endpoint: "http://127.0.0.1:9".to_string(),
        ..offline_with(&[cache.path()])
    };
    let err = resolve_with(REPO, None, &["config.json"], &options).unwrap_err();
    assert!(
        matches!(&err, ResolveError::DownloadFailed { file, .. } if file == "config.json"),
        "{err:?}"
    );
    let message = err.to_string();
    for needle in [
        cache.path().display().to_string(),
        "--backbone <dir>".to_string(),
        "HF_HUB_CACHE".to_string(),
    ] {
        assert!(message.contains(&needle), "`{needle}` not in: {message}");
    }
}

#[test]
fn resolve_reads_the_cache_and_offline_mode_from_the_environment() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let cache = tempfile::tempdir().unwrap();
    let snapshot = cache_snapshot(
        cache.path(),
        REPO,
        Some("main"),
        MAIN_COMMIT,
        &["config.json"],
    );
    let saved: Vec<(&str, Option<String>)> = ["HF_HUB_CACHE", "HF_HOME", "HF_HUB_OFFLINE"]
        .iter()
        .map(|k| (*k, std::env::var(k).ok()))
        .collect();
    std::env::set_var("HF_HUB_CACHE", cache.path());
    std::env::set_var("HF_HOME", cache.path().join("unused-home"));
    std::env::set_var("HF_HUB_OFFLINE", "1");

    let found = resolve(REPO, None, &["config.json"], false);
    let missing = resolve("lerobot/not_cached", None, &["config.json"], false);

    for (key, value) in saved {
        match value {
            Some(v) => std::env::set_var(key, v),
            None => std::env::remove_var(key),
        }
    }
    assert_eq!(found.unwrap().root, snapshot);
    assert!(matches!(
        missing.unwrap_err(),
        ResolveError::NotCachedOffline { .. }
    ));
}
