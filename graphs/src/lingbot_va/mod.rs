//! LingBot-VA dual-stream Wan transformer: text conditioning and one denoising step per stream, with the self-attention KV cache as graph I/O.

pub mod config;
pub mod rope;
pub mod transformer;

pub use config::{CameraLayout, LingbotVaConfig, LingbotVaConfigError};
