//! UMT5 text encoder (the `text_encoder/` of a Wan checkpoint) as one graph.

pub mod config;
pub mod encoder;

pub use config::{Umt5Config, Umt5ConfigError};
pub use encoder::build_umt5_encoder_graph;
