//! Weight quantization done at export time.

/// Symmetric int8 quantization of a row-major tensor with one scale per index along `axis`:
/// `scale = max|w| / 127` over the slice, `q = round(w / scale)`. An all-zero slice gets scale 1.
pub fn symmetric_int8(data: &[f32], shape: &[usize], axis: usize) -> (Vec<i8>, Vec<f32>) {
    let channels = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    // The tensor is a sequence of [channels, inner] blocks; channel c owns row c of each block.
    let blocks = || data.chunks(channels * inner);
    let mut max_abs = vec![0f32; channels];
    for block in blocks() {
        for (c, row) in block.chunks(inner).enumerate() {
            max_abs[c] = row.iter().fold(max_abs[c], |m, v| m.max(v.abs()));
        }
    }
    let scales: Vec<f32> = max_abs
        .iter()
        .map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 })
        .collect();
    let inv: Vec<f32> = scales.iter().map(|s| 1.0 / s).collect();
    let mut values = Vec::with_capacity(data.len());
    for block in blocks() {
        for (c, row) in block.chunks(inner).enumerate() {
            values.extend(
                row.iter()
                    .map(|&v| (v * inv[c]).round().clamp(-127.0, 127.0) as i8),
            );
        }
    }
    (values, scales)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_per_column_for_axis_1() {
        // [[1, -4], [-2, 2]]: column 0 max 2, column 1 max 4.
        let (q, s) = symmetric_int8(&[1.0, -4.0, -2.0, 2.0], &[2, 2], 1);
        assert_eq!(s, vec![2.0 / 127.0, 4.0 / 127.0]);
        assert_eq!(q, vec![64, -127, -127, 64]);
    }

    #[test]
    fn scales_are_per_row_for_axis_0() {
        let (q, s) = symmetric_int8(&[0.5, -1.0, 0.0, 0.0], &[2, 2], 0);
        assert_eq!(s, vec![1.0 / 127.0, 1.0]);
        assert_eq!(q, vec![64, -127, 0, 0]);
    }

    #[test]
    fn dequantized_values_are_within_half_a_step() {
        let data: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 64) as f32 - 31.5) * 0.013)
            .collect();
        let (q, s) = symmetric_int8(&data, &[8, 8], 1);
        for (i, (&v, &qv)) in data.iter().zip(&q).enumerate() {
            let scale = s[i % 8];
            assert!((v - qv as f32 * scale).abs() <= scale * 0.5 + 1e-7);
        }
    }
}
