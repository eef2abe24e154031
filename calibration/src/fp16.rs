//! IEEE half precision, round to nearest even (as PyTorch's `.half()`).

pub fn to_f16(data: &[f32]) -> Vec<half::f16> {
    data.iter().map(|&v| half::f16::from_f32(v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_values_survive_exactly_and_others_round_to_nearest() {
        let bf16_value = f32::from_bits(0x3F81_0000); // 1.0078125, 8 mantissa bits
        let out = to_f16(&[bf16_value, 1.0 + 1.0 / 4096.0, 65520.0]);
        assert_eq!(out[0].to_f32(), bf16_value);
        assert_eq!(out[1].to_f32(), 1.0); // a quarter of f16's 2^-10 step at 1.0 rounds down
        assert!(out[2].to_f32().is_infinite()); // beyond f16's range
    }
}
