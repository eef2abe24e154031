//! The Wan2.2 VAE graphs on tract against diffusers / LeRobot, on the tiny random VAE written by
//! `make_wan_vae_reference.py` (fixtures/wan_vae): the first streaming call, later calls with the
//! carried caches, a whole clip in one call, and the frame-by-frame decoder.

mod common;

use common::{npy_f32, rel_l2, run_graph, Input, SafetensorsFile};
use ndarray::{ArrayD, Axis, IxDyn};
use std::path::{Path, PathBuf};
use vjx_graphs::wan_vae::{
    build_vae_decode_graphs, build_vae_encode_graphs, cache_in_name, cache_out_name,
    decoder_cache_shapes, encoder_cache_shapes, WanVaeConfig, WanVaeConfigError,
};
use vjx_graphs::{Model, WeightSource};

const PARITY: f64 = 1e-4;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wan_vae")
}

fn config() -> WanVaeConfig {
    let text = std::fs::read_to_string(fixture_dir().join("config.json")).unwrap();
    WanVaeConfig::from_json_str(&text).unwrap()
}

fn weights() -> SafetensorsFile {
    SafetensorsFile::open(&fixture_dir().join("diffusion_pytorch_model.safetensors"))
}

/// The fixture clip `[2, 3, 29, 16, 32]`.
fn frames() -> ArrayD<f32> {
    let t = SafetensorsFile::open(&fixture_dir().join("inputs.safetensors"))
        .get("frames")
        .unwrap();
    ArrayD::from_shape_vec(IxDyn(&t.shape), t.data).unwrap()
}

fn reference(name: &str) -> ArrayD<f32> {
    npy_f32(&fixture_dir().join(name))
}

/// Frames `[start, end)` of a `[N, C, T, H, W]` array.
fn time_slice(x: &ArrayD<f32>, start: usize, end: usize) -> ArrayD<f32> {
    x.slice_axis(Axis(2), (start..end).into()).to_owned()
}

/// A built graph written to a temp dir, with the number of caches it carries.
struct Graph {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn write(model: Model, weights: &dyn WeightSource) -> Graph {
    let dir = tempfile::tempdir().unwrap();
    let stem = model.name.clone();
    let path = model
        .write_with(dir.path(), &stem, weights)
        .unwrap()
        .graph_file;
    Graph { _dir: dir, path }
}

/// Runs a first/stream graph: `main` plus the carried caches in, `(main output, caches)` out.
fn call(
    graph: &Graph,
    main: ArrayD<f32>,
    caches: Option<Vec<ArrayD<f32>>>,
) -> (ArrayD<f32>, Vec<ArrayD<f32>>) {
    let mut inputs = vec![Input::F32(main)];
    inputs.extend(caches.into_iter().flatten().map(Input::F32));
    let mut outputs = run_graph(&graph.path, inputs);
    let main = outputs.remove(0);
    (main, outputs)
}

fn assert_close(what: &str, out: &ArrayD<f32>, reference: &ArrayD<f32>) -> f64 {
    assert_eq!(out.shape(), reference.shape(), "{what}: shape");
    let err = rel_l2(
        out.as_standard_layout().as_slice().unwrap(),
        reference.as_standard_layout().as_slice().unwrap(),
    );
    eprintln!("{what}: rel L2 {err:.3e}");
    assert!(err <= PARITY, "{what}: rel L2 {err:.3e} > {PARITY:e}");
    err
}

struct Encoder {
    first: Graph,
    stream: Graph,
}

fn encoder() -> Encoder {
    let (cfg, w) = (config(), weights());
    let (first, stream) = build_vae_encode_graphs(&cfg, &w, "").unwrap();
    Encoder {
        first: write(first, &w),
        stream: write(stream, &w),
    }
}

#[test]
fn config_reads_the_wan22_layout() {
    let cfg = config();
    assert_eq!((cfg.z_dim, cfg.patch(), cfg.in_channels), (48, 2, 12));
    assert_eq!(cfg.encoder_dims(), vec![4, 4, 8, 16, 16]);
    assert_eq!(cfg.decoder_dims(), vec![16, 16, 16, 8, 4]);
    assert_eq!((cfg.spatial_factor(), cfg.temporal_factor()), (16, 4));
}

#[test]
fn config_rejects_the_wan21_layout_naming_the_field() {
    let text = std::fs::read_to_string(fixture_dir().join("config.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["is_residual"] = serde_json::Value::Bool(false);
    let err = WanVaeConfig::from_json_str(&json.to_string()).unwrap_err();
    assert!(
        matches!(
            err,
            WanVaeConfigError::Unsupported {
                field: "is_residual",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("is_residual"), "{err}");

    json["is_residual"] = serde_json::Value::Bool(true);
    json["latents_std"] = serde_json::json!([1.0, 2.0]);
    let err = WanVaeConfig::from_json_str(&json.to_string()).unwrap_err();
    assert!(
        matches!(
            err,
            WanVaeConfigError::Unsupported {
                field: "latents_std",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn encoder_caches_for_the_fixture_config() {
    let shapes = encoder_cache_shapes(&config(), 2, 16, 32);
    // conv_in, 4 blocks × 2 resnets × 2 convs, 2 time convs, mid block 4 convs, conv_out.
    assert_eq!(shapes.len(), 1 + 16 + 2 + 4 + 1);
    assert_eq!(shapes[0], vec![2, 12, 2, 8, 16]);
    assert_eq!(shapes[1], vec![2, 4, 2, 8, 16]);
    // down_blocks.1's time conv keeps one frame at 1/4 of the pixel size (patch 2, then /2).
    assert_eq!(shapes[9], vec![2, 8, 1, 2, 4]);
    assert_eq!(shapes.last().unwrap(), &vec![2, 16, 2, 1, 2]);
}

#[test]
fn first_call_matches_the_streaming_wrapper() {
    let enc = encoder();
    let (latent, caches) = call(&enc.first, time_slice(&frames(), 0, 1), None);
    assert_close("first call latent", &latent, &reference("latent_first.npy"));
    let expected = encoder_cache_shapes(&config(), 2, 16, 32);
    let shapes: Vec<Vec<usize>> = caches.iter().map(|c| c.shape().to_vec()).collect();
    assert_eq!(shapes, expected);
}

#[test]
fn first_call_keeps_one_real_frame_behind_a_zero_frame() {
    let enc = encoder();
    let (_, caches) = call(&enc.first, time_slice(&frames(), 0, 1), None);
    for (j, cache) in caches.iter().enumerate().filter(|(_, c)| c.shape()[2] == 2) {
        let padding = cache.index_axis(Axis(2), 0);
        assert!(
            padding.iter().all(|&v| v == 0.0),
            "cache {j}: first frame is not zero"
        );
        let real = cache.index_axis(Axis(2), 1);
        assert!(
            real.iter().any(|&v| v != 0.0),
            "cache {j}: second frame is all zero"
        );
    }
}

#[test]
fn streamed_calls_with_carried_caches_match_the_streaming_wrapper() {
    let enc = encoder();
    let clip = frames();
    let (_, caches) = call(&enc.first, time_slice(&clip, 0, 1), None);
    let (latent, caches) = call(&enc.stream, time_slice(&clip, 1, 13), Some(caches));
    assert_close(
        "second call (12 frames)",
        &latent,
        &reference("latent_stream1.npy"),
    );
    let (latent, caches) = call(&enc.stream, time_slice(&clip, 13, 29), Some(caches));
    assert_close(
        "third call (16 frames)",
        &latent,
        &reference("latent_stream2.npy"),
    );
    assert_eq!(
        caches.len(),
        encoder_cache_shapes(&config(), 2, 16, 32).len()
    );
}

#[test]
fn whole_clip_in_one_stream_call_matches_diffusers_encode() {
    let enc = encoder();
    let clip = frames();
    let (first, caches) = call(&enc.first, time_slice(&clip, 0, 1), None);
    let (rest, _) = call(&enc.stream, time_slice(&clip, 1, 29), Some(caches));
    let whole = ndarray::concatenate(Axis(2), &[first.view(), rest.view()]).unwrap();
    assert_close(
        "first + one 28-frame call vs encode()",
        &whole,
        &reference("latent_whole.npy"),
    );
}

#[test]
fn four_frame_stream_calls_match_diffusers_encode() {
    let enc = encoder();
    let clip = frames();
    let (first, mut caches) = call(&enc.first, time_slice(&clip, 0, 1), None);
    let mut parts = vec![first];
    for start in (1..29).step_by(4) {
        let (latent, next) = call(
            &enc.stream,
            time_slice(&clip, start, start + 4),
            Some(caches),
        );
        parts.push(latent);
        caches = next;
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    let whole = ndarray::concatenate(Axis(2), &views).unwrap();
    assert_close(
        "first + 7 four-frame calls vs encode()",
        &whole,
        &reference("latent_whole.npy"),
    );
}

#[test]
fn cache_names_number_the_slots() {
    assert_eq!(
        (cache_in_name(3), cache_out_name(3)),
        ("cache_in_3".to_string(), "cache_out_3".to_string())
    );
}

struct Decoder {
    first: Graph,
    stream: Graph,
}

fn decoder() -> Decoder {
    let (cfg, w) = (config(), weights());
    let (first, stream) = build_vae_decode_graphs(&cfg, &w, "").unwrap();
    Decoder {
        first: write(first, &w),
        stream: write(stream, &w),
    }
}

#[test]
fn decoder_frame_by_frame_matches_diffusers_decode() {
    let dec = decoder();
    let latent = reference("decode_latent.npy");
    let (mut frames_out, mut caches) = (Vec::new(), None);
    for t in 0..latent.shape()[2] {
        let graph = if t == 0 { &dec.first } else { &dec.stream };
        let (frames, next) = call(graph, time_slice(&latent, t, t + 1), caches);
        assert_eq!(
            frames.shape()[2],
            if t == 0 { 1 } else { 4 },
            "frames decoded from latent frame {t}"
        );
        frames_out.push(frames);
        caches = Some(next);
    }
    let views: Vec<_> = frames_out.iter().map(|p| p.view()).collect();
    let video = ndarray::concatenate(Axis(2), &views).unwrap();
    assert_close(
        "decoded video, one latent frame per call",
        &video,
        &reference("decoded.npy"),
    );
    let shapes: Vec<Vec<usize>> = caches.unwrap().iter().map(|c| c.shape().to_vec()).collect();
    assert_eq!(shapes, decoder_cache_shapes(&config(), 1, 16, 32));
}

#[test]
fn decoder_stream_call_over_several_latent_frames_matches_diffusers_decode() {
    let dec = decoder();
    let latent = reference("decode_latent.npy");
    let (first, caches) = call(&dec.first, time_slice(&latent, 0, 1), None);
    let (rest, _) = call(&dec.stream, time_slice(&latent, 1, 3), Some(caches));
    assert_eq!(rest.shape()[2], 8);
    let video = ndarray::concatenate(Axis(2), &[first.view(), rest.view()]).unwrap();
    assert_close(
        "decoded video, latent frames 1..3 in one call",
        &video,
        &reference("decoded.npy"),
    );
}

/// The LingBot-VA fixture cases (tests/fixtures/lingbot_va/<case>) with a VAE and references.
fn lingbot_va_cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/lingbot_va");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("fixtures missing at {}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("wan/vae/config.json").is_file() && p.join("reference/chunk0").is_dir())
        .collect();
    cases.sort();
    assert!(
        !cases.is_empty(),
        "no LingBot-VA cases under {}",
        root.display()
    );
    cases
}

fn chunk_dirs(case: &Path) -> Vec<PathBuf> {
    let count = (0..)
        .take_while(|k| case.join(format!("reference/chunk{k}")).is_dir())
        .count();
    (0..count)
        .map(|k| case.join(format!("reference/chunk{k}")))
        .collect()
}

/// One streaming VAE state: the first graph on the first call, the stream graph after.
struct EncoderStream<'a> {
    encoder: &'a Encoder,
    caches: Option<Vec<ArrayD<f32>>>,
}

impl EncoderStream<'_> {
    fn encode_chunk(&mut self, frames: ArrayD<f32>) -> ArrayD<f32> {
        let graph = if self.caches.is_none() {
            &self.encoder.first
        } else {
            &self.encoder.stream
        };
        let (latent, caches) = call(graph, frames, self.caches.take());
        self.caches = Some(caches);
        latent
    }
}

/// `[N, C, T, h, w]` → the N latents side by side on width, `[C, T, h, N·w]`.
fn side_by_side(latent: &ArrayD<f32>) -> ArrayD<f32> {
    let views: Vec<_> = latent.outer_iter().collect();
    ndarray::concatenate(Axis(3), &views).unwrap()
}

#[test]
fn lingbot_va_observation_latents_match_every_chunk() {
    for case in lingbot_va_cases() {
        let vae_dir = case.join("wan/vae");
        let cfg = WanVaeConfig::from_json_str(
            &std::fs::read_to_string(vae_dir.join("config.json")).unwrap(),
        )
        .unwrap();
        let w = SafetensorsFile::open(&vae_dir.join("diffusion_pytorch_model.safetensors"));
        let (first, stream) = build_vae_encode_graphs(&cfg, &w, "").unwrap();
        let encoder = Encoder {
            first: write(first, &w),
            stream: write(stream, &w),
        };
        let tshape = case.join("reference/chunk0/vae_frames_head.npy").is_file();
        // RoboTwin's T-shape layout runs a second VAE state for the half-size wrist cameras.
        let mut main = EncoderStream {
            encoder: &encoder,
            caches: None,
        };
        let mut wrists = EncoderStream {
            encoder: &encoder,
            caches: None,
        };
        for chunk in chunk_dirs(&case) {
            let what = format!(
                "{}",
                chunk
                    .strip_prefix(case.parent().unwrap())
                    .unwrap()
                    .display()
            );
            let latent = if tshape {
                let head = main.encode_chunk(npy_f32(&chunk.join("vae_frames_head.npy")));
                let pair = wrists.encode_chunk(npy_f32(&chunk.join("vae_frames_wrists.npy")));
                let views = [side_by_side(&pair), side_by_side(&head)];
                ndarray::concatenate(Axis(2), &[views[0].view(), views[1].view()]).unwrap()
            } else {
                side_by_side(&main.encode_chunk(npy_f32(&chunk.join("vae_frames.npy"))))
            };
            assert_close(&what, &latent, &npy_f32(&chunk.join("vae_latent.npy")));
        }
    }
}
