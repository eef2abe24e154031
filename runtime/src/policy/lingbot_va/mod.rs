//! LingBot-VA: the autoregressive video-action loop of upstream `select_action` over the
//! exported VAE, text encoder and transformer step graphs.
//!
//! [`LingbotVaPolicy`] holds what never changes (graphs, config, tokenizer); an [`Episode`]
//! holds what one rollout accumulates (prompt conditioning, VAE caches, the transformer's KV
//! cache, the action queue and the buffered keyframes).

pub mod actions;
pub mod camera;
pub mod episode;
pub mod kv_cache;
pub mod predicted_video;
mod runner;
pub mod vae_stream;

pub use episode::{Episode, NOISE_ACTIONS, NOISE_LATENTS};
pub use runner::LingbotVaEpisode;

use crate::backend::{Backend, GraphSession, Tensor};
use crate::manifest::Manifest;
use crate::policy::{Noise, PolicyError};
use crate::preprocess::umt5_prompt;
use std::path::Path;
use vjx_format::lingbot_va::{roles, LingbotVaSpec};
use vjx_graphs::lingbot_va::LingbotVaConfig;
use vjx_graphs::umt5::encoder::{ATTENTION_MASK, INPUT_IDS, LAST_HIDDEN_STATE};
use vjx_graphs::wan_vae::{encoder_cache_shapes, WanVaeConfig};

/// The loaded graphs of a LingBot-VA export.
pub struct Sessions {
    pub text_encoder: Box<dyn GraphSession>,
    pub text_condition: Box<dyn GraphSession>,
    pub vae_encode_first: Box<dyn GraphSession>,
    pub vae_encode_stream: Box<dyn GraphSession>,
    pub video_step: Box<dyn GraphSession>,
    pub action_step: Box<dyn GraphSession>,
    /// The VAE decoder (`vae_decode_first`, `vae_decode_stream`), when the export has it.
    pub vae_decode_first: Option<Box<dyn GraphSession>>,
    pub vae_decode_stream: Option<Box<dyn GraphSession>>,
}

pub struct LingbotVaPolicy {
    manifest: Manifest,
    spec: LingbotVaSpec,
    config: LingbotVaConfig,
    vae_config: WanVaeConfig,
    tokenizer: tokenizers::Tokenizer,
    sessions: Sessions,
}

fn read_export_file(dir: &Path, file: &str) -> Result<String, PolicyError> {
    let path = dir.join(file);
    std::fs::read_to_string(&path)
        .map_err(|e| PolicyError::Other(format!("{}: {e}", path.display())))
}

impl LingbotVaPolicy {
    pub fn load(
        dir: &Path,
        manifest: Manifest,
        spec: LingbotVaSpec,
        backend: &dyn Backend,
    ) -> Result<Self, PolicyError> {
        let config =
            LingbotVaConfig::from_json_str(&read_export_file(dir, &spec.policy_config_file)?)
                .map_err(|e| {
                    PolicyError::Other(format!(
                        "{}: {e}",
                        dir.join(&spec.policy_config_file).display()
                    ))
                })?;
        let vae_config =
            WanVaeConfig::from_json_str(&read_export_file(dir, &spec.vae_config_file)?).map_err(
                |e| {
                    PolicyError::Other(format!(
                        "{}: {e}",
                        dir.join(&spec.vae_config_file).display()
                    ))
                },
            )?;
        let tokenizer_path = dir.join(&spec.tokenizer_file);
        let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| PolicyError::Other(format!("{}: {e}", tokenizer_path.display())))?;
        let load = |role: &str| -> Result<Box<dyn GraphSession>, PolicyError> {
            Ok(backend.load(&manifest.graph_path(dir, role)?)?)
        };
        let load_if_listed = |role: &str| -> Result<Option<Box<dyn GraphSession>>, PolicyError> {
            manifest
                .graphs
                .contains_key(role)
                .then(|| load(role))
                .transpose()
        };
        let sessions = Sessions {
            text_encoder: load(roles::TEXT_ENCODER)?,
            text_condition: load(roles::TEXT_CONDITION)?,
            vae_encode_first: load(roles::VAE_ENCODE_FIRST)?,
            vae_encode_stream: load(roles::VAE_ENCODE_STREAM)?,
            video_step: load(roles::VIDEO_STEP)?,
            action_step: load(roles::ACTION_STEP)?,
            vae_decode_first: load_if_listed(roles::VAE_DECODE_FIRST)?,
            vae_decode_stream: load_if_listed(roles::VAE_DECODE_STREAM)?,
        };
        Ok(LingbotVaPolicy {
            manifest,
            spec,
            config,
            vae_config,
            tokenizer,
            sessions,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn spec(&self) -> &LingbotVaSpec {
        &self.spec
    }

    pub fn config(&self) -> &LingbotVaConfig {
        &self.config
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// How many causal caches the VAE encoder carries between calls.
    pub fn vae_cache_count(&self) -> usize {
        encoder_cache_shapes(&self.vae_config, 1, self.config.height, self.config.width).len()
    }

    /// Actions per `select_action` refill after the first chunk: `frame_chunk_size · action_per_frame`.
    pub fn chunk_size(&self) -> usize {
        self.config.frame_chunk_size * self.config.action_per_frame
    }

    /// Width of each returned action (the used channels).
    pub fn action_dim(&self) -> usize {
        self.config.used_action_channel_ids.len()
    }

    /// A new rollout.
    pub fn episode(&self, noise: Noise) -> Episode<'_> {
        Episode::new(self, noise)
    }

    /// The prompt's UMT5 embeddings `[max_len, d_model]`, rows past the prompt's tokens zeroed
    /// (upstream `_get_t5_prompt_embeds`).
    pub fn encode_text(&self, prompt: &str) -> Result<Vec<f32>, PolicyError> {
        let max_len = self.config.max_sequence_length;
        let cleaned = umt5_prompt::clean_prompt(prompt);
        let (ids, mask) = umt5_prompt::encode_prompt(&self.tokenizer, &cleaned, max_len)?;
        let kept = mask.iter().filter(|&&m| m > 0).count();
        let mut outputs = self.sessions.text_encoder.run(&[
            (INPUT_IDS, &Tensor::i64(&[1, max_len], ids)),
            (ATTENTION_MASK, &Tensor::i64(&[1, max_len], mask)),
        ])?;
        let hidden = outputs.take_f32(LAST_HIDDEN_STATE)?;
        let d_model = hidden.shape()[2];
        let mut embeds = hidden.into_raw_vec_and_offset().0;
        embeds[kept * d_model..].iter_mut().for_each(|v| *v = 0.0);
        Ok(embeds)
    }
}
