//! `manifest.json` is covered by its own checksum and validated on load: an edited manifest,
//! a file it names without a checksum, or a value the pipeline cannot use is refused with an
//! error naming the file and key, exit 1, before anything runs.
//!
//! The validation tests edit a real export and recompute its checksums (`edit_manifest`,
//! `edit_export_json`), so that they reach the validation behind the checksum.

mod common;

use common::dexvla::{dexvla_case, exported_dexvla, observation_args};
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Two cameras, state 8, action 7, clip + pre-snap + unnormalize + binarize post-processing.
const CASE: &str = "two_cam_resize";

/// A copy of the case's export that a test may edit.
fn export_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("export");
    copy_tree(&exported(&case(CASE)), &copy);
    (dir, copy)
}

/// `vjx run` on `export` with `args`: refused cleanly (exit 1, no panic); returns stderr.
fn refused(export: &Path, args: Vec<String>) -> String {
    let out = vjx().arg("run").arg(export).args(args).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// The case's first observation run on `export`, refused; returns stderr.
fn run_refused(export: &Path) -> String {
    refused(export, run_args(&observations(&case(CASE))[0]))
}

/// The export with `edit` applied to its manifest (checksum recomputed), run and refused.
fn refused_after(edit: impl FnOnce(&mut Value)) -> String {
    let (_dir, export) = export_copy();
    edit_manifest(&export, edit);
    run_refused(&export)
}

/// The export with `edit` applied to its backbone config (checksums recomputed), run and refused.
fn refused_after_backbone_edit(edit: impl FnOnce(&mut Value)) -> String {
    let (_dir, export) = export_copy();
    edit_export_json(&export, "backbone_config.json", edit);
    run_refused(&export)
}

fn assert_has(err: &str, expected: &str) {
    assert!(err.contains(expected), "expected `{expected}` in:\n{err}");
}

#[test]
fn an_export_runs_with_the_manifest_it_was_written_with() {
    let export = exported(&case(CASE));
    let out = vjx()
        .arg("run")
        .arg(&export)
        .args(run_args(&observations(&case(CASE))[0]))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_manifest_with_one_changed_digit_is_refused_as_edited() {
    let (_dir, export) = export_copy();
    let path = export.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let (at, _) = text.match_indices("\"chunk_size\": 7").next().unwrap();
    let edited = format!("{}8{}", &text[..at + 14], &text[at + 15..]);
    std::fs::write(&path, edited).unwrap();
    let err = run_refused(&export);
    assert_has(&err, "manifest.json: the manifest was edited after export");
    assert_has(&err, "re-export");
}

#[test]
fn a_manifest_without_its_checksum_is_refused() {
    let (_dir, export) = export_copy();
    let path = export.join("manifest.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    manifest.as_object_mut().unwrap().remove("manifest_sha256");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    let err = run_refused(&export);
    assert_has(
        &err,
        "manifest.json: no `manifest_sha256`; re-export with this vjx",
    );
}

#[test]
fn an_export_written_before_the_manifest_checksum_is_asked_to_re_export() {
    let (_dir, export) = export_copy();
    let path = export.join("manifest.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    manifest.as_object_mut().unwrap().remove("manifest_sha256");
    manifest["format_version"] = json!(2);
    std::fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    let err = run_refused(&export);
    assert_has(&err, "manifest format version 2, this vjx reads version 3");
    assert_has(&err, "re-export");
}

#[test]
fn a_tokenizer_without_a_files_entry_is_refused() {
    let err = refused_after(|m| {
        m["files"].as_object_mut().unwrap().remove("tokenizer.json");
    });
    assert_has(
        &err,
        "manifest.json: policy.tokenizer_file names `tokenizer.json`, which has no entry in `files`",
    );
}

#[test]
fn graph_weights_without_a_files_entry_are_refused() {
    let err = refused_after(|m| {
        m["files"]
            .as_object_mut()
            .unwrap()
            .remove("dit_step.onnx.data");
    });
    assert_has(
        &err,
        "graphs.dit_step.data_file names `dit_step.onnx.data`, which has no entry in `files`",
    );
}

#[test]
fn a_file_outside_the_export_dir_is_refused() {
    let err = refused_after(|m| {
        m["policy"]["chat_template_file"] = json!("../chat_template.jinja");
        m["files"]["../chat_template.jinja"] = m["files"]["chat_template.jinja"].clone();
    });
    assert_has(
        &err,
        "is `../chat_template.jinja`, which is not a file inside the export dir",
    );
}

#[test]
fn a_state_stat_of_the_wrong_length_names_the_key_and_the_width() {
    let err = refused_after(|m| {
        m["normalization"]["state"]["mean"]
            .as_array_mut()
            .unwrap()
            .pop();
    });
    assert_has(
        &err,
        "manifest.json: normalization.state.mean has 7 values, policy.state_dim is 8",
    );
}

#[test]
fn a_null_state_stat_is_named() {
    let err = refused_after(|m| m["normalization"]["state"]["std"] = Value::Null);
    assert_has(
        &err,
        "normalization.state.std is missing; MEAN_STD normalization needs it",
    );
}

#[test]
fn an_action_stat_of_the_wrong_length_names_the_key_and_the_width() {
    let err = refused_after(|m| {
        m["normalization"]["action"]["max"]
            .as_array_mut()
            .unwrap()
            .pop();
    });
    assert_has(
        &err,
        "normalization.action.max has 6 values, policy.action_dim is 7",
    );
}

#[test]
fn a_stat_beyond_f32_range_names_its_index() {
    let err = refused_after(|m| m["normalization"]["state"]["std"][3] = json!(1e39));
    assert_has(
        &err,
        "normalization.state.std[3] is inf; statistics must be finite",
    );
}

#[test]
fn a_gripper_dim_past_the_action_width_is_named() {
    let err = refused_after(|m| {
        assert_eq!(m["postprocess"][1]["step"], "pre_snap_gripper");
        m["postprocess"][1]["dim"] = json!(9);
    });
    assert_has(
        &err,
        "postprocess[1].dim is 9, past the action width (policy.action_dim is 7)",
    );
}

#[test]
fn a_binarize_dim_equal_to_the_action_width_is_named() {
    let err = refused_after(|m| {
        assert_eq!(m["postprocess"][3]["step"], "binarize_gripper");
        m["postprocess"][3]["dim"] = json!(7);
    });
    assert_has(&err, "postprocess[3].dim is 7, past the action width");
}

#[test]
fn a_clip_with_min_above_max_is_named() {
    let err = refused_after(|m| {
        assert_eq!(m["postprocess"][0]["step"], "clip");
        m["postprocess"][0]["min"] = json!(2.0);
    });
    assert_has(
        &err,
        "postprocess[0] clips to [2, 1]; min must not exceed max",
    );
}

#[test]
fn a_patch_size_of_zero_is_named() {
    let err = refused_after(|m| m["policy"]["image"]["patch_size"] = json!(0));
    assert_has(&err, "policy.image.patch_size is 0; it must be at least 1");
}

#[test]
fn a_temporal_patch_size_of_zero_is_named() {
    let err = refused_after(|m| m["policy"]["image"]["temporal_patch_size"] = json!(0));
    assert_has(&err, "policy.image.temporal_patch_size is 0");
}

#[test]
fn a_merge_size_of_zero_is_named() {
    let err = refused_after(|m| m["policy"]["image"]["merge_size"] = json!(0));
    assert_has(&err, "policy.image.merge_size is 0");
}

#[test]
fn a_merge_size_the_vision_tower_was_not_built_with_is_named() {
    let err = refused_after(|m| m["policy"]["image"]["merge_size"] = json!(1));
    assert_has(
        &err,
        "backbone_config.json: vision_config.spatial_merge_size is 2, the manifest's \
         policy.image.merge_size is 1; they must agree",
    );
}

#[test]
fn an_image_std_of_zero_is_named() {
    let err = refused_after(|m| m["policy"]["image"]["image_std"][1] = json!(0.0));
    assert_has(&err, "policy.image.image_std[1] is 0; it must be positive");
}

#[test]
fn no_embodied_action_tokens_is_named() {
    let err = refused_after(|m| m["policy"]["prompt"]["num_embodied"] = json!(0));
    assert_has(
        &err,
        "policy.prompt.num_embodied is 0; it must be at least 1",
    );
}

#[test]
fn a_chunk_size_of_zero_is_named() {
    let err = refused_after(|m| m["policy"]["chunk_size"] = json!(0));
    assert_has(&err, "policy.chunk_size is 0");
}

#[test]
fn more_action_steps_than_the_chunk_holds_is_named() {
    let err = refused_after(|m| m["policy"]["n_action_steps"] = json!(8));
    assert_has(
        &err,
        "policy.n_action_steps is 8; it must be between 1 and policy.chunk_size (7)",
    );
}

#[test]
fn no_euler_timesteps_is_named() {
    let err = refused_after(|m| m["policy"]["timesteps"] = json!([]));
    assert_has(&err, "policy.timesteps is empty");
}

#[test]
fn a_resize_to_zero_rows_is_named() {
    let err = refused_after(|m| m["policy"]["resize_images_to"] = json!([0, 112]));
    assert_has(&err, "policy.resize_images_to is [0, 112]");
}

#[test]
fn a_camera_with_a_zero_side_is_named() {
    let err = refused_after(|m| m["policy"]["cameras"][1]["shape"] = json!([3, 0, 76]));
    assert_has(&err, "policy.cameras[1].shape is [3, 0, 76]");
}

#[test]
fn a_text_head_dim_of_zero_is_named() {
    let err = refused_after_backbone_edit(|b| b["text_config"]["head_dim"] = json!(0));
    assert_has(
        &err,
        "backbone_config.json: text_config.head_dim is 0; it must be at least 1",
    );
}

#[test]
fn a_vision_head_count_that_does_not_divide_the_width_is_named() {
    let err = refused_after_backbone_edit(|b| b["vision_config"]["num_heads"] = json!(3));
    assert_has(
        &err,
        "backbone_config.json: vision_config.num_heads is 3, which does not divide \
         vision_config.hidden_size (32)",
    );
}

/// A copy of the DexVLA LeRobot-port export and its observation, for the DexVLA checks.
fn dexvla_copy() -> (tempfile::TempDir, PathBuf, Vec<String>) {
    let case = dexvla_case("reasoning_limit");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("export");
    copy_tree(&exported_dexvla(&case), &copy);
    (dir, copy, observation_args(&case.join("obs_0")))
}

#[test]
fn a_dexvla_export_without_denoising_steps_is_named() {
    let (_dir, export, args) = dexvla_copy();
    edit_manifest(&export, |m| {
        m["policy"]["ddim"]["num_inference_steps"] = json!(0)
    });
    let err = refused(&export, args);
    assert_has(&err, "policy.ddim.num_inference_steps is 0");
}

#[test]
fn a_dexvla_text_head_count_that_does_not_divide_the_width_is_named() {
    let (_dir, export, args) = dexvla_copy();
    let mut width = 0;
    edit_export_json(&export, "backbone_config.json", |b| {
        width = b["hidden_size"].as_u64().unwrap();
        b["num_attention_heads"] = json!(width + 1);
    });
    let err = refused(&export, args);
    assert_has(
        &err,
        &format!(
            "backbone_config.json: num_attention_heads is {}, which does not divide \
             hidden_size ({width})",
            width + 1
        ),
    );
}
