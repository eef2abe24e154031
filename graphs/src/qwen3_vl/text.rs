//! The Qwen3-VL text stack as one graph: token embedding, image-embedding merge, the decoder
//! layers with DeepStack injection, and a readout of chosen rows of the last layer's output.
//!
//! What VLA-JEPA reads is the output of the last decoder layer (a forward hook on it: the
//! residual stream before the final norm) at the `<|embodied_action|>` rows. The final norm
//! and the LM head are therefore not in the graph, and the last layer computes its queries,
//! output projection and MLP only for the read rows (keys and values still cover every row).
//!
//! Inputs, in this order (the host builds the tables with [`super::rope`]):
//! [`INPUT_IDS`], [`IMAGE_EMBEDS`], `deepstack_0..K-1` ([`deepstack_input_name`]),
//! [`IMAGE_ROW_INDEX`], [`ROPE_COS`], [`ROPE_SIN`], [`ATTENTION_BIAS`], [`READOUT_INDEX`].
//! Output: [`READOUT_HIDDEN`].
//!
//! The decoder layers are [`crate::blocks::decoder`]'s in the Qwen3 style;
//! [`build_text_graph_styled`] builds the same stack in another one (Qwen2's, for Qwen2-VL).

use super::config::TextConfig;
use crate::blocks::attention::GroupedHeads;
use crate::blocks::decoder::{
    check_text_config, DecoderDims, DecoderLayer, DecoderStyle, RotaryTables,
};
use crate::blocks::Prefixed;
use crate::builder::{DType, Dim, GraphBuilder, Model, Precision, Value};
use crate::nn;
use crate::weights::{WeightError, WeightSource};

/// i64 `[seq]`: the token ids, image placeholders included.
pub const INPUT_IDS: &str = "input_ids";
/// f32 `[image_tokens, hidden]`: the vision tower's output, all images in prompt order.
pub const IMAGE_EMBEDS: &str = "image_embeds";
/// i64 `[seq]`: 0 for a text row, `1 + j` for the row holding the `j`-th image token.
pub const IMAGE_ROW_INDEX: &str = "image_row_index";
/// f32 `[seq, head_dim]`: interleaved M-RoPE cosines.
pub const ROPE_COS: &str = "rope_cos";
/// f32 `[seq, head_dim]`: interleaved M-RoPE sines.
pub const ROPE_SIN: &str = "rope_sin";
/// f32 `[seq, seq]`: additive attention bias (0 = attend, large negative finite = masked).
pub const ATTENTION_BIAS: &str = "attention_bias";
/// i64 `[readout]`: the rows whose last-layer hidden state is returned.
pub const READOUT_INDEX: &str = "readout_index";
/// f32 `[readout, hidden]`: the last decoder layer's output at [`READOUT_INDEX`].
pub const READOUT_HIDDEN: &str = "readout_hidden";

/// f32 `[image_tokens, hidden]`: the `k`-th DeepStack feature, added to the image rows after
/// decoder layer `k`.
pub fn deepstack_input_name(k: usize) -> String {
    format!("deepstack_{k}")
}

#[derive(Debug, Clone)]
pub struct TextGraphOptions {
    /// Weight-name prefix of the language model, e.g. `model.qwen.model.model.language_model.`.
    pub prefix: String,
    /// The token embedding's weight name (tied checkpoints may store only the LM head).
    pub embed_weight_name: String,
    /// How many DeepStack features the vision tower produces.
    pub num_deepstack: usize,
}

/// Builds the text-stack graph for `cfg` with the checkpoint weights in `weights`.
pub fn build_text_graph(
    cfg: &TextConfig,
    weights: &dyn WeightSource,
    opts: &TextGraphOptions,
) -> Result<Model, WeightError> {
    build_text_graph_at(cfg, weights, opts, Precision::F32)
}

/// [`build_text_graph`] with its linear layers, attention and token table at `precision`.
pub fn build_text_graph_at(
    cfg: &TextConfig,
    weights: &dyn WeightSource,
    opts: &TextGraphOptions,
    precision: Precision,
) -> Result<Model, WeightError> {
    let style = DecoderStyle::qwen3(cfg.attention_bias);
    build_text_graph_styled(cfg, weights, opts, precision, style)
}

/// [`build_text_graph_at`] with decoder layers of another generation's `style` (e.g.
/// [`DecoderStyle::QWEN2`] for a Qwen2-VL text stack, which also takes `num_deepstack` 0).
pub fn build_text_graph_styled(
    cfg: &TextConfig,
    weights: &dyn WeightSource,
    opts: &TextGraphOptions,
    precision: Precision,
    style: DecoderStyle,
) -> Result<Model, WeightError> {
    check_supported(cfg)?;
    let hidden = cfg.hidden_size;
    let head_dim = cfg.head_dim();
    let seq = Dim::from("seq");
    let image_tokens = Dim::from("image_tokens");
    let hidden_dim = Dim::from(hidden);

    let mut g = GraphBuilder::with_precision("qwen3_vl_text", precision);
    let input_ids = g.input(INPUT_IDS, DType::I64, std::slice::from_ref(&seq));
    let image_embeds = g.input(
        IMAGE_EMBEDS,
        DType::F32,
        &[image_tokens.clone(), hidden_dim.clone()],
    );
    let deepstack: Vec<Value> = (0..opts.num_deepstack)
        .map(|k| {
            g.input(
                &deepstack_input_name(k),
                DType::F32,
                &[image_tokens.clone(), hidden_dim.clone()],
            )
        })
        .collect();
    let image_row_index = g.input(IMAGE_ROW_INDEX, DType::I64, std::slice::from_ref(&seq));
    let rope = RotaryTables {
        cos: g.input(ROPE_COS, DType::F32, &[seq.clone(), Dim::from(head_dim)]),
        sin: g.input(ROPE_SIN, DType::F32, &[seq.clone(), Dim::from(head_dim)]),
    };
    let bias = g.input(ATTENTION_BIAS, DType::F32, &[seq.clone(), seq.clone()]);
    let readout_index = g.input(READOUT_INDEX, DType::I64, &[Dim::from("readout")]);

    let image_rows = ImageRows::new(&mut g, &image_row_index, hidden);
    let embed_name = opts.embed_weight_name.as_str();
    let mut x = g.scoped("embed", |g| -> Result<Value, WeightError> {
        let tokens = nn::gather_rows(g, weights, embed_name, [cfg.vocab_size, hidden], &input_ids)?;
        Ok(image_rows.replace(g, &tokens, &image_embeds))
    })?;

    let dims = DecoderDims {
        hidden,
        attention: GroupedHeads {
            heads: cfg.num_attention_heads,
            kv_heads: cfg.num_key_value_heads,
            head_dim,
        },
        intermediate: cfg.intermediate_size,
        rms_norm_eps: cfg.rms_norm_eps as f32,
    };
    let layer_at = |layer: usize| DecoderLayer {
        at: Prefixed::new(weights, &format!("{}layers.{layer}.", opts.prefix)),
        dims,
        style,
    };
    let last = cfg.num_hidden_layers - 1;
    for layer in 0..last {
        let decoder = layer_at(layer);
        x = g.scoped(&format!("layer{layer}"), |g| {
            decoder.apply(g, &x, &rope, &bias, None)
        })?;
        // The last layer is read before any injection would follow it, so it gets none.
        if let Some(features) = deepstack.get(layer) {
            x = g.scoped(&format!("deepstack{layer}"), |g| {
                image_rows.add(g, &x, features)
            });
        }
    }
    let decoder = layer_at(last);
    let readout = g.scoped(&format!("layer{last}"), |g| {
        decoder.apply(g, &x, &rope, &bias, Some(&readout_index))
    })?;
    g.output(
        &readout,
        READOUT_HIDDEN,
        DType::F32,
        &[Dim::from("readout"), hidden_dim],
    );
    Ok(g.finish())
}

fn check_supported(cfg: &TextConfig) -> Result<(), WeightError> {
    check_text_config(
        &cfg.hidden_act,
        cfg.num_hidden_layers,
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        "the text config",
    )
}

/// Scatters per-image-token rows onto the sequence: a gather over `[zeros; rows]` with
/// [`IMAGE_ROW_INDEX`], so text rows pick the zero row.
pub(crate) struct ImageRows {
    index: Value,
    is_image: Value,
    zero_row: Value,
}

impl ImageRows {
    pub(crate) fn new(g: &mut GraphBuilder, index: &Value, hidden: usize) -> Self {
        let zero = g.const_i64(&[0]);
        let is_image = g.op("Greater", &[index, &zero], vec![]);
        let is_image = g.unsqueeze(&is_image, &[1]);
        let zero_row = g.const_f32("zero_row", &[1, hidden], vec![0.0; hidden]);
        ImageRows {
            index: index.clone(),
            is_image,
            zero_row,
        }
    }

    /// `[seq, hidden]`: `rows[j]` at the `j`-th image row, 0 at text rows.
    fn spread(&self, g: &mut GraphBuilder, rows: &Value) -> Value {
        let table = g.concat(&[&self.zero_row, rows], 0);
        g.gather(&table, &self.index, 0)
    }

    /// `x` with its image rows replaced by `rows` (upstream's `masked_scatter`).
    pub(crate) fn replace(&self, g: &mut GraphBuilder, x: &Value, rows: &Value) -> Value {
        let spread = self.spread(g, rows);
        g.op("Where", &[&self.is_image, &spread, x], vec![])
    }

    /// `x` with `rows` added at its image rows (adding the zero row elsewhere is exact).
    fn add(&self, g: &mut GraphBuilder, x: &Value, rows: &Value) -> Value {
        let spread = self.spread(g, rows);
        g.add(x, &spread)
    }
}
