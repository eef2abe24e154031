//! The export's tokenizer (the backbone's, with the policy's added tokens), and the prompt encoding upstream
//! does: each `<|image_pad|>` expanded to one copy per merged vision token, then tokenized
//! without adding special tokens.

use super::prompt::action_token;
use super::PreprocessError;
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;
pub use vjx_format::prompt::PolicyTokenSpec;

/// The placeholder the chat template writes once per image.
pub const IMAGE_PAD_TOKEN: &str = "<|image_pad|>";

/// The ids of the policy's added tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyTokenIds {
    pub action: Vec<u32>,
    pub embodied: u32,
}

/// A backbone tokenizer that carries the policy's added tokens.
pub struct PolicyTokenizer {
    tokenizer: Tokenizer,
    source: PathBuf,
}

impl PolicyTokenizer {
    /// Loads a tokenizer file as is (a backbone's, or the one an export holds).
    /// Padding and truncation are switched off: one prompt is encoded at a time, whole.
    pub fn load(path: &Path) -> Result<Self, PreprocessError> {
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| PreprocessError::Tokenizer {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| PreprocessError::Tokenizer {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(PolicyTokenizer {
            tokenizer,
            source: path.to_path_buf(),
        })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn token_id(&self, token: &str) -> Result<u32, PreprocessError> {
        self.tokenizer
            .token_to_id(token)
            .ok_or_else(|| PreprocessError::Tokenizer {
                path: self.source.clone(),
                reason: format!("no token {token:?}"),
            })
    }

    /// The ids of the policy tokens; fails if any is missing.
    pub fn policy_token_ids(
        &self,
        spec: &PolicyTokenSpec,
    ) -> Result<PolicyTokenIds, PreprocessError> {
        let action = (0..spec.action_token_count)
            .map(|k| self.token_id(&action_token(&spec.action_token_format, k)?))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PolicyTokenIds {
            action,
            embodied: self.token_id(&spec.embodied_token)?,
        })
    }

    /// Token ids of `text`, with no special tokens added around it.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<i64>, PreprocessError> {
        let encoding =
            self.tokenizer
                .encode(text, false)
                .map_err(|e| PreprocessError::Tokenizer {
                    path: self.source.clone(),
                    reason: format!("encoding: {e}"),
                })?;
        Ok(encoding.get_ids().iter().map(|&id| i64::from(id)).collect())
    }

    /// `input_ids` of a rendered chat: image placeholders expanded, then encoded.
    pub fn encode_chat(
        &self,
        rendered_chat: &str,
        tokens_per_image: &[usize],
    ) -> Result<Vec<i64>, PreprocessError> {
        self.encode_prompt(&expand_image_pads(rendered_chat, tokens_per_image)?)
    }
}

/// Replaces the k-th `<|image_pad|>` with `tokens_per_image[k]` copies of itself.
pub fn expand_image_pads(
    text: &str,
    tokens_per_image: &[usize],
) -> Result<String, PreprocessError> {
    let pieces: Vec<&str> = text.split(IMAGE_PAD_TOKEN).collect();
    let in_text = pieces.len() - 1;
    if in_text != tokens_per_image.len() {
        return Err(PreprocessError::ImagePlaceholderCount {
            token: IMAGE_PAD_TOKEN.to_string(),
            in_text,
            images: tokens_per_image.len(),
        });
    }
    let mut out = String::with_capacity(
        text.len() + tokens_per_image.iter().sum::<usize>() * IMAGE_PAD_TOKEN.len(),
    );
    out.push_str(pieces[0]);
    for (piece, &count) in pieces[1..].iter().zip(tokens_per_image) {
        out.push_str(&IMAGE_PAD_TOKEN.repeat(count));
        out.push_str(piece);
    }
    Ok(out)
}
