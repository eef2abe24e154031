//! The dual-stream Wan transformer of LingBot-VA (upstream `WanTransformer3DModel`) as three
//! graphs: `text_condition` (prompt embeddings → every block's cross-attention keys/values, once
//! per episode) and one denoising forward per stream, `video_step` and `action_step`.
//!
//! A step graph is upstream's single-stream inference forward with the self-attention KV cache
//! moved to graph I/O: it attends over the cache pool (masked by the additive `cache_bias`) plus
//! its own new tokens, and returns the pools with the new tokens' keys (after `norm_k` and RoPE)
//! and values written at the slots the host allocated for them ([`CACHE_SLOTS`]); the host keeps
//! those pools or the old ones, as the call's cache update says.
//!
//! Shapes: batch (`batch`), cache slots (`cache_len`), prompt length (`text_len`) and latent
//! frames (`frames`, with `tokens` = frames · tokens per frame) are symbolic; the latent height
//! and width and the actions per frame are fixed from the config.
//!
//! Step-graph inputs, in order: the noisy input, [`TIMESTEPS`], [`ROPE_COS`], [`ROPE_SIN`],
//! [`CACHE_BIAS`], [`CACHE_SLOTS`], then [`cache_key_name`]/[`cache_value_name`] of every block,
//! then [`cross_key_name`]/[`cross_value_name`] of every block. Outputs: [`VELOCITY`], then
//! [`updated_key_name`]/[`updated_value_name`] of every block.

use crate::blocks::adaln::modulate;
use crate::blocks::attention::{attention_batched, split_heads_batched};
use crate::blocks::mlp::{feed_forward, Activation, Widths};
use crate::blocks::rotary::rotate_pairs;
use crate::blocks::sinusoid::{sinusoid_features, timestep_frequencies, HalfOrder};
use crate::blocks::Prefixed;
use crate::builder::{DType, Dim, GraphBuilder, Model, Value};
use crate::lingbot_va::config::LingbotVaConfig;
use crate::nn;
use crate::weights::{WeightError, WeightSource};

pub const TEXT_EMBEDS: &str = "text_embeds";
pub const NOISY_LATENTS: &str = "noisy_latents";
pub const NOISY_ACTIONS: &str = "noisy_actions";
pub const TIMESTEPS: &str = "timesteps";
pub const ROPE_COS: &str = "rope_cos";
pub const ROPE_SIN: &str = "rope_sin";
pub const CACHE_BIAS: &str = "cache_bias";
/// The cache slot of each of this forward's tokens, `[tokens]` (i64).
pub const CACHE_SLOTS: &str = "cache_slots";
pub const VELOCITY: &str = "velocity";

pub const TEXT_CONDITION_GRAPH_NAME: &str = "lingbot_va_text_condition";
pub const VIDEO_STEP_GRAPH_NAME: &str = "lingbot_va_video_step";
pub const ACTION_STEP_GRAPH_NAME: &str = "lingbot_va_action_step";

/// Names of the symbolic dimensions.
pub const BATCH_DIM: &str = "batch";
pub const FRAMES_DIM: &str = "frames";
pub const TOKENS_DIM: &str = "tokens";
pub const CACHE_DIM: &str = "cache_len";
pub const TEXT_LEN_DIM: &str = "text_len";

/// Cross-attention keys of block `i` (after `attn2.norm_k`), `[batch, text_len, inner]`.
pub fn cross_key_name(i: usize) -> String {
    format!("cross_key_{i}")
}
/// Cross-attention values of block `i`, `[batch, text_len, inner]`.
pub fn cross_value_name(i: usize) -> String {
    format!("cross_value_{i}")
}
/// Self-attention key pool of block `i`, `[batch, cache_len, heads, head_dim]`.
pub fn cache_key_name(i: usize) -> String {
    format!("cache_key_{i}")
}
/// Self-attention value pool of block `i`, `[batch, cache_len, heads, head_dim]`.
pub fn cache_value_name(i: usize) -> String {
    format!("cache_value_{i}")
}
/// Key pool of block `i` with this forward's keys (after `norm_k` and RoPE) at [`CACHE_SLOTS`],
/// `[batch, cache_len, heads, head_dim]`.
pub fn updated_key_name(i: usize) -> String {
    format!("updated_key_{i}")
}
/// Value pool of block `i` with this forward's values at [`CACHE_SLOTS`],
/// `[batch, cache_len, heads, head_dim]`.
pub fn updated_value_name(i: usize) -> String {
    format!("updated_value_{i}")
}

/// Which token stream a step graph denoises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Video,
    Action,
}

impl Stream {
    fn graph_name(self) -> &'static str {
        match self {
            Stream::Video => VIDEO_STEP_GRAPH_NAME,
            Stream::Action => ACTION_STEP_GRAPH_NAME,
        }
    }

    /// The timestep embedder of the stream; the text embedder is always the video one.
    fn condition_embedder(self) -> &'static str {
        match self {
            Stream::Video => "condition_embedder",
            Stream::Action => "condition_embedder_action",
        }
    }
}

/// The transformer's weights and the widths its layers share.
struct Ctx<'a> {
    at: Prefixed<'a>,
    cfg: &'a LingbotVaConfig,
    inner: usize,
    heads: usize,
    head_dim: usize,
    eps: f32,
}

impl<'a> Ctx<'a> {
    fn new(cfg: &'a LingbotVaConfig, w: &'a dyn WeightSource, prefix: &'a str) -> Self {
        let inner = cfg.inner_dim();
        Ctx {
            at: Prefixed::new(w, prefix),
            cfg,
            inner,
            heads: cfg.num_attention_heads,
            head_dim: cfg.attention_head_dim,
            eps: cfg.eps as f32,
        }
    }

    fn name(&self, rel: &str) -> String {
        self.at.name(rel)
    }

    fn linear(
        &self,
        g: &mut GraphBuilder,
        x: &Value,
        rel: &str,
        fan_in: usize,
        fan_out: usize,
    ) -> Result<Value, WeightError> {
        self.at.linear(g, x, rel, fan_in, fan_out)
    }

    /// `torch.nn.RMSNorm` over the full inner width (all heads together).
    fn rms_norm(&self, g: &mut GraphBuilder, x: &Value, rel: &str) -> Result<Value, WeightError> {
        self.at.rms_norm(g, x, rel, self.inner, self.eps)
    }

    /// `[batch, len, inner]` → `[batch, len, heads, head_dim]`.
    fn split_heads(&self, g: &mut GraphBuilder, x: &Value) -> Value {
        split_heads_batched(g, x, self.heads, self.head_dim)
    }

    /// Attention of `q` over `k`, `v` (all `[batch, len, heads, head_dim]`) → `[batch, q_len, inner]`.
    fn attention(
        &self,
        g: &mut GraphBuilder,
        q: &Value,
        k: &Value,
        v: &Value,
        bias: Option<&Value>,
    ) -> Value {
        attention_batched(g, q, k, v, [self.heads, self.head_dim], bias)
    }
}

/// `condition_embedder.text_embedder` (PixArt-α text projection: Linear → GELU(tanh) → Linear).
fn text_hidden(g: &mut GraphBuilder, c: &Ctx, text: &Value) -> Result<Value, WeightError> {
    let base = "condition_embedder.text_embedder";
    feed_forward(
        g,
        &c.at,
        text,
        [&format!("{base}.linear_1"), &format!("{base}.linear_2")],
        Widths {
            input: c.cfg.text_dim,
            hidden: c.inner,
            output: c.inner,
        },
        Activation::GeluTanh,
    )
}

/// Per-token `temb` `[batch, L, inner]` and block modulation `[batch, L, 6, inner]` of `t` `[batch, L]`.
fn time_embedding(
    g: &mut GraphBuilder,
    c: &Ctx,
    stream: Stream,
    t: &Value,
) -> Result<(Value, Value), WeightError> {
    let base = stream.condition_embedder();
    let freq_dim = c.cfg.freq_dim;
    let t_col = g.unsqueeze(t, &[-1]);
    let frequencies = timestep_frequencies(freq_dim, 0);
    let sinusoid = sinusoid_features(g, &t_col, frequencies, HalfOrder::CosSin);
    let temb = feed_forward(
        g,
        &c.at,
        &sinusoid,
        [
            &format!("{base}.time_embedder.linear_1"),
            &format!("{base}.time_embedder.linear_2"),
        ],
        Widths {
            input: freq_dim,
            hidden: c.inner,
            output: c.inner,
        },
        Activation::Silu,
    )?;
    let act = nn::silu(g, &temb);
    let proj = c.linear(g, &act, &format!("{base}.time_proj"), c.inner, 6 * c.inner)?;
    let proj = g.reshape(&proj, &[0, 0, 6, c.inner as i64]);
    Ok((temb, proj))
}

/// Entry `index` of a `[batch, L, n, inner]` modulation tensor, as `[batch, L, inner]`.
fn modulation(g: &mut GraphBuilder, c: &Ctx, table: &Value, index: usize) -> Value {
    let row = g.slice(table, 2, index as i64, index as i64 + 1);
    g.reshape(&row, &[0, 0, c.inner as i64])
}

/// The inputs one block reads besides the token stream.
struct BlockInputs {
    cache_key: Value,
    cache_value: Value,
    cross_key: Value,
    cross_value: Value,
}

/// What one block produces: the updated stream and its new self-attention keys and values.
struct BlockOutputs {
    hidden: Value,
    new_key: Value,
    new_value: Value,
}

/// Shared per-forward tensors: the block modulation, the rotary tables and the key bias.
struct StepContext {
    timestep_proj: Value,
    cos: Value,
    sin: Value,
    key_bias: Value,
}

/// Self-attention over the cache pool and the new tokens; returns the output and the new K, V.
fn self_attention(
    g: &mut GraphBuilder,
    c: &Ctx,
    base: &str,
    x: &Value,
    step: &StepContext,
    inputs: &BlockInputs,
) -> Result<(Value, Value, Value), WeightError> {
    let d = c.inner;
    let q = c.linear(g, x, &format!("{base}.to_q"), d, d)?;
    let q = c.rms_norm(g, &q, &format!("{base}.norm_q"))?;
    let k = c.linear(g, x, &format!("{base}.to_k"), d, d)?;
    let k = c.rms_norm(g, &k, &format!("{base}.norm_k"))?;
    let v = c.linear(g, x, &format!("{base}.to_v"), d, d)?;
    let q = c.split_heads(g, &q);
    let k = c.split_heads(g, &k);
    let v = c.split_heads(g, &v);
    let q = rotate_pairs(g, &q, &step.cos, &step.sin, c.head_dim);
    let k = rotate_pairs(g, &k, &step.cos, &step.sin, c.head_dim);
    let keys = g.concat(&[&inputs.cache_key, &k], 1);
    let values = g.concat(&[&inputs.cache_value, &v], 1);
    let out = c.attention(g, &q, &keys, &values, Some(&step.key_bias));
    let out = c.linear(g, &out, &format!("{base}.to_out.0"), d, d)?;
    Ok((out, k, v))
}

/// Cross-attention on the precomputed text keys and values (no mask, no RoPE).
fn cross_attention(
    g: &mut GraphBuilder,
    c: &Ctx,
    base: &str,
    x: &Value,
    inputs: &BlockInputs,
) -> Result<Value, WeightError> {
    let d = c.inner;
    let q = c.linear(g, x, &format!("{base}.to_q"), d, d)?;
    let q = c.rms_norm(g, &q, &format!("{base}.norm_q"))?;
    let q = c.split_heads(g, &q);
    let k = c.split_heads(g, &inputs.cross_key);
    let v = c.split_heads(g, &inputs.cross_value);
    let out = c.attention(g, &q, &k, &v, None);
    c.linear(g, &out, &format!("{base}.to_out.0"), d, d)
}

/// One `WanTransformerBlock` with per-token adaLN.
fn transformer_block(
    g: &mut GraphBuilder,
    c: &Ctx,
    index: usize,
    x: &Value,
    step: &StepContext,
    inputs: &BlockInputs,
) -> Result<BlockOutputs, WeightError> {
    let d = c.inner;
    let base = format!("blocks.{index}");
    let table_name = c.name(&format!("{base}.scale_shift_table"));
    let table = g.checkpoint_weight(
        c.at.weights,
        &table_name,
        &[1, 6, d],
        crate::Layout::AsIs,
        crate::Encoding::F32,
    )?;
    let m = g.add(&table, &step.timestep_proj);
    let [shift, scale, gate, c_shift, c_scale, c_gate] =
        std::array::from_fn(|i| modulation(g, c, &m, i));

    let attn_in = modulate(g, x, c.eps, &scale, &shift);
    let (attn_out, new_key, new_value) =
        self_attention(g, c, &format!("{base}.attn1"), &attn_in, step, inputs)?;
    let gated = g.mul(&attn_out, &gate);
    let x = g.add(x, &gated);

    let cross_in = if c.cfg.cross_attn_norm {
        nn::layer_norm(
            g,
            c.at.weights,
            &x,
            Some(&c.name(&format!("{base}.norm2"))),
            d,
            c.eps,
        )?
    } else {
        x.clone()
    };
    let cross_out = cross_attention(g, c, &format!("{base}.attn2"), &cross_in, inputs)?;
    let x = g.add(&x, &cross_out);

    let ffn_in = modulate(g, &x, c.eps, &c_scale, &c_shift);
    let ffn_out = feed_forward(
        g,
        &c.at,
        &ffn_in,
        [
            &format!("{base}.ffn.net.0.proj"),
            &format!("{base}.ffn.net.2"),
        ],
        Widths::residual(d, c.cfg.ffn_dim),
        Activation::GeluTanh,
    )?;
    let gated = g.mul(&ffn_out, &c_gate);
    let hidden = g.add(&x, &gated);
    Ok(BlockOutputs {
        hidden,
        new_key,
        new_value,
    })
}

/// The prompt-embedding graph: `text_embeds` → [`cross_key_name`], [`cross_value_name`] of every block.
pub fn build_text_condition_graph(
    cfg: &LingbotVaConfig,
    weights: &dyn WeightSource,
    prefix: &str,
) -> Result<Model, WeightError> {
    let mut g = GraphBuilder::new(TEXT_CONDITION_GRAPH_NAME);
    let c = Ctx::new(cfg, weights, prefix);
    let rows = [Dim::from(BATCH_DIM), Dim::from(TEXT_LEN_DIM)];
    let text = g.input(
        TEXT_EMBEDS,
        DType::F32,
        &[rows[0].clone(), rows[1].clone(), Dim::from(cfg.text_dim)],
    );
    let hidden = g.scoped("text_embedder", |g| text_hidden(g, &c, &text))?;
    let out_shape = [rows[0].clone(), rows[1].clone(), Dim::from(c.inner)];
    for i in 0..cfg.num_layers {
        let (k, v) = g.scoped(&format!("block_{i}"), |g| -> Result<_, WeightError> {
            let base = format!("blocks.{i}.attn2");
            let k = c.linear(g, &hidden, &format!("{base}.to_k"), c.inner, c.inner)?;
            let k = c.rms_norm(g, &k, &format!("{base}.norm_k"))?;
            let v = c.linear(g, &hidden, &format!("{base}.to_v"), c.inner, c.inner)?;
            Ok((k, v))
        })?;
        g.output(&k, &cross_key_name(i), DType::F32, &out_shape);
        g.output(&v, &cross_value_name(i), DType::F32, &out_shape);
    }
    Ok(g.finish())
}

/// The video denoising forward: `noisy_latents` `[batch, in_channels, frames, h, w]` → `velocity`
/// `[batch, out_channels, frames, h, w]` and the new keys/values (see the module docs).
pub fn build_video_step_graph(
    cfg: &LingbotVaConfig,
    weights: &dyn WeightSource,
    prefix: &str,
) -> Result<Model, WeightError> {
    build_step_graph(cfg, weights, prefix, Stream::Video)
}

/// The action denoising forward: `noisy_actions` `[batch, action_dim, frames, action_per_frame]`
/// → `velocity` of the same shape and the new keys/values (see the module docs).
pub fn build_action_step_graph(
    cfg: &LingbotVaConfig,
    weights: &dyn WeightSource,
    prefix: &str,
) -> Result<Model, WeightError> {
    build_step_graph(cfg, weights, prefix, Stream::Action)
}

/// Declares the noisy input and embeds it into `[batch, tokens, inner]` in upstream's token order.
fn input_tokens(g: &mut GraphBuilder, c: &Ctx, stream: Stream) -> Result<Value, WeightError> {
    let cfg = c.cfg;
    let batch = Dim::from(BATCH_DIM);
    let frames = Dim::from(FRAMES_DIM);
    match stream {
        Stream::Video => {
            let (h, w) = cfg.latent_hw();
            let (h2, w2) = cfg.token_grid();
            let [_, ph, pw] = cfg.patch_size;
            let cin = cfg.in_channels;
            let x = g.input(
                NOISY_LATENTS,
                DType::F32,
                &[batch, Dim::from(cin), frames, Dim::from(h), Dim::from(w)],
            );
            // "b c f (h ph) (w pw) -> b (f h w) (c ph pw)"
            let x = g.reshape(
                &x,
                &[
                    0, cin as i64, -1, h2 as i64, ph as i64, w2 as i64, pw as i64,
                ],
            );
            let x = g.transpose(&x, &[0, 2, 3, 5, 1, 4, 6]);
            let patch = cin * ph * pw;
            let x = g.reshape(&x, &[0, -1, patch as i64]);
            c.linear(g, &x, "patch_embedding_mlp", patch, c.inner)
        }
        Stream::Action => {
            let a = cfg.action_dim;
            let x = g.input(
                NOISY_ACTIONS,
                DType::F32,
                &[batch, Dim::from(a), frames, Dim::from(cfg.action_per_frame)],
            );
            // "b c f n -> b (f n) c"
            let x = g.transpose(&x, &[0, 2, 3, 1]);
            let x = g.reshape(&x, &[0, -1, a as i64]);
            c.linear(g, &x, "action_embedder", a, c.inner)
        }
    }
}

/// The output head (global adaLN, projection) and the velocity in the input's layout.
fn velocity(
    g: &mut GraphBuilder,
    c: &Ctx,
    stream: Stream,
    x: &Value,
    temb: &Value,
) -> Result<Value, WeightError> {
    let cfg = c.cfg;
    let d = c.inner;
    let table_name = c.name("scale_shift_table");
    let table = g.checkpoint_weight(
        c.at.weights,
        &table_name,
        &[1, 2, d],
        crate::Layout::AsIs,
        crate::Encoding::F32,
    )?;
    let temb_row = g.unsqueeze(temb, &[2]);
    let ss = g.add(&table, &temb_row);
    let shift = modulation(g, c, &ss, 0);
    let scale = modulation(g, c, &ss, 1);
    let y = modulate(g, x, c.eps, &scale, &shift);
    match stream {
        Stream::Video => {
            let (h, w) = cfg.latent_hw();
            let (h2, w2) = cfg.token_grid();
            let [_, ph, pw] = cfg.patch_size;
            let cout = cfg.out_channels;
            let y = c.linear(g, &y, "proj_out", d, ph * pw * cout)?;
            // Output features are patch-major ((ph pw) c), unlike the channel-major input.
            let y = g.reshape(
                &y,
                &[
                    0,
                    -1,
                    h2 as i64,
                    w2 as i64,
                    ph as i64,
                    pw as i64,
                    cout as i64,
                ],
            );
            let y = g.transpose(&y, &[0, 6, 1, 2, 4, 3, 5]);
            Ok(g.reshape(&y, &[0, cout as i64, -1, h as i64, w as i64]))
        }
        Stream::Action => {
            let a = cfg.action_dim;
            let y = c.linear(g, &y, "action_proj_out", d, a)?;
            let y = g.reshape(&y, &[0, -1, cfg.action_per_frame as i64, a as i64]);
            Ok(g.transpose(&y, &[0, 3, 1, 2]))
        }
    }
}

fn build_step_graph(
    cfg: &LingbotVaConfig,
    weights: &dyn WeightSource,
    prefix: &str,
    stream: Stream,
) -> Result<Model, WeightError> {
    let mut g = GraphBuilder::new(stream.graph_name());
    let c = Ctx::new(cfg, weights, prefix);
    let (batch, tokens) = (Dim::from(BATCH_DIM), Dim::from(TOKENS_DIM));
    let heads = [Dim::from(c.heads), Dim::from(c.head_dim)];

    let x = g.scoped("embed", |g| input_tokens(g, &c, stream))?;
    let t = g.input(TIMESTEPS, DType::F32, &[batch.clone(), tokens.clone()]);
    let rope_shape = [tokens.clone(), Dim::from(c.head_dim / 2)];
    let cos = g.input(ROPE_COS, DType::F32, &rope_shape);
    let sin = g.input(ROPE_SIN, DType::F32, &rope_shape);
    let cache_bias = g.input(CACHE_BIAS, DType::F32, &[Dim::from(CACHE_DIM)]);
    let cache_slots = g.input(CACHE_SLOTS, DType::I64, std::slice::from_ref(&tokens));
    let pool_shape = [
        batch.clone(),
        Dim::from(CACHE_DIM),
        heads[0].clone(),
        heads[1].clone(),
    ];
    let pools: Vec<(Value, Value)> = (0..cfg.num_layers)
        .map(|i| {
            let k = g.input(&cache_key_name(i), DType::F32, &pool_shape);
            let v = g.input(&cache_value_name(i), DType::F32, &pool_shape);
            (k, v)
        })
        .collect();
    let text_shape = [batch.clone(), Dim::from(TEXT_LEN_DIM), Dim::from(c.inner)];
    let cross: Vec<(Value, Value)> = (0..cfg.num_layers)
        .map(|i| {
            let k = g.input(&cross_key_name(i), DType::F32, &text_shape);
            let v = g.input(&cross_value_name(i), DType::F32, &text_shape);
            (k, v)
        })
        .collect();

    let (temb, timestep_proj) =
        g.scoped("time_embedding", |g| time_embedding(g, &c, stream, &t))?;
    // The new tokens are always attended: bias 0 after the cache slots' bias.
    let len = g.op("Shape", &[&cos], vec![]);
    let len = g.slice(&len, 0, 0, 1);
    let zero = g.const_f32("zero", &[1], vec![0.0]);
    let zeros = g.op("Expand", &[&zero, &len], vec![]);
    let key_bias = g.concat(&[&cache_bias, &zeros], 0);
    let cos = g.unsqueeze(&cos, &[1, 3]);
    let sin = g.unsqueeze(&sin, &[1, 3]);
    let step = StepContext {
        timestep_proj,
        cos,
        sin,
        key_bias,
    };

    let mut hidden = x;
    let mut updated = Vec::with_capacity(cfg.num_layers);
    let mut pool_index = None;
    for (i, ((cache_key, cache_value), (cross_key, cross_value))) in
        pools.into_iter().zip(cross).enumerate()
    {
        let inputs = BlockInputs {
            cache_key,
            cache_value,
            cross_key,
            cross_value,
        };
        let out = g.scoped(&format!("block_{i}"), |g| {
            transformer_block(g, &c, i, &hidden, &step, &inputs)
        })?;
        hidden = out.hidden;
        let index = pool_index
            .get_or_insert_with(|| {
                g.scoped("cache_index", |g| {
                    pool_index_of(g, &cache_slots, &inputs.cache_key)
                })
            })
            .clone();
        updated.push(g.scoped(&format!("cache_write_{i}"), |g| {
            (
                g.op(
                    "ScatterND",
                    &[&inputs.cache_key, &index, &out.new_key],
                    vec![],
                ),
                g.op(
                    "ScatterND",
                    &[&inputs.cache_value, &index, &out.new_value],
                    vec![],
                ),
            )
        }));
    }
    let v = g.scoped("head", |g| velocity(g, &c, stream, &hidden, &temb))?;

    let velocity_shape = match stream {
        Stream::Video => {
            let (h, w) = cfg.latent_hw();
            vec![
                batch.clone(),
                Dim::from(cfg.out_channels),
                Dim::from(FRAMES_DIM),
                Dim::from(h),
                Dim::from(w),
            ]
        }
        Stream::Action => vec![
            batch.clone(),
            Dim::from(cfg.action_dim),
            Dim::from(FRAMES_DIM),
            Dim::from(cfg.action_per_frame),
        ],
    };
    g.output(&v, VELOCITY, DType::F32, &velocity_shape);
    for (i, (k, v)) in updated.iter().enumerate() {
        g.output(k, &updated_key_name(i), DType::F32, &pool_shape);
        g.output(v, &updated_value_name(i), DType::F32, &pool_shape);
    }
    Ok(g.finish())
}

/// The ScatterND indices `[batch, tokens, 2]` that write token j of every batch row b of a
/// `[batch, tokens, heads, head_dim]` tensor at `(b, slots[j])` of `pool`.
fn pool_index_of(g: &mut GraphBuilder, slots: &Value, pool: &Value) -> Value {
    let scalar = |g: &mut GraphBuilder, x: &Value| g.op("Squeeze", &[x], vec![]);
    let zero = g.const_i64(&[0]);
    let one = g.const_i64(&[1]);
    let pool_shape = g.op("Shape", &[pool], vec![]);
    let batch = g.slice(&pool_shape, 0, 0, 1);
    let tokens = g.op("Shape", &[slots], vec![]);
    let grid = g.concat(&[&batch, &tokens, &one], 0);
    let (start, limit, delta) = (scalar(g, &zero), scalar(g, &batch), scalar(g, &one));
    let rows = g.op("Range", &[&start, &limit, &delta], vec![]);
    let rows = g.unsqueeze(&rows, &[1, 2]);
    let rows = g.op("Expand", &[&rows, &grid], vec![]);
    let slots = g.unsqueeze(slots, &[0, 2]);
    let slots = g.op("Expand", &[&slots, &grid], vec![]);
    g.concat(&[&rows, &slots], 2)
}
