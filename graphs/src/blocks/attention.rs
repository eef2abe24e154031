//! Multi-head softmax attention and the head layouts around it.
//!
//! Unbatched graphs keep tokens as `[len, heads·d]` rows and attend head-major
//! (`[heads, len, d]`); batched graphs keep `[batch, len, heads·d]` and split token-major
//! (`[batch, len, heads, d]`, the layout of LingBot-VA's key/value cache).

use crate::builder::{DType, GraphBuilder, Precision, Value};

/// `[len, heads·d]` → `[heads, len, d]`.
pub fn split_heads(g: &mut GraphBuilder, x: &Value, heads: usize, head_dim: usize) -> Value {
    let r = g.reshape(x, &[-1, heads as i64, head_dim as i64]);
    g.transpose(&r, &[1, 0, 2])
}

/// `[heads, len, d]` → `[len, heads·d]`.
pub fn merge_heads(g: &mut GraphBuilder, x: &Value, heads: usize, head_dim: usize) -> Value {
    let t = g.transpose(x, &[1, 0, 2]);
    g.reshape(&t, &[-1, (heads * head_dim) as i64])
}

/// `[batch, len, heads·d]` → `[batch, len, heads, d]`.
pub fn split_heads_batched(
    g: &mut GraphBuilder,
    x: &Value,
    heads: usize,
    head_dim: usize,
) -> Value {
    g.reshape(x, &[0, 0, heads as i64, head_dim as i64])
}

/// `[batch, heads, len, d]` → `[batch, len, heads·d]`.
pub fn merge_heads_batched(
    g: &mut GraphBuilder,
    x: &Value,
    heads: usize,
    head_dim: usize,
) -> Value {
    let t = g.transpose(x, &[0, 2, 1, 3]);
    g.reshape(&t, &[0, 0, (heads * head_dim) as i64])
}

/// `q / sqrt(head_dim)`.
fn scale_queries(g: &mut GraphBuilder, q: &Value, head_dim: usize) -> Value {
    let scale = g.scalar_f32(1.0 / (head_dim as f32).sqrt());
    g.mul(q, &scale)
}

/// Scaled dot-product attention on `[heads, q_len, d]` × `[heads, k_len, d]` → `[heads, q_len, d]`.
/// `bias`, when given, is added to the scores (e.g. a causal mask of 0 / large negative values).
pub fn attention(
    g: &mut GraphBuilder,
    q: &Value,
    k: &Value,
    v: &Value,
    head_dim: usize,
    bias: Option<&Value>,
) -> Value {
    let q = scale_queries(g, q, head_dim);
    let kt = g.transpose(k, &[0, 2, 1]);
    attend(g, &q, &kt, v, bias)
}

/// Scaled dot-product attention of `q` over `k`, `v` (all `[batch, len, heads, d]`) with an
/// optional additive bias over the keys → `[batch, q_len, heads·d]`.
pub fn attention_batched(
    g: &mut GraphBuilder,
    q: &Value,
    k: &Value,
    v: &Value,
    [heads, head_dim]: [usize; 2],
    bias: Option<&Value>,
) -> Value {
    let q = g.transpose(q, &[0, 2, 1, 3]);
    let q = scale_queries(g, &q, head_dim);
    let kt = g.transpose(k, &[0, 2, 3, 1]);
    let v = g.transpose(v, &[0, 2, 1, 3]);
    let context = attend(g, &q, &kt, &v, bias);
    merge_heads_batched(g, &context, heads, head_dim)
}

/// The widths of grouped-query attention: `kv_heads` key/value heads, each shared by
/// `heads / kv_heads` consecutive query heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupedHeads {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// Grouped-query attention of `q` (`[heads, rows, d]`) over `k`, `v` (`[kv_heads, keys, d]`)
/// with the additive `bias` (`[rows, keys]`) → `[rows, heads·d]`.
pub fn grouped_query_attention(
    g: &mut GraphBuilder,
    q: &Value,
    k: &Value,
    v: &Value,
    widths: GroupedHeads,
    bias: Option<&Value>,
) -> Value {
    let GroupedHeads {
        heads,
        kv_heads,
        head_dim,
    } = widths;
    let group = heads / kv_heads;
    // Query heads h·group .. h·group+group-1 share key/value head h: group them as
    // [kv_heads, group, rows, d] against keys/values [kv_heads, 1, keys, d].
    let q = scale_queries(g, q, head_dim);
    let q = g.reshape(&q, &[kv_heads as i64, group as i64, -1, head_dim as i64]);
    let k = g.unsqueeze(k, &[1]);
    let v = g.unsqueeze(v, &[1]);
    let kt = g.transpose(&k, &[0, 1, 3, 2]);
    let context = attend(g, &q, &kt, &v, bias);
    let context = g.reshape(&context, &[heads as i64, -1, head_dim as i64]);
    merge_heads(g, &context, heads, head_dim)
}

/// `softmax(q · kt + bias) · v` for an already scaled `q`, with `kt` the keys transposed
/// (`[..., d, keys]`). Under f16 precision the two products run in f16 and the softmax in f32.
pub fn attend(
    g: &mut GraphBuilder,
    q: &Value,
    kt: &Value,
    v: &Value,
    bias: Option<&Value>,
) -> Value {
    let half = g.precision() == Precision::F16;
    let (q, kt, v) = if half {
        (
            g.cast(q, DType::F16),
            g.cast(kt, DType::F16),
            g.cast(v, DType::F16),
        )
    } else {
        (q.clone(), kt.clone(), v.clone())
    };
    let mut scores = g.matmul(&q, &kt);
    if half {
        scores = g.cast(&scores, DType::F32);
    }
    if let Some(b) = bias {
        scores = g.add(&scores, b);
    }
    let mut probs = g.softmax(&scores, -1);
    if half {
        probs = g.cast(&probs, DType::F16);
    }
    let context = g.matmul(&probs, &v);
    if half {
        g.cast(&context, DType::F32)
    } else {
        context
    }
}
