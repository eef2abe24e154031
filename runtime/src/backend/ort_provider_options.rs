//! The TensorRT and CUDA provider option keys vjx sets, each with the first ONNX Runtime release
//! that accepts it, and the filter that keeps a loaded release from seeing a key it does not know.
//!
//! `ort`'s `TensorRT`/`CUDA` builders hand their keys and values, as strings, to
//! `UpdateTensorRTProviderOptions`/`UpdateCUDAProviderOptions`. ONNX Runtime parses them with
//! `ProviderOptionsParser::Parse` (onnxruntime/core/framework/provider_options_utils.h), which
//! fails on any key it has no parser for ("Unknown provider option"), so one key too new for the
//! loaded library would fail the whole provider.

use super::ort_version::OrtVersion;
use std::collections::HashSet;
use std::sync::Mutex;

/// An execution provider whose options are filtered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    TensorRt,
    Cuda,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::TensorRt => "TensorrtExecutionProvider",
            Provider::Cuda => "CUDAExecutionProvider",
        }
    }

    fn known_keys(self) -> &'static [KnownKey] {
        match self {
            Provider::TensorRt => TENSORRT_KEYS,
            Provider::Cuda => CUDA_KEYS,
        }
    }
}

/// An option key and the oldest release known to accept it.
#[derive(Debug, Clone, Copy)]
pub struct KnownKey {
    pub key: &'static str,
    pub since: OrtVersion,
}

const fn known(key: &'static str, since: OrtVersion) -> KnownKey {
    KnownKey { key, since }
}

/// Present in 1.16.3, the oldest release checked; older releases are refused before this matters.
const V1_16_3: OrtVersion = OrtVersion::new(1, 16, 3);
const V1_17_0: OrtVersion = OrtVersion::new(1, 17, 0);

/// The TensorRT keys vjx sets. Source: `tensorrt::provider_option_names` and the parser built in
/// `TensorrtExecutionProviderInfo::FromProviderOptions`,
/// onnxruntime/core/providers/tensorrt/tensorrt_execution_provider_info.cc. The release of each
/// key is that of the tag whose built provider first carries it: every key below is a string in
/// `libonnxruntime_providers_tensorrt.so` of PyPI's onnxruntime-gpu 1.17.0 (tag v1.17.0), 1.25.1
/// and 1.31.1; the two marked 1.17.0 are absent from 1.16.3's (tag v1.16.3).
/// `trt_engine_cache_prefix` came with microsoft/onnxruntime#19083 (January 2024). No key here
/// was removed between 1.17.0 and 1.31.1.
pub const TENSORRT_KEYS: &[KnownKey] = &[
    known("device_id", V1_16_3),
    known("trt_max_workspace_size", V1_16_3),
    known("trt_fp16_enable", V1_16_3),
    known("trt_layer_norm_fp32_fallback", V1_16_3),
    known("trt_engine_cache_enable", V1_16_3),
    known("trt_engine_cache_path", V1_16_3),
    known("trt_engine_cache_prefix", V1_17_0),
    known("trt_timing_cache_enable", V1_16_3),
    known("trt_timing_cache_path", V1_17_0),
    known("trt_profile_min_shapes", V1_16_3),
    known("trt_profile_opt_shapes", V1_16_3),
    known("trt_profile_max_shapes", V1_16_3),
];

/// The CUDA keys vjx sets. Source: `provider_option_names::kDeviceId`,
/// onnxruntime/core/providers/cuda/cuda_execution_provider_info.cc, there since its first option
/// parser (before 1.8); a string in `libonnxruntime_providers_cuda.so` of onnxruntime-gpu 1.16.3
/// and 1.17.0.
pub const CUDA_KEYS: &[KnownKey] = &[known("device_id", V1_16_3)];

/// The options one provider gets from one library version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilteredOptions {
    /// Passed to ONNX Runtime, in the order given.
    pub kept: Vec<(&'static str, String)>,
    /// Keys the version does not accept (or that are missing from the table), not passed.
    pub left_out: Vec<&'static str>,
}

/// Keeps the options `version` accepts. A key missing from the table is left out, never passed
/// blind.
pub fn for_version(
    provider: Provider,
    options: Vec<(&'static str, String)>,
    version: OrtVersion,
) -> FilteredOptions {
    let table = provider.known_keys();
    let (mut kept, mut left_out) = (Vec::new(), Vec::new());
    for (key, value) in options {
        match table.iter().find(|k| k.key == key) {
            Some(k) if k.since <= version => kept.push((key, value)),
            _ => left_out.push(key),
        }
    }
    FilteredOptions { kept, left_out }
}

/// Says on stderr, once per provider and process, which options `version` did not get.
pub fn log_left_out(provider: Provider, version: OrtVersion, left_out: &[&'static str]) {
    static LOGGED: Mutex<Option<HashSet<Provider>>> = Mutex::new(None);
    if left_out.is_empty() {
        return;
    }
    let mut logged = LOGGED.lock().unwrap_or_else(|e| e.into_inner());
    if logged.get_or_insert_with(HashSet::new).insert(provider) {
        eprintln!(
            "ort: ONNX Runtime {version} does not know these {} options, left out: {}",
            provider.name(),
            left_out.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(keys: &[&'static str]) -> Vec<(&'static str, String)> {
        keys.iter().map(|k| (*k, "1".to_string())).collect()
    }

    #[test]
    fn the_oldest_supported_release_gets_every_tensorrt_key() {
        let all: Vec<&'static str> = TENSORRT_KEYS.iter().map(|k| k.key).collect();
        let filtered = for_version(Provider::TensorRt, options(&all), OrtVersion::new(1, 17, 0));
        assert!(filtered.left_out.is_empty(), "{:?}", filtered.left_out);
        assert_eq!(filtered.kept.len(), all.len());
    }

    #[test]
    fn a_release_older_than_a_key_does_not_get_it() {
        let given = options(&[
            "trt_fp16_enable",
            "trt_engine_cache_prefix",
            "trt_timing_cache_path",
        ]);
        let filtered = for_version(Provider::TensorRt, given, OrtVersion::new(1, 16, 3));
        assert_eq!(filtered.kept, vec![("trt_fp16_enable", "1".to_string())]);
        assert_eq!(
            filtered.left_out,
            vec!["trt_engine_cache_prefix", "trt_timing_cache_path"]
        );
    }

    #[test]
    fn a_key_missing_from_the_table_is_left_out() {
        let filtered = for_version(
            Provider::Cuda,
            options(&["device_id", "use_tf32"]),
            OrtVersion::new(1, 31, 1),
        );
        assert_eq!(filtered.kept, vec![("device_id", "1".to_string())]);
        assert_eq!(filtered.left_out, vec!["use_tf32"]);
    }

    #[test]
    fn kept_options_keep_their_order_and_values() {
        let given = vec![
            ("trt_max_workspace_size", "1024".to_string()),
            ("device_id", "2".to_string()),
        ];
        let filtered = for_version(Provider::TensorRt, given.clone(), OrtVersion::new(1, 25, 1));
        assert_eq!(filtered.kept, given);
    }
}
