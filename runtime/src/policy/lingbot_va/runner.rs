//! LingBot-VA behind the common runner traits: an [`Episode`] is the rollout. A whole chunk is
//! the `select_action` calls from one prediction to the next, each given the same observation
//! (so the keyframes fed back into the cache are that observation, as in `vjx bench`).

use super::{predicted_video, Episode, LingbotVaPolicy};
use crate::backend::TensorValue;
use crate::policy::{
    CacheMemory, Noise, Observation, PolicyEpisode, PolicyError, PolicyRunner, PredictedVideo,
    Prediction, StageTimings, Step,
};
use crate::Manifest;
use std::collections::BTreeMap;

impl PolicyRunner for LingbotVaPolicy {
    fn manifest(&self) -> &Manifest {
        LingbotVaPolicy::manifest(self)
    }

    fn action_dim(&self) -> usize {
        LingbotVaPolicy::action_dim(self)
    }

    fn state_dim(&self) -> Option<usize> {
        None
    }

    fn actions_per_chunk(&self) -> usize {
        self.chunk_size()
    }

    fn start_episode(&self, noise: Noise) -> Box<dyn PolicyEpisode + '_> {
        Box::new(LingbotVaEpisode {
            policy: self,
            episode: self.episode(noise.clone()),
            noise,
            keep_intermediates: false,
            keep_video: false,
        })
    }
}

pub struct LingbotVaEpisode<'p> {
    policy: &'p LingbotVaPolicy,
    episode: Episode<'p>,
    /// Kept to start over on reset.
    noise: Noise,
    keep_intermediates: bool,
    keep_video: bool,
}

impl PolicyEpisode for LingbotVaEpisode<'_> {
    fn predict_chunk(&mut self, observation: &Observation) -> Result<Prediction, PolicyError> {
        let first = loop {
            let step = self.episode.select_action(observation)?;
            if step.predicted {
                break step;
            }
        };
        let mut rows = vec![first];
        while self.episode.queued() > 0 {
            rows.push(self.episode.select_action(observation)?);
        }
        let k = self.episode.chunks().saturating_sub(1);
        let prefix = format!("chunk{k}/");
        let intermediates = self
            .intermediates()
            .into_iter()
            .filter(|(name, _)| name.starts_with(&prefix) || !name.starts_with("chunk"))
            .collect();
        Ok(Prediction {
            chunk_size: rows.len(),
            action_dim: self.policy.action_dim(),
            actions: rows.iter().flat_map(|s| s.action.iter().copied()).collect(),
            actions_normalized: rows
                .iter()
                .flat_map(|s| s.action_normalized.iter().copied())
                .collect(),
            timings_ms: self.episode.take_timings(),
            intermediates,
            reasoning: None,
        })
    }

    fn select_action(&mut self, observation: &Observation) -> Result<Step, PolicyError> {
        self.episode.select_action(observation)
    }

    fn reset(&mut self) {
        self.episode = self.policy.episode(self.noise.clone());
        self.episode.keep_intermediates(self.keep_intermediates);
        self.episode.keep_predicted_latents(self.keep_video);
    }

    fn chunks(&self) -> usize {
        self.episode.chunks()
    }

    fn keep_intermediates(&mut self, keep: bool) {
        self.keep_intermediates = keep;
        self.episode.keep_intermediates(keep);
    }

    fn intermediates(&self) -> BTreeMap<String, TensorValue> {
        self.episode
            .intermediates()
            .iter()
            .map(|(name, value)| (name.clone(), TensorValue::F32(value.clone())))
            .collect()
    }

    fn take_timings(&mut self) -> StageTimings {
        self.episode.take_timings()
    }

    fn cache_memory(&self) -> Option<CacheMemory> {
        let (kv_cache_bytes, vae_cache_bytes) = self.episode.cache_bytes();
        Some(CacheMemory {
            kv_cache_bytes,
            vae_cache_bytes,
        })
    }

    fn predicted_video(&mut self) -> Option<&mut dyn PredictedVideo> {
        Some(self)
    }
}

impl PredictedVideo for LingbotVaEpisode<'_> {
    fn check_decodable(&self) -> Result<(), PolicyError> {
        predicted_video::require_decoder(self.policy)
    }

    fn keep(&mut self) {
        self.keep_video = true;
        self.episode.keep_predicted_latents(true);
    }

    fn decode(&self) -> Result<ndarray::Array4<u8>, PolicyError> {
        predicted_video::decode_latents(self.policy, self.episode.predicted_latents())
    }
}
