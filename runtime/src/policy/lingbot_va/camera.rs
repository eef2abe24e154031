//! Camera frames to VAE input: resize, scale to [-1, 1], and the latent camera layouts.
