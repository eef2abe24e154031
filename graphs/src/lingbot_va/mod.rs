//! LingBot-VA dual-stream Wan transformer: text conditioning and one denoising step per stream, with the self-attention KV cache as graph I/O.
