//! The Qwen2-VL image processor as Qwen3-VL uses it (transformers 5.5.4
//! `Qwen2VLImageProcessor`, torchvision backend), for float inputs already in [0, 1]
//! (LeRobot passes `do_rescale=False`): smart resize, antialiased resize, normalize, and
//! patchify into `pixel_values` rows in merge-block order plus `image_grid_thw`.

use super::image::{antialiased_resize, ImageF32, ResizeFilter};
use super::PreprocessError;
use ndarray::{Array2, ArrayView3};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The image processor fields that shape `pixel_values`, read from a backbone directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QwenImageProcessorConfig {
    pub min_pixels: u64,
    pub max_pixels: u64,
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub merge_size: usize,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    pub do_resize: bool,
    pub do_normalize: bool,
    pub filter: ResizeFilter,
}

impl Default for QwenImageProcessorConfig {
    /// The class defaults of `Qwen2VLImageProcessor` (OpenAI CLIP mean/std, patch 14).
    fn default() -> Self {
        QwenImageProcessorConfig {
            min_pixels: 56 * 56,
            max_pixels: 28 * 28 * 1280,
            patch_size: 14,
            temporal_patch_size: 2,
            merge_size: 2,
            image_mean: [0.481_454_66, 0.457_827_5, 0.408_210_73],
            image_std: [0.268_629_54, 0.261_302_6, 0.275_777_1],
            do_resize: true,
            do_normalize: true,
            filter: ResizeFilter::Bicubic,
        }
    }
}

/// PIL resampling codes as they appear in `preprocessor_config.json`.
const PIL_LANCZOS: u64 = 1;
const PIL_BILINEAR: u64 = 2;
const PIL_BICUBIC: u64 = 3;

impl QwenImageProcessorConfig {
    /// Reads the image processor config the way `AutoImageProcessor` does: the nested
    /// `image_processor` entry of `processor_config.json` if there is one, else
    /// `preprocessor_config.json`.
    pub fn from_backbone_dir(dir: &Path) -> Result<Self, PreprocessError> {
        let nested = dir.join("processor_config.json");
        if nested.is_file() {
            if let Some(entry) = read_json(&nested)?.get("image_processor") {
                return Self::from_json(entry, &nested);
            }
        }
        let flat = dir.join("preprocessor_config.json");
        Self::from_json(&read_json(&flat)?, &flat)
    }

    /// Parses one image processor JSON object; `source` only names the file in errors.
    /// `min_pixels` / `max_pixels` override `size.shortest_edge` / `size.longest_edge`, as in
    /// the processor's constructor. `do_rescale` is ignored: inputs are already in [0, 1].
    pub fn from_json(json: &Value, source: &Path) -> Result<Self, PreprocessError> {
        let field = Fields { json, source };
        let mut config = Self::default();
        let (mut min_pixels, mut max_pixels) = (Some(config.min_pixels), Some(config.max_pixels));
        if let Some(size) = field.present("size") {
            let size_field = Fields { json: size, source };
            min_pixels = size_field.u64("shortest_edge")?;
            max_pixels = size_field.u64("longest_edge")?;
        }
        min_pixels = field.u64("min_pixels")?.or(min_pixels);
        max_pixels = field.u64("max_pixels")?.or(max_pixels);
        config.min_pixels =
            min_pixels.ok_or_else(|| field.bad("size.shortest_edge", "missing".into()))?;
        config.max_pixels =
            max_pixels.ok_or_else(|| field.bad("size.longest_edge", "missing".into()))?;
        if let Some(v) = field.u64("patch_size")? {
            config.patch_size = v as usize;
        }
        if let Some(v) = field.u64("temporal_patch_size")? {
            config.temporal_patch_size = v as usize;
        }
        if let Some(v) = field.u64("merge_size")? {
            config.merge_size = v as usize;
        }
        if let Some(v) = field.rgb("image_mean")? {
            config.image_mean = v;
        }
        if let Some(v) = field.rgb("image_std")? {
            config.image_std = v;
        }
        if let Some(v) = field.bool("do_resize")? {
            config.do_resize = v;
        }
        if let Some(v) = field.bool("do_normalize")? {
            config.do_normalize = v;
        }
        if let Some(code) = field.u64("resample")? {
            config.filter = match code {
                PIL_BICUBIC => ResizeFilter::Bicubic,
                // The torchvision backend has no lanczos for tensors and uses bicubic instead.
                PIL_LANCZOS => ResizeFilter::Bicubic,
                PIL_BILINEAR => ResizeFilter::Bilinear,
                other => {
                    return Err(field.bad(
                        "resample",
                        format!("PIL code {other} is not supported (2 or 3)"),
                    ))
                }
            };
        }
        if config.patch_size == 0 || config.merge_size == 0 || config.temporal_patch_size == 0 {
            return Err(field.bad(
                "patch_size",
                "patch, merge and temporal patch sizes must be positive".into(),
            ));
        }
        Ok(config)
    }

    /// `patch_size · merge_size`: both output sides are multiples of it.
    pub fn resize_factor(&self) -> usize {
        self.patch_size * self.merge_size
    }
}

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
    let row_len = 3 * config.temporal_patch_size * config.patch_size * config.patch_size;
    let mut rows: Vec<f32> = Vec::new();
    let mut grids: Vec<i64> = Vec::new();
    for (index, image) in images.iter().enumerate() {
        let (channels, height, width) = image.dim();
        if channels != 3 {
            return Err(PreprocessError::ImageShape {
                what: format!("#{index} ({channels}x{height}x{width})"),
                reason: "the Qwen image processor expects 3 channels".into(),
            });
        }
        let mut prepared = resize_for_qwen(*image, config)?;
        if config.do_normalize {
            normalize(&mut prepared, config);
        }
        let grid = append_patches(&prepared, config, &mut rows).map_err(|reason| {
            PreprocessError::ImageShape {
                what: format!("#{index} ({channels}x{height}x{width})"),
                reason,
            }
        })?;
        grids.extend(grid);
    }
    let n_rows = rows.len() / row_len;
    Ok(QwenVisionInputs {
        pixel_values: Array2::from_shape_vec((n_rows, row_len), rows).expect("whole rows"),
        image_grid_thw: Array2::from_shape_vec((images.len(), 3), grids).expect("three per image"),
    })
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

fn read_json(path: &Path) -> Result<Value, PreprocessError> {
    let text = std::fs::read_to_string(path).map_err(|e| PreprocessError::FileRead {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| PreprocessError::FileRead {
        path: path.to_path_buf(),
        reason: format!("invalid JSON: {e}"),
    })
}

/// Typed access to the optional fields of one JSON object, with errors naming file and key.
struct Fields<'a> {
    json: &'a Value,
    source: &'a Path,
}

impl Fields<'_> {
    fn bad(&self, key: &str, reason: String) -> PreprocessError {
        PreprocessError::ConfigField {
            path: PathBuf::from(self.source),
            key: key.to_string(),
            reason,
        }
    }

    fn present(&self, key: &str) -> Option<&Value> {
        self.json.get(key).filter(|v| !v.is_null())
    }

    fn u64(&self, key: &str) -> Result<Option<u64>, PreprocessError> {
        self.present(key)
            .map(|v| {
                v.as_u64().ok_or_else(|| {
                    self.bad(key, format!("expected a non-negative integer, got {v}"))
                })
            })
            .transpose()
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, PreprocessError> {
        self.present(key)
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| self.bad(key, format!("expected a boolean, got {v}")))
            })
            .transpose()
    }

    /// A per-channel list of three numbers, or one number for all channels.
    fn rgb(&self, key: &str) -> Result<Option<[f32; 3]>, PreprocessError> {
        let Some(value) = self.present(key) else {
            return Ok(None);
        };
        if let Some(x) = value.as_f64() {
            return Ok(Some([x as f32; 3]));
        }
        let numbers: Option<Vec<f32>> = value
            .as_array()
            .and_then(|a| a.iter().map(|x| x.as_f64().map(|x| x as f32)).collect());
        match numbers.as_deref() {
            Some([r, g, b]) => Ok(Some([*r, *g, *b])),
            _ => Err(self.bad(key, format!("expected three numbers, got {value}"))),
        }
    }
}
