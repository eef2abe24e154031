//! `vjx episode` on a policy without state between chunks (VLA-JEPA): `select_action` executes
//! the first `n_action_steps` actions of each chunk, and chunk k draws its noise from seed + k.

mod common;

use common::{any_case, copy_tree, observations, run_args, stderr, vjx};
use serde_json::Value;
use std::path::Path;

fn json_of(out: std::process::Output) -> Value {
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn run_rows(export: &Path, obs: &Path, seed: u64) -> Vec<Value> {
    let out = vjx()
        .arg("run")
        .arg(export)
        .args(run_args(obs))
        .args(["--seed", &seed.to_string(), "--json"])
        .output()
        .unwrap();
    json_of(out)["actions"].as_array().unwrap().clone()
}

/// An episode.json of `calls` calls, each the fixture observation at `obs`.
fn episode_file(dir: &Path, obs: &Path, calls: usize) -> std::path::PathBuf {
    let inputs: Value =
        serde_json::from_str(&std::fs::read_to_string(obs.join("inputs.json")).unwrap()).unwrap();
    let images: serde_json::Map<String, Value> = inputs["images"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, f)| {
            (
                k.clone(),
                Value::from(obs.join(f.as_str().unwrap()).display().to_string()),
            )
        })
        .collect();
    let mut call = serde_json::json!({ "images": images });
    if !inputs["state"].is_null() {
        call["state"] = inputs["state"].clone();
    }
    let episode = serde_json::json!({
        "task": inputs["task"],
        "calls": vec![call; calls],
    });
    let path = dir.join("episode.json");
    std::fs::write(&path, episode.to_string()).unwrap();
    path
}

#[test]
fn a_vla_jepa_episode_executes_n_action_steps_of_each_chunk_with_the_next_seed() {
    let case = any_case();
    let obs = &observations(&case)[0];
    let dir = tempfile::tempdir().unwrap();
    // The fixtures execute whole chunks; this export executes all but the last two actions.
    let export = dir.path().join("export");
    copy_tree(&common::exported(&case), &export);
    let mut n = 0;
    common::edit_manifest(&export, |manifest| {
        n = manifest["policy"]["chunk_size"].as_u64().unwrap() as usize - 2;
        manifest["policy"]["n_action_steps"] = n.into();
    });

    let episode = episode_file(dir.path(), obs, n + 2);
    let out = vjx()
        .arg("episode")
        .arg(&export)
        .arg("--episode")
        .arg(&episode)
        .args(["--seed", "3", "--json"])
        .output()
        .unwrap();
    let actions = json_of(out)["actions"].as_array().unwrap().clone();

    let first = run_rows(&export, obs, 3);
    let second = run_rows(&export, obs, 4);
    assert_eq!(actions.len(), n + 2);
    assert_eq!(actions[..n], first[..n]);
    assert_eq!(actions[n..], second[..2]);
}
