//! The text side of an observation, as upstream LeRobot VLA-JEPA builds it: the instruction
//! prompt (`prompt_template` filled with the task, the action-token and embodied-token runs),
//! the one-turn user message (one image entry per camera, then the text), and the backbone's
//! chat template rendered the way transformers' `apply_chat_template` renders it.

use super::PreprocessError;
use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, ErrorKind};
use serde_json::json;
pub use vjx_format::prompt::{
    action_token, num_action_prompt_steps, python_format, PromptSpec, DEFAULT_INSTRUCTION,
};

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
    Ok(python_format(&spec.template, |name, _| match name {
        "instruction" => Some(instruction.to_string()),
        "actions" => Some(actions.clone()),
        "e_actions" => Some(e_actions.clone()),
        _ => None,
    })?)
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

/// Tokens the prompt places itself around the images; in a task they would add image rows.
pub const VISION_PLACEHOLDERS: [&str; 4] = [
    "<|image_pad|>",
    "<|video_pad|>",
    "<|vision_start|>",
    "<|vision_end|>",
];

/// Fails when `task` holds one of the `reserved` token strings. Other special-token strings
/// (`<|im_end|>`, ...) stay as upstream's tokenizer reads them: as their special tokens.
pub fn check_task(task: &str, reserved: &[&str]) -> Result<(), PreprocessError> {
    match reserved.iter().find(|token| task.contains(*token)) {
        Some(token) => Err(PreprocessError::ReservedToken {
            token: token.to_string(),
        }),
        None => Ok(()),
    }
}
