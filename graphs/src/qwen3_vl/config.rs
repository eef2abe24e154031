//! The backbone's `config.json` (transformers `Qwen3VLConfig`), read as the checkpoint has it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Qwen3VlConfig {
    pub text_config: TextConfig,
    pub vision_config: VisionConfig,
    #[serde(default = "default_image_token_id")]
    pub image_token_id: i64,
    #[serde(default = "default_video_token_id")]
    pub video_token_id: i64,
    #[serde(default = "default_vision_start_token_id")]
    pub vision_start_token_id: i64,
    #[serde(default = "default_vision_end_token_id")]
    pub vision_end_token_id: i64,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
}

fn default_image_token_id() -> i64 {
    151655
}
fn default_video_token_id() -> i64 {
    151656
}
fn default_vision_start_token_id() -> i64 {
    151652
}
fn default_vision_end_token_id() -> i64 {
    151653
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    #[serde(default)]
    pub head_dim: Option<usize>,
    pub intermediate_size: usize,
    pub vocab_size: usize,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// transformers ≥ 5 keeps rope settings here.
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    /// transformers 4.x kept them here.
    #[serde(default)]
    pub rope_scaling: Option<RopeParameters>,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default = "default_text_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RopeParameters {
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub mrope_section: Option<Vec<usize>>,
    #[serde(default)]
    pub mrope_interleaved: Option<bool>,
    #[serde(default)]
    pub rope_type: Option<String>,
}

fn default_rms_eps() -> f64 {
    1e-6
}
fn default_text_act() -> String {
    "silu".to_string()
}

impl TextConfig {
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    fn rope(&self) -> Option<&RopeParameters> {
        self.rope_parameters.as_ref().or(self.rope_scaling.as_ref())
    }

    pub fn rope_theta(&self) -> f64 {
        self.rope()
            .and_then(|r| r.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(5_000_000.0)
    }

    /// `[T, H, W]` frequency counts of the M-RoPE split (they sum to head_dim / 2).
    pub fn mrope_section(&self) -> Vec<usize> {
        self.rope()
            .and_then(|r| r.mrope_section.clone())
            .unwrap_or_else(|| vec![24, 20, 20])
    }

    /// Qwen3-VL interleaves the H and W frequencies among the T ones.
    pub fn mrope_interleaved(&self) -> bool {
        self.rope()
            .and_then(|r| r.mrope_interleaved)
            .unwrap_or(true)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VisionConfig {
    pub depth: usize,
    pub hidden_size: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub out_hidden_size: usize,
    #[serde(default = "default_patch_size")]
    pub patch_size: usize,
    #[serde(default = "default_temporal_patch_size")]
    pub temporal_patch_size: usize,
    #[serde(default = "default_merge_size")]
    pub spatial_merge_size: usize,
    #[serde(default = "default_in_channels")]
    pub in_channels: usize,
    pub num_position_embeddings: usize,
    #[serde(default)]
    pub deepstack_visual_indexes: Vec<usize>,
    #[serde(default = "default_vision_act")]
    pub hidden_act: String,
}

fn default_patch_size() -> usize {
    16
}
fn default_temporal_patch_size() -> usize {
    2
}
fn default_merge_size() -> usize {
    2
}
fn default_in_channels() -> usize {
    3
}
fn default_vision_act() -> String {
    "gelu_pytorch_tanh".to_string()
}

impl VisionConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }
    /// Width of one flattened patch row of `pixel_values`.
    pub fn patch_dim(&self) -> usize {
        self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size
    }
    /// Side of the square learned position-embedding grid (48 for 2304 rows).
    pub fn position_grid_side(&self) -> usize {
        (self.num_position_embeddings as f64).sqrt().round() as usize
    }
}

impl Qwen3VlConfig {
    pub fn from_json_str(s: &str) -> serde_json::Result<Self> {
        serde_json::from_str(s)
    }
}
