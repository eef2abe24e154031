//! ONNX protobuf types, generated from `graphs/proto/onnx.proto` by `graphs/codegen`.
#![allow(clippy::all, missing_docs)]
include!("onnx.rs");
