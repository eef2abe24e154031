//! Backends that run the exported ONNX graphs. tract is the zero-install default; ort (ONNX
//! Runtime, opened at run time) adds CUDA and TensorRT. Every backend loads a graph file and
//! runs it on named host tensors.

pub mod ort;
pub mod ort_library;
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
}
