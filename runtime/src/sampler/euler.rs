//! VLA-JEPA's flow-matching Euler loop: `n` equal steps from noise (t = 0) to actions (t = 1),
//! the model given each step's start time discretized to an integer bucket.

use super::Sampler;

#[derive(Debug, Clone, PartialEq)]
pub struct EulerFlowMatching {
    timesteps: Vec<i64>,
}

impl EulerFlowMatching {
    /// A loop of one step per timestep bucket (the manifest's `timesteps`).
    pub fn new(timesteps: &[i64]) -> Self {
        EulerFlowMatching {
            timesteps: timesteps.to_vec(),
        }
    }

    /// The integer bucket the model takes at loop entry `index`.
    pub fn bucket(&self, index: usize) -> i64 {
        self.timesteps[index]
    }

    pub fn steps(&self) -> usize {
        self.timesteps.len()
    }
}

impl Sampler for EulerFlowMatching {
    fn timesteps(&self) -> Vec<f32> {
        self.timesteps.iter().map(|&t| t as f32).collect()
    }

    /// `x ← x + v / n`.
    fn step(&self, index: usize, sample: &mut [f32], velocity: &[f32]) {
        assert!(index < self.timesteps.len(), "step {index} past the loop");
        assert_eq!(sample.len(), velocity.len(), "sample and velocity differ");
        let dt = 1.0 / self.timesteps.len() as f32;
        for (x, v) in sample.iter_mut().zip(velocity) {
            *x += dt * v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{EulerFlowMatching, Sampler};

    #[test]
    fn four_steps_of_unit_velocity_go_from_zero_to_one() {
        let sampler = EulerFlowMatching::new(&[0, 250, 500, 750]);
        let mut x = [0.0f32, 2.0];
        for i in 0..sampler.steps() {
            sampler.step(i, &mut x, &[1.0, -1.0]);
        }
        assert_eq!(x, [1.0, 1.0]);
    }

    #[test]
    fn the_model_gets_each_steps_bucket() {
        let sampler = EulerFlowMatching::new(&[0, 333, 666]);
        assert_eq!(sampler.timesteps(), vec![0.0, 333.0, 666.0]);
        assert_eq!(sampler.bucket(2), 666);
    }
}
