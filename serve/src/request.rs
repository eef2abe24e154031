//! A request map → the observation it carries, by the export's cameras, state and task.
//!
//! Request keys are matched against a [`KeyMap`]. By default a camera `observation.images.X`
//! is read from `observation.images.X`, `observation/images/X` or `observation/X` (openpi's
//! examples), the state from `observation.state`, `observation/state` or `state`, the task
//! from `prompt` (openpi) or `task`; `--key REQUEST_KEY=TARGET` adds aliases. `reset: true`
//! starts the connection's episode over.

use crate::msgpack_numpy::{as_ndarray, key_text, Dtype, NdArray};
use ndarray::Array3;
use rmpv::Value;
use std::collections::BTreeMap;
use vjx_runtime::policy::{ImageInput, Observation};
use vjx_runtime::Manifest;

/// What a request key feeds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// A camera, by its feature key in the export.
    Camera(String),
    State,
    Task,
    Reset,
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Camera(key) => format!("camera `{key}`"),
            Target::State => "the state".into(),
            Target::Task => "the task".into(),
            Target::Reset => "reset".into(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct RequestError(pub String);

fn bad(text: impl Into<String>) -> RequestError {
    RequestError(text.into())
}

/// Request key → what it feeds.
#[derive(Debug, Clone)]
pub struct KeyMap {
    keys: BTreeMap<String, Target>,
}

impl KeyMap {
    /// The default aliases for `manifest`'s cameras, state and task.
    pub fn for_export(manifest: &Manifest) -> KeyMap {
        let cameras: Vec<&str> = manifest.cameras().iter().map(|c| c.key.as_str()).collect();
        KeyMap::for_cameras(&cameras)
    }

    /// The default aliases for cameras with these feature keys, the state and the task.
    pub fn for_cameras(cameras: &[&str]) -> KeyMap {
        let mut keys = BTreeMap::new();
        for camera in cameras {
            let target = Target::Camera(camera.to_string());
            keys.insert(camera.to_string(), target.clone());
            keys.insert(camera.replace('.', "/"), target.clone());
            if let Some(name) = camera.strip_prefix("observation.images.") {
                keys.insert(format!("observation/{name}"), target);
            }
        }
        for key in ["observation.state", "observation/state", "state"] {
            keys.insert(key.into(), Target::State);
        }
        for key in ["prompt", "task"] {
            keys.insert(key.into(), Target::Task);
        }
        keys.insert("reset".into(), Target::Reset);
        KeyMap { keys }
    }

    /// Adds `request_key` as an alias of `target`: a camera's feature key, `state` or `task`.
    pub fn alias(&mut self, request_key: &str, target: &str) -> Result<(), RequestError> {
        let resolved = match target {
            "state" => Target::State,
            "task" => Target::Task,
            camera => match self.keys.get(camera) {
                Some(t @ Target::Camera(_)) => t.clone(),
                _ => {
                    return Err(bad(format!(
                        "--key {request_key}={target}: `{target}` is not a camera of this export, `state` or `task` (cameras: {})",
                        self.cameras().join(", ")
                    )))
                }
            },
        };
        self.keys.insert(request_key.to_string(), resolved);
        Ok(())
    }

    fn cameras(&self) -> Vec<String> {
        let mut cameras: Vec<String> = self
            .keys
            .values()
            .filter_map(|t| match t {
                Target::Camera(k) => Some(k.clone()),
                _ => None,
            })
            .collect();
        cameras.sort();
        cameras.dedup();
        cameras
    }

    /// Request key → what it feeds, for the metadata frame.
    pub fn describe(&self) -> BTreeMap<String, String> {
        self.keys
            .iter()
            .map(|(k, t)| {
                let what = match t {
                    Target::Camera(key) => key.clone(),
                    Target::State => "state".into(),
                    Target::Task => "task".into(),
                    Target::Reset => "reset".into(),
                };
                (k.clone(), what)
            })
            .collect()
    }
}

/// Bounds on what one request may carry.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest height or width of a camera frame.
    pub max_image_side: usize,
    /// Longest task text, in bytes (the export's token limit applies after tokenization).
    pub max_task_bytes: usize,
}

/// A request, read: whether to start the episode over, and the observation, if any.
#[derive(Debug)]
pub struct Request {
    pub reset: bool,
    pub observation: Option<Observation>,
}

/// One request message as received: msgpack bytes → the request they carry.
pub fn decode_request(
    keys: &KeyMap,
    limits: Limits,
    bytes: &[u8],
) -> Result<Request, RequestError> {
    let value = crate::msgpack_numpy::decode(bytes).map_err(|e| bad(e.to_string()))?;
    read_request(keys, limits, &value)
}

pub fn read_request(keys: &KeyMap, limits: Limits, value: &Value) -> Result<Request, RequestError> {
    let Value::Map(entries) = value else {
        return Err(bad(
            "the request must be a map of observation keys (e.g. {\"observation/image\": ..., \"prompt\": ...})",
        ));
    };
    let mut request = Request {
        reset: false,
        observation: None,
    };
    let mut obs = Observation::default();
    let mut seen: BTreeMap<Target, String> = BTreeMap::new();
    for (key, value) in entries {
        let key = key_text(key).ok_or_else(|| bad(format!("request key {key} is not a string")))?;
        let target = keys.keys.get(key).ok_or_else(|| {
            let known: Vec<&str> = keys.keys.keys().map(String::as_str).collect();
            bad(format!(
                "unknown request key `{key}` (this export reads: {})",
                known.join(", ")
            ))
        })?;
        if let Some(first) = seen.insert(target.clone(), key.to_string()) {
            return Err(bad(format!(
                "`{key}` and `{first}` both give {}",
                target.describe()
            )));
        }
        match target {
            Target::Reset => {
                request.reset = value
                    .as_bool()
                    .ok_or_else(|| bad(format!("`{key}` must be true or false, got {value}")))?
            }
            Target::Task => {
                let text = value
                    .as_str()
                    .ok_or_else(|| bad(format!("`{key}` must be a string")))?;
                if text.len() > limits.max_task_bytes {
                    return Err(bad(format!(
                        "`{key}` has {} bytes; the server takes at most {} (--max-task-bytes)",
                        text.len(),
                        limits.max_task_bytes
                    )));
                }
                obs.task = Some(text.to_string());
            }
            Target::State => obs.state = Some(read_state(key, value)?),
            Target::Camera(camera) => {
                let frame = read_frame(key, value, limits.max_image_side)?;
                obs.images.insert(camera.clone(), ImageInput::Frame(frame));
            }
        }
    }
    let has_observation = !obs.images.is_empty() || obs.state.is_some() || obs.task.is_some();
    if has_observation {
        request.observation = Some(obs);
    } else if !request.reset {
        return Err(bad(
            "the request has no observation (cameras, state, task) and no `reset`",
        ));
    }
    Ok(request)
}

fn array(key: &str, value: &Value) -> Result<Option<NdArray>, RequestError> {
    as_ndarray(key, value)
        .transpose()
        .map_err(|e| bad(e.to_string()))
}

fn read_state(key: &str, value: &Value) -> Result<Vec<f32>, RequestError> {
    if let Some(array) = array(key, value)? {
        if array.shape.len() != 1 {
            return Err(bad(format!(
                "`{key}` must be a vector, got shape {:?}",
                array.shape
            )));
        }
        return Ok(array.to_f32());
    }
    let Value::Array(items) = value else {
        return Err(bad(format!(
            "`{key}` must be a numpy vector or a list of numbers"
        )));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_f64()
                .or_else(|| v.as_i64().map(|i| i as f64))
                .map(|v| v as f32)
                .ok_or_else(|| bad(format!("`{key}`[{i}] is not a number: {v}")))
        })
        .collect()
}

/// A camera frame: uint8 `[H, W, 3]` / `[H, W]` (openpi's layout) or float `[C, H, W]` in
/// [0, 1] with C of 1 or 3 (LeRobot's), as float CHW in [0, 1].
fn read_frame(key: &str, value: &Value, max_side: usize) -> Result<Array3<f32>, RequestError> {
    let array =
        array(key, value)?.ok_or_else(|| bad(format!("`{key}` must be a numpy image array")))?;
    let shape = array.shape.clone();
    let (c, h, w, channels_last) = match (array.dtype, shape.as_slice()) {
        (Dtype::U8, &[h, w, c]) if c == 1 || c == 3 => (c, h, w, true),
        (Dtype::U8, &[h, w]) => (1, h, w, true),
        (Dtype::F32 | Dtype::F64, &[c, h, w]) if c == 1 || c == 3 => (c, h, w, false),
        (dtype, _) => {
            return Err(bad(format!(
            "`{key}`: an image is uint8 [H, W, 3] or float [3, H, W] in [0, 1]; got {} {shape:?}",
            dtype.name()
        )))
        }
    };
    if h == 0 || w == 0 || h > max_side || w > max_side {
        return Err(bad(format!(
            "`{key}`: a {h}x{w} image is outside 1..={max_side} pixels a side (--max-image-side)"
        )));
    }
    let values = array.to_f32();
    if channels_last {
        return Ok(Array3::from_shape_fn((c, h, w), |(ci, y, x)| {
            values[(y * w + x) * c + ci] / 255.0
        }));
    }
    if let Some(i) = values.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(bad(format!(
            "`{key}`: float images hold values in [0, 1]; element {i} is {}",
            values[i]
        )));
    }
    Ok(Array3::from_shape_vec((c, h, w), values).expect("shape checked"))
}
