//! The ONNX Runtime backend: finds its library and reads its version, refuses one older than
//! 1.17, gives tract's numbers on the CPU, refuses a GPU device it cannot set up, and tells
//! TensorRT what the export's precision asks for. These tests need libonnxruntime
//! (scripts/install_onnxruntime.sh, then ORT_DYLIB_PATH); without it they fail with the list of
//! places looked. With VJX_EXPECT_ORT_VERSION set (CI runs them on several releases), the loaded
//! library must be that version.

use ndarray::ArrayD;
use std::path::{Path, PathBuf};
use vjx_graphs::builder::{DType, Dim, GraphBuilder};
use vjx_graphs::Precision;
use vjx_runtime::backend::ort::{Device, GpuOptions, OrtBackend, TensorRtGraph, TrtFp16};
use vjx_runtime::backend::ort_library::{
    check_version, find_library, library_version, open, runtime, OrtLibraryError, SearchPaths,
    MINIMUM_VERSION,
};
use vjx_runtime::backend::ort_version::OrtVersion;
use vjx_runtime::backend::tract::TractBackend;
use vjx_runtime::backend::{Backend, BackendError, GraphOutputs, Tensor, TensorValue};
use vjx_runtime::backend::{InputRange, ShapeProfile};

const FEATURES: usize = 16;
const CLASSES: usize = 32;

fn cpu_backend() -> OrtBackend {
    OrtBackend::new(Device::Cpu)
        .unwrap_or_else(|e| panic!("the ort backend needs ONNX Runtime: {e}"))
}

/// `probs = softmax(x @ w + b)` with `w` (2 KiB) in the external data file, and `next_ids = ids + 1`.
fn write_classifier(dir: &Path) -> PathBuf {
    let mut g = GraphBuilder::new("classifier");
    let x = g.input("x", DType::F32, &[Dim::from("rows"), Dim::from(FEATURES)]);
    let ids = g.input("ids", DType::I64, &[Dim::from("rows")]);
    let w = g.weight(
        "w",
        &[FEATURES, CLASSES],
        (0..FEATURES * CLASSES)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0)
            .collect(),
    );
    let b = g.weight(
        "b",
        &[CLASSES],
        (0..CLASSES).map(|i| i as f32 * 0.01 - 0.1).collect(),
    );
    let logits = g.matmul(&x, &w);
    let logits = g.add(&logits, &b);
    let probs = g.softmax(&logits, -1);
    g.output(
        &probs,
        "probs",
        DType::F32,
        &[Dim::from("rows"), Dim::from(CLASSES)],
    );
    let one = g.const_i64(&[1]);
    let next_ids = g.add(&ids, &one);
    g.output(&next_ids, "next_ids", DType::I64, &[Dim::from("rows")]);
    let written = g.finish().write(dir, "classifier").unwrap();
    assert!(
        written.data_file.is_some(),
        "the weight must live in the external data file"
    );
    written.graph_file
}

/// `y = x + x` over `[rows, CLASSES]`.
fn write_doubler(dir: &Path) -> PathBuf {
    let mut g = GraphBuilder::new("doubler");
    let shape = [Dim::from("rows"), Dim::from(CLASSES)];
    let x = g.input("x", DType::F32, &shape);
    let y = g.add(&x, &x);
    g.output(&y, "y", DType::F32, &shape);
    g.finish().write(dir, "doubler").unwrap().graph_file
}

fn classifier_inputs(rows: usize) -> Vec<(&'static str, Tensor)> {
    let x = (0..rows * FEATURES)
        .map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0)
        .collect();
    vec![
        ("x", Tensor::f32(&[rows, FEATURES], x)),
        (
            "ids",
            Tensor::i64(&[rows], (0..rows as i64).map(|i| i * 10 - 3).collect()),
        ),
    ]
}

fn refs<'t>(inputs: &'t [(&'static str, Tensor)]) -> Vec<(&'static str, &'t Tensor)> {
    inputs.iter().map(|(n, t)| (*n, t)).collect()
}

fn run(backend: &dyn Backend, graph: &Path, rows: usize) -> GraphOutputs {
    backend
        .load(graph)
        .unwrap()
        .run(&refs(&classifier_inputs(rows)))
        .unwrap()
}

fn f32_of(outputs: &mut GraphOutputs, name: &str) -> ArrayD<f32> {
    outputs.take_f32(name).unwrap()
}

fn rel_l2(got: &ArrayD<f32>, want: &ArrayD<f32>) -> f64 {
    let diff: f64 = got
        .iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - *w as f64).powi(2))
        .sum();
    let norm: f64 = want.iter().map(|w| (*w as f64).powi(2)).sum();
    (diff / norm).sqrt()
}

#[test]
fn cpu_gives_the_same_probabilities_as_tract() {
    let dir = tempfile::tempdir().unwrap();
    let graph = write_classifier(dir.path());
    let mut ort = run(&cpu_backend(), &graph, 5);
    let mut tract = run(&TractBackend::default(), &graph, 5);
    let (got, want) = (f32_of(&mut ort, "probs"), f32_of(&mut tract, "probs"));
    assert_eq!(got.shape(), &[5, CLASSES]);
    let err = rel_l2(&got, &want);
    assert!(err < 1e-6, "ort vs tract relative L2 {err:e}");
    for row in got.rows() {
        assert!(
            (row.sum() - 1.0).abs() < 1e-5,
            "a softmax row sums to {}",
            row.sum()
        );
    }
}

#[test]
fn cpu_passes_i64_tensors_through_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = run(&cpu_backend(), &write_classifier(dir.path()), 4);
    assert_eq!(
        outputs.take("next_ids").unwrap().into_host().unwrap(),
        TensorValue::i64(&[4], vec![-2, 8, 18, 28])
    );
}

#[test]
fn one_session_runs_many_row_counts() {
    let dir = tempfile::tempdir().unwrap();
    let session = cpu_backend().load(&write_classifier(dir.path())).unwrap();
    for rows in [1, 7, 3] {
        let mut outputs = session.run(&refs(&classifier_inputs(rows))).unwrap();
        assert_eq!(outputs.take("probs").unwrap().shape(), &[rows, CLASSES]);
    }
}

#[test]
fn the_session_lists_its_inputs_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let session = cpu_backend().load(&write_classifier(dir.path())).unwrap();
    assert_eq!(session.input_names(), &["x".to_string(), "ids".to_string()]);
}

#[test]
fn a_missing_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let session = cpu_backend().load(&write_classifier(dir.path())).unwrap();
    let inputs = classifier_inputs(2);
    match session.run(&refs(&inputs[..1])) {
        Err(BackendError::MissingInput { name, graph }) => {
            assert_eq!(name, "ids");
            assert_eq!(graph, "classifier.onnx");
        }
        other => panic!("expected MissingInput, got {other:?}"),
    }
}

#[test]
fn a_missing_output_names_the_graph_and_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = run(&cpu_backend(), &write_classifier(dir.path()), 2);
    match outputs.take("logits") {
        Err(BackendError::MissingOutput { graph, name }) => {
            assert_eq!(graph, "classifier.onnx");
            assert_eq!(name, "logits");
        }
        other => panic!("expected MissingOutput, got {other:?}"),
    }
}

#[test]
fn outputs_stay_ort_values_until_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = run(&cpu_backend(), &write_classifier(dir.path()), 3);
    match outputs.take("probs").unwrap() {
        Tensor::Backend(value) => {
            assert_eq!(value.backend(), "ort");
            assert_eq!(value.shape(), &[3, CLASSES]);
        }
        Tensor::Host(_) => panic!("the output was copied to the host"),
    }
}

#[test]
fn an_output_is_not_overwritten_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let session = cpu_backend().load(&write_classifier(dir.path())).unwrap();
    let first_inputs = classifier_inputs(4);
    let first = session
        .run(&refs(&first_inputs))
        .unwrap()
        .take("probs")
        .unwrap();
    let before = first.to_host().unwrap();
    let other_x = Tensor::f32(&[4, FEATURES], vec![0.5; 4 * FEATURES]);
    let _second = session
        .run(&[("x", &other_x), ("ids", &first_inputs[1].1)])
        .unwrap();
    assert_eq!(first.to_host().unwrap(), before);
}

/// The classifier's probabilities fed to the doubler as a value of the backend that made them.
fn chained(backend: &dyn Backend, dir: &Path) -> ArrayD<f32> {
    let doubler = backend.load(&write_doubler(dir)).unwrap();
    let probs = run(backend, &write_classifier(dir), 3)
        .take("probs")
        .unwrap();
    assert!(matches!(probs, Tensor::Backend(_)));
    doubler
        .run(&[("x", &probs)])
        .unwrap()
        .take_f32("y")
        .unwrap()
}

#[test]
fn an_output_feeds_the_next_graph_as_an_ort_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut probs = run(&cpu_backend(), &write_classifier(dir.path()), 3);
    let want = f32_of(&mut probs, "probs").mapv(|p| p + p);
    assert_eq!(chained(&cpu_backend(), dir.path()), want);
}

#[test]
fn a_value_of_one_backend_feeds_a_graph_of_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let doubler = write_doubler(dir.path());
    let classifier = write_classifier(dir.path());
    let from_ort = run(&cpu_backend(), &classifier, 3).take("probs").unwrap();
    let from_tract = run(&TractBackend::default(), &classifier, 3)
        .take("probs")
        .unwrap();
    let on_tract = TractBackend::default()
        .load(&doubler)
        .unwrap()
        .run(&[("x", &from_ort)])
        .unwrap()
        .take_f32("y")
        .unwrap();
    let on_ort = cpu_backend()
        .load(&doubler)
        .unwrap()
        .run(&[("x", &from_tract)])
        .unwrap()
        .take_f32("y")
        .unwrap();
    assert_eq!(on_tract, from_ort.into_f32().unwrap().mapv(|p| p + p));
    assert_eq!(on_ort, from_tract.into_f32().unwrap().mapv(|p| p + p));
}

#[test]
fn a_graph_file_that_is_not_onnx_fails_to_load_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.onnx");
    std::fs::write(&bogus, b"not a protobuf").unwrap();
    match cpu_backend().load(&bogus) {
        Err(BackendError::Load { path, .. }) => assert_eq!(path, bogus),
        Err(other) => panic!("expected a load error, got {other}"),
        Ok(_) => panic!("a non-ONNX file loaded"),
    }
}

/// A GPU device either works (a GPU build of ONNX Runtime on a machine with the GPU: then it
/// computes what tract computes) or fails naming its provider and the way back to the CPU.
fn gpu_runs_or_names_its_provider(device: Device, provider: &str) {
    let _loaded = cpu_backend();
    match OrtBackend::new(device) {
        Ok(gpu) => {
            let dir = tempfile::tempdir().unwrap();
            let graph = write_classifier(dir.path());
            let mut got = run(&gpu, &graph, 5);
            let mut want = run(&TractBackend::default(), &graph, 5);
            let (got, want) = (f32_of(&mut got, "probs"), f32_of(&mut want, "probs"));
            assert!(rel_l2(&got, &want) < 1e-5, "{device} differs from tract");
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains(provider), "{message}");
            assert!(message.contains("--device cpu"), "{message}");
        }
    }
}

#[test]
fn cuda_runs_or_is_an_error_naming_its_provider() {
    gpu_runs_or_names_its_provider(Device::Cuda, "CUDAExecutionProvider");
}

#[test]
fn tensorrt_runs_or_is_an_error_naming_its_provider() {
    gpu_runs_or_names_its_provider(Device::TensorRt, "TensorrtExecutionProvider");
}

#[test]
fn auto_places_each_graph_and_says_why_it_passed_providers_over() {
    let dir = tempfile::tempdir().unwrap();
    let graph = write_classifier(dir.path());
    let auto = OrtBackend::new(Device::Auto).unwrap();
    let mut tract = run(&TractBackend::default(), &graph, 5);
    let mut got = run(&auto, &graph, 5);
    assert!(rel_l2(&f32_of(&mut got, "probs"), &f32_of(&mut tract, "probs")) < 1e-6);
    let placements = auto.placements();
    assert_eq!(placements.len(), 1);
    assert_eq!(placements[0].graph, "classifier.onnx");
    let why = placements[0].fallbacks.join("\n");
    // On the CPU build of ONNX Runtime both GPU providers are passed over, each with its reason;
    // on a GPU host the graph lands on TensorRT (nothing passed over) or CUDA.
    match placements[0].provider.as_str() {
        "CPUExecutionProvider" => assert!(
            why.contains("TensorrtExecutionProvider") && why.contains("CUDAExecutionProvider"),
            "{why}"
        ),
        "CUDAExecutionProvider" => assert!(why.contains("TensorrtExecutionProvider"), "{why}"),
        "TensorrtExecutionProvider" => assert!(why.is_empty(), "{why}"),
        other => panic!("unknown provider {other}"),
    }
}

#[test]
fn a_fixed_device_records_its_placement_without_fallbacks() {
    let dir = tempfile::tempdir().unwrap();
    let graph = write_classifier(dir.path());
    let cpu = cpu_backend();
    cpu.load(&graph).unwrap();
    let placements = cpu.placements();
    assert_eq!(placements.len(), 1);
    assert_eq!(placements[0].provider, "CPUExecutionProvider");
    assert!(placements[0].fallbacks.is_empty());
}

#[test]
fn tensorrt_profiles_use_its_shape_syntax() {
    let profile = ShapeProfile {
        inputs: vec![
            InputRange {
                name: "input_ids".into(),
                min: vec![40],
                opt: vec![88],
                max: vec![280],
            },
            InputRange {
                name: "attention_bias".into(),
                min: vec![40, 40],
                opt: vec![88, 88],
                max: vec![280, 280],
            },
        ],
    };
    assert_eq!(
        profile.tensorrt_shapes(|r| &r.min),
        "input_ids:40,attention_bias:40x40"
    );
    assert_eq!(
        profile.tensorrt_shapes(|r| &r.max),
        "input_ids:280,attention_bias:280x280"
    );
}

#[test]
fn devices_parse_from_their_cli_names() {
    for name in Device::NAMES {
        assert_eq!(name.parse::<Device>().unwrap().name(), name);
    }
    let err = "gpu".parse::<Device>().unwrap_err().to_string();
    assert!(err.contains("`gpu`") && err.contains("cuda"), "{err}");
}

#[test]
fn a_missing_ort_dylib_path_is_an_error_naming_it() {
    let search = SearchPaths {
        dylib_path: Some(PathBuf::from("/nonexistent/libonnxruntime.so.1.31.1")),
        ..Default::default()
    };
    let err = find_library(&search).unwrap_err();
    assert!(
        matches!(err, OrtLibraryError::DylibPathMissing(_)),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("/nonexistent/libonnxruntime.so.1.31.1"),
        "{err}"
    );
}

#[test]
fn nothing_found_lists_every_place_looked_and_how_to_install() {
    let empty = tempfile::tempdir().unwrap();
    let search = SearchPaths {
        dylib_path: None,
        python_paths: vec![empty.path().join("site-packages")],
        library_dirs: vec![empty.path().join("lib")],
    };
    let message = find_library(&search).unwrap_err().to_string();
    for place in [
        empty
            .path()
            .join("site-packages/onnxruntime/capi/libonnxruntime.so*"),
        empty.path().join("lib/libonnxruntime.so*"),
    ] {
        assert!(
            message.contains(&*place.to_string_lossy()),
            "{place:?} not listed in:\n{message}"
        );
    }
    assert!(message.contains("ORT_DYLIB_PATH"), "{message}");
    assert!(message.contains("pip install onnxruntime"), "{message}");
}

#[test]
fn the_python_package_is_found_before_the_system_dirs() {
    let root = tempfile::tempdir().unwrap();
    let capi = root.path().join("site-packages/onnxruntime/capi");
    let lib_dir = root.path().join("lib");
    std::fs::create_dir_all(&capi).unwrap();
    std::fs::create_dir_all(&lib_dir).unwrap();
    std::fs::write(capi.join("libonnxruntime.so.1.31.1"), b"").unwrap();
    std::fs::write(capi.join("libonnxruntime_providers_shared.so"), b"").unwrap();
    std::fs::write(lib_dir.join("libonnxruntime.so"), b"").unwrap();
    let search = SearchPaths {
        dylib_path: None,
        python_paths: vec![root.path().join("site-packages")],
        library_dirs: vec![lib_dir.clone()],
    };
    assert_eq!(
        find_library(&search).unwrap(),
        capi.join("libonnxruntime.so.1.31.1")
    );
    let system_only = SearchPaths {
        python_paths: vec![],
        ..search
    };
    assert_eq!(
        find_library(&system_only).unwrap(),
        lib_dir.join("libonnxruntime.so")
    );
}

#[test]
fn a_file_that_is_not_the_library_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libonnxruntime.so.1.31.1");
    std::fs::write(&fake, b"not a shared library").unwrap();
    // Whether or not another test opened the real library first, this is an error naming the file.
    let err = open(&fake)
        .err()
        .expect("a text file opened as ONNX Runtime");
    let fake = fake.canonicalize().unwrap();
    assert!(err.to_string().contains(&*fake.to_string_lossy()), "{err}");
}

#[test]
fn the_loaded_library_reports_its_version() {
    let _loaded = cpu_backend();
    let runtime = runtime().unwrap();
    assert!(runtime.version >= MINIMUM_VERSION, "{}", runtime.version);
    let expected = match std::env::var("VJX_EXPECT_ORT_VERSION") {
        Ok(v) => Some(v.parse::<OrtVersion>().unwrap()),
        Err(_) => OrtVersion::from_file_name(&runtime.library),
    };
    if let Some(expected) = expected {
        assert_eq!(runtime.version, expected, "{}", runtime.library.display());
    }
    assert_eq!(library_version(&runtime.library).unwrap(), runtime.version);
}

#[test]
fn the_version_is_read_from_the_library_not_its_name() {
    let _loaded = cpu_backend();
    let runtime = runtime().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("libonnxruntime.so");
    std::fs::copy(&runtime.library, &renamed).unwrap();
    assert_eq!(library_version(&renamed).unwrap(), runtime.version);
}

#[test]
fn a_library_older_than_1_17_is_refused_naming_the_file_its_version_and_what_to_install() {
    let lib = PathBuf::from("/opt/ort/libonnxruntime.so.1.15.1");
    let message = check_version(&lib, OrtVersion::new(1, 15, 1))
        .unwrap_err()
        .to_string();
    for part in [
        "/opt/ort/libonnxruntime.so.1.15.1",
        "ONNX Runtime 1.15.1",
        "1.17.0 or newer",
        "pip install onnxruntime",
    ] {
        assert!(message.contains(part), "`{part}` missing from: {message}");
    }
    assert!(check_version(&lib, OrtVersion::new(1, 17, 0)).is_ok());
}

#[test]
fn jetpack_5s_onnx_runtime_1_16_is_refused_with_tract_as_the_way_out() {
    let lib =
        PathBuf::from("/usr/lib/python3.8/dist-packages/onnxruntime/capi/libonnxruntime.so.1.16.3");
    let message = check_version(&lib, OrtVersion::new(1, 16, 3))
        .unwrap_err()
        .to_string();
    for part in [
        "ONNX Runtime 1.16.3",
        "JetPack 5",
        "--backend tract",
        "from source",
    ] {
        assert!(message.contains(part), "`{part}` missing from: {message}");
    }
}

#[test]
fn trt_fp16_auto_follows_the_exports_precision() {
    assert!(!TrtFp16::Auto.enabled_for(Some(Precision::F32)));
    assert!(TrtFp16::Auto.enabled_for(Some(Precision::F16)));
    assert!(TrtFp16::Auto.enabled_for(Some(Precision::Int8)));
    assert!(
        !TrtFp16::Auto.enabled_for(None),
        "a graph outside an export stays exact"
    );
    assert!(TrtFp16::On.enabled_for(Some(Precision::F32)));
    assert!(!TrtFp16::Off.enabled_for(Some(Precision::F16)));
    assert_eq!(GpuOptions::default().trt_fp16, TrtFp16::Auto);
}

#[test]
fn trt_fp16_parses_its_cli_names_and_names_a_wrong_one() {
    for name in TrtFp16::NAMES {
        name.parse::<TrtFp16>().unwrap();
    }
    let err = "yes".parse::<TrtFp16>().unwrap_err().to_string();
    assert!(
        err.contains("`yes`") && err.contains("auto, on, off"),
        "{err}"
    );
}

fn option<'a>(options: &'a [(&'static str, String)], key: &str) -> Option<&'a str> {
    options
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn tensorrt_fp16_comes_with_the_layer_norm_fp32_fallback() {
    let gpu = GpuOptions::default();
    let fp16 = gpu.tensorrt_options(&TensorRtGraph {
        fp16: true,
        ..TensorRtGraph::default()
    });
    assert_eq!(option(&fp16, "trt_fp16_enable"), Some("1"));
    assert_eq!(option(&fp16, "trt_layer_norm_fp32_fallback"), Some("1"));
    let fp32 = gpu.tensorrt_options(&TensorRtGraph::default());
    assert_eq!(option(&fp32, "trt_fp16_enable"), Some("0"));
    assert_eq!(option(&fp32, "trt_layer_norm_fp32_fallback"), None);
}

#[test]
fn tensorrt_caches_and_profiles_reach_its_options() {
    let gpu = GpuOptions {
        device_id: 1,
        trt_workspace_bytes: 1 << 30,
        ..GpuOptions::default()
    };
    let graph = TensorRtGraph {
        fp16: false,
        cache: Some((PathBuf::from("/cache/text/0123456789abcdef"), "text".into())),
        profile: ShapeProfile {
            inputs: vec![InputRange {
                name: "input_ids".into(),
                min: vec![40],
                opt: vec![88],
                max: vec![280],
            }],
        },
    };
    let options = gpu.tensorrt_options(&graph);
    assert_eq!(option(&options, "device_id"), Some("1"));
    assert_eq!(
        option(&options, "trt_max_workspace_size"),
        Some("1073741824")
    );
    assert_eq!(option(&options, "trt_engine_cache_enable"), Some("1"));
    assert_eq!(
        option(&options, "trt_engine_cache_path"),
        Some("/cache/text/0123456789abcdef")
    );
    assert_eq!(
        option(&options, "trt_timing_cache_path"),
        Some("/cache/text/0123456789abcdef")
    );
    assert_eq!(option(&options, "trt_engine_cache_prefix"), Some("text"));
    assert_eq!(
        option(&options, "trt_profile_opt_shapes"),
        Some("input_ids:88")
    );
    let without_cache = gpu.tensorrt_options(&TensorRtGraph::default());
    assert_eq!(option(&without_cache, "trt_engine_cache_enable"), None);
}

#[test]
fn a_graph_loaded_again_keeps_one_placement() {
    let dir = tempfile::tempdir().unwrap();
    let graph = write_classifier(dir.path());
    let cpu = cpu_backend();
    cpu.load(&graph).unwrap();
    cpu.load(&graph).unwrap();
    assert_eq!(cpu.placements().len(), 1);
    assert_eq!(cpu.placements()[0].engine_cache, None);
}

#[test]
fn the_backend_names_its_library_and_version() {
    let cpu = cpu_backend();
    let lib = cpu.runtime_library().unwrap();
    assert_eq!(lib.name, "ONNX Runtime");
    assert_eq!(lib.version, runtime().unwrap().version.to_string());
    assert_eq!(lib.path, runtime().unwrap().library);
}

#[test]
fn of_several_versioned_libraries_in_a_dir_the_newest_release_is_found() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "libonnxruntime.so.1.9.0",
        "libonnxruntime.so.1.22.1",
        "libonnxruntime.so.1.19.2",
    ] {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    let search = SearchPaths {
        dylib_path: None,
        python_paths: vec![],
        library_dirs: vec![dir.path().to_path_buf()],
    };
    assert_eq!(
        find_library(&search).unwrap(),
        dir.path().join("libonnxruntime.so.1.22.1")
    );
}
