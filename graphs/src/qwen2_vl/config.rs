//! The Qwen2-VL `config.json` as DexVLA ships it (transformers 4.4x layout: the text fields at
//! the top level, the vision tower under `vision_config`).

use crate::blocks::attention::GroupedHeads;
use crate::blocks::decoder::DecoderDims;
use crate::qwen3_vl::rope::sectioned_mrope_axes;
use crate::qwen3_vl::VisionConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Qwen2VlConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub intermediate_size: usize,
    pub vocab_size: usize,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default = "default_text_act")]
    pub hidden_act: String,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(default = "default_image_token_id")]
    pub image_token_id: i64,
    pub vision_config: Qwen2VlVisionConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RopeScaling {
    #[serde(default)]
    pub mrope_section: Option<Vec<usize>>,
}

/// Saved as a diff against `Qwen2VLVisionConfig`'s defaults (the 2B tower's), so every field
/// has that default.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Qwen2VlVisionConfig {
    #[serde(default = "default_depth")]
    pub depth: usize,
    #[serde(default = "default_embed_dim")]
    pub embed_dim: usize,
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: f64,
    #[serde(default = "default_vision_heads")]
    pub num_heads: usize,
    /// The text model's width: what the merger projects to (the text config's when absent).
    #[serde(default)]
    pub hidden_size: Option<usize>,
    #[serde(default = "default_in_chans")]
    pub in_chans: usize,
    #[serde(default = "default_patch_size")]
    pub patch_size: usize,
    #[serde(default = "default_merge_size")]
    pub spatial_merge_size: usize,
    #[serde(default = "default_temporal_patch_size")]
    pub temporal_patch_size: usize,
    #[serde(default = "default_vision_act")]
    pub hidden_act: String,
}

fn default_rms_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f64 {
    1_000_000.0
}
fn default_text_act() -> String {
    "silu".to_string()
}
fn default_true() -> bool {
    true
}
fn default_image_token_id() -> i64 {
    151655
}
fn default_depth() -> usize {
    32
}
fn default_embed_dim() -> usize {
    1280
}
fn default_mlp_ratio() -> f64 {
    4.0
}
fn default_vision_heads() -> usize {
    16
}
fn default_in_chans() -> usize {
    3
}
fn default_patch_size() -> usize {
    14
}
fn default_merge_size() -> usize {
    2
}
fn default_temporal_patch_size() -> usize {
    2
}
fn default_vision_act() -> String {
    "quick_gelu".to_string()
}

impl Qwen2VlConfig {
    pub fn from_json_str(s: &str) -> serde_json::Result<Self> {
        serde_json::from_str(s)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// `[T, H, W]` frequency counts of the M-RoPE sections (they sum to head_dim / 2).
    pub fn mrope_section(&self) -> Vec<usize> {
        self.rope_scaling
            .as_ref()
            .and_then(|r| r.mrope_section.clone())
            .unwrap_or_else(|| vec![16, 24, 24])
    }

    /// The position row (T, H or W) that turns each rotary frequency.
    pub fn mrope_axes(&self) -> Vec<usize> {
        sectioned_mrope_axes(&self.mrope_section(), self.head_dim() / 2)
    }

    /// The vision tower in the shape the shared Qwen-VL vision graph reads.
    pub fn tower(&self) -> VisionConfig {
        self.vision_config.tower(self.hidden_size)
    }

    pub fn decoder_dims(&self) -> DecoderDims {
        DecoderDims {
            hidden: self.hidden_size,
            attention: GroupedHeads {
                heads: self.num_attention_heads,
                kv_heads: self.num_key_value_heads,
                head_dim: self.head_dim(),
            },
            intermediate: self.intermediate_size,
            rms_norm_eps: self.rms_norm_eps as f32,
        }
    }
}

impl Qwen2VlVisionConfig {
    /// The tower in the shape the shared Qwen-VL vision graph reads: no learned positions,
    /// no DeepStack taps, the MLP `mlp_ratio` times wider than the tower, the merger out to
    /// `text_hidden` unless the config says otherwise.
    pub fn tower(&self, text_hidden: usize) -> VisionConfig {
        VisionConfig {
            depth: self.depth,
            hidden_size: self.embed_dim,
            num_heads: self.num_heads,
            intermediate_size: (self.embed_dim as f64 * self.mlp_ratio).round() as usize,
            out_hidden_size: self.hidden_size.unwrap_or(text_hidden),
            patch_size: self.patch_size,
            temporal_patch_size: self.temporal_patch_size,
            spatial_merge_size: self.spatial_merge_size,
            in_channels: self.in_chans,
            num_position_embeddings: 0,
            deepstack_visual_indexes: Vec::new(),
            hidden_act: self.hidden_act.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEXVLA_CONFIG: &str = r#"{
        "hidden_size": 1536, "num_hidden_layers": 28, "num_attention_heads": 12,
        "num_key_value_heads": 2, "intermediate_size": 8960, "vocab_size": 151936,
        "rope_theta": 1000000.0, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
        "vision_config": {"depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16,
                          "in_chans": 3, "hidden_size": 1536, "patch_size": 14,
                          "spatial_merge_size": 2, "temporal_patch_size": 2}
    }"#;

    #[test]
    fn dexvla_sections_turn_t_then_h_then_w() {
        let cfg = Qwen2VlConfig::from_json_str(DEXVLA_CONFIG).unwrap();
        let axes = cfg.mrope_axes();
        assert_eq!(axes.len(), 64);
        assert_eq!(&axes[..16], &[0; 16]);
        assert_eq!(&axes[16..40], &[1; 24]);
        assert_eq!(&axes[40..], &[2; 24]);
    }

    #[test]
    fn the_tower_is_1280_wide_with_a_5120_mlp_and_a_1176_patch() {
        let tower = Qwen2VlConfig::from_json_str(DEXVLA_CONFIG).unwrap().tower();
        assert_eq!(tower.head_dim(), 80);
        assert_eq!(tower.intermediate_size, 5120);
        assert_eq!(tower.patch_dim(), 1176);
        assert_eq!(tower.out_hidden_size, 1536);
        assert_eq!(tower.hidden_act, "quick_gelu");
    }

    #[test]
    fn a_vision_config_saved_as_a_diff_gets_the_2b_tower_defaults() {
        let saved = r#"{"hidden_size": 1536, "num_hidden_layers": 28, "num_attention_heads": 12,
            "num_key_value_heads": 2, "intermediate_size": 8960, "vocab_size": 151936,
            "vision_config": {"in_chans": 3, "model_type": "qwen2_vla", "spatial_patch_size": 14}}"#;
        let tower = Qwen2VlConfig::from_json_str(saved).unwrap().tower();
        assert_eq!(
            (tower.depth, tower.hidden_size, tower.num_heads),
            (32, 1280, 16)
        );
        assert_eq!(tower.out_hidden_size, 1536);
    }
}
