//! DexVLA's head settings as its `config.json` carries them: the ScaleDP diffusion head under
//! `policy_head_config`, and which fusion feeds it.

use serde::{Deserialize, Serialize};

/// `ScaleDPPolicyConfig` as saved (`to_dict`): the action width is kept as `input_dim` and
/// `output_dim`; `action_dim` is accepted for configs written by hand.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScaleDpConfig {
    #[serde(alias = "action_dim")]
    pub input_dim: usize,
    #[serde(default)]
    pub output_dim: Option<usize>,
    pub cond_dim: usize,
    pub state_dim: usize,
    pub prediction_horizon: usize,
    pub depth: usize,
    pub n_emb: usize,
    pub num_heads: usize,
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: f64,
    #[serde(default = "default_inference_steps")]
    pub num_inference_timesteps: usize,
    #[serde(default = "default_train_steps")]
    pub num_train_timesteps: usize,
    #[serde(default)]
    pub learn_sigma: bool,
    #[serde(default)]
    pub is_tinyvla: bool,
}

fn default_mlp_ratio() -> f64 {
    4.0
}
fn default_inference_steps() -> usize {
    10
}
fn default_train_steps() -> usize {
    100
}

impl ScaleDpConfig {
    pub fn action_dim(&self) -> usize {
        self.output_dim.unwrap_or(self.input_dim)
    }

    pub fn head_dim(&self) -> usize {
        self.n_emb / self.num_heads
    }

    pub fn mlp_hidden(&self) -> usize {
        (self.n_emb as f64 * self.mlp_ratio) as usize
    }
}

pub use vjx_format::dexvla::Fusion;

/// The width of ScaleDP's `combine` MLP between its three linears.
pub const COMBINE_HIDDEN: usize = 1024;
/// Width of the sinusoidal timestep features.
pub const TIMESTEP_CHANNELS: usize = 256;
/// LayerNorm epsilon of the DiT blocks and the final layer.
pub const NORM_EPS: f32 = 1e-6;
/// `nn.LayerNorm`'s default epsilon (TinyVLA's norm after pooling).
pub const POOL_NORM_EPS: f32 = 1e-5;
