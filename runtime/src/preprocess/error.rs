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
    #[error(transparent)]
    Spec(#[from] vjx_format::SpecError),
    #[error("chat template: {0}")]
    ChatTemplate(#[from] minijinja::Error),
    #[error("tokenizer {path}: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    #[error("tokenizing prompt {text:?}: {reason}")]
    PromptEncoding { text: String, reason: String },
    #[error(
        "the rendered chat has {in_text} `{token}` placeholders but {images} images were given"
    )]
    ImagePlaceholderCount {
        token: String,
        in_text: usize,
        images: usize,
    },
    #[error(
        "the task contains `{token}`, a token the prompt places itself (upstream's tokenizer reads \
         it as that special token and misplaces the image or action rows); remove it from the task"
    )]
    ReservedToken { token: String },
}
