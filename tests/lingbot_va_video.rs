//! `vjx episode --save-predicted-video`: the rollout's predicted latents, VAE-decoded as one clip
//! (upstream `_decode_predicted_video`, matched on every fixture, T-shape layout included) and
//! saved as PNG frames or a GIF; refused up front when
//! the export has no decoder or the format cannot be written.

mod common;

use common::{copy_tree, exported_lingbot, lingbot_case, stderr, vjx};
use ndarray::{Array4, Array5, Axis};
use std::path::{Path, PathBuf};
use vjx_runtime::backend::tract::TractBackend;
use vjx_runtime::manifest::{Manifest, PolicySpec};
use vjx_runtime::policy::lingbot_va::predicted_video::decode_latents;
use vjx_runtime::policy::lingbot_va::LingbotVaPolicy;

fn case() -> PathBuf {
    lingbot_case("small_window")
}

fn exported() -> PathBuf {
    exported_lingbot(&case())
}

fn load_policy(export: &Path) -> LingbotVaPolicy {
    let manifest = Manifest::load(export, true).unwrap();
    let PolicySpec::LingbotVa(spec) = manifest.policy.clone() else {
        panic!("{} is not a LingBot-VA export", export.display());
    };
    LingbotVaPolicy::load(export, manifest, spec, &TractBackend::default()).unwrap()
}

/// `chunk{k}/video_latents.npy` under `dir` (each `[z, F, h, W]`), with the batch axis back.
fn chunk_latents(dir: &Path) -> Vec<Array5<f32>> {
    let mut chunks = Vec::new();
    for k in 0.. {
        let path = dir.join(format!("chunk{k}/video_latents.npy"));
        if !path.is_file() {
            break;
        }
        let latent: ndarray::Array4<f32> = ndarray_npy::read_npy(&path).unwrap();
        chunks.push(latent.insert_axis(Axis(0)));
    }
    assert!(
        !chunks.is_empty(),
        "no chunk latents under {}",
        dir.display()
    );
    chunks
}

fn run_episode(extra: &[&std::ffi::OsStr]) -> std::process::Output {
    vjx()
        .arg("episode")
        .arg(exported())
        .arg("--episode")
        .arg(case().join("episode.json"))
        .args(extra)
        .output()
        .unwrap()
}

/// `frame_00000.png`, ... of `dir` as uint8 `[T, H, W, 3]`.
fn read_png_frames(dir: &Path) -> Array4<u8> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let frames: Vec<_> = names
        .iter()
        .map(|p| {
            let chw = vjx_runtime::preprocess::image::load_rgb_f32(p).unwrap();
            chw.permuted_axes([1, 2, 0])
                .mapv(|v| (v * 255.0).round() as u8)
                .insert_axis(Axis(0))
        })
        .collect();
    let views: Vec<_> = frames.iter().map(|f| f.view()).collect();
    ndarray::concatenate(Axis(0), &views).unwrap()
}

/// Upstream rounds the same f32 decoder output to uint8; values that land within float noise of
/// an x.5 boundary may round the other way, and nothing else may differ.
const MAX_LEVEL_DIFF: u8 = 1;
const MAX_DIFFERING_FRACTION: f64 = 1e-3;

#[test]
fn every_fixture_rollout_decodes_to_upstreams_predicted_video() {
    for name in [
        "libero_width_concat",
        "robotwin_tshape",
        "small_window",
        "no_guidance",
    ] {
        let case = lingbot_case(name);
        let policy = load_policy(&exported_lingbot(&case));
        let frames = decode_latents(&policy, &chunk_latents(&case.join("reference"))).unwrap();
        let expected: Array4<u8> =
            ndarray_npy::read_npy(case.join("reference/predicted_video.npy")).unwrap();
        assert_eq!(
            frames.shape(),
            expected.shape(),
            "{name}: frames [T, H, W, 3]"
        );
        let diffs: Vec<u8> = frames
            .iter()
            .zip(&expected)
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        let worst = diffs.iter().copied().max().unwrap();
        let differing = diffs.iter().filter(|d| **d > 0).count() as f64 / diffs.len() as f64;
        println!(
            "{name}: {:?} frames, worst {worst} level(s), {differing:.1e} of values differ",
            frames.shape()
        );
        assert!(
            worst <= MAX_LEVEL_DIFF,
            "{name}: a value is {worst} uint8 levels off upstream"
        );
        assert!(
            differing <= MAX_DIFFERING_FRACTION,
            "{name}: {differing:.2e} of values differ from upstream"
        );
    }
}

#[test]
fn decoding_gives_one_frame_for_the_first_latent_frame_then_four_per_latent_frame() {
    let policy = load_policy(&exported());
    let latents = chunk_latents(&case().join("reference"));
    let latent_frames: usize = latents.iter().map(|l| l.shape()[2]).sum();
    let [_, _, _, h, w] = *latents[0].shape() else {
        unreachable!()
    };
    let frames = decode_latents(&policy, &latents).unwrap();
    assert_eq!(
        frames.shape(),
        &[1 + 4 * (latent_frames - 1), h * 16, w * 16, 3]
    );
}

#[test]
fn decoding_is_causal_so_the_first_chunks_decode_to_the_first_frames() {
    let policy = load_policy(&exported());
    let latents = chunk_latents(&case().join("reference"));
    let all = decode_latents(&policy, &latents).unwrap();
    let head = decode_latents(&policy, &latents[..2]).unwrap();
    let n = head.shape()[0];
    assert_eq!(
        n,
        1 + 4 * (latents[0].shape()[2] + latents[1].shape()[2] - 1)
    );
    assert_eq!(all.slice(ndarray::s![..n, .., .., ..]), head);
}

#[test]
fn episode_saves_the_decoded_predicted_latents_as_png_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (frames_dir, dump) = (dir.path().join("predicted"), dir.path().join("dump"));
    let out = run_episode(&[
        "--json".as_ref(),
        "--dump".as_ref(),
        dump.as_os_str(),
        "--save-predicted-video".as_ref(),
        frames_dir.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let saved = read_png_frames(&frames_dir);
    let policy = load_policy(&exported());
    let expected = decode_latents(&policy, &chunk_latents(&dump)).unwrap();
    assert_eq!(saved, expected);
}

#[test]
fn episode_saves_a_gif_of_the_decoded_frame_size_and_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let gif = dir.path().join("predicted.gif");
    let out = run_episode(&[
        "--json".as_ref(),
        "--save-predicted-video".as_ref(),
        gif.as_os_str(),
        "--video-fps".as_ref(),
        "5".as_ref(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&gif).unwrap();
    assert_eq!(&bytes[..6], b"GIF89a");
    // Logical screen width and height, little-endian: the model's 32x32 frame.
    assert_eq!(
        (
            u16::from_le_bytes([bytes[6], bytes[7]]),
            u16::from_le_bytes([bytes[8], bytes[9]])
        ),
        (32, 32)
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("predicted.gif")]);
}

#[test]
fn episode_asked_for_mp4_without_ffmpeg_fails_before_running_and_names_the_alternatives() {
    let dir = tempfile::tempdir().unwrap();
    let empty_path = dir.path().join("no-tools");
    std::fs::create_dir(&empty_path).unwrap();
    let mp4 = dir.path().join("predicted.mp4");
    let out = vjx()
        .env("PATH", &empty_path)
        .arg("episode")
        .arg(exported())
        .arg("--episode")
        .arg(case().join("episode.json"))
        .arg("--save-predicted-video")
        .arg(&mp4)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("ffmpeg") && err.contains(".gif") && err.contains("directory"),
        "{err}"
    );
    assert!(
        !err.contains("chunk 0 predicted"),
        "the episode ran before the check: {err}"
    );
    assert!(!mp4.exists());
}

#[test]
fn episode_on_an_export_without_decoder_graphs_asks_for_a_re_export_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    copy_tree(&exported(), &export);
    common::edit_manifest(&export, |manifest| {
        let graphs = manifest["graphs"].as_object_mut().unwrap();
        assert!(
            graphs.remove("vae_decode_first").is_some()
                && graphs.remove("vae_decode_stream").is_some()
        );
    });
    let gif = dir.path().join("predicted.gif");
    let out = vjx()
        .arg("episode")
        .arg(&export)
        .arg("--episode")
        .arg(case().join("episode.json"))
        .arg("--save-predicted-video")
        .arg(&gif)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("vae_decode_first") && err.contains("re-export"),
        "{err}"
    );
    assert!(
        !err.contains("chunk 0 predicted"),
        "the episode ran before the check: {err}"
    );
    assert!(!gif.exists());
}
