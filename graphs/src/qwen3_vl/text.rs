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

use super::config::TextConfig;
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
    let rope = Rope {
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

    let last = cfg.num_hidden_layers - 1;
    for layer in 0..last {
        let prefix = format!("{}layers.{layer}.", opts.prefix);
        x = g.scoped(&format!("layer{layer}"), |g| {
            decoder_layer(g, weights, cfg, &prefix, &x, &rope, &bias, None)
        })?;
        // The last layer is read before any injection would follow it, so it gets none.
        if let Some(features) = deepstack.get(layer) {
            x = g.scoped(&format!("deepstack{layer}"), |g| {
                image_rows.add(g, &x, features)
            });
        }
    }
    let prefix = format!("{}layers.{last}.", opts.prefix);
    let readout = g.scoped(&format!("layer{last}"), |g| {
        decoder_layer(
            g,
            weights,
            cfg,
            &prefix,
            &x,
            &rope,
            &bias,
            Some(&readout_index),
        )
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
    let invalid = |name: &str, reason: String| WeightError::Invalid {
        name: name.to_string(),
        reason,
        source_desc: "the text config".to_string(),
    };
    if cfg.hidden_act != "silu" {
        return Err(invalid(
            "hidden_act",
            format!("`{}` is not supported (only `silu`)", cfg.hidden_act),
        ));
    }
    if cfg.num_hidden_layers == 0 {
        return Err(invalid(
            "num_hidden_layers",
            "0 layers: nothing to read".into(),
        ));
    }
    if cfg.num_key_value_heads == 0
        || !cfg
            .num_attention_heads
            .is_multiple_of(cfg.num_key_value_heads)
    {
        return Err(invalid(
            "num_key_value_heads",
            format!(
                "{} query heads cannot be grouped over {} key/value heads",
                cfg.num_attention_heads, cfg.num_key_value_heads
            ),
        ));
    }
    Ok(())
}

struct Rope {
    cos: Value,
    sin: Value,
}

/// Scatters per-image-token rows onto the sequence: a gather over `[zeros; rows]` with
/// [`IMAGE_ROW_INDEX`], so text rows pick the zero row.
struct ImageRows {
    index: Value,
    is_image: Value,
    zero_row: Value,
}

impl ImageRows {
    fn new(g: &mut GraphBuilder, index: &Value, hidden: usize) -> Self {
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
    fn replace(&self, g: &mut GraphBuilder, x: &Value, rows: &Value) -> Value {
        let spread = self.spread(g, rows);
        g.op("Where", &[&self.is_image, &spread, x], vec![])
    }

    /// `x` with `rows` added at its image rows (adding the zero row elsewhere is exact).
    fn add(&self, g: &mut GraphBuilder, x: &Value, rows: &Value) -> Value {
        let spread = self.spread(g, rows);
        g.add(x, &spread)
    }
}

/// One decoder layer on `x` `[seq, hidden]`. With `readout`, only those rows are computed past
/// the key/value projections, and the result is `[readout, hidden]`.
#[allow(clippy::too_many_arguments)]
fn decoder_layer(
    g: &mut GraphBuilder,
    w: &dyn WeightSource,
    cfg: &TextConfig,
    prefix: &str,
    x: &Value,
    rope: &Rope,
    bias: &Value,
    readout: Option<&Value>,
) -> Result<Value, WeightError> {
    let hidden = cfg.hidden_size;
    let eps = cfg.rms_norm_eps as f32;
    let normed = nn::rms_norm(
        g,
        w,
        x,
        &format!("{prefix}input_layernorm.weight"),
        hidden,
        eps,
    )?;
    let attn = self_attention(
        g,
        w,
        cfg,
        &format!("{prefix}self_attn"),
        &normed,
        rope,
        bias,
        readout,
    )?;
    let residual = match readout {
        Some(rows) => g.gather(x, rows, 0),
        None => x.clone(),
    };
    let h = g.add(&residual, &attn);
    let normed = nn::rms_norm(
        g,
        w,
        &h,
        &format!("{prefix}post_attention_layernorm.weight"),
        hidden,
        eps,
    )?;
    let mlp = swiglu_mlp(g, w, cfg, &format!("{prefix}mlp"), &normed)?;
    Ok(g.add(&h, &mlp))
}

/// `down(silu(gate(x)) ⊙ up(x))`.
fn swiglu_mlp(
    g: &mut GraphBuilder,
    w: &dyn WeightSource,
    cfg: &TextConfig,
    prefix: &str,
    x: &Value,
) -> Result<Value, WeightError> {
    let (hidden, inner) = (cfg.hidden_size, cfg.intermediate_size);
    let gate = nn::linear(
        g,
        w,
        x,
        &format!("{prefix}.gate_proj"),
        hidden,
        inner,
        false,
    )?;
    let up = nn::linear(g, w, x, &format!("{prefix}.up_proj"), hidden, inner, false)?;
    let act = nn::silu(g, &gate);
    let prod = g.mul(&act, &up);
    nn::linear(
        g,
        w,
        &prod,
        &format!("{prefix}.down_proj"),
        inner,
        hidden,
        false,
    )
}

/// Grouped-query causal self-attention with per-head RMSNorm on q and k before M-RoPE.
/// Queries come from every row, or from the `readout` rows only.
#[allow(clippy::too_many_arguments)]
fn self_attention(
    g: &mut GraphBuilder,
    w: &dyn WeightSource,
    cfg: &TextConfig,
    prefix: &str,
    normed: &Value,
    rope: &Rope,
    bias: &Value,
    readout: Option<&Value>,
) -> Result<Value, WeightError> {
    let hidden = cfg.hidden_size;
    let (heads, kv_heads, head_dim) = (
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.head_dim(),
    );
    let group = heads / kv_heads;
    let eps = cfg.rms_norm_eps as f32;
    let has_bias = cfg.attention_bias;

    let (query_src, q_cos, q_sin, q_bias) = match readout {
        Some(rows) => (
            g.gather(normed, rows, 0),
            g.gather(&rope.cos, rows, 0),
            g.gather(&rope.sin, rows, 0),
            g.gather(bias, rows, 0),
        ),
        None => (
            normed.clone(),
            rope.cos.clone(),
            rope.sin.clone(),
            bias.clone(),
        ),
    };

    // [rows, heads·d] → per-head norm → [heads, rows, d] → rotary.
    let project_heads = |g: &mut GraphBuilder,
                         src: &Value,
                         name: &str,
                         n: usize,
                         norm: Option<(&str, &Value, &Value)>|
     -> Result<Value, WeightError> {
        let y = nn::linear(
            g,
            w,
            src,
            &format!("{prefix}.{name}"),
            hidden,
            n * head_dim,
            has_bias,
        )?;
        let y = g.reshape(&y, &[-1, n as i64, head_dim as i64]);
        let Some((norm_name, cos, sin)) = norm else {
            return Ok(g.transpose(&y, &[1, 0, 2]));
        };
        let y = nn::rms_norm(
            g,
            w,
            &y,
            &format!("{prefix}.{norm_name}.weight"),
            head_dim,
            eps,
        )?;
        let y = g.transpose(&y, &[1, 0, 2]);
        Ok(nn::apply_rotary(g, &y, cos, sin, head_dim))
    };
    let q = project_heads(
        g,
        &query_src,
        "q_proj",
        heads,
        Some(("q_norm", &q_cos, &q_sin)),
    )?;
    let k = project_heads(
        g,
        normed,
        "k_proj",
        kv_heads,
        Some(("k_norm", &rope.cos, &rope.sin)),
    )?;
    let v = project_heads(g, normed, "v_proj", kv_heads, None)?;

    // Query heads h·group .. h·group+group-1 share key/value head h: group them as
    // [kv_heads, group, rows, d] against keys/values [kv_heads, 1, seq, d].
    let scale = g.scalar_f32(1.0 / (head_dim as f32).sqrt());
    let q = g.mul(&q, &scale);
    let q = g.reshape(&q, &[kv_heads as i64, group as i64, -1, head_dim as i64]);
    let k = g.unsqueeze(&k, &[1]);
    let v = g.unsqueeze(&v, &[1]);
    let kt = g.transpose(&k, &[0, 1, 3, 2]);
    let ctx = nn::attend(g, &q, &kt, &v, Some(&q_bias));
    let ctx = g.reshape(&ctx, &[heads as i64, -1, head_dim as i64]);
    let ctx = nn::merge_heads(g, &ctx, heads, head_dim);
    nn::linear(
        g,
        w,
        &ctx,
        &format!("{prefix}.o_proj"),
        heads * head_dim,
        hidden,
        has_bias,
    )
}
