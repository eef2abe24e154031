//! LeRobot's checkpoint `config.json` for a `"type": "vla_jepa"` policy (the draccus dump of
//! `VLAJEPAConfig`, LeRobot 0.6.1). Absent keys take the upstream defaults; unknown keys are
//! ignored so that configs written by newer LeRobot releases still load.

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub const POLICY_TYPE: &str = "vla_jepa";
pub const OBS_STATE: &str = "observation.state";
pub const ACTION: &str = "action";

/// Channels of the diffusers `Timesteps` projection inside the DiT's timestep encoder.
pub const TIMESTEP_PROJ_CHANNELS: usize = 256;
/// `FeedForward(mult=4)` hidden width relative to the DiT width.
pub const FF_MULT: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureType {
    #[serde(rename = "STATE")]
    State,
    #[serde(rename = "VISUAL")]
    Visual,
    #[serde(rename = "ENV")]
    Env,
    #[serde(rename = "ACTION")]
    Action,
    #[serde(rename = "REWARD")]
    Reward,
    #[serde(rename = "LANGUAGE")]
    Language,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NormalizationMode {
    #[serde(rename = "MIN_MAX")]
    MinMax,
    #[serde(rename = "MEAN_STD")]
    MeanStd,
    #[serde(rename = "IDENTITY")]
    Identity,
    #[serde(rename = "QUANTILES")]
    Quantiles,
    #[serde(rename = "QUANTILE10")]
    Quantile10,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFeature {
    #[serde(rename = "type")]
    pub kind: FeatureType,
    pub shape: Vec<usize>,
}

/// A `{key: feature}` table kept in file order (the order of the VISUAL keys is the camera
/// order of the prompt).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features(pub Vec<(String, PolicyFeature)>);

impl Features {
    pub fn get(&self, key: &str) -> Option<&PolicyFeature> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, f)| f)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &PolicyFeature)> {
        self.0.iter().map(|(k, f)| (k.as_str(), f))
    }
}

impl<'de> Deserialize<'de> for Features {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Features;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of feature key to {type, shape}, or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Features, E> {
                Ok(Features::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<Features, E> {
                Ok(Features::default())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Features, D::Error> {
                d.deserialize_map(InOrder)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Features, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, feature)) = map.next_entry::<String, PolicyFeature>()? {
                    entries.push((key, feature));
                }
                Ok(Features(entries))
            }
        }
        deserializer.deserialize_option(InOrder)
    }
}

impl Serialize for Features {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, f) in &self.0 {
            map.serialize_entry(k, f)?;
        }
        map.end()
    }
}

/// Attention geometry preset per `action_model_type` (upstream `DIT_PRESETS`): (heads, head_dim).
pub const DIT_PRESETS: [(&str, usize, usize); 3] =
    [("DiT-B", 12, 64), ("DiT-L", 32, 48), ("DiT-test", 2, 8)];

fn dit_preset(model_type: &str) -> Option<(usize, usize)> {
    DIT_PRESETS
        .iter()
        .find(|(name, _, _)| *name == model_type)
        .map(|&(_, heads, head_dim)| (heads, head_dim))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct VlaJepaConfig {
    #[serde(rename = "type")]
    pub policy_type: String,
    pub n_obs_steps: usize,
    pub input_features: Features,
    pub output_features: Features,
    pub device: Option<String>,
    pub use_amp: bool,

    pub chunk_size: usize,
    pub n_action_steps: usize,
    pub normalization_mapping: BTreeMap<String, NormalizationMode>,

    pub qwen_model_name: String,
    pub jepa_encoder_name: String,
    pub freeze_qwen: bool,
    pub enable_world_model: bool,

    pub tokenizer_padding_side: String,
    pub prompt_template: String,
    pub special_action_token: String,
    pub embodied_action_token: String,

    /// The raw field; [`VlaJepaConfig::action_dim`] prefers the `action` output feature.
    pub action_dim: usize,
    /// The raw field; [`VlaJepaConfig::state_dim`] reads the `observation.state` input feature.
    pub state_dim: usize,
    pub use_relative_actions: bool,
    pub relative_exclude_joints: Vec<String>,
    pub action_feature_names: Option<Vec<String>>,

    pub num_action_tokens_per_timestep: usize,
    pub num_embodied_action_tokens_per_instruction: usize,
    pub num_inference_timesteps: usize,

    pub action_hidden_size: usize,
    pub action_model_type: String,
    pub action_num_layers: usize,
    pub action_num_heads: Option<usize>,
    pub action_attention_head_dim: Option<usize>,
    pub action_num_timestep_buckets: usize,
    pub action_max_seq_len: usize,

    pub num_video_frames: usize,
    pub jepa_tubelet_size: usize,
    pub world_model_num_views: Option<usize>,

    pub resize_images_to: Option<[usize; 2]>,
    pub binarize_gripper_action: bool,
    pub pre_snap_gripper_action: bool,
    pub clip_normalized_actions: bool,
    pub gripper_dim: usize,
    pub gripper_threshold: f64,
    pub gripper_joint_names: Vec<String>,
    pub torch_dtype: String,
}

impl Default for VlaJepaConfig {
    /// LeRobot 0.6.1's `VLAJEPAConfig` defaults (fields added after 0.6.1 take the defaults
    /// of the release that introduced them).
    fn default() -> Self {
        let normalization_mapping = [
            ("VISUAL", NormalizationMode::Identity),
            ("STATE", NormalizationMode::MeanStd),
            ("ACTION", NormalizationMode::MinMax),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        VlaJepaConfig {
            policy_type: POLICY_TYPE.to_string(),
            n_obs_steps: 1,
            input_features: Features::default(),
            output_features: Features::default(),
            device: None,
            use_amp: false,
            chunk_size: 7,
            n_action_steps: 7,
            normalization_mapping,
            qwen_model_name: "Qwen/Qwen3-VL-2B-Instruct".to_string(),
            jepa_encoder_name: "facebook/vjepa2-vitl-fpc64-256".to_string(),
            freeze_qwen: false,
            enable_world_model: true,
            tokenizer_padding_side: "left".to_string(),
            prompt_template: "Your task is {instruction}. Infer the temporal dynamics from frames \
                              {actions} and produce the corresponding policy actions {e_actions}."
                .to_string(),
            special_action_token: "<|action_{}|>".to_string(),
            embodied_action_token: "<|embodied_action|>".to_string(),
            action_dim: 7,
            state_dim: 8,
            use_relative_actions: false,
            relative_exclude_joints: vec!["gripper".to_string()],
            action_feature_names: None,
            num_action_tokens_per_timestep: 8,
            num_embodied_action_tokens_per_instruction: 32,
            num_inference_timesteps: 4,
            action_hidden_size: 1024,
            action_model_type: "DiT-B".to_string(),
            action_num_layers: 16,
            action_num_heads: None,
            action_attention_head_dim: None,
            action_num_timestep_buckets: 1000,
            action_max_seq_len: 1024,
            num_video_frames: 8,
            jepa_tubelet_size: 2,
            world_model_num_views: None,
            resize_images_to: None,
            binarize_gripper_action: true,
            pre_snap_gripper_action: true,
            clip_normalized_actions: true,
            gripper_dim: 6,
            gripper_threshold: 0.5,
            gripper_joint_names: vec!["gripper".to_string()],
            torch_dtype: "bfloat16".to_string(),
        }
    }
}

/// The action head's DiT geometry, resolved from `action_model_type` and its overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DitDims {
    pub heads: usize,
    pub head_dim: usize,
    /// Width of the DiT token stream: `heads * head_dim`.
    pub inner_dim: usize,
    pub num_layers: usize,
    /// `FeedForward` hidden width (`4 * inner_dim`).
    pub ff_dim: usize,
    /// `action_hidden_size`: DiT output width, action decoder and state encoder hidden width.
    pub output_dim: usize,
    /// Learned future-query tokens between the state token and the action tokens.
    pub num_future_tokens: usize,
    /// Action tokens per chunk (`chunk_size`).
    pub chunk: usize,
    /// Rows of the learned position-embedding table.
    pub position_rows: usize,
}

impl VlaJepaConfig {
    pub fn from_json_str(s: &str) -> serde_json::Result<Self> {
        let cfg: VlaJepaConfig = serde_json::from_str(s)?;
        cfg.check()
            .map_err(<serde_json::Error as de::Error>::custom)?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        if self.policy_type != POLICY_TYPE {
            return Err(format!(
                "policy type is `{}`, expected `{POLICY_TYPE}`",
                self.policy_type
            ));
        }
        if dit_preset(&self.action_model_type).is_none() {
            let known: Vec<&str> = DIT_PRESETS.iter().map(|p| p.0).collect();
            return Err(format!(
                "unknown action_model_type `{}` (known: {})",
                self.action_model_type,
                known.join(", ")
            ));
        }
        if self.camera_keys().is_empty() {
            return Err("input_features has no VISUAL feature (VLA-JEPA needs a camera)".into());
        }
        Ok(())
    }

    /// The VISUAL input features, in file order (the order the views enter the prompt).
    pub fn camera_keys(&self) -> Vec<String> {
        self.input_features
            .iter()
            .filter(|(_, f)| f.kind == FeatureType::Visual)
            .map(|(k, _)| k.to_string())
            .collect()
    }

    /// Width of the robot state, or `None` when the policy takes no `observation.state`.
    pub fn state_dim(&self) -> Option<usize> {
        self.input_features
            .get(OBS_STATE)
            .filter(|f| f.kind == FeatureType::State)
            .map(|f| f.shape.first().copied().unwrap_or(0))
            .filter(|&s| s > 0)
    }

    /// Width of one action: the `action` output feature, else the `action_dim` field.
    pub fn action_dim(&self) -> usize {
        self.output_features
            .get(ACTION)
            .filter(|f| f.kind == FeatureType::Action)
            .and_then(|f| f.shape.first().copied())
            .unwrap_or(self.action_dim)
    }

    pub fn dit_dims(&self) -> DitDims {
        // `from_json_str` rejects unknown model types, as upstream's preset lookup does.
        let (preset_heads, preset_head_dim) = dit_preset(&self.action_model_type)
            .unwrap_or_else(|| panic!("unknown action_model_type `{}`", self.action_model_type));
        let heads = self.action_num_heads.unwrap_or(preset_heads);
        let head_dim = self.action_attention_head_dim.unwrap_or(preset_head_dim);
        let inner_dim = heads * head_dim;
        DitDims {
            heads,
            head_dim,
            inner_dim,
            num_layers: self.action_num_layers,
            ff_dim: FF_MULT * inner_dim,
            output_dim: self.action_hidden_size,
            num_future_tokens: self.num_embodied_action_tokens_per_instruction,
            chunk: self.chunk_size,
            position_rows: self
                .action_max_seq_len
                .max(self.chunk_size + self.num_action_tokens_per_timestep + 4),
        }
    }

    /// Action-token groups in the prompt: one per predicted video step after the first.
    /// Uses `jepa_tubelet_size` (the V-JEPA2 encoders in use have tubelet size 2 as well).
    pub fn num_action_prompt_steps(&self) -> usize {
        (self.num_video_frames / self.jepa_tubelet_size.max(1)).saturating_sub(1)
    }

    /// Gripper index: the first `action_feature_names` entry matching a gripper joint name,
    /// else `gripper_dim`.
    pub fn resolved_gripper_dim(&self) -> usize {
        let (Some(names), false) = (
            &self.action_feature_names,
            self.gripper_joint_names.is_empty(),
        ) else {
            return self.gripper_dim;
        };
        let wanted: Vec<String> = self
            .gripper_joint_names
            .iter()
            .filter(|n| !n.is_empty())
            .map(|n| n.to_lowercase())
            .collect();
        names
            .iter()
            .position(|name| {
                let lowered = name.to_lowercase();
                wanted
                    .iter()
                    .any(|w| *w == lowered || lowered.contains(w.as_str()))
            })
            .unwrap_or(self.gripper_dim)
    }
}
