//! A diffusers `AutoencoderKLWan` `vae/config.json`, limited to the Wan2.2 layout (residual
//! down/up blocks, patchified input) that LingBot-VA uses.

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum WanVaeConfigError {
    #[error("vae config.json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("vae config.json: `{field}` = {value} is not supported: {reason}")]
    Unsupported {
        field: &'static str,
        value: String,
        reason: String,
    },
}

/// The fields of `AutoencoderKLWan.__init__` the graphs depend on (defaults as diffusers 0.39).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WanVaeConfig {
    #[serde(default = "default_base_dim")]
    pub base_dim: usize,
    /// `None` means `base_dim`.
    #[serde(default)]
    pub decoder_base_dim: Option<usize>,
    #[serde(default = "default_z_dim")]
    pub z_dim: usize,
    #[serde(default = "default_dim_mult")]
    pub dim_mult: Vec<usize>,
    #[serde(default = "default_num_res_blocks")]
    pub num_res_blocks: usize,
    /// Only read by the non-residual (Wan2.1) blocks; kept for completeness.
    #[serde(default)]
    pub attn_scales: Vec<f64>,
    #[serde(default = "default_temperal_downsample")]
    pub temperal_downsample: Vec<bool>,
    #[serde(default)]
    pub is_residual: bool,
    #[serde(default = "default_image_channels")]
    pub in_channels: usize,
    #[serde(default = "default_image_channels")]
    pub out_channels: usize,
    #[serde(default)]
    pub patch_size: Option<usize>,
    pub latents_mean: Vec<f32>,
    pub latents_std: Vec<f32>,
}

fn default_base_dim() -> usize {
    96
}
fn default_z_dim() -> usize {
    16
}
fn default_dim_mult() -> Vec<usize> {
    vec![1, 2, 4, 4]
}
fn default_num_res_blocks() -> usize {
    2
}
fn default_temperal_downsample() -> Vec<bool> {
    vec![false, true, true]
}
fn default_image_channels() -> usize {
    3
}

/// RGB: the channels of a frame before patchify and after unpatchify.
pub const RGB: usize = 3;

impl WanVaeConfig {
    pub fn from_json_str(text: &str) -> Result<Self, WanVaeConfigError> {
        let cfg: WanVaeConfig = serde_json::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), WanVaeConfigError> {
        let unsupported = |field: &'static str, value: String, reason: &str| {
            Err(WanVaeConfigError::Unsupported {
                field,
                value,
                reason: reason.to_string(),
            })
        };
        if !self.is_residual {
            return unsupported(
                "is_residual",
                "false".into(),
                "only the Wan2.2 residual layout is exported",
            );
        }
        let p = self.patch();
        if self.in_channels != RGB * p * p {
            return unsupported(
                "in_channels",
                self.in_channels.to_string(),
                &format!("expected 3 * patch_size² = {}", RGB * p * p),
            );
        }
        if self.out_channels != RGB * p * p {
            return unsupported(
                "out_channels",
                self.out_channels.to_string(),
                &format!("expected 3 * patch_size² = {}", RGB * p * p),
            );
        }
        if self.dim_mult.is_empty() || self.dim_mult.contains(&0) {
            return unsupported(
                "dim_mult",
                format!("{:?}", self.dim_mult),
                "expected positive multipliers",
            );
        }
        if self.temperal_downsample.len() + 1 != self.dim_mult.len() {
            return unsupported(
                "temperal_downsample",
                format!("{:?}", self.temperal_downsample),
                &format!(
                    "expected {} entries (one per downsampling block)",
                    self.dim_mult.len() - 1
                ),
            );
        }
        for (field, values) in [
            ("latents_mean", &self.latents_mean),
            ("latents_std", &self.latents_std),
        ] {
            if values.len() != self.z_dim {
                return unsupported(
                    field,
                    format!("{} values", values.len()),
                    &format!("expected z_dim = {}", self.z_dim),
                );
            }
        }
        if self.latents_std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
            return unsupported(
                "latents_std",
                format!("{:?}", self.latents_std),
                "expected finite non-zero values",
            );
        }
        // AvgDown3D / DupUp3D regroup channels; diffusers asserts the same divisibility.
        let enc = self.encoder_dims();
        for (i, pair) in enc.windows(2).enumerate() {
            let factor = self.down_time_factor(i) * self.down_space_factor(i).pow(2);
            if !(pair[0] * factor).is_multiple_of(pair[1]) {
                return unsupported(
                    "dim_mult",
                    format!("{:?}", self.dim_mult),
                    "AvgDown3D channel groups do not divide",
                );
            }
        }
        let dec = self.decoder_dims();
        for (i, pair) in dec.windows(2).enumerate() {
            if self.up_flag(i) {
                let factor = self.up_time_factor(i) * 4;
                if !(pair[1] * factor).is_multiple_of(pair[0]) {
                    return unsupported(
                        "dim_mult",
                        format!("{:?}", self.dim_mult),
                        "DupUp3D channel groups do not divide",
                    );
                }
            }
        }
        Ok(())
    }

    /// Spatial patch size of patchify/unpatchify (1 when absent).
    pub fn patch(&self) -> usize {
        self.patch_size.unwrap_or(1)
    }

    /// `[base·1, base·m0, base·m1, ...]`: channels before and after each down block.
    pub fn encoder_dims(&self) -> Vec<usize> {
        std::iter::once(1)
            .chain(self.dim_mult.iter().copied())
            .map(|m| m * self.base_dim)
            .collect()
    }

    /// `[dbase·m_last, dbase·m_last, ..., dbase·m0]`: channels before and after each up block.
    pub fn decoder_dims(&self) -> Vec<usize> {
        let base = self.decoder_base_dim.unwrap_or(self.base_dim);
        let last = *self.dim_mult.last().expect("validated non-empty");
        std::iter::once(last)
            .chain(self.dim_mult.iter().rev().copied())
            .map(|m| m * base)
            .collect()
    }

    pub fn num_blocks(&self) -> usize {
        self.dim_mult.len()
    }

    /// Whether down block `i` halves height and width (all but the last).
    pub fn down_flag(&self, i: usize) -> bool {
        i + 1 != self.num_blocks()
    }

    /// Temporal stride of down block `i` (2 where `temperal_downsample[i]`).
    pub fn down_time_factor(&self, i: usize) -> usize {
        if self.down_flag(i) && self.temperal_downsample[i] {
            2
        } else {
            1
        }
    }

    pub fn down_space_factor(&self, i: usize) -> usize {
        if self.down_flag(i) {
            2
        } else {
            1
        }
    }

    /// Whether up block `i` doubles height and width (all but the last).
    pub fn up_flag(&self, i: usize) -> bool {
        i + 1 != self.num_blocks()
    }

    /// Temporal factor of up block `i` (`temperal_downsample` reversed).
    pub fn up_time_factor(&self, i: usize) -> usize {
        let reversed: Vec<bool> = self.temperal_downsample.iter().rev().copied().collect();
        if self.up_flag(i) && reversed[i] {
            2
        } else {
            1
        }
    }

    /// Pixels per latent cell along height and width (16 for Wan2.2).
    pub fn spatial_factor(&self) -> usize {
        self.patch()
            * (0..self.num_blocks())
                .map(|i| self.down_space_factor(i))
                .product::<usize>()
    }

    /// Frames per latent frame after the first (4 for Wan2.2).
    pub fn temporal_factor(&self) -> usize {
        (0..self.num_blocks())
            .map(|i| self.down_time_factor(i))
            .product()
    }
}
