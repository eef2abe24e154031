//! The video the policy imagined during a rollout: every chunk's predicted latents, VAE-decoded
//! as one clip (upstream `_decode_predicted_video`), then written as a GIF, an MP4 (through a
//! system `ffmpeg`) or a directory of PNG frames.

use super::LingbotVaPolicy;
use crate::backend::{GraphSession, Tensor};
use crate::policy::PolicyError;
use ndarray::{s, Array4, Array5, ArrayView4, ArrayView5, Axis, Ix5};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use vjx_graphs::wan_vae::decoder::{FRAMES, LATENT};
use vjx_graphs::wan_vae::{cache_in_name, cache_out_name, decoder_cache_shapes};

const FFMPEG: &str = "ffmpeg";

/// How [`write_video`] stores frames; the output path decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFormat {
    /// `*.gif`: an animated GIF that loops.
    Gif,
    /// `*.mp4`: H.264 (yuv420p) encoded by the system `ffmpeg`.
    Mp4,
    /// No extension, or an existing directory: `frame_00000.png`, `frame_00001.png`, ...
    PngDir,
}

impl VideoFormat {
    /// The format `path` asks for. Checks what can be checked before decoding: a known
    /// extension, and for `.mp4` an `ffmpeg` on PATH.
    pub fn for_path(path: &Path) -> Result<Self, PolicyError> {
        Self::for_path_with(path, FFMPEG)
    }

    fn for_path_with(path: &Path, ffmpeg: &str) -> Result<Self, PolicyError> {
        if path.is_dir() {
            return Ok(VideoFormat::PngDir);
        }
        let extension = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match extension.as_deref() {
            None => Ok(VideoFormat::PngDir),
            Some("gif") => Ok(VideoFormat::Gif),
            Some("mp4") if program_runs(ffmpeg) => Ok(VideoFormat::Mp4),
            Some("mp4") => Err(PolicyError::Input(format!(
                "{}: writing .mp4 needs `{ffmpeg}` on PATH and none was found; \
                 save as .gif, or give a directory (one PNG per frame)",
                path.display()
            ))),
            Some(other) => Err(PolicyError::Input(format!(
                "{}: unknown video extension `.{other}`; use .gif, .mp4, or a path without \
                 extension for a directory of PNG frames",
                path.display()
            ))),
        }
    }
}

/// What [`write_video`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoWritten {
    pub path: PathBuf,
    pub format: VideoFormat,
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub fps: u32,
}

impl fmt::Display for VideoWritten {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.format {
            VideoFormat::Gif => "GIF",
            VideoFormat::Mp4 => "MP4",
            VideoFormat::PngDir => "PNG frames",
        };
        write!(
            f,
            "{} ({what}, {} frames of {}x{} at {} fps)",
            self.path.display(),
            self.frames,
            self.width,
            self.height,
            self.fps
        )
    }
}

fn program_runs(program: &str) -> bool {
    Command::new(program)
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The decoder sessions, or an error saying the export predates them.
fn decoder(
    policy: &LingbotVaPolicy,
) -> Result<(&dyn GraphSession, &dyn GraphSession), PolicyError> {
    let sessions = policy.sessions();
    match (&sessions.vae_decode_first, &sessions.vae_decode_stream) {
        (Some(first), Some(stream)) => Ok((first.as_ref(), stream.as_ref())),
        _ => Err(PolicyError::Other(
            "this export has no VAE decoder graphs (`vae_decode_first`, `vae_decode_stream`), \
             so it cannot decode the predicted video; re-export it with this vjx"
                .into(),
        )),
    }
}

/// Fails unless the export can decode predicted latents (check before a rollout).
pub fn require_decoder(policy: &LingbotVaPolicy) -> Result<(), PolicyError> {
    decoder(policy).map(|_| ())
}

/// Decodes the chunks' predicted latents (each `[1, z, F, h, W]`, normalized, in the camera
/// layout) as one clip into uint8 frames `[T, H, W, 3]`: latent frame 0 gives one frame, every
/// later latent frame four.
pub fn decode_latents(
    policy: &LingbotVaPolicy,
    latents: &[Array5<f32>],
) -> Result<Array4<u8>, PolicyError> {
    let (first, stream) = decoder(policy)?;
    if latents.is_empty() {
        return Err(PolicyError::Input(
            "no predicted latents to decode (no chunk was predicted)".into(),
        ));
    }
    let views: Vec<_> = latents.iter().map(|l| l.view()).collect();
    let clip = ndarray::concatenate(Axis(2), &views).map_err(|e| {
        let shapes: Vec<_> = latents.iter().map(|l| l.shape().to_vec()).collect();
        PolicyError::Input(format!(
            "predicted latents of shapes {shapes:?} do not join on frames: {e}"
        ))
    })?;
    let [batch, _, time, h, w] = *clip.shape() else {
        unreachable!("Array5")
    };
    if batch != 1 {
        return Err(PolicyError::Input(format!(
            "predicted latents have batch {batch}, expected 1"
        )));
    }
    let scale = policy.vae_config.spatial_factor();
    let num_caches = decoder_cache_shapes(&policy.vae_config, batch, h * scale, w * scale).len();
    let cache_names: Vec<String> = (0..num_caches).map(cache_in_name).collect();

    let mut caches: Vec<Tensor> = Vec::new();
    let mut pieces = Vec::with_capacity(time);
    for t in 0..time {
        let latent = Tensor::from(
            clip.slice(s![.., .., t..t + 1, .., ..])
                .to_owned()
                .into_dyn(),
        );
        let mut outputs = if t == 0 {
            first.run(&[(LATENT, &latent)])?
        } else {
            let mut inputs: Vec<(&str, &Tensor)> = vec![(LATENT, &latent)];
            inputs.extend(cache_names.iter().map(String::as_str).zip(&caches));
            stream.run(&inputs)?
        };
        caches = (0..num_caches)
            .map(|j| outputs.take(&cache_out_name(j)))
            .collect::<Result<_, _>>()?;
        let frames = outputs
            .take_f32(FRAMES)?
            .into_dimensionality::<Ix5>()
            .map_err(|e| PolicyError::Other(format!("VAE decoder frames are not 5-D: {e}")))?;
        pieces.push(frames);
    }
    let views: Vec<_> = pieces.iter().map(|p| p.view()).collect();
    let video = ndarray::concatenate(Axis(2), &views).expect("the decoder gives equal frame sizes");
    Ok(to_uint8_frames(video.view()))
}

/// Decoder output `[N, 3, T, H, W]` in [-1, 1] → uint8 `[T, H, W, 3]` of batch row 0, as
/// upstream: `round((clamp(x, -1, 1) + 1) / 2 · 255)` in f32, ties to even (torch.round).
pub fn to_uint8_frames(video: ArrayView5<f32>) -> Array4<u8> {
    video
        .index_axis(Axis(0), 0)
        .permuted_axes([1, 2, 3, 0])
        .mapv(to_level)
}

fn to_level(x: f32) -> u8 {
    (((x.clamp(-1.0, 1.0) + 1.0) / 2.0) * 255.0).round_ties_even() as u8
}

/// Writes `frames` `[T, H, W, 3]` to `path` in the format its extension names (see
/// [`VideoFormat`]). Everything is written beside `path` first and renamed into place, so a
/// failure leaves no partial video. An existing file is replaced; an existing directory only
/// when empty.
pub fn write_video(
    path: &Path,
    frames: ArrayView4<u8>,
    fps: u32,
) -> Result<VideoWritten, PolicyError> {
    write_video_with(path, frames, fps, FFMPEG)
}

fn write_video_with(
    path: &Path,
    frames: ArrayView4<u8>,
    fps: u32,
    ffmpeg: &str,
) -> Result<VideoWritten, PolicyError> {
    let [count, height, width, channels] = *frames.shape() else {
        unreachable!("Array4")
    };
    if count == 0 || height == 0 || width == 0 || channels != 3 {
        return Err(PolicyError::Input(format!(
            "video frames must be [T, H, W, 3] with T, H, W > 0, got {:?}",
            frames.shape()
        )));
    }
    if fps == 0 {
        return Err(PolicyError::Input("video fps must be at least 1".into()));
    }
    let format = VideoFormat::for_path_with(path, ffmpeg)?;
    let io = |e: std::io::Error, at: &Path| PolicyError::Other(format!("{}: {e}", at.display()));
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| io(e, &parent))?;
    if format == VideoFormat::PngDir && path.exists() {
        let is_empty_dir = std::fs::read_dir(path)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !is_empty_dir {
            return Err(PolicyError::Input(format!(
                "{}: exists and is not an empty directory; give a new path for the frames",
                path.display()
            )));
        }
    }
    let staging = Staging::beside(path);
    match format {
        VideoFormat::Gif => write_gif(&staging.path, frames, fps)?,
        VideoFormat::Mp4 => write_mp4(&staging.path, frames, fps, ffmpeg)?,
        VideoFormat::PngDir => write_png_dir(&staging.path, frames)?,
    }
    if format == VideoFormat::PngDir && path.is_dir() {
        std::fs::remove_dir(path).map_err(|e| io(e, path))?;
    }
    staging.commit(path)?;
    Ok(VideoWritten {
        path: path.to_path_buf(),
        format,
        frames: count,
        height,
        width,
        fps,
    })
}

/// A temp file or directory beside the target, removed unless renamed into place.
struct Staging {
    path: PathBuf,
    committed: bool,
}

impl Staging {
    fn beside(target: &Path) -> Self {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "video".into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = target.with_file_name(format!(".{name}.partial-{}-{nanos}", std::process::id()));
        Staging {
            path,
            committed: false,
        }
    }

    fn commit(mut self, target: &Path) -> Result<(), PolicyError> {
        std::fs::rename(&self.path, target).map_err(|e| {
            PolicyError::Other(format!(
                "moving {} to {}: {e}",
                self.path.display(),
                target.display()
            ))
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn image_error(path: &Path, e: image::ImageError) -> PolicyError {
    PolicyError::Other(format!("{}: {e}", path.display()))
}

fn frame_bytes(frames: ArrayView4<u8>, t: usize) -> Vec<u8> {
    frames.index_axis(Axis(0), t).iter().copied().collect()
}

fn write_gif(path: &Path, frames: ArrayView4<u8>, fps: u32) -> Result<(), PolicyError> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let [count, height, width, _] = *frames.shape() else {
        unreachable!("Array4")
    };
    let file = std::fs::File::create(path)
        .map_err(|e| PolicyError::Other(format!("{}: {e}", path.display())))?;
    let mut encoder = GifEncoder::new(std::io::BufWriter::new(file));
    encoder
        .set_repeat(Repeat::Infinite)
        .map_err(|e| image_error(path, e))?;
    let delay = image::Delay::from_numer_denom_ms(1000, fps);
    for t in 0..count {
        let rgba: Vec<u8> = frame_bytes(frames, t)
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect();
        let buffer =
            image::RgbaImage::from_raw(width as u32, height as u32, rgba).expect("H·W·4 bytes");
        encoder
            .encode_frame(image::Frame::from_parts(buffer, 0, 0, delay))
            .map_err(|e| image_error(path, e))?;
    }
    Ok(())
}

fn write_png_dir(dir: &Path, frames: ArrayView4<u8>) -> Result<(), PolicyError> {
    let [count, height, width, _] = *frames.shape() else {
        unreachable!("Array4")
    };
    std::fs::create_dir(dir).map_err(|e| PolicyError::Other(format!("{}: {e}", dir.display())))?;
    for t in 0..count {
        let file = dir.join(format!("frame_{t:05}.png"));
        image::save_buffer_with_format(
            &file,
            &frame_bytes(frames, t),
            width as u32,
            height as u32,
            image::ExtendedColorType::Rgb8,
            image::ImageFormat::Png,
        )
        .map_err(|e| image_error(&file, e))?;
    }
    Ok(())
}

fn write_mp4(
    path: &Path,
    frames: ArrayView4<u8>,
    fps: u32,
    ffmpeg: &str,
) -> Result<(), PolicyError> {
    let [_, height, width, _] = *frames.shape() else {
        unreachable!("Array4")
    };
    let mut child = Command::new(ffmpeg)
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
        ])
        .args([
            "-s",
            &format!("{width}x{height}"),
            "-r",
            &fps.to_string(),
            "-i",
            "-",
        ])
        // yuv420p needs even sides; pad odd ones by a pixel.
        .args([
            "-vf",
            "pad=ceil(iw/2)*2:ceil(ih/2)*2",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "mp4",
        ])
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| PolicyError::Other(format!("starting `{ffmpeg}`: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    let raw = frames.as_standard_layout();
    // A write error means ffmpeg quit early; its exit status and stderr say why.
    let _ = stdin.write_all(raw.as_slice().expect("standard layout"));
    drop(stdin);
    let output = child
        .wait_with_output()
        .map_err(|e| PolicyError::Other(format!("waiting for `{ffmpeg}`: {e}")))?;
    if !output.status.success() {
        return Err(PolicyError::Other(format!(
            "`{ffmpeg}` failed ({}) writing {}: {}",
            output.status,
            path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    /// `[T, H, W, 3]` frames whose every pixel differs (T·H·W ≤ 256 colors, so GIF keeps them).
    fn distinct_frames(t: usize, h: usize, w: usize) -> Array4<u8> {
        Array::from_shape_fn((t, h, w, 3), |(f, y, x, c)| {
            let id = (f * h * w + y * w + x) as u8;
            [id, 255 - id, id.wrapping_mul(7)][c]
        })
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn uint8_conversion_maps_the_range_ends_and_clamps_outside() {
        let video =
            Array5::from_shape_vec((1, 3, 1, 1, 2), vec![-1.0, 1.0, 0.0, -3.0, 2.0, 0.5]).unwrap();
        let frames = to_uint8_frames(video.view());
        assert_eq!(frames.shape(), &[1, 1, 2, 3]);
        // Pixel 0 has channels (-1, 0, 2), pixel 1 has (1, -3, 0.5).
        assert_eq!(frames.slice(s![0, 0, 0, ..]).to_vec(), vec![0, 128, 255]);
        assert_eq!(frames.slice(s![0, 0, 1, ..]).to_vec(), vec![255, 0, 191]);
    }

    #[test]
    fn uint8_conversion_rounds_half_levels_to_even_like_torch_round() {
        // 1 − 1/255 lands exactly on level 254.5 in f32; half away from zero would give 255.
        let x = (1.0f64 - 1.0 / 255.0) as f32;
        assert_eq!(((x + 1.0) / 2.0) * 255.0, 254.5);
        assert_eq!(to_level(x), 254);
        // 0 is level 127.5 → 128; −1 + 1/255 lands just under level 0.5 → 0.
        assert_eq!(to_level(0.0), 128);
        assert_eq!(to_level((-1.0f64 + 1.0 / 255.0) as f32), 0);
        assert_eq!(to_level((-1.0f64 + 3.0 / 255.0) as f32), 1);
    }

    #[test]
    fn uint8_conversion_puts_time_first_and_channels_last() {
        let video = Array5::from_shape_fn(
            (1, 3, 2, 1, 1),
            |(_, c, t, _, _)| if c == t { 1.0 } else { -1.0 },
        );
        let frames = to_uint8_frames(video.view());
        assert_eq!(frames.shape(), &[2, 1, 1, 3]);
        assert_eq!(frames.slice(s![0, 0, 0, ..]).to_vec(), vec![255, 0, 0]);
        assert_eq!(frames.slice(s![1, 0, 0, ..]).to_vec(), vec![0, 255, 0]);
    }

    #[test]
    fn a_path_without_extension_gets_one_png_per_frame_and_no_staging_left() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("frames");
        let frames = distinct_frames(3, 2, 5);
        let written = write_video(&target, frames.view(), 4).unwrap();
        assert_eq!(written.format, VideoFormat::PngDir);
        assert_eq!((written.frames, written.height, written.width), (3, 2, 5));
        assert_eq!(
            names_in(&target),
            vec!["frame_00000.png", "frame_00001.png", "frame_00002.png"]
        );
        for t in 0..3 {
            let png = image::open(target.join(format!("frame_{t:05}.png")))
                .unwrap()
                .to_rgb8();
            assert_eq!(png.dimensions(), (5, 2));
            assert_eq!(png.into_raw(), frame_bytes(frames.view(), t));
        }
        assert_eq!(names_in(dir.path()), vec!["frames"]);
    }

    #[test]
    fn an_existing_empty_directory_is_filled_and_a_non_empty_one_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.d");
        std::fs::create_dir(&empty).unwrap();
        let written = write_video(&empty, distinct_frames(2, 1, 1).view(), 4).unwrap();
        assert_eq!(written.format, VideoFormat::PngDir);
        assert_eq!(names_in(&empty), vec!["frame_00000.png", "frame_00001.png"]);

        let full = dir.path().join("full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("notes.txt"), "keep").unwrap();
        let err = write_video(&full, distinct_frames(2, 1, 1).view(), 4)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("full") && err.contains("not an empty directory"),
            "{err}"
        );
        assert_eq!(names_in(&full), vec!["notes.txt"]);
        assert_eq!(names_in(dir.path()), vec!["empty.d", "full"]);
    }

    #[test]
    fn a_gif_path_gets_an_animated_gif_with_every_frame_and_pixel() {
        use image::AnimationDecoder;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("video.gif");
        let frames = distinct_frames(4, 3, 6);
        let written = write_video(&target, frames.view(), 10).unwrap();
        assert_eq!(written.format, VideoFormat::Gif);
        let file = std::io::BufReader::new(std::fs::File::open(&target).unwrap());
        let decoded = image::codecs::gif::GifDecoder::new(file)
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap();
        assert_eq!(decoded.len(), 4);
        for (t, frame) in decoded.into_iter().enumerate() {
            assert_eq!(frame.delay().numer_denom_ms(), (100, 1));
            let rgb: Vec<u8> = frame
                .into_buffer()
                .pixels()
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect();
            assert_eq!(rgb, frame_bytes(frames.view(), t), "frame {t}");
        }
        assert_eq!(names_in(dir.path()), vec!["video.gif"]);
    }

    #[test]
    fn an_existing_gif_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("video.gif");
        std::fs::write(&target, "old").unwrap();
        write_video(&target, distinct_frames(1, 2, 2).view(), 5).unwrap();
        assert!(std::fs::read(&target).unwrap().starts_with(b"GIF89a"));
    }

    #[test]
    fn mp4_without_ffmpeg_says_to_use_gif_or_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("video.mp4");
        let missing = "vjx-test-no-such-ffmpeg";
        let err = write_video_with(&target, distinct_frames(1, 2, 2).view(), 5, missing)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(missing) && err.contains(".gif") && err.contains("directory"),
            "{err}"
        );
        assert!(names_in(dir.path()).is_empty());
    }

    #[test]
    fn an_unknown_extension_is_refused_naming_the_supported_ones() {
        let err = VideoFormat::for_path(Path::new("out/video.webm"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(".webm") && err.contains(".gif") && err.contains(".mp4"),
            "{err}"
        );
    }

    #[test]
    fn zero_fps_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_video(
            &dir.path().join("v.gif"),
            distinct_frames(1, 1, 1).view(),
            0,
        )
        .unwrap_err();
        assert!(err.to_string().contains("fps"), "{err}");
    }
}
