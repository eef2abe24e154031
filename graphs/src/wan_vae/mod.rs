//! Wan2.2 VAE (diffusers `AutoencoderKLWan`): streaming encoder graphs with the causal-conv caches as graph I/O.
