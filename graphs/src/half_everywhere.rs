//! Rewrites an exported graph so that every float tensor inside it is f16, keeping its f32 inputs
//! and outputs (cast at the boundary). That is the most TensorRT's FP16 mode may do to an FP32
//! graph: it is free to run any layer of a weakly typed network in FP16. Running the result on
//! tract shows whether a graph stays finite and accurate under that mode without a GPU.

use crate::onnx::tensor_proto::{DataLocation, DataType};
use crate::onnx::{type_proto, AttributeProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use half::f16;
use prost::Message;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum HalfEverywhereError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not an ONNX model: {source}")]
    Decode {
        path: PathBuf,
        source: prost::DecodeError,
    },
    #[error("{path}: initializer `{name}`: {reason}")]
    Initializer {
        path: PathBuf,
        name: String,
        reason: String,
    },
}

const FLOAT: i32 = DataType::Float as i32;
const FLOAT16: i32 = DataType::Float16 as i32;

/// The model at `graph_file` (external data read from beside it) with every float tensor made
/// f16, its weights inline. Graph inputs and outputs stay f32.
pub fn half_everywhere(graph_file: &Path) -> Result<ModelProto, HalfEverywhereError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| HalfEverywhereError::Io { path, source }
    };
    let bytes = std::fs::read(graph_file).map_err(io_err(graph_file))?;
    let mut model =
        ModelProto::decode(bytes.as_slice()).map_err(|source| HalfEverywhereError::Decode {
            path: graph_file.to_path_buf(),
            source,
        })?;
    let dir = graph_file.parent().unwrap_or(Path::new("."));
    let graph = model.graph.get_or_insert_with(Default::default);

    for tensor in &mut graph.initializer {
        inline_external_data(tensor, dir).map_err(|reason| HalfEverywhereError::Initializer {
            path: graph_file.to_path_buf(),
            name: tensor.name.clone().unwrap_or_default(),
            reason,
        })?;
        to_f16(tensor);
    }
    for node in &mut graph.node {
        retype_node(node);
    }
    for info in &mut graph.value_info {
        retype_value(info);
    }

    // Boundary casts: the f32 inputs feed f16 copies, and the f16 results are cast back.
    let mut head = Vec::new();
    for input in &graph.input {
        if elem_type(input) == Some(FLOAT) {
            let name = input.name.clone().unwrap_or_default();
            let inner = format!("{name}__f16");
            rename_uses(&mut graph.node, &name, &inner);
            head.push(cast_node(&name, &inner, FLOAT16));
        }
    }
    let mut tail = Vec::new();
    for output in &graph.output {
        if elem_type(output) == Some(FLOAT) {
            let name = output.name.clone().unwrap_or_default();
            let inner = format!("{name}__f16");
            for node in &mut graph.node {
                for out in &mut node.output {
                    if *out == name {
                        *out = inner.clone();
                    }
                }
            }
            rename_uses(&mut graph.node, &name, &inner);
            tail.push(cast_node(&inner, &name, FLOAT));
        }
    }
    let body = std::mem::take(&mut graph.node);
    graph.node = head.into_iter().chain(body).chain(tail).collect();
    Ok(model)
}

/// Writes [`half_everywhere`] of `graph_file` to `out` (one self-contained file).
pub fn write_half_everywhere(graph_file: &Path, out: &Path) -> Result<(), HalfEverywhereError> {
    let model = half_everywhere(graph_file)?;
    std::fs::write(out, model.encode_to_vec()).map_err(|source| HalfEverywhereError::Io {
        path: out.to_path_buf(),
        source,
    })
}

fn inline_external_data(tensor: &mut TensorProto, dir: &Path) -> Result<(), String> {
    if tensor.data_location != Some(DataLocation::External as i32) {
        return Ok(());
    }
    let entry = |key: &str| {
        tensor
            .external_data
            .iter()
            .find(|e| e.key.as_deref() == Some(key))
            .and_then(|e| e.value.clone())
    };
    let location = entry("location").ok_or("external data without a location")?;
    let offset: u64 = entry("offset")
        .map_or(Ok(0), |v| v.parse())
        .map_err(|e| format!("offset: {e}"))?;
    let data = std::fs::read(dir.join(&location)).map_err(|e| format!("{location}: {e}"))?;
    let start = offset as usize;
    let end = match entry("length") {
        Some(v) => start + v.parse::<usize>().map_err(|e| format!("length: {e}"))?,
        None => data.len(),
    };
    let bytes = data
        .get(start..end)
        .ok_or_else(|| format!("{location}: bytes {start}..{end} past its end"))?;
    tensor.raw_data = Some(bytes.to_vec());
    tensor.external_data.clear();
    tensor.data_location = Some(DataLocation::Default as i32);
    Ok(())
}

fn to_f16(tensor: &mut TensorProto) {
    if tensor.data_type != Some(FLOAT) {
        return;
    }
    let values: Vec<f32> = match &tensor.raw_data {
        Some(raw) => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        None => std::mem::take(&mut tensor.float_data),
    };
    tensor.raw_data = Some(
        values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect(),
    );
    tensor.float_data.clear();
    tensor.data_type = Some(FLOAT16);
}

fn retype_node(node: &mut NodeProto) {
    let is_cast = node.op_type.as_deref() == Some("Cast");
    for attr in &mut node.attribute {
        retype_attribute(attr, is_cast);
    }
}

fn retype_attribute(attr: &mut AttributeProto, is_cast: bool) {
    if is_cast && attr.name.as_deref() == Some("to") && attr.i == Some(FLOAT as i64) {
        attr.i = Some(FLOAT16 as i64);
    }
    if let Some(t) = &mut attr.t {
        to_f16(t);
    }
}

fn elem_type(info: &ValueInfoProto) -> Option<i32> {
    match info.r#type.as_ref()?.value.as_ref()? {
        type_proto::Value::TensorType(t) => t.elem_type,
        _ => None,
    }
}

fn retype_value(info: &mut ValueInfoProto) {
    if let Some(type_proto::Value::TensorType(t)) =
        info.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        if t.elem_type == Some(FLOAT) {
            t.elem_type = Some(FLOAT16);
        }
    }
}

fn rename_uses(nodes: &mut [NodeProto], from: &str, to: &str) {
    for node in nodes {
        for input in &mut node.input {
            if input == from {
                *input = to.to_string();
            }
        }
    }
}

fn cast_node(input: &str, output: &str, to: i32) -> NodeProto {
    NodeProto {
        input: vec![input.to_string()],
        output: vec![output.to_string()],
        name: Some(format!("{output}__cast")),
        op_type: Some("Cast".to_string()),
        attribute: vec![AttributeProto {
            name: Some("to".to_string()),
            i: Some(to as i64),
            r#type: Some(crate::onnx::attribute_proto::AttributeType::Int as i32),
            ..Default::default()
        }],
        ..Default::default()
    }
}
