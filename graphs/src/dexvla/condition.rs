//! What DexVLA computes once per chunk before the diffusion loop: the fusion of the language
//! model's hidden states into one condition vector, and ScaleDP's projection of it with the
//! robot state.
//!
//! FiLM (`using_film`): `a = input_action_proj(mean(prompt))`,
//! `r = reasoning_action_proj(mean(reasoning))`,
//! `condition = a · (1 + scale_fc(r)) + shift_fc(r) + mean(prompt)`.
//! Mean pooling (TinyVLA): `condition = mean(prompt)`, LayerNormed when the head was built
//! with `is_tinyvla`.
//! Then `head_condition = cond_obs_emb(combine(cat(condition, state)))`.

use super::config::{Fusion, ScaleDpConfig, COMBINE_HIDDEN, POOL_NORM_EPS};
use crate::blocks::mlp::{feed_forward, Activation, Widths};
use crate::blocks::Prefixed;
use crate::builder::{DType, Dim, GraphBuilder, Model, Precision, Value};
use crate::nn;
use crate::weights::{WeightError, WeightSource};

/// f32 `[prompt, cond_dim]`: the final-norm hidden states of the prompt rows.
pub const PROMPT_HIDDEN: &str = "prompt_hidden";
/// f32 `[reasoning, cond_dim]`: those of the generated tokens fed back (FiLM only).
pub const REASONING_HIDDEN: &str = "reasoning_hidden";
/// f32 `[state_dim]`: the normalized robot state.
pub const STATE: &str = "state";
/// f32 `[cond_dim]`: the fused condition.
pub const CONDITION: &str = "condition";
/// f32 `[n_emb]`: what every diffusion step adds to its timestep embedding.
pub const HEAD_CONDITION: &str = "head_condition";

pub const GRAPH_NAME: &str = "dexvla_condition";

/// Builds the condition graph; `prefix` is where the policy's modules are (`""` in the
/// original repository's checkpoints, `model.` in the LeRobot port's).
pub fn build_condition_graph(
    head: &ScaleDpConfig,
    fusion: Fusion,
    weights: &dyn WeightSource,
    prefix: &str,
    precision: Precision,
) -> Result<Model, WeightError> {
    let at = Prefixed::new(weights, prefix);
    let h = head.cond_dim;
    let mut g = GraphBuilder::with_precision(GRAPH_NAME, precision);
    let prompt = g.input(PROMPT_HIDDEN, DType::F32, &[Dim::from("prompt"), h.into()]);
    let reasoning = (fusion == Fusion::Film).then(|| {
        g.input(
            REASONING_HIDDEN,
            DType::F32,
            &[Dim::from("reasoning"), h.into()],
        )
    });
    let state = g.input(STATE, DType::F32, &[head.state_dim.into()]);

    let pooled_prompt = g.reduce("ReduceMean", &prompt, &[0]);
    let condition = match &reasoning {
        Some(reasoning) => g.scoped("film", |g| film(g, &at, &pooled_prompt, reasoning, h))?,
        None if head.is_tinyvla => nn::layer_norm(
            &mut g,
            weights,
            &pooled_prompt,
            Some(&at.name("policy_head.norm_after_pool")),
            h,
            POOL_NORM_EPS,
        )?,
        None => pooled_prompt,
    };

    let state_row = g.unsqueeze(&state, &[0]);
    let both = g.concat(&[&condition, &state_row], -1);
    let combined = g.scoped("combine", |g| combine(g, &at, &both, head))?;
    let head_condition = at.linear(&mut g, &combined, "policy_head.cond_obs_emb", h, head.n_emb)?;

    let condition = g.reshape(&condition, &[-1]);
    let head_condition = g.reshape(&head_condition, &[-1]);
    g.output(&condition, CONDITION, DType::F32, &[h.into()]);
    g.output(
        &head_condition,
        HEAD_CONDITION,
        DType::F32,
        &[head.n_emb.into()],
    );
    Ok(g.finish())
}

/// `[1, h]`: the FiLM of the pooled prompt by the pooled reasoning, plus the pooled prompt.
fn film(
    g: &mut GraphBuilder,
    at: &Prefixed,
    pooled_prompt: &Value,
    reasoning: &Value,
    h: usize,
) -> Result<Value, WeightError> {
    let project = |g: &mut GraphBuilder, pooled: &Value, module: &str| {
        feed_forward(
            g,
            at,
            pooled,
            [&format!("{module}.mlps.0"), &format!("{module}.mlps.2")],
            Widths::residual(h, h),
            Activation::GeluErf,
        )
    };
    let a = project(g, pooled_prompt, "input_action_proj")?;
    let pooled_reasoning = g.reduce("ReduceMean", reasoning, &[0]);
    let r = project(g, &pooled_reasoning, "reasoning_action_proj")?;
    let scale = at.linear(g, &r, "reasoning_film.scale_fc", h, h)?;
    let shift = at.linear(g, &r, "reasoning_film.shift_fc", h, h)?;
    let one = g.scalar_f32(1.0);
    let gain = g.add(&scale, &one);
    let modulated = g.mul(&a, &gain);
    let modulated = g.add(&modulated, &shift);
    Ok(g.add(&modulated, pooled_prompt))
}

/// ScaleDP's `combine`: Linear → ReLU → Linear → ReLU → Linear, `cond_dim + state_dim →
/// cond_dim`.
fn combine(
    g: &mut GraphBuilder,
    at: &Prefixed,
    x: &Value,
    head: &ScaleDpConfig,
) -> Result<Value, WeightError> {
    let first = at.linear(
        g,
        x,
        "policy_head.combine.0",
        head.cond_dim + head.state_dim,
        COMBINE_HIDDEN,
    )?;
    let first = g.relu(&first);
    feed_forward(
        g,
        at,
        &first,
        ["policy_head.combine.2", "policy_head.combine.4"],
        Widths {
            input: COMBINE_HIDDEN,
            hidden: COMBINE_HIDDEN,
            output: head.cond_dim,
        },
        Activation::Relu,
    )
}
