//! Camera frames to VAE input: resize, scale to [-1, 1], and the latent camera layouts.
//!
//! Frames are float32 CHW in [0, 1], as `preprocess::image::load_rgb_f32` gives them.

use ndarray::{concatenate, s, Array3, Array5, ArrayView3, ArrayView5, Axis};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CameraError {
    #[error("no frames to stack into a VAE clip")]
    NoFrames,
    #[error("no cameras to stack")]
    NoCameras,
    #[error("{what}: shape {got:?}, expected {expected}")]
    Shape {
        what: &'static str,
        got: Vec<usize>,
        expected: String,
    },
}

/// `F.interpolate(image[None], size=(out_h, out_w), mode="bilinear", align_corners=False)[0]`
/// (no antialias): each output pixel samples the input at `(dst + 0.5)·in/out − 0.5`, clamped at
/// 0, between its two neighbours on each axis. Width is interpolated first, then height.
pub fn resize_bilinear(image: ArrayView3<f32>, out_h: usize, out_w: usize) -> Array3<f32> {
    let (channels, in_h, in_w) = image.dim();
    let rows = linear_taps(in_h, out_h);
    let cols = linear_taps(in_w, out_w);
    Array3::from_shape_fn((channels, out_h, out_w), |(c, y, x)| {
        let (y0, y1, wy0, wy1) = rows[y];
        let (x0, x1, wx0, wx1) = cols[x];
        let top = image[[c, y0, x0]] * wx0 + image[[c, y0, x1]] * wx1;
        let bottom = image[[c, y1, x0]] * wx0 + image[[c, y1, x1]] * wx1;
        top * wy0 + bottom * wy1
    })
}

/// Per output index: the two input indices and their weights, computed in f32 as torch does
/// (the scale is `in/out` in f32; the source position is one fused multiply-add).
fn linear_taps(in_len: usize, out_len: usize) -> Vec<(usize, usize, f32, f32)> {
    let scale = in_len as f32 / out_len as f32;
    (0..out_len)
        .map(|dst| {
            let src = scale.mul_add(dst as f32 + 0.5, -0.5).max(0.0);
            let i0 = (src as usize).min(in_len - 1);
            let i1 = if i0 + 1 < in_len { i0 + 1 } else { i0 };
            let w1 = (src - i0 as f32).clamp(0.0, 1.0);
            (i0, i1, 1.0 - w1, w1)
        })
        .collect()
}

/// `x·2 − 1`: [0, 1] pixels to the VAE's [−1, 1].
pub fn to_model_range(image: &mut Array3<f32>) {
    image.mapv_inplace(|v| v * 2.0 - 1.0);
}

/// Mirrors the width axis of a `[C, H, W]` image.
pub fn hflip(image: ArrayView3<f32>) -> Array3<f32> {
    image.slice(s![.., .., ..;-1]).to_owned()
}

/// Upstream `_camera_frame` for one frame: optional horizontal flip (`image_hflip`), bilinear
/// resize to `size = [H, W]`, then `*2 − 1`. Returns `[3, H, W]`.
pub fn camera_frame(image: ArrayView3<f32>, size: [usize; 2], flip: bool) -> Array3<f32> {
    let flipped;
    let source = if flip {
        flipped = hflip(image);
        flipped.view()
    } else {
        image
    };
    let mut frame = resize_bilinear(source, size[0], size[1]);
    to_model_range(&mut frame);
    frame
}

/// One camera's frames prepared by [`camera_frame`] and stacked on time: `[1, 3, T, H, W]`.
pub fn vae_frames(
    frames: &[ArrayView3<f32>],
    size: [usize; 2],
    flip: bool,
) -> Result<Array5<f32>, CameraError> {
    if frames.is_empty() {
        return Err(CameraError::NoFrames);
    }
    let prepared: Vec<Array3<f32>> = frames
        .iter()
        .map(|f| camera_frame(f.view(), size, flip))
        .collect();
    let views: Vec<_> = prepared
        .iter()
        .map(|f| f.view().insert_axis(Axis(1)))
        .collect();
    let clip = concatenate(Axis(1), &views).expect("frames share one size after the resize");
    Ok(clip.insert_axis(Axis(0)))
}

/// Cameras on the batch axis: `[1, 3, T, H, W]` clips to `[N, 3, T, H, W]` (one VAE call).
pub fn stack_cameras(clips: &[Array5<f32>]) -> Result<Array5<f32>, CameraError> {
    let first = clips.first().ok_or(CameraError::NoCameras)?;
    for clip in clips {
        if clip.shape()[0] != 1 || clip.shape()[1..] != first.shape()[1..] {
            return Err(CameraError::Shape {
                what: "camera clip",
                got: clip.shape().to_vec(),
                expected: format!("[1, {:?}] like the first camera", &first.shape()[1..]),
            });
        }
    }
    let views: Vec<_> = clips.iter().map(|c| c.view()).collect();
    Ok(concatenate(Axis(0), &views).expect("shapes checked"))
}

/// The `width_concat` layout: per-camera latents `[N, C, T, h, w]` side by side on width,
/// `[1, C, T, h, N·w]`, camera k in width slice `[k·w, (k+1)·w)`.
pub fn width_concat(latent: ArrayView5<f32>) -> Array5<f32> {
    let cameras: Vec<_> = latent
        .axis_iter(Axis(0))
        .map(|cam| cam.insert_axis(Axis(0)))
        .collect();
    concatenate(Axis(4), &cameras).expect("cameras share one shape")
}

/// The `robotwin_tshape` layout: the two wrist latents `[2, C, T, h/2, w/2]` side by side
/// (left, right) on top of the head latent `[1, C, T, h, w]`, giving `[1, C, T, h + h/2, w]`.
pub fn robotwin_tshape(
    head: ArrayView5<f32>,
    wrists: ArrayView5<f32>,
) -> Result<Array5<f32>, CameraError> {
    let &[one, channels, frames, h, w] = head.shape() else {
        unreachable!("5-D view")
    };
    if one != 1 {
        return Err(CameraError::Shape {
            what: "tshape head latent",
            got: head.shape().to_vec(),
            expected: "[1, C, T, h, w]".into(),
        });
    }
    let expected_wrists = [2, channels, frames, h / 2, w / 2];
    if wrists.shape() != expected_wrists || w % 2 != 0 {
        return Err(CameraError::Shape {
            what: "tshape wrist latents",
            got: wrists.shape().to_vec(),
            expected: format!(
                "{expected_wrists:?} for an even-width head {:?}",
                head.shape()
            ),
        });
    }
    let top = width_concat(wrists);
    Ok(concatenate(Axis(3), &[top.view(), head]).expect("shapes checked"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    #[test]
    fn resize_to_the_same_size_is_the_identity() {
        let image =
            Array::from_shape_fn((3, 5, 7), |(c, y, x)| (c * 35 + y * 7 + x) as f32 / 100.0);
        assert_eq!(resize_bilinear(image.view(), 5, 7), image);
    }

    #[test]
    fn halving_averages_pixel_pairs() {
        let image = Array3::from_shape_vec((1, 1, 4), vec![0.0, 1.0, 2.0, 4.0]).unwrap();
        assert_eq!(
            resize_bilinear(image.view(), 1, 2)
                .into_raw_vec_and_offset()
                .0,
            vec![0.5, 3.0]
        );
    }

    #[test]
    fn tshape_rejects_mismatched_wrists() {
        let head = Array5::<f32>::zeros((1, 2, 1, 4, 6));
        let wrists = Array5::<f32>::zeros((2, 2, 1, 2, 2));
        assert!(matches!(
            robotwin_tshape(head.view(), wrists.view()),
            Err(CameraError::Shape { .. })
        ));
    }
}
