//! VLA-JEPA's own parts: the LeRobot policy config and the flow-matching DiT action head.

pub mod config;
pub mod dit;
