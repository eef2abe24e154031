//! `UMT5EncoderModel(input_ids, attention_mask).last_hidden_state` as one graph.
//!
//! T5-style blocks: RMS layer norm (no mean subtraction, no bias) before self-attention and
//! before the gated tanh-GELU feed-forward, residual adds, and a final RMS norm. Attention is
//! unscaled (T5 folds the scale into the query weights). What makes it UMT5 rather than T5:
//! every block has its own relative-position bias table. The bucket of each (query, key) pair
//! is computed in the graph from the sequence length: the relative position `key - query` is
//! clipped to ±`relative_attention_max_distance` (beyond which the bucket no longer changes)
//! and looked up in a constant table built by [`relative_position_buckets`]. Padded keys get
//! transformers' additive bias `(1 - mask) * f32::MIN`; padded rows are computed like the
//! others and left for the caller to discard.

use super::config::Umt5Config;
use crate::blocks::attention::{attend, merge_heads, split_heads};
use crate::blocks::mlp::{gated_feed_forward, Activation, Widths};
use crate::blocks::Prefixed;
use crate::builder::{DType, Dim, Encoding, GraphBuilder, Layout, Model, Value};
use crate::nn;
use crate::weights::{WeightError, WeightSource};

/// i64 `[1, text_len]`: token ids.
pub const INPUT_IDS: &str = "input_ids";
/// i64 `[1, text_len]`: 1 for a real token, 0 for padding.
pub const ATTENTION_MASK: &str = "attention_mask";
/// f32 `[1, text_len, d_model]`: the encoder output after the final layer norm.
pub const LAST_HIDDEN_STATE: &str = "last_hidden_state";

/// Names the token table may be stored under (tied; a saved model usually keeps `shared`).
const EMBED_NAMES: [&str; 2] = ["shared.weight", "encoder.embed_tokens.weight"];

/// The bidirectional bucket of relative position `relative` (`key - query`), as transformers'
/// encoder computes it: half the buckets for keys after the query, half for the rest; within a
/// half, exact buckets for distances below a quarter of `num_buckets`, then logarithmic bins
/// up to `max_distance`. The log bin is computed in f32 as torch does.
pub fn relative_position_bucket(relative: i64, num_buckets: usize, max_distance: usize) -> i64 {
    let half = (num_buckets / 2) as i64;
    let offset = if relative > 0 { half } else { 0 };
    let distance = relative.abs();
    let max_exact = half / 2;
    if distance < max_exact {
        return offset + distance;
    }
    let log_span = ((max_distance as f64) / (max_exact as f64)).ln() as f32;
    let ratio =
        ((distance as f32) / (max_exact as f32)).ln() / log_span * ((half - max_exact) as f32);
    offset + (max_exact + ratio as i64).min(half - 1)
}

/// Buckets of the relative positions `-max_distance ..= max_distance`, in that order. Every
/// position further away falls in the same bucket as the end of the table on its side.
pub fn relative_position_buckets(cfg: &Umt5Config) -> Vec<i64> {
    let reach = cfg.relative_attention_max_distance as i64;
    (-reach..=reach)
        .map(|r| {
            relative_position_bucket(
                r,
                cfg.relative_attention_num_buckets,
                cfg.relative_attention_max_distance,
            )
        })
        .collect()
}

/// Builds the encoder graph; weight names are the checkpoint's, each preceded by `prefix`
/// (empty for a `text_encoder/model.safetensors`).
pub fn build_umt5_encoder_graph(
    cfg: &Umt5Config,
    weights: &dyn WeightSource,
    prefix: &str,
) -> Result<Model, WeightError> {
    let text_len = Dim::from("text_len");
    let one = Dim::from(1i64);
    let mut g = GraphBuilder::new("umt5_encoder");
    let input_ids = g.input(INPUT_IDS, DType::I64, &[one.clone(), text_len.clone()]);
    let attention_mask = g.input(ATTENTION_MASK, DType::I64, &[one.clone(), text_len.clone()]);

    let embed_names = EMBED_NAMES.map(|n| format!("{prefix}{n}"));
    let embed_name = weights.first_present(&[embed_names[0].as_str(), embed_names[1].as_str()])?;
    let mut x = g.scoped("embed", |g| {
        let ids = g.reshape(&input_ids, &[-1]);
        nn::gather_rows(g, weights, embed_name, [cfg.vocab_size, cfg.d_model], &ids)
    })?;

    let buckets = g.scoped("position_buckets", |g| position_buckets(g, cfg, &input_ids));
    let key_padding = g.scoped("key_padding", |g| key_padding_bias(g, &attention_mask));

    for i in 0..cfg.num_layers {
        let block = format!("{prefix}encoder.block.{i}.");
        x = g.scoped(&format!("block{i}"), |g| {
            let x = self_attention(
                g,
                weights,
                cfg,
                &format!("{block}layer.0."),
                &x,
                &buckets,
                &key_padding,
            )?;
            feed_forward(g, weights, cfg, &format!("{block}layer.1."), &x)
        })?;
    }

    let eps = cfg.layer_norm_epsilon as f32;
    let out = g.scoped("final_norm", |g| {
        nn::rms_norm(
            g,
            weights,
            &x,
            &format!("{prefix}encoder.final_layer_norm.weight"),
            cfg.d_model,
            eps,
        )
    })?;
    let out = g.unsqueeze(&out, &[0]);
    g.output(
        &out,
        LAST_HIDDEN_STATE,
        DType::F32,
        &[one, text_len, Dim::from(cfg.d_model)],
    );
    Ok(g.finish())
}

/// i64 `[text_len, text_len]`: the bucket of each (query row, key column) pair.
fn position_buckets(g: &mut GraphBuilder, cfg: &Umt5Config, input_ids: &Value) -> Value {
    let shape = g.op("Shape", &[input_ids], vec![]);
    let len = g.slice(&shape, 0, 1, 2);
    let len = g.reshape(&len, &[]);
    let zero = g.const_i64(&[0]);
    let zero = g.reshape(&zero, &[]);
    let step = g.const_i64(&[1]);
    let step = g.reshape(&step, &[]);
    let positions = g.op("Range", &[&zero, &len, &step], vec![]);
    let keys = g.unsqueeze(&positions, &[0]);
    let queries = g.unsqueeze(&positions, &[1]);
    let relative = g.sub(&keys, &queries);

    let reach = cfg.relative_attention_max_distance as i64;
    let upper = g.const_i64(&[reach]);
    let lower = g.const_i64(&[-reach]);
    let clipped = g.op("Min", &[&relative, &upper], vec![]);
    let clipped = g.op("Max", &[&clipped, &lower], vec![]);
    let index = g.add(&clipped, &upper);
    let table = g.const_i64(&relative_position_buckets(cfg));
    g.gather(&table, &index, 0)
}

/// f32 `[1, text_len]`: 0 for a real key, `f32::MIN` for padding (transformers' extended mask).
fn key_padding_bias(g: &mut GraphBuilder, attention_mask: &Value) -> Value {
    let mask = g.cast(attention_mask, DType::F32);
    let one = g.scalar_f32(1.0);
    let padding = g.sub(&one, &mask);
    let min = g.scalar_f32(f32::MIN);
    g.mul(&padding, &min)
}

/// `x + o(attention(norm(x)))` with this block's relative-position bias plus the key padding.
fn self_attention(
    g: &mut GraphBuilder,
    w: &dyn WeightSource,
    cfg: &Umt5Config,
    layer: &str,
    x: &Value,
    buckets: &Value,
    key_padding: &Value,
) -> Result<Value, WeightError> {
    let (d, heads, d_kv, inner) = (cfg.d_model, cfg.num_heads, cfg.d_kv, cfg.inner_dim());
    let attn = format!("{layer}SelfAttention.");
    let h = nn::rms_norm(
        g,
        w,
        x,
        &format!("{layer}layer_norm.weight"),
        d,
        cfg.layer_norm_epsilon as f32,
    )?;
    let q = nn::project(g, w, &h, &format!("{attn}q.weight"), &[inner, d])?;
    let k = nn::project(g, w, &h, &format!("{attn}k.weight"), &[inner, d])?;
    let v = nn::project(g, w, &h, &format!("{attn}v.weight"), &[inner, d])?;
    let q = split_heads(g, &q, heads, d_kv);
    let k = g.reshape(&k, &[-1, heads as i64, d_kv as i64]);
    let kt = g.transpose(&k, &[1, 2, 0]);
    let v = split_heads(g, &v, heads, d_kv);

    let table = g.checkpoint_weight(
        w,
        &format!("{attn}relative_attention_bias.weight"),
        &[cfg.relative_attention_num_buckets, heads],
        Layout::AsIs,
        Encoding::F32,
    )?;
    let position_bias = g.gather(&table, buckets, 0);
    let position_bias = g.transpose(&position_bias, &[2, 0, 1]);
    let bias = g.add(&position_bias, key_padding);

    let context = attend(g, &q, &kt, &v, Some(&bias));
    let context = merge_heads(g, &context, heads, d_kv);
    let out = nn::project(g, w, &context, &format!("{attn}o.weight"), &[d, inner])?;
    Ok(g.add(x, &out))
}

/// `x + wo(gelu_tanh(wi_0(norm(x))) * wi_1(norm(x)))`.
fn feed_forward(
    g: &mut GraphBuilder,
    w: &dyn WeightSource,
    cfg: &Umt5Config,
    layer: &str,
    x: &Value,
) -> Result<Value, WeightError> {
    let (d, d_ff) = (cfg.d_model, cfg.d_ff);
    let ff = format!("{layer}DenseReluDense.");
    let h = nn::rms_norm(
        g,
        w,
        x,
        &format!("{layer}layer_norm.weight"),
        d,
        cfg.layer_norm_epsilon as f32,
    )?;
    let out = gated_feed_forward(
        g,
        &Prefixed::new(w, &ff),
        &h,
        ["wi_0", "wi_1", "wo"],
        Widths::residual(d, d_ff),
        Activation::GeluTanh,
    )?;
    Ok(g.add(x, &out))
}
