//! The Qwen2-VL image processor as Qwen3-VL uses it (transformers 5.5.4
//! `Qwen2VLImageProcessor`, torchvision backend), for float inputs already in [0, 1]
//! (LeRobot passes `do_rescale=False`): smart resize, antialiased resize, normalize, and
//! patchify into `pixel_values` rows in merge-block order plus `image_grid_thw`.

use super::image::{antialiased_resize, ImageF32, ResizeFilter};
use super::pil_resize::{pil_resize, PilFilter};
use super::PreprocessError;
use ndarray::{Array2, ArrayView3};
pub use vjx_format::qwen_image::QwenImageProcessorConfig;

/// `pixel_values` [Σ gt·gh·gw, C·T·P·P] and `image_grid_thw` [n_images, 3], images in order.
#[derive(Debug, Clone, PartialEq)]
pub struct QwenVisionInputs {
    pub pixel_values: Array2<f32>,
    pub image_grid_thw: Array2<i64>,
}

impl QwenVisionInputs {
    /// Number of `<|image_pad|>` tokens each image takes in the prompt: `t·h·w / merge²`.
    pub fn tokens_per_image(&self, merge_size: usize) -> Vec<usize> {
        self.image_grid_thw
            .rows()
            .into_iter()
            .map(|thw| (thw[0] * thw[1] * thw[2]) as usize / (merge_size * merge_size))
            .collect()
    }
}

/// transformers' `smart_resize`: the nearest size with both sides multiples of `factor`
/// (Python banker's rounding) whose area lies within `[min_pixels, max_pixels]`, keeping the
/// aspect ratio as far as possible.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: u64,
    max_pixels: u64,
) -> Result<[usize; 2], PreprocessError> {
    let (short, long) = (height.min(width), height.max(width));
    if short == 0 || long as f64 / short as f64 > 200.0 {
        return Err(PreprocessError::ImageShape {
            what: format!("{height}x{width}"),
            reason: "aspect ratio must be below 200 and sides non-zero".into(),
        });
    }
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    let area = (height * width) as f64;
    let mut h_bar = (h / f).round_ties_even() as usize * factor;
    let mut w_bar = (w / f).round_ties_even() as usize * factor;
    if (h_bar * w_bar) as u64 > max_pixels {
        let beta = (area / max_pixels as f64).sqrt();
        h_bar = factor.max((h / beta / f).floor() as usize * factor);
        w_bar = factor.max((w / beta / f).floor() as usize * factor);
    } else if ((h_bar * w_bar) as u64) < min_pixels {
        let beta = (min_pixels as f64 / area).sqrt();
        h_bar = (h * beta / f).ceil() as usize * factor;
        w_bar = (w * beta / f).ceil() as usize * factor;
    }
    Ok([h_bar, w_bar])
}

/// Runs the processor on images given as float32 CHW in [0, 1] (3 channels).
pub fn process_images(
    images: &[ArrayView3<f32>],
    config: &QwenImageProcessorConfig,
) -> Result<QwenVisionInputs, PreprocessError> {
    patchify_each(images.len(), config, |index| {
        let image = images[index];
        let (channels, height, width) = image.dim();
        let what = format!("#{index} ({channels}x{height}x{width})");
        check_channels(channels, &what)?;
        Ok((resize_for_qwen(image, config)?, what))
    })
}

/// The slow image processor of transformers 4.x (the one DexVLA ran) on 8-bit RGB frames
/// (`[H, W, 3]`): Pillow's 8-bit resize to the smart-resize size, `· 1/255` (in f64, stored as
/// f32), normalize, patchify.
pub fn process_images_u8(
    images: &[ArrayView3<u8>],
    config: &QwenImageProcessorConfig,
) -> Result<QwenVisionInputs, PreprocessError> {
    patchify_each(images.len(), config, |index| {
        let image = images[index];
        let (height, width, channels) = image.dim();
        let what = format!("#{index} ({height}x{width}x{channels})");
        check_channels(channels, &what)?;
        let size = if config.do_resize {
            smart_resize(
                height,
                width,
                config.resize_factor(),
                config.min_pixels,
                config.max_pixels,
            )?
        } else {
            [height, width]
        };
        let resized = if size == [height, width] {
            image.to_owned()
        } else {
            pil_resize(image, size, pil_filter(config.filter))
        };
        let rescaled = resized
            .view()
            .permuted_axes([2, 0, 1])
            .mapv(|v| (f64::from(v) * (1.0 / 255.0)) as f32);
        Ok((rescaled, what))
    })
}

fn check_channels(channels: usize, what: &str) -> Result<(), PreprocessError> {
    if channels == 3 {
        return Ok(());
    }
    Err(PreprocessError::ImageShape {
        what: what.to_string(),
        reason: "the Qwen image processor expects 3 channels".into(),
    })
}

/// Normalizes and patchifies `count` images, each resized and rescaled by `prepare` (which also
/// describes the image for errors), into one [`QwenVisionInputs`].
fn patchify_each(
    count: usize,
    config: &QwenImageProcessorConfig,
    mut prepare: impl FnMut(usize) -> Result<(ImageF32, String), PreprocessError>,
) -> Result<QwenVisionInputs, PreprocessError> {
    let row_len = 3 * config.temporal_patch_size * config.patch_size * config.patch_size;
    let mut rows: Vec<f32> = Vec::new();
    let mut grids: Vec<i64> = Vec::new();
    for index in 0..count {
        let (mut prepared, what) = prepare(index)?;
        if config.do_normalize {
            normalize(&mut prepared, config);
        }
        let grid = append_patches(&prepared, config, &mut rows)
            .map_err(|reason| PreprocessError::ImageShape { what, reason })?;
        grids.extend(grid);
    }
    let n_rows = rows.len() / row_len;
    Ok(QwenVisionInputs {
        pixel_values: Array2::from_shape_vec((n_rows, row_len), rows).expect("whole rows"),
        image_grid_thw: Array2::from_shape_vec((count, 3), grids).expect("three per image"),
    })
}

fn pil_filter(filter: ResizeFilter) -> PilFilter {
    match filter {
        ResizeFilter::Bicubic => PilFilter::Bicubic,
        ResizeFilter::Bilinear => PilFilter::Bilinear,
    }
}

fn resize_for_qwen(
    image: ArrayView3<f32>,
    config: &QwenImageProcessorConfig,
) -> Result<ImageF32, PreprocessError> {
    let (_, height, width) = image.dim();
    if !config.do_resize {
        return Ok(image.to_owned());
    }
    let size = smart_resize(
        height,
        width,
        config.resize_factor(),
        config.min_pixels,
        config.max_pixels,
    )?;
    if size == [height, width] {
        return Ok(image.to_owned());
    }
    Ok(antialiased_resize(image, size, config.filter))
}

/// `(x − mean[c]) / std[c]` in float32, as `tvF.normalize` does.
fn normalize(image: &mut ImageF32, config: &QwenImageProcessorConfig) {
    for (c, mut plane) in image.outer_iter_mut().enumerate() {
        let (mean, std) = (config.image_mean[c], config.image_std[c]);
        plane.mapv_inplace(|x| (x - mean) / std);
    }
}

/// Appends one image's patch rows and returns its `[t, h, w]` grid. The single frame is
/// repeated `temporal_patch_size` times. Rows run over merge blocks in raster order, then
/// over the `merge × merge` patches inside a block in raster order; a row lists
/// `(channel, frame, y, x)` with x fastest.
fn append_patches(
    image: &ImageF32,
    config: &QwenImageProcessorConfig,
    rows: &mut Vec<f32>,
) -> Result<[i64; 3], String> {
    let (channels, height, width) = image.dim();
    let (p, m, tp) = (
        config.patch_size,
        config.merge_size,
        config.temporal_patch_size,
    );
    if height % (p * m) != 0 || width % (p * m) != 0 {
        return Err(format!(
            "resized size {height}x{width} is not a multiple of patch·merge = {}",
            p * m
        ));
    }
    let (grid_h, grid_w) = (height / p, width / p);
    rows.reserve(grid_h * grid_w * channels * tp * p * p);
    for block_y in 0..grid_h / m {
        for block_x in 0..grid_w / m {
            for in_y in 0..m {
                for in_x in 0..m {
                    let top = (block_y * m + in_y) * p;
                    let left = (block_x * m + in_x) * p;
                    for c in 0..channels {
                        for _frame in 0..tp {
                            for y in top..top + p {
                                for x in left..left + p {
                                    rows.push(image[[c, y, x]]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok([1, grid_h as i64, grid_w as i64])
}
