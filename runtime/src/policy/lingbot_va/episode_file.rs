//! `episode.json`: a recorded sequence of observations, one per `select_action` call, with
//! optional per-chunk initial noise (what `vjx episode` replays).
//!
//! ```json
//! {"task": "...",
//!  "calls": [{"images": {"<feature key>": "<png>"}, "state": [...]}, ...],
//!  "noise": [{"latents": "<npy>", "actions": "<npy>"}, ...]}
//! ```
//! Relative paths are taken from the JSON file's dir.

use super::ChunkNoise;
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
    noise: Option<Vec<RawNoise>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall {
    images: BTreeMap<String, PathBuf>,
    #[serde(default)]
    state: Option<Vec<f32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNoise {
    latents: PathBuf,
    actions: PathBuf,
}

/// A parsed episode: one observation per call (each carrying the task) and the noise.
#[derive(Debug, Clone)]
pub struct EpisodeFile {
    pub calls: Vec<Observation>,
    /// Given per-chunk noise, or `None` for seeded noise.
    pub noise: Option<ChunkNoise>,
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
                    .into_iter()
                    .enumerate()
                    .map(|(k, entry)| {
                        let read = |file: &Path, what: &str| {
                            npy::read_f32(&base.join(file)).map_err(|e| {
                                bad(path, format!("noise[{k}].{what} ({}): {e}", file.display()))
                            })
                        };
                        Ok((
                            read(&entry.latents, "latents")?,
                            read(&entry.actions, "actions")?,
                        ))
                    })
                    .collect::<Result<Vec<_>, PolicyError>>()
                    .map(ChunkNoise::Given)
            })
            .transpose()?;
        Ok(EpisodeFile { calls, noise })
    }
}
