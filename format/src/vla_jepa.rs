//! A VLA-JEPA export: its graph roles and its manifest section.

use crate::manifest::{CameraSpec, ManifestError};
use crate::prompt::PromptSpec;
use crate::qwen_image::{check_vision_tower, QwenImageProcessorConfig};
use crate::validate::{at_least_one, check_action_steps, ConfigFile, FieldError};
use serde::{Deserialize, Serialize};
use std::path::Path;

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

impl VlaJepaSpec {
    /// The files this section names, by key.
    pub fn files(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("backbone_config_file", &self.backbone_config_file),
            ("tokenizer_file", &self.tokenizer_file),
            ("chat_template_file", &self.chat_template_file),
        ]
    }

    /// Checks the sizes the pipeline divides or allocates by.
    pub fn check(&self) -> Result<(), FieldError> {
        self.image.check("policy.image")?;
        self.prompt.check("policy.prompt")?;
        if let Some([h, w]) = self.resize_images_to {
            if h == 0 || w == 0 {
                return Err(FieldError::new(
                    "policy.resize_images_to",
                    format!("is [{h}, {w}]; both sides must be at least 1"),
                ));
            }
        }
        at_least_one("policy.chunk_size", self.chunk_size)?;
        at_least_one("policy.action_dim", self.action_dim)?;
        if let Some(state_dim) = self.state_dim {
            at_least_one("policy.state_dim", state_dim)?;
        }
        check_action_steps(self.n_action_steps, self.chunk_size)?;
        if self.timesteps.is_empty() {
            return Err(FieldError::new(
                "policy.timesteps",
                "is empty; the action head needs at least one Euler step",
            ));
        }
        Ok(())
    }

    /// Checks the backbone config (Qwen3-VL: text fields under `text_config`) against the
    /// image settings and the head counts the graphs split widths by.
    pub fn check_files(&self, dir: &Path) -> Result<(), ManifestError> {
        let Some(config) = ConfigFile::read(dir, &self.backbone_config_file) else {
            return Ok(());
        };
        let heads = config.positive("text_config.num_attention_heads")?;
        match config.optional_size("text_config.head_dim")? {
            Some(_) => {
                config.positive("text_config.head_dim")?;
            }
            None => config.check_divides(
                "text_config.num_attention_heads",
                heads,
                "text_config.hidden_size",
            )?,
        }
        check_vision_tower(&config, "vision_config.hidden_size", &self.image)
    }
}
