//! A small ONNX graph builder: declare inputs, add initializers and ops, mark outputs,
//! then write `<stem>.onnx` with every large initializer in `<stem>.onnx.data`.

use crate::onnx::{
    attribute_proto::AttributeType, tensor_proto::DataLocation, tensor_proto::DataType,
    tensor_shape_proto::dimension, tensor_shape_proto::Dimension, type_proto, AttributeProto,
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::weights::{WeightError, WeightSource};
use prost::Message;
use sha2::{Digest, Sha256};
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

pub use vjx_format::tensor::{DType, Dim, Precision, TensorSpec};

fn onnx_type(dtype: DType) -> DataType {
    match dtype {
        DType::F32 => DataType::Float,
        DType::F16 => DataType::Float16,
        DType::I64 => DataType::Int64,
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

/// Initializer contents, in the encoding stored in the graph.
pub enum TensorData {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
    I8(Vec<i8>),
    I64(Vec<i64>),
}

impl TensorData {
    fn byte_len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len() * 4,
            TensorData::F16(v) => v.len() * 2,
            TensorData::I8(v) => v.len(),
            TensorData::I64(v) => v.len() * 8,
        }
    }
    fn bytes(&self) -> &[u8] {
        match self {
            TensorData::F32(v) => bytemuck::cast_slice(v),
            TensorData::F16(v) => bytemuck::cast_slice(v),
            TensorData::I8(v) => bytemuck::cast_slice(v),
            TensorData::I64(v) => bytemuck::cast_slice(v),
        }
    }
    fn data_type(&self) -> DataType {
        match self {
            TensorData::F32(_) => DataType::Float,
            TensorData::F16(_) => DataType::Float16,
            TensorData::I8(_) => DataType::Int8,
            TensorData::I64(_) => DataType::Int64,
        }
    }
}

struct Initializer {
    name: String,
    dims: Vec<i64>,
    data: TensorData,
}

/// How a checkpoint tensor is laid out in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    AsIs,
    /// A `[rows, ...]` tensor flattened to `[rows, cols]` and stored as `[cols, rows]`
    /// (PyTorch Linear or patch convolution → ONNX MatMul).
    Transposed,
    /// A 3-D convolution weight `[cout, cin, kt, kh, kw]` stored as `[cout, kt·cin, kh, kw]`,
    /// temporal taps outermost: the weight of a 2-D convolution over stacked frames.
    TapsToChannels,
}

/// How a checkpoint tensor's values are stored in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoding {
    F32,
    F16,
    /// Symmetric int8 with one f32 scale per slice along `axis` of the stored tensor, written
    /// as a second initializer `scale_name` (`w ≈ q * scale`).
    Int8 {
        scale_name: String,
        axis: usize,
    },
}

/// A checkpoint tensor read from the weight source only when the model is written, so that a
/// large export never holds more than one converted tensor at a time.
struct DeferredWeight {
    name: String,
    source_dims: Vec<usize>,
    layout: Layout,
    encoding: Encoding,
}

impl DeferredWeight {
    fn stored_dims(&self) -> Vec<usize> {
        match self.layout {
            Layout::AsIs => self.source_dims.clone(),
            Layout::Transposed => {
                let rows = self.source_dims[0];
                vec![self.source_dims.iter().product::<usize>() / rows, rows]
            }
            Layout::TapsToChannels => {
                let d = &self.source_dims;
                vec![d[0], d[2] * d[1], d[3], d[4]]
            }
        }
    }

    /// Reads, lays out and encodes the tensor: one or two initializers (values, int8 scales).
    fn load(&self, source: &dyn WeightSource) -> Result<Vec<Initializer>, WeightError> {
        let t = source.get_shaped(&self.name, &self.source_dims)?;
        let t = match self.layout {
            Layout::AsIs => t,
            Layout::Transposed => {
                let rows = t.shape[0];
                let cols = t.data.len() / rows;
                crate::weights::WeightTensor::new(vec![rows, cols], t.data).transposed_2d()
            }
            Layout::TapsToChannels => taps_to_channels(t),
        };
        let dims: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
        Ok(match &self.encoding {
            Encoding::F32 => vec![Initializer {
                name: self.name.clone(),
                dims,
                data: TensorData::F32(t.data),
            }],
            Encoding::F16 => vec![Initializer {
                name: self.name.clone(),
                dims,
                data: TensorData::F16(vjx_calibration::fp16::to_f16(&t.data)),
            }],
            Encoding::Int8 { scale_name, axis } => {
                let (values, scales) =
                    vjx_calibration::int8::symmetric_int8(&t.data, &t.shape, *axis);
                let scale_len = scales.len() as i64;
                vec![
                    Initializer {
                        name: self.name.clone(),
                        dims,
                        data: TensorData::I8(values),
                    },
                    Initializer {
                        name: scale_name.clone(),
                        dims: vec![scale_len],
                        data: TensorData::F32(scales),
                    },
                ]
            }
        })
    }
}

/// `[cout, cin, kt, kh, kw]` → `[cout, kt·cin, kh, kw]` (see [`Layout::TapsToChannels`]).
fn taps_to_channels(t: crate::weights::WeightTensor) -> crate::weights::WeightTensor {
    let [cout, cin, kt, kh, kw] = t.shape[..] else {
        panic!("TapsToChannels needs a 5-D weight, got {:?}", t.shape)
    };
    let plane = kh * kw;
    let mut data = vec![0f32; t.data.len()];
    for o in 0..cout {
        for k in 0..kt {
            for c in 0..cin {
                let from = ((o * cin + c) * kt + k) * plane;
                let to = ((o * kt + k) * cin + c) * plane;
                data[to..to + plane].copy_from_slice(&t.data[from..from + plane]);
            }
        }
    }
    crate::weights::WeightTensor::new(vec![cout, kt * cin, kh, kw], data)
}

/// Why a model could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Weight(#[from] WeightError),
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
    deferred: Vec<DeferredWeight>,
    initializer_names: std::collections::HashSet<String>,
    counter: usize,
    scope: Vec<String>,
    precision: Precision,
}

impl GraphBuilder {
    pub fn new(name: &str) -> Self {
        GraphBuilder {
            name: name.to_string(),
            nodes: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            initializers: Vec::new(),
            deferred: Vec::new(),
            initializer_names: Default::default(),
            counter: 0,
            scope: Vec::new(),
            precision: Precision::F32,
        }
    }

    /// A builder whose linear layers use `precision` (see [`Precision`]).
    pub fn with_precision(name: &str, precision: Precision) -> Self {
        GraphBuilder {
            precision,
            ..GraphBuilder::new(name)
        }
    }

    pub fn precision(&self) -> Precision {
        self.precision
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
        self.nodes.push(node(
            "Identity",
            &[value.name()],
            &[name],
            node_name,
            vec![],
        ));
        self.outputs.push(TensorSpec {
            name: name.to_string(),
            dtype,
            shape: shape.to_vec(),
        });
    }

    /// An f32 initializer. Weight names are the checkpoint's own; a name used twice returns
    /// the existing initializer.
    pub fn weight(&mut self, name: &str, dims: &[usize], data: Vec<f32>) -> Value {
        assert_eq!(
            dims.iter().product::<usize>(),
            data.len(),
            "initializer {name}"
        );
        if self.initializer_names.insert(name.to_string()) {
            self.initializers.push(Initializer {
                name: name.to_string(),
                dims: dims.iter().map(|&d| d as i64).collect(),
                data: TensorData::F32(data),
            });
        }
        Value(name.to_string())
    }

    /// A checkpoint tensor, shape-checked now and read from `source` only when the model is
    /// written ([`Model::write_with`]). A name used twice returns the existing initializer.
    pub fn checkpoint_weight(
        &mut self,
        source: &dyn WeightSource,
        name: &str,
        expected: &[usize],
        layout: Layout,
        encoding: Encoding,
    ) -> Result<Value, WeightError> {
        if self.initializer_names.contains(name) {
            return Ok(Value(name.to_string()));
        }
        let found = source.shape(name)?;
        if found != expected {
            return Err(WeightError::Shape {
                name: name.to_string(),
                found,
                expected: expected.to_vec(),
                source_desc: source.describe(),
            });
        }
        self.initializer_names.insert(name.to_string());
        if let Encoding::Int8 { scale_name, .. } = &encoding {
            self.initializer_names.insert(scale_name.clone());
        }
        self.deferred.push(DeferredWeight {
            name: name.to_string(),
            source_dims: expected.to_vec(),
            layout,
            encoding,
        });
        Ok(Value(name.to_string()))
    }

    pub fn const_i64(&mut self, values: &[i64]) -> Value {
        let name = self.fresh("const_i64");
        self.initializer_names.insert(name.clone());
        self.initializers.push(Initializer {
            name: name.clone(),
            dims: vec![values.len() as i64],
            data: TensorData::I64(values.to_vec()),
        });
        Value(name)
    }

    pub fn scalar_f32(&mut self, value: f32) -> Value {
        let name = self.fresh("const_f32");
        self.initializer_names.insert(name.clone());
        self.initializers.push(Initializer {
            name: name.clone(),
            dims: vec![],
            data: TensorData::F32(vec![value]),
        });
        Value(name)
    }

    /// A constant f32 tensor that is not a checkpoint weight (derived tables and the like).
    pub fn const_f32(&mut self, hint: &str, dims: &[usize], data: Vec<f32>) -> Value {
        let name = self.fresh(hint);
        self.weight(&name, dims, data)
    }

    /// Adds one node with `n_outputs` outputs (e.g. DynamicQuantizeLinear).
    pub fn op_multi(
        &mut self,
        op_type: &str,
        inputs: &[&Value],
        n_outputs: usize,
        attrs: Vec<(&str, Attr)>,
    ) -> Vec<Value> {
        let base = self.fresh(&op_type.to_lowercase());
        let outs: Vec<String> = (0..n_outputs).map(|i| format!("{base}:{i}")).collect();
        let ins: Vec<&str> = inputs.iter().map(|v| v.name()).collect();
        let out_refs: Vec<&str> = outs.iter().map(String::as_str).collect();
        self.nodes.push(node(op_type, &ins, &out_refs, base, attrs));
        outs.into_iter().map(Value).collect()
    }

    /// Adds one node with a single output.
    pub fn op(&mut self, op_type: &str, inputs: &[&Value], attrs: Vec<(&str, Attr)>) -> Value {
        let out = self.fresh(&op_type.to_lowercase());
        let ins: Vec<&str> = inputs.iter().map(|v| v.name()).collect();
        let name = out.clone();
        self.nodes
            .push(node(op_type, &ins, &[out.as_str()], name, attrs));
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
    /// A `Reduce*` op (`ReduceMean`, `ReduceMax`, `ReduceSum`, …) over `axes`, kept. In opset 17
    /// `ReduceSum` takes the axes as an input and the others as an attribute.
    pub fn reduce(&mut self, op_type: &str, x: &Value, axes: &[i64]) -> Value {
        let keep = ("keepdims", Attr::Int(1));
        if op_type == "ReduceSum" {
            let axes = self.const_i64(axes);
            self.op(op_type, &[x, &axes], vec![keep])
        } else {
            self.op(
                op_type,
                &[x],
                vec![("axes", Attr::Ints(axes.to_vec())), keep],
            )
        }
    }
    pub fn abs(&mut self, a: &Value) -> Value {
        self.op("Abs", &[a], vec![])
    }
    pub fn max(&mut self, a: &Value, b: &Value) -> Value {
        self.op("Max", &[a, b], vec![])
    }
    /// `x[..., start:end]` along `axis`.
    pub fn slice(&mut self, x: &Value, axis: i64, start: i64, end: i64) -> Value {
        let s = self.const_i64(&[start]);
        let e = self.const_i64(&[end]);
        let a = self.const_i64(&[axis]);
        self.op("Slice", &[x, &s, &e, &a], vec![])
    }
    pub fn cast(&mut self, x: &Value, to: DType) -> Value {
        self.op("Cast", &[x], vec![("to", Attr::Int(onnx_type(to) as i64))])
    }

    pub fn finish(self) -> Model {
        Model {
            name: self.name,
            nodes: self.nodes,
            inputs: self.inputs,
            outputs: self.outputs,
            initializers: self.initializers,
            deferred: self.deferred,
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
                elem_type: Some(onnx_type(spec.dtype) as i32),
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
    deferred: Vec<DeferredWeight>,
}

/// The files a written model occupies, with their sha256 (hex), hashed as they were written.
#[derive(Debug, Clone)]
pub struct WrittenModel {
    pub graph_file: PathBuf,
    pub graph_sha256: String,
    pub data_file: Option<PathBuf>,
    pub data_sha256: Option<String>,
}

impl Model {
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Bytes of every initializer as stored (deferred checkpoint tensors included).
    pub fn weight_bytes(&self) -> usize {
        let eager: usize = self.initializers.iter().map(|i| i.data.byte_len()).sum();
        let deferred: usize = self
            .deferred
            .iter()
            .map(|d| {
                let n: usize = d.stored_dims().iter().product();
                match &d.encoding {
                    Encoding::F32 => n * 4,
                    Encoding::F16 => n * 2,
                    Encoding::Int8 { axis, .. } => n + d.stored_dims()[*axis] * 4,
                }
            })
            .sum();
        eager + deferred
    }

    /// Writes `<dir>/<stem>.onnx` and, when there are large initializers, `<stem>.onnx.data`.
    /// For models without checkpoint tensors (see [`GraphBuilder::checkpoint_weight`]).
    pub fn write(self, dir: &Path, stem: &str) -> Result<WrittenModel, WriteError> {
        self.write_with(dir, stem, &crate::weights::MemoryWeights::default())
    }

    /// Writes the model, reading each checkpoint tensor from `source` just before it is written
    /// and dropping it right after.
    pub fn write_with(
        self,
        dir: &Path,
        stem: &str,
        source: &dyn WeightSource,
    ) -> Result<WrittenModel, WriteError> {
        let graph_file = dir.join(format!("{stem}.onnx"));
        let data_name = format!("{stem}.onnx.data");
        let data_path = dir.join(&data_name);
        let mut data = ExternalData::new(data_path.clone(), data_name);
        let mut tensors = Vec::with_capacity(self.initializers.len() + self.deferred.len());
        for init in &self.initializers {
            tensors.push(data.tensor(init)?);
        }
        for deferred in &self.deferred {
            for init in deferred.load(source)? {
                tensors.push(data.tensor(&init)?);
            }
        }
        let data_sha256 = data.finish()?;
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
        let bytes = model.encode_to_vec();
        std::fs::write(&graph_file, &bytes)?;
        Ok(WrittenModel {
            graph_file,
            graph_sha256: hex_digest(Sha256::digest(&bytes).as_slice()),
            data_sha256: data_sha256.clone(),
            data_file: data_sha256.map(|_| data_path),
        })
    }
}

/// The thread that writes the data file and returns its sha256.
type HashingWriter = std::thread::JoinHandle<std::io::Result<String>>;

/// The `<stem>.onnx.data` file, created on the first large initializer. A second thread writes
/// and hashes it while the caller converts the next tensor.
struct ExternalData {
    path: PathBuf,
    location: String,
    writer: Option<(std::sync::mpsc::SyncSender<Vec<u8>>, HashingWriter)>,
    offset: u64,
}

/// Bytes handed to the writer thread at a time, and how many such chunks may wait.
const WRITE_CHUNK: usize = 16 << 20;
const WRITE_QUEUE: usize = 4;

impl ExternalData {
    fn new(path: PathBuf, location: String) -> Self {
        ExternalData {
            path,
            location,
            writer: None,
            offset: 0,
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.writer.is_none() {
            let file = std::fs::File::create(&self.path)?;
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(WRITE_QUEUE);
            let handle = std::thread::spawn(move || -> std::io::Result<String> {
                let mut out = std::io::BufWriter::with_capacity(1 << 22, file);
                let mut hasher = Sha256::new();
                for chunk in rx {
                    out.write_all(&chunk)?;
                    hasher.update(&chunk);
                }
                out.flush()?;
                Ok(hex_digest(hasher.finalize().as_slice()))
            });
            self.writer = Some((tx, handle));
        }
        let (tx, _) = self.writer.as_ref().unwrap();
        for chunk in bytes.chunks(WRITE_CHUNK) {
            if tx.send(chunk.to_vec()).is_err() {
                // The writer stopped on an I/O error; `finish` reports it.
                break;
            }
        }
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// The tensor proto for `init`: inline when small, else appended here at an aligned offset.
    fn tensor(&mut self, init: &Initializer) -> std::io::Result<TensorProto> {
        let mut t = TensorProto {
            dims: init.dims.clone(),
            data_type: Some(init.data.data_type() as i32),
            name: Some(init.name.clone()),
            ..Default::default()
        };
        let bytes = init.data.bytes();
        if bytes.len() < EXTERNAL_THRESHOLD_BYTES {
            t.raw_data = Some(bytes.to_vec());
            return Ok(t);
        }
        let pad = (EXTERNAL_ALIGN - self.offset % EXTERNAL_ALIGN) % EXTERNAL_ALIGN;
        if pad > 0 && self.writer.is_some() {
            self.write_all(&vec![0u8; pad as usize])?;
        }
        let start = self.offset;
        self.write_all(bytes)?;
        t.data_location = Some(DataLocation::External as i32);
        t.external_data = vec![
            kv("location", &self.location),
            kv("offset", &start.to_string()),
            kv("length", &bytes.len().to_string()),
        ];
        Ok(t)
    }

    /// Waits for the writer; the file's sha256, or None when nothing was written.
    fn finish(self) -> std::io::Result<Option<String>> {
        match self.writer {
            None => Ok(None),
            Some((tx, handle)) => {
                drop(tx);
                let digest = handle
                    .join()
                    .map_err(|_| std::io::Error::other("the weight writer thread panicked"))??;
                Ok(Some(digest))
            }
        }
    }
}

fn hex_digest(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn kv(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: Some(key.to_string()),
        value: Some(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::taps_to_channels;
    use crate::weights::WeightTensor;

    #[test]
    fn taps_to_channels_puts_temporal_taps_outside_input_channels() {
        // w[o, c, k] = 100·o + 10·c + k, with cout 2, cin 3, kt 2, kh = kw = 1.
        let data: Vec<f32> = (0..2)
            .flat_map(|o| {
                (0..3).flat_map(move |c| (0..2).map(move |k| (100 * o + 10 * c + k) as f32))
            })
            .collect();
        let out = taps_to_channels(WeightTensor::new(vec![2, 3, 2, 1, 1], data));
        assert_eq!(out.shape, vec![2, 6, 1, 1]);
        assert_eq!(
            out.data,
            vec![0., 10., 20., 1., 11., 21., 100., 110., 120., 101., 111., 121.]
        );
    }
}
