//! Pillow's `Image.resize(size, resample=…)` on 8-bit images (L, RGB), bit for bit: the
//! separable convolution of `libImaging/Resample.c` in 8-bit fixed point, and the affine
//! nearest-neighbour lookup Pillow uses for `NEAREST`. transformers' slow image processors
//! (DexVLA's `Qwen2VLImageProcessor`) resize this way, in uint8, before rescaling to float.

use ndarray::{Array3, ArrayView3};
use std::borrow::Cow;
use std::f64::consts::PI;

/// Pillow's resampling filters (`PIL.Image.Resampling`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PilFilter {
    Nearest,
    Bilinear,
    Bicubic,
    Lanczos,
}

/// Fractional bits of the fixed-point weights: 8 bits of pixel value and 2 bits of headroom for
/// kernels whose lobes push a sum below 0 or above 255.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's `Image.resize` with `box=None, reducing_gap=None` on an 8-bit image
/// [height, width, channels]; `size` is [height, width] (Pillow takes (width, height)).
/// Every channel is resampled alone, as Pillow does for L and RGB (not RGBA, which it
/// premultiplies). Unchanged sizes give a copy.
///
/// The convolving filters run a horizontal pass, clip to uint8, then a vertical pass, skipping a
/// pass whose axis keeps its length; an image over 100 times taller than wide that shrinks in
/// height takes the vertical pass first.
pub fn pil_resize(image: ArrayView3<u8>, size: [usize; 2], filter: PilFilter) -> Array3<u8> {
    let (in_h, in_w, channels) = image.dim();
    let [out_h, out_w] = size;
    assert!(
        in_h > 0 && in_w > 0 && channels > 0 && out_h > 0 && out_w > 0,
        "pil_resize: {in_h}x{in_w}x{channels} to {out_h}x{out_w}: sizes must be positive"
    );
    let image = image.as_standard_layout();
    if [in_h, in_w] == size {
        return image.into_owned();
    }
    let pixels = image.as_slice().expect("standard layout");
    let data = match filter {
        PilFilter::Nearest => nearest(pixels, [in_h, in_w], size, channels),
        _ => convolve(pixels, [in_h, in_w], size, channels, filter),
    };
    Array3::from_shape_vec((out_h, out_w, channels), data).expect("output length")
}

fn convolve(
    pixels: &[u8],
    [in_h, in_w]: [usize; 2],
    [out_h, out_w]: [usize; 2],
    channels: usize,
    filter: PilFilter,
) -> Vec<u8> {
    let mut data = Cow::Borrowed(pixels);
    if in_h > 100 * in_w && out_h < in_h {
        data = vertical_pass(&data, in_w * channels, &Taps::new(in_h, out_h, filter)).into();
        if out_w != in_w {
            data = horizontal_pass(&data, in_w, channels, &Taps::new(in_w, out_w, filter)).into();
        }
    } else {
        if out_w != in_w {
            data = horizontal_pass(&data, in_w, channels, &Taps::new(in_w, out_w, filter)).into();
        }
        if out_h != in_h {
            data = vertical_pass(&data, out_w * channels, &Taps::new(in_h, out_h, filter)).into();
        }
    }
    data.into_owned()
}

impl PilFilter {
    /// Half-width of the kernel before it is stretched for downsampling.
    fn support(self) -> f64 {
        match self {
            PilFilter::Nearest => unreachable!("nearest neighbour does not convolve"),
            PilFilter::Bilinear => 1.0,
            PilFilter::Bicubic => 2.0,
            PilFilter::Lanczos => 3.0,
        }
    }

    /// The kernel, in Pillow's operation order (a reordered polynomial rounds differently).
    fn weight(self, x: f64) -> f64 {
        match self {
            PilFilter::Nearest => unreachable!("nearest neighbour does not convolve"),
            PilFilter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            PilFilter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            PilFilter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * PI;
        x.sin() / x
    }
}

/// Fixed-point weights along one axis: output `i` sums `count` inputs from `first` with
/// `weights[i * stride..][..count]`.
struct Taps {
    spans: Vec<(usize, usize)>,
    stride: usize,
    weights: Vec<i32>,
}

impl Taps {
    fn new(in_len: usize, out_len: usize, filter: PilFilter) -> Self {
        let scale = in_len as f64 / out_len as f64;
        let filter_scale = scale.max(1.0);
        let support = filter.support() * filter_scale;
        let inv_filter_scale = 1.0 / filter_scale;
        let stride = support.ceil() as usize * 2 + 1;
        let mut spans = Vec::with_capacity(out_len);
        let mut weights = vec![0; out_len * stride];
        let mut raw = Vec::with_capacity(stride);
        for (i, fixed) in weights.chunks_exact_mut(stride).enumerate() {
            let center = (i as f64 + 0.5) * scale;
            // `as` truncates toward zero, as C's int conversion does.
            let first = ((center - support + 0.5) as i64).max(0) as usize;
            let end = ((center + support + 0.5) as i64).min(in_len as i64) as usize;
            raw.clear();
            raw.extend(
                (first..end).map(|x| filter.weight((x as f64 - center + 0.5) * inv_filter_scale)),
            );
            let total: f64 = raw.iter().sum();
            for (f, w) in fixed.iter_mut().zip(&raw) {
                *f = to_fixed(if total != 0.0 { w / total } else { *w });
            }
            spans.push((first, raw.len()));
        }
        Taps {
            spans,
            stride,
            weights,
        }
    }

    fn get(&self, index: usize) -> (usize, &[i32]) {
        let (first, count) = self.spans[index];
        (first, &self.weights[index * self.stride..][..count])
    }

    fn out_len(&self) -> usize {
        self.spans.len()
    }
}

/// Rounds half away from zero.
fn to_fixed(weight: f64) -> i32 {
    let scaled = weight * f64::from(1u32 << PRECISION_BITS);
    (if weight < 0.0 {
        scaled - 0.5
    } else {
        scaled + 0.5
    }) as i32
}

/// The sum's starting value: adds one half before the final shift, so the shift rounds.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

fn clip8(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resamples each row of a [rows, width, channels] buffer to `taps.out_len()` columns.
fn horizontal_pass(data: &[u8], width: usize, channels: usize, taps: &Taps) -> Vec<u8> {
    let in_row = width * channels;
    let out_row = taps.out_len() * channels;
    let mut out = vec![0; data.len() / in_row * out_row];
    let mut sums = vec![0i32; channels];
    for (src, dst) in data.chunks_exact(in_row).zip(out.chunks_exact_mut(out_row)) {
        for (x, pixel) in dst.chunks_exact_mut(channels).enumerate() {
            let (first, weights) = taps.get(x);
            sums.fill(HALF);
            for (tap, &w) in src[first * channels..].chunks_exact(channels).zip(weights) {
                for (s, &v) in sums.iter_mut().zip(tap) {
                    *s += i32::from(v) * w;
                }
            }
            for (p, &s) in pixel.iter_mut().zip(&sums) {
                *p = clip8(s);
            }
        }
    }
    out
}

/// Resamples the rows (each `row_len` values) of a buffer to `taps.out_len()` rows.
fn vertical_pass(data: &[u8], row_len: usize, taps: &Taps) -> Vec<u8> {
    let mut out = vec![0; taps.out_len() * row_len];
    let mut sums = vec![0i32; row_len];
    for (y, dst) in out.chunks_exact_mut(row_len).enumerate() {
        let (first, weights) = taps.get(y);
        sums.fill(HALF);
        for (src, &w) in data[first * row_len..].chunks_exact(row_len).zip(weights) {
            for (s, &v) in sums.iter_mut().zip(src) {
                *s += i32::from(v) * w;
            }
        }
        for (p, &s) in dst.iter_mut().zip(&sums) {
            *p = clip8(s);
        }
    }
    out
}

/// Pillow's `NEAREST` resize is an affine lookup: output `i` reads input `floor(p)`, where `p`
/// starts at half a step and grows by `in/out` one addition at a time (the accumulated rounding
/// is part of the result). Positions past the input give zeros.
fn nearest(
    pixels: &[u8],
    [in_h, in_w]: [usize; 2],
    [out_h, out_w]: [usize; 2],
    channels: usize,
) -> Vec<u8> {
    let columns = nearest_indices(in_w, out_w);
    let mut out = vec![0; out_h * out_w * channels];
    for (row, dst) in nearest_indices(in_h, out_h)
        .into_iter()
        .zip(out.chunks_exact_mut(out_w * channels))
    {
        let Some(row) = row else { continue };
        let src = &pixels[row * in_w * channels..][..in_w * channels];
        for (column, pixel) in columns.iter().zip(dst.chunks_exact_mut(channels)) {
            if let Some(x) = column {
                pixel.copy_from_slice(&src[x * channels..][..channels]);
            }
        }
    }
    out
}

fn nearest_indices(in_len: usize, out_len: usize) -> Vec<Option<usize>> {
    let step = in_len as f64 / out_len as f64;
    let mut position = step * 0.5;
    (0..out_len)
        .map(|_| {
            let index = position as usize;
            position += step;
            (index < in_len).then_some(index)
        })
        .collect()
}
