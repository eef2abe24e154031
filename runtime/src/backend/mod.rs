//! Backends that run the exported ONNX graphs. tract is the zero-install default; ort (ONNX
//! Runtime, opened at run time) adds CUDA and TensorRT. Every backend loads a graph file and
//! runs it on named tensors: host arrays, or values the backend keeps between graphs.

pub mod ort;
pub mod ort_library;
pub mod ort_provider_options;
pub mod ort_version;
pub mod tensor;
pub mod tensorrt_cache;
pub mod tract;

use std::path::{Path, PathBuf};
pub use tensor::{BackendTensor, GraphOutputs, Tensor, TensorValue};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BackendError {
    #[error("loading graph {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("graph {graph}: input `{name}` not given")]
    MissingInput { graph: String, name: String },
    #[error("graph {graph}: output `{name}` missing")]
    MissingOutput { graph: String, name: String },
    #[error("graph {graph}: running failed: {reason}")]
    Run { graph: String, reason: String },
    #[error("reading a backend tensor: {0}")]
    Read(String),
    #[error("unexpected tensor type: {0}")]
    DType(String),
}

/// `inputs` in the order of the graph's `input_names`; a name not given is an error naming the
/// graph and the input.
fn ordered_inputs<'v>(
    graph: &str,
    input_names: &[String],
    inputs: &[(&str, &'v Tensor)],
) -> Result<Vec<&'v Tensor>, BackendError> {
    input_names
        .iter()
        .map(|name| {
            inputs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| BackendError::MissingInput {
                    graph: graph.to_string(),
                    name: name.clone(),
                })
        })
        .collect()
}

/// One loaded graph, ready to run many times.
pub trait GraphSession: Send + Sync {
    fn input_names(&self) -> &[String];
    /// Runs the graph. Inputs may be host tensors or values of this backend (those of another
    /// backend go through the host); the outputs stay values of this backend until read.
    fn run(&self, inputs: &[(&str, &Tensor)]) -> Result<GraphOutputs, BackendError>;
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
