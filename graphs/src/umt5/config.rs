//! The text encoder's `config.json` (transformers `UMT5Config`), read as the checkpoint has it.

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Umt5ConfigError {
    #[error("UMT5 config.json: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "UMT5 config.json: feed_forward_proj `{0}` is not supported (only `gated-gelu`, the tanh GELU gate)"
    )]
    UnsupportedFeedForward(String),
    #[error("UMT5 config.json: `{field}` must be positive")]
    Zero { field: &'static str },
}

/// The encoder's sizes. The feed-forward is always the gated tanh-GELU one (`gated-gelu`,
/// which transformers runs with `gelu_new`); other `feed_forward_proj` values are rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct Umt5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    /// Width of one attention head.
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub relative_attention_num_buckets: usize,
    pub relative_attention_max_distance: usize,
    pub layer_norm_epsilon: f64,
}

/// The file as written; absent fields take transformers' `UMT5Config` defaults.
#[derive(Deserialize)]
struct RawConfig {
    #[serde(default = "default_vocab_size")]
    vocab_size: usize,
    d_model: usize,
    d_kv: usize,
    d_ff: usize,
    num_layers: usize,
    num_heads: usize,
    #[serde(default = "default_num_buckets")]
    relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    relative_attention_max_distance: usize,
    #[serde(default = "default_eps")]
    layer_norm_epsilon: f64,
    #[serde(default = "default_feed_forward_proj")]
    feed_forward_proj: String,
}

fn default_vocab_size() -> usize {
    250112
}
fn default_num_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_eps() -> f64 {
    1e-6
}
fn default_feed_forward_proj() -> String {
    "gated-gelu".to_string()
}

impl Umt5Config {
    pub fn from_json_str(s: &str) -> Result<Self, Umt5ConfigError> {
        let raw: RawConfig = serde_json::from_str(s)?;
        // transformers maps `gated-gelu` to `gelu_new`; `gated-gelu_new` names it directly.
        if !matches!(
            raw.feed_forward_proj.as_str(),
            "gated-gelu" | "gated-gelu_new"
        ) {
            return Err(Umt5ConfigError::UnsupportedFeedForward(
                raw.feed_forward_proj,
            ));
        }
        let sizes = [
            ("vocab_size", raw.vocab_size),
            ("d_model", raw.d_model),
            ("d_kv", raw.d_kv),
            ("d_ff", raw.d_ff),
            ("num_layers", raw.num_layers),
            ("num_heads", raw.num_heads),
            (
                "relative_attention_num_buckets",
                raw.relative_attention_num_buckets,
            ),
            (
                "relative_attention_max_distance",
                raw.relative_attention_max_distance,
            ),
        ];
        if let Some((field, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(Umt5ConfigError::Zero { field });
        }
        Ok(Umt5Config {
            vocab_size: raw.vocab_size,
            d_model: raw.d_model,
            d_kv: raw.d_kv,
            d_ff: raw.d_ff,
            num_layers: raw.num_layers,
            num_heads: raw.num_heads,
            relative_attention_num_buckets: raw.relative_attention_num_buckets,
            relative_attention_max_distance: raw.relative_attention_max_distance,
            layer_norm_epsilon: raw.layer_norm_epsilon,
        })
    }

    /// Width of the attention projections (`num_heads * d_kv`, not necessarily `d_model`).
    pub fn inner_dim(&self) -> usize {
        self.num_heads * self.d_kv
    }
}
