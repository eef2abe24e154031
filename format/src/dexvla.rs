//! A DexVLA export: its graph roles and its manifest section.

use crate::manifest::{CameraSpec, ManifestError};
use crate::qwen_image::{check_vision_tower, QwenImageProcessorConfig};
use crate::validate::{at_least_one, check_action_steps, ConfigFile, FieldError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The graphs of a DexVLA export, by role.
pub mod roles {
    /// The Qwen2-VL vision tower, one image per run.
    pub const VISION: &str = "vision";
    /// The Qwen2-VL text stack: prefill and every decode step, with a key/value cache.
    pub const TEXT: &str = "text";
    /// Fusion of the hidden states and ScaleDP's projection with the state, once per chunk.
    pub const CONDITION: &str = "condition";
    /// One ScaleDP denoising step.
    pub const DIFFUSION_STEP: &str = "diffusion_step";
}

/// How the language model's hidden states condition the action head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fusion {
    /// DexVLA: greedy reasoning first, then FiLM of the prompt by the reasoning.
    Film,
    /// TinyVLA: no generation; the mean of the prompt's hidden states.
    MeanPool,
}

/// Greedy generation of the sub-step reasoning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationSpec {
    /// Upstream's `max_new_tokens` (256).
    pub max_new_tokens: usize,
    /// `<|im_end|>`: generation stops once it is produced.
    pub eos_token_id: i64,
}

/// The DDIM sampler of the ScaleDP head (diffusers `DDIMScheduler` as upstream configures it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DdimSpec {
    pub num_train_timesteps: usize,
    pub num_inference_steps: usize,
}

/// The evaluation-time image handling of the original repository, before the Qwen processor:
/// a center crop keeping `ratio` of each side (rows `⌊H·(1−r)/2⌋..⌊H·(1+r)/2⌋`, in f64 as
/// Python computes them), resized back to the frame size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalCrop {
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DexVlaSpec {
    /// Cameras in the order the prompt shows them (upstream: top, left wrist, right wrist).
    pub cameras: Vec<CameraSpec>,
    /// The center crop upstream's evaluation applies; `None` feeds frames as they are.
    pub eval_crop: Option<EvalCrop>,
    pub image: QwenImageProcessorConfig,
    /// The Qwen2-VL config.json as the exporter read it.
    pub backbone_config_file: String,
    pub tokenizer_file: String,
    pub chat_template_file: String,
    pub image_token_id: i64,
    pub fusion: Fusion,
    /// Absent for [`Fusion::MeanPool`].
    pub generation: Option<GenerationSpec>,
    pub ddim: DdimSpec,
    pub chunk_size: usize,
    /// Actions executed from each chunk before the next is predicted.
    pub n_action_steps: usize,
    pub action_dim: usize,
    pub state_dim: usize,
}

impl DexVlaSpec {
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
        if let Some(crop) = &self.eval_crop {
            if !(crop.ratio > 0.0 && crop.ratio <= 1.0) {
                return Err(FieldError::new(
                    "policy.eval_crop.ratio",
                    format!("is {}; it must be in (0, 1]", crop.ratio),
                ));
            }
        }
        at_least_one("policy.chunk_size", self.chunk_size)?;
        at_least_one("policy.action_dim", self.action_dim)?;
        at_least_one("policy.state_dim", self.state_dim)?;
        check_action_steps(self.n_action_steps, self.chunk_size)?;
        match (&self.generation, self.fusion) {
            (Some(generation), _) => at_least_one(
                "policy.generation.max_new_tokens",
                generation.max_new_tokens,
            )?,
            (None, Fusion::Film) => {
                return Err(FieldError::new(
                    "policy.generation",
                    "is missing; film fusion conditions on the generated reasoning",
                ))
            }
            (None, Fusion::MeanPool) => {}
        }
        let ddim = &self.ddim;
        at_least_one("policy.ddim.num_train_timesteps", ddim.num_train_timesteps)?;
        if ddim.num_inference_steps == 0 || ddim.num_inference_steps > ddim.num_train_timesteps {
            return Err(FieldError::new(
                "policy.ddim.num_inference_steps",
                format!(
                    "is {}; it must be between 1 and policy.ddim.num_train_timesteps ({})",
                    ddim.num_inference_steps, ddim.num_train_timesteps
                ),
            ));
        }
        Ok(())
    }

    /// Checks the backbone config (Qwen2-VL: text fields at the top level, the tower's width
    /// is `embed_dim`) against the image settings and the head counts.
    pub fn check_files(&self, dir: &Path) -> Result<(), ManifestError> {
        let Some(config) = ConfigFile::read(dir, &self.backbone_config_file) else {
            return Ok(());
        };
        let heads = config.positive("num_attention_heads")?;
        config.check_divides("num_attention_heads", heads, "hidden_size")?;
        check_vision_tower(&config, "vision_config.embed_dim", &self.image)
    }
}
