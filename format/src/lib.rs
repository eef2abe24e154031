//! vjx-format: what an export dir holds, as the exporter writes it and the runtime reads it.
//! Data and its checks only: no graphs are built or run here.

pub mod chat_template;
pub mod dexvla;
pub mod lingbot_va;
pub mod manifest;
pub mod normalization;
pub mod prompt;
pub mod qwen_image;
pub mod tensor;
pub mod validate;
pub mod vla_jepa;

pub use manifest::{
    content_sha256, seal, sha256_file, CameraSpec, GraphEntry, Manifest, ManifestError, PolicySpec,
    Source, CHECKSUM_KEY, FORMAT_VERSION, MANIFEST_FILE,
};
pub use tensor::{DType, Dim, Precision, TensorSpec};

use std::path::PathBuf;
use thiserror::Error;

/// A config file or spec that cannot be read as the policy needs it.
#[derive(Debug, Error)]
pub enum SpecError {
    #[error("reading {path}: {reason}")]
    FileRead { path: PathBuf, reason: String },
    #[error("{path}: key `{key}`: {reason}")]
    ConfigField {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("prompt template {template:?}: {reason}")]
    PromptTemplate { template: String, reason: String },
}
