//! Memory-mapped safetensors weights: conversion to f32, sharding, and every way a file can be bad.

use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use vjx_exporter::safetensors_weights::{SafetensorsWeights, ShardedWeights, WeightsError};
use vjx_graphs::weights::{WeightError, WeightSource};

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn bf16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
        .collect()
}

fn f16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect()
}

/// Writes `tensors` (name, dtype, shape, little-endian bytes) with the safetensors crate.
fn write_safetensors(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            (
                name.to_string(),
                TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// Writes a file byte by byte from a header string and the data that follows it.
fn write_raw(path: &Path, header: &str, data: &[u8]) {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

/// A file with one tensor of each float dtype and one integer tensor.
fn mixed_file(dir: &Path) -> PathBuf {
    let path = dir.join("mixed.safetensors");
    write_safetensors(
        &path,
        &[
            (
                "a.f32",
                Dtype::F32,
                vec![2, 2],
                f32_bytes(&[1.0, -2.5, 3.25, 1e-30]),
            ),
            (
                "b.bf16",
                Dtype::BF16,
                vec![3],
                bf16_bytes(&[1.5, -0.15625, 3.0e38]),
            ),
            ("c.f16", Dtype::F16, vec![2], f16_bytes(&[0.375, -65504.0])),
            ("d.i64", Dtype::I64, vec![1], 7i64.to_le_bytes().to_vec()),
        ],
    );
    path
}

#[test]
fn names_dtypes_and_shapes_come_from_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let weights = SafetensorsWeights::open(mixed_file(dir.path())).unwrap();
    assert_eq!(weights.names(), vec!["a.f32", "b.bf16", "c.f16", "d.i64"]);
    assert_eq!(weights.dtype("b.bf16"), Some(Dtype::BF16));
    assert_eq!(weights.shape("a.f32"), Some(&[2usize, 2][..]));
    assert_eq!(weights.dtype("nope"), None);
}

#[test]
fn f32_bf16_and_f16_convert_exactly_to_f32() {
    let dir = tempfile::tempdir().unwrap();
    let weights = SafetensorsWeights::open(mixed_file(dir.path())).unwrap();
    let a = weights.get("a.f32").unwrap();
    assert_eq!(
        (a.shape, a.data),
        (vec![2, 2], vec![1.0, -2.5, 3.25, 1e-30])
    );
    let b = weights.get("b.bf16").unwrap();
    let expected_b: Vec<f32> = [1.5f32, -0.15625, 3.0e38]
        .iter()
        .map(|v| half::bf16::from_f32(*v).to_f32())
        .collect();
    assert_eq!(b.data, expected_b);
    assert_eq!(weights.get("c.f16").unwrap().data, vec![0.375, -65504.0]);
}

#[test]
fn bf16_subnormals_convert_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("special.safetensors");
    let bits: [u16; 2] = [0x0001, 0x807f]; // the smallest and the largest negative subnormal
    let bytes: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    write_safetensors(&path, &[("x", Dtype::BF16, vec![2], bytes)]);
    let data = SafetensorsWeights::open(&path)
        .unwrap()
        .get("x")
        .unwrap()
        .data;
    let got: Vec<u32> = data.iter().map(|v| v.to_bits()).collect();
    assert_eq!(got, vec![0x0001_0000, 0x807f_0000]);
}

#[test]
fn a_nan_is_refused_naming_the_tensor_and_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.safetensors");
    let values = [0.5, 1.0, -2.0, 0.25, f32::NAN, 3.0];
    write_safetensors(&path, &[("w", Dtype::F32, vec![2, 3], f32_bytes(&values))]);
    let err = SafetensorsWeights::open(&path)
        .unwrap()
        .tensor_f32("w")
        .unwrap_err();
    assert!(
        matches!(&err, WeightsError::NonFinite { tensor, index, .. } if tensor == "w" && index == &[1, 1]),
        "{err}"
    );
    assert!(err.to_string().starts_with("`w[1, 1]` in "), "{err}");
}

#[test]
fn a_bf16_infinity_is_refused_as_a_weight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inf.safetensors");
    let bits: [u16; 3] = [0x3f80, 0x3f80, 0xff80]; // 1, 1, -inf
    let bytes: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    write_safetensors(&path, &[("b", Dtype::BF16, vec![3], bytes)]);
    let err = SafetensorsWeights::open(&path)
        .unwrap()
        .get("b")
        .unwrap_err();
    assert!(
        matches!(&err, WeightError::NonFinite { name, index, value, .. }
            if name == "b" && index == &[2] && *value == f32::NEG_INFINITY),
        "{err}"
    );
}

#[test]
fn tensors_at_odd_byte_offsets_are_read_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unaligned.safetensors");
    // A 1-byte U8 tensor first puts the f32 and bf16 data at odd offsets; the header
    // length (odd too) is not padded to 8 either.
    let header = r#"{"pad":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"F32","shape":[3],"data_offsets":[1,13]},"h":{"dtype":"BF16","shape":[2],"data_offsets":[13,17]}}"#;
    assert_eq!(header.len() % 2, 1, "test wants an odd header length");
    let mut data = vec![0xAB];
    data.extend(f32_bytes(&[0.1, -7.0, 123456.78]));
    data.extend(bf16_bytes(&[2.0, -0.5]));
    write_raw(&path, header, &data);

    let weights = SafetensorsWeights::open(&path).unwrap();
    assert_eq!(weights.get("w").unwrap().data, vec![0.1, -7.0, 123456.78]);
    assert_eq!(weights.get("h").unwrap().data, vec![2.0, -0.5]);
}

#[test]
fn get_shaped_checks_the_shape_the_graph_needs() {
    let dir = tempfile::tempdir().unwrap();
    let weights = SafetensorsWeights::open(mixed_file(dir.path())).unwrap();
    assert!(weights.get_shaped("a.f32", &[2, 2]).is_ok());
    let err = weights.get_shaped("a.f32", &[4]).unwrap_err();
    assert!(
        matches!(err, WeightError::Shape { ref name, .. } if name == "a.f32"),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.safetensors");
    let err = SafetensorsWeights::open(&path).unwrap_err();
    assert!(matches!(err, WeightsError::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_file_cut_short_in_its_data_is_truncated_with_both_lengths() {
    let dir = tempfile::tempdir().unwrap();
    let path = mixed_file(dir.path());
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() - 5]).unwrap();

    let err = SafetensorsWeights::open(&path).unwrap_err();
    match &err {
        WeightsError::Truncated {
            path: p,
            expected_bytes,
            actual_bytes,
        } => {
            assert_eq!(p, &path);
            assert_eq!(*expected_bytes, full.len() as u64);
            assert_eq!(*actual_bytes, full.len() as u64 - 5);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn a_file_cut_short_inside_its_header_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = mixed_file(dir.path());
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..20]).unwrap();
    let err = SafetensorsWeights::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            WeightsError::Truncated {
                actual_bytes: 20,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_file_shorter_than_the_length_prefix_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.safetensors");
    std::fs::write(&path, [1u8, 2, 3]).unwrap();
    let err = SafetensorsWeights::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            WeightsError::Truncated {
                expected_bytes: 8,
                actual_bytes: 3,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_header_that_is_not_json_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = mixed_file(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[8..20] {
        *b = b'#';
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = SafetensorsWeights::open(&path).unwrap_err();
    assert!(matches!(err, WeightsError::CorruptHeader { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn overlapping_data_offsets_are_a_corrupt_header_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("overlap.safetensors");
    let header = r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    write_raw(&path, header, &[0u8; 12]);
    let err = SafetensorsWeights::open(&path).unwrap_err();
    assert!(matches!(err, WeightsError::CorruptHeader { .. }), "{err:?}");
    assert!(err.to_string().contains("`y`"), "{err}");
}

#[test]
fn offsets_that_disagree_with_dtype_and_shape_are_a_corrupt_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("badsize.safetensors");
    let header = r#"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
    write_raw(&path, header, &[0u8; 8]);
    let err = SafetensorsWeights::open(&path).unwrap_err();
    assert!(matches!(err, WeightsError::CorruptHeader { .. }), "{err:?}");
}

#[test]
fn a_non_safetensors_file_is_a_corrupt_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, br#"{"hidden_size": 2048, "num_layers": 28}"#).unwrap();
    let err = SafetensorsWeights::open(&path).unwrap_err();
    assert!(matches!(err, WeightsError::CorruptHeader { .. }), "{err:?}");
}

#[test]
fn an_integer_tensor_is_an_unsupported_dtype_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let weights = SafetensorsWeights::open(mixed_file(dir.path())).unwrap();
    let err = weights.tensor_f32("d.i64").unwrap_err();
    assert!(
        matches!(&err, WeightsError::UnsupportedDtype { tensor, dtype, .. } if tensor == "d.i64" && dtype == "I64"),
        "{err:?}"
    );
    let err = weights.get("d.i64").unwrap_err();
    assert!(
        matches!(&err, WeightError::Invalid { name, .. } if name == "d.i64"),
        "{err}"
    );
    assert!(err.to_string().contains("I64"), "{err}");
}

#[test]
fn a_missing_tensor_is_reported_as_missing_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = mixed_file(dir.path());
    let weights = SafetensorsWeights::open(&path).unwrap();
    let err = weights.get("lm_head.weight").unwrap_err();
    assert!(
        matches!(&err, WeightError::Missing { name, .. } if name == "lm_head.weight"),
        "{err}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

fn write_two_shards(dir: &Path) {
    write_safetensors(
        &dir.join("model-00001-of-00002.safetensors"),
        &[("a", Dtype::F32, vec![1], f32_bytes(&[1.0]))],
    );
    write_safetensors(
        &dir.join("model-00002-of-00002.safetensors"),
        &[("b", Dtype::BF16, vec![2], bf16_bytes(&[2.0, 3.0]))],
    );
}

#[test]
fn a_sharded_checkpoint_serves_tensors_from_every_shard() {
    let dir = tempfile::tempdir().unwrap();
    write_two_shards(dir.path());
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        r#"{"metadata":{"total_size":8},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let weights = ShardedWeights::open_dir(dir.path()).unwrap();
    assert_eq!(weights.names(), vec!["a", "b"]);
    assert_eq!(weights.shard_paths().len(), 2);
    assert_eq!(weights.get("a").unwrap().data, vec![1.0]);
    assert_eq!(weights.get("b").unwrap().data, vec![2.0, 3.0]);
    assert_eq!(weights.dtype("b"), Some(Dtype::BF16));
    assert!(!weights.contains("c"));
}

#[test]
fn a_single_model_file_is_preferred_over_an_index() {
    let dir = tempfile::tempdir().unwrap();
    write_safetensors(
        &dir.path().join("model.safetensors"),
        &[("only", Dtype::F32, vec![1], f32_bytes(&[4.0]))],
    );
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        "not even json",
    )
    .unwrap();
    let weights = ShardedWeights::open_dir(dir.path()).unwrap();
    assert_eq!(weights.names(), vec!["only"]);
}

#[test]
fn an_index_pointing_at_the_wrong_shard_names_tensor_and_shard() {
    let dir = tempfile::tempdir().unwrap();
    write_two_shards(dir.path());
    let index = dir.path().join("model.safetensors.index.json");
    std::fs::write(
        &index,
        r#"{"weight_map":{"a":"model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let err = ShardedWeights::open_index(&index).unwrap_err();
    assert!(
        matches!(&err, WeightsError::IndexedTensorMissing { tensor, .. } if tensor == "a"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("model-00002-of-00002.safetensors"),
        "{err}"
    );
}

#[test]
fn an_index_naming_an_absent_shard_reports_the_shard_path() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("model.safetensors.index.json");
    std::fs::write(&index, r#"{"weight_map":{"a":"gone.safetensors"}}"#).unwrap();
    let err = ShardedWeights::open_index(&index).unwrap_err();
    assert!(
        matches!(&err, WeightsError::NotFound { path } if path.ends_with("gone.safetensors")),
        "{err:?}"
    );
}

#[test]
fn an_index_that_is_not_json_is_a_bad_index() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("model.safetensors.index.json");
    std::fs::write(&index, "{weight_map:").unwrap();
    let err = ShardedWeights::open_index(&index).unwrap_err();
    assert!(matches!(err, WeightsError::BadIndex { .. }), "{err:?}");
}

#[test]
fn a_dir_without_weights_says_which_files_it_wanted() {
    let dir = tempfile::tempdir().unwrap();
    let err = ShardedWeights::open_dir(dir.path()).unwrap_err();
    assert!(
        matches!(err, WeightsError::NoWeightsInDir { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("model.safetensors") && message.contains("model.safetensors.index.json"),
        "{message}"
    );
}

// ---- golden fixtures ----

fn fixture_cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/vla_jepa");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("fixture dir {} is missing: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("checkpoint").is_dir())
        .collect();
    cases.sort();
    assert!(
        !cases.is_empty(),
        "no fixture cases under {}",
        root.display()
    );
    cases
}

#[test]
fn fixture_qwen_weights_are_bf16_and_convert_exactly() {
    for case in fixture_cases() {
        let weights = ShardedWeights::open_dir(case.join("checkpoint")).unwrap();
        let name = "model.qwen.model.model.language_model.layers.0.self_attn.q_proj.weight";
        assert_eq!(weights.dtype(name), Some(Dtype::BF16), "{}", case.display());
        let raw = weights.raw_bytes(name).unwrap();
        let expected: Vec<f32> = raw
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect();
        let tensor = weights.get(name).unwrap();
        assert_eq!(tensor.shape, weights.shape(name).unwrap());
        assert_eq!(tensor.data.len(), expected.len());
        let differing = tensor
            .data
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            differing,
            0,
            "{}: {differing} values differ",
            case.display()
        );
        assert!(
            tensor.data.iter().any(|v| *v != 0.0),
            "{}: all zero",
            case.display()
        );
    }
}

#[test]
fn fixture_action_head_weights_are_f32_and_every_tensor_converts() {
    for case in fixture_cases() {
        let weights = ShardedWeights::open_dir(case.join("checkpoint")).unwrap();
        let head: Vec<&str> = weights
            .names()
            .into_iter()
            .filter(|n| n.starts_with("model.action_model."))
            .collect();
        assert!(!head.is_empty(), "{}", case.display());
        for name in head {
            assert_eq!(
                weights.dtype(name),
                Some(Dtype::F32),
                "{name} in {}",
                case.display()
            );
        }
        for name in weights.names() {
            let t = weights
                .get(name)
                .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
            assert_eq!(t.data.len(), t.shape.iter().product::<usize>(), "{name}");
        }
    }
}

#[test]
fn a_tied_name_recorded_in_the_header_metadata_reads_the_kept_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tied.safetensors");
    let data = f32_bytes(&[1.0, 2.0]);
    let view = TensorView::new(Dtype::F32, vec![2], &data).unwrap();
    let metadata = std::collections::HashMap::from([
        (
            "embed_tokens.weight".to_string(),
            "lm_head.weight".to_string(),
        ),
        ("format".to_string(), "pt".to_string()),
    ]);
    safetensors::serialize_to_file(vec![("lm_head.weight", view)], Some(metadata), &path).unwrap();

    let weights = SafetensorsWeights::open(&path).unwrap();
    assert_eq!(weights.names(), vec!["lm_head.weight"]);
    assert!(weights.contains("embed_tokens.weight"));
    assert!(!weights.contains("format"));
    assert_eq!(
        weights.get("embed_tokens.weight").unwrap().data,
        vec![1.0, 2.0]
    );
    let sharded = ShardedWeights::from_single(weights);
    assert_eq!(
        sharded.get("embed_tokens.weight").unwrap().data,
        vec![1.0, 2.0]
    );
    assert_eq!(sharded.names(), vec!["lm_head.weight"]);
}

#[test]
fn fixture_tied_embedding_is_reachable_under_both_names() {
    for case in fixture_cases() {
        let weights = ShardedWeights::open_dir(case.join("checkpoint")).unwrap();
        let kept = weights.get("model.qwen.model.lm_head.weight").unwrap();
        let tied = weights
            .get("model.qwen.model.model.language_model.embed_tokens.weight")
            .unwrap();
        assert_eq!(kept, tied, "{}", case.display());
    }
}
