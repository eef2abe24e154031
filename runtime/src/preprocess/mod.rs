//! Host-side preprocessing, matching upstream LeRobot + transformers: image preparation,
//! prompt construction and the chat template, tokenization.

mod error;
pub mod image;
pub mod pil_resize;
pub mod prompt;
pub mod qwen_image;
pub mod tokenize;
pub mod umt5_prompt;

pub use error::PreprocessError;
