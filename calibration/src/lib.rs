//! Lower-precision weights: the encodings the graph builder writes for `--precision fp16`
//! and `--precision int8`. Where each precision is used in a graph is `vjx_graphs::nn`'s job;
//! the accuracy each reaches against upstream FP32 is measured by the parity tests
//! (`tests/vla_jepa_parity.rs`) and, at full size, by `bench/compare.sh` (docs/precision.md).

pub mod fp16;
pub mod int8;
