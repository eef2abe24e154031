//! LingBot-VA: the autoregressive video-action loop of upstream `select_action` over the
//! exported VAE, text encoder and transformer step graphs.

pub mod camera;
pub mod kv_cache;
pub mod scheduler;
