//! The one error type of host-side preprocessing.

use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PreprocessError {
    #[error("reading image {path}: {source}")]
    ImageRead {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error("image {what}: {reason}")]
    ImageShape { what: String, reason: String },
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
    #[error("chat template: {0}")]
    ChatTemplate(#[from] minijinja::Error),
    #[error("tokenizer {path}: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    #[error("tokenizing prompt {text:?}: {reason}")]
    PromptEncoding { text: String, reason: String },
    #[error("added token {token:?} got id {actual}, upstream gives it {expected}")]
    AddedTokenId {
        token: String,
        expected: u32,
        actual: u32,
    },
    #[error(
        "the rendered chat has {in_text} `{token}` placeholders but {images} images were given"
    )]
    ImagePlaceholderCount {
        token: String,
        in_text: usize,
        images: usize,
    },
}
