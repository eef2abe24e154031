//! One Euler step of VLA-JEPA's flow-matching action head (LeRobot `VLAJEPAActionHead`):
//! noisy action chunk + timestep bucket + (state) + conditioning tokens → velocity.
//! The host runs the loop `x += dt · v` over [`euler_timesteps`] with [`euler_step_size`].
//!
//! Token stream fed to the DiT: `[state token?, future tokens, action tokens]`; the
//! conditioning tokens enter only through the cross-attention of the even-numbered blocks.

use crate::blocks::adaln::modulate;
use crate::blocks::attention as mha;
use crate::blocks::mlp::{feed_forward, Activation, Widths};
use crate::blocks::sinusoid::{self, sinusoid_features, HalfOrder};
use crate::blocks::Prefixed;
use crate::builder::{DType, Dim, GraphBuilder, Model, Precision, Value};
use crate::nn;
use crate::vla_jepa::config::{DitDims, VlaJepaConfig, TIMESTEP_PROJ_CHANNELS};
use crate::weights::{WeightError, WeightSource};

pub const NOISY_ACTIONS: &str = "noisy_actions";
pub const TIMESTEP: &str = "timestep";
pub const STATE: &str = "state";
pub const CONDITIONING: &str = "conditioning";
pub const VELOCITY: &str = "velocity";

pub const GRAPH_NAME: &str = "vla_jepa_dit_step";
pub const CONDITION_GRAPH_NAME: &str = "vla_jepa_dit_condition";

/// Input/output names of the cross-attention keys and values of block `index` (even blocks),
/// `[num_future_tokens, inner_dim]`, when they are computed once per chunk.
pub fn cross_key_name(index: usize) -> String {
    format!("cross_key_{index}")
}
pub fn cross_value_name(index: usize) -> String {
    format!("cross_value_{index}")
}

/// What the cross-attending blocks read: the conditioning tokens (projected in every step), or
/// their keys and values projected once per chunk by the condition graph.
enum CrossContext {
    Tokens(Value),
    Projected(Vec<(Value, Value)>),
}

/// `nn.LayerNorm(eps=1e-5, elementwise_affine=False)` before attention and feed-forward.
const BLOCK_NORM_EPS: f32 = 1e-5;
/// The DiT's `norm_out` before `proj_out_2`.
const OUTPUT_NORM_EPS: f32 = 1e-6;

/// The timestep bucket upstream feeds at each Euler step: `int(step / N · buckets)`.
pub fn euler_timesteps(cfg: &VlaJepaConfig) -> Vec<i64> {
    let n = cfg.num_inference_timesteps;
    let buckets = cfg.action_num_timestep_buckets as f64;
    (0..n)
        .map(|step| ((step as f64 / n.max(1) as f64) * buckets) as i64)
        .collect()
}

/// `dt = 1 / N`, as the f32 that multiplies the f32 velocity upstream.
pub fn euler_step_size(cfg: &VlaJepaConfig) -> f32 {
    (1.0 / cfg.num_inference_timesteps.max(1) as f64) as f32
}

/// Frequencies of diffusers `Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=1)`:
/// `exp(-ln(10000) · k / (half - 1))`, rounded step by step in f32 as torch does.
pub fn timestep_proj_frequencies() -> Vec<f32> {
    sinusoid::timestep_frequencies(TIMESTEP_PROJ_CHANNELS, 1)
}

/// Frequencies of the action encoder's sinusoidal time features for width `dim`:
/// `exp(-k · ln(10000) / (dim / 2))`, rounded step by step in f32 as torch does.
pub fn action_time_frequencies(dim: usize) -> Vec<f32> {
    sinusoid::stepped_frequencies(dim)
}

/// The action head's weights and widths.
struct Ctx<'a> {
    at: Prefixed<'a>,
    dims: DitDims,
    cond_dim: usize,
}

impl Ctx<'_> {
    /// The two halves of `linear(silu(temb))`, in the order they are chunked.
    fn modulation_pair(
        &self,
        g: &mut GraphBuilder,
        silu_temb: &Value,
        rel: &str,
    ) -> Result<(Value, Value), WeightError> {
        let d = self.dims.inner_dim;
        let both = self.at.linear(g, silu_temb, rel, d, 2 * d)?;
        let first = g.slice(&both, -1, 0, d as i64);
        let second = g.slice(&both, -1, d as i64, 2 * d as i64);
        Ok((first, second))
    }
}

/// `temb`: `TimestepEmbedding(cat(cos, sin))` of the bucket, `[1, D]`.
fn timestep_embedding(g: &mut GraphBuilder, c: &Ctx, t_col: &Value) -> Result<Value, WeightError> {
    let proj = sinusoid_features(g, t_col, timestep_proj_frequencies(), HalfOrder::CosSin);
    let base = "model.timestep_encoder.timestep_embedder";
    feed_forward(
        g,
        &c.at,
        &proj,
        [&format!("{base}.linear_1"), &format!("{base}.linear_2")],
        Widths {
            input: TIMESTEP_PROJ_CHANNELS,
            hidden: c.dims.inner_dim,
            output: c.dims.inner_dim,
        },
        Activation::Silu,
    )
}

/// `ActionEncoder` plus the learned positions of the chunk: `[chunk, D]`.
fn action_tokens(
    g: &mut GraphBuilder,
    c: &Ctx,
    x: &Value,
    t_col: &Value,
    action_dim: usize,
) -> Result<Value, WeightError> {
    let DitDims {
        inner_dim: d,
        chunk,
        ..
    } = c.dims;
    let emb = c.at.linear(g, x, "action_encoder.layer1", action_dim, d)?;
    // The bucket is repeated per action row before the sinusoid, as upstream does.
    let shape = g.const_i64(&[chunk as i64, 1]);
    let t_rows = g.op("Expand", &[t_col, &shape], vec![]);
    let time = sinusoid_features(g, &t_rows, action_time_frequencies(d), HalfOrder::SinCos);
    let both = g.concat(&[&emb, &time], -1);
    let h = feed_forward(
        g,
        &c.at,
        &both,
        ["action_encoder.layer2", "action_encoder.layer3"],
        Widths {
            input: 2 * d,
            hidden: d,
            output: d,
        },
        Activation::Silu,
    )?;

    let table_name = c.at.name("position_embedding.weight");
    let table =
        c.at.weights
            .get_shaped(&table_name, &[c.dims.position_rows, d])?;
    let rows = table.data[..chunk * d].to_vec();
    let positions = g.weight(&format!("{table_name}[0:{chunk}]"), &[chunk, d], rows);
    Ok(g.add(&h, &positions))
}

/// `state_encoder`: Linear → ReLU → Linear on the one state row, `[1, D]`.
fn state_token(
    g: &mut GraphBuilder,
    c: &Ctx,
    state: &Value,
    state_dim: usize,
) -> Result<Value, WeightError> {
    let row = g.reshape(state, &[1, state_dim as i64]);
    feed_forward(
        g,
        &c.at,
        &row,
        ["state_encoder.layer1", "state_encoder.layer2"],
        Widths {
            input: state_dim,
            hidden: c.dims.output_dim,
            output: c.dims.inner_dim,
        },
        Activation::Relu,
    )
}

/// Multi-head attention of `query_in` over `context` (diffusers `Attention`, no mask).
fn attention(
    g: &mut GraphBuilder,
    c: &Ctx,
    base: &str,
    query_in: &Value,
    context: &Value,
    context_dim: usize,
) -> Result<Value, WeightError> {
    let (k, v) = key_value(g, c, base, context, context_dim)?;
    attend_projected(g, c, base, query_in, &k, &v)
}

/// `to_k` and `to_v` of the attention at `base` applied to `context`.
fn key_value(
    g: &mut GraphBuilder,
    c: &Ctx,
    base: &str,
    context: &Value,
    context_dim: usize,
) -> Result<(Value, Value), WeightError> {
    let d = c.dims.inner_dim;
    let k =
        c.at.linear(g, context, &format!("{base}.to_k"), context_dim, d)?;
    let v =
        c.at.linear(g, context, &format!("{base}.to_v"), context_dim, d)?;
    Ok((k, v))
}

/// The attention at `base` of `query_in` over already projected keys and values.
fn attend_projected(
    g: &mut GraphBuilder,
    c: &Ctx,
    base: &str,
    query_in: &Value,
    k: &Value,
    v: &Value,
) -> Result<Value, WeightError> {
    let DitDims {
        inner_dim: d,
        heads,
        head_dim,
        ..
    } = c.dims;
    let q = c.at.linear(g, query_in, &format!("{base}.to_q"), d, d)?;
    let q = mha::split_heads(g, &q, heads, head_dim);
    let k = mha::split_heads(g, k, heads, head_dim);
    let v = mha::split_heads(g, v, heads, head_dim);
    let o = mha::attention(g, &q, &k, &v, head_dim, None);
    let o = mha::merge_heads(g, &o, heads, head_dim);
    c.at.linear(g, &o, &format!("{base}.to_out.0"), d, d)
}

/// One `BasicTransformerBlock`: even blocks cross-attend to the conditioning tokens, odd
/// blocks self-attend.
fn transformer_block(
    g: &mut GraphBuilder,
    c: &Ctx,
    index: usize,
    x: &Value,
    silu_temb: &Value,
    cond: &CrossContext,
) -> Result<Value, WeightError> {
    let d = c.dims.inner_dim;
    let base = format!("model.transformer_blocks.{index}");
    let (scale, shift) = c.modulation_pair(g, silu_temb, &format!("{base}.norm1.linear"))?;
    let attn_in = modulate(g, x, BLOCK_NORM_EPS, &scale, &shift);
    let attn_out = if index.is_multiple_of(2) {
        let attn = format!("{base}.attn1");
        match cond {
            CrossContext::Tokens(tokens) => attention(g, c, &attn, &attn_in, tokens, c.cond_dim)?,
            CrossContext::Projected(kv) => {
                let (k, v) = &kv[index / 2];
                attend_projected(g, c, &attn, &attn_in, k, v)?
            }
        }
    } else {
        attention(g, c, &format!("{base}.attn1"), &attn_in, &attn_in, d)?
    };
    let x = g.add(x, &attn_out);

    let ff_in = nn::standardize(g, &x, BLOCK_NORM_EPS);
    let ff_out = feed_forward(
        g,
        &c.at,
        &ff_in,
        [
            &format!("{base}.ff.net.0.proj"),
            &format!("{base}.ff.net.2"),
        ],
        Widths::residual(d, c.dims.ff_dim),
        Activation::GeluTanh,
    )?;
    Ok(g.add(&x, &ff_out))
}

/// Builds the step graph. `prefix` is where the action head lives in the checkpoint
/// (`"model.action_model."`); `cond_dim` is the backbone's text hidden size.
pub fn build_dit_step_graph(
    cfg: &VlaJepaConfig,
    cond_dim: usize,
    weights: &dyn WeightSource,
    prefix: &str,
) -> Result<Model, WeightError> {
    build_dit_step_graph_at(cfg, cond_dim, weights, prefix, Precision::F32)
}

/// [`build_dit_step_graph`] with its linear layers and attention at `precision`.
pub fn build_dit_step_graph_at(
    cfg: &VlaJepaConfig,
    cond_dim: usize,
    weights: &dyn WeightSource,
    prefix: &str,
    precision: Precision,
) -> Result<Model, WeightError> {
    build_step(cfg, cond_dim, weights, prefix, precision, false)
}

/// The action head as two graphs: the condition graph (conditioning tokens → the keys and
/// values of every cross-attention, once per chunk) and a step graph that reads them
/// ([`cross_key_name`], [`cross_value_name`]) instead of the conditioning tokens.
pub fn build_dit_graphs_split(
    cfg: &VlaJepaConfig,
    cond_dim: usize,
    weights: &dyn WeightSource,
    prefix: &str,
    precision: Precision,
) -> Result<(Model, Model), WeightError> {
    let condition = build_condition(cfg, cond_dim, weights, prefix, precision)?;
    let step = build_step(cfg, cond_dim, weights, prefix, precision, true)?;
    Ok((condition, step))
}

fn build_condition(
    cfg: &VlaJepaConfig,
    cond_dim: usize,
    weights: &dyn WeightSource,
    prefix: &str,
    precision: Precision,
) -> Result<Model, WeightError> {
    let dims = cfg.dit_dims();
    let d = dims.inner_dim;
    let mut g = GraphBuilder::with_precision(CONDITION_GRAPH_NAME, precision);
    let rows = Dim::from(dims.num_future_tokens);
    let cond = g.input(
        CONDITIONING,
        DType::F32,
        &[rows.clone(), Dim::from(cond_dim)],
    );
    let c = Ctx {
        at: Prefixed::new(weights, prefix),
        dims,
        cond_dim,
    };
    for index in (0..dims.num_layers).step_by(2) {
        let base = format!("model.transformer_blocks.{index}.attn1");
        let (k, v) = g.scoped(&format!("block_{index}"), |g| {
            key_value(g, &c, &base, &cond, cond_dim)
        })?;
        g.output(
            &k,
            &cross_key_name(index),
            DType::F32,
            &[rows.clone(), Dim::from(d)],
        );
        g.output(
            &v,
            &cross_value_name(index),
            DType::F32,
            &[rows.clone(), Dim::from(d)],
        );
    }
    Ok(g.finish())
}

fn build_step(
    cfg: &VlaJepaConfig,
    cond_dim: usize,
    weights: &dyn WeightSource,
    prefix: &str,
    precision: Precision,
    projected_context: bool,
) -> Result<Model, WeightError> {
    let dims = cfg.dit_dims();
    let action_dim = cfg.action_dim();
    let state_dim = cfg.state_dim();
    let d = dims.inner_dim;
    let mut g = GraphBuilder::with_precision(GRAPH_NAME, precision);

    let x = g.input(
        NOISY_ACTIONS,
        DType::F32,
        &[Dim::from(dims.chunk), Dim::from(action_dim)],
    );
    let t = g.input(TIMESTEP, DType::I64, &[Dim::from(1usize)]);
    let state = state_dim.map(|s| g.input(STATE, DType::F32, &[Dim::from(s)]));
    let cond = if projected_context {
        let kv_shape = [Dim::from(dims.num_future_tokens), Dim::from(d)];
        CrossContext::Projected(
            (0..dims.num_layers)
                .step_by(2)
                .map(|i| {
                    let k = g.input(&cross_key_name(i), DType::F32, &kv_shape);
                    let v = g.input(&cross_value_name(i), DType::F32, &kv_shape);
                    (k, v)
                })
                .collect(),
        )
    } else {
        CrossContext::Tokens(g.input(
            CONDITIONING,
            DType::F32,
            &[Dim::from(dims.num_future_tokens), Dim::from(cond_dim)],
        ))
    };

    let c = Ctx {
        at: Prefixed::new(weights, prefix),
        dims,
        cond_dim,
    };

    let t_f = g.cast(&t, DType::F32);
    let t_col = g.unsqueeze(&t_f, &[1]);

    let temb = g.scoped("timestep_encoder", |g| timestep_embedding(g, &c, &t_col))?;
    let silu_temb = nn::silu(&mut g, &temb);

    let actions = g.scoped("action_encoder", |g| {
        action_tokens(g, &c, &x, &t_col, action_dim)
    })?;
    let future_name = c.at.name("future_tokens.weight");
    let future = weights.get_shaped(&future_name, &[dims.num_future_tokens, d])?;
    let future = g.weight(&future_name, &future.shape, future.data);
    let (mut seq, seq_len) = match (&state, state_dim) {
        (Some(s), Some(sd)) => {
            let st = g.scoped("state_encoder", |g| state_token(g, &c, s, sd))?;
            (
                g.concat(&[&st, &future, &actions], 0),
                1 + dims.num_future_tokens + dims.chunk,
            )
        }
        _ => (
            g.concat(&[&future, &actions], 0),
            dims.num_future_tokens + dims.chunk,
        ),
    };

    for i in 0..dims.num_layers {
        seq = g.scoped(&format!("block_{i}"), |g| {
            transformer_block(g, &c, i, &seq, &silu_temb, &cond)
        })?;
    }

    // Everything after the blocks is row-wise, so only the action rows need computing.
    let rows = g.slice(&seq, 0, (seq_len - dims.chunk) as i64, seq_len as i64);
    let (shift, scale) = c.modulation_pair(&mut g, &silu_temb, "model.proj_out_1")?;
    let out = modulate(&mut g, &rows, OUTPUT_NORM_EPS, &scale, &shift);
    let out =
        c.at.linear(&mut g, &out, "model.proj_out_2", d, dims.output_dim)?;
    let v = feed_forward(
        &mut g,
        &c.at,
        &out,
        ["action_decoder.layer1", "action_decoder.layer2"],
        Widths {
            input: dims.output_dim,
            hidden: dims.output_dim,
            output: action_dim,
        },
        Activation::Relu,
    )?;

    g.output(
        &v,
        VELOCITY,
        DType::F32,
        &[Dim::from(dims.chunk), Dim::from(action_dim)],
    );
    Ok(g.finish())
}
