//! Reads a LeRobot checkpoint's saved processor pipelines (`policy_preprocessor.json`,
//! `policy_postprocessor.json` and each step's stats safetensors) into what the runtime
//! needs: the state/action normalization and the ordered action post-processing steps.
//!
//! Step semantics follow LeRobot's `normalize_processor.py`, `relative_action_processor.py`
//! and `policies/vla_jepa/processor_vla_jepa.py`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::safetensors_weights::{SafetensorsWeights, WeightsError};
pub use vjx_format::normalization::{FeatureNorm, NormMode, Normalization, PostStep};

pub const PREPROCESSOR_FILE: &str = "policy_preprocessor.json";
pub const POSTPROCESSOR_FILE: &str = "policy_postprocessor.json";

/// The key LeRobot's (un)normalizer always uses for the action, whatever the features say.
const ACTION_KEY: &str = "action";
const PREFERRED_STATE_KEY: &str = "observation.state";
/// The only epsilon the runtime implements (LeRobot's default).
const SUPPORTED_EPS: f64 = 1e-8;
/// The clip step's fixed bounds (`action.clamp(-1, 1)`).
const CLIP_BOUND: f32 = 1.0;

/// Steps that only move, batch or rename tensors, or only touch images.
const PASSIVE_STEPS: &[&str] = &[
    "device_processor",
    "to_batch_processor",
    "to_batch_processor_action",
    "to_batch_processor_observation",
    "to_batch_processor_complementary_data",
    "rename_observations_processor",
    "vla_jepa_image_prep",
];

#[derive(Debug, Error)]
pub enum ProcessorError {
    #[error("processor pipeline {path} does not exist (is this a LeRobot checkpoint directory?)")]
    MissingPipeline { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid processor pipeline: {reason}")]
    BadPipeline { path: PathBuf, reason: String },
    #[error(
        "step {index} `{name}` of {pipeline} is not supported: vjx does not know what it does \
         to the state or the actions, so it cannot reproduce it"
    )]
    UnknownStep {
        pipeline: PathBuf,
        index: usize,
        name: String,
    },
    #[error("step {index} `{name}` of {pipeline} has an unusable config: {reason}")]
    BadStepConfig {
        pipeline: PathBuf,
        index: usize,
        name: String,
        reason: String,
    },
    #[error(
        "step {index} `{name}` of {pipeline} normalizes `{feature}` with {mode}; \
         vjx supports MEAN_STD, MIN_MAX, QUANTILES, QUANTILE10 and IDENTITY"
    )]
    UnsupportedNormMode {
        pipeline: PathBuf,
        index: usize,
        name: String,
        feature: String,
        mode: String,
    },
    #[error(
        "step {index} `{name}` of {pipeline} needs its stats file {file}, which does not exist"
    )]
    MissingStatsFile {
        pipeline: PathBuf,
        index: usize,
        name: String,
        file: PathBuf,
    },
    #[error("stats of step {index} `{name}` of {pipeline}: {source}")]
    StatsFile {
        pipeline: PathBuf,
        index: usize,
        name: String,
        #[source]
        source: Box<WeightsError>,
    },
    #[error("`{feature}` is normalized with {mode} but {file} has no `{key}`")]
    MissingStat {
        file: PathBuf,
        feature: String,
        mode: String,
        key: String,
    },
    #[error("`{key}` in {file} has {found} values, but `{feature}` has {expected}")]
    StatLength {
        file: PathBuf,
        key: String,
        feature: String,
        found: usize,
        expected: usize,
    },
    #[error(
        "{pipeline} converts relative actions back to absolute, but {preprocessor} has no \
         enabled `relative_actions_processor` step saying which joints are relative"
    )]
    NoRelativeStep {
        pipeline: PathBuf,
        preprocessor: PathBuf,
    },
    #[error(
        "the action width is unknown: no `action` feature or stats in {preprocessor} or \
         {postprocessor}, and none given from the policy config"
    )]
    UnknownActionDim {
        preprocessor: PathBuf,
        postprocessor: PathBuf,
    },
}

/// Values from the policy's `config.json`, used where the saved pipelines are silent
/// (LeRobot 0.6.1 saves the gripper steps with an empty config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyFallbacks {
    /// Feature type (`STATE`, `ACTION`, `VISUAL`) → mode (`MEAN_STD`, `MIN_MAX`, `IDENTITY`).
    pub normalization_mapping: BTreeMap<String, String>,
    pub gripper_dim: usize,
    pub gripper_threshold: f32,
    pub action_dim: Option<usize>,
}

impl Default for PolicyFallbacks {
    /// VLA-JEPA's config defaults.
    fn default() -> Self {
        let mapping = [
            ("VISUAL", "IDENTITY"),
            ("STATE", "MEAN_STD"),
            ("ACTION", "MIN_MAX"),
        ];
        PolicyFallbacks {
            normalization_mapping: mapping
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            gripper_dim: 6,
            gripper_threshold: 0.5,
            action_dim: None,
        }
    }
}

impl PolicyFallbacks {
    /// Reads the fallbacks from a policy `config.json`, keeping the defaults for absent keys.
    /// The gripper index is resolved from `action_feature_names` the way LeRobot's
    /// `resolved_gripper_dim` does, when the names are saved.
    pub fn from_policy_config(config: &Value) -> Self {
        let mut out = PolicyFallbacks::default();
        if let Some(mapping) = config
            .get("normalization_mapping")
            .and_then(Value::as_object)
        {
            out.normalization_mapping = mapping
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect();
        }
        if let Some(dim) = config.get("gripper_dim").and_then(Value::as_u64) {
            out.gripper_dim = dim as usize;
        }
        if let Some(threshold) = config.get("gripper_threshold").and_then(Value::as_f64) {
            out.gripper_threshold = threshold as f32;
        }
        let names = string_list(config.get("action_feature_names"));
        let gripper_names = config
            .get("gripper_joint_names")
            .map(|v| string_list(Some(v)).unwrap_or_default())
            .unwrap_or_else(|| vec!["gripper".to_string()]);
        if let Some(index) = names.and_then(|n| find_named_dim(&n, &gripper_names)) {
            out.gripper_dim = index;
        }
        out.action_dim = config
            .pointer("/output_features/action/shape/0")
            .and_then(Value::as_u64)
            .map(|d| d as usize);
        out
    }
}

/// What the exporter writes into the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Processors {
    pub normalization: Normalization,
    /// The state feature's key (`observation.state`), when the policy takes a state.
    pub state_key: Option<String>,
    pub action_dim: usize,
    /// In the order the postprocessor applies them.
    pub post_steps: Vec<PostStep>,
}

/// One step as saved by LeRobot's `DataProcessorPipeline.save_pretrained`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineStep {
    #[serde(default)]
    pub registry_name: Option<String>,
    /// Set instead of `registry_name` for steps that are not in LeRobot's registry.
    #[serde(default)]
    pub class: Option<String>,
    #[serde(default)]
    pub config: Value,
    #[serde(default)]
    pub state_file: Option<String>,
}

impl PipelineStep {
    pub fn name(&self) -> &str {
        self.registry_name
            .as_deref()
            .or(self.class.as_deref())
            .unwrap_or("<unnamed>")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub path: PathBuf,
    pub name: String,
    pub steps: Vec<PipelineStep>,
}

pub fn read_pipeline(path: impl AsRef<Path>) -> Result<Pipeline, ProcessorError> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        name: Option<String>,
        steps: Vec<PipelineStep>,
    }
    let path = path.as_ref().to_path_buf();
    let text = std::fs::read_to_string(&path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ProcessorError::MissingPipeline { path: path.clone() },
        _ => ProcessorError::Io {
            path: path.clone(),
            source,
        },
    })?;
    let file: File = serde_json::from_str(&text).map_err(|e| ProcessorError::BadPipeline {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(Pipeline {
        name: file.name.unwrap_or_default(),
        path,
        steps: file.steps,
    })
}

/// A stats file: `"{feature}.{stat}"` → values (any float dtype, as f32).
pub fn read_stats(path: impl AsRef<Path>) -> Result<BTreeMap<String, Vec<f32>>, WeightsError> {
    let weights = SafetensorsWeights::open(path)?;
    weights
        .names()
        .into_iter()
        .map(|name| Ok((name.to_string(), weights.tensor_f32(name)?.data)))
        .collect()
}

/// Reads both pipelines of the checkpoint in `dir`.
pub fn read_processors(
    dir: impl AsRef<Path>,
    fallbacks: &PolicyFallbacks,
) -> Result<Processors, ProcessorError> {
    let dir = dir.as_ref();
    let pre = read_pipeline(dir.join(PREPROCESSOR_FILE))?;
    let post = read_pipeline(dir.join(POSTPROCESSOR_FILE))?;
    processors_from(&pre, &post, fallbacks)
}

/// The normalizer's view of a step config (`features`, `norm_map`, `eps`, ...).
#[derive(Debug, Deserialize)]
struct NormalizerConfig {
    #[serde(default)]
    eps: Option<f64>,
    #[serde(default)]
    features: BTreeMap<String, FeatureSpec>,
    #[serde(default)]
    norm_map: Option<BTreeMap<String, String>>,
    #[serde(default)]
    normalize_observation_keys: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct FeatureSpec {
    #[serde(rename = "type")]
    feature_type: String,
    #[serde(default)]
    shape: Vec<usize>,
}

/// A (un)normalizer step with its stats loaded.
struct NormalizerStep {
    config: NormalizerConfig,
    stats: BTreeMap<String, Vec<f32>>,
    stats_file: PathBuf,
    index: usize,
    name: String,
}

#[derive(Debug, Default, Deserialize)]
struct RelativeConfig {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    exclude_joints: Vec<String>,
    #[serde(default)]
    action_names: Option<Vec<String>>,
}

/// A post step whose action-width-dependent details are settled once all steps are read.
enum PendingPostStep {
    Ready(PostStep),
    Gripper {
        binarize: bool,
        dim: usize,
        threshold: f32,
    },
    Absolute,
}

pub fn processors_from(
    pre: &Pipeline,
    post: &Pipeline,
    fallbacks: &PolicyFallbacks,
) -> Result<Processors, ProcessorError> {
    let mut normalizer: Option<NormalizerStep> = None;
    let mut relative: Option<RelativeConfig> = None;
    for (index, step) in pre.steps.iter().enumerate() {
        match step.registry_name.as_deref() {
            Some("normalizer_processor") => {
                normalizer = Some(load_normalizer(pre, index, step)?);
            }
            Some("relative_actions_processor") => {
                relative = Some(step_config(pre, index, step)?);
            }
            Some(name) if PASSIVE_STEPS.contains(&name) => {}
            _ => return Err(unknown_step(pre, index, step)),
        }
    }

    let mut unnormalizer: Option<NormalizerStep> = None;
    let mut pending = Vec::new();
    for (index, step) in post.steps.iter().enumerate() {
        let next = match step.registry_name.as_deref() {
            Some("vla_jepa_clip_actions") => PendingPostStep::Ready(PostStep::Clip {
                min: -CLIP_BOUND,
                max: CLIP_BOUND,
            }),
            Some(name @ ("vla_jepa_pre_snap_gripper" | "vla_jepa_binarize_gripper")) => {
                let (dim, threshold) = gripper_config(post, index, step, fallbacks)?;
                PendingPostStep::Gripper {
                    binarize: name == "vla_jepa_binarize_gripper",
                    dim,
                    threshold,
                }
            }
            Some("unnormalizer_processor") => {
                unnormalizer = Some(load_normalizer(post, index, step)?);
                PendingPostStep::Ready(PostStep::Unnormalize)
            }
            Some("absolute_actions_processor") => {
                #[derive(Deserialize)]
                struct AbsoluteConfig {
                    #[serde(default)]
                    enabled: bool,
                }
                let config: AbsoluteConfig = step_config(post, index, step)?;
                if !config.enabled {
                    continue;
                }
                PendingPostStep::Absolute
            }
            Some(name) if PASSIVE_STEPS.contains(&name) => continue,
            _ => return Err(unknown_step(post, index, step)),
        };
        pending.push(next);
    }

    let action_dim = [&unnormalizer, &normalizer]
        .into_iter()
        .flatten()
        .find_map(|n| n.action_width())
        .or(fallbacks.action_dim)
        .ok_or_else(|| ProcessorError::UnknownActionDim {
            preprocessor: pre.path.clone(),
            postprocessor: post.path.clone(),
        })?;

    let mut post_steps = Vec::new();
    for step in pending {
        match step {
            PendingPostStep::Ready(step) => post_steps.push(step),
            // LeRobot leaves the action untouched when the gripper index is out of range.
            PendingPostStep::Gripper { dim, .. } if dim >= action_dim => {}
            PendingPostStep::Gripper {
                binarize: true,
                dim,
                threshold,
            } => post_steps.push(PostStep::BinarizeGripper { dim, threshold }),
            PendingPostStep::Gripper {
                binarize: false,
                dim,
                threshold,
            } => post_steps.push(PostStep::PreSnapGripper { dim, threshold }),
            PendingPostStep::Absolute => {
                let relative = relative.as_ref().filter(|r| r.enabled).ok_or_else(|| {
                    ProcessorError::NoRelativeStep {
                        pipeline: post.path.clone(),
                        preprocessor: pre.path.clone(),
                    }
                })?;
                post_steps.push(PostStep::AbsoluteActions {
                    mask: relative_mask(relative, action_dim),
                });
            }
        }
    }

    let (state_key, state) = match &normalizer {
        Some(n) => match n.state_key(pre)? {
            Some(key) => {
                let norm = n.feature_norm(pre, &key, fallbacks)?;
                (Some(key), Some(norm))
            }
            None => (None, None),
        },
        None => (None, None),
    };
    // The postprocessor's unnormalizer is what acts on the actions; the preprocessor's
    // normalizer carries the same stats and stands in when there is none.
    let action = match unnormalizer.as_ref().or(normalizer.as_ref()) {
        Some(n) => n.feature_norm(
            if unnormalizer.is_some() { post } else { pre },
            ACTION_KEY,
            fallbacks,
        )?,
        None => identity(),
    };

    Ok(Processors {
        normalization: Normalization { state, action },
        state_key,
        action_dim,
        post_steps,
    })
}

fn unknown_step(pipeline: &Pipeline, index: usize, step: &PipelineStep) -> ProcessorError {
    ProcessorError::UnknownStep {
        pipeline: pipeline.path.clone(),
        index,
        name: step.name().to_string(),
    }
}

fn bad_config(
    pipeline: &Pipeline,
    index: usize,
    step: &PipelineStep,
    reason: String,
) -> ProcessorError {
    ProcessorError::BadStepConfig {
        pipeline: pipeline.path.clone(),
        index,
        name: step.name().to_string(),
        reason,
    }
}

fn step_config<T: serde::de::DeserializeOwned>(
    pipeline: &Pipeline,
    index: usize,
    step: &PipelineStep,
) -> Result<T, ProcessorError> {
    let config = if step.config.is_null() {
        Value::Object(Default::default())
    } else {
        step.config.clone()
    };
    serde_json::from_value(config).map_err(|e| bad_config(pipeline, index, step, e.to_string()))
}

/// The gripper index and threshold from the step config, else from the policy config.
fn gripper_config(
    pipeline: &Pipeline,
    index: usize,
    step: &PipelineStep,
    fallbacks: &PolicyFallbacks,
) -> Result<(usize, f32), ProcessorError> {
    #[derive(Deserialize)]
    struct GripperConfig {
        #[serde(default)]
        gripper_dim: Option<usize>,
        #[serde(default)]
        threshold: Option<f32>,
    }
    let config: GripperConfig = step_config(pipeline, index, step)?;
    Ok((
        config.gripper_dim.unwrap_or(fallbacks.gripper_dim),
        config.threshold.unwrap_or(fallbacks.gripper_threshold),
    ))
}

fn load_normalizer(
    pipeline: &Pipeline,
    index: usize,
    step: &PipelineStep,
) -> Result<NormalizerStep, ProcessorError> {
    let config: NormalizerConfig = step_config(pipeline, index, step)?;
    if let Some(eps) = config.eps {
        if eps != SUPPORTED_EPS {
            return Err(bad_config(
                pipeline,
                index,
                step,
                format!("eps {eps} differs from the {SUPPORTED_EPS} the runtime implements"),
            ));
        }
    }
    let base = pipeline.path.parent().unwrap_or(Path::new("."));
    let (stats, stats_file) = match &step.state_file {
        Some(file) => {
            let path = base.join(file);
            if !path.is_file() {
                return Err(ProcessorError::MissingStatsFile {
                    pipeline: pipeline.path.clone(),
                    index,
                    name: step.name().to_string(),
                    file: path,
                });
            }
            let stats = read_stats(&path).map_err(|source| ProcessorError::StatsFile {
                pipeline: pipeline.path.clone(),
                index,
                name: step.name().to_string(),
                source: Box::new(source),
            })?;
            (stats, path)
        }
        // Without a state file LeRobot has no stats and passes everything through.
        None => (BTreeMap::new(), pipeline.path.clone()),
    };
    Ok(NormalizerStep {
        config,
        stats,
        stats_file,
        index,
        name: step.name().to_string(),
    })
}

impl NormalizerStep {
    /// The state feature: the one STATE feature, or `observation.state` among several.
    fn state_key(&self, pipeline: &Pipeline) -> Result<Option<String>, ProcessorError> {
        let states: Vec<&String> = self
            .config
            .features
            .iter()
            .filter(|(_, f)| f.feature_type == "STATE")
            .map(|(k, _)| k)
            .collect();
        match states.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((*one).clone())),
            many if many.iter().any(|k| *k == PREFERRED_STATE_KEY) => {
                Ok(Some(PREFERRED_STATE_KEY.to_string()))
            }
            many => Err(ProcessorError::BadStepConfig {
                pipeline: pipeline.path.clone(),
                index: self.index,
                name: self.name.clone(),
                reason: format!(
                    "several STATE features {many:?} and none is `{PREFERRED_STATE_KEY}`"
                ),
            }),
        }
    }

    /// The action width from the `action` feature's shape, else from its stats.
    fn action_width(&self) -> Option<usize> {
        if let Some(spec) = self.config.features.get(ACTION_KEY) {
            if !spec.shape.is_empty() {
                return Some(spec.shape.iter().product());
            }
        }
        // Not `action.count`, which LeRobot also saves, with one value.
        ["min", "max", "mean", "std", "q01", "q99", "q10", "q90"]
            .iter()
            .find_map(|stat| self.stats.get(&format!("{ACTION_KEY}.{stat}")))
            .map(Vec::len)
    }

    fn feature_type_of(&self, key: &str) -> &str {
        if key == ACTION_KEY {
            return "ACTION";
        }
        self.config
            .features
            .get(key)
            .map(|f| f.feature_type.as_str())
            .unwrap_or("")
    }

    fn feature_norm(
        &self,
        pipeline: &Pipeline,
        key: &str,
        fallbacks: &PolicyFallbacks,
    ) -> Result<FeatureNorm, ProcessorError> {
        let feature_type = self.feature_type_of(key);
        let excluded = key != ACTION_KEY
            && self
                .config
                .normalize_observation_keys
                .as_ref()
                .is_some_and(|keys| !keys.iter().any(|k| k == key));
        // A norm_map saved in the step wins; types it leaves out are IDENTITY, as in LeRobot.
        let mode_name = match &self.config.norm_map {
            Some(map) => map.get(feature_type).cloned(),
            None => fallbacks.normalization_mapping.get(feature_type).cloned(),
        }
        .unwrap_or_else(|| "IDENTITY".to_string());
        let mode = match mode_name.as_str() {
            "IDENTITY" => NormMode::Identity,
            "MEAN_STD" => NormMode::MeanStd,
            "MIN_MAX" => NormMode::MinMax,
            "QUANTILES" => NormMode::Quantiles,
            "QUANTILE10" => NormMode::Quantile10,
            other => {
                return Err(ProcessorError::UnsupportedNormMode {
                    pipeline: pipeline.path.clone(),
                    index: self.index,
                    name: self.name.clone(),
                    feature: key.to_string(),
                    mode: other.to_string(),
                })
            }
        };
        let prefix = format!("{key}.");
        let has_stats = self.stats.keys().any(|k| k.starts_with(&prefix));
        // LeRobot passes a feature through unchanged when it has no stats at all.
        if excluded || mode == NormMode::Identity || !has_stats {
            return Ok(identity());
        }
        let width = self
            .config
            .features
            .get(key)
            .filter(|f| !f.shape.is_empty())
            .map(|f| f.shape.iter().product::<usize>());
        let stat = |name: &str| -> Result<Vec<f32>, ProcessorError> {
            let stat_key = format!("{key}.{name}");
            let values = self
                .stats
                .get(&stat_key)
                .ok_or_else(|| ProcessorError::MissingStat {
                    file: self.stats_file.clone(),
                    feature: key.to_string(),
                    mode: mode_name.clone(),
                    key: stat_key.clone(),
                })?;
            if let Some(expected) = width {
                if values.len() != expected {
                    return Err(ProcessorError::StatLength {
                        file: self.stats_file.clone(),
                        key: stat_key,
                        feature: key.to_string(),
                        found: values.len(),
                        expected,
                    });
                }
            }
            Ok(values.clone())
        };
        let norm = match mode {
            NormMode::MeanStd => FeatureNorm {
                mode,
                mean: Some(stat("mean")?),
                std: Some(stat("std")?),
                ..Default::default()
            },
            NormMode::MinMax => FeatureNorm {
                mode,
                min: Some(stat("min")?),
                max: Some(stat("max")?),
                ..Default::default()
            },
            NormMode::Quantiles => FeatureNorm {
                mode,
                q01: Some(stat("q01")?),
                q99: Some(stat("q99")?),
                ..Default::default()
            },
            NormMode::Quantile10 => FeatureNorm {
                mode,
                q10: Some(stat("q10")?),
                q90: Some(stat("q90")?),
                ..Default::default()
            },
            NormMode::Identity => identity(),
        };
        check_same_width(&norm, key, &self.stats_file)?;
        Ok(norm)
    }
}

fn check_same_width(norm: &FeatureNorm, key: &str, file: &Path) -> Result<(), ProcessorError> {
    let stats = [
        ("mean", &norm.mean),
        ("std", &norm.std),
        ("min", &norm.min),
        ("max", &norm.max),
        ("q01", &norm.q01),
        ("q99", &norm.q99),
        ("q10", &norm.q10),
        ("q90", &norm.q90),
    ];
    let present: Vec<(&str, usize)> = stats
        .iter()
        .filter_map(|(n, v)| Some((*n, v.as_ref()?.len())))
        .collect();
    if let Some(&(first, expected)) = present.first() {
        if let Some(&(name, found)) = present.iter().find(|(_, len)| *len != expected) {
            return Err(ProcessorError::StatLength {
                file: file.to_path_buf(),
                key: format!("{key}.{name}"),
                feature: format!("{key} (per `{key}.{first}`)"),
                found,
                expected,
            });
        }
    }
    Ok(())
}

fn identity() -> FeatureNorm {
    FeatureNorm::default()
}

/// Which action dims are relative to the state: all of them, except those whose name
/// matches an excluded joint (equal to it or containing it, case-insensitively).
fn relative_mask(relative: &RelativeConfig, action_dim: usize) -> Vec<bool> {
    let tokens: Vec<String> = relative
        .exclude_joints
        .iter()
        .filter(|j| !j.is_empty())
        .map(|j| j.to_lowercase())
        .collect();
    let mut mask = vec![true; action_dim];
    if let (false, Some(names)) = (tokens.is_empty(), &relative.action_names) {
        for (slot, name) in mask.iter_mut().zip(names) {
            let name = name.to_lowercase();
            *slot = !tokens.iter().any(|t| name.contains(t.as_str()));
        }
    }
    mask
}

fn string_list(value: Option<&Value>) -> Option<Vec<String>> {
    value?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// The first name that equals or contains one of `wanted` (case-insensitive).
fn find_named_dim(names: &[String], wanted: &[String]) -> Option<usize> {
    let wanted: Vec<String> = wanted
        .iter()
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect();
    names.iter().position(|n| {
        let n = n.to_lowercase();
        wanted.iter().any(|w| n.contains(w.as_str()))
    })
}
