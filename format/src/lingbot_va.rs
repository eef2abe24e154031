//! A LingBot-VA export: its graph roles and its manifest section.

use crate::manifest::CameraSpec;
use serde::{Deserialize, Serialize};

/// The graphs of a LingBot-VA export, by role.
pub mod roles {
    pub const TEXT_ENCODER: &str = "text_encoder";
    pub const TEXT_CONDITION: &str = "text_condition";
    pub const VAE_ENCODE_FIRST: &str = "vae_encode_first";
    pub const VAE_ENCODE_STREAM: &str = "vae_encode_stream";
    pub const VIDEO_STEP: &str = "video_step";
    pub const ACTION_STEP: &str = "action_step";
    /// Optional: the VAE decoder, for the predicted video.
    pub const VAE_DECODE_FIRST: &str = "vae_decode_first";
    pub const VAE_DECODE_STREAM: &str = "vae_decode_stream";
}

/// What a LingBot-VA export needs besides its graphs. The configs are copies of the
/// checkpoint's own files, read at load with the same parsers the exporter used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LingbotVaSpec {
    /// Cameras in `obs_cam_keys` order.
    pub cameras: Vec<CameraSpec>,
    /// The LeRobot checkpoint's config.json.
    pub policy_config_file: String,
    /// The Wan VAE's `vae/config.json`.
    pub vae_config_file: String,
    /// The UMT5 tokenizer's `tokenizer.json`.
    pub tokenizer_file: String,
    /// The classifier-free-guidance prompt (upstream encodes `""`).
    pub negative_prompt: String,
}

impl LingbotVaSpec {
    /// The files this section names, by key.
    pub fn files(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("policy_config_file", &self.policy_config_file),
            ("vae_config_file", &self.vae_config_file),
            ("tokenizer_file", &self.tokenizer_file),
        ]
    }
}
