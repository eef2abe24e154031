//! DDIM with ε-prediction and η = 0, as diffusers' `DDIMScheduler` runs it (DexVLA's ScaleDP
//! head: 100 training steps on the `squaredcos_cap_v2` schedule, `leading` spacing, the
//! predicted clean sample clipped, `set_alpha_to_one`), in float32 like torch.

use super::Sampler;

#[derive(Debug, Clone, PartialEq)]
pub struct DdimConfig {
    pub num_train_timesteps: usize,
    /// Clip the predicted clean sample to `[-r, r]`; `None` leaves it.
    pub clip_sample_range: Option<f32>,
    /// The ᾱ of the step after the last: 1 (`set_alpha_to_one`) or ᾱ₀.
    pub set_alpha_to_one: bool,
    pub steps_offset: usize,
}

impl Default for DdimConfig {
    /// DexVLA's ScaleDP head.
    fn default() -> Self {
        DdimConfig {
            num_train_timesteps: 100,
            clip_sample_range: Some(1.0),
            set_alpha_to_one: true,
            steps_offset: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ddim {
    config: DdimConfig,
    alphas_cumprod: Vec<f32>,
    final_alpha_cumprod: f32,
    timesteps: Vec<usize>,
}

impl Ddim {
    /// The schedule of `steps` inference steps, `leading` spacing:
    /// `t = (k · ⌊N / steps⌋ + offset)` for k = steps − 1 … 0.
    pub fn new(config: DdimConfig, steps: usize) -> Self {
        let alphas_cumprod = squaredcos_cap_v2_alphas_cumprod(config.num_train_timesteps);
        let final_alpha_cumprod = match config.set_alpha_to_one {
            true => 1.0,
            false => alphas_cumprod[0],
        };
        let ratio = config.num_train_timesteps / steps.max(1);
        let timesteps = (0..steps)
            .rev()
            .map(|k| k * ratio + config.steps_offset)
            .collect();
        Ddim {
            config,
            alphas_cumprod,
            final_alpha_cumprod,
            timesteps,
        }
    }

    /// ᾱ_t of every training step.
    pub fn alphas_cumprod(&self) -> &[f32] {
        &self.alphas_cumprod
    }

    /// The integer timesteps the model takes, in loop order.
    pub fn integer_timesteps(&self) -> &[usize] {
        &self.timesteps
    }
}

impl Sampler for Ddim {
    fn timesteps(&self) -> Vec<f32> {
        self.timesteps.iter().map(|&t| t as f32).collect()
    }

    /// `x₀ = (x − √(1−ᾱ_t)·ε)/√ᾱ_t`, clipped; `x ← √ᾱ_prev·x₀ + √(1−ᾱ_prev)·ε`.
    fn step(&self, index: usize, sample: &mut [f32], epsilon: &[f32]) {
        assert_eq!(sample.len(), epsilon.len(), "sample and ε differ in length");
        let t = self.timesteps[index];
        let stride = self.config.num_train_timesteps / self.timesteps.len();
        let alpha_t = self.alphas_cumprod[t];
        let alpha_prev = t
            .checked_sub(stride)
            .map_or(self.final_alpha_cumprod, |prev| self.alphas_cumprod[prev]);
        let (sqrt_alpha_t, sqrt_beta_t) = (alpha_t.sqrt(), (1.0 - alpha_t).sqrt());
        let (sqrt_alpha_prev, sqrt_beta_prev) = (alpha_prev.sqrt(), (1.0 - alpha_prev).sqrt());
        for (x, &eps) in sample.iter_mut().zip(epsilon) {
            let mut clean = (*x - sqrt_beta_t * eps) / sqrt_alpha_t;
            if let Some(r) = self.config.clip_sample_range {
                clean = clean.clamp(-r, r);
            }
            *x = sqrt_alpha_prev * clean + sqrt_beta_prev * eps;
        }
    }
}

/// diffusers' `betas_for_alpha_bar` with the cosine ᾱ(t) = cos²((t + 0.008)/1.008 · π/2) and
/// β capped at 0.999, computed in f64 (in Python's operation order) and stored as f32;
/// α = 1 − β in f32; then ᾱ = Π α as torch's CPU `cumprod` does it: accumulated in f64, each
/// prefix rounded to f32.
fn squaredcos_cap_v2_alphas_cumprod(num_train_timesteps: usize) -> Vec<f32> {
    let alpha_bar = |t: f64| {
        ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0)
            .cos()
            .powi(2)
    };
    let n = num_train_timesteps as f64;
    let mut product = 1.0f64;
    (0..num_train_timesteps)
        .map(|i| {
            let beta = (1.0 - alpha_bar((i + 1) as f64 / n) / alpha_bar(i as f64 / n)).min(0.999);
            product *= f64::from(1.0 - beta as f32);
            product as f32
        })
        .collect()
}
