//! The Qwen2-VL text stack as one generation graph: the same graph runs the prefill (the
//! whole prompt, no cache) and every decode step (one new token after the cached ones), so
//! the weights are stored once.
//!
//! New rows are token embeddings with image embeddings merged in, then the Qwen2-style decoder
//! layers attending to the cached keys/values and to each other under [`ATTENTION_BIAS`], then
//! the final RMSNorm ([`HIDDEN`], every new row) and the tied LM head on the last new row
//! ([`LOGITS`]). Each layer returns its keys/values with the new rows appended
//! ([`present_key_name`]); the host feeds them back as the next step's `past_*` inputs.
//!
//! Inputs: [`INPUT_IDS`], [`IMAGE_EMBEDS`] (0 rows when decoding), [`IMAGE_ROW_INDEX`],
//! [`ROPE_COS`], [`ROPE_SIN`], [`ATTENTION_BIAS`], then `past_key_i`/`past_value_i` for every
//! layer (`[kv_heads, past, head_dim]`, `past` = 0 for the prefill).

use super::config::Qwen2VlConfig;
use crate::blocks::decoder::{
    check_text_config, DecoderLayer, DecoderStyle, KeyValues, RotaryTables,
};
use crate::blocks::Prefixed;
use crate::builder::{DType, Dim, GraphBuilder, Model, Precision, Value};
use crate::nn;
use crate::qwen3_vl::text::ImageRows;
use crate::weights::{WeightError, WeightSource};

pub use crate::qwen3_vl::text::{
    ATTENTION_BIAS, IMAGE_EMBEDS, IMAGE_ROW_INDEX, INPUT_IDS, ROPE_COS, ROPE_SIN,
};

/// f32 `[seq, hidden]`: the final norm's output at every new row.
pub const HIDDEN: &str = "hidden";
/// f32 `[vocab]`: the LM head at the last new row.
pub const LOGITS: &str = "logits";

pub const GRAPH_NAME: &str = "qwen2_vl_text";

/// Symbolic dims: new rows, cached rows, cached + new rows.
const SEQ: &str = "seq";
const PAST: &str = "past";
const TOTAL: &str = "total";

pub fn past_key_name(layer: usize) -> String {
    format!("past_key_{layer}")
}
pub fn past_value_name(layer: usize) -> String {
    format!("past_value_{layer}")
}
pub fn present_key_name(layer: usize) -> String {
    format!("present_key_{layer}")
}
pub fn present_value_name(layer: usize) -> String {
    format!("present_value_{layer}")
}

/// Where the language model's weights are.
#[derive(Debug, Clone)]
pub struct TextWeightNames {
    /// Prefix of `layers.{i}.` and `norm.weight`, e.g. `model.` (the trailing dot included).
    pub prefix: String,
    /// The token embedding, also the LM head (tied).
    pub embed_tokens: String,
}

/// Builds the generation graph for `cfg` with the checkpoint weights in `weights`.
pub fn build_generation_graph(
    cfg: &Qwen2VlConfig,
    weights: &dyn WeightSource,
    names: &TextWeightNames,
    precision: Precision,
) -> Result<Model, WeightError> {
    check_supported(cfg, weights)?;
    let dims = cfg.decoder_dims();
    let hidden = cfg.hidden_size;
    let (kv_heads, head_dim) = (cfg.num_key_value_heads, cfg.head_dim());
    let (seq, past, total) = (Dim::from(SEQ), Dim::from(PAST), Dim::from(TOTAL));

    let mut g = GraphBuilder::with_precision(GRAPH_NAME, precision);
    let input_ids = g.input(INPUT_IDS, DType::I64, std::slice::from_ref(&seq));
    let image_embeds = g.input(
        IMAGE_EMBEDS,
        DType::F32,
        &[Dim::from("image_tokens"), Dim::from(hidden)],
    );
    let image_row_index = g.input(IMAGE_ROW_INDEX, DType::I64, std::slice::from_ref(&seq));
    let rope = RotaryTables {
        cos: g.input(ROPE_COS, DType::F32, &[seq.clone(), Dim::from(head_dim)]),
        sin: g.input(ROPE_SIN, DType::F32, &[seq.clone(), Dim::from(head_dim)]),
    };
    let bias = g.input(ATTENTION_BIAS, DType::F32, &[seq.clone(), total.clone()]);
    let cache_shape = |len: &Dim| [Dim::from(kv_heads), len.clone(), Dim::from(head_dim)];
    let pasts: Vec<KeyValues> = (0..cfg.num_hidden_layers)
        .map(|layer| KeyValues {
            key: g.input(&past_key_name(layer), DType::F32, &cache_shape(&past)),
            value: g.input(&past_value_name(layer), DType::F32, &cache_shape(&past)),
        })
        .collect();

    let image_rows = ImageRows::new(&mut g, &image_row_index, hidden);
    let table = [cfg.vocab_size, hidden];
    let mut x = g.scoped("embed", |g| -> Result<Value, WeightError> {
        let tokens = nn::gather_rows(g, weights, &names.embed_tokens, table, &input_ids)?;
        Ok(image_rows.replace(g, &tokens, &image_embeds))
    })?;

    for (layer, past) in pasts.iter().enumerate() {
        let decoder = DecoderLayer {
            at: Prefixed::new(weights, &format!("{}layers.{layer}.", names.prefix)),
            dims,
            style: DecoderStyle::QWEN2,
        };
        let (out, present) = g.scoped(&format!("layer{layer}"), |g| {
            decoder.apply_cached(g, &x, &rope, Some(&bias), past)
        })?;
        x = out;
        g.output(
            &present.key,
            &present_key_name(layer),
            DType::F32,
            &cache_shape(&total),
        );
        g.output(
            &present.value,
            &present_value_name(layer),
            DType::F32,
            &cache_shape(&total),
        );
    }

    let normed = Prefixed::new(weights, &names.prefix).rms_norm(
        &mut g,
        &x,
        "norm",
        hidden,
        dims.rms_norm_eps,
    )?;
    g.output(&normed, HIDDEN, DType::F32, &[seq, Dim::from(hidden)]);
    let logits = g.scoped("lm_head", |g| -> Result<Value, WeightError> {
        let last = g.slice(&normed, 0, -1, i64::MAX);
        let logits = nn::tied_projection(g, weights, &names.embed_tokens, table, &last)?;
        Ok(g.reshape(&logits, &[-1]))
    })?;
    g.output(&logits, LOGITS, DType::F32, &[Dim::from(cfg.vocab_size)]);
    Ok(g.finish())
}

fn check_supported(cfg: &Qwen2VlConfig, weights: &dyn WeightSource) -> Result<(), WeightError> {
    check_text_config(
        &cfg.hidden_act,
        cfg.num_hidden_layers,
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        &weights.describe(),
    )?;
    let invalid = |name: &str, reason: String| WeightError::Invalid {
        name: name.to_string(),
        reason,
        source_desc: weights.describe(),
    };
    if !cfg.tie_word_embeddings {
        return Err(invalid(
            "tie_word_embeddings",
            "false: only a tied LM head (the token embedding) is supported".into(),
        ));
    }
    let sections: usize = cfg.mrope_section().iter().sum();
    if sections != cfg.head_dim() / 2 {
        return Err(invalid(
            "rope_scaling.mrope_section",
            format!(
                "{:?} covers {sections} frequencies, the heads have {}",
                cfg.mrope_section(),
                cfg.head_dim() / 2
            ),
        ));
    }
    Ok(())
}
