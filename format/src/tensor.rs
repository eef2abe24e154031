//! The element types, shapes and precisions of exported graphs, as the manifest records them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F16,
    I64,
}

/// The arithmetic of a graph's linear layers and attention products. Norms, softmax, rotary
/// tables and residual sums stay f32 in every precision; graph inputs and outputs are f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Precision {
    #[default]
    #[serde(rename = "fp32")]
    F32,
    /// f16 weights and products, f32 accumulation where ONNX Runtime/TensorRT provide it.
    #[serde(rename = "fp16")]
    F16,
    /// int8 weights (per output channel) and ONNX's dynamic u8 quantization of the activations.
    #[serde(rename = "int8")]
    Int8,
}

impl Precision {
    pub const NAMES: [&'static str; 3] = ["fp32", "fp16", "int8"];

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "fp32",
            Precision::F16 => "fp16",
            Precision::Int8 => "int8",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fp32" | "f32" => Ok(Precision::F32),
            "fp16" | "f16" => Ok(Precision::F16),
            "int8" => Ok(Precision::Int8),
            other => Err(format!(
                "unknown precision `{other}` (available: fp32, fp16, int8)"
            )),
        }
    }
}

/// One dimension of a graph input or output: fixed, or named (symbolic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(i64),
    Named(String),
}

impl From<i64> for Dim {
    fn from(v: i64) -> Self {
        Dim::Fixed(v)
    }
}
impl From<usize> for Dim {
    fn from(v: usize) -> Self {
        Dim::Fixed(v as i64)
    }
}
impl From<&str> for Dim {
    fn from(v: &str) -> Self {
        Dim::Named(v.to_string())
    }
}

/// The description of one graph input or output, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<Dim>,
}
