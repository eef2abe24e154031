//! What flows between graphs: host arrays the pipelines make and read ([`TensorValue`]), and
//! values a backend keeps ([`BackendTensor`]), so that one graph's output feeds the next graph
//! without a round trip through host memory.

use super::BackendError;
use ndarray::ArrayD;
use std::sync::Arc;

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

/// A graph input or output: in host memory, or kept by the backend that made it.
#[derive(Debug, Clone)]
pub enum Tensor {
    Host(TensorValue),
    Backend(BackendTensor),
}

impl Tensor {
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Self {
        Tensor::Host(TensorValue::f32(shape, data))
    }

    pub fn i64(shape: &[usize], data: Vec<i64>) -> Self {
        Tensor::Host(TensorValue::i64(shape, data))
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            Tensor::Host(t) => t.shape(),
            Tensor::Backend(t) => t.shape(),
        }
    }

    /// A host copy (none for a host tensor, or a backend value no one else holds).
    pub fn into_host(self) -> Result<TensorValue, BackendError> {
        match self {
            Tensor::Host(t) => Ok(t),
            Tensor::Backend(t) => t.into_host(),
        }
    }

    pub fn to_host(&self) -> Result<TensorValue, BackendError> {
        self.clone().into_host()
    }

    pub fn into_f32(self) -> Result<ArrayD<f32>, BackendError> {
        self.into_host()?.into_f32()
    }
}

impl From<TensorValue> for Tensor {
    fn from(t: TensorValue) -> Self {
        Tensor::Host(t)
    }
}

impl From<ArrayD<f32>> for Tensor {
    fn from(a: ArrayD<f32>) -> Self {
        Tensor::Host(TensorValue::F32(a))
    }
}

impl From<ArrayD<i64>> for Tensor {
    fn from(a: ArrayD<i64>) -> Self {
        Tensor::Host(TensorValue::I64(a))
    }
}

/// A value one backend made and keeps (in host memory for tract and ONNX Runtime on the CPU,
/// in device memory for ONNX Runtime with IO binding on a GPU). Cloning shares it.
#[derive(Clone)]
pub struct BackendTensor {
    shape: Vec<usize>,
    value: BackendValue,
}

#[derive(Clone)]
pub(super) enum BackendValue {
    Tract(Arc<tract_onnx::prelude::Tensor>),
    Ort(Arc<ort::value::DynValue>),
}

impl std::fmt::Debug for BackendTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.value {
            BackendValue::Tract(_) => "tract",
            BackendValue::Ort(_) => "ort",
        };
        write!(f, "BackendTensor({backend}, {:?})", self.shape)
    }
}

impl BackendTensor {
    pub(super) fn new(shape: Vec<usize>, value: BackendValue) -> Self {
        BackendTensor { shape, value }
    }

    pub(super) fn value(&self) -> &BackendValue {
        &self.value
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Which backend holds the value.
    pub fn backend(&self) -> &'static str {
        match self.value {
            BackendValue::Tract(_) => "tract",
            BackendValue::Ort(_) => "ort",
        }
    }

    pub fn into_host(self) -> Result<TensorValue, BackendError> {
        match self.value {
            BackendValue::Tract(t) => super::tract::to_host(t),
            BackendValue::Ort(v) => super::ort::to_host(&v),
        }
    }
}

/// Named outputs of one graph run.
#[derive(Debug)]
pub struct GraphOutputs {
    graph: String,
    values: Vec<(String, Tensor)>,
}

impl GraphOutputs {
    pub fn new(graph: impl Into<String>, values: Vec<(String, Tensor)>) -> Self {
        GraphOutputs {
            graph: graph.into(),
            values,
        }
    }

    /// Removes output `name`; an error naming the graph and the output when it is not there.
    pub fn take(&mut self, name: &str) -> Result<Tensor, BackendError> {
        let index = self
            .values
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| BackendError::MissingOutput {
                graph: self.graph.clone(),
                name: name.to_string(),
            })?;
        Ok(self.values.swap_remove(index).1)
    }

    /// Removes output `name` and reads it into a host f32 array.
    pub fn take_f32(&mut self, name: &str) -> Result<ArrayD<f32>, BackendError> {
        self.take(name)?.into_f32()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(|(n, _)| n.as_str())
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl IntoIterator for GraphOutputs {
    type Item = (String, Tensor);
    type IntoIter = std::vec::IntoIter<(String, Tensor)>;
    fn into_iter(self) -> Self::IntoIter {
        self.values.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs() -> GraphOutputs {
        GraphOutputs::new(
            "step.onnx",
            vec![
                ("velocity".into(), Tensor::f32(&[2], vec![0.5, -1.0])),
                ("ids".into(), Tensor::i64(&[1], vec![7])),
            ],
        )
    }

    #[test]
    fn an_output_is_taken_once() {
        let mut out = outputs();
        assert_eq!(
            out.take_f32("velocity")
                .unwrap()
                .into_raw_vec_and_offset()
                .0,
            [0.5, -1.0]
        );
        match out.take("velocity") {
            Err(BackendError::MissingOutput { graph, name }) => {
                assert_eq!((graph.as_str(), name.as_str()), ("step.onnx", "velocity"));
            }
            other => panic!("expected MissingOutput, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_output_error_names_the_graph_and_the_output() {
        let err = outputs().take("new_key_0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "graph step.onnx: output `new_key_0` missing"
        );
    }

    #[test]
    fn reading_an_i64_output_as_f32_is_a_type_error() {
        assert!(matches!(
            outputs().take_f32("ids"),
            Err(BackendError::DType(_))
        ));
    }

    #[test]
    fn a_host_tensor_reads_back_as_itself() {
        let t = Tensor::f32(&[1, 2], vec![3.0, 4.0]);
        assert_eq!(t.shape(), &[1, 2]);
        assert_eq!(
            t.to_host().unwrap(),
            TensorValue::f32(&[1, 2], vec![3.0, 4.0])
        );
    }
}
