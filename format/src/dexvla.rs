//! A DexVLA export: its graph roles and its manifest section.

use crate::manifest::CameraSpec;
use crate::qwen_image::QwenImageProcessorConfig;
use serde::{Deserialize, Serialize};

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
