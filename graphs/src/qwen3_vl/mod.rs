//! Qwen3-VL (the VLA-JEPA backbone): the vision tower with DeepStack taps and the Qwen3 text
//! stack with interleaved M-RoPE, plus the host-side tables their graphs take as inputs.

pub mod config;
pub mod rope;
pub mod text;
pub mod vision;
pub mod vision_inputs;

pub use config::{Qwen3VlConfig, TextConfig, VisionConfig};
