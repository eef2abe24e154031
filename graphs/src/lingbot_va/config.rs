//! LeRobot's checkpoint `config.json` for a `"type": "lingbot_va"` policy (the draccus dump of
//! `LingBotVAConfig`): the Wan transformer geometry and the fields the inference loop reads.
//! Every field read here is required; keys this port does not use are ignored.

use serde::Deserialize;
use thiserror::Error;

pub const POLICY_TYPE: &str = "lingbot_va";
/// Spatial downsampling of the Wan2.2 VAE (patchify 2 × three 2× stages).
pub const VAE_SPATIAL_FACTOR: usize = 16;

#[derive(Debug, Error)]
pub enum LingbotVaConfigError {
    #[error("config.json is not valid JSON: {0}")]
    Json(serde_json::Error),
    #[error("config.json has no `{field}` (required for a lingbot_va policy)")]
    MissingField { field: &'static str },
    #[error("config.json field `{field}`: {reason}")]
    InvalidField { field: &'static str, reason: String },
}

/// How the per-camera latents are arranged into one latent image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum CameraLayout {
    /// Cameras side by side along the latent width (LIBERO).
    #[serde(rename = "width_concat")]
    WidthConcat,
    /// Full-resolution head camera below two half-resolution wrist cameras (RoboTwin).
    #[serde(rename = "robotwin_tshape")]
    RobotwinTshape,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LingbotVaConfig {
    // Wan transformer.
    pub patch_size: [usize; 3],
    pub num_attention_heads: usize,
    pub attention_head_dim: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub action_dim: usize,
    pub text_dim: usize,
    pub freq_dim: usize,
    pub ffn_dim: usize,
    pub num_layers: usize,
    pub cross_attn_norm: bool,
    pub eps: f64,

    // Inference loop.
    pub obs_cam_keys: Vec<String>,
    pub camera_layout: CameraLayout,
    pub height: usize,
    pub width: usize,
    pub action_per_frame: usize,
    pub frame_chunk_size: usize,
    pub attn_window: usize,
    pub num_inference_steps: usize,
    pub action_num_inference_steps: usize,
    pub guidance_scale: f64,
    pub action_guidance_scale: f64,
    pub snr_shift: f64,
    pub action_snr_shift: f64,
    pub used_action_channel_ids: Vec<usize>,
    /// `-1`: run every video denoising step.
    pub video_exec_step: i64,
    pub max_sequence_length: usize,
    pub image_hflip: bool,
    pub wan_pretrained_path: String,
    pub dtype: String,
    pub input_features: serde_json::Value,
    pub output_features: serde_json::Value,
}

/// The keys [`LingbotVaConfig`] reads, each of which must be present.
const REQUIRED_FIELDS: [&str; 34] = [
    "type",
    "patch_size",
    "num_attention_heads",
    "attention_head_dim",
    "in_channels",
    "out_channels",
    "action_dim",
    "text_dim",
    "freq_dim",
    "ffn_dim",
    "num_layers",
    "cross_attn_norm",
    "eps",
    "obs_cam_keys",
    "camera_layout",
    "height",
    "width",
    "action_per_frame",
    "frame_chunk_size",
    "attn_window",
    "num_inference_steps",
    "action_num_inference_steps",
    "guidance_scale",
    "action_guidance_scale",
    "snr_shift",
    "action_snr_shift",
    "used_action_channel_ids",
    "video_exec_step",
    "max_sequence_length",
    "image_hflip",
    "wan_pretrained_path",
    "dtype",
    "input_features",
    "output_features",
];

impl LingbotVaConfig {
    pub fn from_json_str(s: &str) -> Result<Self, LingbotVaConfigError> {
        let json: serde_json::Value =
            serde_json::from_str(s).map_err(LingbotVaConfigError::Json)?;
        let object = json.as_object().ok_or(LingbotVaConfigError::InvalidField {
            field: "type",
            reason: "config.json is not a JSON object".to_string(),
        })?;
        if let Some(field) = REQUIRED_FIELDS.iter().find(|f| !object.contains_key(**f)) {
            return Err(LingbotVaConfigError::MissingField { field });
        }
        if object["type"] != POLICY_TYPE {
            return Err(LingbotVaConfigError::InvalidField {
                field: "type",
                reason: format!("is {}, expected \"{POLICY_TYPE}\"", object["type"]),
            });
        }
        let cfg: LingbotVaConfig =
            serde_json::from_value(json).map_err(LingbotVaConfigError::Json)?;
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), LingbotVaConfigError> {
        let invalid =
            |field, reason: String| Err(LingbotVaConfigError::InvalidField { field, reason });
        let [pt, ph, pw] = self.patch_size;
        if pt != 1 || ph == 0 || pw == 0 {
            // Upstream repeats each frame's timestep over h/ph · w/pw tokens, which assumes pt = 1.
            return invalid(
                "patch_size",
                format!("is {:?}, expected [1, ph, pw]", self.patch_size),
            );
        }
        let hd = self.attention_head_dim;
        if !hd.is_multiple_of(2) || hd < 6 || !(hd / 3).is_multiple_of(2) {
            // The rotary split (hd - 2·(hd/3), hd/3, hd/3) must give three even parts.
            return invalid(
                "attention_head_dim",
                format!("is {hd}, expected an even size whose third (rounded down) is even"),
            );
        }
        if !self.freq_dim.is_multiple_of(2) {
            return invalid(
                "freq_dim",
                format!("is {}, expected an even size", self.freq_dim),
            );
        }
        if self.obs_cam_keys.is_empty() {
            return invalid("obs_cam_keys", "is empty".to_string());
        }
        if self.camera_layout == CameraLayout::RobotwinTshape && self.obs_cam_keys.len() != 3 {
            return invalid(
                "obs_cam_keys",
                format!(
                    "has {} cameras, robotwin_tshape needs 3 (head, left, right)",
                    self.obs_cam_keys.len()
                ),
            );
        }
        let (h, w) = self.latent_hw();
        if h == 0 || w == 0 || !h.is_multiple_of(ph) || !w.is_multiple_of(pw) {
            return invalid(
                "height",
                format!(
                    "latent grid {h}×{w} (from {}×{}) does not split into {ph}×{pw} patches",
                    self.height, self.width
                ),
            );
        }
        if let Some(&bad) = self
            .used_action_channel_ids
            .iter()
            .find(|&&c| c >= self.action_dim)
        {
            return invalid(
                "used_action_channel_ids",
                format!("has channel {bad}, action_dim is {}", self.action_dim),
            );
        }
        Ok(())
    }

    /// `num_attention_heads · attention_head_dim`.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Height and width of the observation latent after the camera layout (upstream `_latent_hw`).
    pub fn latent_hw(&self) -> (usize, usize) {
        let (h, w) = (
            self.height / VAE_SPATIAL_FACTOR,
            self.width / VAE_SPATIAL_FACTOR,
        );
        match self.camera_layout {
            CameraLayout::RobotwinTshape => (h * 3 / 2, w),
            CameraLayout::WidthConcat => (h, w * self.obs_cam_keys.len()),
        }
    }

    /// Video tokens per latent frame: the latent grid in patches, `(h / ph, w / pw)`.
    pub fn token_grid(&self) -> (usize, usize) {
        let (h, w) = self.latent_hw();
        (h / self.patch_size[1], w / self.patch_size[2])
    }

    /// Video tokens of one chunk of `frame_chunk_size` latent frames.
    pub fn video_tokens_per_chunk(&self) -> usize {
        let (h2, w2) = self.token_grid();
        self.frame_chunk_size * h2 * w2
    }

    /// Action tokens of one chunk: one per action, `frame_chunk_size · action_per_frame`.
    pub fn action_tokens_per_chunk(&self) -> usize {
        self.frame_chunk_size * self.action_per_frame
    }

    /// Slots of the self-attention KV cache: `(attn_window / 2) · (Lv + La)`.
    pub fn cache_size(&self) -> usize {
        (self.attn_window / 2) * (self.video_tokens_per_chunk() + self.action_tokens_per_chunk())
    }

    /// Whether classifier-free guidance runs (then every forward has batch 2: prompt, `""`).
    pub fn use_cfg(&self) -> bool {
        self.guidance_scale > 1.0 || self.action_guidance_scale > 1.0
    }

    /// Rows of every transformer forward: 2 with classifier-free guidance, else 1.
    pub fn batch_size(&self) -> usize {
        if self.use_cfg() {
            2
        } else {
            1
        }
    }
}
