//! One pipeline per policy, behind a common entry point: [`Policy::load`] reads an export
//! dir and [`Policy::predict_chunk`] turns one observation into one action chunk.

pub mod lingbot_va;
pub mod observation;
pub mod vla_jepa;

use crate::backend::{Backend, ShapeProfile};
use crate::manifest::{Manifest, ManifestError};
pub use observation::{ImageInput, Noise, Observation};
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
    #[error("export dir {dir}: policy type `{found}` is not supported by this runtime (supported: vla_jepa, lingbot_va)")]
    UnsupportedPolicy { dir: String, found: String },
    #[error("{0}")]
    Other(String),
}

/// Wall-clock milliseconds per stage of one chunk, in pipeline order.
pub type StageTimings = Vec<(String, f64)>;

/// One predicted action chunk.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// `[chunk_size, action_dim]`, row-major, after post-processing (robot units).
    pub actions: Vec<f32>,
    /// The Euler result before clipping and unnormalization.
    pub actions_normalized: Vec<f32>,
    pub chunk_size: usize,
    pub action_dim: usize,
    pub timings_ms: StageTimings,
    /// Intermediate tensors by name, when asked for (`--dump`).
    pub intermediates: BTreeMap<String, crate::backend::TensorValue>,
}

impl Prediction {
    pub fn rows(&self) -> Vec<Vec<f32>> {
        self.actions
            .chunks(self.action_dim)
            .map(|r| r.to_vec())
            .collect()
    }
}

/// A loaded export, ready to predict.
pub enum Policy {
    VlaJepa(Box<vla_jepa::VlaJepaPolicy>),
    LingbotVa(Box<lingbot_va::LingbotVaPolicy>),
}

impl Policy {
    pub fn load(dir: &Path, backend: &dyn Backend) -> Result<Self, PolicyError> {
        let manifest = Manifest::load(dir, true)?;
        match manifest.policy_type.as_str() {
            "vla_jepa" => Ok(Policy::VlaJepa(Box::new(vla_jepa::VlaJepaPolicy::load(
                dir, manifest, backend,
            )?))),
            "lingbot_va" => Ok(Policy::LingbotVa(Box::new(
                lingbot_va::LingbotVaPolicy::load(dir, manifest, backend)?,
            ))),
            other => Err(PolicyError::UnsupportedPolicy {
                dir: dir.display().to_string(),
                found: other.to_string(),
            }),
        }
    }

    pub fn manifest(&self) -> &Manifest {
        match self {
            Policy::VlaJepa(p) => p.manifest(),
            Policy::LingbotVa(p) => p.manifest(),
        }
    }

    pub fn predict_chunk(
        &self,
        observation: &Observation,
        noise: &Noise,
        keep_intermediates: bool,
    ) -> Result<Prediction, PolicyError> {
        match self {
            Policy::VlaJepa(p) => p.predict_chunk(observation, noise, keep_intermediates),
            Policy::LingbotVa(p) => lingbot_first_chunk(p, observation, noise, keep_intermediates),
        }
    }
}

/// The TensorRT shape profile [`Policy::load`] gives each graph role of the export in `dir`;
/// roles loaded without one are absent (every LingBot-VA graph, VLA-JEPA's DiT graphs).
pub fn shape_profiles(
    dir: &Path,
    manifest: &Manifest,
) -> Result<BTreeMap<String, ShapeProfile>, PolicyError> {
    match manifest.policy_type.as_str() {
        "vla_jepa" => vla_jepa::shape_profiles_by_role(dir, manifest),
        "lingbot_va" => Ok(BTreeMap::new()),
        other => Err(PolicyError::UnsupportedPolicy {
            dir: dir.display().to_string(),
            found: other.to_string(),
        }),
    }
}

/// LingBot-VA's answer to one observation: the first chunk of a fresh episode.
fn lingbot_first_chunk(
    policy: &lingbot_va::LingbotVaPolicy,
    observation: &Observation,
    noise: &Noise,
    keep_intermediates: bool,
) -> Result<Prediction, PolicyError> {
    let seed = match noise {
        Noise::Seeded(seed) => *seed,
        Noise::Given { .. } => {
            return Err(PolicyError::Input(
                "LingBot-VA takes its noise per chunk in upstream's shapes: use `vjx episode` with `noise` in episode.json".into(),
            ))
        }
    };
    let mut episode = policy.episode(lingbot_va::ChunkNoise::Seeded(seed));
    episode.keep_intermediates(keep_intermediates);
    // The rest of the chunk is queued: draining it needs no further observation.
    let mut rows = vec![episode.select_action(observation)?];
    while let Some(step) = episode.pop_queued() {
        rows.push(step);
    }
    let action_dim = policy.action_dim();
    let intermediates = episode
        .intermediates()
        .iter()
        .map(|(k, v)| (k.clone(), crate::backend::TensorValue::F32(v.clone())))
        .collect();
    Ok(Prediction {
        chunk_size: rows.len(),
        action_dim,
        actions: rows.iter().flat_map(|s| s.action.iter().copied()).collect(),
        actions_normalized: rows
            .iter()
            .flat_map(|s| s.action_normalized.iter().copied())
            .collect(),
        timings_ms: episode.take_timings(),
        intermediates,
    })
}
