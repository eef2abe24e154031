//! The Qwen2-VL image processor's settings (`preprocessor_config.json`), as Qwen3-VL and
//! Qwen2-VL backbones ship them: the fields that shape `pixel_values`.

use crate::manifest::ManifestError;
use crate::validate::{at_least_one, ConfigFile, FieldError};
use crate::SpecError;
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

/// The Qwen-VL vision tower: its heads divide its width (at `width_key`), and it merges
/// patches as the image processor groups them.
pub(crate) fn check_vision_tower(
    config: &ConfigFile,
    width_key: &str,
    image: &QwenImageProcessorConfig,
) -> Result<(), ManifestError> {
    let heads = config.positive("vision_config.num_heads")?;
    config.check_divides("vision_config.num_heads", heads, width_key)?;
    let merge = config.size("vision_config.spatial_merge_size")?;
    if merge != image.merge_size as u64 {
        return Err(config.error(FieldError::new(
            "vision_config.spatial_merge_size",
            format!(
                "is {merge}, the manifest's policy.image.merge_size is {}; they must agree",
                image.merge_size
            ),
        )));
    }
    Ok(())
}

/// PIL resampling codes as they appear in `preprocessor_config.json`.
const PIL_LANCZOS: u64 = 1;
const PIL_BILINEAR: u64 = 2;
const PIL_BICUBIC: u64 = 3;

impl QwenImageProcessorConfig {
    /// Reads the image processor config the way `AutoImageProcessor` does: the nested
    /// `image_processor` entry of `processor_config.json` if there is one, else
    /// `preprocessor_config.json`.
    pub fn from_backbone_dir(dir: &Path) -> Result<Self, SpecError> {
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
    pub fn from_json(json: &Value, source: &Path) -> Result<Self, SpecError> {
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

    /// Checks the sizes the patching divides by and the per-channel std; `key` names the
    /// section in errors.
    pub fn check(&self, key: &str) -> Result<(), FieldError> {
        at_least_one(&format!("{key}.patch_size"), self.patch_size)?;
        at_least_one(
            &format!("{key}.temporal_patch_size"),
            self.temporal_patch_size,
        )?;
        at_least_one(&format!("{key}.merge_size"), self.merge_size)?;
        if let Some(c) = self
            .image_std
            .iter()
            .position(|s| *s <= 0.0 || !s.is_finite())
        {
            return Err(FieldError::new(
                format!("{key}.image_std[{c}]"),
                format!("is {}; it must be positive", self.image_std[c]),
            ));
        }
        Ok(())
    }

    /// `patch_size · merge_size`: both output sides are multiples of it.
    pub fn resize_factor(&self) -> usize {
        self.patch_size * self.merge_size
    }
}

/// The interpolation kernel of an antialiased resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeFilter {
    /// Triangle kernel, support 1.
    Bilinear,
    /// Keys cubic with a = −0.5 (PIL's), support 2.
    Bicubic,
}

fn read_json(path: &Path) -> Result<Value, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|e| SpecError::FileRead {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| SpecError::FileRead {
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
    fn bad(&self, key: &str, reason: String) -> SpecError {
        SpecError::ConfigField {
            path: PathBuf::from(self.source),
            key: key.to_string(),
            reason,
        }
    }

    fn present(&self, key: &str) -> Option<&Value> {
        self.json.get(key).filter(|v| !v.is_null())
    }

    fn u64(&self, key: &str) -> Result<Option<u64>, SpecError> {
        self.present(key)
            .map(|v| {
                v.as_u64().ok_or_else(|| {
                    self.bad(key, format!("expected a non-negative integer, got {v}"))
                })
            })
            .transpose()
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, SpecError> {
        self.present(key)
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| self.bad(key, format!("expected a boolean, got {v}")))
            })
            .transpose()
    }

    /// A per-channel list of three numbers, or one number for all channels.
    fn rgb(&self, key: &str) -> Result<Option<[f32; 3]>, SpecError> {
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
