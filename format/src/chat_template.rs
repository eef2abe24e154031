//! The chat template a backbone directory ships, found as transformers finds it.

use crate::SpecError;
use std::path::Path;

/// Reads the processor's chat template from a backbone directory with transformers'
/// precedence: the `chat_template` key of `processor_config.json`, then the legacy
/// `chat_template.json`, then `chat_template.jinja`. The tokenizer's own template is not a
/// fallback: upstream's processor refuses to run without one of these.
pub fn load_chat_template(backbone_dir: &Path) -> Result<String, SpecError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| SpecError::FileRead {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    };
    let template_in_json = |path: &Path| -> Result<Option<String>, SpecError> {
        let json: serde_json::Value =
            serde_json::from_str(&read(path)?).map_err(|e| SpecError::FileRead {
                path: path.to_path_buf(),
                reason: format!("invalid JSON: {e}"),
            })?;
        match json.get("chat_template") {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(SpecError::ConfigField {
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
        return template_in_json(&legacy)?.ok_or_else(|| SpecError::ConfigField {
            path: legacy.clone(),
            key: "chat_template".into(),
            reason: "missing".into(),
        });
    }
    let jinja = backbone_dir.join("chat_template.jinja");
    if jinja.is_file() {
        return read(&jinja);
    }
    Err(SpecError::FileRead {
        path: backbone_dir.to_path_buf(),
        reason:
            "no chat template (processor_config.json, chat_template.json or chat_template.jinja)"
                .into(),
    })
}
