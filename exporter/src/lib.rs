//! vjx-exporter: resolves a checkpoint, reads its safetensors memory-mapped, builds the
//! policy's graphs and writes an export dir (ONNX + external data + manifest) atomically.

pub mod checkpoint;
pub mod dexvla;
pub mod export;
pub mod lerobot_processors;
pub mod lingbot_va;
pub mod policy_tokenizer;
pub mod progress;
pub mod safetensors_weights;
pub mod staging;
pub mod vla_jepa;
