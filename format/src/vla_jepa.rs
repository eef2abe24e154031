//! A VLA-JEPA export: its graph roles and its manifest section.

use crate::manifest::CameraSpec;
use crate::prompt::PromptSpec;
use crate::qwen_image::QwenImageProcessorConfig;
use serde::{Deserialize, Serialize};

/// The graphs of a VLA-JEPA export, by role.
pub mod roles {
    pub const VISION: &str = "vision";
    pub const TEXT: &str = "text";
    /// Optional: projects the conditioning into every DiT layer's cross-attention keys and
    /// values once per chunk.
    pub const DIT_CONDITION: &str = "dit_condition";
    pub const DIT_STEP: &str = "dit_step";
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VlaJepaSpec {
    pub cameras: Vec<CameraSpec>,
    /// LeRobot's area resize before the Qwen processor (`resize_images_to`), `[H, W]`.
    pub resize_images_to: Option<[usize; 2]>,
    pub image: QwenImageProcessorConfig,
    /// The backbone's config.json as the exporter read it (transformers `Qwen3VLConfig`).
    pub backbone_config_file: String,
    pub prompt: PromptSpec,
    pub tokenizer_file: String,
    pub chat_template_file: String,
    pub embodied_token_id: i64,
    pub chunk_size: usize,
    pub n_action_steps: usize,
    pub action_dim: usize,
    pub state_dim: Option<usize>,
    /// The discretized timestep fed to the DiT at each Euler step.
    pub timesteps: Vec<i64>,
}
