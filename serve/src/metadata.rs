//! The metadata frame a client receives on connecting.

use crate::request::KeyMap;
use rmpv::Value;
use serde_json::json;
use vjx_runtime::policy::PolicyRunner;

pub fn metadata(
    runner: &dyn PolicyRunner,
    keys: &KeyMap,
    max_message_bytes: usize,
) -> serde_json::Value {
    let manifest = runner.manifest();
    let cameras: Vec<_> = manifest
        .cameras()
        .iter()
        .map(|c| json!({ "key": c.key, "shape": c.shape }))
        .collect();
    json!({
        "server": "vjx",
        "vjx_version": env!("CARGO_PKG_VERSION"),
        "policy_type": manifest.policy_type(),
        "precision": manifest.precision,
        "cameras": cameras,
        "image_layouts": ["uint8 [H, W, 3]", "uint8 [H, W]", "float32 [3, H, W] in [0, 1]"],
        "state_dim": runner.state_dim(),
        "action_dim": runner.action_dim(),
        "actions_per_chunk": runner.actions_per_chunk(),
        "request_keys": keys.describe(),
        "episode": "one per connection; send {\"reset\": true} to start over",
        "max_message_bytes": max_message_bytes,
    })
}

/// The same value as msgpack (strings as str, numbers as numbers).
pub fn to_msgpack(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::from(u),
            (None, Some(i)) => Value::from(i),
            _ => Value::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(to_msgpack).collect()),
        serde_json::Value::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| (Value::from(k.as_str()), to_msgpack(v)))
                .collect(),
        ),
    }
}
