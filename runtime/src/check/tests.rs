//! The check on small hand-built graphs: one rule each.

use super::ort_fallback::Provider;
use super::report::GraphReport;
use super::*;
use crate::backend::InputRange;
use vjx_graphs::builder::{Attr, DType, Dim, GraphBuilder, Value};

/// Writes the graph `build` makes to `<dir>/<stem>.onnx`, then lets `edit` change the proto
/// (what the builder cannot write: other domains, other opsets).
fn write_graph(
    dir: &Path,
    stem: &str,
    build: impl FnOnce(&mut GraphBuilder),
    edit: impl FnOnce(&mut ModelProto),
) -> PathBuf {
    let mut g = GraphBuilder::new(stem);
    build(&mut g);
    let path = g.finish().write(dir, stem).unwrap().graph_file;
    let mut model = ModelProto::decode(std::fs::read(&path).unwrap().as_slice()).unwrap();
    edit(&mut model);
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

/// `y = op(x)` on an f32 `[rows, 16]` input.
fn unary(dir: &Path, op: &str) -> PathBuf {
    write_graph(
        dir,
        "unary",
        |g| {
            let x = g.input("x", DType::F32, &[Dim::from("rows"), Dim::from(16usize)]);
            let y = g.op(op, &[&x], vec![]);
            g.output(
                &y,
                "y",
                DType::F32,
                &[Dim::from("rows"), Dim::from(16usize)],
            );
        },
        |_| {},
    )
}

fn check(path: &Path, target: Target) -> GraphReport {
    check_model(path, target, None).unwrap()
}

fn only_unsupported(report: &GraphReport) -> &report::UnsupportedNode {
    assert_eq!(
        report.unsupported.len(),
        1,
        "expected exactly one refused node: {:#?}",
        report.unsupported
    );
    &report.unsupported[0]
}

#[test]
fn an_op_without_importer_is_refused_on_every_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = unary(dir.path(), "Det");
    for target in Target::ALL {
        let report = check(&path, target);
        let node = only_unsupported(&report);
        assert_eq!(node.op, "Det");
        assert!(
            node.reason.contains("no importer for Det"),
            "{}",
            node.reason
        );
        assert_eq!(
            node.fallback,
            Provider::Cpu,
            "the CUDA provider has no Det kernel"
        );
    }
}

#[test]
fn a_contrib_domain_op_is_refused_and_runs_where_ort_has_its_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_graph(
        dir.path(),
        "contrib",
        |g| {
            let x = g.input("x", DType::F32, &[Dim::from(4usize), Dim::from(16usize)]);
            let y = g.op("Gelu", &[&x], vec![]);
            g.output(
                &y,
                "y",
                DType::F32,
                &[Dim::from(4usize), Dim::from(16usize)],
            );
        },
        |m| {
            let graph = m.graph.as_mut().unwrap();
            graph.node[0].domain = Some("com.microsoft".into());
            m.opset_import.push(vjx_graphs::onnx::OperatorSetIdProto {
                domain: Some("com.microsoft".into()),
                version: Some(1),
            });
        },
    );
    let report = check(&path, Target::TensorRt103);
    let node = only_unsupported(&report);
    assert_eq!(
        (node.op.as_str(), node.domain.as_str()),
        ("Gelu", "com.microsoft")
    );
    assert!(
        node.reason.contains("domain `com.microsoft`"),
        "{}",
        node.reason
    );
    assert_eq!(
        node.fallback,
        Provider::Cuda,
        "com.microsoft Gelu has a CUDA kernel for f32"
    );
}

#[test]
fn matmul_on_i64_is_refused_by_its_type_and_falls_to_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_graph(
        dir.path(),
        "int_matmul",
        |g| {
            let a = g.input("a", DType::I64, &[Dim::from(2usize), Dim::from(3usize)]);
            let b = g.input("b", DType::I64, &[Dim::from(3usize), Dim::from(2usize)]);
            let y = g.matmul(&a, &b);
            g.output(&y, "y", DType::I64, &[Dim::from(2usize), Dim::from(2usize)]);
        },
        |_| {},
    );
    let on_10 = check(&path, Target::TensorRt103);
    let node = only_unsupported(&on_10);
    assert_eq!(node.reason, "TensorRT 10.3 takes MatMul on f32/f16/bf16 only, input 0 is i64; TensorRT 10.3 takes MatMul on f32/f16/bf16 only, input 1 is i64");
    assert_eq!(node.fallback, Provider::Cpu);
    assert!(
        node.fallback_reason.contains("takes bf16/f64/f32/f16"),
        "{}",
        node.fallback_reason
    );

    let on_8 = check(&path, Target::TensorRt86);
    assert!(only_unsupported(&on_8)
        .reason
        .contains("input 0 is i64 (imported as i32)"));
}

#[test]
fn bf16_exists_on_tensorrt_10_but_not_on_8() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_graph(
        dir.path(),
        "bf16",
        |g| {
            let x = g.input("x", DType::F32, &[Dim::from(8usize)]);
            let xb = g.op("Cast", &[&x], vec![("to", Attr::Int(16))]);
            let y = g.relu(&xb);
            let y = g.cast(&y, DType::F32);
            g.output(&y, "y", DType::F32, &[Dim::from(8usize)]);
        },
        |_| {},
    );
    assert!(check(&path, Target::TensorRt103).unsupported.is_empty());
    let on_86 = check(&path, Target::TensorRt86);
    let ops: Vec<&str> = on_86.unsupported.iter().map(|u| u.op.as_str()).collect();
    assert_eq!(
        ops,
        ["Cast", "Relu", "Cast"],
        "every node touching bf16: {:#?}",
        on_86.unsupported
    );
    assert!(on_86.unsupported[1]
        .reason
        .contains("input 0 is bf16, a type TensorRT 8.6 does not have"));
}

#[test]
fn i64_on_tensorrt_8_is_taken_as_i32_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_graph(
        dir.path(),
        "ids",
        |g| {
            let ids = g.input("ids", DType::I64, &[Dim::from("n")]);
            let one = g.const_i64(&[1]);
            let next = g.add(&ids, &one);
            g.output(&next, "next", DType::I64, &[Dim::from("n")]);
        },
        |_| {},
    );
    let on_86 = check(&path, Target::TensorRt86);
    assert!(on_86.unsupported.is_empty(), "{:#?}", on_86.unsupported);
    assert_eq!(on_86.notes.len(), 1);
    assert!(
        on_86.notes[0].starts_with("TensorRT 8.6 has no i64, so these are imported as i32"),
        "{}",
        on_86.notes[0]
    );
    assert!(on_86.notes[0].contains("`ids`"));
    assert!(
        check(&path, Target::TensorRt103).notes.is_empty(),
        "TensorRT 10 has i64"
    );
}

#[test]
fn layer_normalization_is_refused_on_8_5_and_taken_from_8_6() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_graph(
        dir.path(),
        "norm",
        |g| {
            let x = g.input("x", DType::F32, &[Dim::from("rows"), Dim::from(8usize)]);
            let scale = g.weight("scale", &[8], vec![1.0; 8]);
            let bias = g.weight("bias", &[8], vec![0.0; 8]);
            let y = g.op(
                "LayerNormalization",
                &[&x, &scale, &bias],
                vec![("axis", Attr::Int(-1))],
            );
            g.output(&y, "y", DType::F32, &[Dim::from("rows"), Dim::from(8usize)]);
        },
        |_| {},
    );
    let on_85 = check(&path, Target::TensorRt85);
    let node = only_unsupported(&on_85);
    assert_eq!(
        node.reason,
        "TensorRT 8.5's ONNX parser has no importer for LayerNormalization"
    );
    assert_eq!(
        node.fallback,
        Provider::Cuda,
        "the CUDA provider has LayerNormalization for f32"
    );
    assert!(check(&path, Target::TensorRt86).unsupported.is_empty());
    assert!(check(&path, Target::TensorRt103).unsupported.is_empty());
}

#[test]
fn a_resize_mode_tensorrt_lacks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_graph(
        dir.path(),
        "resize",
        |g| {
            let x = g.input(
                "x",
                DType::F32,
                &[
                    Dim::from(1usize),
                    Dim::from(3usize),
                    Dim::from(8usize),
                    Dim::from(8usize),
                ],
            );
            let scales = g.const_f32("scales", &[4], vec![1.0, 1.0, 2.0, 2.0]);
            let empty = Value(String::new());
            let y = g.op(
                "Resize",
                &[&x, &empty, &scales],
                vec![("mode", Attr::Str("cubic".into()))],
            );
            g.output(
                &y,
                "y",
                DType::F32,
                &[
                    Dim::from(1usize),
                    Dim::from(3usize),
                    Dim::from(16usize),
                    Dim::from(16usize),
                ],
            );
        },
        |_| {},
    );
    let report = check(&path, Target::TensorRt103);
    assert_eq!(
        only_unsupported(&report).reason,
        "mode `cubic` is not supported (supported: nearest, linear)"
    );
}

#[test]
fn slice_axes_from_a_tensor_are_refused_before_10_3() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_graph(
        dir.path(),
        "slice",
        |g| {
            let x = g.input("x", DType::F32, &[Dim::from(4usize), Dim::from(6usize)]);
            let axes = g.input("axes", DType::I64, &[Dim::from(1usize)]);
            let start = g.const_i64(&[0]);
            let end = g.const_i64(&[2]);
            let y = g.op("Slice", &[&x, &start, &end, &axes], vec![]);
            g.output(&y, "y", DType::F32, &[Dim::from("r"), Dim::from("c")]);
        },
        |_| {},
    );
    let on_86 = check(&path, Target::TensorRt86);
    assert_eq!(
        only_unsupported(&on_86).reason,
        "axes (`axes`) must be an initializer"
    );
    assert!(check(&path, Target::TensorRt103).unsupported.is_empty());
}

#[test]
fn an_opset_outside_the_target_range_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_graph(
        dir.path(),
        "opset19",
        |g| {
            let x = g.input("x", DType::F32, &[Dim::from(4usize)]);
            let y = g.relu(&x);
            g.output(&y, "y", DType::F32, &[Dim::from(4usize)]);
        },
        |m| m.opset_import[0].version = Some(19),
    );
    let on_86 = check(&path, Target::TensorRt86);
    assert_eq!((on_86.opset, on_86.opset_supported), (19, false));
    assert!(on_86.falls_off_tensorrt());
    assert!(check(&path, Target::TensorRt103).opset_supported);
}

#[test]
fn dynamic_inputs_are_listed_with_the_profile_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_graph(
        dir.path(),
        "dynamic",
        |g| {
            let x = g.input("x", DType::F32, &[Dim::from("rows"), Dim::from(16usize)]);
            let w = g.input("w", DType::F32, &[Dim::from(16usize), Dim::from(4usize)]);
            let y = g.matmul(&x, &w);
            g.output(&y, "y", DType::F32, &[Dim::from("rows"), Dim::from(4usize)]);
        },
        |_| {},
    );
    let without = check(&path, Target::TensorRt103);
    assert_eq!(without.dynamic_inputs.len(), 1, "only `x` has an open dim");
    assert_eq!(without.dynamic_inputs[0].name, "x");
    assert_eq!(
        without.dynamic_inputs[0].shape,
        vec![Dim::from("rows"), Dim::from(16usize)]
    );
    assert_eq!(without.dynamic_inputs[0].profile, None);

    let profile = ShapeProfile {
        inputs: vec![InputRange {
            name: "x".into(),
            min: vec![1, 16],
            opt: vec![8, 16],
            max: vec![64, 16],
        }],
    };
    let with = check_model(&path, Target::TensorRt103, Some(&profile)).unwrap();
    let range = with.dynamic_inputs[0]
        .profile
        .as_ref()
        .expect("the profile names `x`");
    assert_eq!(
        (range.min.clone(), range.opt.clone(), range.max.clone()),
        (vec![1, 16], vec![8, 16], vec![64, 16])
    );
}

#[test]
fn the_known_facts_of_the_tables_hold() {
    use tensorrt_support::op_types;
    for target in Target::ALL {
        assert_eq!(op_types(target, "DynamicQuantizeLinear"), None);
        assert_eq!(op_types(target, "MatMulInteger"), None);
        assert!(op_types(target, "DequantizeLinear")
            .unwrap()
            .contains(&DataType::Int8));
        assert!(!op_types(target, "DequantizeLinear")
            .unwrap()
            .contains(&DataType::Uint8));
    }
    assert_eq!(op_types(Target::TensorRt85, "LayerNormalization"), None);
    assert!(op_types(Target::TensorRt86, "LayerNormalization").is_some());
    assert_eq!(
        (Target::TensorRt86.opsets(), Target::TensorRt103.opsets()),
        (7..=17, 9..=20)
    );
}

#[test]
fn an_unknown_target_is_refused_by_name() {
    let err = "tensorrt-9.9".parse::<Target>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown target `tensorrt-9.9` (available: tensorrt-8.5, tensorrt-8.6, tensorrt-10.3)"
    );
    assert_eq!(
        "tensorrt-8.5".parse::<Target>().unwrap(),
        Target::TensorRt85
    );
}

#[test]
fn bad_files_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let err = check_export(&missing, Target::TensorRt103).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: no such directory", missing.display())
    );

    let err = check_export(dir.path(), Target::TensorRt103).unwrap_err();
    assert!(
        matches!(err, CheckError::Manifest(ManifestError::Missing { .. })),
        "{err}"
    );

    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"\xff\xff\xff this is not a protobuf").unwrap();
    let err = check_model(&garbage, Target::TensorRt103, None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: not an ONNX model", garbage.display())),
        "{err}"
    );

    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    let err = check_model(&empty, Target::TensorRt103, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: not an ONNX model (it holds no graph nodes)",
            empty.display()
        )
    );
}
