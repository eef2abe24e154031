//! Lower-precision exports (FP16 weights, INT8 QDQ graphs, TensorRT calibration caches) and
//! their accuracy reports against the FP32 export. Empty until the FP16/INT8 issues land.
