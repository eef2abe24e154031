//! Bad input gets a clear error naming the file, key, shape or value at fault, a non-zero
//! exit, and leaves nothing half-written.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// A copy of a fixture case's checkpoint and backbone that a test may break.
fn broken_copy(tag: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    broken_copy_of(&any_case(), tag)
}

fn broken_copy_of(case: &Path, tag: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join(format!("{tag}-checkpoint"));
    let backbone = dir.path().join(format!("{tag}-backbone"));
    copy_dir(&case.join("checkpoint"), &ckpt);
    copy_dir(&case.join("backbone"), &backbone);
    (dir, ckpt, backbone)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// Exports and expects failure; returns stderr after checking nothing was left behind.
fn export_fails(dir: &Path, ckpt: &Path, backbone: &Path) -> String {
    let out_dir = dir.join("out");
    let out = vjx()
        .args(["export", "--checkpoint"])
        .arg(ckpt)
        .arg("--backbone")
        .arg(backbone)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "export should fail");
    assert!(
        !out_dir.exists(),
        "a failed export left {}",
        out_dir.display()
    );
    assert!(
        leftover_staging_dirs(dir).is_empty(),
        "a failed export left its temp dir"
    );
    stderr(&out)
}

/// Rewrites model.safetensors through `edit` (name → (shape, f32 data)); all tensors become f32.
fn rewrite_weights(ckpt: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) {
    rewrite_safetensors(&ckpt.join("model.safetensors"), edit)
}

/// Rewrites a safetensors file through `edit`, as [`rewrite_weights`] does.
fn rewrite_safetensors(path: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let data: Vec<f32> = match view.dtype() {
                safetensors::Dtype::BF16 => view
                    .data()
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                _ => view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            };
            (name, view.shape().to_vec(), data)
        })
        .collect();
    edit(&mut tensors);
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, d)| (n, s, d.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = raw
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

const DIT_WEIGHT: &str = "model.action_model.action_decoder.layer2.weight";

#[test]
fn export_without_model_safetensors_names_the_file() {
    let (dir, ckpt, backbone) = broken_copy("missing");
    std::fs::remove_file(ckpt.join("model.safetensors")).unwrap();
    let err = export_fails(dir.path(), &ckpt, &backbone);
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn export_of_a_truncated_safetensors_names_the_file() {
    let (dir, ckpt, backbone) = broken_copy("truncated");
    let path = ckpt.join("model.safetensors");
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    let err = export_fails(dir.path(), &ckpt, &backbone);
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn export_of_a_corrupt_safetensors_header_names_the_file() {
    let (dir, ckpt, backbone) = broken_copy("corrupt");
    let path = ckpt.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut().skip(8).take(16) {
        *b = b'#';
    }
    std::fs::write(&path, bytes).unwrap();
    let err = export_fails(dir.path(), &ckpt, &backbone);
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn export_with_a_missing_tensor_names_it() {
    let (dir, ckpt, backbone) = broken_copy("missing-tensor");
    rewrite_weights(&ckpt, |t| t.retain(|(n, _, _)| n != DIT_WEIGHT));
    let err = export_fails(dir.path(), &ckpt, &backbone);
    assert!(err.contains(DIT_WEIGHT), "{err}");
}

#[test]
fn export_with_a_misshaped_tensor_names_it_and_both_shapes() {
    let (dir, ckpt, backbone) = broken_copy("misshaped");
    let mut original = Vec::new();
    rewrite_weights(&ckpt, |t| {
        let entry = t.iter_mut().find(|(n, _, _)| n == DIT_WEIGHT).unwrap();
        original = entry.1.clone();
        let last = entry.1.len() - 1;
        let cols = entry.1[last];
        entry.1[last] = cols - 1;
        let rows = entry.1[0];
        entry.2.truncate(rows * (cols - 1));
    });
    let err = export_fails(dir.path(), &ckpt, &backbone);
    let mut wrong = original.clone();
    let last = wrong.len() - 1;
    wrong[last] -= 1;
    assert!(err.contains(DIT_WEIGHT), "{err}");
    assert!(
        err.contains(&format!("{wrong:?}")) && err.contains(&format!("{original:?}")),
        "{err}"
    );
}

#[test]
fn export_of_a_nan_weight_names_the_tensor_and_its_first_bad_index() {
    let (dir, ckpt, backbone) = broken_copy("nan-weight");
    let mut index = Vec::new();
    rewrite_weights(&ckpt, |tensors| {
        let (_, shape, data) = tensors.iter_mut().find(|t| t.0 == DIT_WEIGHT).unwrap();
        let cols = shape[1];
        data[cols + 2] = f32::NAN;
        data[cols + 3] = f32::INFINITY;
        index = vec![1, 2];
    });
    let err = export_fails(dir.path(), &ckpt, &backbone);
    assert!(
        err.contains(&format!("`{DIT_WEIGHT}{index:?}`")) && err.contains("is NaN"),
        "{err}"
    );
}

#[test]
fn export_of_an_infinite_weight_names_it() {
    let (dir, ckpt, backbone) = broken_copy("inf-weight");
    rewrite_weights(&ckpt, |tensors| {
        let (_, _, data) = tensors.iter_mut().find(|t| t.0 == DIT_WEIGHT).unwrap();
        data[0] = f32::NEG_INFINITY;
    });
    let err = export_fails(dir.path(), &ckpt, &backbone);
    assert!(
        err.contains(&format!("`{DIT_WEIGHT}[0, 0]`")) && err.contains("is -inf"),
        "{err}"
    );
}

#[test]
fn export_of_a_nan_normalization_stat_names_the_key_and_the_stats_file() {
    let (dir, ckpt, backbone) = broken_copy_of(&case("two_cam_resize"), "nan-stat");
    let stats = "policy_preprocessor_step_3_normalizer_processor.safetensors";
    rewrite_safetensors(&ckpt.join(stats), |tensors| {
        let (_, _, std) = tensors
            .iter_mut()
            .find(|t| t.0 == "observation.state.std")
            .unwrap();
        std[3] = f32::NAN;
    });
    let err = export_fails(dir.path(), &ckpt, &backbone);
    assert!(
        err.contains(&format!(
            "`observation.state.std[3]` in {}",
            ckpt.join(stats).display()
        )) && err.contains("is NaN"),
        "{err}"
    );
}

#[test]
fn export_of_an_unknown_policy_type_names_it() {
    let (dir, ckpt, backbone) = broken_copy("unknown-type");
    let path = ckpt.join("config.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["type"] = serde_json::json!("mystery_policy");
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    let err = export_fails(dir.path(), &ckpt, &backbone);
    assert!(err.contains("mystery_policy"), "{err}");
}

#[test]
fn export_keeps_an_existing_output_unless_forced() {
    let case = any_case();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(out_dir.join("keep.txt"), "mine").unwrap();
    let out = vjx()
        .args(["export", "--checkpoint"])
        .arg(case.join("checkpoint"))
        .arg("--backbone")
        .arg(case.join("backbone"))
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("keep.txt")).unwrap(),
        "mine"
    );
}

/// `vjx run` on the first fixture observation with its arguments changed by `edit`.
fn run_fails(export: &Path, edit: impl FnOnce(&mut Vec<String>)) -> String {
    let case = any_case();
    let obs = &observations(&case)[0];
    let mut args = run_args(obs);
    edit(&mut args);
    let out = vjx().arg("run").arg(export).args(&args).output().unwrap();
    assert!(!out.status.success(), "run should fail with {args:?}");
    stderr(&out)
}

fn image_args(args: &[String]) -> Vec<(usize, String)> {
    args.iter()
        .enumerate()
        .filter(|(i, _)| *i > 0 && args[i - 1] == "--image")
        .map(|(i, a)| (i, a.clone()))
        .collect()
}

#[test]
fn run_with_an_unknown_image_key_names_it_and_the_cameras() {
    let export = exported(&any_case());
    let err = run_fails(&export, |a| {
        let (i, arg) = image_args(a)[0].clone();
        a[i] = format!(
            "observation.images.nonexistent={}",
            arg.split_once('=').unwrap().1
        );
    });
    assert!(err.contains("observation.images.nonexistent"), "{err}");
}

#[test]
fn run_with_a_missing_camera_names_it() {
    let export = exported(&any_case());
    let mut missing = String::new();
    let err = run_fails(&export, |a| {
        let (i, arg) = image_args(a)[0].clone();
        missing = arg.split_once('=').unwrap().0.to_string();
        a.drain(i - 1..=i);
    });
    assert!(err.contains(&missing), "{err}");
}

#[test]
fn run_with_an_unreadable_image_names_the_file() {
    let export = exported(&any_case());
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-an-image.png");
    std::fs::write(&bad, b"this is text").unwrap();
    let err = run_fails(&export, |a| {
        let (i, arg) = image_args(a)[0].clone();
        a[i] = format!("{}={}", arg.split_once('=').unwrap().0, bad.display());
    });
    assert!(err.contains("not-an-image.png"), "{err}");
}

/// The first case whose policy reads the robot state.
fn case_with_state() -> PathBuf {
    cases()
        .into_iter()
        .find(|c| {
            observations(c)[0]
                .join("expected/state_normalized.npy")
                .is_file()
        })
        .expect("a fixture case with state")
}

fn run_case_fails(case: &Path, edit: impl FnOnce(&mut Vec<String>)) -> String {
    let obs = &observations(case)[0];
    let mut args = run_args(obs);
    edit(&mut args);
    let out = vjx()
        .arg("run")
        .arg(exported(case))
        .args(&args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "run should fail with {args:?}");
    stderr(&out)
}

#[test]
fn run_with_state_of_the_wrong_length_says_how_many_values_are_needed() {
    let case = case_with_state();
    let err = run_case_fails(&case, |a| {
        let s = a.iter_mut().find(|x| x.starts_with("--state=")).unwrap();
        s.push_str(",0.5");
    });
    assert!(err.contains("state"), "{err}");
}

#[test]
fn run_with_non_finite_state_names_the_value() {
    let case = case_with_state();
    let err = run_case_fails(&case, |a| {
        let s = a.iter_mut().find(|x| x.starts_with("--state=")).unwrap();
        let mut values: Vec<&str> = s.trim_start_matches("--state=").split(',').collect();
        values[0] = "NaN";
        *s = format!("--state={}", values.join(","));
    });
    assert!(err.contains("NaN") && err.contains("index 0"), "{err}");
}

#[test]
fn run_with_noise_of_the_wrong_shape_names_both_shapes() {
    let case = any_case();
    let export = exported(&case);
    let dir = tempfile::tempdir().unwrap();
    let noise = dir.path().join("noise.npy");
    ndarray_npy::write_npy(&noise, &ndarray::Array2::<f32>::zeros((2, 3))).unwrap();
    let err = run_fails(&export, |a| {
        a.push("--noise".into());
        a.push(noise.display().to_string());
    });
    assert!(err.contains("[2, 3]"), "{err}");
}

fn copy_export(tag: &str) -> (tempfile::TempDir, PathBuf) {
    let export = exported(&any_case());
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(tag);
    copy_dir(&export, &copy);
    (dir, copy)
}

#[test]
fn run_refuses_an_export_with_another_manifest_version() {
    let (_dir, export) = copy_export("version");
    let path = export.join("manifest.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["format_version"] = serde_json::json!(999);
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    let err = run_fails(&export, |_| {});
    assert!(err.contains("999") && err.contains("version"), "{err}");
}

#[test]
fn run_refuses_an_export_whose_file_fails_its_checksum() {
    let (_dir, export) = copy_export("checksum");
    let path = export.join("dit_step.onnx.data");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = run_fails(&export, |_| {});
    assert!(
        err.contains("dit_step.onnx.data") && err.contains("checksum"),
        "{err}"
    );
}
