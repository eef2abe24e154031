//! The backbone tokenizer with the policy's added tokens, and the prompt encoding upstream
//! does: each `<|image_pad|>` expanded to one copy per merged vision token, then tokenized
//! without adding special tokens.

use super::prompt::action_token;
use super::PreprocessError;
use std::path::{Path, PathBuf};
use tokenizers::{AddedToken, Tokenizer};

/// The placeholder the chat template writes once per image.
pub const IMAGE_PAD_TOKEN: &str = "<|image_pad|>";

/// The tokens the policy adds to the backbone vocabulary, in upstream's order.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyTokenSpec {
    /// `special_action_token`, e.g. `<|action_{}|>`.
    pub action_token_format: String,
    /// `chunk_size * 4`: upstream's count, independent of how many the prompt uses.
    pub action_token_count: usize,
    /// `embodied_action_token`.
    pub embodied_token: String,
}

impl PolicyTokenSpec {
    pub fn for_chunk_size(
        chunk_size: usize,
        action_token_format: &str,
        embodied_token: &str,
    ) -> Self {
        PolicyTokenSpec {
            action_token_format: action_token_format.to_string(),
            action_token_count: chunk_size * 4,
            embodied_token: embodied_token.to_string(),
        }
    }

    /// `<|action_0|>` … `<|action_{count-1}|>`, then the embodied token.
    pub fn tokens(&self) -> Result<Vec<String>, PreprocessError> {
        let mut tokens = (0..self.action_token_count)
            .map(|k| action_token(&self.action_token_format, k))
            .collect::<Result<Vec<_>, _>>()?;
        tokens.push(self.embodied_token.clone());
        Ok(tokens)
    }
}

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
    /// Loads the backbone `tokenizer.json` and adds the policy tokens one at a time as special
    /// tokens (not normalized, no stripping), skipping any the vocabulary already has, as
    /// upstream's `add_tokens([token], special_tokens=True)` loop does. Each new token must
    /// land at the id upstream gives it: the tokenizer's length just before it was added.
    pub fn from_backbone(
        tokenizer_json: &Path,
        spec: &PolicyTokenSpec,
    ) -> Result<Self, PreprocessError> {
        let mut loaded = Self::load(tokenizer_json)?;
        for token in spec.tokens()? {
            if loaded.tokenizer.token_to_id(&token).is_some() {
                continue;
            }
            let expected = loaded.tokenizer.get_vocab_size(true) as u32;
            loaded
                .tokenizer
                .add_special_tokens([AddedToken::from(token.clone(), true)])
                .map_err(|e| PreprocessError::Tokenizer {
                    path: tokenizer_json.to_path_buf(),
                    reason: format!("adding {token:?}: {e}"),
                })?;
            let actual = loaded.token_id(&token)?;
            if actual != expected {
                return Err(PreprocessError::AddedTokenId {
                    token,
                    expected,
                    actual,
                });
            }
        }
        Ok(loaded)
    }

    /// Loads a tokenizer file as is (a backbone's, or one written by [`Self::save`]).
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

    /// Writes the tokenizer, added tokens included, as a `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<(), PreprocessError> {
        self.tokenizer
            .save(path, false)
            .map_err(|e| PreprocessError::Tokenizer {
                path: path.to_path_buf(),
                reason: format!("writing: {e}"),
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
