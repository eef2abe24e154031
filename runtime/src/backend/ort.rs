//! The ONNX Runtime backend (crate `ort`, library opened at run time: see `ort_library`). Runs on
//! the CPU, or on an NVIDIA GPU through the CUDA or TensorRT execution provider. A fixed GPU
//! device that cannot be set up is an error naming the provider; `auto` tries TensorRT, CUDA
//! and the CPU in turn for each graph and records where each one landed.
//!
//! Outputs stay `ort` values until the host reads them, and feed the next run as they are.
//! IO binding (outputs bound to the GPU's memory) is not used: with `ort` 2.0.0-rc.15,
//! `IoBinding::bind_input` of a session output deadlocks (it clones the value through an identity
//! session whose lock it already holds), so on CUDA and TensorRT ONNX Runtime still copies each
//! output to the host.

use super::ort_library::{self, OrtLibraryError};
use super::ort_provider_options::{self, Provider};
use super::ort_version::OrtVersion;
use super::tensor::BackendValue;
use super::tensorrt_cache::{self, CacheKey, EngineCache};
use super::{
    Backend, BackendError, BackendTensor, GraphOutputs, GraphSession, Placement, RuntimeLibrary,
    ShapeProfile, TensorValue,
};
use crate::manifest::{Manifest, ManifestError};
use ort::ep::{
    ArbitrarilyConfigurableExecutionProvider, ExecutionProviderDispatch, TensorRT, CUDA,
};
use ort::session::{Session, SessionInputValue, SessionOutputs};
use ort::value::{DynValue, Tensor, TensorElementType, TensorRef, TensorValueTypeMarker, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use thiserror::Error;
use vjx_graphs::Precision;

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

/// Whether TensorRT may pick FP16 kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrtFp16 {
    /// As the export's precision says: on for fp16 and int8 exports, off for fp32 ones (and for
    /// a graph outside an export).
    #[default]
    Auto,
    On,
    Off,
}

impl TrtFp16 {
    pub const NAMES: [&'static str; 3] = ["auto", "on", "off"];

    /// FP16 on or off for a graph of an export at `precision` (`None`: not part of an export).
    pub fn enabled_for(self, precision: Option<Precision>) -> bool {
        match self {
            TrtFp16::On => true,
            TrtFp16::Off => false,
            TrtFp16::Auto => matches!(precision, Some(Precision::F16 | Precision::Int8)),
        }
    }
}

impl FromStr for TrtFp16 {
    type Err = OrtBackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(TrtFp16::Auto),
            "on" => Ok(TrtFp16::On),
            "off" => Ok(TrtFp16::Off),
            other => Err(OrtBackendError::UnknownTrtFp16(other.to_string())),
        }
    }
}

/// Settings of the GPU execution providers.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuOptions {
    pub device_id: i32,
    /// TensorRT engine and timing caches live here, one dir per graph and cache key (see
    /// `tensorrt_cache`), so that a restart reuses the engines that are still valid.
    pub cache_dir: Option<PathBuf>,
    /// TensorRT builder workspace limit.
    pub trt_workspace_bytes: usize,
    pub trt_fp16: TrtFp16,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            device_id: 0,
            cache_dir: None,
            trt_workspace_bytes: 2 << 30,
            trt_fp16: TrtFp16::Auto,
        }
    }
}

/// What TensorRT is told about one graph.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TensorRtGraph {
    pub fp16: bool,
    /// The graph's engine cache dir and the prefix of its engine files.
    pub cache: Option<(PathBuf, String)>,
    pub profile: ShapeProfile,
}

impl GpuOptions {
    /// The TensorRT provider options for `graph`, before filtering by version. FP16 comes with
    /// `trt_layer_norm_fp32_fallback`, which keeps layer-norm reductions in FP32.
    pub fn tensorrt_options(&self, graph: &TensorRtGraph) -> Vec<(&'static str, String)> {
        let flag = |on: bool| if on { "1" } else { "0" }.to_string();
        let mut options = vec![
            ("device_id", self.device_id.to_string()),
            (
                "trt_max_workspace_size",
                self.trt_workspace_bytes.to_string(),
            ),
            ("trt_fp16_enable", flag(graph.fp16)),
        ];
        if graph.fp16 {
            options.push(("trt_layer_norm_fp32_fallback", flag(true)));
        }
        if let Some((dir, prefix)) = &graph.cache {
            let dir = dir.display().to_string();
            options.extend([
                ("trt_engine_cache_enable", flag(true)),
                ("trt_engine_cache_path", dir.clone()),
                ("trt_engine_cache_prefix", prefix.clone()),
                ("trt_timing_cache_enable", flag(true)),
                ("trt_timing_cache_path", dir),
            ]);
        }
        if !graph.profile.is_empty() {
            options.extend([
                (
                    "trt_profile_min_shapes",
                    graph.profile.tensorrt_shapes(|r| &r.min),
                ),
                (
                    "trt_profile_opt_shapes",
                    graph.profile.tensorrt_shapes(|r| &r.opt),
                ),
                (
                    "trt_profile_max_shapes",
                    graph.profile.tensorrt_shapes(|r| &r.max),
                ),
            ]);
        }
        options
    }

    pub fn cuda_options(&self) -> Vec<(&'static str, String)> {
        vec![("device_id", self.device_id.to_string())]
    }

    /// The providers to register for one attempt on `device` (most preferred first; TensorRT
    /// hands the nodes it cannot build to CUDA), with the options `version` accepts. Empty for
    /// the CPU: ONNX Runtime's default.
    fn providers(
        &self,
        device: Device,
        graph: &TensorRtGraph,
        version: OrtVersion,
    ) -> Vec<ExecutionProviderDispatch> {
        let known = |provider: Provider, options: Vec<(&'static str, String)>| {
            let filtered = ort_provider_options::for_version(provider, options, version);
            ort_provider_options::log_left_out(provider, version, &filtered.left_out);
            filtered.kept
        };
        let cuda = || {
            let options = known(Provider::Cuda, self.cuda_options());
            options
                .into_iter()
                .fold(CUDA::default(), |ep, (k, v)| ep.with_arbitrary_config(k, v))
                .build()
                .error_on_failure()
        };
        match device {
            Device::Cpu | Device::Auto => Vec::new(),
            Device::Cuda => vec![cuda()],
            Device::TensorRt => {
                let options = known(Provider::TensorRt, self.tensorrt_options(graph));
                let trt = options.into_iter().fold(TensorRT::default(), |ep, (k, v)| {
                    ep.with_arbitrary_config(k, v)
                });
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
    #[error("unknown --trt-fp16 value `{0}` (available: auto, on, off)")]
    UnknownTrtFp16(String),
    #[error(
        "device `{device}`: ONNX Runtime's {provider} could not be set up: {reason}\n\
         (it needs the onnxruntime-gpu build of ONNX Runtime, an NVIDIA GPU with its driver, CUDA and cuDNN{tensorrt}; \
         use `--device cpu` to run on the CPU)"
    )]
    Provider {
        device: Device,
        provider: &'static str,
        reason: String,
        tensorrt: &'static str,
    },
    #[error("configuring an ONNX Runtime session: {0}")]
    Session(String),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Cache(#[from] tensorrt_cache::CacheError),
}

/// ONNX Runtime on one device. Creating it opens the library and, for a fixed GPU device,
/// checks that its execution providers can be registered.
#[derive(Debug)]
pub struct OrtBackend {
    device: Device,
    intra_threads: usize,
    gpu: GpuOptions,
    placements: Mutex<Vec<Placement>>,
    /// The TensorRT library's version and the GPU, looked up at the first TensorRT load.
    machine: OnceLock<(String, String)>,
}

impl OrtBackend {
    /// One CPU thread per available core.
    pub fn new(device: Device) -> Result<Self, OrtBackendError> {
        OrtBackend::with_threads(
            device,
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        )
    }

    pub fn with_threads(device: Device, intra_threads: usize) -> Result<Self, OrtBackendError> {
        OrtBackend::with_options(device, intra_threads, GpuOptions::default())
    }

    pub fn with_options(
        device: Device,
        intra_threads: usize,
        gpu: GpuOptions,
    ) -> Result<Self, OrtBackendError> {
        let backend = OrtBackend {
            device,
            intra_threads: intra_threads.max(1),
            gpu,
            placements: Mutex::new(Vec::new()),
            machine: OnceLock::new(),
        };
        ort_library::runtime()?;
        if device != Device::Auto {
            backend.session_builder(device, &TensorRtGraph::default())?;
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
        graph: &TensorRtGraph,
    ) -> Result<ort::session::builder::SessionBuilder, OrtBackendError> {
        let runtime = ort_library::runtime()?;
        let session_err = |e: String| OrtBackendError::Session(e);
        let mut builder = Session::builder(&runtime.environment)
            .map_err(|e| session_err(e.to_string()))?
            .with_intra_threads(self.intra_threads)
            .map_err(|e| session_err(e.to_string()))?;
        for provider in self.gpu.providers(device, graph, runtime.version) {
            // One at a time, so that the error names the provider that failed.
            builder = builder
                .with_execution_providers([provider.clone()])
                .map_err(|e| OrtBackendError::Provider {
                    device,
                    provider: provider_display_name(provider.name()),
                    reason: e.to_string(),
                    tensorrt: if device == Device::TensorRt {
                        " and TensorRT"
                    } else {
                        ""
                    },
                })?;
        }
        Ok(builder)
    }

    /// What TensorRT gets for `graph_file`: FP16 as `--trt-fp16` and the export's precision say,
    /// and the graph's cache dir under its key.
    fn tensorrt_graph(
        &self,
        graph_file: &Path,
        stem: &str,
        profile: &ShapeProfile,
    ) -> Result<(TensorRtGraph, Option<CacheKey>), OrtBackendError> {
        let manifest = export_manifest(graph_file)?;
        let precision = manifest.as_ref().map(|m| m.precision);
        let fp16 = self.gpu.trt_fp16.enabled_for(precision);
        let Some(root) = &self.gpu.cache_dir else {
            return Ok((
                TensorRtGraph {
                    fp16,
                    cache: None,
                    profile: profile.clone(),
                },
                None,
            ));
        };
        let runtime = ort_library::runtime()?;
        let (tensorrt, gpu) = self.machine.get_or_init(|| {
            let dirs = tensorrt_cache::tensorrt_search_dirs(&runtime.library);
            (
                tensorrt_cache::tensorrt_version(&dirs),
                tensorrt_cache::gpu_identity(self.gpu.device_id),
            )
        });
        let key = CacheKey {
            onnxruntime: runtime.version.to_string(),
            tensorrt: tensorrt.clone(),
            gpu: gpu.clone(),
            graph_sha256: graph_checksums(graph_file, manifest.as_ref())?,
            fp16,
            profile: profile_text(profile),
        };
        let dir = tensorrt_cache::key_dir(root, stem, &key);
        Ok((
            TensorRtGraph {
                fp16,
                cache: Some((dir, stem.to_string())),
                profile: profile.clone(),
            },
            Some(key),
        ))
    }

    /// One session of `graph_file` on `device`, and the state its engine cache was in.
    fn attempt(
        &self,
        device: Device,
        graph_file: &Path,
        stem: &str,
        profile: &ShapeProfile,
    ) -> Result<(Session, Option<EngineCache>), OrtBackendError> {
        let (graph, key) = match device {
            Device::TensorRt => self.tensorrt_graph(graph_file, stem, profile)?,
            _ => (
                TensorRtGraph {
                    profile: profile.clone(),
                    ..TensorRtGraph::default()
                },
                None,
            ),
        };
        let mut builder = self.session_builder(device, &graph)?;
        // Only once TensorRT is known to be there: a machine without it keeps its caches.
        let engine_cache = match (&self.gpu.cache_dir, &key) {
            (Some(root), Some(key)) => {
                let prepared = tensorrt_cache::prepare(root, stem, key)?;
                for stale in &prepared.removed {
                    eprintln!("ort: {}", stale.describe(stem));
                }
                Some(prepared.state)
            }
            _ => None,
        };
        let session = builder
            .commit_from_file(graph_file)
            .map_err(|e| OrtBackendError::Session(e.to_string()))?;
        Ok((session, engine_cache))
    }
}

/// The manifest of the export `graph_file` belongs to; `None` for a graph outside an export.
fn export_manifest(graph_file: &Path) -> Result<Option<Manifest>, ManifestError> {
    match Manifest::load(graph_file.parent().unwrap_or(Path::new(".")), false) {
        Ok(manifest) => Ok(Some(manifest)),
        Err(ManifestError::Missing { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// sha256 of the graph file and its data file: from the manifest (checked when the policy
/// loaded), else hashed here.
fn graph_checksums(
    graph_file: &Path,
    manifest: Option<&Manifest>,
) -> Result<BTreeMap<String, String>, OrtBackendError> {
    let name = graph_file
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let from_manifest = manifest.and_then(|m| {
        let entry = m.graphs.values().find(|g| g.file == name)?;
        let mut digests = BTreeMap::from([(name.clone(), m.files.get(&name)?.clone())]);
        if let Some(data) = &entry.data_file {
            digests.insert(data.clone(), m.files.get(data)?.clone());
        }
        Some(digests)
    });
    match from_manifest {
        Some(digests) => Ok(digests),
        None => Ok(tensorrt_cache::hash_graph_files(graph_file)?),
    }
}

/// The profile as one line of the cache key.
fn profile_text(profile: &ShapeProfile) -> String {
    if profile.is_empty() {
        return String::new();
    }
    format!(
        "min={}|opt={}|max={}",
        profile.tensorrt_shapes(|r| &r.min),
        profile.tensorrt_shapes(|r| &r.opt),
        profile.tensorrt_shapes(|r| &r.max)
    )
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "ort"
    }

    fn placements(&self) -> Vec<Placement> {
        self.placements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn runtime_library(&self) -> Option<RuntimeLibrary> {
        let runtime = ort_library::runtime().ok()?;
        Some(RuntimeLibrary {
            name: "ONNX Runtime",
            version: runtime.version.to_string(),
            path: runtime.library.clone(),
        })
    }

    fn load(&self, graph_file: &Path) -> Result<Box<dyn GraphSession>, BackendError> {
        self.load_profiled(graph_file, &ShapeProfile::default())
    }

    fn load_profiled(
        &self,
        graph_file: &Path,
        profile: &ShapeProfile,
    ) -> Result<Box<dyn GraphSession>, BackendError> {
        let load_err = |reason: String| BackendError::Load {
            path: graph_file.to_path_buf(),
            reason,
        };
        let graph = graph_file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let stem = graph.trim_end_matches(".onnx").to_string();
        let mut fallbacks = Vec::new();
        let mut placed = None;
        for &device in self.device.attempts() {
            match self.attempt(device, graph_file, &stem, profile) {
                Ok((session, engine_cache)) => {
                    placed = Some((session, device, engine_cache));
                    break;
                }
                Err(e) if self.device == Device::Auto && device != Device::Cpu => {
                    fallbacks.push(format!(
                        "{}: {}",
                        device.provider_name(),
                        first_line(&e.to_string())
                    ));
                }
                Err(e) => return Err(load_err(e.to_string())),
            }
        }
        let (session, device, engine_cache) =
            placed.ok_or_else(|| load_err("no execution provider could load it".into()))?;
        let mut placements = self.placements.lock().unwrap_or_else(|e| e.into_inner());
        // A graph loaded again (a warm start) replaces its earlier placement.
        placements.retain(|p| p.graph != graph);
        placements.push(Placement {
            graph: graph.clone(),
            provider: device.provider_name().to_string(),
            fallbacks,
            engine_cache,
        });
        drop(placements);
        let input_names = session
            .inputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
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
        n if n.starts_with("Tensorrt") || n.starts_with("TensorRT") => {
            "TensorRT execution provider (TensorrtExecutionProvider)"
        }
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

/// An input as ONNX Runtime takes it: borrowed from the host or from an ort value, or (for a
/// non-contiguous array or another backend's value) copied.
enum OrtInput<'v> {
    Borrowed(SessionInputValue<'v>),
    Shared(&'v DynValue),
}

impl OrtSession {
    fn run_err(&self, reason: impl fmt::Display) -> BackendError {
        BackendError::Run {
            graph: self.graph.clone(),
            reason: reason.to_string(),
        }
    }

    fn input_value<'v>(&self, value: &'v super::Tensor) -> Result<OrtInput<'v>, BackendError> {
        let host = match value {
            super::Tensor::Host(host) => return self.host_input(host).map(OrtInput::Borrowed),
            super::Tensor::Backend(b) => match b.value() {
                BackendValue::Ort(v) => return Ok(OrtInput::Shared(v)),
                BackendValue::Tract(_) => b.clone().into_host()?,
            },
        };
        let owned: ort::Result<SessionInputValue<'v>> = match host {
            TensorValue::F32(a) => Tensor::from_array(a).map(Into::into),
            TensorValue::I64(a) => Tensor::from_array(a).map(Into::into),
        };
        owned.map(OrtInput::Borrowed).map_err(|e| self.run_err(e))
    }

    /// Borrows contiguous host arrays; copies only non-contiguous ones.
    fn host_input<'v>(
        &self,
        value: &'v TensorValue,
    ) -> Result<SessionInputValue<'v>, BackendError> {
        let converted: ort::Result<SessionInputValue<'v>> = match value {
            TensorValue::F32(a) if a.is_standard_layout() => {
                TensorRef::from_array_view(a.view()).map(Into::into)
            }
            TensorValue::F32(a) => {
                Tensor::from_array(a.as_standard_layout().into_owned()).map(Into::into)
            }
            TensorValue::I64(a) if a.is_standard_layout() => {
                TensorRef::from_array_view(a.view()).map(Into::into)
            }
            TensorValue::I64(a) => {
                Tensor::from_array(a.as_standard_layout().into_owned()).map(Into::into)
            }
        };
        converted.map_err(|e| self.run_err(e))
    }

    /// The inputs in the graph's order.
    fn ordered_inputs<'v>(
        &self,
        inputs: &[(&str, &'v super::Tensor)],
    ) -> Result<Vec<(&str, OrtInput<'v>)>, BackendError> {
        let values = super::ordered_inputs(&self.graph, &self.input_names, inputs)?;
        self.input_names
            .iter()
            .zip(values)
            .map(|(name, value)| Ok((name.as_str(), self.input_value(value)?)))
            .collect()
    }

    fn plain_run(
        &self,
        session: &mut Session,
        inputs: Vec<(&str, OrtInput<'_>)>,
    ) -> Result<Vec<(String, super::Tensor)>, BackendError> {
        let named: Vec<(&str, SessionInputValue<'_>)> = inputs
            .into_iter()
            .map(|(name, input)| match input {
                OrtInput::Borrowed(v) => (name, v),
                OrtInput::Shared(v) => (name, SessionInputValue::from(v)),
            })
            .collect();
        let outputs = session.run(named).map_err(|e| self.run_err(e))?;
        self.kept_outputs(outputs)
    }

    fn kept_outputs(
        &self,
        outputs: SessionOutputs<'_>,
    ) -> Result<Vec<(String, super::Tensor)>, BackendError> {
        outputs
            .into_iter()
            .map(|(name, value)| {
                let shape = match value.dtype().tensor_type() {
                    Some(TensorElementType::Float32 | TensorElementType::Int64) => value
                        .shape()
                        .iter()
                        .map(|&d| d as usize)
                        .collect(),
                    other => {
                        return Err(BackendError::DType(format!(
                            "graph {}: output `{name}` is {other:?}; the ort backend returns f32 and i64 tensors",
                            self.graph
                        )))
                    }
                };
                let kept = BackendTensor::new(shape, BackendValue::Ort(Arc::new(value)));
                Ok((name.to_string(), super::Tensor::Backend(kept)))
            })
            .collect()
    }
}

/// A host array of an ort value (plain runs leave every output in host memory).
pub(super) fn to_host(value: &DynValue) -> Result<TensorValue, BackendError> {
    host_array(value)
}

fn host_array<T: TensorValueTypeMarker + ?Sized>(
    value: &Value<T>,
) -> Result<TensorValue, BackendError> {
    let read_err = |e: ort::Error| BackendError::Read(e.to_string());
    match value.dtype().tensor_type() {
        Some(TensorElementType::Float32) => Ok(TensorValue::F32(
            value
                .try_extract_array::<f32>()
                .map_err(read_err)?
                .to_owned(),
        )),
        Some(TensorElementType::Int64) => Ok(TensorValue::I64(
            value
                .try_extract_array::<i64>()
                .map_err(read_err)?
                .to_owned(),
        )),
        other => Err(BackendError::DType(format!(
            "{other:?}; the ort backend returns f32 and i64 tensors"
        ))),
    }
}

impl GraphSession for OrtSession {
    fn input_names(&self) -> &[String] {
        &self.input_names
    }

    fn run(&self, inputs: &[(&str, &super::Tensor)]) -> Result<GraphOutputs, BackendError> {
        let inputs = self.ordered_inputs(inputs)?;
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let values = self.plain_run(&mut session, inputs)?;
        Ok(GraphOutputs::new(self.graph.clone(), values))
    }
}
