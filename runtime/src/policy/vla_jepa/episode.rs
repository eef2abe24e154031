//! A VLA-JEPA rollout: each chunk is predicted from its observation alone; `select_action`
//! executes the first `n_action_steps` actions of a chunk before predicting the next.

use super::{VlaJepaPolicy, NOISE};
use crate::backend::TensorValue;
use crate::policy::{
    Noise, Observation, PolicyEpisode, PolicyError, PolicyRunner, Prediction, StageTimings, Step,
};
use crate::Manifest;
use std::collections::{BTreeMap, VecDeque};

impl PolicyRunner for VlaJepaPolicy {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn action_dim(&self) -> usize {
        self.spec.action_dim
    }

    fn state_dim(&self) -> Option<usize> {
        self.spec.state_dim
    }

    fn actions_per_chunk(&self) -> usize {
        self.spec.n_action_steps
    }

    fn start_episode(&self, noise: Noise) -> Box<dyn PolicyEpisode + '_> {
        Box::new(VlaJepaEpisode {
            policy: self,
            noise,
            chunks: 0,
            queue: VecDeque::new(),
            keep_intermediates: false,
            intermediates: BTreeMap::new(),
            timings: Vec::new(),
        })
    }
}

pub struct VlaJepaEpisode<'p> {
    policy: &'p VlaJepaPolicy,
    noise: Noise,
    chunks: usize,
    /// `(action, action_normalized)` rows still to execute.
    queue: VecDeque<(Vec<f32>, Vec<f32>)>,
    keep_intermediates: bool,
    /// The last chunk's tensors.
    intermediates: BTreeMap<String, TensorValue>,
    timings: StageTimings,
}

impl PolicyEpisode for VlaJepaEpisode<'_> {
    fn predict_chunk(&mut self, observation: &Observation) -> Result<Prediction, PolicyError> {
        let shape = self.policy.noise_shape();
        let noise = self.noise.chunk(self.chunks, &[(NOISE, &shape)])?;
        let noise = noise.into_iter().next().expect("one array asked for");
        let prediction = self
            .policy
            .predict_chunk(observation, noise, self.keep_intermediates)?;
        self.chunks += 1;
        self.timings.extend(prediction.timings_ms.iter().cloned());
        if self.keep_intermediates {
            self.intermediates = prediction.intermediates.clone();
        }
        Ok(prediction)
    }

    fn select_action(&mut self, observation: &Observation) -> Result<Step, PolicyError> {
        let predicted = self.queue.is_empty();
        if predicted {
            let prediction = self.predict_chunk(observation)?;
            let width = prediction.action_dim;
            let rows = prediction
                .actions
                .chunks(width)
                .zip(prediction.actions_normalized.chunks(width))
                .take(self.policy.actions_per_chunk().max(1))
                .map(|(a, n)| (a.to_vec(), n.to_vec()));
            self.queue.extend(rows);
        }
        let (action, action_normalized) = self.queue.pop_front().expect("a chunk was queued");
        Ok(Step {
            action,
            action_normalized,
            predicted,
        })
    }

    fn reset(&mut self) {
        self.chunks = 0;
        self.queue.clear();
        self.intermediates.clear();
        self.timings.clear();
    }

    fn chunks(&self) -> usize {
        self.chunks
    }

    fn keep_intermediates(&mut self, keep: bool) {
        self.keep_intermediates = keep;
    }

    fn intermediates(&self) -> BTreeMap<String, TensorValue> {
        self.intermediates.clone()
    }

    fn take_timings(&mut self) -> StageTimings {
        std::mem::take(&mut self.timings)
    }
}
