//! The decoder layer of the Qwen family's text stacks: pre-norm RMSNorm, grouped-query
//! self-attention with rotate-half rotary embedding, and a SwiGLU feed-forward. What differs
//! between generations (q/k norms, projection biases) is set by a [`DecoderStyle`].

use super::attention::{grouped_query_attention, GroupedHeads};
use super::mlp::{gated_feed_forward, Activation, Widths};
use super::rotary::rotate_halves;
use super::Prefixed;
use crate::builder::{GraphBuilder, Value};
use crate::weights::WeightError;

/// The per-generation options of a decoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderStyle {
    /// RMSNorm over each head of q and k (`q_norm`, `k_norm`) before the rotary embedding.
    pub qk_norm: bool,
    /// Biases on the q, k and v projections.
    pub qkv_bias: bool,
    /// A bias on the output projection `o_proj`.
    pub output_bias: bool,
}

impl DecoderStyle {
    /// Qwen3 and Qwen3-VL: q/k norms; the config's `attention_bias` puts a bias on all four
    /// projections.
    pub fn qwen3(attention_bias: bool) -> Self {
        DecoderStyle {
            qk_norm: true,
            qkv_bias: attention_bias,
            output_bias: attention_bias,
        }
    }

    /// Qwen2, Qwen2-VL and Qwen2.5-VL: no q/k norms, biases on q, k and v only.
    pub const QWEN2: DecoderStyle = DecoderStyle {
        qk_norm: false,
        qkv_bias: true,
        output_bias: false,
    };
}

/// The widths of a decoder layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecoderDims {
    pub hidden: usize,
    pub attention: GroupedHeads,
    /// Width between the feed-forward's projections.
    pub intermediate: usize,
    pub rms_norm_eps: f32,
}

/// The text-config fields every Qwen decoder stack here needs, checked: the SiLU feed-forward,
/// at least one layer, and query heads that group evenly over the key/value heads. Errors name
/// the config key and `source_desc`.
pub fn check_text_config(
    hidden_act: &str,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    source_desc: &str,
) -> Result<(), WeightError> {
    let invalid = |name: &str, reason: String| WeightError::Invalid {
        name: name.to_string(),
        reason,
        source_desc: source_desc.to_string(),
    };
    if hidden_act != "silu" {
        return Err(invalid(
            "hidden_act",
            format!("`{hidden_act}` is not supported (only `silu`)"),
        ));
    }
    if layers == 0 {
        return Err(invalid(
            "num_hidden_layers",
            "0 layers: nothing to read".into(),
        ));
    }
    if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(invalid(
            "num_key_value_heads",
            format!("{heads} query heads cannot be grouped over {kv_heads} key/value heads"),
        ));
    }
    Ok(())
}

/// Rotate-half cos/sin tables `[seq, head_dim]`, one row per sequence row.
pub struct RotaryTables {
    pub cos: Value,
    pub sin: Value,
}

/// One decoder layer: its weights (under `layers.{i}.`) and its shape.
pub struct DecoderLayer<'a> {
    pub at: Prefixed<'a>,
    pub dims: DecoderDims,
    pub style: DecoderStyle,
}

/// A layer's keys and values after the rotary embedding, `[kv_heads, len, head_dim]`: what a
/// key/value cache holds between generation steps.
pub struct KeyValues {
    pub key: Value,
    pub value: Value,
}

impl DecoderLayer<'_> {
    /// The layer on `x` `[seq, hidden]` with the additive attention `bias` `[seq, seq]`. With
    /// `readout`, only those rows are computed past the key/value projections and the result
    /// is `[readout, hidden]`.
    pub fn apply(
        &self,
        g: &mut GraphBuilder,
        x: &Value,
        rope: &RotaryTables,
        bias: &Value,
        readout: Option<&Value>,
    ) -> Result<Value, WeightError> {
        let (out, _) = self.forward(g, x, rope, Some(bias), readout, None)?;
        Ok(out)
    }

    /// The layer on the new rows `x` `[seq, hidden]`, which attend to the cached `past` rows
    /// and to the new ones under `bias` (`[seq, past + seq]`; none: every key is visible).
    /// Returns the output and the keys/values of past and new rows together.
    pub fn apply_cached(
        &self,
        g: &mut GraphBuilder,
        x: &Value,
        rope: &RotaryTables,
        bias: Option<&Value>,
        past: &KeyValues,
    ) -> Result<(Value, KeyValues), WeightError> {
        self.forward(g, x, rope, bias, None, Some(past))
    }

    fn forward(
        &self,
        g: &mut GraphBuilder,
        x: &Value,
        rope: &RotaryTables,
        bias: Option<&Value>,
        readout: Option<&Value>,
        past: Option<&KeyValues>,
    ) -> Result<(Value, KeyValues), WeightError> {
        let DecoderDims {
            hidden,
            intermediate,
            rms_norm_eps: eps,
            ..
        } = self.dims;
        let normed = self.at.rms_norm(g, x, "input_layernorm", hidden, eps)?;
        let (attn, present) = self.self_attention(g, &normed, rope, bias, readout, past)?;
        let residual = match readout {
            Some(rows) => g.gather(x, rows, 0),
            None => x.clone(),
        };
        let h = g.add(&residual, &attn);
        let normed = self
            .at
            .rms_norm(g, &h, "post_attention_layernorm", hidden, eps)?;
        let mlp = gated_feed_forward(
            g,
            &self.at,
            &normed,
            ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
            Widths::residual(hidden, intermediate),
            Activation::Silu,
        )?;
        Ok((g.add(&h, &mlp), present))
    }

    /// Grouped-query self-attention over the `past` keys/values and every row of `normed`;
    /// queries come from every row, or from the `readout` rows only.
    fn self_attention(
        &self,
        g: &mut GraphBuilder,
        normed: &Value,
        rope: &RotaryTables,
        bias: Option<&Value>,
        readout: Option<&Value>,
        past: Option<&KeyValues>,
    ) -> Result<(Value, KeyValues), WeightError> {
        let heads = self.dims.attention;
        let (query_rows, query_rope, query_bias) = match readout {
            Some(rows) => (
                g.gather(normed, rows, 0),
                RotaryTables {
                    cos: g.gather(&rope.cos, rows, 0),
                    sin: g.gather(&rope.sin, rows, 0),
                },
                bias.map(|b| g.gather(b, rows, 0)),
            ),
            None => (
                normed.clone(),
                RotaryTables {
                    cos: rope.cos.clone(),
                    sin: rope.sin.clone(),
                },
                bias.cloned(),
            ),
        };
        let q = self.project_heads(g, &query_rows, "q", heads.heads)?;
        let q = self.normalize_heads(g, &q, "q_norm")?;
        let q = g.transpose(&q, &[1, 0, 2]);
        let q = rotate_halves(g, &q, &query_rope.cos, &query_rope.sin, heads.head_dim);
        let k = self.project_heads(g, normed, "k", heads.kv_heads)?;
        let k = self.normalize_heads(g, &k, "k_norm")?;
        let k = g.transpose(&k, &[1, 0, 2]);
        let k = rotate_halves(g, &k, &rope.cos, &rope.sin, heads.head_dim);
        let v = self.project_heads(g, normed, "v", heads.kv_heads)?;
        let v = g.transpose(&v, &[1, 0, 2]);
        let (k, v) = match past {
            Some(past) => (
                g.concat(&[&past.key, &k], 1),
                g.concat(&[&past.value, &v], 1),
            ),
            None => (k, v),
        };

        let context = grouped_query_attention(g, &q, &k, &v, heads, query_bias.as_ref());
        let out = self.at.linear_with_bias(
            g,
            &context,
            "self_attn.o_proj",
            heads.heads * heads.head_dim,
            self.dims.hidden,
            self.style.output_bias,
        )?;
        Ok((out, KeyValues { key: k, value: v }))
    }

    /// `self_attn.{which}_proj` of `rows`, as `[rows, n, head_dim]`.
    fn project_heads(
        &self,
        g: &mut GraphBuilder,
        rows: &Value,
        which: &str,
        n: usize,
    ) -> Result<Value, WeightError> {
        let head_dim = self.dims.attention.head_dim;
        let y = self.at.linear_with_bias(
            g,
            rows,
            &format!("self_attn.{which}_proj"),
            self.dims.hidden,
            n * head_dim,
            self.style.qkv_bias,
        )?;
        Ok(g.reshape(&y, &[-1, n as i64, head_dim as i64]))
    }

    /// The per-head RMSNorm `self_attn.{norm}` of `[rows, n, head_dim]`, when the style has it.
    fn normalize_heads(
        &self,
        g: &mut GraphBuilder,
        x: &Value,
        norm: &str,
    ) -> Result<Value, WeightError> {
        if !self.style.qk_norm {
            return Ok(x.clone());
        }
        self.at.rms_norm(
            g,
            x,
            &format!("self_attn.{norm}"),
            self.dims.attention.head_dim,
            self.dims.rms_norm_eps,
        )
    }
}
