//! The flow-matching scheduler of LingBot-VA (shifted sigmas, Euler step).
//!
//! Mirrors upstream `FlowMatchScheduler` as the policy builds it (`sigma_max = 1`, `sigma_min = 0`,
//! `extra_one_step = True`, no exponential shift, no terminal shift), in float32 like torch.

use super::Sampler;

/// One denoising schedule: `set_timesteps(n)` then `step` once per loop entry except the last.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowMatchScheduler {
    shift: f64,
    sigmas: Vec<f32>,
    timesteps: Vec<f32>,
}

/// Upstream's `num_train_timesteps`: timesteps are sigmas on a 0..1000 scale.
const NUM_TRAIN_TIMESTEPS: f32 = 1000.0;

impl Sampler for FlowMatchScheduler {
    /// [`Self::timesteps_with_final_zero`].
    fn timesteps(&self) -> Vec<f32> {
        self.timesteps_with_final_zero()
    }

    /// [`Self::step`] at the loop entry's timestep.
    fn step(&self, index: usize, sample: &mut [f32], velocity: &[f32]) {
        let t = self.timesteps_with_final_zero()[index];
        FlowMatchScheduler::step(self, sample, velocity, t);
    }
}

impl FlowMatchScheduler {
    /// A scheduler with the given `shift` (the config's `snr_shift` / `action_snr_shift`) and no
    /// schedule yet.
    pub fn new(shift: f64) -> Self {
        FlowMatchScheduler {
            shift,
            sigmas: Vec::new(),
            timesteps: Vec::new(),
        }
    }

    pub fn shift(&self) -> f64 {
        self.shift
    }

    /// `σ = linspace(1, 0, n + 1)[:-1]`, then `σ ← s·σ / (1 + (s − 1)·σ)` and `t = 1000·σ`, all
    /// in float32 with torch's rounding (the scalars `s` and `s − 1` are formed in f64 and cast).
    pub fn set_timesteps(&mut self, steps: usize) {
        let shift = self.shift as f32;
        let shift_minus_one = (self.shift - 1.0) as f32;
        self.sigmas = torch_linspace_f32(1.0, 0.0, steps + 1)
            .into_iter()
            .take(steps)
            .map(|sigma| shift * sigma / (1.0 + shift_minus_one * sigma))
            .collect();
        self.timesteps = self
            .sigmas
            .iter()
            .map(|sigma| sigma * NUM_TRAIN_TIMESTEPS)
            .collect();
    }

    /// The shifted sigmas, one per denoising step.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// The loop list: the `n` timesteps followed by a final 0 (upstream pads with one zero; the
    /// forward at t = 0 writes the clean entries into the KV cache and its output is unused).
    pub fn timesteps_with_final_zero(&self) -> Vec<f32> {
        let mut list = self.timesteps.clone();
        list.push(0.0);
        list
    }

    /// One Euler step `x ← x + v·(σ_next − σ)` at timestep `t`: σ is the sigma of the timestep
    /// nearest to `t` (the first on ties) and σ_next is the following sigma, or 0 after the last.
    ///
    /// # Panics
    /// If `set_timesteps` has not been called with `n ≥ 1`, or the slices differ in length.
    pub fn step(&self, sample: &mut [f32], velocity: &[f32], t: f32) {
        assert!(
            !self.timesteps.is_empty(),
            "FlowMatchScheduler::step before set_timesteps(n >= 1)"
        );
        assert_eq!(
            sample.len(),
            velocity.len(),
            "sample and velocity lengths differ"
        );
        let index = self.nearest_index(t);
        let sigma_next = self.sigmas.get(index + 1).copied().unwrap_or(0.0);
        let delta = sigma_next - self.sigmas[index];
        for (x, v) in sample.iter_mut().zip(velocity) {
            *x += v * delta;
        }
    }

    fn nearest_index(&self, t: f32) -> usize {
        let mut best = 0;
        let mut best_distance = f32::INFINITY;
        for (i, timestep) in self.timesteps.iter().enumerate() {
            let distance = (timestep - t).abs();
            if distance < best_distance {
                best = i;
                best_distance = distance;
            }
        }
        best
    }
}

/// `torch.linspace(start, end, count)` in float32 on CPU: the step is `(end − start)/(count − 1)`
/// in f32; the first half is `start + i·step` and the second half `end − (count − 1 − i)·step`,
/// each rounded once (checked against torch 2.11 on x86-64 for every count in 2..3000; computing
/// the product and the sum as two f32 roundings differs from torch for most counts).
fn torch_linspace_f32(start: f32, end: f32, count: usize) -> Vec<f32> {
    match count {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (end - start) / (count - 1) as f32;
            let halfway = count / 2;
            (0..count)
                .map(|i| {
                    if i < halfway {
                        step.mul_add(i as f32, start)
                    } else {
                        (-step).mul_add((count - 1 - i) as f32, end)
                    }
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_hits_both_ends_exactly() {
        for count in 2..40 {
            let values = torch_linspace_f32(1.0, 0.0, count);
            assert_eq!(values.len(), count);
            assert_eq!(values[0], 1.0);
            assert_eq!(values[count - 1], 0.0);
        }
    }

    #[test]
    fn shift_one_keeps_the_linear_grid() {
        let mut scheduler = FlowMatchScheduler::new(1.0);
        scheduler.set_timesteps(4);
        assert_eq!(scheduler.sigmas(), &[1.0, 0.75, 0.5, 0.25]);
        assert_eq!(
            scheduler.timesteps_with_final_zero(),
            vec![1000.0, 750.0, 500.0, 250.0, 0.0]
        );
    }

    #[test]
    fn step_uses_the_nearest_timestep_and_zero_after_the_last() {
        let mut scheduler = FlowMatchScheduler::new(1.0);
        scheduler.set_timesteps(4);
        let mut x = [1.0f32];
        // 740 is nearest to 750 (σ = 0.75 → 0.5).
        scheduler.step(&mut x, &[2.0], 740.0);
        assert_eq!(x, [0.5]);
        // The last timestep steps to σ = 0.
        scheduler.step(&mut x, &[2.0], 250.0);
        assert_eq!(x, [0.0]);
        // Halfway between 1000 and 750 the first one wins, as torch.argmin does.
        let mut y = [0.0f32];
        scheduler.step(&mut y, &[4.0], 875.0);
        assert_eq!(y, [-1.0]);
    }
}
