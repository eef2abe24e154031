//! The causal state of the VAE's temporal convolutions as graph inputs and outputs.
//!
//! diffusers keeps a `feat_cache` list: each 3-frame causal conv stores the last ≤ 2 frames of
//! its input, a temporal downsampler the last frame of its input, an upsampler a "Rep" marker
//! on the first call. Here every cache has a fixed frame count: a conv that has seen only one
//! frame holds `[0, frame]`, which is exact because its causal padding is zeros, and "Rep"
//! (no time conv on the first call, zero history on the next) is two zero frames.

use crate::builder::{Attr, DType, Dim, GraphBuilder, Value};

/// ONNX name of the `j`-th carried cache (graph input of the stream graphs).
pub fn cache_in_name(j: usize) -> String {
    format!("cache_in_{j}")
}

/// ONNX name of the `j`-th updated cache (graph output of the first and stream graphs).
pub fn cache_out_name(j: usize) -> String {
    format!("cache_out_{j}")
}

/// One cache: `[batch, channels, frames, height / downscale, width / downscale]`, with
/// `height`, `width` the pixel size of the frames the VAE encodes or decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSlot {
    pub channels: usize,
    pub frames: usize,
    pub downscale: usize,
}

impl CacheSlot {
    pub fn shape(&self, batch: usize, height: usize, width: usize) -> Vec<usize> {
        vec![
            batch,
            self.channels,
            self.frames,
            height / self.downscale,
            width / self.downscale,
        ]
    }

    fn dims(&self) -> Vec<Dim> {
        vec![
            Dim::from(BATCH),
            self.channels.into(),
            self.frames.into(),
            scaled(HEIGHT, self.downscale),
            scaled(WIDTH, self.downscale),
        ]
    }
}

pub const BATCH: &str = "batch";
pub const HEIGHT: &str = "height";
pub const WIDTH: &str = "width";
pub const TIME: &str = "time";

/// `name`, or `name/divisor` for a downscaled dimension.
pub fn scaled(name: &str, divisor: usize) -> Dim {
    if divisor == 1 {
        Dim::from(name)
    } else {
        Dim::Named(format!("{name}/{divisor}"))
    }
}

/// Frames of history a 3-frame causal conv keeps.
pub const CONV_HISTORY: usize = 2;

/// Whether a graph starts the stream (no history: zeros) or continues it (history as inputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    First,
    Stream,
}

/// Hands out the caches in `plan` order while a graph is built, and marks the updated ones as
/// outputs at the end.
pub struct CausalState {
    phase: Phase,
    plan: Vec<CacheSlot>,
    updated: Vec<Value>,
}

impl CausalState {
    /// Declares the `cache_in_{j}` inputs (stream phase) right away, so that they follow the
    /// graph's main input.
    pub fn new(g: &mut GraphBuilder, phase: Phase, plan: Vec<CacheSlot>) -> Self {
        if phase == Phase::Stream {
            for (j, slot) in plan.iter().enumerate() {
                g.input(&cache_in_name(j), DType::F32, &slot.dims());
            }
        }
        CausalState {
            phase,
            plan,
            updated: Vec::new(),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The next cache: checks that the graph asks for what the plan promised and returns the
    /// carried value (stream phase) or `None` (first phase).
    pub fn next(&mut self, slot: CacheSlot) -> Option<Value> {
        let j = self.updated.len();
        assert!(
            j < self.plan.len(),
            "graph uses more caches than planned ({})",
            self.plan.len()
        );
        assert_eq!(self.plan[j], slot, "cache {j} differs from the plan");
        match self.phase {
            Phase::First => None,
            Phase::Stream => Some(Value(cache_in_name(j))),
        }
    }

    /// Records the updated value of the cache handed out last.
    pub fn update(&mut self, value: Value) {
        self.updated.push(value);
    }

    /// History of a 3-frame causal conv on `x` `[B, C, T, H, W]`: its input with the history
    /// prepended, `[B, C, 2 + T, H, W]`; the last two frames of that become the new cache.
    pub fn conv_history(
        &mut self,
        g: &mut GraphBuilder,
        x: &Value,
        channels: usize,
        downscale: usize,
    ) -> Value {
        let slot = CacheSlot {
            channels,
            frames: CONV_HISTORY,
            downscale,
        };
        let padded = match self.next(slot) {
            Some(cache) => g.concat(&[&cache, x], 2),
            None => {
                let pads = g.const_i64(&[0, 0, CONV_HISTORY as i64, 0, 0, 0, 0, 0, 0, 0]);
                g.op(
                    "Pad",
                    &[x, &pads],
                    vec![("mode", Attr::Str("constant".into()))],
                )
            }
        };
        let kept = g.slice(&padded, 2, -(CONV_HISTORY as i64), i64::MAX);
        self.update(kept);
        padded
    }

    /// Marks every updated cache as a `cache_out_{j}` output; panics when the graph used fewer
    /// caches than planned.
    pub fn finish(self, g: &mut GraphBuilder) {
        assert_eq!(
            self.updated.len(),
            self.plan.len(),
            "graph used fewer caches than planned"
        );
        for (j, (value, slot)) in self.updated.iter().zip(&self.plan).enumerate() {
            g.output(value, &cache_out_name(j), DType::F32, &slot.dims());
        }
    }
}
