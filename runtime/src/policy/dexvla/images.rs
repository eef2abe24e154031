//! DexVLA's camera frames as the original repository's evaluation prepares them: 8-bit RGB,
//! a center crop resized back to the frame size (torchvision, bilinear, on floats, truncated
//! to 8 bits), then the Qwen2-VL image processor of transformers 4.4x (Pillow's 8-bit bicubic
//! resize to the smart-resize size, rescale, normalize, patchify).

use crate::policy::PolicyError;
use crate::preprocess::image::{antialiased_resize, ImageF32, ResizeFilter};
use crate::preprocess::qwen_image::{self, QwenVisionInputs};
use ndarray::{s, Array3};

use vjx_format::dexvla::EvalCrop;
use vjx_format::qwen_image::QwenImageProcessorConfig;

/// An 8-bit RGB frame, `[height, width, 3]`.
pub type FrameU8 = Array3<u8>;

/// A frame given as floats in [0, 1] (CHW) back to its 8-bit values.
pub fn to_u8(frame: &ImageF32) -> FrameU8 {
    let hwc = frame.view().permuted_axes([1, 2, 0]);
    hwc.mapv(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
}

/// Rows `⌊H·(1−r)/2⌋..⌊H·(1+r)/2⌋` and the same for columns, resized back to `H × W`,
/// truncated.
pub fn eval_crop(frame: &FrameU8, crop: &EvalCrop) -> FrameU8 {
    let (h, w, _) = frame.dim();
    let bound = |len: usize, at: f64| (len as f64 * at) as usize;
    let (low, high) = ((1.0 - crop.ratio) / 2.0, (1.0 + crop.ratio) / 2.0);
    let (top, bottom) = (bound(h, low), bound(h, high));
    let (left, right) = (bound(w, low), bound(w, high));
    let cropped = frame.slice(s![top..bottom, left..right, ..]);
    let chw: ImageF32 = cropped.permuted_axes([2, 0, 1]).mapv(f32::from);
    let resized = antialiased_resize(chw.view(), [h, w], ResizeFilter::Bilinear);
    resized
        .view()
        .permuted_axes([1, 2, 0])
        .mapv(|v| v.clamp(0.0, 255.0) as u8)
}

/// The frames after the evaluation crop (when the export has one), and the processor's
/// `pixel_values` / `image_grid_thw` for them in order.
pub fn prepare(
    frames: &[ImageF32],
    crop: Option<&EvalCrop>,
    processor: &QwenImageProcessorConfig,
) -> Result<(Vec<FrameU8>, QwenVisionInputs), PolicyError> {
    let frames: Vec<FrameU8> = frames
        .iter()
        .map(|f| {
            let frame = to_u8(f);
            match crop {
                Some(crop) => eval_crop(&frame, crop),
                None => frame,
            }
        })
        .collect();
    let views: Vec<_> = frames.iter().map(|f| f.view()).collect();
    let inputs = qwen_image::process_images_u8(&views, processor)?;
    Ok((frames, inputs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eval_crop_of_240_by_320_keeps_rows_6_to_234_and_columns_8_to_312() {
        // A frame whose value is its row index: after cropping rows 6..234 and stretching
        // back, the first row is row 6 and the last row 233.
        let frame = Array3::from_shape_fn((240, 320, 3), |(y, _, _)| y as u8);
        let out = eval_crop(&frame, &EvalCrop { ratio: 0.95 });
        assert_eq!(out.dim(), (240, 320, 3));
        assert_eq!(out[[0, 0, 0]], 6);
        assert_eq!(out[[239, 0, 0]], 233);
    }
}
