//! DexVLA's own graphs (its backbone is [`crate::qwen2_vl`]): the per-chunk condition (FiLM or
//! mean-pool fusion, ScaleDP's combine) and one ScaleDP denoising step.

pub mod condition;
pub mod config;
pub mod scaledp;

pub use config::{Fusion, ScaleDpConfig};
