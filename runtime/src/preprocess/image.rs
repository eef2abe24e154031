//! Camera frames as float32 CHW images in [0, 1], and the two resizes upstream applies to them:
//! LeRobot's area resize (`F.interpolate(mode="area")`) and torch's antialiased separable resize
//! (`F.interpolate(mode="bicubic"|"bilinear", antialias=True, align_corners=False)`) on float input.

use super::PreprocessError;
use ndarray::{Array3, ArrayView3, Axis};
use std::path::Path;
pub use vjx_format::qwen_image::ResizeFilter;

/// A float32 image, [channels, height, width].
pub type ImageF32 = Array3<f32>;

/// Reads a PNG/JPEG file as RGB float32 CHW with values `u8 / 255`. Grayscale files become
/// three equal channels (upstream repeats a single channel to three).
pub fn load_rgb_f32(path: &Path) -> Result<ImageF32, PreprocessError> {
    let decoded = image::open(path).map_err(|source| PreprocessError::ImageRead {
        path: path.to_path_buf(),
        source,
    })?;
    let (width, height) = (decoded.width() as usize, decoded.height() as usize);
    match &decoded {
        image::DynamicImage::ImageLuma8(_) | image::DynamicImage::ImageLumaA8(_) => {
            let luma = decoded.to_luma8();
            let gray = Array3::from_shape_fn((1, height, width), |(_, y, x)| {
                f32::from(luma.get_pixel(x as u32, y as u32)[0]) / 255.0
            });
            Ok(to_three_channels(gray))
        }
        image::DynamicImage::ImageRgb8(_) | image::DynamicImage::ImageRgba8(_) => {
            let rgb = decoded.to_rgb8();
            Ok(Array3::from_shape_fn((3, height, width), |(c, y, x)| {
                f32::from(rgb.get_pixel(x as u32, y as u32)[c]) / 255.0
            }))
        }
        other => Err(PreprocessError::ImageShape {
            what: path.display().to_string(),
            reason: format!("pixel format {:?} is not 8-bit gray or RGB", other.color()),
        }),
    }
}

/// Repeats a single-channel image to three channels; three-channel images pass through.
pub fn to_three_channels(image: ImageF32) -> ImageF32 {
    if image.len_of(Axis(0)) != 1 {
        return image;
    }
    let view = image.view();
    ndarray::concatenate(Axis(0), &[view, view, view]).expect("equal shapes")
}

/// `F.interpolate(img[None], size=[h, w], mode="area")[0]`, i.e. adaptive average pooling:
/// output cell `i` averages input rows `floor(i·in/out) .. ceil((i+1)·in/out)`.
pub fn area_resize(image: ArrayView3<f32>, size: [usize; 2]) -> ImageF32 {
    let (channels, in_h, in_w) = image.dim();
    let [out_h, out_w] = size;
    let mut out = Array3::zeros((channels, out_h, out_w));
    for c in 0..channels {
        for oy in 0..out_h {
            let (y0, y1) = pooling_window(oy, in_h, out_h);
            for ox in 0..out_w {
                let (x0, x1) = pooling_window(ox, in_w, out_w);
                let mut sum = 0.0f32;
                for y in y0..y1 {
                    for x in x0..x1 {
                        sum += image[[c, y, x]];
                    }
                }
                // torch divides by the two window extents one after the other.
                out[[c, oy, ox]] = sum / (y1 - y0) as f32 / (x1 - x0) as f32;
            }
        }
    }
    out
}

fn pooling_window(index: usize, in_len: usize, out_len: usize) -> (usize, usize) {
    let start = index * in_len / out_len;
    let end = ((index + 1) * in_len).div_ceil(out_len);
    (start, end)
}

fn half_support(filter: ResizeFilter) -> f32 {
    match filter {
        ResizeFilter::Bilinear => 1.0,
        ResizeFilter::Bicubic => 2.0,
    }
}

fn kernel_weight(filter: ResizeFilter, x: f32) -> f32 {
    let x = x.abs();
    match filter {
        ResizeFilter::Bilinear => {
            if x < 1.0 {
                1.0 - x
            } else {
                0.0
            }
        }
        ResizeFilter::Bicubic => {
            const A: f32 = -0.5;
            if x < 1.0 {
                ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
            } else if x < 2.0 {
                ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
            } else {
                0.0
            }
        }
    }
}

/// `F.interpolate(img[None], size=[h, w], mode=filter, antialias=True, align_corners=False)[0]`
/// on float32: separable, width first then height, no rounding or clamping in between, and an
/// axis whose length does not change is left untouched.
pub fn antialiased_resize(
    image: ArrayView3<f32>,
    size: [usize; 2],
    filter: ResizeFilter,
) -> ImageF32 {
    let (_, in_h, in_w) = image.dim();
    let [out_h, out_w] = size;
    let mut current = image.to_owned();
    if out_w != in_w {
        current = resample_axis(current.view(), Axis(2), &AxisTaps::new(in_w, out_w, filter));
    }
    if out_h != in_h {
        current = resample_axis(current.view(), Axis(1), &AxisTaps::new(in_h, out_h, filter));
    }
    current
}

/// For each output index along one axis: the first input index and its normalized weights.
struct AxisTaps {
    taps: Vec<(usize, Vec<f32>)>,
}

impl AxisTaps {
    /// Mirrors torch's float32 weight computation (PIL's scheme): the kernel is stretched by
    /// `in/out` when downsampling, and each output's weights are normalized to sum to one.
    fn new(in_len: usize, out_len: usize, filter: ResizeFilter) -> Self {
        let scale = in_len as f32 / out_len as f32;
        let (support, inv_scale) = if scale >= 1.0 {
            (
                (f64::from(half_support(filter)) * f64::from(scale)) as f32,
                (1.0 / f64::from(scale)) as f32,
            )
        } else {
            (half_support(filter), 1.0)
        };
        let max_taps = support.ceil() as usize * 2 + 1;
        let taps = (0..out_len)
            .map(|i| {
                let center = (f64::from(scale) * (i as f64 + 0.5)) as f32;
                let first = ((f64::from(center - support) + 0.5) as i64).max(0) as usize;
                let end = ((f64::from(center + support) + 0.5) as i64).min(in_len as i64) as usize;
                let count = end.saturating_sub(first).min(max_taps);
                let mut weights: Vec<f32> = (0..count)
                    .map(|j| {
                        let offset = f64::from((j + first) as f32 - center) + 0.5;
                        kernel_weight(filter, (offset * f64::from(inv_scale)) as f32)
                    })
                    .collect();
                let total: f32 = weights.iter().sum();
                if total != 0.0 {
                    weights.iter_mut().for_each(|w| *w /= total);
                }
                (first, weights)
            })
            .collect();
        AxisTaps { taps }
    }
}

fn resample_axis(image: ArrayView3<f32>, axis: Axis, taps: &AxisTaps) -> ImageF32 {
    let mut shape = image.raw_dim();
    shape[axis.index()] = taps.taps.len();
    let mut out = Array3::zeros(shape);
    for (mut out_lane, in_lane) in out.lanes_mut(axis).into_iter().zip(image.lanes(axis)) {
        for (o, (first, weights)) in out_lane.iter_mut().zip(&taps.taps) {
            // torch's kernel accumulates with fused multiply-adds; so must we, to the last bit.
            let mut acc = 0.0f32;
            for (j, w) in weights.iter().enumerate() {
                acc = in_lane[first + j].mul_add(*w, acc);
            }
            *o = acc;
        }
    }
    out
}
