//! vjx-graphs: a small ONNX graph builder (ops in, `ModelProto` out) and one module per
//! exported submodule. Each model module reads its config from the checkpoint's own
//! config.json and names initializers after the checkpoint's weight names.

pub mod blocks;
pub mod builder;
pub mod dexvla;
pub mod half_everywhere;
pub mod lingbot_va;
pub mod nn;
pub mod onnx;
pub mod qwen2_vl;
pub mod qwen3_vl;
pub mod umt5;
pub mod vla_jepa;
pub mod wan_vae;
pub mod weights;

pub use builder::{
    DType, Dim, Encoding, GraphBuilder, Layout, Model, Precision, Value, WriteError, WrittenModel,
};
pub use weights::{WeightError, WeightSource, WeightTensor};
