//! Greedy generation on the Qwen2-VL text graph with its key/value cache: one prefill of the
//! whole prompt, then one decode step per generated token that the next one depends on. The
//! cache stays a value of the backend between calls; only the hidden rows and the logits of
//! the last row come back to the host.

use crate::backend::{GraphOutputs, GraphSession, Tensor};
use crate::policy::{PolicyError, StopReason};
use std::time::Instant;
use vjx_graphs::qwen2_vl::text as text_io;
use vjx_graphs::qwen2_vl::Qwen2VlConfig;
use vjx_graphs::qwen3_vl::rope;

/// The prompt as the text graph reads it.
pub struct Prompt<'a> {
    pub input_ids: &'a [i64],
    /// `[image_rows · hidden]`: the vision tower's output, images in prompt order.
    pub image_embeds: &'a [f32],
    pub image_grids: &'a [[usize; 3]],
}

pub struct Generated {
    /// `[prompt · hidden]`: the final norm's output at every prompt row.
    pub prompt_hidden: Vec<f32>,
    /// Every new token, the end-of-turn token included when it was produced.
    pub token_ids: Vec<i64>,
    /// `[(tokens − 1) · hidden]`: the final norm's output at each generated token fed back (the
    /// last token is never fed).
    pub reasoning_hidden: Vec<f32>,
    /// The logits that chose the first new token.
    pub first_logits: Vec<f32>,
    pub stop: StopReason,
    /// `[T, H, W]` position ids of the prompt, and `rope_deltas` (decode positions are
    /// `cache position + rope_deltas`).
    pub position_ids: [Vec<i64>; 3],
    pub rope_deltas: i64,
    pub prefill_ms: f64,
    /// One entry per decode step.
    pub decode_ms: Vec<f64>,
}

/// The text graph and what it needs to place tokens.
pub struct TextModel<'a> {
    pub session: &'a dyn GraphSession,
    pub config: &'a Qwen2VlConfig,
    pub merge_size: usize,
}

impl TextModel<'_> {
    /// The prompt's hidden states only, at `positions` (TinyVLA: nothing is generated, and
    /// upstream's evaluation numbers the rows 0, 1, 2, … in all three position rows).
    pub fn prefill_hidden(
        &self,
        prompt: &Prompt,
        positions: &[Vec<i64>; 3],
    ) -> Result<Vec<f32>, PolicyError> {
        let mut out = self.prefill(prompt, positions)?;
        Ok(out.take_f32(text_io::HIDDEN)?.into_raw_vec_and_offset().0)
    }

    /// Greedy generation of at most `max_new_tokens` after the prompt, stopping at `eos`.
    pub fn generate(
        &self,
        prompt: &Prompt,
        max_new_tokens: usize,
        eos: i64,
    ) -> Result<Generated, PolicyError> {
        let cfg = self.config;
        let positions = self.position_ids(prompt);
        let next_position = positions.iter().flatten().copied().max().unwrap_or(-1) + 1;
        let rope_deltas = next_position - prompt.input_ids.len() as i64;

        let started = Instant::now();
        let mut out = self.prefill(prompt, &positions)?;
        let prompt_hidden = out.take_f32(text_io::HIDDEN)?.into_raw_vec_and_offset().0;
        crate::policy::ensure_finite("prompt_hidden", &prompt_hidden)?;
        let first_logits = out.take_f32(text_io::LOGITS)?.into_raw_vec_and_offset().0;
        let mut cache = take_cache(&mut out, cfg.num_hidden_layers)?;
        let prefill_ms = ms(started);

        let mut token_ids = vec![argmax(&first_logits)];
        let mut reasoning_hidden = Vec::new();
        let mut decode_ms = Vec::new();
        let head_dim = cfg.head_dim();
        let axes = cfg.mrope_axes();
        loop {
            let last = *token_ids.last().expect("one token");
            if last == eos || token_ids.len() >= max_new_tokens {
                break;
            }
            let started = Instant::now();
            let fed = prompt.input_ids.len() + token_ids.len() - 1;
            let position = fed as i64 + rope_deltas;
            let (cos, sin) = rope::rotary_tables(
                cfg.rope_theta,
                head_dim,
                &axes,
                &[vec![position], vec![position], vec![position]],
            );
            let rows = [
                Tensor::i64(&[1], vec![last]),
                Tensor::f32(&[0, cfg.hidden_size], Vec::new()),
                Tensor::i64(&[1], vec![0]),
                Tensor::f32(&[1, head_dim], cos),
                Tensor::f32(&[1, head_dim], sin),
                Tensor::f32(&[1, fed + 1], vec![0.0; fed + 1]),
            ];
            let mut out = self.run(&rows, &cache)?;
            reasoning_hidden.extend(out.take_f32(text_io::HIDDEN)?.iter().copied());
            let logits = out.take_f32(text_io::LOGITS)?;
            token_ids.push(argmax(logits.as_slice().expect("standard layout")));
            cache = take_cache(&mut out, cfg.num_hidden_layers)?;
            decode_ms.push(ms(started));
        }
        let stop = if token_ids.last() == Some(&eos) {
            StopReason::EndOfTurn
        } else {
            StopReason::TokenLimit
        };
        Ok(Generated {
            prompt_hidden,
            token_ids,
            reasoning_hidden,
            first_logits,
            stop,
            position_ids: positions,
            rope_deltas,
            prefill_ms,
            decode_ms,
        })
    }

    /// `get_rope_index`: text rows count on, image rows take (t, row, col) offsets.
    pub fn position_ids(&self, prompt: &Prompt) -> [Vec<i64>; 3] {
        rope::mrope_position_ids(
            prompt.input_ids,
            prompt.image_grids,
            self.config.image_token_id,
            self.merge_size,
        )
    }

    fn prefill(
        &self,
        prompt: &Prompt,
        positions: &[Vec<i64>; 3],
    ) -> Result<GraphOutputs, PolicyError> {
        let cfg = self.config;
        let (seq, hidden, head_dim) = (prompt.input_ids.len(), cfg.hidden_size, cfg.head_dim());
        let (cos, sin) =
            rope::rotary_tables(cfg.rope_theta, head_dim, &cfg.mrope_axes(), positions);
        let image_rows = prompt.image_embeds.len() / hidden;
        let rows = [
            Tensor::i64(&[seq], prompt.input_ids.to_vec()),
            Tensor::f32(&[image_rows, hidden], prompt.image_embeds.to_vec()),
            Tensor::i64(
                &[seq],
                rope::image_row_index(prompt.input_ids, cfg.image_token_id),
            ),
            Tensor::f32(&[seq, head_dim], cos),
            Tensor::f32(&[seq, head_dim], sin),
            Tensor::f32(&[seq, seq], rope::causal_bias(seq)),
        ];
        let empty = Tensor::f32(&[cfg.num_key_value_heads, 0, head_dim], Vec::new());
        let no_cache: Vec<(String, Tensor)> = (0..cfg.num_hidden_layers)
            .flat_map(|i| [text_io::past_key_name(i), text_io::past_value_name(i)])
            .map(|name| (name, empty.clone()))
            .collect();
        self.run(&rows, &no_cache)
    }

    /// One run of the text graph: the new rows' inputs in [`ROW_INPUTS`] order, and the cache.
    fn run(
        &self,
        rows: &[Tensor; 6],
        cache: &[(String, Tensor)],
    ) -> Result<GraphOutputs, PolicyError> {
        let inputs: Vec<(&str, &Tensor)> = ROW_INPUTS
            .into_iter()
            .zip(rows)
            .chain(cache.iter().map(|(name, value)| (name.as_str(), value)))
            .collect();
        Ok(self.session.run(&inputs)?)
    }
}

/// 0, 1, 2, … in all three rows: the positions of a forward pass given no position ids.
pub fn sequential_positions(len: usize) -> [Vec<i64>; 3] {
    let row: Vec<i64> = (0..len as i64).collect();
    [row.clone(), row.clone(), row]
}

/// The text graph's inputs for the new rows, in the order [`TextModel::run`] takes them.
const ROW_INPUTS: [&str; 6] = [
    text_io::INPUT_IDS,
    text_io::IMAGE_EMBEDS,
    text_io::IMAGE_ROW_INDEX,
    text_io::ROPE_COS,
    text_io::ROPE_SIN,
    text_io::ATTENTION_BIAS,
];

/// The presents of a run, renamed as the next run's pasts; they stay backend values.
fn take_cache(out: &mut GraphOutputs, layers: usize) -> Result<Vec<(String, Tensor)>, PolicyError> {
    let mut cache = Vec::with_capacity(2 * layers);
    for i in 0..layers {
        cache.push((
            text_io::past_key_name(i),
            out.take(&text_io::present_key_name(i))?,
        ));
        cache.push((
            text_io::past_value_name(i),
            out.take(&text_io::present_value_name(i))?,
        ));
    }
    Ok(cache)
}

/// The first index of the largest logit (`torch.argmax`).
fn argmax(logits: &[f32]) -> i64 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as i64
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::argmax;

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[0.5, 2.0, -1.0, 2.0]), 1);
    }
}
