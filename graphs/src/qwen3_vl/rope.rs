//! Host-side tables the text graph takes as inputs: Qwen3-VL's 3-D (M-RoPE) position ids,
//! the interleaved cos/sin tables built from them, the causal attention bias, and the map
//! from sequence rows to image-embedding rows.
//!
//! Everything here works on one unpadded sample, which gives the same valid-token results
//! as upstream's left-padded batches (positions are counted over valid tokens only).

use super::config::TextConfig;

/// Additive bias for a masked attention entry: finite, so that a fully masked row could never
/// turn into NaNs, and far below any real score so that its softmax weight is exactly 0.
pub const MASKED_BIAS: f32 = -1.0e9;

/// The `[T, H, W]` position ids of upstream `get_rope_index` for one unpadded sample.
///
/// A running counter `p` starts at 0. A text token gets `p` in all three rows and advances it
/// by 1. An image of grid `[t, h, w]` (patches, before merging) covers
/// `t·(h/m)·(w/m)` consecutive image tokens; its tokens get `T = p`, `H = p + row`,
/// `W = p + col` over the merged grid, after which `p` advances by `max(h, w) / m`.
///
/// Images are matched to runs of `image_token_id` in order, one grid per image, so two
/// images with no text between them are also handled (upstream would reject them).
///
/// # Panics
/// When `image_grids` does not account for the image tokens exactly: both come from the same
/// preprocessor, so a mismatch is a bug in the caller.
pub fn mrope_position_ids(
    input_ids: &[i64],
    image_grids: &[[usize; 3]],
    image_token_id: i64,
    spatial_merge_size: usize,
) -> [Vec<i64>; 3] {
    let len = input_ids.len();
    let mut rows = [
        Vec::with_capacity(len),
        Vec::with_capacity(len),
        Vec::with_capacity(len),
    ];
    let mut grids = image_grids.iter();
    let mut next_pos: i64 = 0;
    let mut i = 0;
    while i < len {
        if input_ids[i] != image_token_id {
            for row in rows.iter_mut() {
                row.push(next_pos);
            }
            next_pos += 1;
            i += 1;
            continue;
        }
        let grid = grids.next().unwrap_or_else(|| {
            panic!(
                "image token at position {i} has no image grid left ({} grids given)",
                image_grids.len()
            )
        });
        let [t, h, w] = *grid;
        let (gh, gw) = (h / spatial_merge_size, w / spatial_merge_size);
        let tokens = t * gh * gw;
        assert!(
            i + tokens <= len
                && input_ids[i..i + tokens]
                    .iter()
                    .all(|&id| id == image_token_id),
            "image grid {grid:?} needs {tokens} image tokens from position {i}, \
             the input ids have fewer"
        );
        // Upstream lays the width index out fastest, then height over `w·t` tokens.
        for k in 0..tokens {
            rows[0].push(next_pos);
            rows[1].push(next_pos + (k / (gw * t)) as i64);
            rows[2].push(next_pos + (k % gw) as i64);
        }
        next_pos += gh.max(gw) as i64;
        i += tokens;
    }
    assert!(
        grids.next().is_none(),
        "{} image grids given but the input ids use fewer",
        image_grids.len()
    );
    rows
}

/// The rotary inverse frequencies `1 / θ^(2i/d)`, i < d/2, rounded as PyTorch's float32 does.
fn inverse_frequencies(theta: f64, head_dim: usize) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|i| {
            let exponent = (2 * i) as f32 / head_dim as f32;
            1.0f32 / (theta.powf(exponent as f64) as f32)
        })
        .collect()
}

/// Which of the three position rows drives each rotary frequency: the interleaved layout
/// `T H W T H W … T T`, with H at `1, 4, …` (`section[1]` slots) and W at `2, 5, …`
/// (`section[2]` slots); every other frequency keeps T.
pub fn interleaved_mrope_axes(mrope_section: &[usize], num_frequencies: usize) -> Vec<usize> {
    let mut axes = vec![0usize; num_frequencies];
    for (axis, offset) in [(1usize, 1usize), (2, 2)] {
        let end = (mrope_section[axis] * 3).min(num_frequencies);
        for slot in (offset..end).step_by(3) {
            axes[slot] = axis;
        }
    }
    axes
}

/// Which of the three position rows drives each rotary frequency in Qwen2-VL's layout:
/// contiguous sections, the first `section[0]` frequencies T, the next `section[1]` H, the
/// next `section[2]` W.
pub fn sectioned_mrope_axes(mrope_section: &[usize], num_frequencies: usize) -> Vec<usize> {
    let mut axes = Vec::with_capacity(num_frequencies);
    for (axis, &count) in mrope_section.iter().enumerate().take(3) {
        axes.extend(std::iter::repeat_n(axis, count));
    }
    axes.resize(num_frequencies, 0);
    axes
}

/// cos/sin tables `[seq, head_dim]` (row-major) for the given `[T, H, W]` position ids, with
/// the frequencies interleaved per `mrope_section` and duplicated across both rotary halves.
pub fn mrope_cos_sin(cfg: &TextConfig, position_ids: &[Vec<i64>; 3]) -> (Vec<f32>, Vec<f32>) {
    let half = cfg.head_dim() / 2;
    let axes = interleaved_mrope_axes(&cfg.mrope_section(), half);
    rotary_tables(cfg.rope_theta(), cfg.head_dim(), &axes, position_ids)
}

/// cos/sin tables `[seq, head_dim]` (row-major): frequency `f` of `1 / θ^(2f/d)` turns by the
/// position row `axes[f]`, duplicated across both rotary halves.
pub fn rotary_tables(
    theta: f64,
    head_dim: usize,
    axes: &[usize],
    position_ids: &[Vec<i64>; 3],
) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let seq = position_ids[0].len();
    assert!(
        position_ids.iter().all(|row| row.len() == seq),
        "position id rows differ in length"
    );
    let inv_freq = inverse_frequencies(theta, head_dim);
    let mut cos = vec![0f32; seq * head_dim];
    let mut sin = vec![0f32; seq * head_dim];
    let rows = cos
        .chunks_exact_mut(head_dim)
        .zip(sin.chunks_exact_mut(head_dim));
    for (s, (cos_row, sin_row)) in rows.enumerate() {
        for (f, (&axis, &freq)) in axes.iter().zip(&inv_freq).enumerate() {
            // Float32 angle as upstream computes it; its sin/cos then rounded once.
            let angle = position_ids[axis][s] as f32 * freq;
            let (sn, cs) = (angle as f64).sin_cos();
            for slot in [f, half + f] {
                cos_row[slot] = cs as f32;
                sin_row[slot] = sn as f32;
            }
        }
    }
    (cos, sin)
}

/// The additive causal bias `[seq, seq]`: 0 where key ≤ query, [`MASKED_BIAS`] above.
pub fn causal_bias(seq: usize) -> Vec<f32> {
    let mut bias = vec![0f32; seq * seq];
    for q in 0..seq {
        for k in q + 1..seq {
            bias[q * seq + k] = MASKED_BIAS;
        }
    }
    bias
}

/// For each sequence row: 0 for a text token, `1 + j` for the `j`-th image token (the row of
/// the image embeddings, shifted by the zero row the graph puts in front).
pub fn image_row_index(input_ids: &[i64], image_token_id: i64) -> Vec<i64> {
    let mut next = 0i64;
    input_ids
        .iter()
        .map(|&id| {
            if id == image_token_id {
                next += 1;
                next
            } else {
                0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMG: i64 = 151655;
    const VS: i64 = 151652;
    const VE: i64 = 151653;

    fn text_config(head_dim: usize, section: &str) -> TextConfig {
        serde_json::from_str(&format!(
            r#"{{"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                "num_key_value_heads": 1, "head_dim": {head_dim}, "intermediate_size": 96,
                "vocab_size": 100,
                "rope_parameters": {{"rope_theta": 100.0, "mrope_section": {section},
                                     "rope_type": "default"}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn text_only_positions_count_up_in_all_three_rows() {
        let ids = [5, 6, 7, 8];
        let rows = mrope_position_ids(&ids, &[], IMG, 2);
        for row in &rows {
            assert_eq!(row, &vec![0, 1, 2, 3]);
        }
    }

    /// The two-view 256² example: `<|im_start|> user \n` then two 16×16-patch images, each
    /// wrapped in vision start/end, then text.
    #[test]
    fn two_images_follow_the_worked_example() {
        let mut ids = vec![151644, 872, 198];
        for _ in 0..2 {
            ids.push(VS);
            ids.extend(std::iter::repeat_n(IMG, 64));
            ids.push(VE);
        }
        ids.extend([10, 11]);
        let [t, h, w] = mrope_position_ids(&ids, &[[1, 16, 16], [1, 16, 16]], IMG, 2);

        assert_eq!(&t[..4], &[0, 1, 2, 3]);
        // First image: base 4, T constant, H by merged row, W by merged column.
        assert!(t[4..68].iter().all(|&p| p == 4));
        assert_eq!(&h[4..13], &[4, 4, 4, 4, 4, 4, 4, 4, 5]);
        assert_eq!(&w[4..13], &[4, 5, 6, 7, 8, 9, 10, 11, 4]);
        assert_eq!((h[67], w[67]), (11, 11));
        // `<|vision_end|>` = 12, next `<|vision_start|>` = 13, second image base 14.
        assert_eq!((t[68], t[69]), (12, 13));
        assert_eq!((t[70], h[70], w[70]), (14, 14, 14));
        assert_eq!((t[133], h[133], w[133]), (14, 21, 21));
        assert_eq!(t[134], 22);
        assert_eq!(&t[135..], &[23, 24]);
        assert_eq!(&h[135..], &[23, 24]);
        assert_eq!(&w[135..], &[23, 24]);
    }

    #[test]
    fn a_non_square_image_advances_by_its_longer_side() {
        // 4×8 patches → 2×4 merged tokens; the counter moves on by 4.
        let ids = [1, IMG, IMG, IMG, IMG, IMG, IMG, IMG, IMG, 2];
        let [t, h, w] = mrope_position_ids(&ids, &[[1, 4, 8]], IMG, 2);
        assert_eq!(t, vec![0, 1, 1, 1, 1, 1, 1, 1, 1, 5]);
        assert_eq!(h, vec![0, 1, 1, 1, 1, 2, 2, 2, 2, 5]);
        assert_eq!(w, vec![0, 1, 2, 3, 4, 1, 2, 3, 4, 5]);
    }

    #[test]
    #[should_panic(expected = "needs 4 image tokens")]
    fn a_grid_larger_than_its_token_run_is_rejected() {
        mrope_position_ids(&[IMG, IMG, 3], &[[1, 4, 4]], IMG, 2);
    }

    #[test]
    fn qwen3_vl_section_puts_h_and_w_on_every_third_frequency() {
        let axes = interleaved_mrope_axes(&[24, 20, 20], 64);
        assert_eq!(&axes[..7], &[0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(&axes[57..], &[0, 1, 2, 0, 0, 0, 0]);
        assert_eq!(axes.iter().filter(|&&a| a == 0).count(), 24);
        assert_eq!(axes.iter().filter(|&&a| a == 1).count(), 20);
        assert_eq!(axes.iter().filter(|&&a| a == 2).count(), 20);
    }

    #[test]
    fn cos_sin_take_each_frequency_from_its_axis() {
        // head_dim 8 → 4 frequencies 1/100^(i/4) = 1, 0.316…, 0.1, 0.0316…;
        // section [2, 1, 1] → axes T H W T.
        let cfg = text_config(8, "[2, 1, 1]");
        let positions = [vec![2], vec![3], vec![5]];
        let (cos, sin) = mrope_cos_sin(&cfg, &positions);
        let inv = [1.0f64, 0.1f64.sqrt(), 0.1, 0.1f64.powf(1.5)];
        let angles = [2.0 * inv[0], 3.0 * inv[1], 5.0 * inv[2], 2.0 * inv[3]];
        for (f, angle) in angles.iter().enumerate() {
            for slot in [f, f + 4] {
                assert!((cos[slot] as f64 - angle.cos()).abs() < 1e-6, "cos[{slot}]");
                assert!((sin[slot] as f64 - angle.sin()).abs() < 1e-6, "sin[{slot}]");
            }
        }
    }

    #[test]
    fn cos_sin_of_text_positions_are_plain_rope() {
        let cfg = text_config(8, "[2, 1, 1]");
        let p = vec![0, 1, 7];
        let (cos, sin) = mrope_cos_sin(&cfg, &[p.clone(), p.clone(), p]);
        assert!(cos[..8].iter().all(|&c| c == 1.0) && sin[..8].iter().all(|&s| s == 0.0));
        let inv1 = 0.1f64.sqrt();
        assert!((cos[2 * 8 + 1] as f64 - (7.0 * inv1).cos()).abs() < 1e-6);
        assert!((sin[2 * 8 + 5] as f64 - (7.0 * inv1).sin()).abs() < 1e-6);
    }

    #[test]
    fn causal_bias_masks_only_future_keys() {
        let m = MASKED_BIAS;
        assert_eq!(causal_bias(3), vec![0.0, m, m, 0.0, 0.0, m, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn image_rows_count_image_tokens_from_one() {
        assert_eq!(
            image_row_index(&[7, IMG, IMG, 8, IMG, 9], IMG),
            vec![0, 1, 2, 0, 3, 0]
        );
    }
}
