//! The backbone tokenizer with the policy's added tokens, written into the export.

use anyhow::{bail, Context, Result};
use std::path::Path;
use tokenizers::{AddedToken, Tokenizer};
use vjx_format::prompt::PolicyTokenSpec;

/// Loads the backbone `tokenizer.json` and adds the policy tokens one at a time as special
/// tokens (not normalized, no stripping), skipping any the vocabulary already has, as
/// upstream's `add_tokens([token], special_tokens=True)` loop does. Each new token must land
/// at the id upstream gives it: the tokenizer's length just before it was added.
pub fn with_policy_tokens(tokenizer_json: &Path, spec: &PolicyTokenSpec) -> Result<Tokenizer> {
    let mut tokenizer = Tokenizer::from_file(tokenizer_json)
        .map_err(|e| anyhow::anyhow!("tokenizer {}: {e}", tokenizer_json.display()))?;
    for token in spec.tokens()? {
        if tokenizer.token_to_id(&token).is_some() {
            continue;
        }
        let expected = tokenizer.get_vocab_size(true) as u32;
        tokenizer
            .add_special_tokens([AddedToken::from(token.clone(), true)])
            .map_err(|e| {
                anyhow::anyhow!(
                    "tokenizer {}: adding {token:?}: {e}",
                    tokenizer_json.display()
                )
            })?;
        let actual = token_id(&tokenizer, &token, tokenizer_json)?;
        if actual != expected {
            bail!("added token {token:?} got id {actual}, upstream gives it {expected}");
        }
    }
    Ok(tokenizer)
}

pub fn token_id(tokenizer: &Tokenizer, token: &str, source: &Path) -> Result<u32> {
    tokenizer
        .token_to_id(token)
        .with_context(|| format!("tokenizer {}: no token {token:?}", source.display()))
}

/// Writes the tokenizer, added tokens included, as a `tokenizer.json`.
pub fn save(tokenizer: &Tokenizer, path: &Path) -> Result<()> {
    tokenizer
        .save(path, false)
        .map_err(|e| anyhow::anyhow!("tokenizer {}: writing: {e}", path.display()))
}
