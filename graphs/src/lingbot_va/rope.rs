//! The 3-axis rotary position embedding of the Wan transformer (upstream `get_mesh_id` and
//! `WanRotaryPosEmbed`), computed on the host and fed to the step graphs as `[L, head_dim/2]`
//! cos/sin tables. The graphs rotate adjacent pairs `(x[2i], x[2i+1])` of every head by angle i.

const THETA: f64 = 10000.0;

/// One token's rotary position `[frame, row, column]`.
pub type GridPosition = [f64; 3];

/// Positions of the video tokens of `frames` latent frames starting at `frame_start`, in token
/// order (frame, then row, then column of the `h2 × w2` patch grid).
pub fn video_grid(frame_start: usize, frames: usize, h2: usize, w2: usize) -> Vec<GridPosition> {
    let mut grid = Vec::with_capacity(frames * h2 * w2);
    for f in frame_start..frame_start + frames {
        for h in 0..h2 {
            for w in 0..w2 {
                grid.push([f as f64, h as f64, w as f64]);
            }
        }
    }
    grid
}

/// Positions of the action tokens of `frames` frames of `apf` actions each: action `j` of frame
/// `f` sits at `f + (j+1)/(apf+1)` (rounded in f32 as upstream computes it), row = column = -1.
pub fn action_grid(frame_start: usize, frames: usize, apf: usize) -> Vec<GridPosition> {
    let mut grid = Vec::with_capacity(frames * apf);
    for f in frame_start..frame_start + frames {
        for j in 0..apf {
            let offset = (j + 1) as f32 / (apf + 1) as f32;
            grid.push([(f as f32 + offset) as f64, -1.0, -1.0]);
        }
    }
    grid
}

/// Rotary dims per axis `(frame, row, column)`: `head_dim - 2·(head_dim/3)`, `head_dim/3`, `head_dim/3`.
pub fn axis_dims(head_dim: usize) -> [usize; 3] {
    let third = head_dim / 3;
    [head_dim - 2 * third, third, third]
}

/// Angular frequencies of one axis of `dim` rotary dims: `1 / 10000^(2k/dim)`, k < dim/2.
fn axis_frequencies(dim: usize) -> impl Iterator<Item = f64> {
    (0..dim / 2).map(move |k| 1.0 / THETA.powf((2 * k) as f64 / dim as f64))
}

/// The `(cos, sin)` tables of `grid`, each `[grid.len(), head_dim/2]` row-major f32. Angles are
/// formed in f64 and rounded to f32 before cos/sin, as upstream's `torch.polar` on the f32 angle.
pub fn rope_tables(head_dim: usize, grid: &[GridPosition]) -> (Vec<f32>, Vec<f32>) {
    let freqs: Vec<(usize, f64)> = axis_dims(head_dim)
        .into_iter()
        .enumerate()
        .flat_map(|(axis, dim)| axis_frequencies(dim).map(move |f| (axis, f)))
        .collect();
    let mut cos = Vec::with_capacity(grid.len() * freqs.len());
    let mut sin = Vec::with_capacity(grid.len() * freqs.len());
    for pos in grid {
        for &(axis, freq) in &freqs {
            let angle = (pos[axis] * freq) as f32;
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    (cos, sin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_grid_is_frame_major_then_rows_then_columns() {
        let grid = video_grid(3, 2, 2, 3);
        assert_eq!(grid.len(), 12);
        assert_eq!(grid[0], [3.0, 0.0, 0.0]);
        assert_eq!(grid[4], [3.0, 1.0, 1.0]);
        assert_eq!(grid[11], [4.0, 1.0, 2.0]);
    }

    #[test]
    fn action_grid_spreads_actions_inside_their_frame() {
        let grid = action_grid(2, 2, 4);
        assert_eq!(grid.len(), 8);
        assert_eq!(grid[0], [2.2f32 as f64, -1.0, -1.0]);
        assert!((grid[3][0] - 2.8).abs() < 1e-6 && (grid[4][0] - 3.2).abs() < 1e-6);
        assert!((grid[7][0] - 3.8).abs() < 1e-6);
        // Positions are f32 values (upstream adds an f32 offset to the frame index).
        assert!(grid.iter().all(|p| p[0] as f32 as f64 == p[0]));
    }

    #[test]
    fn head_dim_128_splits_44_42_42() {
        assert_eq!(axis_dims(128), [44, 42, 42]);
        assert_eq!(axis_dims(24), [8, 8, 8]);
    }

    #[test]
    fn tables_have_half_head_dim_columns_and_start_at_angle_zero() {
        let (cos, sin) = rope_tables(24, &video_grid(0, 1, 1, 2));
        assert_eq!(cos.len(), 2 * 12);
        // Token 0 sits at the origin; token 1 only moves along the column axis (last 4 pairs).
        assert!(cos[..12].iter().all(|&c| c == 1.0) && sin[..12].iter().all(|&s| s == 0.0));
        assert_eq!(&sin[12..20], &[0.0; 8]);
        assert_eq!(sin[20], 1f32.sin());
        assert_eq!(cos[21], ((1.0 / 10000f64.powf(0.25)) as f32).cos());
    }
}
