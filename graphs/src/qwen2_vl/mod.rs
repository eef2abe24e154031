//! Qwen2-VL (the DexVLA backbone): its config, the vision tower (the Qwen-VL tower in the
//! Qwen2-VL style) and the text stack as one generation graph with a key/value cache.

pub mod config;
pub mod text;

pub use config::{Qwen2VlConfig, Qwen2VlVisionConfig};
