//! DexVLA as a [`ChunkPolicy`]: each chunk is predicted from its observation alone, and
//! `select_action` executes the first `n_action_steps` actions of a chunk (all of them, as the
//! LeRobot port does, or fewer, as the original repository's evaluation replans).

use super::{DexVlaPolicy, NOISE};
use crate::policy::chunk_queue::ChunkPolicy;
use crate::policy::{Observation, PolicyError, Prediction};
use crate::Manifest;
use ndarray::ArrayD;

impl ChunkPolicy for DexVlaPolicy {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn action_dim(&self) -> usize {
        self.spec.action_dim
    }

    fn state_dim(&self) -> Option<usize> {
        Some(self.spec.state_dim)
    }

    fn actions_per_chunk(&self) -> usize {
        self.spec.n_action_steps
    }

    fn noise_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        vec![(NOISE, self.noise_shape().to_vec())]
    }

    fn predict(
        &self,
        observation: &Observation,
        noise: Vec<ArrayD<f32>>,
        keep: bool,
    ) -> Result<Prediction, PolicyError> {
        let noise = noise.into_iter().next().expect("one array asked for");
        self.predict_chunk(observation, noise, keep)
    }
}
