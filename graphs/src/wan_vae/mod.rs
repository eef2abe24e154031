//! Wan2.2 VAE (diffusers `AutoencoderKLWan`): streaming encoder and decoder graphs with the
//! causal-conv caches as graph I/O (see [`encoder`], [`decoder`], [`state`]).

pub mod config;
pub mod decoder;
pub mod encoder;
mod layers;
pub mod state;

pub use config::{WanVaeConfig, WanVaeConfigError};
pub use decoder::{build_vae_decode_graphs, decoder_cache_shapes};
pub use encoder::{build_vae_encode_graphs, encoder_cache_shapes};
pub use state::{cache_in_name, cache_out_name};
