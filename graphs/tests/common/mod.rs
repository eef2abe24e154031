//! Shared helpers for the graph parity tests: fixture paths, a safetensors weight source,
//! .npy loading, running a written graph on tract, and the relative L2 error.
#![allow(dead_code)]

use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};
use std::path::{Path, PathBuf};
use tract_onnx::prelude::*;
use vjx_graphs::{WeightError, WeightSource, WeightTensor};

pub fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/vla_jepa")
}

/// Every fixture case dir; panics (fails the test) when there are none.
pub fn fixture_cases() -> Vec<PathBuf> {
    let root = fixtures_root();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("fixtures missing at {}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("checkpoint/config.json").is_file())
        .collect();
    cases.sort();
    assert!(
        !cases.is_empty(),
        "no fixture cases under {}",
        root.display()
    );
    cases
}

/// The `obs_*` dirs of a case.
pub fn observations(case: &Path) -> Vec<PathBuf> {
    let mut obs: Vec<PathBuf> = std::fs::read_dir(case)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("obs_"))
        .collect();
    obs.sort();
    assert!(!obs.is_empty(), "no obs_* dirs in {}", case.display());
    obs
}

pub struct SafetensorsFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl SafetensorsFile {
    pub fn open(path: &Path) -> Self {
        SafetensorsFile {
            path: path.to_path_buf(),
            bytes: std::fs::read(path).unwrap(),
        }
    }
    fn tensors(&self) -> safetensors::SafeTensors<'_> {
        safetensors::SafeTensors::deserialize(&self.bytes).unwrap()
    }
}

impl WeightSource for SafetensorsFile {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
    fn contains(&self, name: &str) -> bool {
        self.tensors().tensor(name).is_ok()
    }
    fn get(&self, name: &str) -> Result<WeightTensor, WeightError> {
        let st = self.tensors();
        let view = st.tensor(name).map_err(|_| WeightError::Missing {
            name: name.to_string(),
            source_desc: self.describe(),
        })?;
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            safetensors::Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            safetensors::Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            safetensors::Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => panic!("unexpected dtype {other:?} for {name}"),
        };
        Ok(WeightTensor::new(view.shape().to_vec(), data))
    }
}

pub fn npy_f32(path: &Path) -> ArrayD<f32> {
    ndarray_npy::read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn npy_i64(path: &Path) -> ArrayD<i64> {
    ndarray_npy::read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// ‖out − ref‖ / ‖ref‖.
pub fn rel_l2(out: &[f32], reference: &[f32]) -> f64 {
    assert_eq!(out.len(), reference.len(), "length mismatch");
    let (mut num, mut den) = (0f64, 0f64);
    for (o, r) in out.iter().zip(reference) {
        num += ((*o - *r) as f64).powi(2);
        den += (*r as f64).powi(2);
    }
    (num / den.max(1e-30)).sqrt()
}

/// Inputs for [`run_graph`].
pub enum Input {
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
}

pub fn f32_input(shape: &[usize], data: Vec<f32>) -> Input {
    Input::F32(ArrayD::from_shape_vec(IxDyn(shape), data).unwrap())
}

pub fn i64_input(shape: &[usize], data: Vec<i64>) -> Input {
    Input::I64(ArrayD::from_shape_vec(IxDyn(shape), data).unwrap())
}

/// Runs a written graph on its inputs: [`run_graph`] or [`run_graph_as_written`].
pub type Runner = fn(&Path, Vec<Input>) -> Vec<ArrayD<f32>>;

/// The bar of a graph run with every layer in f16 (`vjx_graphs::half_everywhere`): the most
/// TensorRT's FP16 mode may do to an FP32 graph.
pub const FP16_EVERYWHERE_BAR: f64 = 1e-2;

/// Loads a written `.onnx` with tract (external data resolved next to it) and runs it once.
pub fn run_graph(onnx_path: &Path, inputs: Vec<Input>) -> Vec<ArrayD<f32>> {
    run_graph_planned(onnx_path, inputs, true)
}

/// [`run_graph`] with every node run as written: tract's optimizer fuses patterns such as
/// `mean(x·x)` into kernels that accumulate in f32, which would hide what an f16 graph computes.
pub fn run_graph_as_written(onnx_path: &Path, inputs: Vec<Input>) -> Vec<ArrayD<f32>> {
    run_graph_planned(onnx_path, inputs, false)
}

fn run_graph_planned(onnx_path: &Path, inputs: Vec<Input>, optimize: bool) -> Vec<ArrayD<f32>> {
    let mut model = tract_onnx::onnx()
        .model_for_path(onnx_path)
        .unwrap_or_else(|e| panic!("loading {}: {e:?}", onnx_path.display()));
    for (i, input) in inputs.iter().enumerate() {
        let fact = match input {
            Input::F32(a) => f32::fact(a.shape()),
            Input::I64(a) => i64::fact(a.shape()),
        };
        model.set_input_fact(i, fact.into()).unwrap();
    }
    let typed = if optimize {
        model.into_optimized()
    } else {
        model.into_typed()
    };
    let plan = typed.unwrap().into_runnable().unwrap();
    let tvalues: TVec<TValue> = inputs
        .into_iter()
        .map(|i| match i {
            Input::F32(a) => Tensor::from(a).into(),
            Input::I64(a) => Tensor::from(a).into(),
        })
        .collect();
    plan.run(tvalues)
        .unwrap()
        .into_iter()
        .map(|t| t.to_plain_array_view::<f32>().unwrap().to_owned())
        .collect()
}
