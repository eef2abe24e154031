//! One streaming VAE encoder state: the causal-conv caches carried from one `encode_chunk`
//! call to the next. The first call of an episode runs the `vae_encode_first` graph (one
//! frame, no caches in); every later call runs `vae_encode_stream` on the caches it left.

use crate::backend::{GraphSession, Tensor};
use crate::policy::PolicyError;
use ndarray::{Array5, Ix5};
use vjx_graphs::wan_vae::encoder::{FRAMES, LATENT};
use vjx_graphs::wan_vae::{cache_in_name, cache_out_name};

#[derive(Debug, Default)]
pub struct VaeStream {
    /// The caches the last call left, in graph order, kept in the backend; `None` before the
    /// first call.
    caches: Option<Vec<Tensor>>,
}

impl VaeStream {
    /// Encodes `frames` `[N, 3, T, H, W]` (in [-1, 1]) into normalized latents `[N, z, T', h, w]`.
    pub fn encode(
        &mut self,
        first: &dyn GraphSession,
        stream: &dyn GraphSession,
        num_caches: usize,
        frames: Array5<f32>,
    ) -> Result<Array5<f32>, PolicyError> {
        let frames = Tensor::from(frames.into_dyn());
        let mut outputs = match self.caches.take() {
            None => {
                if frames.shape()[2] != 1 {
                    return Err(PolicyError::Other(format!(
                        "the first VAE call of an episode takes one frame, got {}",
                        frames.shape()[2]
                    )));
                }
                first.run(&[(FRAMES, &frames)])?
            }
            Some(caches) => {
                let names: Vec<String> = (0..caches.len()).map(cache_in_name).collect();
                let mut inputs: Vec<(&str, &Tensor)> = vec![(FRAMES, &frames)];
                inputs.extend(names.iter().map(String::as_str).zip(&caches));
                stream.run(&inputs)?
            }
        };
        let caches = (0..num_caches)
            .map(|j| outputs.take(&cache_out_name(j)))
            .collect::<Result<Vec<_>, _>>()?;
        self.caches = Some(caches);
        outputs
            .take_f32(LATENT)?
            .into_dimensionality::<Ix5>()
            .map_err(|e| PolicyError::Other(format!("VAE latent is not 5-D: {e}")))
    }

    /// Bytes held by the caches between calls.
    pub fn cache_bytes(&self) -> usize {
        self.caches
            .as_ref()
            .map(|c| {
                c.iter()
                    .map(|t| t.shape().iter().product::<usize>() * 4)
                    .sum()
            })
            .unwrap_or(0)
    }
}
