//! Reading LeRobot's saved processor pipelines into the normalization and the ordered
//! action post-processing steps.

use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::{json, Value};
use vjx_exporter::lerobot_processors::{
    read_processors, FeatureNorm, NormMode, PolicyFallbacks, PostStep, ProcessorError, Processors,
    POSTPROCESSOR_FILE, PREPROCESSOR_FILE,
};

const PRE_STATS: &str = "policy_preprocessor_step_3_normalizer_processor.safetensors";
const POST_STATS: &str = "policy_postprocessor_step_2_unnormalizer_processor.safetensors";

const STATE_MEAN: [f32; 3] = [0.5, -1.0, 2.0];
const STATE_STD: [f32; 3] = [0.1, 0.2, 0.3];
const ACTION_MIN: [f32; 3] = [-1.0, -2.0, 0.0];
const ACTION_MAX: [f32; 3] = [1.0, 2.0, 1.0];

fn write_stats(path: &Path, stats: &[(&str, Vec<f32>)]) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = stats
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                vec![v.len()],
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(k, shape, b)| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// The stats LeRobot saves for a 3-dim state and a 3-dim action (count included).
fn full_stats() -> Vec<(&'static str, Vec<f32>)> {
    vec![
        ("observation.state.mean", STATE_MEAN.to_vec()),
        ("observation.state.std", STATE_STD.to_vec()),
        ("observation.state.min", vec![0.0; 3]),
        ("observation.state.max", vec![1.0; 3]),
        ("observation.state.count", vec![10.0]),
        ("action.mean", vec![0.0; 3]),
        ("action.std", vec![1.0; 3]),
        ("action.min", ACTION_MIN.to_vec()),
        ("action.max", ACTION_MAX.to_vec()),
        ("action.count", vec![10.0]),
        ("observation.images.front.mean", vec![0.5; 3]),
    ]
}

fn features() -> Value {
    json!({
        "observation.images.front": {"type": "VISUAL", "shape": [3, 64, 64]},
        "observation.state": {"type": "STATE", "shape": [3]},
        "action": {"type": "ACTION", "shape": [3]}
    })
}

fn normalizer_config() -> Value {
    json!({
        "eps": 1e-8,
        "features": features(),
        "norm_map": {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MIN_MAX"}
    })
}

/// LeRobot 0.6.1's preprocessor for VLA-JEPA.
fn default_pre() -> Value {
    json!({
        "name": "policy_preprocessor",
        "steps": [
            {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
            {"registry_name": "to_batch_processor", "config": {}},
            {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": null}},
            {"registry_name": "normalizer_processor", "config": normalizer_config(), "state_file": PRE_STATS}
        ]
    })
}

/// LeRobot 0.6.1's postprocessor with every optional step on (gripper configs lost: `{}`).
fn default_post() -> Value {
    json!({
        "name": "policy_postprocessor",
        "steps": [
            {"registry_name": "vla_jepa_clip_actions", "config": {}},
            {"registry_name": "vla_jepa_pre_snap_gripper", "config": {}},
            {"registry_name": "unnormalizer_processor", "config": normalizer_config(), "state_file": POST_STATS},
            {"registry_name": "vla_jepa_binarize_gripper", "config": {}},
            {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": null}}
        ]
    })
}

struct Checkpoint {
    dir: tempfile::TempDir,
}

impl Checkpoint {
    fn new(pre: Value, post: Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(PREPROCESSOR_FILE),
            serde_json::to_string_pretty(&pre).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.path().join(POSTPROCESSOR_FILE),
            serde_json::to_string_pretty(&post).unwrap(),
        )
        .unwrap();
        write_stats(&dir.path().join(PRE_STATS), &full_stats());
        write_stats(&dir.path().join(POST_STATS), &full_stats());
        Checkpoint { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn read(&self) -> Result<Processors, ProcessorError> {
        self.read_with(&fallbacks_dim(1))
    }

    fn read_with(&self, fallbacks: &PolicyFallbacks) -> Result<Processors, ProcessorError> {
        read_processors(self.dir.path(), fallbacks)
    }
}

/// Fallbacks with the gripper on dim `dim` (in range for the 3-dim test action).
fn fallbacks_dim(dim: usize) -> PolicyFallbacks {
    PolicyFallbacks {
        gripper_dim: dim,
        gripper_threshold: 0.25,
        ..PolicyFallbacks::default()
    }
}

fn with_step(mut pipeline: Value, index: usize, step: Value) -> Value {
    pipeline["steps"]
        .as_array_mut()
        .unwrap()
        .insert(index, step);
    pipeline
}

fn with_config(mut pipeline: Value, index: usize, key: &str, value: Value) -> Value {
    pipeline["steps"][index]["config"][key] = value;
    pipeline
}

#[test]
fn the_default_pipelines_give_mean_std_state_min_max_action_and_ordered_steps() {
    let processors = Checkpoint::new(default_pre(), default_post())
        .read()
        .unwrap();
    assert_eq!(processors.state_key.as_deref(), Some("observation.state"));
    assert_eq!(processors.action_dim, 3);
    assert_eq!(
        processors.normalization.state,
        Some(FeatureNorm {
            mode: NormMode::MeanStd,
            mean: Some(STATE_MEAN.to_vec()),
            std: Some(STATE_STD.to_vec()),
            ..Default::default()
        })
    );
    assert_eq!(
        processors.normalization.action,
        FeatureNorm {
            mode: NormMode::MinMax,
            min: Some(ACTION_MIN.to_vec()),
            max: Some(ACTION_MAX.to_vec()),
            ..Default::default()
        }
    );
    assert_eq!(
        processors.post_steps,
        vec![
            PostStep::Clip {
                min: -1.0,
                max: 1.0
            },
            PostStep::PreSnapGripper {
                dim: 1,
                threshold: 0.25
            },
            PostStep::Unnormalize,
            PostStep::BinarizeGripper {
                dim: 1,
                threshold: 0.25
            },
        ]
    );
}

#[test]
fn gripper_settings_saved_in_the_step_win_over_the_policy_config() {
    let post = with_config(default_post(), 1, "gripper_dim", json!(2));
    let post = with_config(post, 1, "threshold", json!(0.75));
    let post = with_config(post, 3, "gripper_dim", json!(0));
    let steps = Checkpoint::new(default_pre(), post)
        .read()
        .unwrap()
        .post_steps;
    assert_eq!(
        steps[1],
        PostStep::PreSnapGripper {
            dim: 2,
            threshold: 0.75
        }
    );
    assert_eq!(
        steps[3],
        PostStep::BinarizeGripper {
            dim: 0,
            threshold: 0.25
        }
    );
}

#[test]
fn a_gripper_step_outside_the_action_is_a_no_op_as_in_lerobot() {
    let steps = Checkpoint::new(default_pre(), default_post())
        .read_with(&fallbacks_dim(6))
        .unwrap()
        .post_steps;
    assert_eq!(
        steps,
        vec![
            PostStep::Clip {
                min: -1.0,
                max: 1.0
            },
            PostStep::Unnormalize
        ]
    );
}

#[test]
fn the_postprocessor_stats_define_the_action_unnormalization() {
    let checkpoint = Checkpoint::new(default_pre(), default_post());
    let mut stats = full_stats();
    stats.retain(|(k, _)| !k.starts_with("action.m"));
    stats.push(("action.min", vec![-5.0, -5.0, -5.0]));
    stats.push(("action.max", vec![5.0, 5.0, 5.0]));
    write_stats(&checkpoint.path(POST_STATS), &stats);
    let action = checkpoint.read().unwrap().normalization.action;
    assert_eq!(action.min, Some(vec![-5.0; 3]));
}

#[test]
fn relative_actions_become_an_absolute_step_with_the_gripper_masked_out() {
    let relative = json!({"registry_name": "relative_actions_processor", "config": {
        "enabled": true, "exclude_joints": ["gripper"], "action_names": ["x", "y", "Gripper_Left"]}});
    let absolute =
        json!({"registry_name": "absolute_actions_processor", "config": {"enabled": true}});
    let pre = with_step(default_pre(), 3, relative);
    let post = with_step(default_post(), 3, absolute);
    let steps = Checkpoint::new(pre, post).read().unwrap().post_steps;
    assert_eq!(
        steps[3],
        PostStep::AbsoluteActions {
            mask: vec![true, true, false]
        }
    );
    assert!(matches!(steps[4], PostStep::BinarizeGripper { .. }));
}

#[test]
fn relative_actions_without_names_make_every_dim_relative() {
    let relative = json!({"registry_name": "relative_actions_processor", "config": {
        "enabled": true, "exclude_joints": ["gripper"], "action_names": null}});
    let absolute =
        json!({"registry_name": "absolute_actions_processor", "config": {"enabled": true}});
    let steps = Checkpoint::new(
        with_step(default_pre(), 3, relative),
        with_step(default_post(), 3, absolute),
    )
    .read()
    .unwrap()
    .post_steps;
    assert_eq!(
        steps[3],
        PostStep::AbsoluteActions {
            mask: vec![true; 3]
        }
    );
}

#[test]
fn a_disabled_absolute_step_is_left_out() {
    let relative = json!({"registry_name": "relative_actions_processor", "config": {"enabled": false, "exclude_joints": [], "action_names": null}});
    let absolute =
        json!({"registry_name": "absolute_actions_processor", "config": {"enabled": false}});
    let steps = Checkpoint::new(
        with_step(default_pre(), 3, relative),
        with_step(default_post(), 3, absolute),
    )
    .read()
    .unwrap()
    .post_steps;
    assert!(
        !steps
            .iter()
            .any(|s| matches!(s, PostStep::AbsoluteActions { .. })),
        "{steps:?}"
    );
}

#[test]
fn an_absolute_step_without_a_relative_step_is_an_error() {
    let absolute =
        json!({"registry_name": "absolute_actions_processor", "config": {"enabled": true}});
    let err = Checkpoint::new(default_pre(), with_step(default_post(), 3, absolute))
        .read()
        .unwrap_err();
    assert!(
        matches!(err, ProcessorError::NoRelativeStep { .. }),
        "{err:?}"
    );
}

#[test]
fn an_unknown_post_step_is_an_error_naming_it() {
    let post = with_step(
        default_post(),
        2,
        json!({"registry_name": "action_smoothing_processor", "config": {}}),
    );
    let checkpoint = Checkpoint::new(default_pre(), post);
    let err = checkpoint.read().unwrap_err();
    assert!(
        matches!(&err, ProcessorError::UnknownStep { name, index: 2, .. } if name == "action_smoothing_processor"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&checkpoint.path(POSTPROCESSOR_FILE).display().to_string()),
        "{err}"
    );
}

#[test]
fn an_unknown_pre_step_is_an_error_naming_it() {
    let pre = with_step(
        default_pre(),
        0,
        json!({"registry_name": "state_filter_processor", "config": {}}),
    );
    let err = Checkpoint::new(pre, default_post()).read().unwrap_err();
    assert!(
        matches!(&err, ProcessorError::UnknownStep { name, .. } if name == "state_filter_processor"),
        "{err:?}"
    );
}

#[test]
fn an_unregistered_class_step_is_an_error_naming_the_class() {
    let post = with_step(
        default_post(),
        0,
        json!({"class": "my_robot.processors.Smooth", "config": {}}),
    );
    let err = Checkpoint::new(default_pre(), post).read().unwrap_err();
    assert!(
        matches!(&err, ProcessorError::UnknownStep { name, .. } if name == "my_robot.processors.Smooth"),
        "{err:?}"
    );
}

#[test]
fn device_batch_rename_and_image_prep_steps_are_ignored() {
    let pre = with_step(
        default_pre(),
        3,
        json!({"registry_name": "vla_jepa_image_prep", "config": {"resize_to": [224, 224], "expand_channels": true}}),
    );
    let post = with_step(
        default_post(),
        0,
        json!({"registry_name": "to_batch_processor", "config": {}}),
    );
    let processors = Checkpoint::new(pre, post).read().unwrap();
    assert_eq!(processors.post_steps.len(), 4);
}

#[test]
fn a_missing_pipeline_file_says_which() {
    let checkpoint = Checkpoint::new(default_pre(), default_post());
    std::fs::remove_file(checkpoint.path(POSTPROCESSOR_FILE)).unwrap();
    let err = checkpoint.read().unwrap_err();
    assert!(
        matches!(&err, ProcessorError::MissingPipeline { path } if path.ends_with(POSTPROCESSOR_FILE)),
        "{err:?}"
    );
}

#[test]
fn a_pipeline_that_is_not_json_is_a_bad_pipeline() {
    let checkpoint = Checkpoint::new(default_pre(), default_post());
    std::fs::write(checkpoint.path(PREPROCESSOR_FILE), "{\"steps\": [").unwrap();
    let err = checkpoint.read().unwrap_err();
    assert!(matches!(err, ProcessorError::BadPipeline { .. }), "{err:?}");
}

#[test]
fn a_missing_stats_file_names_the_file() {
    let checkpoint = Checkpoint::new(default_pre(), default_post());
    std::fs::remove_file(checkpoint.path(POST_STATS)).unwrap();
    let err = checkpoint.read().unwrap_err();
    assert!(
        matches!(&err, ProcessorError::MissingStatsFile { file, .. } if file.ends_with(POST_STATS)),
        "{err:?}"
    );
}

#[test]
fn a_truncated_stats_file_is_reported_with_the_step() {
    let checkpoint = Checkpoint::new(default_pre(), default_post());
    let bytes = std::fs::read(checkpoint.path(PRE_STATS)).unwrap();
    std::fs::write(checkpoint.path(PRE_STATS), &bytes[..bytes.len() - 4]).unwrap();
    let err = checkpoint.read().unwrap_err();
    assert!(
        matches!(&err, ProcessorError::StatsFile { name, .. } if name == "normalizer_processor"),
        "{err:?}"
    );
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn a_stat_the_mode_needs_is_missing_by_key() {
    let checkpoint = Checkpoint::new(default_pre(), default_post());
    let mut stats = full_stats();
    stats.retain(|(k, _)| *k != "observation.state.std");
    write_stats(&checkpoint.path(PRE_STATS), &stats);
    let err = checkpoint.read().unwrap_err();
    assert!(
        matches!(&err, ProcessorError::MissingStat { key, .. } if key == "observation.state.std"),
        "{err:?}"
    );
    assert!(err.to_string().contains("MEAN_STD"), "{err}");
}

#[test]
fn a_stat_of_the_wrong_width_is_an_error() {
    let checkpoint = Checkpoint::new(default_pre(), default_post());
    let mut stats = full_stats();
    stats.retain(|(k, _)| *k != "action.max");
    stats.push(("action.max", vec![1.0; 4]));
    write_stats(&checkpoint.path(POST_STATS), &stats);
    let err = checkpoint.read().unwrap_err();
    assert!(
        matches!(&err, ProcessorError::StatLength { key, found: 4, expected: 3, .. } if key == "action.max"),
        "{err:?}"
    );
}

#[test]
fn an_unknown_mode_is_unsupported_naming_the_feature() {
    let post = with_config(
        default_post(),
        2,
        "norm_map",
        json!({"STATE": "MEAN_STD", "ACTION": "QUANTILE05"}),
    );
    let err = Checkpoint::new(default_pre(), post).read().unwrap_err();
    assert!(
        matches!(&err, ProcessorError::UnsupportedNormMode { feature, mode, .. } if feature == "action" && mode == "QUANTILE05"),
        "{err:?}"
    );
}

#[test]
fn a_quantiles_action_reads_q01_and_q99() {
    let post = with_config(
        default_post(),
        2,
        "norm_map",
        json!({"STATE": "MEAN_STD", "ACTION": "QUANTILES"}),
    );
    let checkpoint = Checkpoint::new(default_pre(), post);
    let mut stats = full_stats();
    stats.push(("action.q01", vec![-0.5, 0.0, 1.0]));
    stats.push(("action.q99", vec![0.5, 2.0, 1.0]));
    write_stats(&checkpoint.path(POST_STATS), &stats);
    let processors = checkpoint.read().unwrap();
    assert_eq!(
        processors.normalization.action,
        FeatureNorm {
            mode: NormMode::Quantiles,
            q01: Some(vec![-0.5, 0.0, 1.0]),
            q99: Some(vec![0.5, 2.0, 1.0]),
            ..Default::default()
        }
    );
}

#[test]
fn a_quantiles_action_without_q01_names_the_missing_stat() {
    let post = with_config(
        default_post(),
        2,
        "norm_map",
        json!({"STATE": "MEAN_STD", "ACTION": "QUANTILES"}),
    );
    let err = Checkpoint::new(default_pre(), post).read().unwrap_err();
    assert!(
        matches!(&err, ProcessorError::MissingStat { key, .. } if key == "action.q01"),
        "{err:?}"
    );
}

#[test]
fn an_eps_other_than_lerobots_default_is_rejected() {
    let pre = with_config(default_pre(), 3, "eps", json!(1e-5));
    let err = Checkpoint::new(pre, default_post()).read().unwrap_err();
    assert!(
        matches!(&err, ProcessorError::BadStepConfig { name, .. } if name == "normalizer_processor"),
        "{err:?}"
    );
}

#[test]
fn without_a_saved_norm_map_the_policy_mapping_is_used() {
    let mut pre = default_pre();
    pre["steps"][3]["config"]
        .as_object_mut()
        .unwrap()
        .remove("norm_map");
    let fallbacks = PolicyFallbacks {
        normalization_mapping: [("STATE", "MIN_MAX"), ("ACTION", "MIN_MAX")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..fallbacks_dim(1)
    };
    let state = Checkpoint::new(pre, default_post())
        .read_with(&fallbacks)
        .unwrap()
        .normalization
        .state
        .unwrap();
    assert_eq!(
        (state.mode, state.min),
        (NormMode::MinMax, Some(vec![0.0; 3]))
    );
}

#[test]
fn a_feature_type_left_out_of_the_saved_norm_map_is_identity() {
    let pre = with_config(default_pre(), 3, "norm_map", json!({"ACTION": "MIN_MAX"}));
    let state = Checkpoint::new(pre, default_post())
        .read()
        .unwrap()
        .normalization
        .state
        .unwrap();
    assert_eq!(state.mode, NormMode::Identity);
}

#[test]
fn a_state_left_out_of_normalize_observation_keys_is_identity() {
    let pre = with_config(
        default_pre(),
        3,
        "normalize_observation_keys",
        json!(["observation.images.front"]),
    );
    let state = Checkpoint::new(pre, default_post())
        .read()
        .unwrap()
        .normalization
        .state
        .unwrap();
    assert_eq!(state.mode, NormMode::Identity);
}

#[test]
fn a_policy_without_state_has_no_state_normalization() {
    let mut pre = default_pre();
    pre["steps"][3]["config"]["features"]
        .as_object_mut()
        .unwrap()
        .remove("observation.state");
    let processors = Checkpoint::new(pre, default_post()).read().unwrap();
    assert_eq!(
        (processors.state_key, processors.normalization.state),
        (None, None)
    );
}

#[test]
fn policy_fallbacks_come_from_the_policy_config() {
    let config = json!({
        "type": "vla_jepa",
        "normalization_mapping": {"VISUAL": "IDENTITY", "STATE": "MIN_MAX", "ACTION": "MEAN_STD"},
        "gripper_dim": 4,
        "gripper_threshold": 0.1,
        "output_features": {"action": {"type": "ACTION", "shape": [7]}}
    });
    let fallbacks = PolicyFallbacks::from_policy_config(&config);
    assert_eq!(fallbacks.gripper_dim, 4);
    assert_eq!(fallbacks.gripper_threshold, 0.1);
    assert_eq!(fallbacks.action_dim, Some(7));
    assert_eq!(fallbacks.normalization_mapping["STATE"], "MIN_MAX");
}

#[test]
fn the_gripper_dim_is_resolved_from_action_names_when_saved() {
    let config = json!({
        "gripper_dim": 6,
        "action_feature_names": ["x", "y", "z", "left_gripper", "roll"],
        "gripper_joint_names": ["gripper"]
    });
    assert_eq!(PolicyFallbacks::from_policy_config(&config).gripper_dim, 3);
    let defaults = PolicyFallbacks::from_policy_config(&json!({}));
    assert_eq!((defaults.gripper_dim, defaults.gripper_threshold), (6, 0.5));
}

#[test]
fn processors_round_trip_through_json_for_the_manifest() {
    let processors = Checkpoint::new(default_pre(), default_post())
        .read()
        .unwrap();
    let text = serde_json::to_string(&processors).unwrap();
    let back: Processors = serde_json::from_str(&text).unwrap();
    assert_eq!(back, processors);
}

// ---- golden fixtures ----

fn fixture_cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/vla_jepa");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("fixture dir {} is missing: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("checkpoint").is_dir())
        .collect();
    cases.sort();
    assert!(
        !cases.is_empty(),
        "no fixture cases under {}",
        root.display()
    );
    cases
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The step names in `case.json` as the post steps they should become.
fn expected_kinds(post_step_names: &[Value]) -> Vec<&'static str> {
    post_step_names
        .iter()
        .filter_map(|n| match n.as_str().unwrap() {
            "vla_jepa_clip_actions" => Some("clip"),
            "vla_jepa_pre_snap_gripper" => Some("pre_snap_gripper"),
            "unnormalizer_processor" => Some("unnormalize"),
            "absolute_actions_processor" => Some("absolute_actions"),
            "vla_jepa_binarize_gripper" => Some("binarize_gripper"),
            _ => None,
        })
        .collect()
}

fn kind(step: &PostStep) -> &'static str {
    match step {
        PostStep::Clip { .. } => "clip",
        PostStep::PreSnapGripper { .. } => "pre_snap_gripper",
        PostStep::Unnormalize => "unnormalize",
        PostStep::AbsoluteActions { .. } => "absolute_actions",
        PostStep::BinarizeGripper { .. } => "binarize_gripper",
    }
}

#[test]
fn fixture_pipelines_read_into_the_steps_and_stats_upstream_saved() {
    for case in fixture_cases() {
        let checkpoint = case.join("checkpoint");
        let spec = read_json(&case.join("case.json"));
        let config = read_json(&checkpoint.join("config.json"));
        let processors =
            read_processors(&checkpoint, &PolicyFallbacks::from_policy_config(&config))
                .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        let name = case.display();

        assert_eq!(
            processors.action_dim as u64,
            spec["action_dim"].as_u64().unwrap(),
            "{name}"
        );
        let kinds: Vec<&str> = processors.post_steps.iter().map(kind).collect();
        assert_eq!(
            kinds,
            expected_kinds(spec["postprocessor_steps"].as_array().unwrap()),
            "{name}"
        );
        for step in &processors.post_steps {
            if let PostStep::PreSnapGripper { dim, threshold }
            | PostStep::BinarizeGripper { dim, threshold } = step
            {
                assert_eq!((*dim, *threshold), (6, 0.5), "{name}");
            }
        }

        let action = &processors.normalization.action;
        assert_eq!(action.mode, NormMode::MinMax, "{name}");
        let (min, max) = (action.min.as_ref().unwrap(), action.max.as_ref().unwrap());
        assert_eq!(min.len(), processors.action_dim, "{name}");
        assert!(
            min.iter().zip(max).all(|(lo, hi)| lo <= hi),
            "{name}: min > max"
        );

        match spec["state_dim"].as_u64() {
            Some(state_dim) => {
                let state = processors.normalization.state.as_ref().unwrap();
                assert_eq!(state.mode, NormMode::MeanStd, "{name}");
                assert_eq!(
                    state.mean.as_ref().unwrap().len() as u64,
                    state_dim,
                    "{name}"
                );
                assert!(
                    state.std.as_ref().unwrap().iter().all(|s| *s >= 0.0),
                    "{name}"
                );
            }
            None => assert_eq!(processors.normalization.state, None, "{name}"),
        }
    }
}
