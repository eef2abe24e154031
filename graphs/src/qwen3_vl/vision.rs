//! The Qwen3-VL vision tower as one ONNX graph that encodes ONE image (all its patches attend
//! to each other, none to another image's), with the DeepStack taps as extra outputs.
//!
//! Patch embedding → plus the bilinear-interpolated learned position embedding → `depth`
//! pre-norm blocks (2-D rotary, non-causal attention, MLP) → the final merger, which
//! LayerNorms each patch, concatenates every `merge × merge` block and projects it. After
//! each block listed in `deepstack_visual_indexes` a DeepStack merger projects the same
//! blocks with its LayerNorm taken after the concatenation.
//!
//! The per-image tables (position-embedding corners, rotary cos/sin) come from
//! [`super::vision_inputs::vision_inputs`], in the row order of `pixel_values`.

use super::config::VisionConfig;
use crate::blocks::attention::{attention, merge_heads, split_heads};
use crate::blocks::mlp::{feed_forward, Activation, Widths};
use crate::blocks::rotary::rotate_halves;
use crate::blocks::Prefixed;
use crate::builder::{Attr, DType, Dim, Encoding, GraphBuilder, Layout, Model, Precision, Value};
use crate::nn;
use crate::weights::{WeightError, WeightSource};

/// f32 `[patches, in_channels · temporal_patch · patch · patch]`, columns ordered
/// `(channel, frame, y, x)`, rows in merge-block order.
pub const PIXEL_VALUES: &str = "pixel_values";
/// i64 `[4, patches]`: rows of `pos_embed` at each patch's bilinear corners.
pub const POS_EMBED_INDEX: &str = "pos_embed_index";
/// f32 `[4, patches]`: the matching bilinear weights.
pub const POS_EMBED_WEIGHT: &str = "pos_embed_weight";
/// f32 `[patches, head_dim]`.
pub const ROPE_COS: &str = "rope_cos";
/// f32 `[patches, head_dim]`.
pub const ROPE_SIN: &str = "rope_sin";
/// f32 `[patches / merge², out_hidden]`: the image's tokens for the text model.
pub const IMAGE_EMBEDS: &str = "image_embeds";

/// Name of the `k`-th DeepStack output, f32 `[patches / merge², out_hidden]`.
pub fn deepstack_output_name(k: usize) -> String {
    format!("deepstack_{k}")
}

/// The symbolic dims of the graph's inputs and outputs.
const PATCHES: &str = "patches";
const MERGED_PATCHES: &str = "merged_patches";

/// LayerNorm epsilon of every vision norm (blocks and mergers).
const NORM_EPS: f32 = 1e-6;

/// What differs between the Qwen-VL generations' vision towers: the weight names of the MLP
/// and merger, and whether the patch embedding has a bias and a learned position grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisionStyle {
    pub graph_name: &'static str,
    pub patch_bias: bool,
    /// A learned position-embedding grid, sampled bilinearly per patch (Qwen3-VL).
    pub learned_positions: bool,
    /// The block MLP's two linears, under `blocks.{i}.`.
    pub mlp: [&'static str; 2],
    /// The final merger's LayerNorm and its two linears, under `merger.`.
    pub merger_norm: &'static str,
    pub merger_mlp: [&'static str; 2],
}

impl VisionStyle {
    pub const QWEN3_VL: VisionStyle = VisionStyle {
        graph_name: "qwen3_vl_vision",
        patch_bias: true,
        learned_positions: true,
        mlp: ["mlp.linear_fc1", "mlp.linear_fc2"],
        merger_norm: "norm",
        merger_mlp: ["linear_fc1", "linear_fc2"],
    };

    /// Qwen2-VL: no patch bias, no learned positions (rotary only), `fc1`/`fc2` and the
    /// merger's `ln_q` and `mlp.0`/`mlp.2`.
    pub const QWEN2_VL: VisionStyle = VisionStyle {
        graph_name: "qwen2_vl_vision",
        patch_bias: false,
        learned_positions: false,
        mlp: ["mlp.fc1", "mlp.fc2"],
        merger_norm: "ln_q",
        merger_mlp: ["mlp.0", "mlp.2"],
    };
}

/// Builds the vision graph from the weights under `prefix` (e.g.
/// `model.qwen.model.model.visual.`; the trailing dot may be left out).
pub fn build_vision_graph(
    cfg: &VisionConfig,
    weights: &dyn WeightSource,
    prefix: &str,
) -> Result<Model, WeightError> {
    build_vision_graph_at(cfg, weights, prefix, Precision::F32)
}

/// [`build_vision_graph`] with its linear layers and attention at `precision`.
pub fn build_vision_graph_at(
    cfg: &VisionConfig,
    weights: &dyn WeightSource,
    prefix: &str,
    precision: Precision,
) -> Result<Model, WeightError> {
    build_vision_graph_styled(cfg, weights, prefix, precision, VisionStyle::QWEN3_VL)
}

/// [`build_vision_graph_at`] for another generation's tower `style`. Without learned
/// positions the graph has no [`POS_EMBED_INDEX`] / [`POS_EMBED_WEIGHT`] inputs.
pub fn build_vision_graph_styled(
    cfg: &VisionConfig,
    weights: &dyn WeightSource,
    prefix: &str,
    precision: Precision,
    style: VisionStyle,
) -> Result<Model, WeightError> {
    let tower = Tower::new(cfg, weights, prefix, style)?;
    let mut g = GraphBuilder::with_precision(style.graph_name, precision);

    let patches = Dim::from(PATCHES);
    let pixels = g.input(
        PIXEL_VALUES,
        DType::F32,
        &[patches.clone(), cfg.patch_dim().into()],
    );
    let corners = style.learned_positions.then(|| {
        let index = g.input(
            POS_EMBED_INDEX,
            DType::I64,
            &[4usize.into(), patches.clone()],
        );
        let weight = g.input(
            POS_EMBED_WEIGHT,
            DType::F32,
            &[4usize.into(), patches.clone()],
        );
        (index, weight)
    });
    let cos = g.input(
        ROPE_COS,
        DType::F32,
        &[patches.clone(), cfg.head_dim().into()],
    );
    let sin = g.input(ROPE_SIN, DType::F32, &[patches, cfg.head_dim().into()]);

    let mut hidden = g.scoped("patch_embed", |g| tower.patch_embed(g, &pixels))?;
    if let Some((corner_index, corner_weight)) = &corners {
        let position = g.scoped("pos_embed", |g| {
            tower.position_embedding(g, corner_index, corner_weight)
        })?;
        hidden = g.add(&hidden, &position);
    }

    let mut taps = Vec::with_capacity(cfg.deepstack_visual_indexes.len());
    for layer in 0..cfg.depth {
        hidden = g.scoped(&format!("block{layer}"), |g| {
            tower.block(g, &hidden, layer, &cos, &sin)
        })?;
        if let Some(k) = cfg
            .deepstack_visual_indexes
            .iter()
            .position(|&i| i == layer)
        {
            let tap = g.scoped(&format!("deepstack{k}"), |g| {
                tower.merger(
                    g,
                    &hidden,
                    &format!("deepstack_merger_list.{k}"),
                    Norm::AfterShuffle,
                    VisionStyle::QWEN3_VL,
                )
            })?;
            taps.push((k, tap));
        }
    }
    let image_embeds = g.scoped("merger", |g| {
        tower.merger(g, &hidden, "merger", Norm::BeforeShuffle, style)
    })?;

    let out_shape = [Dim::from(MERGED_PATCHES), cfg.out_hidden_size.into()];
    g.output(&image_embeds, IMAGE_EMBEDS, DType::F32, &out_shape);
    taps.sort_by_key(|(k, _)| *k);
    for (k, tap) in &taps {
        g.output(tap, &deepstack_output_name(*k), DType::F32, &out_shape);
    }
    Ok(g.finish())
}

/// Where a patch merger takes its LayerNorm relative to concatenating each merge block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Norm {
    /// Per patch (`hidden` wide), then concatenate: the final merger.
    BeforeShuffle,
    /// Concatenate, then over the `merge² · hidden` block: the DeepStack mergers.
    AfterShuffle,
}

/// The config, the weights and the checked-once facts the layers share.
struct Tower<'a> {
    cfg: &'a VisionConfig,
    at: Prefixed<'a>,
    activation: Activation,
    style: VisionStyle,
}

impl<'a> Tower<'a> {
    fn new(
        cfg: &'a VisionConfig,
        weights: &'a dyn WeightSource,
        prefix: &str,
        style: VisionStyle,
    ) -> Result<Self, WeightError> {
        let config_error = |field: &str, reason: String| WeightError::Invalid {
            name: format!("vision_config.{field}"),
            reason,
            source_desc: weights.describe(),
        };
        let activation = Activation::from_config(&cfg.hidden_act).ok_or_else(|| {
            config_error(
                "hidden_act",
                format!(
                    "activation `{}` is not supported by the vision graph",
                    cfg.hidden_act
                ),
            )
        })?;
        if !cfg.hidden_size.is_multiple_of(cfg.num_heads) || !cfg.head_dim().is_multiple_of(4) {
            return Err(config_error(
                "num_heads",
                format!(
                    "hidden_size {} over {} heads does not give a head width divisible by 4",
                    cfg.hidden_size, cfg.num_heads
                ),
            ));
        }
        if let Some(&bad) = cfg
            .deepstack_visual_indexes
            .iter()
            .find(|&&i| i >= cfg.depth)
        {
            return Err(config_error(
                "deepstack_visual_indexes",
                format!(
                    "tap after block {bad}, but the tower has {} blocks",
                    cfg.depth
                ),
            ));
        }
        let prefix = if prefix.is_empty() || prefix.ends_with('.') {
            prefix.to_string()
        } else {
            format!("{prefix}.")
        };
        Ok(Tower {
            cfg,
            at: Prefixed::new(weights, &prefix),
            activation,
            style,
        })
    }

    fn layer_norm(
        &self,
        g: &mut GraphBuilder,
        x: &Value,
        local: &str,
        dim: usize,
    ) -> Result<Value, WeightError> {
        let affine = self.at.name(local);
        nn::layer_norm(g, self.at.weights, x, Some(&affine), dim, NORM_EPS)
    }

    /// The Conv3d whose kernel equals its stride is a Linear over the flattened patch: its
    /// `[hidden, C, T, P, P]` weight flattens row-major into `pixel_values`' column order.
    fn patch_embed(&self, g: &mut GraphBuilder, pixels: &Value) -> Result<Value, WeightError> {
        let c = self.cfg;
        let weight_name = self.at.name("patch_embed.proj.weight");
        let kernel_shape = [
            c.hidden_size,
            c.in_channels,
            c.temporal_patch_size,
            c.patch_size,
            c.patch_size,
        ];
        let projected = nn::project(g, self.at.weights, pixels, &weight_name, &kernel_shape)?;
        if !self.style.patch_bias {
            return Ok(projected);
        }
        let bias_name = self.at.name("patch_embed.proj.bias");
        let bias = nn::vector(g, self.at.weights, &bias_name, c.hidden_size)?;
        Ok(g.add(&projected, &bias))
    }

    /// `Σ_corner pos_embed[index] · weight` → `[patches, hidden]`.
    fn position_embedding(
        &self,
        g: &mut GraphBuilder,
        corner_index: &Value,
        corner_weight: &Value,
    ) -> Result<Value, WeightError> {
        let c = self.cfg;
        let table_name = self.at.name("pos_embed.weight");
        let table = g.checkpoint_weight(
            self.at.weights,
            &table_name,
            &[c.num_position_embeddings, c.hidden_size],
            Layout::AsIs,
            Encoding::F32,
        )?;
        let rows = g.gather(&table, corner_index, 0);
        let weight = g.unsqueeze(corner_weight, &[-1]);
        let weighted = g.mul(&rows, &weight);
        let axis = g.const_i64(&[0]);
        Ok(g.op(
            "ReduceSum",
            &[&weighted, &axis],
            vec![("keepdims", Attr::Int(0))],
        ))
    }

    fn block(
        &self,
        g: &mut GraphBuilder,
        x: &Value,
        layer: usize,
        cos: &Value,
        sin: &Value,
    ) -> Result<Value, WeightError> {
        let hidden = self.cfg.hidden_size;
        let at = |local: &str| format!("blocks.{layer}.{local}");
        let normed = self.layer_norm(g, x, &at("norm1"), hidden)?;
        let attended = self.attention(g, &normed, &at("attn"), cos, sin)?;
        let x = g.add(x, &attended);
        let normed = self.layer_norm(g, &x, &at("norm2"), hidden)?;
        let mlp = feed_forward(
            g,
            &self.at,
            &normed,
            [&at(self.style.mlp[0]), &at(self.style.mlp[1])],
            Widths::residual(hidden, self.cfg.intermediate_size),
            self.activation,
        )?;
        Ok(g.add(&x, &mlp))
    }

    /// Fused qkv projection (columns: all of q, then k, then v), rotary on q and k, softmax
    /// attention over every patch of the image, output projection.
    fn attention(
        &self,
        g: &mut GraphBuilder,
        x: &Value,
        at: &str,
        cos: &Value,
        sin: &Value,
    ) -> Result<Value, WeightError> {
        let (hidden, heads, head_dim) = (
            self.cfg.hidden_size,
            self.cfg.num_heads,
            self.cfg.head_dim(),
        );
        let qkv = self
            .at
            .linear(g, x, &format!("{at}.qkv"), hidden, 3 * hidden)?;
        let mut part = |i: usize| {
            let h = hidden as i64;
            let slice = g.slice(&qkv, -1, i as i64 * h, (i as i64 + 1) * h);
            split_heads(g, &slice, heads, head_dim)
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let q = rotate_halves(g, &q, cos, sin, head_dim);
        let k = rotate_halves(g, &k, cos, sin, head_dim);
        let attended = attention(g, &q, &k, &v, head_dim, None);
        let merged = merge_heads(g, &attended, heads, head_dim);
        self.at
            .linear(g, &merged, &format!("{at}.proj"), hidden, hidden)
    }

    /// `[patches, hidden]` → `[patches / merge², out_hidden]`; consecutive rows form a block.
    fn merger(
        &self,
        g: &mut GraphBuilder,
        x: &Value,
        at: &str,
        norm: Norm,
        names: VisionStyle,
    ) -> Result<Value, WeightError> {
        let c = self.cfg;
        let block = c.hidden_size * c.spatial_merge_size * c.spatial_merge_size;
        let norm_name = format!("{at}.{}", names.merger_norm);
        let blocks = match norm {
            Norm::BeforeShuffle => {
                let normed = self.layer_norm(g, x, &norm_name, c.hidden_size)?;
                g.reshape(&normed, &[-1, block as i64])
            }
            Norm::AfterShuffle => {
                let shuffled = g.reshape(x, &[-1, block as i64]);
                self.layer_norm(g, &shuffled, &norm_name, block)?
            }
        };
        feed_forward(
            g,
            &self.at,
            &blocks,
            [
                &format!("{at}.{}", names.merger_mlp[0]),
                &format!("{at}.{}", names.merger_mlp[1]),
            ],
            Widths {
                input: block,
                hidden: block,
                output: c.out_hidden_size,
            },
            Activation::GeluErf,
        )
    }
}
