//! `bench/gpu_check.sh`, the one-command GPU check, exercised on a machine without a GPU: the
//! same pipeline on ONNX Runtime's CPU provider must pass the fixture parity and write a complete
//! report; asking for CUDA here must end in a report that says why CUDA was not checked, with
//! the documented exit code; bad input must stop before anything runs.
//!
//! Needs `ORT_DYLIB_PATH` (a CPU libonnxruntime, as CI sets it from
//! scripts/install_onnxruntime.sh) and `python3` (standard library only): without them the tests
//! fail, they do not skip.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The cases kept small so that a run takes seconds: one VLA-JEPA observation, one LingBot-VA
/// episode of three chunks without guidance.
const CASES: &str = "world_model,lingbot_va/no_guidance";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ort_library() -> PathBuf {
    let path = std::env::var_os("ORT_DYLIB_PATH")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .expect(
            "ORT_DYLIB_PATH must point at a CPU libonnxruntime for this test: \
         ORT_DYLIB_PATH=\"$(scripts/install_onnxruntime.sh)\" cargo test",
        );
    assert!(
        path.is_file(),
        "ORT_DYLIB_PATH={} does not exist",
        path.display()
    );
    path
}

fn gpu_check(args: &[&str], ort: Option<&Path>) -> Output {
    let mut cmd = Command::new(repo().join("bench/gpu_check.sh"));
    cmd.arg("--vjx").arg(env!("CARGO_BIN_EXE_vjx")).args(args);
    match ort {
        Some(lib) => cmd.env("ORT_DYLIB_PATH", lib),
        None => cmd.env_remove("ORT_DYLIB_PATH"),
    };
    cmd.output()
        .expect("running bench/gpu_check.sh (bash, python3 and coreutils' timeout are needed)")
}

fn report(path: &Path, out: &Output) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "no report at {}: {e}\nstderr:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON ({e})", path.display()))
}

fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    let step = &report["steps"][name];
    assert!(
        step.is_object(),
        "the report has no step `{name}`; steps: {:?}",
        report["steps"]
            .as_object()
            .map(|m| m.keys().collect::<Vec<_>>())
    );
    step
}

fn status(step: &Value) -> &str {
    step["status"]
        .as_str()
        .unwrap_or_else(|| panic!("step without a status: {step}"))
}

fn reason(step: &Value) -> &str {
    step["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("step `{}` has no reason: {step}", step["name"]))
}

fn nvidia_smi_on_path() -> bool {
    Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// An `onnxruntime_gpu` wheel holding just `lib` as onnxruntime/capi/<its name>, cut into two
/// pieces the way docs/gpu-check.md carries a real wheel to a lent GPU (`split`, then joined).
fn split_wheel(lib: &Path, dir: &Path) -> PathBuf {
    let file = lib.file_name().unwrap().to_string_lossy().into_owned();
    let version = file
        .strip_prefix("libonnxruntime.so.")
        .expect("ORT_DYLIB_PATH names libonnxruntime.so.<version>");
    let wheel = dir.join(format!(
        "onnxruntime_gpu-{version}-cp312-cp312-manylinux_2_28_x86_64.whl"
    ));
    let zip = Command::new("python3")
        .args(["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1], 'w').write(sys.argv[2], 'onnxruntime/capi/' + sys.argv[3])"])
        .arg(&wheel)
        .arg(lib)
        .arg(&file)
        .output()
        .expect("python3 is needed");
    assert!(
        zip.status.success(),
        "making the test wheel: {}",
        String::from_utf8_lossy(&zip.stderr)
    );
    let bytes = std::fs::read(&wheel).unwrap();
    let half = bytes.len() / 2;
    std::fs::write(
        dir.join(format!(
            "{}.part-aa",
            wheel.file_name().unwrap().to_string_lossy()
        )),
        &bytes[..half],
    )
    .unwrap();
    std::fs::write(
        dir.join(format!(
            "{}.part-ab",
            wheel.file_name().unwrap().to_string_lossy()
        )),
        &bytes[half..],
    )
    .unwrap();
    std::fs::remove_file(&wheel).unwrap();
    wheel
}

fn assert_no_partial_files(dir: &Path) {
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "half-written files left in {}: {leftovers:?}",
        dir.display()
    );
}

/// Worst relative L2 per stage of one family in a parity step; every stage must be within `bar`.
fn assert_worst_within(parity: &Value, family: &str, bar: f64, must_have: &[&str]) {
    let worst = parity["results"]["worst_rel_l2"][family]
        .as_object()
        .unwrap_or_else(|| panic!("{}: no worst errors for {family}: {parity}", parity["name"]));
    for stage in must_have {
        assert!(
            worst.contains_key(*stage),
            "{}: stage `{stage}` of {family} was not compared",
            parity["name"]
        );
    }
    for (stage, err) in worst {
        let err = err
            .as_f64()
            .unwrap_or_else(|| panic!("{}: {family} {stage} error is {err}", parity["name"]));
        assert!(
            err <= bar,
            "{}: {family} {stage} rel L2 {err:e} > {bar:e}",
            parity["name"]
        );
    }
}

#[test]
fn the_cpu_self_check_passes_the_fixture_parity_and_says_what_it_could_not_run() {
    let lib = ort_library();
    let dir = tempfile::tempdir().unwrap();
    let wheel = split_wheel(&lib, dir.path());
    let out_file = dir.path().join("out/gpu_check.json");
    let out = gpu_check(
        &[
            "--ort-wheel",
            wheel.to_str().unwrap(),
            "--providers",
            "cpu",
            "--cases",
            CASES,
            "--work",
            dir.path().join("work").to_str().unwrap(),
            "--out",
            out_file.to_str().unwrap(),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "gpu_check.sh --providers cpu did not pass:\n{stderr}"
    );
    let r = report(&out_file, &out);
    assert_no_partial_files(out_file.parent().unwrap());
    assert_eq!(r["schema"], "vjx-gpu-check/1");
    assert_eq!(r["status"], "ok");
    assert_eq!(r["exit_code"], 0);
    assert!(
        stderr.contains("parity/cpu/fp32"),
        "progress goes to stderr:\n{stderr}"
    );

    // The machine: no GPU here (CI's), and the report says so and why.
    let machine = &r["machine"];
    if nvidia_smi_on_path() {
        assert_eq!(
            machine["gpu_found"], true,
            "nvidia-smi lists a GPU but the report found none: {machine}"
        );
    } else {
        assert_eq!(machine["gpu_found"], false, "{machine}");
        assert_eq!(
            machine["gpus"].as_array().map(Vec::len),
            Some(0),
            "{machine}"
        );
        assert!(
            reason_has(&machine["gpu_reason"], "nvidia-smi"),
            "{machine}"
        );
    }
    assert!(
        machine["cpu"].as_str().is_some_and(|c| !c.is_empty()),
        "{machine}"
    );

    // ONNX Runtime came from the wheel, joined from its two pieces; its version from the name.
    let ort = &r["onnxruntime"];
    assert_eq!(ort["source"], "wheel", "{ort}");
    assert_eq!(ort["joined_parts"], 2, "{ort}");
    let version = lib
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("libonnxruntime.so.")
        .to_string();
    assert_eq!(ort["version"], version.as_str(), "{ort}");
    assert!(
        ort["providers"]["cuda"]["library"].is_null(),
        "a CPU build has no CUDA provider library: {ort}"
    );

    // Exports: LingBot-VA has no fp16 export yet, which is a skipped entry, not a failure.
    assert_eq!(status(step(&r, "export/fp32")), "ok");
    let fp16_exports = step(&r, "export/fp16");
    assert_eq!(status(fp16_exports), "ok", "{fp16_exports}");
    let lingbot_fp16 = fp16_exports["results"]["exports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["family"] == "lingbot_va")
        .expect("the LingBot-VA case is listed under export/fp16");
    assert_eq!(lingbot_fp16["status"], "skipped", "{lingbot_fp16}");
    assert!(
        reason_has(&lingbot_fp16["reason"], "fp16"),
        "{lingbot_fp16}"
    );

    // The probe: every graph on ONNX Runtime's CPU provider.
    let probe = step(&r, "probe/cpu");
    assert_eq!(status(probe), "ok", "{probe}");
    let placements = probe["results"]["placements"]
        .as_array()
        .expect("probe placements");
    assert!(!placements.is_empty(), "{probe}");
    for p in placements {
        assert_eq!(p["provider"], "CPUExecutionProvider", "{p}");
    }

    // FP32 parity: both cases, every stage within 1e-4, integer stages exact.
    let fp32 = step(&r, "parity/cpu/fp32");
    assert_eq!(status(fp32), "ok", "{fp32}");
    assert_eq!(fp32["results"]["passed"], true);
    assert_eq!(
        fp32["results"]["runs"]["ok"], 2,
        "one VLA-JEPA observation and one LingBot-VA episode: {fp32}"
    );
    assert_eq!(fp32["results"]["bar"]["default"], 1e-4);
    assert_worst_within(
        fp32,
        "vla_jepa",
        1e-4,
        &[
            "input_ids",
            "image_grid_thw",
            "pixel_values",
            "vision_embeds",
            "embodied_hidden",
            "velocity_step0",
            "actions",
        ],
    );
    assert_eq!(
        fp32["results"]["worst_rel_l2"]["vla_jepa"]["input_ids"],
        0.0
    );
    assert_worst_within(
        fp32,
        "lingbot_va",
        1e-4,
        &[
            "text_embeds",
            "vae_latent",
            "video_velocity_first",
            "action_velocity_last",
            "actions",
            "calls/actions",
        ],
    );
    assert!(fp32["seconds"].as_f64().is_some_and(|s| s > 0.0), "{fp32}");

    // FP16 parity: the VLA-JEPA case within 1e-2; the LingBot-VA case skipped (not exported).
    let fp16 = step(&r, "parity/cpu/fp16");
    assert_eq!(status(fp16), "ok", "{fp16}");
    assert_eq!(fp16["results"]["runs"]["ok"], 1, "{fp16}");
    assert_eq!(fp16["results"]["runs"]["skipped"], 1, "{fp16}");
    assert_worst_within(fp16, "vla_jepa", 1e-2, &["embodied_hidden", "actions"]);

    // The full-size steps: no checkpoint dirs given, so skipped, each saying which flag.
    let full = step(&r, "latency/vla_jepa_full/cpu");
    assert_eq!(status(full), "skipped");
    assert!(reason(full).contains("--full-vla-jepa"), "{full}");
    let lingbot = step(&r, "latency/lingbot_va_real_width/cpu");
    assert_eq!(status(lingbot), "skipped");
    assert!(
        reason(lingbot).contains("--real-width-lingbot"),
        "{lingbot}"
    );
    assert_eq!(r["failed_steps"].as_array().map(Vec::len), Some(0));
}

fn reason_has(value: &Value, needle: &str) -> bool {
    value.as_str().is_some_and(|s| s.contains(needle))
}

#[test]
fn asking_for_cuda_without_a_gpu_reports_why_and_exits_with_the_documented_code() {
    let lib = ort_library();
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("gpu_check.json");
    let out = gpu_check(
        &[
            "--providers",
            "cuda",
            "--precisions",
            "fp32",
            "--cases",
            "world_model",
            "--work",
            dir.path().join("work").to_str().unwrap(),
            "--out",
            out_file.to_str().unwrap(),
        ],
        Some(&lib),
    );
    let r = report(&out_file, &out);
    assert_no_partial_files(dir.path());
    let code = out.status.code().expect("gpu_check.sh ended by a signal");
    assert_eq!(
        r["exit_code"], code,
        "the report's exit_code is the script's"
    );

    // With a CPU build of ONNX Runtime, CUDA cannot run: the probe and the parity are not ok, and
    // the reason names the missing GPU and vjx's own error about the CUDA provider.
    let probe = step(&r, "probe/cuda");
    let parity = step(&r, "parity/cuda/fp32");
    for s in [probe, parity] {
        assert!(matches!(status(s), "failed" | "skipped"), "{s}");
        assert!(
            reason(s).contains("CUDAExecutionProvider"),
            "the reason quotes vjx's error: {s}"
        );
    }
    if r["machine"]["gpu_found"] == false {
        // No GPU: the CUDA check is skipped, nothing failed, and the exit code is 3.
        assert_eq!(status(probe), "skipped", "{probe}");
        assert!(reason(probe).contains("no NVIDIA GPU"), "{probe}");
        assert_eq!(
            code, 3,
            "exit 3: nothing failed, but a requested provider was not checked"
        );
        assert_eq!(r["status"], "incomplete");
        assert!(
            r["not_run_steps"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == "parity/cuda/fp32"),
            "{}",
            r["not_run_steps"]
        );
    } else {
        // A GPU but a CPU-only library: the provider failed to load, exit 1.
        assert_eq!(status(probe), "failed", "{probe}");
        assert_eq!(code, 1);
    }
    assert_eq!(status(step(&r, "latency/vla_jepa_full/cuda")), "skipped");
}

#[test]
fn bad_input_stops_with_exit_2_naming_the_flag_and_writes_no_report() {
    let lib = ort_library();
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("gpu_check.json");
    let out_arg = out_file.to_str().unwrap().to_string();
    let cases: [(&[&str], &str); 4] = [
        (&["--providers", "gpu"], "--providers"),
        (
            &["--providers", "cpu", "--cases", "no_such_case"],
            "no_such_case",
        ),
        (
            &[
                "--providers",
                "cpu",
                "--ort-wheel",
                "/nonexistent/onnxruntime_gpu.whl",
            ],
            "--ort-wheel",
        ),
        (
            &[
                "--providers",
                "cpu",
                "--full-vla-jepa",
                dir.path().to_str().unwrap(),
            ],
            "--full-vla-jepa",
        ),
    ];
    for (args, names) in cases {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--out", out_arg.as_str()]);
        let out = gpu_check(&all, Some(&lib));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(names),
            "{args:?}: the error names `{names}`: {stderr}"
        );
        assert!(
            !out_file.exists(),
            "{args:?}: a report was written for bad input"
        );
    }
    // Without any ONNX Runtime library there is nothing to run on.
    let out = gpu_check(&["--providers", "cpu", "--out", &out_arg], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ORT_DYLIB_PATH"));
}
