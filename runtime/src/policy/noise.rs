//! The sampler's initial noise, chunk by chunk of an episode.

use super::PolicyError;
use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use std::collections::BTreeMap;

/// One chunk's noise: each array the policy samples from, by name, in upstream's shapes.
pub type ChunkNoise = BTreeMap<String, ArrayD<f32>>;

#[derive(Debug, Clone)]
pub enum Noise {
    /// Standard normal; chunk k draws its arrays, in the policy's order, from one generator
    /// seeded with `seed + k`.
    Seeded(u64),
    /// Given per chunk (parity runs inject upstream's noise).
    Given(Vec<ChunkNoise>),
}

impl Noise {
    /// Chunk `k`'s arrays, named and shaped as `wanted` lists them; given noise is checked
    /// against those names and shapes and must be finite.
    pub fn chunk(
        &self,
        k: usize,
        wanted: &[(&str, &[usize])],
    ) -> Result<Vec<ArrayD<f32>>, PolicyError> {
        match self {
            Noise::Seeded(seed) => {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(k as u64));
                Ok(wanted
                    .iter()
                    .map(|(_, shape)| standard_normal(&mut rng, shape))
                    .collect())
            }
            Noise::Given(chunks) => {
                let given = chunks.get(k).ok_or_else(|| {
                    PolicyError::Input(format!(
                        "noise is given for {} chunks but chunk {k} is being predicted; give one entry per chunk",
                        chunks.len()
                    ))
                })?;
                let names: Vec<&str> = wanted.iter().map(|(name, _)| *name).collect();
                if let Some(extra) = given.keys().find(|n| !names.contains(&n.as_str())) {
                    return Err(PolicyError::Input(format!(
                        "noise of chunk {k} names `{extra}`; this policy samples {}",
                        names.join(", ")
                    )));
                }
                wanted
                    .iter()
                    .map(|(name, shape)| checked(given, k, name, shape))
                    .collect()
            }
        }
    }
}

fn checked(
    given: &ChunkNoise,
    k: usize,
    name: &str,
    shape: &[usize],
) -> Result<ArrayD<f32>, PolicyError> {
    let array = given.get(name).ok_or_else(|| {
        PolicyError::Input(format!("noise of chunk {k} has no `{name}` {shape:?}"))
    })?;
    if array.shape() != shape {
        return Err(PolicyError::Input(format!(
            "noise {name} of chunk {k} has shape {:?}, this policy needs {shape:?}",
            array.shape()
        )));
    }
    if let Some((i, v)) = array.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(PolicyError::Input(format!(
            "noise {name} of chunk {k}: value {v} at index {i} is not finite"
        )));
    }
    Ok(array.clone())
}

fn standard_normal(rng: &mut StdRng, shape: &[usize]) -> ArrayD<f32> {
    let n = shape.iter().product();
    let data = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    ArrayD::from_shape_vec(shape.to_vec(), data).expect("data has the shape's length")
}

#[cfg(test)]
mod tests {
    use super::{ChunkNoise, Noise};
    use ndarray::ArrayD;

    fn given(name: &str, shape: &[usize], value: f32) -> Noise {
        let array = ArrayD::from_elem(shape.to_vec(), value);
        Noise::Given(vec![ChunkNoise::from([(name.to_string(), array)])])
    }

    #[test]
    fn seeded_noise_is_the_same_for_the_same_seed_and_chunk() {
        let wanted: [(&str, &[usize]); 2] = [("latents", &[2, 3]), ("actions", &[4])];
        let a = Noise::Seeded(7).chunk(1, &wanted).unwrap();
        let b = Noise::Seeded(7).chunk(1, &wanted).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].shape(), &[2, 3]);
        assert_eq!(a[1].shape(), &[4]);
    }

    #[test]
    fn chunk_k_of_seed_s_is_chunk_0_of_seed_s_plus_k() {
        let wanted: [(&str, &[usize]); 1] = [("actions", &[7, 7])];
        assert_eq!(
            Noise::Seeded(3).chunk(2, &wanted).unwrap(),
            Noise::Seeded(5).chunk(0, &wanted).unwrap()
        );
    }

    #[test]
    fn given_noise_of_the_wrong_shape_is_refused_with_both_shapes() {
        let err = given("actions", &[7, 6], 0.5)
            .chunk(0, &[("actions", &[7, 7])])
            .unwrap_err()
            .to_string();
        assert!(err.contains("[7, 6]") && err.contains("[7, 7]"), "{err}");
    }

    #[test]
    fn given_noise_that_is_not_finite_is_refused() {
        let err = given("actions", &[2], f32::NAN)
            .chunk(0, &[("actions", &[2])])
            .unwrap_err()
            .to_string();
        assert!(err.contains("NaN"), "{err}");
    }

    #[test]
    fn given_noise_for_too_few_chunks_names_the_chunk() {
        let err = given("actions", &[2], 0.0)
            .chunk(1, &[("actions", &[2])])
            .unwrap_err()
            .to_string();
        assert!(err.contains("chunk 1"), "{err}");
    }

    #[test]
    fn given_noise_with_an_unknown_name_is_refused() {
        let err = given("latent", &[2], 0.0)
            .chunk(0, &[("actions", &[2])])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`latent`"), "{err}");
    }
}
