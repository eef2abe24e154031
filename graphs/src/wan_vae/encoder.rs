//! The streaming encoder as two graphs, as LeRobot's `WanVAEStreamingWrapper.encode_chunk`
//! runs it: patchify, `encoder(x, feat_cache)`, `quant_conv`, then the normalized mean
//! `(mu - latents_mean) · (1 / latents_std)` (LeRobot `_normalize_vae_latent`).
//!
//! - `vae_encode_first`: `frames` `[batch, 3, 1, height, width]` → `latent`
//!   `[batch, z_dim, 1, height/16, width/16]` and `cache_out_{j}` (the first call of a stream).
//! - `vae_encode_stream`: `frames` `[batch, 3, time, height, width]` (`time` a multiple of 4) and
//!   `cache_in_{j}` → `latent` `[batch, z_dim, time/4, height/16, width/16]` and `cache_out_{j}`.
//!
//! Batch, time, height and width are symbolic (height and width multiples of 16). The caches
//! are listed by [`encoder_cache_shapes`]; feed each call's `cache_out_{j}` to the next call's
//! `cache_in_{j}`.

use super::config::{WanVaeConfig, RGB};
use super::layers::{avg_down, patchify, VaeNet};
use super::state::{
    scaled, CacheSlot, CausalState, Phase, BATCH, CONV_HISTORY, HEIGHT, TIME, WIDTH,
};
use crate::builder::{DType, Dim, GraphBuilder, Model, Value};
use crate::weights::{WeightError, WeightSource};

pub const FRAMES: &str = "frames";
pub const LATENT: &str = "latent";
pub const FIRST_GRAPH_NAME: &str = "vae_encode_first";
pub const STREAM_GRAPH_NAME: &str = "vae_encode_stream";

/// The caches in graph order: `conv_in`; per down block each resnet's `conv1`, `conv2`, then the
/// temporal downsampler's time conv; the mid block's four convs; `conv_out`. A 3-frame conv
/// keeps 2 frames of its input, a time conv 1 frame of its (downsampled) input.
pub fn encoder_cache_slots(cfg: &WanVaeConfig) -> Vec<CacheSlot> {
    let dims = cfg.encoder_dims();
    let conv = |channels, downscale| CacheSlot {
        channels,
        frames: CONV_HISTORY,
        downscale,
    };
    let mut downscale = cfg.patch();
    let mut slots = vec![conv(cfg.in_channels, downscale)];
    for i in 0..cfg.num_blocks() {
        let (cin, cout) = (dims[i], dims[i + 1]);
        for r in 0..cfg.num_res_blocks {
            slots.push(conv(if r == 0 { cin } else { cout }, downscale));
            slots.push(conv(cout, downscale));
        }
        downscale *= cfg.down_space_factor(i);
        if cfg.down_time_factor(i) > 1 {
            slots.push(CacheSlot {
                channels: cout,
                frames: 1,
                downscale,
            });
        }
    }
    let top = *dims.last().unwrap();
    slots.extend(std::iter::repeat_n(conv(top, downscale), 5));
    slots
}

/// Shapes of `cache_in_{j}` / `cache_out_{j}` for `batch` clips of `height × width` frames.
pub fn encoder_cache_shapes(
    cfg: &WanVaeConfig,
    batch: usize,
    height: usize,
    width: usize,
) -> Vec<Vec<usize>> {
    encoder_cache_slots(cfg)
        .iter()
        .map(|s| s.shape(batch, height, width))
        .collect()
}

/// `(vae_encode_first, vae_encode_stream)`; `prefix` is prepended to the diffusers weight names
/// (`""` for a `vae/` safetensors).
pub fn build_vae_encode_graphs(
    cfg: &WanVaeConfig,
    weights: &dyn WeightSource,
    prefix: &str,
) -> Result<(Model, Model), WeightError> {
    let first = build_encode_graph(cfg, weights, prefix, Phase::First)?;
    let stream = build_encode_graph(cfg, weights, prefix, Phase::Stream)?;
    Ok((first, stream))
}

fn build_encode_graph(
    cfg: &WanVaeConfig,
    weights: &dyn WeightSource,
    prefix: &str,
    phase: Phase,
) -> Result<Model, WeightError> {
    let (name, time, latent_time) = match phase {
        Phase::First => (FIRST_GRAPH_NAME, Dim::from(1usize), Dim::from(1usize)),
        Phase::Stream => (
            STREAM_GRAPH_NAME,
            Dim::from(TIME),
            scaled(TIME, cfg.temporal_factor()),
        ),
    };
    let mut g = GraphBuilder::new(name);
    let frames = g.input(
        FRAMES,
        DType::F32,
        &[BATCH.into(), RGB.into(), time, HEIGHT.into(), WIDTH.into()],
    );
    let state = CausalState::new(&mut g, phase, encoder_cache_slots(cfg));
    let mut net = VaeNet::new(g, weights, prefix, state);
    let latent = encode(&mut net, cfg, &frames)?;
    let VaeNet { mut g, state, .. } = net;
    let s = cfg.spatial_factor();
    g.output(
        &latent,
        LATENT,
        DType::F32,
        &[
            BATCH.into(),
            cfg.z_dim.into(),
            latent_time,
            scaled(HEIGHT, s),
            scaled(WIDTH, s),
        ],
    );
    state.finish(&mut g);
    Ok(g.finish())
}

fn encode(net: &mut VaeNet, cfg: &WanVaeConfig, frames: &Value) -> Result<Value, WeightError> {
    let dims = cfg.encoder_dims();
    let mut downscale = cfg.patch();
    let x = patchify(&mut net.g, frames, RGB, cfg.patch());
    let mut x = net.causal_conv(&x, "encoder.conv_in", cfg.in_channels, dims[0], downscale)?;
    for i in 0..cfg.num_blocks() {
        let module = format!("encoder.down_blocks.{i}");
        let (cin, cout) = (dims[i], dims[i + 1]);
        let block_in = x.clone();
        for r in 0..cfg.num_res_blocks {
            let rin = if r == 0 { cin } else { cout };
            x = net.residual_block(&x, &format!("{module}.resnets.{r}"), rin, cout, downscale)?;
        }
        let (ft, fs) = (cfg.down_time_factor(i), cfg.down_space_factor(i));
        if cfg.down_flag(i) {
            downscale *= fs;
            x = net.downsample(
                &x,
                &format!("{module}.downsampler"),
                cout,
                ft > 1,
                downscale,
            )?;
        }
        // The first call sees one frame, which diffusers pads at the front to `ft` frames.
        let front_pad = if net.phase() == Phase::First {
            ft - 1
        } else {
            0
        };
        let shortcut = avg_down(&mut net.g, &block_in, cin, cout, ft, fs, front_pad);
        x = net.g.add(&x, &shortcut);
    }
    let top = *dims.last().unwrap();
    x = net.mid_block(&x, "encoder.mid_block", top, downscale)?;
    x = net.rms_norm(&x, "encoder.norm_out", top, &[top, 1, 1, 1])?;
    x = crate::nn::silu(&mut net.g, &x);
    let z2 = 2 * cfg.z_dim;
    x = net.causal_conv(&x, "encoder.conv_out", top, z2, downscale)?;
    let moments = net.conv3d(&x, "quant_conv", z2, z2, [1, 1, 1], [1, 1, 1], [0; 6])?;
    let g = &mut net.g;
    let mu = g.slice(&moments, 1, 0, cfg.z_dim as i64);
    let mean = g.const_f32(
        "latents_mean",
        &[cfg.z_dim, 1, 1, 1],
        cfg.latents_mean.clone(),
    );
    let inv_std: Vec<f32> = cfg.latents_std.iter().map(|s| 1.0 / s).collect();
    let inv_std = g.const_f32("latents_inv_std", &[cfg.z_dim, 1, 1, 1], inv_std);
    let centered = g.sub(&mu, &mean);
    Ok(g.mul(&centered, &inv_std))
}
