#![no_main]
//! Arbitrary bytes as a checkpoint's model.safetensors: open, then read every tensor.

#[path = "scratch.rs"]
mod scratch;

use libfuzzer_sys::fuzz_target;
use vjx_exporter::safetensors_weights::SafetensorsWeights;

fuzz_target!(|data: &[u8]| {
    let path = scratch::scratch("model.safetensors");
    std::fs::write(&path, data).unwrap();
    if let Ok(weights) = SafetensorsWeights::open(&path) {
        let names: Vec<String> = weights.names().iter().map(|n| n.to_string()).collect();
        for name in names.iter().take(16) {
            let _ = weights.tensor_f32(name);
        }
    }
});
