//! The rollout of a policy that predicts each chunk from its observation alone (VLA-JEPA,
//! DexVLA): nothing is carried between chunks but the queue of actions still to execute;
//! `select_action` executes the first `actions_per_chunk` actions of a chunk, then predicts
//! the next.

use super::{
    Noise, Observation, PolicyEpisode, PolicyError, PolicyRunner, Prediction, StageTimings, Step,
};
use crate::backend::TensorValue;
use crate::Manifest;
use ndarray::ArrayD;
use std::collections::{BTreeMap, VecDeque};

/// What such a policy provides; [`ChunkRunner`] makes it a [`PolicyRunner`].
pub trait ChunkPolicy: Send + Sync {
    fn manifest(&self) -> &Manifest;
    fn action_dim(&self) -> usize;
    fn state_dim(&self) -> Option<usize>;
    fn actions_per_chunk(&self) -> usize;
    /// The arrays each chunk's sampler starts from, by name and shape, in drawing order.
    fn noise_shapes(&self) -> Vec<(&'static str, Vec<usize>)>;
    /// One chunk from `observation`, the sampler starting at `noise` (in
    /// [`Self::noise_shapes`] order); `keep` fills [`Prediction::intermediates`].
    fn predict(
        &self,
        observation: &Observation,
        noise: Vec<ArrayD<f32>>,
        keep: bool,
    ) -> Result<Prediction, PolicyError>;
}

pub struct ChunkRunner<P>(pub P);

impl<P: ChunkPolicy> PolicyRunner for ChunkRunner<P> {
    fn manifest(&self) -> &Manifest {
        self.0.manifest()
    }

    fn action_dim(&self) -> usize {
        self.0.action_dim()
    }

    fn state_dim(&self) -> Option<usize> {
        self.0.state_dim()
    }

    fn actions_per_chunk(&self) -> usize {
        self.0.actions_per_chunk()
    }

    fn start_episode(&self, noise: Noise) -> Box<dyn PolicyEpisode + '_> {
        Box::new(ChunkQueueEpisode {
            policy: &self.0,
            noise,
            chunks: 0,
            queue: VecDeque::new(),
            keep_intermediates: false,
            intermediates: BTreeMap::new(),
            timings: Vec::new(),
        })
    }
}

pub struct ChunkQueueEpisode<'p, P> {
    policy: &'p P,
    noise: Noise,
    chunks: usize,
    /// `(action, action_normalized)` rows still to execute.
    queue: VecDeque<(Vec<f32>, Vec<f32>)>,
    keep_intermediates: bool,
    /// The last chunk's tensors.
    intermediates: BTreeMap<String, TensorValue>,
    timings: StageTimings,
}

impl<P: ChunkPolicy> PolicyEpisode for ChunkQueueEpisode<'_, P> {
    fn predict_chunk(&mut self, observation: &Observation) -> Result<Prediction, PolicyError> {
        let shapes = self.policy.noise_shapes();
        let wanted: Vec<(&str, &[usize])> = shapes
            .iter()
            .map(|(name, shape)| (*name, shape.as_slice()))
            .collect();
        let noise = self.noise.chunk(self.chunks, &wanted)?;
        let prediction = self
            .policy
            .predict(observation, noise, self.keep_intermediates)?;
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
