//! vjx-runtime: loads an export dir and runs its policy. Backends run the ONNX graphs;
//! preprocessing turns camera frames, state and task text into graph inputs; one pipeline per
//! policy strings the graphs together.

pub mod backend;
pub mod bench;
pub mod check;
pub mod npy;
pub mod policy;
pub mod preprocess;
pub mod sampler;

pub use vjx_format::{manifest, normalization, Manifest};
