//! The prompt the policy builds around the task, and the tokens it adds to the backbone's
//! vocabulary, as the policy config defines them.

use crate::validate::{at_least_one, FieldError};
use crate::SpecError;
use serde::{Deserialize, Serialize};

/// The instruction upstream uses when an observation carries no task at all.
pub const DEFAULT_INSTRUCTION: &str = "Execute the robot action.";

/// Everything the instruction prompt depends on, taken from the policy config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptSpec {
    /// `prompt_template`, with `{instruction}`, `{actions}` and `{e_actions}` fields.
    pub template: String,
    /// `special_action_token`, e.g. `<|action_{}|>`.
    pub action_token_format: String,
    /// `embodied_action_token`.
    pub embodied_token: String,
    /// `num_action_tokens_per_timestep`.
    pub tokens_per_step: usize,
    /// `num_video_frames / tubelet_size - 1`, see [`num_action_prompt_steps`].
    pub num_steps: usize,
    /// `num_embodied_action_tokens_per_instruction`.
    pub num_embodied: usize,
    /// Used when the task is missing; upstream hard-codes [`DEFAULT_INSTRUCTION`].
    pub default_instruction: String,
}

impl PromptSpec {
    /// The embodied-action tokens are the rows the action head reads: at least one.
    pub fn check(&self, key: &str) -> Result<(), FieldError> {
        at_least_one(&format!("{key}.num_embodied"), self.num_embodied)
    }
}

/// How many action steps the prompt names: `num_video_frames // tubelet_size - 1`.
pub fn num_action_prompt_steps(num_video_frames: usize, tubelet_size: usize) -> usize {
    (num_video_frames / tubelet_size).saturating_sub(1)
}

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
    pub fn tokens(&self) -> Result<Vec<String>, SpecError> {
        let mut tokens = (0..self.action_token_count)
            .map(|k| action_token(&self.action_token_format, k))
            .collect::<Result<Vec<_>, _>>()?;
        tokens.push(self.embodied_token.clone());
        Ok(tokens)
    }
}

/// The `index`-th action token: `format` with its `{}` field filled, as Python's
/// `str.format(index)` does.
pub fn action_token(format: &str, index: usize) -> Result<String, SpecError> {
    python_format(format, |name, position| {
        (name.is_empty() && position == 0 || name == "0").then(|| index.to_string())
    })
}

/// Python `str.format` for plain replacement fields: `{name}` (or `{}` / `{0}`, numbered
/// automatically), with `{{` and `}}` as literal braces. Substituted text is not re-scanned.
/// Format specs and conversions are refused rather than misread.
pub fn python_format(
    template: &str,
    lookup: impl Fn(&str, usize) -> Option<String>,
) -> Result<String, SpecError> {
    let fail = |reason: String| SpecError::PromptTemplate {
        template: template.to_string(),
        reason,
    };
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    let mut next_position = 0;
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '}' => return Err(fail("single '}' encountered".into())),
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(ch @ ('{' | ':' | '!' | '.' | '[')) => {
                            return Err(fail(format!(
                                "unsupported character {ch:?} in field {{{name}"
                            )))
                        }
                        Some(ch) => name.push(ch),
                        None => return Err(fail("unclosed '{'".into())),
                    }
                }
                let value = lookup(&name, next_position)
                    .ok_or_else(|| fail(format!("unknown field {{{name}}}")))?;
                if name.is_empty() {
                    next_position += 1;
                }
                out.push_str(&value);
            }
            other => out.push(other),
        }
    }
    Ok(out)
}
