//! One denoising step of ScaleDP, DexVLA's diffusion head (a DiT with adaLN-Zero): noisy
//! action chunk + DDIM timestep + the chunk's head condition → predicted noise ε. The host
//! runs the DDIM loop around it.

use super::config::{ScaleDpConfig, NORM_EPS, TIMESTEP_CHANNELS};
use crate::blocks::adaln::{modulate, modulation_chunks};
use crate::blocks::attention::{attention, merge_heads, split_heads};
use crate::blocks::mlp::{feed_forward, Activation, Widths};
use crate::blocks::sinusoid::{bf16_frequencies, sinusoid_features, HalfOrder};
use crate::blocks::Prefixed;
use crate::builder::{DType, Encoding, GraphBuilder, Layout, Model, Precision, Value};
use crate::nn;
use crate::weights::{WeightError, WeightSource};

/// f32 `[horizon, action_dim]`: the sample being denoised.
pub const SAMPLE: &str = "sample";
/// i64 `[1]`: the DDIM timestep.
pub const TIMESTEP: &str = "timestep";
pub use super::condition::HEAD_CONDITION;
/// f32 `[horizon, action_dim]`: the predicted noise.
pub const EPSILON: &str = "epsilon";

pub const GRAPH_NAME: &str = "dexvla_scaledp_step";

/// Builds the step graph; `prefix` as for [`super::condition::build_condition_graph`].
pub fn build_step_graph(
    head: &ScaleDpConfig,
    weights: &dyn WeightSource,
    prefix: &str,
    precision: Precision,
) -> Result<Model, WeightError> {
    check_supported(head, weights)?;
    let at = Prefixed::new(weights, &format!("{prefix}policy_head."));
    let (n, horizon, action_dim) = (head.n_emb, head.prediction_horizon, head.action_dim());
    let mut g = GraphBuilder::with_precision(GRAPH_NAME, precision);
    let sample = g.input(SAMPLE, DType::F32, &[horizon.into(), action_dim.into()]);
    let t = g.input(TIMESTEP, DType::I64, &[1usize.into()]);
    let head_condition = g.input(HEAD_CONDITION, DType::F32, &[n.into()]);

    let t = g.cast(&t, DType::F32);
    let t = g.unsqueeze(&t, &[1]);
    let features = sinusoid_features(
        &mut g,
        &t,
        bf16_frequencies(TIMESTEP_CHANNELS),
        HalfOrder::CosSin,
    );
    let t_emb = g.scoped("t_embedder", |g| {
        feed_forward(
            g,
            &at,
            &features,
            ["t_embedder.mlp.0", "t_embedder.mlp.2"],
            Widths {
                input: TIMESTEP_CHANNELS,
                hidden: n,
                output: n,
            },
            Activation::Silu,
        )
    })?;
    let c = g.add(&t_emb, &head_condition);
    let silu_c = nn::silu(&mut g, &c);

    let positions = g.checkpoint_weight(
        weights,
        &at.name("pos_embed"),
        &[1, horizon, n],
        Layout::AsIs,
        Encoding::F32,
    )?;
    let positions = g.reshape(&positions, &[horizon as i64, n as i64]);
    let x = at.linear(&mut g, &sample, "x_embedder", action_dim, n)?;
    let mut x = g.add(&x, &positions);

    for block in 0..head.depth {
        x = g.scoped(&format!("block{block}"), |g| {
            dit_block(g, &at, head, block, &x, &silu_c)
        })?;
    }

    let epsilon = g.scoped("final_layer", |g| -> Result<Value, WeightError> {
        let chunks = modulation_chunks(g, &at, &silu_c, "final_layer.adaLN_modulation.1", n, 2)?;
        let (shift, scale) = (&chunks[0], &chunks[1]);
        let out = modulate(g, &x, NORM_EPS, scale, shift);
        at.linear(g, &out, "final_layer.linear", n, action_dim)
    })?;
    g.output(
        &epsilon,
        EPSILON,
        DType::F32,
        &[horizon.into(), action_dim.into()],
    );
    Ok(g.finish())
}

/// `x + g1 · attn(mod(x)) ; x + g2 · mlp(mod(x))` with the six modulations of block `index`.
fn dit_block(
    g: &mut GraphBuilder,
    at: &Prefixed,
    head: &ScaleDpConfig,
    index: usize,
    x: &Value,
    silu_c: &Value,
) -> Result<Value, WeightError> {
    let n = head.n_emb;
    let local = |name: &str| format!("blocks.{index}.{name}");
    let chunks = modulation_chunks(g, at, silu_c, &local("adaLN_modulation.1"), n, 6)?;
    let [shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp] = &chunks[..] else {
        unreachable!("six modulation chunks");
    };

    let h = modulate(g, x, NORM_EPS, scale_msa, shift_msa);
    let qkv = at.linear(g, &h, &local("attn.qkv"), n, 3 * n)?;
    let (heads, head_dim) = (head.num_heads, head.head_dim());
    let mut part = |i: i64| {
        let slice = g.slice(&qkv, -1, i * n as i64, (i + 1) * n as i64);
        split_heads(g, &slice, heads, head_dim)
    };
    let (q, k, v) = (part(0), part(1), part(2));
    let attended = attention(g, &q, &k, &v, head_dim, None);
    let merged = merge_heads(g, &attended, heads, head_dim);
    let attn = at.linear(g, &merged, &local("attn.proj"), n, n)?;
    let gated = g.mul(gate_msa, &attn);
    let x = g.add(x, &gated);

    let h = modulate(g, &x, NORM_EPS, scale_mlp, shift_mlp);
    let mlp = feed_forward(
        g,
        at,
        &h,
        [&local("mlp.fc1"), &local("mlp.fc2")],
        Widths::residual(n, head.mlp_hidden()),
        Activation::GeluTanh,
    )?;
    let gated = g.mul(gate_mlp, &mlp);
    Ok(g.add(&x, &gated))
}

fn check_supported(head: &ScaleDpConfig, weights: &dyn WeightSource) -> Result<(), WeightError> {
    let invalid = |name: &str, reason: String| WeightError::Invalid {
        name: format!("policy_head_config.{name}"),
        reason,
        source_desc: weights.describe(),
    };
    if head.learn_sigma {
        return Err(invalid(
            "learn_sigma",
            "true: a head that also predicts its variance is not supported".into(),
        ));
    }
    if head.num_heads == 0 || !head.n_emb.is_multiple_of(head.num_heads) {
        return Err(invalid(
            "num_heads",
            format!(
                "n_emb {} does not split over {} heads",
                head.n_emb, head.num_heads
            ),
        ));
    }
    Ok(())
}
