//! Building blocks the model graphs share, each written once: checkpoint tensors under a
//! name prefix, adaLN modulation, sinusoidal timestep features, feed-forward layers, rotary
//! position embedding, multi-head attention and the Qwen-family text decoder layer.
//!
//! Linear layers, norms and activations are in [`crate::nn`].

pub mod adaln;
pub mod attention;
pub mod decoder;
pub mod mlp;
pub mod prefixed;
pub mod rotary;
pub mod sinusoid;

pub use prefixed::Prefixed;
