//! The checks [`Manifest::load`] runs before anything reads a manifest's values: every file it
//! names is inside the export dir and covered by `files`, and every value the pipeline
//! indexes, divides or sizes buffers by is in range. Each policy checks its own section
//! (`check` in its module); normalization and post-processing are checked against the
//! policy's widths.

use crate::manifest::{CameraSpec, Manifest, ManifestError, MANIFEST_FILE};
use crate::normalization::check_post_steps;
use std::path::{Component, Path, PathBuf};
use thiserror::Error;

/// A value the pipeline cannot use: its key (`normalization.state.mean`, `policy.chunk_size`)
/// and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{key} {reason}")]
pub struct FieldError {
    pub key: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// A width the policy fixes, with the key it comes from (`8`, `policy.state_dim`).
pub type Width<'a> = Option<(usize, &'a str)>;

/// A size or count the pipeline divides or allocates by.
pub(crate) fn at_least_one(key: &str, value: usize) -> Result<(), FieldError> {
    match value {
        0 => Err(FieldError::new(key, "is 0; it must be at least 1")),
        _ => Ok(()),
    }
}

/// `n_action_steps` of a chunk of `chunk_size`: at least one, at most the chunk.
pub(crate) fn check_action_steps(
    n_action_steps: usize,
    chunk_size: usize,
) -> Result<(), FieldError> {
    if n_action_steps == 0 || n_action_steps > chunk_size {
        return Err(FieldError::new(
            "policy.n_action_steps",
            format!(
                "is {n_action_steps}; it must be between 1 and policy.chunk_size ({chunk_size})"
            ),
        ));
    }
    Ok(())
}

impl Manifest {
    /// Checks that every file the manifest names is a plain name inside the export dir with
    /// an entry in `files`, and that every value the policy's pipeline relies on is usable.
    pub fn validate(&self, dir: &Path) -> Result<(), ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let field = |field: FieldError| ManifestError::Field {
            path: path.clone(),
            field,
        };
        for file in self.files.keys() {
            check_plain_name(&format!("files.{file}"), file).map_err(field)?;
        }
        for (key, file) in self.referenced_files() {
            check_plain_name(&key, file).map_err(field)?;
            if !self.files.contains_key(file) {
                return Err(ManifestError::Unlisted {
                    path,
                    key,
                    file: file.to_string(),
                });
            }
        }
        check_cameras(self.cameras()).map_err(field)?;
        self.policy.check().map_err(field)?;
        let action = self.policy.action_width();
        let norm = &self.normalization;
        if let Some(state) = &norm.state {
            state
                .check("normalization.state", self.policy.state_width())
                .map_err(field)?;
        }
        norm.action
            .check("normalization.action", action)
            .map_err(field)?;
        let action = action.or_else(|| {
            norm.action
                .width()
                .map(|w| (w, "the width of normalization.action"))
        });
        check_post_steps(&self.postprocess, action).map_err(field)?;
        self.policy.check_files(dir)
    }

    /// Every file the manifest names, with the key that names it.
    fn referenced_files(&self) -> Vec<(String, &str)> {
        let mut files = Vec::new();
        for (role, graph) in &self.graphs {
            files.push((format!("graphs.{role}.file"), graph.file.as_str()));
            if let Some(data) = &graph.data_file {
                files.push((format!("graphs.{role}.data_file"), data.as_str()));
            }
        }
        for (key, file) in self.policy.files() {
            files.push((format!("policy.{key}"), file));
        }
        files
    }
}

/// A file name inside the export dir: relative, without `..`.
fn check_plain_name(key: &str, file: &str) -> Result<(), FieldError> {
    let inside = !file.is_empty()
        && Path::new(file)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    match inside {
        true => Ok(()),
        false => Err(FieldError::new(
            key,
            format!("is `{file}`, which is not a file inside the export dir"),
        )),
    }
}

/// Each camera's `[C, H, W]`, where given, has no zero side.
fn check_cameras(cameras: &[CameraSpec]) -> Result<(), FieldError> {
    if cameras.is_empty() {
        return Err(FieldError::new("policy.cameras", "is empty"));
    }
    for (i, camera) in cameras.iter().enumerate() {
        let key = format!("policy.cameras[{i}].shape");
        match camera.shape.as_slice() {
            [] => {}
            [_, _, _] if camera.shape.iter().all(|&d| d > 0) => {}
            shape => {
                return Err(FieldError::new(
                    key,
                    format!("is {shape:?}; it must be [C, H, W] with no zero side"),
                ))
            }
        }
    }
    Ok(())
}

/// A JSON config the export ships (a backbone's `config.json`), read for validation. `None`
/// when it cannot be read or parsed: the checksums, or the runner that parses it, say why.
pub(crate) struct ConfigFile {
    path: PathBuf,
    json: serde_json::Value,
}

impl ConfigFile {
    pub(crate) fn read(dir: &Path, file: &str) -> Option<Self> {
        let path = dir.join(file);
        let json = serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
        Some(ConfigFile { path, json })
    }

    pub(crate) fn error(&self, field: FieldError) -> ManifestError {
        ManifestError::Field {
            path: self.path.clone(),
            field,
        }
    }

    /// The unsigned integer at the dotted `key`, or `None` when it is absent or null.
    pub(crate) fn optional_size(&self, key: &str) -> Result<Option<u64>, ManifestError> {
        let pointer = format!("/{}", key.replace('.', "/"));
        match self.json.pointer(&pointer) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                self.error(FieldError::new(
                    key,
                    format!("is {v}; it must be a non-negative integer"),
                ))
            }),
        }
    }

    /// The unsigned integer at the dotted `key`.
    pub(crate) fn size(&self, key: &str) -> Result<u64, ManifestError> {
        self.optional_size(key)?
            .ok_or_else(|| self.error(FieldError::new(key, "is missing")))
    }

    /// The unsigned integer at the dotted `key`, at least 1.
    pub(crate) fn positive(&self, key: &str) -> Result<u64, ManifestError> {
        let value = self.size(key)?;
        at_least_one(key, value as usize).map_err(|e| self.error(e))?;
        Ok(value)
    }

    /// `heads` (at `heads_key`) divides the width at `width_key`.
    pub(crate) fn check_divides(
        &self,
        heads_key: &str,
        heads: u64,
        width_key: &str,
    ) -> Result<(), ManifestError> {
        let width = self.size(width_key)?;
        if width % heads != 0 {
            return Err(self.error(FieldError::new(
                heads_key,
                format!("is {heads}, which does not divide {width_key} ({width})"),
            )));
        }
        Ok(())
    }
}
