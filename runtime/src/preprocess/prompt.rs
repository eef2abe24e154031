//! The text side of an observation, as upstream LeRobot VLA-JEPA builds it: the instruction
//! prompt (`prompt_template` filled with the task, the action-token and embodied-token runs),
//! the one-turn user message (one image entry per camera, then the text), and the backbone's
//! chat template rendered the way transformers' `apply_chat_template` renders it.

use super::PreprocessError;
use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;

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

/// How many action steps the prompt names: `num_video_frames // tubelet_size - 1`.
pub fn num_action_prompt_steps(num_video_frames: usize, tubelet_size: usize) -> usize {
    (num_video_frames / tubelet_size).saturating_sub(1)
}

/// The `index`-th action token: `format` with its `{}` field filled, as Python's
/// `str.format(index)` does.
pub fn action_token(format: &str, index: usize) -> Result<String, PreprocessError> {
    python_format(format, |name, position| {
        (name.is_empty() && position == 0 || name == "0").then(|| index.to_string())
    })
}

/// `{actions}`: each of the first `num_steps` action tokens, repeated `tokens_per_step` times.
pub fn action_prompt(spec: &PromptSpec) -> Result<String, PreprocessError> {
    let mut out = String::new();
    for step in 0..spec.num_steps {
        out.push_str(&action_token(&spec.action_token_format, step)?.repeat(spec.tokens_per_step));
    }
    Ok(out)
}

/// `{e_actions}`: the embodied token, `num_embodied` times.
pub fn embodied_prompt(spec: &PromptSpec) -> String {
    spec.embodied_token.repeat(spec.num_embodied)
}

/// The instruction prompt for one observation. A missing task uses the default instruction;
/// an empty task stays empty, as upstream passes any string through.
pub fn instruction_prompt(
    spec: &PromptSpec,
    task: Option<&str>,
) -> Result<String, PreprocessError> {
    let instruction = task.unwrap_or(&spec.default_instruction);
    let actions = action_prompt(spec)?;
    let e_actions = embodied_prompt(spec);
    python_format(&spec.template, |name, _| match name {
        "instruction" => Some(instruction.to_string()),
        "actions" => Some(actions.clone()),
        "e_actions" => Some(e_actions.clone()),
        _ => None,
    })
}

/// Python `str.format` for plain replacement fields: `{name}` (or `{}` / `{0}`, numbered
/// automatically), with `{{` and `}}` as literal braces. Substituted text is not re-scanned.
/// Format specs and conversions are refused rather than misread.
fn python_format(
    template: &str,
    lookup: impl Fn(&str, usize) -> Option<String>,
) -> Result<String, PreprocessError> {
    let fail = |reason: String| PreprocessError::PromptTemplate {
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

/// Reads the processor's chat template from a backbone directory with transformers'
/// precedence: the `chat_template` key of `processor_config.json`, then the legacy
/// `chat_template.json`, then `chat_template.jinja`. The tokenizer's own template is not a
/// fallback: upstream's processor refuses to run without one of these.
pub fn load_chat_template(backbone_dir: &Path) -> Result<String, PreprocessError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| PreprocessError::FileRead {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    };
    let template_in_json = |path: &Path| -> Result<Option<String>, PreprocessError> {
        let json: serde_json::Value =
            serde_json::from_str(&read(path)?).map_err(|e| PreprocessError::FileRead {
                path: path.to_path_buf(),
                reason: format!("invalid JSON: {e}"),
            })?;
        match json.get("chat_template") {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(PreprocessError::ConfigField {
                path: path.to_path_buf(),
                key: "chat_template".into(),
                reason: "expected a single template string".into(),
            }),
        }
    };
    let processor_config = backbone_dir.join("processor_config.json");
    if processor_config.is_file() {
        if let Some(text) = template_in_json(&processor_config)? {
            return Ok(text);
        }
    }
    let legacy = backbone_dir.join("chat_template.json");
    if legacy.is_file() {
        return template_in_json(&legacy)?.ok_or_else(|| PreprocessError::ConfigField {
            path: legacy.clone(),
            key: "chat_template".into(),
            reason: "missing".into(),
        });
    }
    let jinja = backbone_dir.join("chat_template.jinja");
    if jinja.is_file() {
        return read(&jinja);
    }
    Err(PreprocessError::FileRead {
        path: backbone_dir.to_path_buf(),
        reason:
            "no chat template (processor_config.json, chat_template.json or chat_template.jinja)"
                .into(),
    })
}

/// The one-turn conversation upstream sends: a user message whose content is one image entry
/// per camera, in camera order, followed by the text.
pub fn user_message(num_images: usize, text: &str) -> serde_json::Value {
    let mut content: Vec<serde_json::Value> = (0..num_images)
        .map(|_| json!({"type": "image", "image": "<image>"}))
        .collect();
    content.push(json!({"type": "text", "text": text}));
    json!([{"role": "user", "content": content}])
}

/// Renders the chat template for [`user_message`] with the generation prompt appended.
pub fn render_chat(
    template: &str,
    num_images: usize,
    text: &str,
) -> Result<String, PreprocessError> {
    render_messages(template, &user_message(num_images, text), true)
}

/// Renders a chat template as transformers does: Jinja with `trim_blocks` and
/// `lstrip_blocks`, `tools` and `documents` set to none, the global `raise_exception`, and
/// `tojson` behaving like Python's `json.dumps(ensure_ascii=False)`. (transformers also
/// offers `strftime_now` and the tokenizer's special tokens; Qwen3-VL's template uses neither.)
pub fn render_messages(
    template: &str,
    messages: &serde_json::Value,
    add_generation_prompt: bool,
) -> Result<String, PreprocessError> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_function(
        "raise_exception",
        |message: String| -> Result<Value, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
        },
    );
    env.add_filter("tojson", python_tojson);
    let ctx = minijinja::context! {
        messages => Value::from_serialize(messages),
        tools => Value::from(()),
        documents => Value::from(()),
        add_generation_prompt => add_generation_prompt,
    };
    Ok(env.render_str(template, ctx)?)
}

/// `json.dumps(value, ensure_ascii=False, indent=indent, separators=separators,
/// sort_keys=sort_keys)`, the `tojson` filter transformers installs.
fn python_tojson(value: Value, kwargs: Kwargs) -> Result<String, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let _ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let (item_sep, key_sep) = match separators.as_deref() {
        Some([item, key]) => (item.clone(), key.clone()),
        Some(_) => {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                "separators must be a pair",
            ))
        }
        None if indent.is_some() => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    let json = serde_json::to_value(&value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let style = JsonStyle {
        indent,
        item_sep,
        key_sep,
        sort_keys: sort_keys.unwrap_or(false),
    };
    let mut out = String::new();
    style.write(&json, 0, &mut out);
    Ok(out)
}

struct JsonStyle {
    indent: Option<usize>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

impl JsonStyle {
    fn write(&self, value: &serde_json::Value, depth: usize, out: &mut String) {
        use serde_json::Value as J;
        match value {
            J::Array(items) if !items.is_empty() => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    self.separate(i, depth + 1, out);
                    self.write(item, depth + 1, out);
                }
                self.close(depth, out);
                out.push(']');
            }
            J::Object(map) if !map.is_empty() => {
                let mut entries: Vec<_> = map.iter().collect();
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                out.push('{');
                for (i, (key, item)) in entries.into_iter().enumerate() {
                    self.separate(i, depth + 1, out);
                    out.push_str(&J::String(key.clone()).to_string());
                    out.push_str(&self.key_sep);
                    self.write(item, depth + 1, out);
                }
                self.close(depth, out);
                out.push('}');
            }
            leaf => out.push_str(&leaf.to_string()),
        }
    }

    fn separate(&self, index: usize, depth: usize, out: &mut String) {
        if index > 0 {
            out.push_str(&self.item_sep);
        }
        if let Some(width) = self.indent {
            out.push('\n');
            out.push_str(&" ".repeat(width * depth));
        }
    }

    fn close(&self, depth: usize, out: &mut String) {
        if let Some(width) = self.indent {
            out.push('\n');
            out.push_str(&" ".repeat(width * depth));
        }
    }
}
