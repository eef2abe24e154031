#![no_main]
//! Arbitrary bytes as a `--noise` .npy file, read as f32 and as i64.

#[path = "scratch.rs"]
mod scratch;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = scratch::scratch("noise.npy");
    std::fs::write(&path, data).unwrap();
    let _ = vjx_runtime::npy::read_f32(&path);
    let _ = vjx_runtime::npy::read_i64(&path);
});
