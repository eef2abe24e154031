//! The decoder as two graphs, as diffusers `AutoencoderKLWan.decode` runs it on a clip: the
//! denormalized latent (`z / (1 / latents_std) + latents_mean`, LeRobot `denormalize_latents`)
//! through `post_quant_conv`, then the decoder frame by frame with its `feat_cache`
//! (`first_chunk` for latent frame 0), unpatchify and clamp to [-1, 1].
//!
//! - `vae_decode_first`: `latent` `[batch, z_dim, 1, height/16, width/16]` (normalized) →
//!   `frames` `[batch, 3, 1, height, width]` and `cache_out_{j}`.
//! - `vae_decode_stream`: `latent` `[batch, z_dim, time, height/16, width/16]` and `cache_in_{j}`
//!   → `frames` `[batch, 3, 4·time, height, width]` and `cache_out_{j}`. One call over several
//!   latent frames equals one call per frame (every cache is exact).
//!
//! The caches are listed by [`decoder_cache_shapes`] (`height`, `width`: the decoded frame size).

use super::config::{WanVaeConfig, RGB};
use super::layers::{dup_up, unpatchify, VaeNet};
use super::state::{
    scaled, CacheSlot, CausalState, Phase, BATCH, CONV_HISTORY, HEIGHT, TIME, WIDTH,
};
use crate::builder::{DType, Dim, GraphBuilder, Model, Value};
use crate::weights::{WeightError, WeightSource};

pub const LATENT: &str = "latent";
pub const FRAMES: &str = "frames";
pub const FIRST_GRAPH_NAME: &str = "vae_decode_first";
pub const STREAM_GRAPH_NAME: &str = "vae_decode_stream";

/// The caches in graph order: `conv_in`; the mid block's four convs; per up block each resnet's
/// `conv1`, `conv2`, then the temporal upsampler's time conv (2 frames; zeros after the first
/// call, diffusers' "Rep"); `conv_out`.
pub fn decoder_cache_slots(cfg: &WanVaeConfig) -> Vec<CacheSlot> {
    let dims = cfg.decoder_dims();
    let conv = |channels, downscale| CacheSlot {
        channels,
        frames: CONV_HISTORY,
        downscale,
    };
    let mut downscale = cfg.spatial_factor();
    let mut slots = vec![conv(cfg.z_dim, downscale)];
    slots.extend(std::iter::repeat_n(conv(dims[0], downscale), 4));
    for i in 0..cfg.num_blocks() {
        let (cin, cout) = (dims[i], dims[i + 1]);
        for r in 0..=cfg.num_res_blocks {
            slots.push(conv(if r == 0 { cin } else { cout }, downscale));
            slots.push(conv(cout, downscale));
        }
        if cfg.up_time_factor(i) > 1 {
            slots.push(conv(cout, downscale));
        }
        if cfg.up_flag(i) {
            downscale /= 2;
        }
    }
    slots.push(conv(*dims.last().unwrap(), downscale));
    slots
}

/// Shapes of `cache_in_{j}` / `cache_out_{j}` when decoding `batch` latents into `height × width` frames.
pub fn decoder_cache_shapes(
    cfg: &WanVaeConfig,
    batch: usize,
    height: usize,
    width: usize,
) -> Vec<Vec<usize>> {
    decoder_cache_slots(cfg)
        .iter()
        .map(|s| s.shape(batch, height, width))
        .collect()
}

/// `(vae_decode_first, vae_decode_stream)`; `prefix` as for the encoder.
pub fn build_vae_decode_graphs(
    cfg: &WanVaeConfig,
    weights: &dyn WeightSource,
    prefix: &str,
) -> Result<(Model, Model), WeightError> {
    let first = build_decode_graph(cfg, weights, prefix, Phase::First)?;
    let stream = build_decode_graph(cfg, weights, prefix, Phase::Stream)?;
    Ok((first, stream))
}

fn build_decode_graph(
    cfg: &WanVaeConfig,
    weights: &dyn WeightSource,
    prefix: &str,
    phase: Phase,
) -> Result<Model, WeightError> {
    let (name, latent_time, time) = match phase {
        Phase::First => (FIRST_GRAPH_NAME, Dim::from(1usize), Dim::from(1usize)),
        Phase::Stream => (
            STREAM_GRAPH_NAME,
            Dim::from(TIME),
            Dim::Named(format!("{TIME}*{}", cfg.temporal_factor())),
        ),
    };
    let s = cfg.spatial_factor();
    let mut g = GraphBuilder::new(name);
    let latent = g.input(
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
    let state = CausalState::new(&mut g, phase, decoder_cache_slots(cfg));
    let mut net = VaeNet::new(g, weights, prefix, state);
    let frames = decode(&mut net, cfg, &latent)?;
    let VaeNet { mut g, state, .. } = net;
    g.output(
        &frames,
        FRAMES,
        DType::F32,
        &[BATCH.into(), RGB.into(), time, HEIGHT.into(), WIDTH.into()],
    );
    state.finish(&mut g);
    Ok(g.finish())
}

fn decode(net: &mut VaeNet, cfg: &WanVaeConfig, latent: &Value) -> Result<Value, WeightError> {
    let dims = cfg.decoder_dims();
    let first_chunk = net.phase() == Phase::First;
    let g = &mut net.g;
    let inv_std: Vec<f32> = cfg.latents_std.iter().map(|s| 1.0 / s).collect();
    let inv_std = g.const_f32("latents_inv_std", &[cfg.z_dim, 1, 1, 1], inv_std);
    let mean = g.const_f32(
        "latents_mean",
        &[cfg.z_dim, 1, 1, 1],
        cfg.latents_mean.clone(),
    );
    let z = g.div(latent, &inv_std);
    let z = g.add(&z, &mean);
    let z = net.conv3d(
        &z,
        "post_quant_conv",
        cfg.z_dim,
        cfg.z_dim,
        [1, 1, 1],
        [1, 1, 1],
        [0; 6],
    )?;

    let mut downscale = cfg.spatial_factor();
    let mut x = net.causal_conv(&z, "decoder.conv_in", cfg.z_dim, dims[0], downscale)?;
    x = net.mid_block(&x, "decoder.mid_block", dims[0], downscale)?;
    for i in 0..cfg.num_blocks() {
        let module = format!("decoder.up_blocks.{i}");
        let (cin, cout) = (dims[i], dims[i + 1]);
        let block_in = x.clone();
        for r in 0..=cfg.num_res_blocks {
            let rin = if r == 0 { cin } else { cout };
            x = net.residual_block(&x, &format!("{module}.resnets.{r}"), rin, cout, downscale)?;
        }
        if cfg.up_flag(i) {
            let ft = cfg.up_time_factor(i);
            x = net.upsample(&x, &format!("{module}.upsampler"), cout, ft > 1, downscale)?;
            downscale /= 2;
            let shortcut = dup_up(&mut net.g, &block_in, cin, cout, ft, 2, first_chunk);
            x = net.g.add(&x, &shortcut);
        }
    }
    let last = *dims.last().unwrap();
    x = net.rms_norm(&x, "decoder.norm_out", last, &[last, 1, 1, 1])?;
    x = crate::nn::silu(&mut net.g, &x);
    x = net.causal_conv(&x, "decoder.conv_out", last, cfg.out_channels, downscale)?;
    let g = &mut net.g;
    let frames = unpatchify(g, &x, RGB, cfg.patch());
    let (lo, hi) = (g.scalar_f32(-1.0), g.scalar_f32(1.0));
    Ok(g.op("Clip", &[&frames, &lo, &hi], vec![]))
}
