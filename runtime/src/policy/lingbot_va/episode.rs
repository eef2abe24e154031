//! One rollout of LingBot-VA, as upstream `select_action` / `predict_action_chunk` run it:
//! the first observation conditions chunk 0; every later observation that ends a sub-step
//! group is buffered as a keyframe; when the action queue runs dry the buffered keyframes
//! and the executed chunk are written into the KV cache, then the next chunk is predicted
//! (a video denoising loop, then an action denoising loop, both attending to the cache).

use super::actions::{select_used_channels, zero_unused_channels, UsedChannels};
use super::camera;
use super::kv_cache::{CacheUpdate, SlotCache};
use super::vae_stream::VaeStream;
use super::LingbotVaPolicy;
use crate::backend::{GraphSession, Tensor};
use crate::normalization::apply_post_steps;
use crate::policy::{ensure_finite, Noise, Observation, PolicyError, StageTimings, Step};
use crate::preprocess::image::ImageF32;
use crate::sampler::FlowMatchScheduler;
use ndarray::{s, Array3, Array5, ArrayD, Axis, Ix3, Ix5};
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;
use vjx_graphs::lingbot_va::rope::{action_grid, rope_tables, video_grid};
use vjx_graphs::lingbot_va::transformer::{
    cache_key_name, cache_value_name, cross_key_name, cross_value_name, updated_key_name,
    updated_value_name, CACHE_BIAS, CACHE_SLOTS, NOISY_ACTIONS, NOISY_LATENTS, ROPE_COS, ROPE_SIN,
    TEXT_EMBEDS, TIMESTEPS, VELOCITY,
};
use vjx_graphs::lingbot_va::CameraLayout;

/// One call's action: `(action, action_normalized)`.
type ActionRow = (Vec<f32>, Vec<f32>);

/// The names of each chunk's arrays in given noise: video latents `[1, 48, F, h, W]` and
/// actions `[1, action_dim, F, apf, 1]`, in upstream's shapes.
pub const NOISE_LATENTS: &str = "latents";
pub const NOISE_ACTIONS: &str = "actions";

/// Which transformer stream a forward runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Video,
    Action,
}

/// The prompt's conditioning, computed once per episode.
struct Prompt {
    /// `[max_len, d_model]` of the prompt (the negative prompt's is not kept).
    text_embeds: Vec<f32>,
    /// The cross-attention keys and values of every block, `[B, text_len, inner]`, kept in the
    /// backend.
    cross: Vec<(Tensor, Tensor)>,
}

struct Cache {
    slots: SlotCache,
    /// The key and value pools of every block, `[B, cache_size, heads, head_dim]`: host zeros
    /// until the first kept forward, then the backend's values.
    pools: Vec<(Tensor, Tensor)>,
}

impl Cache {
    fn new(blocks: usize, pool_shape: [usize; 4]) -> Self {
        let zeros = || Tensor::from(ArrayD::<f32>::zeros(pool_shape.to_vec()));
        Cache {
            slots: SlotCache::new(pool_shape[1]),
            pools: (0..blocks).map(|_| (zeros(), zeros())).collect(),
        }
    }
}

pub struct Episode<'p> {
    policy: &'p LingbotVaPolicy,
    noise: Noise,
    used: UsedChannels,
    // select_action state
    started: bool,
    queue: VecDeque<(Vec<f32>, Vec<f32>)>,
    keyframes: Vec<Vec<ImageF32>>,
    exec_step: usize,
    prev_sub_step: usize,
    // predict_action_chunk state
    prompt: Option<Prompt>,
    /// One VAE state, or two for robotwin_tshape (head, then the wrists at half size).
    vae: Vec<VaeStream>,
    cache: Option<Cache>,
    frame_start: usize,
    init_latent: Option<Array5<f32>>,
    /// The last chunk in model space `[action_dim, F, apf]`, fed back with the keyframes.
    executed: Option<Array3<f32>>,
    chunks: usize,
    timings: StageTimings,
    keep_intermediates: bool,
    intermediates: BTreeMap<String, ArrayD<f32>>,
    /// Each chunk's predicted clean latents `[1, z, F, h, W]`, when kept for decoding.
    predicted_latents: Option<Vec<Array5<f32>>>,
}

fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// Repeats a `[1, ...]` array to `[batch, ...]`.
fn repeat_batch(x: &ArrayD<f32>, batch: usize) -> ArrayD<f32> {
    let views: Vec<_> = (0..batch).map(|_| x.view()).collect();
    ndarray::concatenate(Axis(0), &views).expect("equal shapes")
}

impl<'p> Episode<'p> {
    pub(super) fn new(policy: &'p LingbotVaPolicy, noise: Noise) -> Self {
        let cfg = policy.config();
        let used = UsedChannels::new(cfg.used_action_channel_ids.clone(), cfg.action_dim)
            .expect("config checked the used channels");
        let vae_states = match cfg.camera_layout {
            CameraLayout::RobotwinTshape => 2,
            CameraLayout::WidthConcat => 1,
        };
        Episode {
            policy,
            noise,
            used,
            started: false,
            queue: VecDeque::new(),
            keyframes: Vec::new(),
            exec_step: 0,
            prev_sub_step: 0,
            prompt: None,
            vae: (0..vae_states).map(|_| VaeStream::default()).collect(),
            cache: None,
            frame_start: 0,
            init_latent: None,
            executed: None,
            chunks: 0,
            timings: Vec::new(),
            keep_intermediates: false,
            intermediates: BTreeMap::new(),
            predicted_latents: None,
        }
    }

    /// Keeps the tensors `vjx episode --dump` writes (see [`Self::intermediates`]).
    pub fn keep_intermediates(&mut self, keep: bool) {
        self.keep_intermediates = keep;
    }

    /// Keeps every chunk's predicted latents for [`Self::predicted_latents`].
    pub fn keep_predicted_latents(&mut self, keep: bool) {
        self.predicted_latents = keep.then(Vec::new);
    }

    /// The predicted clean latents of each chunk so far, `[1, z, F, h, W]` (normalized, in the
    /// camera layout), when [`Self::keep_predicted_latents`] asked for them.
    pub fn predicted_latents(&self) -> &[Array5<f32>] {
        self.predicted_latents.as_deref().unwrap_or(&[])
    }

    /// `text_embeds`, and per chunk k `chunk{k}/{vae_latent, video_latents, actions_normalized,
    /// actions}` and the raw velocities `chunk{k}/{video,action}_velocity_{first,last}`.
    pub fn intermediates(&self) -> &BTreeMap<String, ArrayD<f32>> {
        &self.intermediates
    }

    /// Stage timings of the chunks predicted since the last call, in order.
    pub fn take_timings(&mut self) -> StageTimings {
        std::mem::take(&mut self.timings)
    }

    /// Actions still queued from the last chunk.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Chunks predicted so far.
    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// Bytes of the transformer's KV pools and the VAE caches.
    pub fn cache_bytes(&self) -> (usize, usize) {
        let kv = self
            .cache
            .as_ref()
            .map(|c| {
                c.pools
                    .iter()
                    .flat_map(|(k, v)| [k, v])
                    .map(|t| t.shape().iter().product::<usize>() * 4)
                    .sum()
            })
            .unwrap_or(0);
        (kv, self.vae.iter().map(VaeStream::cache_bytes).sum())
    }

    /// Upstream `select_action`: one action per call, predicting a chunk when the queue is empty.
    pub fn select_action(&mut self, obs: &Observation) -> Result<Step, PolicyError> {
        let cfg = self.policy.config();
        let mut predicted = false;
        if !self.started {
            let frames = self.frames(obs)?;
            self.ensure_prompt(obs.task.as_deref().unwrap_or(""))?;
            let chunk = self.predict_chunk(Some(frames))?;
            self.queue.extend(chunk);
            self.keyframes.clear();
            self.exec_step = 0;
            self.started = true;
            predicted = true;
        } else {
            let stride = (cfg.action_per_frame / 4).max(1);
            if (self.prev_sub_step + 1).is_multiple_of(stride) {
                let frames = self.frames(obs)?;
                self.keyframes.push(frames);
            }
            if self.queue.is_empty() {
                let chunk = self.predict_chunk(None)?;
                self.queue.extend(chunk);
                self.exec_step = 0;
                predicted = true;
            }
        }
        self.prev_sub_step = self.exec_step % cfg.action_per_frame;
        self.exec_step += 1;
        let (action, action_normalized) = self
            .queue
            .pop_front()
            .expect("a predicted chunk has actions");
        Ok(Step {
            action,
            action_normalized,
            predicted,
        })
    }

    /// The camera frames of `obs` in `obs_cam_keys` order, checked.
    fn frames(&self, obs: &Observation) -> Result<Vec<ImageF32>, PolicyError> {
        let keys: Vec<&str> = self
            .policy
            .config()
            .obs_cam_keys
            .iter()
            .map(String::as_str)
            .collect();
        obs.camera_frames(&keys)
    }

    fn ensure_prompt(&mut self, task: &str) -> Result<(), PolicyError> {
        if self.prompt.is_some() {
            return Ok(());
        }
        let policy = self.policy;
        let cfg = policy.config();
        let start = Instant::now();
        let text_embeds = policy.encode_text(task)?;
        let mut rows = text_embeds.clone();
        if cfg.use_cfg() {
            rows.extend(policy.encode_text(&policy.spec().negative_prompt)?);
        }
        self.timings
            .push(("text_encoder".into(), elapsed_ms(start)));
        let start = Instant::now();
        let batch = cfg.batch_size();
        let len = cfg.max_sequence_length;
        let dim = text_embeds.len() / len;
        let mut outputs = policy
            .sessions()
            .text_condition
            .run(&[(TEXT_EMBEDS, &Tensor::f32(&[batch, len, dim], rows))])?;
        let cross = (0..cfg.num_layers)
            .map(|i| {
                Ok((
                    outputs.take(&cross_key_name(i))?,
                    outputs.take(&cross_value_name(i))?,
                ))
            })
            .collect::<Result<Vec<_>, PolicyError>>()?;
        self.timings
            .push(("text_condition".into(), elapsed_ms(start)));
        if self.keep_intermediates {
            let embeds =
                ArrayD::from_shape_vec(vec![len, dim], text_embeds.clone()).expect("shape");
            self.intermediates.insert("text_embeds".into(), embeds);
        }
        self.prompt = Some(Prompt { text_embeds, cross });
        Ok(())
    }

    /// The prompt embeddings `[max_len, d_model]` once the first call has run.
    pub fn text_embeds(&self) -> Option<&[f32]> {
        self.prompt.as_ref().map(|p| p.text_embeds.as_slice())
    }

    /// Upstream `_encode_frames`: VAE-encodes a clip of keyframes (each one frame per camera)
    /// into the normalized observation latent `[1, z, T', h, W]` of the camera layout.
    fn encode_frames(&mut self, clip: &[Vec<ImageF32>]) -> Result<Array5<f32>, PolicyError> {
        let policy = self.policy;
        let cfg = policy.config();
        let sessions = policy.sessions();
        let caches = policy.vae_cache_count();
        let (h, w) = (cfg.height, cfg.width);
        let camera_clip = |cam: usize, size: [usize; 2]| -> Result<Array5<f32>, PolicyError> {
            let views: Vec<_> = clip.iter().map(|frames| frames[cam].view()).collect();
            camera::vae_frames(&views, size, cfg.image_hflip)
                .map_err(|e| PolicyError::Input(e.to_string()))
        };
        let (first, stream) = (
            sessions.vae_encode_first.as_ref(),
            sessions.vae_encode_stream.as_ref(),
        );
        match cfg.camera_layout {
            CameraLayout::WidthConcat => {
                let clips = (0..cfg.obs_cam_keys.len())
                    .map(|cam| camera_clip(cam, [h, w]))
                    .collect::<Result<Vec<_>, _>>()?;
                let batch =
                    camera::stack_cameras(&clips).map_err(|e| PolicyError::Input(e.to_string()))?;
                let latent = self.vae[0].encode(first, stream, caches, batch)?;
                Ok(camera::width_concat(latent.view()))
            }
            CameraLayout::RobotwinTshape => {
                let head = camera_clip(0, [h, w])?;
                let wrists = camera::stack_cameras(&[
                    camera_clip(1, [h / 2, w / 2])?,
                    camera_clip(2, [h / 2, w / 2])?,
                ])
                .map_err(|e| PolicyError::Input(e.to_string()))?;
                let head = self.vae[0].encode(first, stream, caches, head)?;
                let wrists = self.vae[1].encode(first, stream, caches, wrists)?;
                camera::robotwin_tshape(head.view(), wrists.view())
                    .map_err(|e| PolicyError::Other(e.to_string()))
            }
        }
    }

    /// The initial noise of chunk `k` in upstream's shapes, checked.
    fn chunk_noise(&self, k: usize) -> Result<(Array5<f32>, Array3<f32>), PolicyError> {
        let cfg = self.policy.config();
        let (h, w) = cfg.latent_hw();
        let f = cfg.frame_chunk_size;
        let latent_shape = [1, cfg.in_channels, f, h, w];
        let action_shape = [1, cfg.action_dim, f, cfg.action_per_frame, 1];
        let mut arrays = self
            .noise
            .chunk(
                k,
                &[
                    (NOISE_LATENTS, &latent_shape),
                    (NOISE_ACTIONS, &action_shape),
                ],
            )?
            .into_iter();
        let (latents, actions) = (
            arrays.next().expect("latents asked for"),
            arrays.next().expect("actions asked for"),
        );
        let latents = latents.into_dimensionality::<Ix5>().expect("checked shape");
        let actions = actions
            .into_shape_with_order(vec![cfg.action_dim, f, cfg.action_per_frame])
            .expect("checked shape")
            .into_dimensionality::<Ix3>()
            .expect("3-D");
        Ok((latents, actions))
    }

    /// Upstream `predict_action_chunk`: returns the chunk's `(action, action_normalized)` rows.
    fn predict_chunk(
        &mut self,
        frames: Option<Vec<ImageF32>>,
    ) -> Result<Vec<ActionRow>, PolicyError> {
        let cfg = self.policy.config();
        let k = self.chunks;
        let first = self.cache.is_none();
        let (actions, latents) = if first {
            let frames = frames.expect("the first chunk has an observation");
            let start = Instant::now();
            let init = self.encode_frames(&[frames])?;
            self.timings.push(("vae_encode".into(), elapsed_ms(start)));
            self.dump(
                format!("chunk{k}/vae_latent"),
                init.index_axis(Axis(0), 0).to_owned().into_dyn(),
            );
            self.cache = Some(Cache::new(
                cfg.num_layers,
                [
                    cfg.batch_size(),
                    cfg.cache_size(),
                    cfg.num_attention_heads,
                    cfg.attention_head_dim,
                ],
            ));
            self.init_latent = Some(init);
            self.infer(k, true)?
        } else {
            self.feed_back(k)?;
            self.infer(k, false)?
        };
        self.chunks += 1;

        let rows = select_used_channels(actions.view(), &self.used, first)
            .map_err(|e| PolicyError::Other(e.to_string()))?;
        self.executed = Some(actions.clone());
        let n_used = rows.ncols();
        let normalized: Vec<f32> = rows.iter().copied().collect();
        ensure_finite(&format!("chunk{k}/actions_normalized"), &normalized)?;
        let mut unnormalized = normalized.clone();
        let manifest = self.policy.manifest();
        apply_post_steps(
            &manifest.postprocess,
            &manifest.normalization.action,
            &mut unnormalized,
            n_used,
            None,
        );
        ensure_finite(&format!("chunk{k}/actions"), &unnormalized)?;
        self.dump(
            format!("chunk{k}/video_latents"),
            latents.index_axis(Axis(0), 0).to_owned().into_dyn(),
        );
        if let Some(kept) = self.predicted_latents.as_mut() {
            kept.push(latents);
        }
        self.dump(format!("chunk{k}/actions_normalized"), actions.into_dyn());
        let steps = normalized.len() / n_used;
        self.dump(
            format!("chunk{k}/actions"),
            ArrayD::from_shape_vec(vec![steps, n_used], unnormalized.clone()).expect("shape"),
        );
        Ok(unnormalized
            .chunks(n_used)
            .zip(normalized.chunks(n_used))
            .map(|(a, n)| (a.to_vec(), n.to_vec()))
            .collect())
    }

    /// Keeps the raw velocity (every batch row) of a stream's first step and of its last step
    /// whose output is used.
    fn dump_velocity(
        &mut self,
        k: usize,
        stream: &str,
        step: usize,
        last_used: usize,
        velocity: &ArrayD<f32>,
    ) {
        if !self.keep_intermediates {
            return;
        }
        if step == 0 {
            self.dump(
                format!("chunk{k}/{stream}_velocity_first"),
                velocity.clone(),
            );
        }
        if step == last_used {
            self.dump(format!("chunk{k}/{stream}_velocity_last"), velocity.clone());
        }
    }

    fn dump(&mut self, name: String, value: ArrayD<f32>) {
        if self.keep_intermediates {
            self.intermediates.insert(name, value);
        }
    }

    /// Upstream `_compute_kv_cache`: writes the observed keyframes and the executed actions
    /// into the cache as permanent history.
    fn feed_back(&mut self, k: usize) -> Result<(), PolicyError> {
        let keyframes = std::mem::take(&mut self.keyframes);
        let Some(executed) = self.executed.clone() else {
            return Ok(());
        };
        if keyframes.is_empty() {
            return Ok(());
        }
        self.cache
            .as_mut()
            .expect("cache exists after chunk 0")
            .slots
            .clear_pred();
        let start = Instant::now();
        let observed = self.encode_frames(&keyframes)?;
        self.timings.push(("vae_encode".into(), elapsed_ms(start)));
        self.dump(
            format!("chunk{k}/vae_latent"),
            observed.index_axis(Axis(0), 0).to_owned().into_dyn(),
        );
        let latents = match (self.frame_start, &self.init_latent) {
            (0, Some(init)) => {
                ndarray::concatenate(Axis(2), &[init.view(), observed.view()]).expect("same grid")
            }
            _ => observed,
        };
        let mut actions = executed;
        zero_unused_channels(actions.view_mut(), &self.used)
            .map_err(|e| PolicyError::Other(e.to_string()))?;
        let frames = latents.shape()[2];
        let start = Instant::now();
        self.forward(
            Stream::Video,
            latents.into_dyn(),
            &vec![0.0; frames],
            CacheUpdate::KeepObserved,
        )?;
        let action_frames = actions.shape()[1];
        self.forward(
            Stream::Action,
            actions.insert_axis(Axis(0)).into_dyn(),
            &vec![0.0; action_frames],
            CacheUpdate::KeepObserved,
        )?;
        self.timings
            .push(("cache_update".into(), elapsed_ms(start)));
        self.frame_start += frames;
        Ok(())
    }

    /// Upstream `_infer`: the video denoising loop, then the action denoising loop. Returns
    /// the chunk's model-space actions `[action_dim, F, apf]` and clean latents `[1, z, F, h, W]`.
    fn infer(&mut self, k: usize, first: bool) -> Result<(Array3<f32>, Array5<f32>), PolicyError> {
        let cfg = self.policy.config();
        let (mut latents, mut actions) = self.chunk_noise(k)?;
        let frames = cfg.frame_chunk_size;

        let mut video = FlowMatchScheduler::new(cfg.snr_shift);
        video.set_timesteps(cfg.num_inference_steps);
        let mut video_ts = video.timesteps_with_final_zero();
        let exec_limited = cfg.video_exec_step != -1;
        if exec_limited {
            video_ts.truncate(cfg.video_exec_step.max(0) as usize);
        }
        let init = if first {
            self.init_latent.clone()
        } else {
            None
        };
        let pin_frame = |latents: &mut Array5<f32>| {
            if let Some(init) = &init {
                latents
                    .slice_mut(s![.., .., 0..1, .., ..])
                    .assign(&init.slice(s![.., .., 0..1, .., ..]));
            }
        };
        for (i, &t) in video_ts.iter().enumerate() {
            let last = i + 1 == video_ts.len();
            pin_frame(&mut latents);
            let mut frame_t = vec![t; frames];
            if first {
                frame_t[0] = 0.0;
            }
            let update = if last {
                CacheUpdate::KeepPredicted
            } else {
                CacheUpdate::Discard
            };
            let start = Instant::now();
            let velocity =
                self.forward(Stream::Video, latents.clone().into_dyn(), &frame_t, update)?;
            self.dump_velocity(
                k,
                "video",
                i,
                video_ts.len() - if exec_limited { 1 } else { 2 },
                &velocity,
            );
            if !last || exec_limited {
                let v = guide(&velocity, cfg.guidance_scale);
                video.step(latents.as_slice_mut().expect("standard layout"), &v, t);
            }
            pin_frame(&mut latents);
            self.timings.push(("video_step".into(), elapsed_ms(start)));
        }

        let mut action_sched = FlowMatchScheduler::new(cfg.action_snr_shift);
        action_sched.set_timesteps(cfg.action_num_inference_steps);
        let action_ts = action_sched.timesteps_with_final_zero();
        for (i, &t) in action_ts.iter().enumerate() {
            let last = i + 1 == action_ts.len();
            zero_unused_channels(actions.view_mut(), &self.used)
                .map_err(|e| PolicyError::Other(e.to_string()))?;
            let mut frame_t = vec![t; frames];
            if first {
                actions.slice_mut(s![.., 0, ..]).fill(0.0);
                frame_t[0] = 0.0;
            }
            let update = if last {
                CacheUpdate::KeepPredicted
            } else {
                CacheUpdate::Discard
            };
            let start = Instant::now();
            let input = actions.clone().insert_axis(Axis(0)).into_dyn();
            let velocity = self.forward(Stream::Action, input, &frame_t, update)?;
            self.dump_velocity(k, "action", i, action_ts.len() - 2, &velocity);
            if !last {
                let v = guide(&velocity, cfg.action_guidance_scale);
                action_sched.step(actions.as_slice_mut().expect("standard layout"), &v, t);
            }
            if first {
                actions.slice_mut(s![.., 0, ..]).fill(0.0);
            }
            self.timings.push(("action_step".into(), elapsed_ms(start)));
        }
        zero_unused_channels(actions.view_mut(), &self.used)
            .map_err(|e| PolicyError::Other(e.to_string()))?;
        Ok((actions, latents))
    }

    /// One transformer forward of `stream` on `input` (`[1, ...]`, repeated to the CFG batch),
    /// `frame_t` the timestep of each of its frames; updates the KV cache as `update` says and
    /// returns the velocity of every batch row.
    fn forward(
        &mut self,
        stream: Stream,
        input: ArrayD<f32>,
        frame_t: &[f32],
        update: CacheUpdate,
    ) -> Result<ArrayD<f32>, PolicyError> {
        let policy = self.policy;
        let cfg = policy.config();
        let batch = cfg.batch_size();
        let frames = frame_t.len();
        let (grid, per_frame) = match stream {
            Stream::Video => {
                let (h2, w2) = cfg.token_grid();
                (video_grid(self.frame_start, frames, h2, w2), h2 * w2)
            }
            Stream::Action => (
                action_grid(self.frame_start, frames, cfg.action_per_frame),
                cfg.action_per_frame,
            ),
        };
        let tokens = grid.len();
        let (cos, sin) = rope_tables(cfg.attention_head_dim, &grid);
        let half = cfg.attention_head_dim / 2;
        let per_token: Vec<f32> = frame_t
            .iter()
            .flat_map(|&t| std::iter::repeat_n(t, per_frame))
            .collect();
        let timesteps: Vec<f32> = (0..batch).flat_map(|_| per_token.iter().copied()).collect();
        let (session, input_name): (&dyn GraphSession, &str) = match stream {
            Stream::Video => (policy.sessions().video_step.as_ref(), NOISY_LATENTS),
            Stream::Action => (policy.sessions().action_step.as_ref(), NOISY_ACTIONS),
        };
        let input = match stream {
            Stream::Video => input,
            // Upstream's action tensor has a trailing unit axis the graph does not take.
            Stream::Action => {
                let shape = input.shape()[..4].to_vec();
                input
                    .into_shape_with_order(shape)
                    .expect("trailing unit axis")
            }
        };
        let prompt = self
            .prompt
            .as_ref()
            .expect("prompt encoded before the first forward");
        let cache = self
            .cache
            .as_mut()
            .expect("cache created before the first forward");
        let pending = cache
            .slots
            .begin(tokens)
            .map_err(|e| PolicyError::Other(e.to_string()))?;
        let names: Vec<[String; 4]> = (0..cfg.num_layers)
            .map(|i| {
                [
                    cache_key_name(i),
                    cache_value_name(i),
                    cross_key_name(i),
                    cross_value_name(i),
                ]
            })
            .collect();
        let slots: Vec<i64> = pending.slots().iter().map(|&s| s as i64).collect();
        let host = [
            (input_name, Tensor::from(repeat_batch(&input, batch))),
            (TIMESTEPS, Tensor::f32(&[batch, tokens], timesteps)),
            (ROPE_COS, Tensor::f32(&[tokens, half], cos)),
            (ROPE_SIN, Tensor::f32(&[tokens, half], sin)),
            (
                CACHE_BIAS,
                Tensor::f32(&[pending.bias().len()], pending.bias().to_vec()),
            ),
            (CACHE_SLOTS, Tensor::i64(&[tokens], slots)),
        ];
        let mut inputs: Vec<(&str, &Tensor)> = host.iter().map(|(n, t)| (*n, t)).collect();
        for (i, [ck, cv, xk, xv]) in names.iter().enumerate() {
            let (pool_k, pool_v) = &cache.pools[i];
            let (cross_k, cross_v) = &prompt.cross[i];
            inputs.extend([
                (ck.as_str(), pool_k),
                (cv.as_str(), pool_v),
                (xk.as_str(), cross_k),
                (xv.as_str(), cross_v),
            ]);
        }
        let mut outputs = session.run(&inputs)?;
        drop(inputs);
        if pending.finish(update).is_some() {
            for (i, pools) in cache.pools.iter_mut().enumerate() {
                *pools = (
                    outputs.take(&updated_key_name(i))?,
                    outputs.take(&updated_value_name(i))?,
                );
            }
        }
        Ok(outputs.take_f32(VELOCITY)?)
    }
}

/// Classifier-free guidance over the batch rows `[cond, uncond]`: `u + g·(c − u)` when
/// `scale > 1`, else the conditional row.
fn guide(velocity: &ArrayD<f32>, scale: f64) -> Vec<f32> {
    let cond = velocity.index_axis(Axis(0), 0);
    if scale > 1.0 && velocity.shape()[0] > 1 {
        let uncond = velocity.index_axis(Axis(0), 1);
        let g = scale as f32;
        cond.iter()
            .zip(uncond.iter())
            .map(|(&c, &u)| u + g * (c - u))
            .collect()
    } else {
        cond.iter().copied().collect()
    }
}
