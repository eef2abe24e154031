//! A small ONNX graph builder: declare inputs, add initializers and ops, mark outputs,
//! then write `<stem>.onnx` with every large initializer in `<stem>.onnx.data`.

use crate::onnx::{
    attribute_proto::AttributeType, tensor_proto::DataLocation, tensor_proto::DataType,
    tensor_shape_proto::dimension, tensor_shape_proto::Dimension, type_proto, AttributeProto,
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use prost::Message;
use std::io::Write;
use std::path::{Path, PathBuf};

/// ONNX opset the graphs are written against (LayerNormalization needs 17).
pub const OPSET: i64 = 17;
/// IR version 8 is read by tract and every ONNX Runtime release in use.
pub const IR_VERSION: i64 = 8;
/// Initializers at least this large go to the external data file.
const EXTERNAL_THRESHOLD_BYTES: usize = 1024;
/// Offsets in the external data file are aligned to this (lets runtimes mmap tensors).
const EXTERNAL_ALIGN: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F16,
    I64,
}

impl DType {
    fn onnx(self) -> DataType {
        match self {
            DType::F32 => DataType::Float,
            DType::F16 => DataType::Float16,
            DType::I64 => DataType::Int64,
        }
    }
}

/// One dimension of a graph input or output: fixed, or named (symbolic).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(i64),
    Named(String),
}

impl From<i64> for Dim {
    fn from(v: i64) -> Self {
        Dim::Fixed(v)
    }
}
impl From<usize> for Dim {
    fn from(v: usize) -> Self {
        Dim::Fixed(v as i64)
    }
}
impl From<&str> for Dim {
    fn from(v: &str) -> Self {
        Dim::Named(v.to_string())
    }
}

/// A value flowing through the graph (the name of a tensor).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Value(pub String);

impl Value {
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// The description of one graph input or output, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

enum InitData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

struct Initializer {
    name: String,
    dims: Vec<i64>,
    data: InitData,
}

impl Initializer {
    fn byte_len(&self) -> usize {
        match &self.data {
            InitData::F32(v) => v.len() * 4,
            InitData::I64(v) => v.len() * 8,
        }
    }
    fn bytes(&self) -> &[u8] {
        match &self.data {
            InitData::F32(v) => bytemuck::cast_slice(v),
            InitData::I64(v) => bytemuck::cast_slice(v),
        }
    }
    fn data_type(&self) -> DataType {
        match self.data {
            InitData::F32(_) => DataType::Float,
            InitData::I64(_) => DataType::Int64,
        }
    }
}

/// An attribute value for [`GraphBuilder::op`].
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Str(String),
}

pub struct GraphBuilder {
    name: String,
    nodes: Vec<NodeProto>,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    initializers: Vec<Initializer>,
    initializer_names: std::collections::HashSet<String>,
    counter: usize,
    scope: Vec<String>,
}

impl GraphBuilder {
    pub fn new(name: &str) -> Self {
        GraphBuilder {
            name: name.to_string(),
            nodes: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            initializers: Vec::new(),
            initializer_names: Default::default(),
            counter: 0,
            scope: Vec::new(),
        }
    }

    /// Runs `f` with node names prefixed by `scope` (readable graphs in Netron and errors).
    pub fn scoped<T>(&mut self, scope: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        self.scope.push(scope.to_string());
        let out = f(self);
        self.scope.pop();
        out
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.counter += 1;
        if self.scope.is_empty() {
            format!("{hint}_{}", self.counter)
        } else {
            format!("{}/{hint}_{}", self.scope.join("/"), self.counter)
        }
    }

    pub fn input(&mut self, name: &str, dtype: DType, shape: &[Dim]) -> Value {
        self.inputs.push(TensorSpec {
            name: name.to_string(),
            dtype,
            shape: shape.to_vec(),
        });
        Value(name.to_string())
    }

    /// Marks `value` as a graph output under `name`.
    pub fn output(&mut self, value: &Value, name: &str, dtype: DType, shape: &[Dim]) {
        let node_name = self.fresh("output");
        self.nodes.push(node("Identity", &[value.name()], &[name], node_name, vec![]));
        self.outputs.push(TensorSpec {
            name: name.to_string(),
            dtype,
            shape: shape.to_vec(),
        });
    }

    /// An f32 initializer. Weight names are the checkpoint's own; a name used twice returns
    /// the existing initializer.
    pub fn weight(&mut self, name: &str, dims: &[usize], data: Vec<f32>) -> Value {
        assert_eq!(dims.iter().product::<usize>(), data.len(), "initializer {name}");
        if self.initializer_names.insert(name.to_string()) {
            self.initializers.push(Initializer {
                name: name.to_string(),
                dims: dims.iter().map(|&d| d as i64).collect(),
                data: InitData::F32(data),
            });
        }
        Value(name.to_string())
    }

    pub fn has_weight(&self, name: &str) -> bool {
        self.initializer_names.contains(name)
    }

    pub fn const_i64(&mut self, values: &[i64]) -> Value {
        let name = self.fresh("const_i64");
        self.initializer_names.insert(name.clone());
        self.initializers.push(Initializer {
            name: name.clone(),
            dims: vec![values.len() as i64],
            data: InitData::I64(values.to_vec()),
        });
        Value(name)
    }

    pub fn scalar_f32(&mut self, value: f32) -> Value {
        let name = self.fresh("const_f32");
        self.initializer_names.insert(name.clone());
        self.initializers.push(Initializer {
            name: name.clone(),
            dims: vec![],
            data: InitData::F32(vec![value]),
        });
        Value(name)
    }

    /// A constant f32 tensor that is not a checkpoint weight (derived tables and the like).
    pub fn const_f32(&mut self, hint: &str, dims: &[usize], data: Vec<f32>) -> Value {
        let name = self.fresh(hint);
        self.weight(&name, dims, data)
    }

    /// Adds one node with a single output.
    pub fn op(&mut self, op_type: &str, inputs: &[&Value], attrs: Vec<(&str, Attr)>) -> Value {
        let out = self.fresh(&op_type.to_lowercase());
        let ins: Vec<&str> = inputs.iter().map(|v| v.name()).collect();
        let name = out.clone();
        self.nodes.push(node(op_type, &ins, &[out.as_str()], name, attrs));
        Value(out)
    }

    pub fn add(&mut self, a: &Value, b: &Value) -> Value {
        self.op("Add", &[a, b], vec![])
    }
    pub fn sub(&mut self, a: &Value, b: &Value) -> Value {
        self.op("Sub", &[a, b], vec![])
    }
    pub fn mul(&mut self, a: &Value, b: &Value) -> Value {
        self.op("Mul", &[a, b], vec![])
    }
    pub fn div(&mut self, a: &Value, b: &Value) -> Value {
        self.op("Div", &[a, b], vec![])
    }
    pub fn matmul(&mut self, a: &Value, b: &Value) -> Value {
        self.op("MatMul", &[a, b], vec![])
    }
    pub fn neg(&mut self, a: &Value) -> Value {
        self.op("Neg", &[a], vec![])
    }
    pub fn sigmoid(&mut self, a: &Value) -> Value {
        self.op("Sigmoid", &[a], vec![])
    }
    pub fn tanh(&mut self, a: &Value) -> Value {
        self.op("Tanh", &[a], vec![])
    }
    pub fn relu(&mut self, a: &Value) -> Value {
        self.op("Relu", &[a], vec![])
    }
    pub fn sqrt(&mut self, a: &Value) -> Value {
        self.op("Sqrt", &[a], vec![])
    }
    pub fn reshape(&mut self, x: &Value, shape: &[i64]) -> Value {
        let s = self.const_i64(shape);
        self.op("Reshape", &[x, &s], vec![])
    }
    pub fn transpose(&mut self, x: &Value, perm: &[i64]) -> Value {
        self.op("Transpose", &[x], vec![("perm", Attr::Ints(perm.to_vec()))])
    }
    pub fn softmax(&mut self, x: &Value, axis: i64) -> Value {
        self.op("Softmax", &[x], vec![("axis", Attr::Int(axis))])
    }
    pub fn concat(&mut self, xs: &[&Value], axis: i64) -> Value {
        self.op("Concat", xs, vec![("axis", Attr::Int(axis))])
    }
    pub fn gather(&mut self, data: &Value, indices: &Value, axis: i64) -> Value {
        self.op("Gather", &[data, indices], vec![("axis", Attr::Int(axis))])
    }
    pub fn unsqueeze(&mut self, x: &Value, axes: &[i64]) -> Value {
        let a = self.const_i64(axes);
        self.op("Unsqueeze", &[x, &a], vec![])
    }
    /// Mean over the last axis, kept (opset 17 takes the axes as an attribute).
    pub fn reduce_mean_last(&mut self, x: &Value) -> Value {
        self.op("ReduceMean", &[x], vec![("axes", Attr::Ints(vec![-1])), ("keepdims", Attr::Int(1))])
    }
    /// `x[..., start:end]` along `axis`.
    pub fn slice(&mut self, x: &Value, axis: i64, start: i64, end: i64) -> Value {
        let s = self.const_i64(&[start]);
        let e = self.const_i64(&[end]);
        let a = self.const_i64(&[axis]);
        self.op("Slice", &[x, &s, &e, &a], vec![])
    }
    pub fn cast(&mut self, x: &Value, to: DType) -> Value {
        self.op("Cast", &[x], vec![("to", Attr::Int(to.onnx() as i64))])
    }

    pub fn finish(self) -> Model {
        Model {
            name: self.name,
            nodes: self.nodes,
            inputs: self.inputs,
            outputs: self.outputs,
            initializers: self.initializers,
        }
    }
}

fn node(
    op_type: &str,
    inputs: &[&str],
    outputs: &[&str],
    name: String,
    attrs: Vec<(&str, Attr)>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: Some(name),
        op_type: Some(op_type.to_string()),
        attribute: attrs.into_iter().map(|(n, a)| attribute(n, a)).collect(),
        ..Default::default()
    }
}

fn attribute(name: &str, attr: Attr) -> AttributeProto {
    let mut a = AttributeProto {
        name: Some(name.to_string()),
        ..Default::default()
    };
    match attr {
        Attr::Int(i) => {
            a.i = Some(i);
            a.r#type = Some(AttributeType::Int as i32);
        }
        Attr::Ints(v) => {
            a.ints = v;
            a.r#type = Some(AttributeType::Ints as i32);
        }
        Attr::Float(f) => {
            a.f = Some(f);
            a.r#type = Some(AttributeType::Float as i32);
        }
        Attr::Str(s) => {
            a.s = Some(s.into_bytes());
            a.r#type = Some(AttributeType::String as i32);
        }
    }
    a
}

fn value_info(spec: &TensorSpec) -> ValueInfoProto {
    let dims = spec
        .shape
        .iter()
        .map(|d| Dimension {
            denotation: None,
            value: Some(match d {
                Dim::Fixed(v) => dimension::Value::DimValue(*v),
                Dim::Named(s) => dimension::Value::DimParam(s.clone()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: Some(spec.name.clone()),
        r#type: Some(TypeProto {
            denotation: None,
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(spec.dtype.onnx() as i32),
                shape: Some(TensorShapeProto { dim: dims }),
            })),
        }),
        ..Default::default()
    }
}

/// A finished graph, ready to be written.
pub struct Model {
    pub name: String,
    nodes: Vec<NodeProto>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    initializers: Vec<Initializer>,
}

/// The files a written model occupies.
#[derive(Debug, Clone)]
pub struct WrittenModel {
    pub graph_file: PathBuf,
    pub data_file: Option<PathBuf>,
}

impl Model {
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    pub fn weight_bytes(&self) -> usize {
        self.initializers.iter().map(|i| i.byte_len()).sum()
    }

    /// Writes `<dir>/<stem>.onnx` and, when there are large initializers, `<stem>.onnx.data`.
    pub fn write(self, dir: &Path, stem: &str) -> std::io::Result<WrittenModel> {
        let graph_file = dir.join(format!("{stem}.onnx"));
        let data_name = format!("{stem}.onnx.data");
        let data_path = dir.join(&data_name);
        let mut data_out: Option<std::io::BufWriter<std::fs::File>> = None;
        let mut offset: u64 = 0;
        let mut tensors = Vec::with_capacity(self.initializers.len());
        for init in &self.initializers {
            let mut t = TensorProto {
                dims: init.dims.clone(),
                data_type: Some(init.data_type() as i32),
                name: Some(init.name.clone()),
                ..Default::default()
            };
            if init.byte_len() >= EXTERNAL_THRESHOLD_BYTES {
                if data_out.is_none() {
                    data_out = Some(std::io::BufWriter::new(std::fs::File::create(&data_path)?));
                }
                let w = data_out.as_mut().unwrap();
                let pad = (EXTERNAL_ALIGN - offset % EXTERNAL_ALIGN) % EXTERNAL_ALIGN;
                w.write_all(&vec![0u8; pad as usize])?;
                offset += pad;
                let bytes = init.bytes();
                w.write_all(bytes)?;
                t.data_location = Some(DataLocation::External as i32);
                t.external_data = vec![
                    kv("location", &data_name),
                    kv("offset", &offset.to_string()),
                    kv("length", &bytes.len().to_string()),
                ];
                offset += bytes.len() as u64;
            } else {
                t.raw_data = Some(init.bytes().to_vec());
            }
            tensors.push(t);
        }
        if let Some(mut w) = data_out {
            w.flush()?;
        }
        let graph = GraphProto {
            node: self.nodes,
            name: Some(self.name.clone()),
            initializer: tensors,
            input: self.inputs.iter().map(value_info).collect(),
            output: self.outputs.iter().map(value_info).collect(),
            ..Default::default()
        };
        let model = ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(OPSET),
            }],
            producer_name: Some("vjx".to_string()),
            producer_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            graph: Some(graph),
            ..Default::default()
        };
        std::fs::write(&graph_file, model.encode_to_vec())?;
        Ok(WrittenModel {
            graph_file,
            data_file: (offset > 0).then_some(data_path),
        })
    }
}

fn kv(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: Some(key.to_string()),
        value: Some(value.to_string()),
    }
}
