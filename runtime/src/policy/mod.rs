//! One runner per policy, behind [`PolicyRunner`]: [`load`] reads an export dir and returns its
//! policy's runner; [`PolicyRunner::start_episode`] begins a rollout ([`PolicyEpisode`]) that
//! carries what the policy keeps between calls (caches, the action queue).
//!
//! A policy is a module here with one runner, plus its variant of [`PolicySpec`] in the format
//! crate; [`load`] and [`shape_profiles`] are the only places that match on the variant.

pub mod chunk_queue;
pub mod dexvla;
pub mod episode_file;
pub mod lingbot_va;
pub mod noise;
pub mod observation;
pub mod vla_jepa;

use crate::backend::{Backend, ShapeProfile, TensorValue};
use crate::manifest::{Manifest, ManifestError, PolicySpec};
use chunk_queue::ChunkRunner;
pub use episode_file::EpisodeFile;
pub use noise::{ChunkNoise, Noise};
pub use observation::{ImageInput, Observation};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PolicyError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    #[error(transparent)]
    Preprocess(#[from] crate::preprocess::PreprocessError),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Other(String),
    #[error(
        "stage `{stage}` produced a non-finite value ({value} at index {index}); no actions are \
         returned (check the export's weights and normalization stats)"
    )]
    NonFinite {
        stage: String,
        index: usize,
        value: f32,
    },
}

/// Fails when the tokenized prompt is longer than the text graph's shape profile admits (a
/// task of a hundred thousand characters would otherwise run whole).
pub(crate) fn check_prompt_tokens(
    tokens: usize,
    max: usize,
    task: &str,
) -> Result<(), PolicyError> {
    if tokens <= max {
        return Ok(());
    }
    Err(PolicyError::Input(format!(
        "the prompt is {tokens} tokens long, the text graph's shape profile admits {max}: shorten \
         the task ({} characters)",
        task.chars().count()
    )))
}

/// Fails when the output of `stage` holds a NaN or an infinity: nothing computed from it may
/// reach the robot.
pub(crate) fn ensure_finite<'a>(
    stage: &str,
    values: impl IntoIterator<Item = &'a f32>,
) -> Result<(), PolicyError> {
    match values.into_iter().enumerate().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some((index, &value)) => Err(PolicyError::NonFinite {
            stage: stage.to_string(),
            index,
            value,
        }),
    }
}

/// Wall-clock milliseconds per stage of one chunk, in pipeline order.
pub type StageTimings = Vec<(String, f64)>;

/// One predicted action chunk.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// `[chunk_size, action_dim]`, row-major, after post-processing (robot units).
    pub actions: Vec<f32>,
    /// The sampler's result before clipping and unnormalization.
    pub actions_normalized: Vec<f32>,
    pub chunk_size: usize,
    pub action_dim: usize,
    pub timings_ms: StageTimings,
    /// Intermediate tensors by name, when asked for (`--dump`).
    pub intermediates: BTreeMap<String, TensorValue>,
    /// What the policy generated on the way, for policies that reason in text.
    pub reasoning: Option<Reasoning>,
}

/// The text a policy generated while predicting a chunk (DexVLA's sub-step reasoning).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reasoning {
    pub text: String,
    /// Generated tokens, the end-of-turn token included when produced.
    pub tokens: usize,
    pub stop: StopReason,
}

/// Why text generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The end-of-turn token was produced.
    EndOfTurn,
    /// The token limit was reached first.
    TokenLimit,
}

impl Prediction {
    pub fn rows(&self) -> Vec<Vec<f32>> {
        self.actions
            .chunks(self.action_dim)
            .map(|r| r.to_vec())
            .collect()
    }
}

/// The sampler's result and the same after the manifest's post-processing steps:
/// `(actions_normalized, actions)`; both must be finite.
pub(crate) fn post_process(
    manifest: &Manifest,
    sample: Vec<f32>,
    action_dim: usize,
    raw_state: Option<&[f32]>,
) -> Result<(Vec<f32>, Vec<f32>), PolicyError> {
    ensure_finite("actions_normalized", &sample)?;
    let mut actions = sample.clone();
    crate::normalization::apply_post_steps(
        &manifest.postprocess,
        &manifest.normalization.action,
        &mut actions,
        action_dim,
        raw_state,
    );
    ensure_finite("actions", &actions)?;
    Ok((sample, actions))
}

/// What one `select_action` call returns.
#[derive(Debug, Clone)]
pub struct Step {
    /// In robot units (after the postprocessor).
    pub action: Vec<f32>,
    /// In model space, before unnormalization.
    pub action_normalized: Vec<f32>,
    /// Whether this call predicted a new chunk (and so has timings).
    pub predicted: bool,
}

/// Memory a policy carries from chunk to chunk.
#[derive(Debug, Clone, Serialize)]
pub struct CacheMemory {
    /// The transformer's self-attention K/V pools (all blocks, all CFG rows).
    pub kv_cache_bytes: usize,
    /// The streaming VAE encoder's causal-conv caches.
    pub vae_cache_bytes: usize,
}

/// A loaded export, ready to start episodes. What never changes lives here (graphs,
/// tokenizer, configs); what a rollout accumulates lives in its [`PolicyEpisode`].
pub trait PolicyRunner: Send + Sync {
    fn manifest(&self) -> &Manifest;

    /// Width of each action the policy returns.
    fn action_dim(&self) -> usize;

    /// Width of the robot state the policy reads; `None` for a policy that reads none.
    fn state_dim(&self) -> Option<usize>;

    /// Actions the robot executes from each predicted chunk (the control rate is this times
    /// the chunk rate).
    fn actions_per_chunk(&self) -> usize;

    /// A new rollout drawing each chunk's initial noise from `noise`.
    fn start_episode(&self, noise: Noise) -> Box<dyn PolicyEpisode + '_>;
}

/// One rollout of a policy.
pub trait PolicyEpisode {
    /// Upstream `predict_action_chunk`: the next chunk for `observation`, whole.
    fn predict_chunk(&mut self, observation: &Observation) -> Result<Prediction, PolicyError>;

    /// Upstream `select_action`: one action per call, predicting a chunk when the queue of
    /// actions to execute runs dry.
    fn select_action(&mut self, observation: &Observation) -> Result<Step, PolicyError>;

    /// Back to the start of a rollout (upstream `reset`): caches and queue emptied.
    fn reset(&mut self);

    /// Chunks predicted since the start (or the last reset).
    fn chunks(&self) -> usize;

    /// Keeps every stage's tensors for [`Self::intermediates`] (`--dump`).
    fn keep_intermediates(&mut self, keep: bool);

    /// The kept tensors by name; a policy that predicts several chunks per rollout prefixes
    /// them `chunk{k}/`.
    fn intermediates(&self) -> BTreeMap<String, TensorValue>;

    /// Stage timings of the chunks predicted since the last call, in order.
    fn take_timings(&mut self) -> StageTimings;

    /// Memory carried between chunks; `None` for a policy that carries none.
    fn cache_memory(&self) -> Option<CacheMemory> {
        None
    }

    /// The video the policy predicts alongside its actions, for policies that predict one.
    fn predicted_video(&mut self) -> Option<&mut dyn PredictedVideo> {
        None
    }
}

/// A rollout's predicted video (LingBot-VA's world model).
pub trait PredictedVideo {
    /// Fails unless the export can decode what it predicts; check before a rollout.
    fn check_decodable(&self) -> Result<(), PolicyError>;
    /// Keeps every chunk's prediction from now on, for [`Self::decode`].
    fn keep(&mut self);
    /// The predictions kept so far as uint8 frames `[T, H, W, 3]`.
    fn decode(&self) -> Result<ndarray::Array4<u8>, PolicyError>;
}

/// Loads the export in `dir` with its policy's runner; every file's checksum is checked.
pub fn load(dir: &Path, backend: &dyn Backend) -> Result<Box<dyn PolicyRunner>, PolicyError> {
    let manifest = Manifest::load(dir, true)?;
    Ok(match manifest.policy.clone() {
        PolicySpec::VlaJepa(spec) => Box::new(ChunkRunner(vla_jepa::VlaJepaPolicy::load(
            dir, manifest, *spec, backend,
        )?)),
        PolicySpec::LingbotVa(spec) => Box::new(lingbot_va::LingbotVaPolicy::load(
            dir, manifest, spec, backend,
        )?),
        PolicySpec::Dexvla(spec) => Box::new(ChunkRunner(dexvla::DexVlaPolicy::load(
            dir, manifest, *spec, backend,
        )?)),
    })
}

/// The TensorRT shape profile [`load`] gives each graph role of the export in `dir`; roles
/// loaded without one are absent (every LingBot-VA graph, VLA-JEPA's DiT graphs).
pub fn shape_profiles(
    dir: &Path,
    manifest: &Manifest,
) -> Result<BTreeMap<String, ShapeProfile>, PolicyError> {
    match &manifest.policy {
        PolicySpec::VlaJepa(spec) => vla_jepa::shape_profiles_by_role(dir, spec),
        PolicySpec::LingbotVa(_) => Ok(BTreeMap::new()),
        PolicySpec::Dexvla(spec) => dexvla::shape_profiles_by_role(dir, spec),
    }
}
