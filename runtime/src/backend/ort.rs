//! The ONNX Runtime backend (crate `ort`, library opened at run time: see `ort_library`). Runs on
//! the CPU, or on an NVIDIA GPU through the CUDA or TensorRT execution provider. A GPU device
//! that cannot be set up is an error naming the provider, never a silent fall back to the CPU.

use super::ort_library::{self, OrtLibraryError};
use super::{Backend, BackendError, GraphSession, Outputs, TensorValue};
use ort::ep::{ExecutionProviderDispatch, CUDA, TensorRT};
use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorElementType, TensorRef, ValueRef};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;
use thiserror::Error;

/// Where ONNX Runtime runs the graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    Cuda,
    TensorRt,
}

impl Device {
    pub const NAMES: [&'static str; 3] = ["cpu", "cuda", "tensorrt"];

    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::TensorRt => "tensorrt",
        }
    }

    /// The execution providers registered for this device, most preferred first (TensorRT hands
    /// the nodes it cannot build to CUDA). Empty for the CPU: ONNX Runtime's default.
    fn providers(self) -> Vec<ExecutionProviderDispatch> {
        match self {
            Device::Cpu => Vec::new(),
            Device::Cuda => vec![CUDA::default().build().error_on_failure()],
            Device::TensorRt => vec![
                TensorRT::default().build().error_on_failure(),
                CUDA::default().build().error_on_failure(),
            ],
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Device {
    type Err = OrtBackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda),
            "tensorrt" => Ok(Device::TensorRt),
            other => Err(OrtBackendError::UnknownDevice(other.to_string())),
        }
    }
}

#[derive(Debug, Error)]
pub enum OrtBackendError {
    #[error(transparent)]
    Library(#[from] OrtLibraryError),
    #[error("unknown device `{0}` (available: cpu, cuda, tensorrt)")]
    UnknownDevice(String),
    #[error(
        "device `{device}`: ONNX Runtime's {provider} could not be set up: {reason}\n\
         (it needs the onnxruntime-gpu build of ONNX Runtime, an NVIDIA GPU with its driver, CUDA and cuDNN{tensorrt}; \
         use `--device cpu` to run on the CPU)"
    )]
    Provider { device: Device, provider: &'static str, reason: String, tensorrt: &'static str },
    #[error("configuring an ONNX Runtime session: {0}")]
    Session(String),
}

/// ONNX Runtime on one device. Creating it opens the library and checks that the device's
/// execution providers can be registered.
#[derive(Debug, Clone, Copy)]
pub struct OrtBackend {
    device: Device,
    intra_threads: usize,
}

impl OrtBackend {
    pub fn new(device: Device) -> Result<Self, OrtBackendError> {
        let intra_threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let backend = OrtBackend { device, intra_threads };
        backend.session_builder()?;
        Ok(backend)
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// A session builder with this backend's threads and execution providers.
    fn session_builder(&self) -> Result<ort::session::builder::SessionBuilder, OrtBackendError> {
        let runtime = ort_library::runtime()?;
        let session_err = |e: String| OrtBackendError::Session(e);
        let mut builder = Session::builder(&runtime.environment)
            .map_err(|e| session_err(e.to_string()))?
            .with_intra_threads(self.intra_threads)
            .map_err(|e| session_err(e.to_string()))?;
        for provider in self.device.providers() {
            // One at a time, so that the error names the provider that failed.
            builder = builder.with_execution_providers([provider.clone()]).map_err(|e| OrtBackendError::Provider {
                device: self.device,
                provider: provider_display_name(provider.name()),
                reason: e.to_string(),
                tensorrt: if self.device == Device::TensorRt { " and TensorRT" } else { "" },
            })?;
        }
        Ok(builder)
    }
}

fn provider_display_name(name: &'static str) -> &'static str {
    match name {
        n if n.starts_with("CUDA") => "CUDA execution provider (CUDAExecutionProvider)",
        n if n.starts_with("Tensorrt") || n.starts_with("TensorRT") => "TensorRT execution provider (TensorrtExecutionProvider)",
        n => n,
    }
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "ort"
    }

    fn load(&self, graph_file: &Path) -> Result<Box<dyn GraphSession>, BackendError> {
        let load_err = |reason: String| BackendError::Load { path: graph_file.to_path_buf(), reason };
        let mut builder = self.session_builder().map_err(|e| load_err(e.to_string()))?;
        let session = builder.commit_from_file(graph_file).map_err(|e| load_err(e.to_string()))?;
        let input_names = session.inputs().iter().map(|o| o.name().to_string()).collect();
        Ok(Box::new(OrtSession {
            graph: graph_file.file_name().unwrap_or_default().to_string_lossy().into_owned(),
            input_names,
            session: Mutex::new(session),
        }))
    }
}

struct OrtSession {
    graph: String,
    input_names: Vec<String>,
    /// `Session::run` takes `&mut self`; one run at a time per graph.
    session: Mutex<Session>,
}

impl OrtSession {
    fn run_err(&self, reason: impl fmt::Display) -> BackendError {
        BackendError::Run { graph: self.graph.clone(), reason: reason.to_string() }
    }

    /// Borrows contiguous host arrays; copies only non-contiguous ones.
    fn input_value<'v>(&self, value: &'v TensorValue) -> Result<SessionInputValue<'v>, BackendError> {
        let converted: ort::Result<SessionInputValue<'v>> = match value {
            TensorValue::F32(a) if a.is_standard_layout() => TensorRef::from_array_view(a.view()).map(Into::into),
            TensorValue::F32(a) => Tensor::from_array(a.as_standard_layout().into_owned()).map(Into::into),
            TensorValue::I64(a) if a.is_standard_layout() => TensorRef::from_array_view(a.view()).map(Into::into),
            TensorValue::I64(a) => Tensor::from_array(a.as_standard_layout().into_owned()).map(Into::into),
        };
        converted.map_err(|e| self.run_err(e))
    }

    fn output_value(&self, name: &str, value: &ValueRef<'_>) -> Result<TensorValue, BackendError> {
        match value.dtype().tensor_type() {
            Some(TensorElementType::Float32) => Ok(TensorValue::F32(
                value.try_extract_array::<f32>().map_err(|e| self.run_err(e))?.to_owned(),
            )),
            Some(TensorElementType::Int64) => Ok(TensorValue::I64(
                value.try_extract_array::<i64>().map_err(|e| self.run_err(e))?.to_owned(),
            )),
            other => Err(BackendError::DType(format!(
                "graph {}: output `{name}` is {other:?}; the ort backend returns f32 and i64 tensors",
                self.graph
            ))),
        }
    }
}

impl GraphSession for OrtSession {
    fn input_names(&self) -> &[String] {
        &self.input_names
    }

    fn run(&self, inputs: &[(&str, TensorValue)]) -> Result<Outputs, BackendError> {
        let mut named: Vec<(&str, SessionInputValue<'_>)> = Vec::with_capacity(self.input_names.len());
        for name in &self.input_names {
            let value = inputs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v)
                .ok_or_else(|| BackendError::MissingInput { graph: self.graph.clone(), name: name.clone() })?;
            named.push((name.as_str(), self.input_value(value)?));
        }
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let results = session.run(named).map_err(|e| self.run_err(e))?;
        let mut out = Outputs::new();
        for (name, value) in results.iter() {
            out.insert(name.to_string(), self.output_value(name, &value)?);
        }
        Ok(out)
    }
}
