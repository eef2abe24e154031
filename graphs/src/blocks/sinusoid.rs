//! Sinusoidal features of a scalar (a diffusion timestep): `t · f_k` for a geometric series
//! of frequencies `f_k`, through cos and sin. The frequency tables are built on the host in
//! f32, rounded operation by operation as the upstream torch code rounds them, because the
//! two formulas in use differ only in the order of their roundings.

use crate::builder::{GraphBuilder, Value};

/// The longest period of every table here.
const MAX_PERIOD: f64 = 10000.0;

/// The frequencies of diffusers' `get_timestep_embedding` for `channels` features:
/// `exp(-ln(10000) · k / (channels/2 - downscale_freq_shift))`, `k < channels/2`, the product
/// formed before the division.
pub fn timestep_frequencies(channels: usize, downscale_freq_shift: usize) -> Vec<f32> {
    let half = channels / 2;
    let neg_log = -(MAX_PERIOD.ln()) as f32;
    let divisor = (half - downscale_freq_shift) as f32;
    (0..half)
        .map(|k| ((neg_log * k as f32) / divisor).exp())
        .collect()
}

/// `exp(-k · s)`, `k < width/2`, with the step `s = ln(10000) / (width/2)` rounded first: the
/// encodings that precompute their exponent step (VLA-JEPA's action time features).
pub fn stepped_frequencies(width: usize) -> Vec<f32> {
    let half = width / 2;
    let step = (MAX_PERIOD as f32).ln() / half.max(1) as f32;
    (0..half).map(|k| (-(k as f32) * step).exp()).collect()
}

/// The frequencies ScaleDP's `TimestepEmbedder` computes in bfloat16 whatever the model's
/// dtype: `exp(-ln(10000) · k / half)` with `k` a bf16 arange and every operation's result
/// rounded to bf16 (each computed in f32, as torch's CPU kernels do).
pub fn bf16_frequencies(channels: usize) -> Vec<f32> {
    let half = channels / 2;
    let bf16 = |x: f32| half::bf16::from_f32(x).to_f32();
    let neg_log = -(MAX_PERIOD.ln()) as f32;
    (0..half)
        .map(|k| {
            let product = bf16(neg_log * bf16(k as f32));
            let exponent = bf16(product / half as f32);
            bf16(exponent.exp())
        })
        .collect()
}

/// Which half of the features comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HalfOrder {
    CosSin,
    SinCos,
}

/// `t` (`[..., 1]`) times `frequencies`, through cos and sin, concatenated in `order`:
/// `[..., 2 · frequencies.len()]`.
pub fn sinusoid_features(
    g: &mut GraphBuilder,
    t: &Value,
    frequencies: Vec<f32>,
    order: HalfOrder,
) -> Value {
    let row = g.const_f32("sinusoid_freqs", &[frequencies.len()], frequencies);
    let angles = g.mul(t, &row);
    let cos = g.op("Cos", &[&angles], vec![]);
    let sin = g.op("Sin", &[&angles], vec![]);
    match order {
        HalfOrder::CosSin => g.concat(&[&cos, &sin], -1),
        HalfOrder::SinCos => g.concat(&[&sin, &cos], -1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_shift_the_last_frequency_stays_above_the_ten_thousandth() {
        let f = timestep_frequencies(256, 0);
        assert_eq!(f.len(), 128);
        assert_eq!(f[0], 1.0);
        // Shift 0 divides by half (not half - 1): the last frequency stays above 10000^-1.
        let last = (-(10000f64.ln()) * 127.0 / 128.0).exp();
        assert!((f[127] as f64 / last - 1.0).abs() < 1e-6, "{}", f[127]);
    }

    #[test]
    fn with_shift_one_the_last_frequency_is_the_ten_thousandth() {
        let f = timestep_frequencies(256, 1);
        assert!((f[127] - 1e-4).abs() < 1e-9, "{}", f[127]);
    }

    #[test]
    fn bf16_frequencies_are_bf16_values_near_the_exact_series() {
        let f = bf16_frequencies(256);
        assert_eq!(f.len(), 128);
        assert_eq!(f[0], 1.0);
        for (k, &v) in f.iter().enumerate() {
            assert_eq!(
                half::bf16::from_f32(v).to_f32(),
                v,
                "frequency {k} is not a bf16"
            );
            let exact = (-(10000f64.ln()) * k as f64 / 128.0).exp();
            assert!(
                (v as f64 / exact - 1.0).abs() < 0.04,
                "frequency {k}: {v} vs {exact}"
            );
        }
    }

    #[test]
    fn stepped_frequencies_halve_the_width_in_the_divisor() {
        let f = stepped_frequencies(8);
        assert_eq!(f.len(), 4);
        assert_eq!(f[0], 1.0);
        assert!((f[2] - 0.01).abs() < 1e-8, "{}", f[2]);
    }
}
