//! Host-side tables the vision graph takes as inputs, for one image: the bilinear lookup into
//! the learned position-embedding grid and the 2-D rotary cos/sin, both with one row per
//! patch in the order the image processor emits `pixel_values` rows (merge blocks in raster
//! order, each block's `merge × merge` patches in raster order inside it).
//!
//! Arithmetic follows upstream's float32 computation step by step (`torch.linspace`, the
//! truncating `int()`, f32 products), so the tables match it to the last bit or two.

use super::config::VisionConfig;

/// Base of the vision rotary frequencies (`Qwen3VLVisionRotaryEmbedding`'s theta).
const ROPE_THETA: f32 = 10_000.0;
/// Number of bilinear corners per patch.
pub const CORNERS: usize = 4;

/// The tables for one image, each laid out row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionInputs {
    /// `t · h · w`: rows of `pixel_values` for this image.
    pub num_patches: usize,
    /// `[4, num_patches]`: rows of `pos_embed` at the corners (top-left, top-right,
    /// bottom-left, bottom-right); empty for a tower without learned positions.
    pub pos_embed_index: Vec<i64>,
    /// `[4, num_patches]`: the bilinear weights of those corners (empty likewise).
    pub pos_embed_weight: Vec<f32>,
    /// `[num_patches, head_dim]`.
    pub rope_cos: Vec<f32>,
    /// `[num_patches, head_dim]`.
    pub rope_sin: Vec<f32>,
}

/// The tables for an image of `grid_thw = [t, h, w]` patches.
///
/// With `t > 1` every frame gets the same rows (upstream repeats them per frame); upstream
/// attends within each frame only, so such an image is run through the graph one frame
/// (`h · w` rows) at a time, with the tables of `[1, h, w]`.
///
/// Panics when `h` or `w` is not a multiple of `spatial_merge_size`, or `head_dim` is not a
/// multiple of 4; the image processor never produces such grids and configs.
pub fn vision_inputs(cfg: &VisionConfig, grid_thw: [usize; 3]) -> VisionInputs {
    let [t, h, w] = grid_thw;
    let m = cfg.spatial_merge_size;
    assert!(
        h.is_multiple_of(m) && w.is_multiple_of(m),
        "image grid {h}×{w} is not a multiple of spatial_merge_size {m}"
    );
    let head_dim = cfg.head_dim();
    assert!(
        head_dim.is_multiple_of(4),
        "vision head_dim {head_dim} is not a multiple of 4"
    );

    let positions = merge_block_positions(h, w, m);
    let frame = positions.len();
    let num_patches = t * frame;

    let corners = (cfg.num_position_embeddings > 0)
        .then(|| BilinearGrid::new(cfg.position_grid_side(), h, w));
    let table_len = if corners.is_some() {
        CORNERS * num_patches
    } else {
        0
    };
    let mut pos_embed_index = vec![0i64; table_len];
    let mut pos_embed_weight = vec![0f32; table_len];
    let inv_freq = rope_inv_freq(head_dim / 2);
    let mut rope_cos = Vec::with_capacity(num_patches * head_dim);
    let mut rope_sin = Vec::with_capacity(num_patches * head_dim);

    for patch in 0..num_patches {
        let (row, col) = positions[patch % frame];
        if let Some(corners) = &corners {
            for (corner, (index, weight)) in corners.corners(row, col).into_iter().enumerate() {
                pos_embed_index[corner * num_patches + patch] = index;
                pos_embed_weight[corner * num_patches + patch] = weight;
            }
        }
        let angles = rope_angles(&inv_freq, row, col);
        // The rotary pairs dimension i with i + head_dim/2, so the angle half is repeated.
        for _ in 0..2 {
            rope_cos.extend(angles.iter().map(|&a| (a as f64).cos() as f32));
            rope_sin.extend(angles.iter().map(|&a| (a as f64).sin() as f32));
        }
    }

    VisionInputs {
        num_patches,
        pos_embed_index,
        pos_embed_weight,
        rope_cos,
        rope_sin,
    }
}

/// `(row, col)` of each patch of one `h × w` frame, in merge-block order.
fn merge_block_positions(h: usize, w: usize, m: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(h * w);
    for block_row in 0..h / m {
        for block_col in 0..w / m {
            for inner_row in 0..m {
                for inner_col in 0..m {
                    out.push((block_row * m + inner_row, block_col * m + inner_col));
                }
            }
        }
    }
    out
}

/// Where an `h × w` patch grid lands on the `side × side` learned embedding grid: each
/// axis is spread evenly over `[0, side − 1]`.
struct BilinearGrid {
    side: usize,
    rows: Vec<AxisSample>,
    cols: Vec<AxisSample>,
}

#[derive(Debug, Clone, Copy)]
struct AxisSample {
    floor: usize,
    ceil: usize,
    frac: f32,
}

impl BilinearGrid {
    fn new(side: usize, h: usize, w: usize) -> Self {
        BilinearGrid {
            side,
            rows: axis_samples(side, h),
            cols: axis_samples(side, w),
        }
    }

    /// The four `(pos_embed row, weight)` corners of patch `(row, col)`.
    fn corners(&self, row: usize, col: usize) -> [(i64, f32); CORNERS] {
        let (r, c) = (self.rows[row], self.cols[col]);
        let index = |gr: usize, gc: usize| (gr * self.side + gc) as i64;
        [
            (index(r.floor, c.floor), (1.0 - r.frac) * (1.0 - c.frac)),
            (index(r.floor, c.ceil), (1.0 - r.frac) * c.frac),
            (index(r.ceil, c.floor), r.frac * (1.0 - c.frac)),
            (index(r.ceil, c.ceil), r.frac * c.frac),
        ]
    }
}

fn axis_samples(side: usize, count: usize) -> Vec<AxisSample> {
    let last = side - 1;
    linspace_f32(0.0, last as f32, count)
        .into_iter()
        .map(|x| {
            let floor = x as usize;
            AxisSample {
                floor,
                ceil: (floor + 1).min(last),
                frac: x - floor as f32,
            }
        })
        .collect()
}

/// `torch.linspace(start, end, steps)` in float32: the first half counts up from `start`,
/// the second half down from `end`, so both ends are exact.
fn linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| {
            if i < halfway {
                start + step * i as f32
            } else {
                end - step * (steps - 1 - i) as f32
            }
        })
        .collect()
}

/// `1 / θ^(2j / dim)` for `j < dim / 2`, where `dim` is half the head width.
fn rope_inv_freq(dim: usize) -> Vec<f32> {
    (0..dim / 2)
        .map(|j| 1.0 / ROPE_THETA.powf((2 * j) as f32 / dim as f32))
        .collect()
}

/// `[row · inv_freq, col · inv_freq]`: half a head's worth of rotation angles.
fn rope_angles(inv_freq: &[f32], row: usize, col: usize) -> Vec<f32> {
    let along = |p: usize| inv_freq.iter().map(move |&f| p as f32 * f);
    along(row).chain(along(col)).collect()
}
