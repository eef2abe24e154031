//! What is known statically about each tensor of one graph: its element type and rank, and
//! whether it is a weight (an initializer or a `Constant` output), read from the proto alone.
//!
//! vjx's graphs carry types only on their inputs, outputs and initializers, so element types
//! and ranks of the values in between are propagated here, node by node, with the few output
//! rules the check needs. A tensor this cannot type stays unknown, and rules that need it are
//! skipped rather than guessed.

use std::collections::HashMap;
use vjx_graphs::onnx::tensor_proto::{DataLocation, DataType};
use vjx_graphs::onnx::{
    attribute_proto::AttributeType, type_proto, AttributeProto, GraphProto, NodeProto, TensorProto,
    ValueInfoProto,
};

/// One of a node's tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Input(usize),
    Output(usize),
}

impl Operand {
    /// The tensor's name, or `None` when the node leaves that slot out.
    pub fn name(self, node: &NodeProto) -> Option<&str> {
        let names = match self {
            Operand::Input(_) => &node.input,
            Operand::Output(_) => &node.output,
        };
        let i = match self {
            Operand::Input(i) | Operand::Output(i) => i,
        };
        names.get(i).map(String::as_str).filter(|n| !n.is_empty())
    }
}

impl std::fmt::Display for Operand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Operand::Input(i) => write!(f, "input {i}"),
            Operand::Output(i) => write!(f, "output {i}"),
        }
    }
}

/// The short name of an element type in reports (`f32`, `i64`, `bool`, ...).
pub fn type_name(t: DataType) -> &'static str {
    match t {
        DataType::Float => "f32",
        DataType::Float16 => "f16",
        DataType::Bfloat16 => "bf16",
        DataType::Double => "f64",
        DataType::Int8 => "i8",
        DataType::Uint8 => "u8",
        DataType::Int16 => "i16",
        DataType::Uint16 => "u16",
        DataType::Int32 => "i32",
        DataType::Uint32 => "u32",
        DataType::Int64 => "i64",
        DataType::Uint64 => "u64",
        DataType::Bool => "bool",
        DataType::String => "string",
        DataType::Complex64 => "complex64",
        DataType::Complex128 => "complex128",
        DataType::Float8e4m3fn => "f8e4m3fn",
        DataType::Float8e4m3fnuz => "f8e4m3fnuz",
        DataType::Float8e5m2 => "f8e5m2",
        DataType::Float8e5m2fnuz => "f8e5m2fnuz",
        DataType::Uint4 => "u4",
        DataType::Int4 => "i4",
        _ => "an unusual element type",
    }
}

fn data_type(code: i32) -> Option<DataType> {
    DataType::try_from(code)
        .ok()
        .filter(|t| *t != DataType::Undefined)
}

#[derive(Debug, Clone, Copy, Default)]
struct TensorFacts {
    elem: Option<DataType>,
    rank: Option<usize>,
}

/// The facts of one graph (and, for a subgraph, of the scopes around it).
#[derive(Debug, Clone, Default)]
pub struct GraphFacts {
    tensors: HashMap<String, TensorFacts>,
    /// Initializers and `Constant` outputs, by name.
    weights: HashMap<String, TensorProto>,
}

impl GraphFacts {
    pub fn of(graph: &GraphProto) -> Self {
        Self::default().nested(graph)
    }

    /// The facts inside `graph`, which also sees every name of `self` (a subgraph's outer scope).
    pub fn nested(&self, graph: &GraphProto) -> Self {
        let mut facts = self.clone();
        for info in graph
            .input
            .iter()
            .chain(&graph.output)
            .chain(&graph.value_info)
        {
            facts.add_value_info(info);
        }
        for init in &graph.initializer {
            if let Some(name) = &init.name {
                facts.set(
                    name,
                    init.data_type.and_then(data_type),
                    Some(init.dims.len()),
                );
                facts.weights.insert(name.clone(), init.clone());
            }
        }
        for node in &graph.node {
            facts.propagate(node);
        }
        facts
    }

    fn add_value_info(&mut self, info: &ValueInfoProto) {
        let (Some(name), Some(tp)) = (&info.name, &info.r#type) else {
            return;
        };
        if let Some(type_proto::Value::TensorType(t)) = &tp.value {
            let rank = t.shape.as_ref().map(|s| s.dim.len());
            self.set(name, t.elem_type.and_then(data_type), rank);
        }
    }

    /// Records what is known, keeping earlier knowledge where the new one is missing.
    fn set(&mut self, name: &str, elem: Option<DataType>, rank: Option<usize>) {
        let entry = self.tensors.entry(name.to_string()).or_default();
        entry.elem = entry.elem.or(elem);
        entry.rank = entry.rank.or(rank);
    }

    pub fn elem_type(&self, name: &str) -> Option<DataType> {
        self.tensors.get(name).and_then(|t| t.elem)
    }

    pub fn rank(&self, name: &str) -> Option<usize> {
        self.tensors.get(name).and_then(|t| t.rank)
    }

    /// Whether `name` is known when the engine is built (an initializer or a `Constant`).
    pub fn is_weight(&self, name: &str) -> bool {
        self.weights.contains_key(name)
    }

    pub fn weight(&self, name: &str) -> Option<&TensorProto> {
        self.weights.get(name)
    }

    /// The element type of one of `node`'s tensors, when known.
    pub fn operand_type(&self, node: &NodeProto, operand: Operand) -> Option<DataType> {
        operand.name(node).and_then(|n| self.elem_type(n))
    }

    /// The integer values of a weight stored in the proto itself (not in external data).
    pub fn inline_ints(&self, name: &str) -> Option<Vec<i64>> {
        inline_ints(self.weights.get(name)?)
    }

    fn propagate(&mut self, node: &NodeProto) {
        let op = node.op_type.as_deref().unwrap_or("");
        let domain = node.domain.as_deref().unwrap_or("");
        if op == "Constant" && matches!(domain, "" | "ai.onnx") {
            if let Some(out) = node.output.first() {
                let (value, rank) = constant_value(node);
                if let Some(t) = value {
                    self.weights.insert(out.clone(), t);
                }
                self.set(out, constant_type(node), rank);
            }
            return;
        }
        let input_type = |i: usize| node.input.get(i).and_then(|n| self.elem_type(n));
        let first_input = node
            .input
            .iter()
            .find(|n| !n.is_empty())
            .and_then(|n| self.elem_type(n));
        let outputs: Vec<Option<DataType>> = (0..node.output.len())
            .map(|i| output_type(op, node, i, &input_type).unwrap_or(first_input))
            .collect();
        let rank = self.output_rank(op, node);
        for (i, name) in node.output.iter().enumerate() {
            if !name.is_empty() {
                self.set(name, outputs[i], if i == 0 { rank } else { None });
            }
        }
    }

    /// The rank of output 0 for the few ops where it follows from ranks and attributes alone.
    fn output_rank(&self, op: &str, node: &NodeProto) -> Option<usize> {
        let in_rank = |i: usize| node.input.get(i).and_then(|n| self.rank(n));
        match op {
            "Reshape" => node
                .input
                .get(1)
                .and_then(|s| self.inline_ints(s))
                .map(|v| v.len()),
            "Transpose" => ints_attr(node, "perm")
                .map(|p| p.len())
                .or_else(|| in_rank(0)),
            "Unsqueeze" => {
                Some(in_rank(0)? + node.input.get(1).and_then(|a| self.inline_ints(a))?.len())
            }
            "Cast" | "Relu" | "Sigmoid" | "Tanh" | "Erf" | "Sqrt" | "Exp" | "Log" | "Neg"
            | "Abs" | "Softmax" | "LayerNormalization" | "Identity" | "Sin" | "Cos" | "Where"
            | "Expand" | "Slice" | "Pad" | "Concat" => in_rank(0),
            "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Max" | "Min" | "Equal" | "Greater"
            | "Less" => {
                let ranks: Option<Vec<usize>> = (0..node.input.len()).map(in_rank).collect();
                ranks.and_then(|r| r.into_iter().max())
            }
            _ => None,
        }
    }
}

/// The element type of output `i` where it does not follow input 0; `None` means "as input 0".
fn output_type(
    op: &str,
    node: &NodeProto,
    i: usize,
    input_type: &dyn Fn(usize) -> Option<DataType>,
) -> Option<Option<DataType>> {
    let fixed = |t: DataType| Some(Some(t));
    match (op, i) {
        ("Cast", 0) => Some(int_attr(node, "to").and_then(|c| data_type(c as i32))),
        ("CastLike", 0) => Some(input_type(1)),
        ("Shape" | "Size" | "NonZero" | "ArgMax" | "ArgMin", 0) => fixed(DataType::Int64),
        ("TopK" | "MaxPool" | "Unique", 1..) => fixed(DataType::Int64),
        (
            "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "Not" | "And" | "Or"
            | "Xor" | "IsNaN" | "IsInf",
            0,
        ) => fixed(DataType::Bool),
        ("Dropout", 1) => fixed(DataType::Bool),
        ("LayerNormalization", 1..) => fixed(DataType::Float),
        ("DynamicQuantizeLinear", 0 | 2) => fixed(DataType::Uint8),
        ("DynamicQuantizeLinear", 1) => fixed(DataType::Float),
        ("MatMulInteger" | "ConvInteger", 0) => fixed(DataType::Int32),
        ("QuantizeLinear", 0) => Some(input_type(2).or(Some(DataType::Uint8))),
        ("DequantizeLinear", 0) => Some(input_type(1)),
        ("Where", 0) => Some(input_type(1)),
        ("OneHot", 0) => Some(input_type(2)),
        ("ConstantOfShape", 0) => Some(
            attr(node, "value")
                .and_then(|a| a.t.as_ref())
                .and_then(|t| t.data_type)
                .and_then(data_type)
                .or(Some(DataType::Float)),
        ),
        ("RandomNormal" | "RandomUniform", 0) => Some(
            int_attr(node, "dtype")
                .and_then(|c| data_type(c as i32))
                .or(Some(DataType::Float)),
        ),
        ("RandomNormalLike" | "RandomUniformLike" | "EyeLike", 0) => Some(
            int_attr(node, "dtype")
                .and_then(|c| data_type(c as i32))
                .or(input_type(0)),
        ),
        ("If" | "Loop" | "Scan", _) => Some(None),
        _ => None,
    }
}

/// A `Constant`'s value as a tensor, and its rank.
fn constant_value(node: &NodeProto) -> (Option<TensorProto>, Option<usize>) {
    let Some(a) = node.attribute.first() else {
        return (None, None);
    };
    match a.name.as_deref() {
        Some("value") => {
            let t = a.t.clone();
            let rank = t.as_ref().map(|t| t.dims.len());
            (t, rank)
        }
        Some("value_int") => (Some(int64_tensor(vec![a.i.unwrap_or(0)], vec![])), Some(0)),
        Some("value_ints") => (
            Some(int64_tensor(a.ints.clone(), vec![a.ints.len() as i64])),
            Some(1),
        ),
        Some("value_float") => (None, Some(0)),
        Some("value_floats") => (None, Some(1)),
        _ => (None, None),
    }
}

fn constant_type(node: &NodeProto) -> Option<DataType> {
    let a = node.attribute.first()?;
    match a.name.as_deref()? {
        "value" => a.t.as_ref()?.data_type.and_then(data_type),
        "value_int" | "value_ints" => Some(DataType::Int64),
        "value_float" | "value_floats" => Some(DataType::Float),
        "value_string" | "value_strings" => Some(DataType::String),
        _ => None,
    }
}

fn int64_tensor(values: Vec<i64>, dims: Vec<i64>) -> TensorProto {
    TensorProto {
        dims,
        data_type: Some(DataType::Int64 as i32),
        int64_data: values,
        ..Default::default()
    }
}

/// Integer values held in the proto (raw or typed fields); `None` for external data or floats.
fn inline_ints(t: &TensorProto) -> Option<Vec<i64>> {
    if t.data_location == Some(DataLocation::External as i32) {
        return None;
    }
    let dtype = t.data_type.and_then(data_type)?;
    if let Some(raw) = &t.raw_data {
        let width = match dtype {
            DataType::Int64 => 8,
            DataType::Int32 => 4,
            DataType::Int8 | DataType::Uint8 | DataType::Bool => 1,
            _ => return None,
        };
        return Some(
            raw.chunks_exact(width)
                .map(|b| match dtype {
                    DataType::Int64 => i64::from_le_bytes(b.try_into().unwrap()),
                    DataType::Int32 => i32::from_le_bytes(b.try_into().unwrap()) as i64,
                    DataType::Int8 => b[0] as i8 as i64,
                    _ => b[0] as i64,
                })
                .collect(),
        );
    }
    match dtype {
        DataType::Int64 => Some(t.int64_data.clone()),
        DataType::Int32 | DataType::Int8 | DataType::Uint8 | DataType::Bool => {
            Some(t.int32_data.iter().map(|&v| v as i64).collect())
        }
        _ => None,
    }
}

pub fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute
        .iter()
        .find(|a| a.name.as_deref() == Some(name))
}

pub fn int_attr(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).and_then(|a| a.i)
}

pub fn ints_attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a [i64]> {
    attr(node, name)
        .filter(|a| a.r#type == Some(AttributeType::Ints as i32) || !a.ints.is_empty())
        .map(|a| a.ints.as_slice())
}

pub fn string_attr(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name)
        .and_then(|a| a.s.as_ref())
        .map(|s| String::from_utf8_lossy(s).into_owned())
}

/// The subgraphs a node carries (`If` branches, `Loop`/`Scan` bodies).
pub fn subgraphs(node: &NodeProto) -> impl Iterator<Item = (&str, &GraphProto)> {
    node.attribute.iter().flat_map(|a| {
        let name = a.name.as_deref().unwrap_or("");
        a.g.iter().chain(a.graphs.iter()).map(move |g| (name, g))
    })
}
