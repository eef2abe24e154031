//! The ONNX Runtime backend (crate `ort`, library opened at run time: see `ort_library`). Runs on
//! the CPU, or on an NVIDIA GPU through the CUDA or TensorRT execution provider. A fixed GPU
//! device that cannot be set up is an error naming the provider; `auto` tries TensorRT, CUDA
//! and the CPU in turn for each graph and records where each one landed.

use super::ort_library::{self, OrtLibraryError};
use super::{Backend, BackendError, GraphSession, Outputs, Placement, ShapeProfile, TensorValue};
use ort::ep::{ExecutionProviderDispatch, CUDA, TensorRT};
use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorElementType, TensorRef, ValueRef};
use std::fmt;
use std::path::{Path, PathBuf};
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
    /// TensorRT, else CUDA, else the CPU, chosen per graph; see [`OrtBackend::placements`].
    Auto,
}

impl Device {
    pub const NAMES: [&'static str; 4] = ["cpu", "cuda", "tensorrt", "auto"];

    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::TensorRt => "tensorrt",
            Device::Auto => "auto",
        }
    }

    /// The devices tried in turn for each graph.
    fn attempts(self) -> &'static [Device] {
        match self {
            Device::Auto => &[Device::TensorRt, Device::Cuda, Device::Cpu],
            Device::Cpu => &[Device::Cpu],
            Device::Cuda => &[Device::Cuda],
            Device::TensorRt => &[Device::TensorRt],
        }
    }

    fn provider_name(self) -> &'static str {
        match self {
            Device::Cpu => "CPUExecutionProvider",
            Device::Cuda => "CUDAExecutionProvider",
            Device::TensorRt => "TensorrtExecutionProvider",
            Device::Auto => "auto",
        }
    }
}

/// Settings of the GPU execution providers.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuOptions {
    pub device_id: i32,
    /// TensorRT engine and timing caches live here, so that a second start reuses the engines.
    pub cache_dir: Option<PathBuf>,
    /// TensorRT builder workspace limit.
    pub trt_workspace_bytes: usize,
    /// Let TensorRT pick FP16 kernels.
    pub trt_fp16: bool,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions { device_id: 0, cache_dir: None, trt_workspace_bytes: 2 << 30, trt_fp16: true }
    }
}

impl GpuOptions {
    /// The providers to register for one attempt on `device` (most preferred first; TensorRT
    /// hands the nodes it cannot build to CUDA). Empty for the CPU: ONNX Runtime's default.
    fn providers(&self, device: Device, profile: &ShapeProfile, graph_stem: &str) -> Vec<ExecutionProviderDispatch> {
        let cuda = || CUDA::default().with_device_id(self.device_id).build().error_on_failure();
        match device {
            Device::Cpu | Device::Auto => Vec::new(),
            Device::Cuda => vec![cuda()],
            Device::TensorRt => {
                let mut trt = TensorRT::default()
                    .with_device_id(self.device_id)
                    .with_fp16(self.trt_fp16)
                    .with_max_workspace_size(self.trt_workspace_bytes);
                if let Some(dir) = &self.cache_dir {
                    let dir = dir.display().to_string();
                    trt = trt
                        .with_engine_cache(true)
                        .with_engine_cache_path(&dir)
                        .with_engine_cache_prefix(graph_stem)
                        .with_timing_cache(true)
                        .with_timing_cache_path(&dir);
                }
                if !profile.is_empty() {
                    trt = trt
                        .with_profile_min_shapes(profile.tensorrt_shapes(|r| &r.min))
                        .with_profile_opt_shapes(profile.tensorrt_shapes(|r| &r.opt))
                        .with_profile_max_shapes(profile.tensorrt_shapes(|r| &r.max));
                }
                vec![trt.build().error_on_failure(), cuda()]
            }
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
            "auto" => Ok(Device::Auto),
            other => Err(OrtBackendError::UnknownDevice(other.to_string())),
        }
    }
}

#[derive(Debug, Error)]
pub enum OrtBackendError {
    #[error(transparent)]
    Library(#[from] OrtLibraryError),
    #[error("unknown device `{0}` (available: cpu, cuda, tensorrt, auto)")]
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

/// ONNX Runtime on one device. Creating it opens the library and, for a fixed GPU device,
/// checks that its execution providers can be registered.
#[derive(Debug)]
pub struct OrtBackend {
    device: Device,
    intra_threads: usize,
    gpu: GpuOptions,
    placements: Mutex<Vec<Placement>>,
}

impl OrtBackend {
    /// One CPU thread per available core.
    pub fn new(device: Device) -> Result<Self, OrtBackendError> {
        OrtBackend::with_threads(device, std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    }

    pub fn with_threads(device: Device, intra_threads: usize) -> Result<Self, OrtBackendError> {
        OrtBackend::with_options(device, intra_threads, GpuOptions::default())
    }

    pub fn with_options(device: Device, intra_threads: usize, gpu: GpuOptions) -> Result<Self, OrtBackendError> {
        let backend = OrtBackend { device, intra_threads: intra_threads.max(1), gpu, placements: Mutex::new(Vec::new()) };
        ort_library::runtime()?;
        if device != Device::Auto {
            backend.session_builder(device, &ShapeProfile::default(), "probe")?;
        }
        Ok(backend)
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// A session builder with this backend's threads and `device`'s execution providers.
    fn session_builder(
        &self,
        device: Device,
        profile: &ShapeProfile,
        graph_stem: &str,
    ) -> Result<ort::session::builder::SessionBuilder, OrtBackendError> {
        let runtime = ort_library::runtime()?;
        let session_err = |e: String| OrtBackendError::Session(e);
        let mut builder = Session::builder(&runtime.environment)
            .map_err(|e| session_err(e.to_string()))?
            .with_intra_threads(self.intra_threads)
            .map_err(|e| session_err(e.to_string()))?;
        if let Some(dir) = &self.gpu.cache_dir {
            if device == Device::TensorRt {
                std::fs::create_dir_all(dir)
                    .map_err(|e| session_err(format!("creating the TensorRT cache dir {}: {e}", dir.display())))?;
            }
        }
        for provider in self.gpu.providers(device, profile, graph_stem) {
            // One at a time, so that the error names the provider that failed.
            builder = builder.with_execution_providers([provider.clone()]).map_err(|e| OrtBackendError::Provider {
                device,
                provider: provider_display_name(provider.name()),
                reason: e.to_string(),
                tensorrt: if device == Device::TensorRt { " and TensorRT" } else { "" },
            })?;
        }
        Ok(builder)
    }
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "ort"
    }

    fn placements(&self) -> Vec<Placement> {
        self.placements.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn load(&self, graph_file: &Path) -> Result<Box<dyn GraphSession>, BackendError> {
        self.load_profiled(graph_file, &ShapeProfile::default())
    }

    fn load_profiled(&self, graph_file: &Path, profile: &ShapeProfile) -> Result<Box<dyn GraphSession>, BackendError> {
        let load_err = |reason: String| BackendError::Load { path: graph_file.to_path_buf(), reason };
        let graph = graph_file.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let stem = graph.trim_end_matches(".onnx").to_string();
        let mut fallbacks = Vec::new();
        let mut placed = None;
        for &device in self.device.attempts() {
            let attempt = self
                .session_builder(device, profile, &stem)
                .and_then(|mut b| b.commit_from_file(graph_file).map_err(|e| OrtBackendError::Session(e.to_string())));
            match attempt {
                Ok(session) => {
                    placed = Some((session, device));
                    break;
                }
                Err(e) if self.device == Device::Auto && device != Device::Cpu => {
                    fallbacks.push(format!("{}: {}", device.provider_name(), first_line(&e.to_string())));
                }
                Err(e) => return Err(load_err(e.to_string())),
            }
        }
        let (session, device) = placed.ok_or_else(|| load_err("no execution provider could load it".into()))?;
        self.placements.lock().unwrap_or_else(|e| e.into_inner()).push(Placement {
            graph: graph.clone(),
            provider: device.provider_name().to_string(),
            fallbacks,
        });
        let input_names = session.inputs().iter().map(|o| o.name().to_string()).collect();
        Ok(Box::new(OrtSession {
            graph,
            input_names,
            session: Mutex::new(session),
        }))
    }
}

fn provider_display_name(name: &'static str) -> &'static str {
    match name {
        n if n.starts_with("CUDA") => "CUDA execution provider (CUDAExecutionProvider)",
        n if n.starts_with("Tensorrt") || n.starts_with("TensorRT") => "TensorRT execution provider (TensorrtExecutionProvider)",
        n => n,
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
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
