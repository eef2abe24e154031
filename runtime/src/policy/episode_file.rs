//! `episode.json`: a recorded sequence of observations, one per `select_action` call, with
//! optional per-chunk initial noise, each array by the name the policy samples it under
//! (what `vjx episode` replays; LingBot-VA samples `latents` and `actions`).
//!
//! ```json
//! {"task": "...",
//!  "calls": [{"images": {"<feature key>": "<png>"}, "state": [...]}, ...],
//!  "noise": [{"latents": "<npy>", "actions": "<npy>"}, ...]}
//! ```
//! Relative paths are taken from the JSON file's dir.

use super::noise::{ChunkNoise, Noise};
use crate::npy;
use crate::policy::{ImageInput, Observation, PolicyError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEpisode {
    #[serde(default)]
    task: Option<String>,
    calls: Vec<RawCall>,
    #[serde(default)]
    noise: Option<Vec<BTreeMap<String, PathBuf>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall {
    images: BTreeMap<String, PathBuf>,
    #[serde(default)]
    state: Option<Vec<f32>>,
}

/// A parsed episode: one observation per call (each carrying the task) and the noise.
#[derive(Debug, Clone)]
pub struct EpisodeFile {
    pub calls: Vec<Observation>,
    /// Given per-chunk noise, or `None` for seeded noise.
    pub noise: Option<Noise>,
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> PolicyError {
    PolicyError::Input(format!("{}: {reason}", path.display()))
}

impl EpisodeFile {
    pub fn read(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| bad(path, e))?;
        let raw: RawEpisode = serde_json::from_str(&text).map_err(|e| bad(path, e))?;
        if raw.calls.is_empty() {
            return Err(bad(
                path,
                "`calls` is empty; an episode needs at least one observation",
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let calls = raw
            .calls
            .into_iter()
            .map(|call| Observation {
                images: call
                    .images
                    .into_iter()
                    .map(|(key, file)| (key, ImageInput::Path(base.join(file))))
                    .collect(),
                state: call.state,
                task: raw.task.clone(),
            })
            .collect();
        let noise = raw
            .noise
            .map(|entries| {
                entries
                    .iter()
                    .enumerate()
                    .map(|(k, entry)| read_chunk_noise(path, base, k, entry))
                    .collect::<Result<Vec<_>, PolicyError>>()
                    .map(Noise::Given)
            })
            .transpose()?;
        Ok(EpisodeFile { calls, noise })
    }
}

fn read_chunk_noise(
    path: &Path,
    base: &Path,
    k: usize,
    entry: &BTreeMap<String, PathBuf>,
) -> Result<ChunkNoise, PolicyError> {
    entry
        .iter()
        .map(|(name, file)| {
            let array = npy::read_f32(&base.join(file))
                .map_err(|e| bad(path, format!("noise[{k}].{name} ({}): {e}", file.display())))?;
            Ok((name.clone(), array))
        })
        .collect()
}
