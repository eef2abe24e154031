//! The DexVLA pipeline: three camera frames and the task → Qwen2-VL vision → greedy reasoning
//! on the text graph's key/value cache (or, for TinyVLA, the prompt alone) → the condition
//! (FiLM fusion, ScaleDP's combine with the state) → DDIM over ScaleDP steps → unnormalized
//! actions.

pub mod generation;
pub mod images;
mod policy;

use super::{
    check_prompt_tokens, ensure_finite, post_process, Observation, PolicyError, Prediction,
    Reasoning, StageTimings,
};
use crate::backend::{Backend, GraphSession, InputRange, ShapeProfile, Tensor, TensorValue};
use crate::manifest::Manifest;
use crate::preprocess::{prompt, tokenize};
use crate::sampler::{Ddim, DdimConfig, Sampler};
use generation::{Prompt, TextModel};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use vjx_format::dexvla::{roles, DexVlaSpec, Fusion};
use vjx_graphs::dexvla::{condition as condition_io, scaledp as step_io};
use vjx_graphs::qwen2_vl::text as text_io;
use vjx_graphs::qwen2_vl::Qwen2VlConfig;
use vjx_graphs::qwen3_vl::{vision as vision_io, vision_inputs, VisionConfig};

/// The name of the DDIM start in given noise.
pub const NOISE: &str = "actions";

pub struct DexVlaPolicy {
    manifest: Manifest,
    spec: DexVlaSpec,
    backbone: Qwen2VlConfig,
    tower: VisionConfig,
    vision: Box<dyn GraphSession>,
    text: Box<dyn GraphSession>,
    condition: Box<dyn GraphSession>,
    step: Box<dyn GraphSession>,
    tokenizer: tokenize::PolicyTokenizer,
    chat_template: String,
    /// The longest prompt the text graph's shape profile admits.
    max_prompt_tokens: usize,
}

/// The export's files besides its graphs, parsed.
struct ExportFiles {
    backbone: Qwen2VlConfig,
    tokenizer: tokenize::PolicyTokenizer,
    chat_template: String,
}

impl ExportFiles {
    fn read(dir: &Path, spec: &DexVlaSpec) -> Result<Self, PolicyError> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path)
                .map_err(|e| PolicyError::Other(format!("{}: {e}", path.display())))
        };
        let parse_error = |file: &str, e: serde_json::Error| {
            PolicyError::Other(format!("{}: {e}", dir.join(file).display()))
        };
        let backbone = serde_json::from_str(&read(&spec.backbone_config_file)?)
            .map_err(|e| parse_error(&spec.backbone_config_file, e))?;
        Ok(ExportFiles {
            backbone,
            tokenizer: tokenize::PolicyTokenizer::load(&dir.join(&spec.tokenizer_file))?,
            chat_template: read(&spec.chat_template_file)?,
        })
    }
}

/// Extra prompt tokens a task may add to the default-length prompt within the text graph's
/// shape profile.
const PROMPT_TOKEN_SLACK: usize = 192;

/// TensorRT shape ranges: the vision graph at the cameras' exact patch counts; the text graph
/// from one decode row up to the prompt plus [`PROMPT_TOKEN_SLACK`], with caches up to that
/// plus the generation limit; the condition graph over the same prompt lengths and up to the
/// generation limit of reasoning rows.
fn shape_profiles(
    spec: &DexVlaSpec,
    files: &ExportFiles,
) -> Result<BTreeMap<String, ShapeProfile>, PolicyError> {
    let frames: Vec<_> = spec
        .cameras
        .iter()
        .map(|c| {
            let (h, w) = (
                c.shape.get(1).copied().unwrap_or(240),
                c.shape.get(2).copied().unwrap_or(320),
            );
            crate::preprocess::image::ImageF32::zeros((3, h, w))
        })
        .collect();
    let (_, vision) = images::prepare(&frames, spec.eval_crop.as_ref(), &spec.image)?;
    let patches: Vec<usize> = vision
        .image_grid_thw
        .rows()
        .into_iter()
        .map(|g| (g[0] * g[1] * g[2]) as usize)
        .collect();
    let (pmin, pmax) = (
        *patches.iter().min().unwrap_or(&1),
        *patches.iter().max().unwrap_or(&1),
    );
    let range = |name: &str, min: Vec<usize>, opt: Vec<usize>, max: Vec<usize>| InputRange {
        name: name.into(),
        min,
        opt,
        max,
    };
    let (patch_dim, vhd) = (
        vision.pixel_values.ncols(),
        files.backbone.tower().head_dim(),
    );
    let mut vision_ranges = vec![range(
        vision_io::PIXEL_VALUES,
        vec![pmin, patch_dim],
        vec![pmax, patch_dim],
        vec![pmax, patch_dim],
    )];
    for name in [vision_io::ROPE_COS, vision_io::ROPE_SIN] {
        vision_ranges.push(range(
            name,
            vec![pmin, vhd],
            vec![pmax, vhd],
            vec![pmax, vhd],
        ));
    }

    let cfg = &files.backbone;
    let merge = spec.image.merge_size * spec.image.merge_size;
    let image_rows: usize = patches.iter().map(|p| p / merge).sum();
    let chat = prompt::render_chat(&files.chat_template, spec.cameras.len(), "")?;
    let tokens: Vec<usize> = patches.iter().map(|p| p / merge).collect();
    let prompt_len = files.tokenizer.encode_chat(&chat, &tokens)?.len();
    let longest = prompt_len + PROMPT_TOKEN_SLACK;
    let generated = spec.generation.as_ref().map_or(0, |g| g.max_new_tokens);
    let (hidden, hd, kv) = (cfg.hidden_size, cfg.head_dim(), cfg.num_key_value_heads);
    let mut text = vec![];
    for name in [text_io::INPUT_IDS, text_io::IMAGE_ROW_INDEX] {
        text.push(range(name, vec![1], vec![prompt_len], vec![longest]));
    }
    for name in [text_io::ROPE_COS, text_io::ROPE_SIN] {
        text.push(range(
            name,
            vec![1, hd],
            vec![prompt_len, hd],
            vec![longest, hd],
        ));
    }
    text.push(range(
        text_io::ATTENTION_BIAS,
        vec![1, 1],
        vec![prompt_len, prompt_len],
        vec![longest, longest + generated],
    ));
    text.push(range(
        text_io::IMAGE_EMBEDS,
        vec![0, hidden],
        vec![image_rows, hidden],
        vec![image_rows, hidden],
    ));
    for layer in 0..cfg.num_hidden_layers {
        for name in [
            text_io::past_key_name(layer),
            text_io::past_value_name(layer),
        ] {
            text.push(range(
                &name,
                vec![kv, 0, hd],
                vec![kv, 0, hd],
                vec![kv, longest + generated, hd],
            ));
        }
    }
    let mut condition = vec![range(
        condition_io::PROMPT_HIDDEN,
        vec![1, hidden],
        vec![prompt_len, hidden],
        vec![longest, hidden],
    )];
    if spec.fusion == Fusion::Film {
        condition.push(range(
            condition_io::REASONING_HIDDEN,
            vec![1, hidden],
            vec![generated.clamp(1, 16), hidden],
            vec![generated.max(1), hidden],
        ));
    }
    let profile = |inputs| ShapeProfile { inputs };
    Ok(BTreeMap::from([
        (roles::VISION.to_string(), profile(vision_ranges)),
        (roles::TEXT.to_string(), profile(text)),
        (roles::CONDITION.to_string(), profile(condition)),
    ]))
}

/// The profiles [`DexVlaPolicy::load`] gives the vision, text and condition graphs, by role.
pub(crate) fn shape_profiles_by_role(
    dir: &Path,
    spec: &DexVlaSpec,
) -> Result<BTreeMap<String, ShapeProfile>, PolicyError> {
    shape_profiles(spec, &ExportFiles::read(dir, spec)?)
}

impl DexVlaPolicy {
    pub fn load(
        dir: &Path,
        manifest: Manifest,
        spec: DexVlaSpec,
        backend: &dyn Backend,
    ) -> Result<Self, PolicyError> {
        let files = ExportFiles::read(dir, &spec)?;
        let profiles = shape_profiles(&spec, &files)?;
        let graph = |role: &str| manifest.graph_path(dir, role);
        let vision = backend.load_profiled(&graph(roles::VISION)?, &profiles[roles::VISION])?;
        let text = backend.load_profiled(&graph(roles::TEXT)?, &profiles[roles::TEXT])?;
        let condition =
            backend.load_profiled(&graph(roles::CONDITION)?, &profiles[roles::CONDITION])?;
        let step = backend.load(&graph(roles::DIFFUSION_STEP)?)?;
        let max_prompt_tokens = profiles[roles::TEXT]
            .inputs
            .iter()
            .find(|r| r.name == text_io::INPUT_IDS)
            .map_or(usize::MAX, |r| r.max[0]);
        let ExportFiles {
            backbone,
            tokenizer,
            chat_template,
        } = files;
        Ok(DexVlaPolicy {
            tower: backbone.tower(),
            manifest,
            spec,
            backbone,
            vision,
            text,
            condition,
            step,
            tokenizer,
            chat_template,
            max_prompt_tokens,
        })
    }

    fn check_observation(&self, obs: &Observation) -> Result<(), PolicyError> {
        obs.check_cameras(&self.camera_keys())?;
        obs.check_state(self.spec.state_dim)?;
        if obs.task.is_none() {
            return Err(PolicyError::Input(
                "DexVLA needs the task instruction: pass --task".into(),
            ));
        }
        Ok(())
    }

    fn camera_keys(&self) -> Vec<&str> {
        self.spec.cameras.iter().map(|c| c.key.as_str()).collect()
    }

    /// Runs the vision graph once per image; the merged rows of all images in camera order.
    fn encode_images(
        &self,
        pixel_values: &[f32],
        patch_dim: usize,
        grids: &[[usize; 3]],
    ) -> Result<Vec<f32>, PolicyError> {
        let mut embeds = Vec::new();
        let mut offset = 0;
        let hd = self.tower.head_dim();
        for grid in grids {
            let n = grid[0] * grid[1] * grid[2];
            let rows = pixel_values[offset * patch_dim..(offset + n) * patch_dim].to_vec();
            offset += n;
            let tables = vision_inputs::vision_inputs(&self.tower, *grid);
            let inputs = [
                (vision_io::PIXEL_VALUES, &Tensor::f32(&[n, patch_dim], rows)),
                (vision_io::ROPE_COS, &Tensor::f32(&[n, hd], tables.rope_cos)),
                (vision_io::ROPE_SIN, &Tensor::f32(&[n, hd], tables.rope_sin)),
            ];
            let mut out = self.vision.run(&inputs)?;
            let image_embeds = out.take_f32(vision_io::IMAGE_EMBEDS)?;
            ensure_finite("vision_embeds", &image_embeds)?;
            embeds.extend(image_embeds);
        }
        Ok(embeds)
    }

    /// The DDIM start `[chunk_size, action_dim]`, named [`NOISE`] in given noise.
    pub fn noise_shape(&self) -> [usize; 2] {
        [self.spec.chunk_size, self.spec.action_dim]
    }

    /// One chunk from `obs`, DDIM starting at `noise` (`[chunk_size, action_dim]`).
    pub fn predict_chunk(
        &self,
        obs: &Observation,
        noise: ndarray::ArrayD<f32>,
        keep: bool,
    ) -> Result<Prediction, PolicyError> {
        let spec = &self.spec;
        let (chunk, adim, hidden) = (spec.chunk_size, spec.action_dim, self.backbone.hidden_size);
        self.check_observation(obs)?;
        let mut timings: StageTimings = Vec::new();
        let mut dump: BTreeMap<String, TensorValue> = BTreeMap::new();
        let rows = |v: &[f32], w: usize| TensorValue::f32(&[v.len() / w.max(1), w], v.to_vec());

        let t = Instant::now();
        let frames = obs.camera_frames(&self.camera_keys())?;
        let (eval_frames, vision) = images::prepare(&frames, spec.eval_crop.as_ref(), &spec.image)?;
        let grids: Vec<[usize; 3]> = vision
            .image_grid_thw
            .rows()
            .into_iter()
            .map(|r| [r[0] as usize, r[1] as usize, r[2] as usize])
            .collect();
        let merge = spec.image.merge_size * spec.image.merge_size;
        let tokens_per_image: Vec<usize> =
            grids.iter().map(|g| g[0] * g[1] * g[2] / merge).collect();
        let task = obs.task.as_deref().unwrap_or_default();
        prompt::check_task(task, &prompt::VISION_PLACEHOLDERS)?;
        let chat = prompt::render_chat(&self.chat_template, spec.cameras.len(), task)?;
        let input_ids = self.tokenizer.encode_chat(&chat, &tokens_per_image)?;
        check_prompt_tokens(input_ids.len(), self.max_prompt_tokens, task)?;
        let patch_dim = vision.pixel_values.ncols();
        let pixel_values = vision.pixel_values.as_slice().expect("standard layout");
        timings.push(("preprocess".into(), ms(t)));

        let t = Instant::now();
        let image_embeds = self.encode_images(pixel_values, patch_dim, &grids)?;
        timings.push(("vision".into(), ms(t)));

        let text = TextModel {
            session: self.text.as_ref(),
            config: &self.backbone,
            merge_size: spec.image.merge_size,
        };
        let prompt = Prompt {
            input_ids: &input_ids,
            image_embeds: &image_embeds,
            image_grids: &grids,
        };
        let (prompt_hidden, generated) = match &spec.generation {
            Some(generation) => {
                let out =
                    text.generate(&prompt, generation.max_new_tokens, generation.eos_token_id)?;
                timings.push(("prefill".into(), out.prefill_ms));
                // One entry per token: `vjx bench` reports ms per token and tokens per chunk.
                timings.extend(
                    out.decode_ms
                        .iter()
                        .map(|&t| ("decode_token".to_string(), t)),
                );
                (out.prompt_hidden.clone(), Some(out))
            }
            None => {
                let t = Instant::now();
                let positions = generation::sequential_positions(input_ids.len());
                let hidden_rows = text.prefill_hidden(&prompt, &positions)?;
                timings.push(("prefill".into(), ms(t)));
                (hidden_rows, None)
            }
        };
        let reasoning = generated
            .as_ref()
            .map(|out| {
                let text = self.decode_reasoning(&out.token_ids)?;
                Ok::<_, PolicyError>(Reasoning {
                    text,
                    tokens: out.token_ids.len(),
                    stop: out.stop,
                })
            })
            .transpose()?;

        let t = Instant::now();
        let mut state = obs.state.clone().expect("checked");
        if let Some(norm) = &self.manifest.normalization.state {
            norm.normalize(&mut state);
        }
        let prompt_rows = prompt_hidden.len() / hidden;
        let mut condition_inputs = vec![
            (
                condition_io::PROMPT_HIDDEN,
                Tensor::f32(&[prompt_rows, hidden], prompt_hidden.clone()),
            ),
            (
                condition_io::STATE,
                Tensor::f32(&[state.len()], state.clone()),
            ),
        ];
        if spec.fusion == Fusion::Film {
            let out = generated.as_ref().expect("FiLM exports generate");
            let reasoning_rows = out.reasoning_hidden.len() / hidden;
            if reasoning_rows == 0 {
                return Err(PolicyError::Other(
                    "the reasoning ended at its first token (`<|im_end|>`): FiLM would average \
                     zero reasoning states, which upstream turns into NaN actions"
                        .into(),
                ));
            }
            condition_inputs.push((
                condition_io::REASONING_HIDDEN,
                Tensor::f32(&[reasoning_rows, hidden], out.reasoning_hidden.clone()),
            ));
        }
        let named: Vec<(&str, &Tensor)> = condition_inputs.iter().map(|(n, v)| (*n, v)).collect();
        let mut out = self.condition.run(&named)?;
        let fused = out.take_f32(condition_io::CONDITION)?;
        ensure_finite("film_condition", &fused)?;
        let head_condition = out.take(condition_io::HEAD_CONDITION)?;
        timings.push(("condition".into(), ms(t)));

        let sampler = Ddim::new(
            DdimConfig {
                num_train_timesteps: spec.ddim.num_train_timesteps,
                ..DdimConfig::default()
            },
            spec.ddim.num_inference_steps,
        );
        let timesteps: Vec<i64> = sampler
            .integer_timesteps()
            .iter()
            .map(|&t| t as i64)
            .collect();
        let mut x = noise.into_raw_vec_and_offset().0;
        let mut epsilons = Vec::with_capacity(timesteps.len());
        let mut samples = Vec::with_capacity(timesteps.len());
        for (k, &timestep) in timesteps.iter().enumerate() {
            let t = Instant::now();
            let sample = Tensor::f32(&[chunk, adim], x.clone());
            let timestep = Tensor::i64(&[1], vec![timestep]);
            let mut out = self.step.run(&[
                (step_io::SAMPLE, &sample),
                (step_io::TIMESTEP, &timestep),
                (step_io::HEAD_CONDITION, &head_condition),
            ])?;
            let epsilon = out.take_f32(step_io::EPSILON)?.into_raw_vec_and_offset().0;
            ensure_finite(&format!("epsilon_step{k}"), &epsilon)?;
            sampler.step(k, &mut x, &epsilon);
            timings.push(("diffusion_step".into(), ms(t)));
            if keep {
                epsilons.push(epsilon);
                samples.push(x.clone());
            }
        }

        let t = Instant::now();
        let (actions_normalized, actions) =
            post_process(&self.manifest, x, adim, obs.state.as_deref())?;
        timings.push(("postprocess".into(), ms(t)));

        if keep {
            for (i, frame) in eval_frames.iter().enumerate() {
                let (h, w, c) = frame.dim();
                let values = frame.iter().map(|&v| f32::from(v)).collect();
                dump.insert(
                    format!("camera_{i}_eval"),
                    TensorValue::f32(&[h, w, c], values),
                );
            }
            dump.insert("pixel_values".into(), rows(pixel_values, patch_dim));
            let grid_flat: Vec<i64> = grids.iter().flatten().map(|&g| g as i64).collect();
            dump.insert(
                "image_grid_thw".into(),
                TensorValue::i64(&[grids.len(), 3], grid_flat),
            );
            dump.insert(
                "input_ids".into(),
                TensorValue::i64(&[input_ids.len()], input_ids.clone()),
            );
            let positions = match &generated {
                Some(out) => out.position_ids.clone(),
                None => generation::sequential_positions(input_ids.len()),
            };
            let seq = input_ids.len();
            dump.insert(
                "position_ids".into(),
                TensorValue::i64(&[3, seq], positions.concat()),
            );
            dump.insert("vision_embeds".into(), rows(&image_embeds, hidden));
            dump.insert("prompt_hidden".into(), rows(&prompt_hidden, hidden));
            if let Some(out) = &generated {
                dump.insert(
                    "rope_deltas".into(),
                    TensorValue::i64(&[], vec![out.rope_deltas]),
                );
                dump.insert(
                    "generated_ids".into(),
                    TensorValue::i64(&[out.token_ids.len()], out.token_ids.clone()),
                );
                dump.insert(
                    "reasoning_hidden".into(),
                    rows(&out.reasoning_hidden, hidden),
                );
                dump.insert(
                    "first_logits".into(),
                    TensorValue::f32(&[out.first_logits.len()], out.first_logits.clone()),
                );
            }
            let fused: Vec<f32> = fused.iter().copied().collect();
            match spec.fusion {
                Fusion::Film => {
                    dump.insert("film_condition".into(), TensorValue::f32(&[hidden], fused));
                }
                // What the head reads (LayerNormed when it was built for TinyVLA), and the
                // plain mean of the prompt rows before it.
                Fusion::MeanPool => {
                    dump.insert("tinyvla_norm".into(), TensorValue::f32(&[hidden], fused));
                    let mut mean = vec![0f64; hidden];
                    for row in prompt_hidden.chunks(hidden) {
                        mean.iter_mut()
                            .zip(row)
                            .for_each(|(m, &v)| *m += f64::from(v));
                    }
                    let mean = mean
                        .iter()
                        .map(|m| (m / prompt_rows as f64) as f32)
                        .collect();
                    dump.insert("film_condition".into(), TensorValue::f32(&[hidden], mean));
                }
            }
            dump.insert(
                "state_normalized".into(),
                TensorValue::f32(&[state.len()], state),
            );
            dump.insert("head_condition".into(), head_condition.to_host()?);
            dump.insert(
                "timesteps".into(),
                TensorValue::i64(&[timesteps.len()], timesteps.clone()),
            );
            for (k, (epsilon, sample)) in epsilons.iter().zip(&samples).enumerate() {
                dump.insert(format!("epsilon_step{k}"), rows(epsilon, adim));
                dump.insert(format!("sample_step{k}"), rows(sample, adim));
            }
            dump.insert("actions_normalized".into(), rows(&actions_normalized, adim));
            dump.insert("actions".into(), rows(&actions, adim));
        }
        Ok(Prediction {
            actions,
            actions_normalized,
            chunk_size: chunk,
            action_dim: adim,
            timings_ms: timings,
            intermediates: dump,
            reasoning,
        })
    }

    /// The generated text as upstream's evaluation decodes it: special tokens kept (the final
    /// `<|im_end|>` included), surrounding whitespace trimmed.
    fn decode_reasoning(&self, ids: &[i64]) -> Result<String, PolicyError> {
        let ids: Vec<u32> = ids.iter().map(|&id| id as u32).collect();
        let text = self
            .tokenizer
            .tokenizer()
            .decode(&ids, false)
            .map_err(|e| PolicyError::Other(format!("decoding the reasoning: {e}")))?;
        Ok(text.trim().to_string())
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
