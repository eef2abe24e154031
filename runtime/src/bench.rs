//! `vjx bench`: latency per chunk and per stage over repeated predictions.

use crate::backend::tensorrt_cache::EngineCache;
use crate::backend::{Backend, Placement, RuntimeLibrary};
pub use crate::policy::CacheMemory;
use crate::policy::{Noise, Observation, PolicyEpisode, PolicyError, PolicyRunner};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StagePercentiles {
    pub p50: f64,
    pub p90: f64,
    /// How often the stage runs per chunk when more than once (LingBot-VA's denoising steps);
    /// the percentiles are then per run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs_per_chunk: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub backend: String,
    pub device: String,
    pub threads: usize,
    pub precision: String,
    pub policy_type: String,
    pub iters: usize,
    pub warmup: usize,
    pub latency_ms: Percentiles,
    pub stages_ms: BTreeMap<String, StagePercentiles>,
    /// Stage names in pipeline order (the map above is sorted by name).
    pub stage_order: Vec<String>,
    pub chunks_per_s: f64,
    pub control_hz: f64,
    pub n_action_steps: usize,
    pub first_call_ms: f64,
    /// The first start's load time (kept for the scripts that read it).
    pub load_ms: f64,
    pub first_start_ms: f64,
    /// Whether the first start found its TensorRT engines cached.
    pub first_start_engine_cache: EngineCacheSummary,
    pub warm_start_ms: f64,
    pub peak_rss_mb: Option<f64>,
    /// Where each graph runs (ort); empty for tract.
    pub placements: Vec<Placement>,
    /// The ONNX Runtime library (ort).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_library: Option<RuntimeLibrary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_memory: Option<CacheMemory>,
}

/// The TensorRT engine caches of all graphs at one start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineCacheSummary {
    /// No graph ran on TensorRT with a cache dir.
    NotUsed,
    /// Every TensorRT engine was built at this start.
    Empty,
    /// Every TensorRT engine was loaded from the cache.
    Populated,
    /// Some were built, some loaded.
    Mixed,
}

impl EngineCacheSummary {
    pub fn of(placements: &[Placement]) -> Self {
        let states: Vec<EngineCache> = placements.iter().filter_map(|p| p.engine_cache).collect();
        match states.first() {
            None => EngineCacheSummary::NotUsed,
            Some(first) if states.iter().any(|s| s != first) => EngineCacheSummary::Mixed,
            Some(EngineCache::Empty) => EngineCacheSummary::Empty,
            Some(EngineCache::Populated) => EngineCacheSummary::Populated,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EngineCacheSummary::NotUsed => "not used",
            EngineCacheSummary::Empty => "empty",
            EngineCacheSummary::Populated => "populated",
            EngineCacheSummary::Mixed => "partly populated",
        }
    }
}

/// How long the policy took to load: the first start as it happened, then again in the same
/// process after dropping it (files in the page cache, TensorRT engines cached).
#[derive(Debug, Clone)]
pub struct Starts {
    pub first_start_ms: f64,
    pub first_start_engine_cache: EngineCacheSummary,
    /// Where each graph landed at the first start.
    pub placements: Vec<Placement>,
    pub warm_start_ms: f64,
}

/// Loads the policy in `dir`, drops it and loads it again; returns the second one.
pub fn load_twice(
    dir: &Path,
    backend: &dyn Backend,
) -> Result<(Box<dyn PolicyRunner>, Starts), PolicyError> {
    let t = Instant::now();
    let first = crate::policy::load(dir, backend)?;
    let first_start_ms = t.elapsed().as_secs_f64() * 1e3;
    let placements = backend.placements();
    drop(first);
    let t = Instant::now();
    let policy = crate::policy::load(dir, backend)?;
    let warm_start_ms = t.elapsed().as_secs_f64() * 1e3;
    let first_start_engine_cache = EngineCacheSummary::of(&placements);
    Ok((
        policy,
        Starts {
            first_start_ms,
            first_start_engine_cache,
            placements,
            warm_start_ms,
        },
    ))
}

/// The q-th percentile (0..=100) of `sorted` by linear interpolation between ranks.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = q / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

/// Peak resident set size of this process, from /proc (Linux only).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub struct BenchConfig {
    pub iters: usize,
    pub warmup: usize,
    pub backend: String,
    pub device: String,
    pub threads: usize,
    pub starts: Starts,
    pub runtime_library: Option<RuntimeLibrary>,
}

/// Per-chunk totals and per-stage samples of the timed iterations.
#[derive(Default)]
struct Samples {
    totals: Vec<f64>,
    stages: BTreeMap<String, Vec<f64>>,
    /// Stage names in pipeline order (first seen first).
    stage_order: Vec<String>,
}

impl Samples {
    fn record(&mut self, total_ms: f64, timings: crate::policy::StageTimings) {
        self.totals.push(total_ms);
        for (name, ms) in timings {
            if !self.stages.contains_key(&name) {
                self.stage_order.push(name.clone());
            }
            self.stages.entry(name).or_default().push(ms);
        }
    }

    /// The report; a stage seen more than once per chunk gets its runs per chunk.
    fn report(
        self,
        manifest: &crate::manifest::Manifest,
        cfg: &BenchConfig,
        first_call_ms: f64,
        n_action_steps: usize,
        cache_memory: Option<CacheMemory>,
    ) -> BenchReport {
        let iters = self.totals.len();
        let totals = sorted(self.totals);
        let p50 = percentile(&totals, 50.0);
        let chunks_per_s = 1e3 / p50;
        BenchReport {
            backend: cfg.backend.clone(),
            device: cfg.device.clone(),
            threads: cfg.threads,
            precision: manifest.precision.name().to_string(),
            policy_type: manifest.policy_type().to_string(),
            iters,
            warmup: cfg.warmup,
            latency_ms: Percentiles {
                p50,
                p90: percentile(&totals, 90.0),
                p99: percentile(&totals, 99.0),
                min: totals[0],
                max: totals[totals.len() - 1],
            },
            stages_ms: self
                .stages
                .into_iter()
                .map(|(k, v)| {
                    let runs = v.len() as f64 / iters as f64;
                    let v = sorted(v);
                    let runs_per_chunk = (runs > 1.0).then_some(runs);
                    (
                        k,
                        StagePercentiles {
                            p50: percentile(&v, 50.0),
                            p90: percentile(&v, 90.0),
                            runs_per_chunk,
                        },
                    )
                })
                .collect(),
            stage_order: self.stage_order,
            chunks_per_s,
            control_hz: chunks_per_s * n_action_steps as f64,
            n_action_steps,
            first_call_ms,
            load_ms: cfg.starts.first_start_ms,
            first_start_ms: cfg.starts.first_start_ms,
            first_start_engine_cache: cfg.starts.first_start_engine_cache,
            warm_start_ms: cfg.starts.warm_start_ms,
            peak_rss_mb: peak_rss_mb(),
            placements: cfg.starts.placements.clone(),
            runtime_library: cfg.runtime_library.clone(),
            cache_memory,
        }
    }
}

/// Times one episode fed the same observation: each timed chunk is the `select_action` call
/// that predicts it (for LingBot-VA that includes feeding the executed chunk and keyframes back
/// into the KV cache). The first chunk (prompt encoding, graph planning) is `first_call_ms`.
pub fn run_bench(
    policy: &dyn PolicyRunner,
    observation: &Observation,
    cfg: &BenchConfig,
    mut on_iter: impl FnMut(usize, usize),
) -> Result<BenchReport, PolicyError> {
    let mut episode = policy.start_episode(Noise::Seeded(0));
    let first_call_ms = next_chunk_ms(episode.as_mut(), observation)?;
    for _ in 0..cfg.warmup {
        next_chunk_ms(episode.as_mut(), observation)?;
    }
    episode.take_timings();
    let iters = cfg.iters.max(1);
    let mut samples = Samples::default();
    for i in 0..iters {
        let ms = next_chunk_ms(episode.as_mut(), observation)?;
        samples.record(ms, episode.take_timings());
        on_iter(i + 1, iters);
    }
    Ok(samples.report(
        policy.manifest(),
        cfg,
        first_call_ms,
        policy.actions_per_chunk(),
        episode.cache_memory(),
    ))
}

/// Calls `select_action` until one predicts a chunk; the milliseconds of that call.
fn next_chunk_ms(
    episode: &mut dyn PolicyEpisode,
    observation: &Observation,
) -> Result<f64, PolicyError> {
    loop {
        let t = Instant::now();
        if episode.select_action(observation)?.predicted {
            return Ok(t.elapsed().as_secs_f64() * 1e3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{percentile, EngineCacheSummary};
    use crate::backend::tensorrt_cache::EngineCache;
    use crate::backend::Placement;

    fn placed(engine_cache: Option<EngineCache>) -> Placement {
        Placement {
            graph: "vision.onnx".into(),
            provider: "TensorrtExecutionProvider".into(),
            fallbacks: vec![],
            engine_cache,
        }
    }

    #[test]
    fn the_engine_cache_summary_says_whether_every_engine_was_cached() {
        use EngineCache::{Empty, Populated};
        assert_eq!(EngineCacheSummary::of(&[]), EngineCacheSummary::NotUsed);
        assert_eq!(
            EngineCacheSummary::of(&[placed(None)]),
            EngineCacheSummary::NotUsed
        );
        assert_eq!(
            EngineCacheSummary::of(&[placed(Some(Empty)), placed(None)]),
            EngineCacheSummary::Empty
        );
        assert_eq!(
            EngineCacheSummary::of(&[placed(Some(Populated)), placed(Some(Populated))]),
            EngineCacheSummary::Populated
        );
        assert_eq!(
            EngineCacheSummary::of(&[placed(Some(Populated)), placed(Some(Empty))]),
            EngineCacheSummary::Mixed
        );
    }

    #[test]
    fn percentile_interpolates_between_ranks() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&v, 50.0), 3.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 5.0);
        assert!((percentile(&v, 90.0) - 4.6).abs() < 1e-12);
    }
}
