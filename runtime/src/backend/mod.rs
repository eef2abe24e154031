//! Backends that run the exported ONNX graphs. tract is the zero-install default; ort (ONNX
//! Runtime, opened at run time) adds CUDA and TensorRT. Every backend loads a graph file and
//! runs it on named host tensors.

pub mod ort;
pub mod ort_library;
pub mod ort_provider_options;
pub mod ort_version;
pub mod tensorrt_cache;
pub mod tract;

use ndarray::ArrayD;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A host tensor passed to or returned from a graph.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorValue {
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
}

impl TensorValue {
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Self {
        TensorValue::F32(ArrayD::from_shape_vec(shape.to_vec(), data).expect("shape matches data"))
    }
    pub fn i64(shape: &[usize], data: Vec<i64>) -> Self {
        TensorValue::I64(ArrayD::from_shape_vec(shape.to_vec(), data).expect("shape matches data"))
    }
    pub fn shape(&self) -> &[usize] {
        match self {
            TensorValue::F32(a) => a.shape(),
            TensorValue::I64(a) => a.shape(),
        }
    }
    pub fn into_f32(self) -> Result<ArrayD<f32>, BackendError> {
        match self {
            TensorValue::F32(a) => Ok(a),
            TensorValue::I64(_) => Err(BackendError::DType("expected f32, got i64".into())),
        }
    }
}

#[derive(Debug, Error)]
pub enum BackendError {
    #[error("loading graph {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("graph {graph}: input `{name}` not given")]
    MissingInput { graph: String, name: String },
    #[error("graph {graph}: running failed: {reason}")]
    Run { graph: String, reason: String },
    #[error("unexpected tensor type: {0}")]
    DType(String),
}

/// Named outputs of one graph run.
pub type Outputs = HashMap<String, TensorValue>;

/// One loaded graph, ready to run many times.
pub trait GraphSession: Send + Sync {
    fn input_names(&self) -> &[String];
    fn run(&self, inputs: &[(&str, TensorValue)]) -> Result<Outputs, BackendError>;
}

pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    fn load(&self, graph_file: &Path) -> Result<Box<dyn GraphSession>, BackendError>;

    /// Loads a graph whose symbolic input dims will stay within `profile` (TensorRT builds
    /// its engines for that range); backends without such a notion ignore it.
    fn load_profiled(
        &self,
        graph_file: &Path,
        profile: &ShapeProfile,
    ) -> Result<Box<dyn GraphSession>, BackendError> {
        let _ = profile;
        self.load(graph_file)
    }

    /// Which execution provider each loaded graph runs on, in load order.
    fn placements(&self) -> Vec<Placement> {
        Vec::new()
    }

    /// The library the backend opened at run time (ONNX Runtime for ort); `None` for tract,
    /// which is built in.
    fn runtime_library(&self) -> Option<RuntimeLibrary> {
        None
    }
}

/// A shared library a backend runs on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuntimeLibrary {
    pub name: &'static str,
    pub version: String,
    pub path: PathBuf,
}

/// Where one graph was placed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Placement {
    pub graph: String,
    pub provider: String,
    /// Why the providers tried before this one were not used.
    pub fallbacks: Vec<String>,
    /// On TensorRT with a cache dir: whether the graph's engine was cached before it loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_cache: Option<tensorrt_cache::EngineCache>,
}

/// The min/opt/max shape of each input of a graph.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShapeProfile {
    pub inputs: Vec<InputRange>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InputRange {
    pub name: String,
    pub min: Vec<usize>,
    pub opt: Vec<usize>,
    pub max: Vec<usize>,
}

impl ShapeProfile {
    /// TensorRT's option syntax: `name:d0xd1,name2:d0` for the min, opt or max shapes.
    pub fn tensorrt_shapes(&self, pick: impl Fn(&InputRange) -> &[usize]) -> String {
        self.inputs
            .iter()
            .map(|r| {
                let dims: Vec<String> = pick(r).iter().map(|d| d.to_string()).collect();
                format!("{}:{}", r.name, dims.join("x"))
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }
}
