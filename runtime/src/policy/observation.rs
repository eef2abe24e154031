//! What the robot hands the policy each time: camera frames, state, task text, and the
//! initial noise of the sampler.

use super::PolicyError;
use crate::preprocess::image::ImageF32;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub enum ImageInput {
    Path(PathBuf),
    /// Float32 CHW in [0, 1].
    Frame(ImageF32),
}

#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Feature key (e.g. `observation.images.image`) → frame.
    pub images: BTreeMap<String, ImageInput>,
    /// The raw (un-normalized) robot state.
    pub state: Option<Vec<f32>>,
    pub task: Option<String>,
}

/// The sampler's initial noise.
#[derive(Debug, Clone)]
pub enum Noise {
    /// `[chunk_size, action_dim]` row-major (parity checks inject upstream's noise).
    Given { shape: Vec<usize>, data: Vec<f32> },
    /// Standard normal noise from a seeded generator.
    Seeded(u64),
}

impl Noise {
    /// The noise as a `[chunk, dim]` buffer, checked against the policy's shape.
    pub fn materialize(&self, chunk: usize, dim: usize) -> Result<Vec<f32>, PolicyError> {
        match self {
            Noise::Given { shape, data } => {
                if shape.as_slice() != [chunk, dim] {
                    return Err(PolicyError::Input(format!(
                        "noise has shape {shape:?}, this policy needs [{chunk}, {dim}] (chunk_size, action_dim)"
                    )));
                }
                if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                    return Err(PolicyError::Input(format!(
                        "noise value {} at index {i} is not finite",
                        data[i]
                    )));
                }
                Ok(data.clone())
            }
            Noise::Seeded(seed) => {
                let mut rng = rand::rngs::StdRng::seed_from_u64(*seed);
                Ok((0..chunk * dim)
                    .map(|_| StandardNormal.sample(&mut rng))
                    .collect())
            }
        }
    }
}
