//! The pure-Rust backend: tract-onnx. A graph is parsed once and optimized once per distinct
//! set of input shapes (a robot's cameras and prompt fix them, so that happens on the first
//! call), because tract cannot optimize every reshape over symbolic dims.

use super::tensor::BackendValue;
use super::{Backend, BackendError, BackendTensor, GraphOutputs, GraphSession, TensorValue};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;

/// tract on the CPU, with its matrix products spread over `threads` threads.
#[derive(Debug, Clone)]
pub struct TractBackend {
    threads: usize,
    executor: Executor,
}

impl Default for TractBackend {
    /// One thread per available core.
    fn default() -> Self {
        TractBackend::with_threads(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        )
    }
}

impl TractBackend {
    pub fn with_threads(threads: usize) -> Self {
        let threads = threads.max(1);
        let executor = if threads == 1 {
            Executor::SingleThread
        } else {
            Executor::multithread_with_name(threads, "vjx-tract")
        };
        TractBackend { threads, executor }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }
}

impl Backend for TractBackend {
    fn name(&self) -> &'static str {
        "tract"
    }

    /// Reads only the graph's I/O names here: tract parses the model (weights included) when it
    /// plans the first call, so a large graph is never parsed twice at start-up.
    fn load(&self, graph_file: &Path) -> Result<Box<dyn GraphSession>, BackendError> {
        let (input_names, output_names) = graph_io_names(graph_file)?;
        Ok(Box::new(TractSession {
            graph: graph_file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            graph_file: graph_file.to_path_buf(),
            input_names,
            output_names,
            plans: Mutex::new(Plans::Exact(HashMap::new())),
            executor: self.executor.clone(),
        }))
    }
}

/// Input and output names of an ONNX file, from its graph proto (external data is not read).
fn graph_io_names(graph_file: &Path) -> Result<(Vec<String>, Vec<String>), BackendError> {
    use prost::Message;
    let load_err = |reason: String| BackendError::Load {
        path: graph_file.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(graph_file).map_err(|e| load_err(e.to_string()))?;
    let model = vjx_graphs::onnx::ModelProto::decode(bytes.as_slice())
        .map_err(|e| load_err(format!("not an ONNX model: {e}")))?;
    let graph = model
        .graph
        .ok_or_else(|| load_err("the model has no graph".to_string()))?;
    let initializers: std::collections::HashSet<&str> = graph
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    let name = |v: &vjx_graphs::onnx::ValueInfoProto| v.name.clone().unwrap_or_default();
    let inputs = graph
        .input
        .iter()
        .filter(|v| !initializers.contains(name(v).as_str()))
        .map(name)
        .collect();
    let outputs = graph.output.iter().map(name).collect();
    Ok((inputs, outputs))
}

struct TractSession {
    graph: String,
    input_names: Vec<String>,
    output_names: Vec<String>,
    /// Parsed again when a plan is built rather than kept: an optimized plan holds its own
    /// (packed) copy of every weight, and keeping the parsed model too would double the memory.
    graph_file: PathBuf,
    plans: Mutex<Plans>,
    executor: Executor,
}

/// The optimized plans of a session. The first call's shapes are planned exactly; a call
/// with other shapes (a prefill and then decode steps, say) replaces that plan with one for
/// every shape the graph's symbolic input dims allow, so that one plan, not one per shape,
/// holds the weights. A graph tract cannot plan symbolically keeps one plan per shape set.
enum Plans {
    Exact(HashMap<Vec<Vec<usize>>, Arc<TypedRunnableModel>>),
    Symbolic(Arc<TypedRunnableModel>),
    /// Symbolic planning failed: exact plans only, from now on.
    ExactOnly(HashMap<Vec<Vec<usize>>, Arc<TypedRunnableModel>>),
}

impl TractSession {
    fn plan(&self, inputs: &[TValue]) -> TractResult<Arc<TypedRunnableModel>> {
        let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        match &*plans {
            Plans::Symbolic(runnable) => return Ok(runnable.clone()),
            Plans::Exact(exact) | Plans::ExactOnly(exact) => {
                if let Some(runnable) = exact.get(&shapes) {
                    return Ok(runnable.clone());
                }
            }
        }
        if let Plans::Exact(exact) = &*plans {
            if !exact.is_empty() {
                // Dropped first, so that two plans never hold the weights at once.
                *plans = Plans::Exact(HashMap::new());
                match self.symbolic_plan() {
                    Ok(runnable) => {
                        *plans = Plans::Symbolic(runnable.clone());
                        return Ok(runnable);
                    }
                    Err(_) => *plans = Plans::ExactOnly(HashMap::new()),
                }
            }
        }
        let runnable = self.exact_plan(inputs)?;
        if let Plans::Exact(exact) | Plans::ExactOnly(exact) = &mut *plans {
            exact.insert(shapes, runnable.clone());
        }
        Ok(runnable)
    }

    fn exact_plan(&self, inputs: &[TValue]) -> TractResult<Arc<TypedRunnableModel>> {
        let mut model = tract_onnx::onnx().model_for_path(&self.graph_file)?;
        for (i, t) in inputs.iter().enumerate() {
            model.set_input_fact(i, InferenceFact::dt_shape(t.datum_type(), t.shape()))?;
        }
        model.into_optimized()?.into_runnable()
    }

    fn symbolic_plan(&self) -> TractResult<Arc<TypedRunnableModel>> {
        let model = tract_onnx::onnx().model_for_path(&self.graph_file)?;
        model.into_optimized()?.into_runnable()
    }
}

impl GraphSession for TractSession {
    fn input_names(&self) -> &[String] {
        &self.input_names
    }

    fn run(&self, inputs: &[(&str, &super::Tensor)]) -> Result<GraphOutputs, BackendError> {
        let ordered = super::ordered_inputs(&self.graph, &self.input_names, inputs)?
            .into_iter()
            .map(input_value)
            .collect::<Result<TVec<TValue>, BackendError>>()?;
        let run_err = |e: TractError| BackendError::Run {
            graph: self.graph.clone(),
            reason: format!("{e:#}"),
        };
        let plan = self.plan(&ordered).map_err(run_err)?;
        let results = multithread_tract_scope(self.executor.clone(), || plan.run(ordered))
            .map_err(run_err)?;
        let values = self
            .output_names
            .iter()
            .zip(results)
            .map(|(name, value)| {
                let tensor = value.into_arc_tensor();
                let shape = tensor.shape().to_vec();
                let kept = BackendTensor::new(shape, BackendValue::Tract(tensor));
                (name.clone(), super::Tensor::Backend(kept))
            })
            .collect();
        Ok(GraphOutputs::new(self.graph.clone(), values))
    }
}

/// A tract value for `value`: shared when tract made it, else copied from the host.
fn input_value(value: &super::Tensor) -> Result<TValue, BackendError> {
    let host = match value {
        super::Tensor::Backend(b) => match b.value() {
            BackendValue::Tract(t) => return Ok(TValue::from_const(t.clone())),
            BackendValue::Ort(_) => b.clone().into_host()?,
        },
        super::Tensor::Host(t) => t.clone(),
    };
    let tensor: Tensor = match host {
        TensorValue::F32(a) => a.into(),
        TensorValue::I64(a) => a.into(),
    };
    Ok(tensor.into())
}

/// A host array of a tract value; copies only when the value is shared.
pub(super) fn to_host(tensor: Arc<Tensor>) -> Result<TensorValue, BackendError> {
    let tensor = Arc::try_unwrap(tensor).unwrap_or_else(|shared| (*shared).clone());
    let dtype_err = |e: TractError| BackendError::DType(format!("{e:#}"));
    if tensor.datum_type() == i64::datum_type() {
        Ok(TensorValue::I64(
            tensor.into_plain_array::<i64>().map_err(dtype_err)?,
        ))
    } else {
        Ok(TensorValue::F32(
            tensor.into_plain_array::<f32>().map_err(dtype_err)?,
        ))
    }
}
