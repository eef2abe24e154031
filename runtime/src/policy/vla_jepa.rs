//! The VLA-JEPA pipeline: camera frames → Qwen3-VL vision → text stack (read at the
//! embodied-action rows) → DiT Euler loop → post-processing.

pub mod episode;

use super::{
    check_prompt_tokens, ensure_finite, post_process, Observation, PolicyError, Prediction,
    StageTimings,
};
use crate::backend::{Backend, GraphSession, InputRange, ShapeProfile, Tensor, TensorValue};
use crate::manifest::Manifest;
use crate::preprocess::image::{self as img, ImageF32};
use crate::preprocess::{prompt, qwen_image, tokenize};
use crate::sampler::{EulerFlowMatching, Sampler};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use vjx_format::vla_jepa::{roles, VlaJepaSpec};
use vjx_graphs::qwen3_vl::Qwen3VlConfig;
use vjx_graphs::qwen3_vl::{rope, text as text_io, vision as vision_io, vision_inputs};
use vjx_graphs::vla_jepa::dit as dit_io;

/// The name of the Euler start in given noise.
pub const NOISE: &str = "actions";

pub struct VlaJepaPolicy {
    manifest: Manifest,
    spec: VlaJepaSpec,
    backbone: Qwen3VlConfig,
    vision: Box<dyn GraphSession>,
    text: Box<dyn GraphSession>,
    /// Projects the conditioning into the cross-attention keys/values once per chunk (exports
    /// without it feed the conditioning to every step).
    dit_condition: Option<Box<dyn GraphSession>>,
    dit_step: Box<dyn GraphSession>,
    tokenizer: tokenize::PolicyTokenizer,
    chat_template: String,
    /// The longest prompt the text graph's shape profile admits.
    max_prompt_tokens: usize,
}

/// What preprocessing produced for the graphs.
struct Prepared {
    input_ids: Vec<i64>,
    pixel_values: Vec<f32>,
    patch_dim: usize,
    grids: Vec<[usize; 3]>,
}

/// Camera frames (in camera order) and task → token ids and patches.
fn prepare_frames(
    spec: &VlaJepaSpec,
    tokenizer: &tokenize::PolicyTokenizer,
    chat_template: &str,
    mut frames: Vec<ImageF32>,
    task: Option<&str>,
) -> Result<Prepared, PolicyError> {
    if let Some(size) = spec.resize_images_to {
        for frame in frames.iter_mut() {
            let (_, h, w) = frame.dim();
            if [h, w] != size {
                *frame = img::area_resize(frame.view(), size);
            }
        }
    }
    let views: Vec<_> = frames.iter().map(|f| f.view()).collect();
    let vision = qwen_image::process_images(&views, &spec.image)?;
    let tokens_per_image = vision.tokens_per_image(spec.image.merge_size);
    if let Some(task) = task {
        let mut reserved = prompt::VISION_PLACEHOLDERS.to_vec();
        reserved.push(&spec.prompt.embodied_token);
        prompt::check_task(task, &reserved)?;
    }
    let instruction = prompt::instruction_prompt(&spec.prompt, task)?;
    let chat = prompt::render_chat(chat_template, spec.cameras.len(), &instruction)?;
    let input_ids = tokenizer.encode_chat(&chat, &tokens_per_image)?;
    let grids = vision
        .image_grid_thw
        .rows()
        .into_iter()
        .map(|r| [r[0] as usize, r[1] as usize, r[2] as usize])
        .collect();
    let patch_dim = vision.pixel_values.ncols();
    let (pixel_values, _) = vision.pixel_values.into_raw_vec_and_offset();
    Ok(Prepared {
        input_ids,
        pixel_values,
        patch_dim,
        grids,
    })
}

/// Extra prompt tokens a task may add to (or remove from) the default one within the text
/// graph's shape profile.
const PROMPT_TOKEN_SLACK: (usize, usize) = (48, 192);

/// Shape ranges of the vision and text graphs for cameras at their declared sizes: exact patch
/// counts, and the default prompt's length with [`PROMPT_TOKEN_SLACK`] either way.
fn shape_profiles(
    spec: &VlaJepaSpec,
    backbone: &Qwen3VlConfig,
    tokenizer: &tokenize::PolicyTokenizer,
    chat_template: &str,
) -> Result<(ShapeProfile, ShapeProfile), PolicyError> {
    let frames = spec
        .cameras
        .iter()
        .map(|c| {
            let (h, w) = (
                c.shape.get(1).copied().unwrap_or(224),
                c.shape.get(2).copied().unwrap_or(224),
            );
            ImageF32::zeros((3, h, w))
        })
        .collect();
    let prep = prepare_frames(spec, tokenizer, chat_template, frames, None)?;
    let vcfg = &backbone.vision_config;
    let patches: Vec<usize> = prep.grids.iter().map(|g| g[0] * g[1] * g[2]).collect();
    let (pmin, pmax) = (
        *patches.iter().min().unwrap_or(&1),
        *patches.iter().max().unwrap_or(&1),
    );
    let popt = patches.first().copied().unwrap_or(1);
    let range = |name: &str, min: Vec<usize>, opt: Vec<usize>, max: Vec<usize>| InputRange {
        name: name.into(),
        min,
        opt,
        max,
    };
    let hd = vcfg.head_dim();
    let vision = ShapeProfile {
        inputs: vec![
            range(
                vision_io::PIXEL_VALUES,
                vec![pmin, prep.patch_dim],
                vec![popt, prep.patch_dim],
                vec![pmax, prep.patch_dim],
            ),
            range(
                vision_io::POS_EMBED_INDEX,
                vec![4, pmin],
                vec![4, popt],
                vec![4, pmax],
            ),
            range(
                vision_io::POS_EMBED_WEIGHT,
                vec![4, pmin],
                vec![4, popt],
                vec![4, pmax],
            ),
            range(
                vision_io::ROPE_COS,
                vec![pmin, hd],
                vec![popt, hd],
                vec![pmax, hd],
            ),
            range(
                vision_io::ROPE_SIN,
                vec![pmin, hd],
                vec![popt, hd],
                vec![pmax, hd],
            ),
        ],
    };
    let tcfg = &backbone.text_config;
    let (hidden, thd) = (tcfg.hidden_size, tcfg.head_dim());
    let merge = spec.image.merge_size * spec.image.merge_size;
    let image_rows: usize = patches.iter().map(|p| p / merge).sum();
    let l = prep.input_ids.len();
    let (lmin, lmax) = (
        l.saturating_sub(PROMPT_TOKEN_SLACK.0)
            .max(image_rows + spec.prompt.num_embodied),
        l + PROMPT_TOKEN_SLACK.1,
    );
    let seq = |lo: usize, hi: usize| (vec![lo], vec![l], vec![hi]);
    let mut text = vec![];
    for name in [text_io::INPUT_IDS, text_io::IMAGE_ROW_INDEX] {
        let (a, b, c) = seq(lmin, lmax);
        text.push(range(name, a, b, c));
    }
    for name in [text_io::ROPE_COS, text_io::ROPE_SIN] {
        text.push(range(name, vec![lmin, thd], vec![l, thd], vec![lmax, thd]));
    }
    text.push(range(
        text_io::ATTENTION_BIAS,
        vec![lmin, lmin],
        vec![l, l],
        vec![lmax, lmax],
    ));
    let embeds = vec![image_rows, hidden];
    text.push(range(
        text_io::IMAGE_EMBEDS,
        embeds.clone(),
        embeds.clone(),
        embeds.clone(),
    ));
    for k in 0..vcfg.deepstack_visual_indexes.len() {
        text.push(range(
            &text_io::deepstack_input_name(k),
            embeds.clone(),
            embeds.clone(),
            embeds.clone(),
        ));
    }
    let readout = vec![spec.prompt.num_embodied];
    text.push(range(
        text_io::READOUT_INDEX,
        readout.clone(),
        readout.clone(),
        readout,
    ));
    Ok((vision, ShapeProfile { inputs: text }))
}

/// The profiles [`VlaJepaPolicy::load`] gives the `vision` and `text` graphs, by role.
pub(crate) fn shape_profiles_by_role(
    dir: &Path,
    spec: &VlaJepaSpec,
) -> Result<BTreeMap<String, ShapeProfile>, PolicyError> {
    let files = ExportFiles::read(dir, spec)?;
    let (vision, text) = shape_profiles(
        spec,
        &files.backbone,
        &files.tokenizer,
        &files.chat_template,
    )?;
    Ok(BTreeMap::from([
        (roles::VISION.to_string(), vision),
        (roles::TEXT.to_string(), text),
    ]))
}

/// The export's files besides its graphs, parsed.
struct ExportFiles {
    backbone: Qwen3VlConfig,
    tokenizer: tokenize::PolicyTokenizer,
    chat_template: String,
}

impl ExportFiles {
    fn read(dir: &Path, spec: &VlaJepaSpec) -> Result<Self, PolicyError> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path)
                .map_err(|e| PolicyError::Other(format!("{}: {e}", path.display())))
        };
        let backbone = serde_json::from_str(&read(&spec.backbone_config_file)?).map_err(|e| {
            PolicyError::Other(format!(
                "{}: {e}",
                dir.join(&spec.backbone_config_file).display()
            ))
        })?;
        Ok(ExportFiles {
            backbone,
            tokenizer: tokenize::PolicyTokenizer::load(&dir.join(&spec.tokenizer_file))?,
            chat_template: read(&spec.chat_template_file)?,
        })
    }
}

impl VlaJepaPolicy {
    pub fn load(
        dir: &Path,
        manifest: Manifest,
        spec: VlaJepaSpec,
        backend: &dyn Backend,
    ) -> Result<Self, PolicyError> {
        let ExportFiles {
            backbone,
            tokenizer,
            chat_template,
        } = ExportFiles::read(dir, &spec)?;
        let (vision_profile, text_profile) =
            shape_profiles(&spec, &backbone, &tokenizer, &chat_template)?;
        let graph = |role: &str| manifest.graph_path(dir, role);
        let vision = backend.load_profiled(&graph(roles::VISION)?, &vision_profile)?;
        let text = backend.load_profiled(&graph(roles::TEXT)?, &text_profile)?;
        let dit_condition = match manifest.graphs.contains_key(roles::DIT_CONDITION) {
            true => Some(backend.load(&graph(roles::DIT_CONDITION)?)?),
            false => None,
        };
        let dit_step = backend.load(&graph(roles::DIT_STEP)?)?;
        let max_prompt_tokens = text_profile
            .inputs
            .iter()
            .find(|r| r.name == text_io::INPUT_IDS)
            .map_or(usize::MAX, |r| r.max[0]);
        Ok(VlaJepaPolicy {
            manifest,
            spec,
            backbone,
            vision,
            text,
            dit_condition,
            dit_step,
            tokenizer,
            chat_template,
            max_prompt_tokens,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn check_observation(&self, obs: &Observation) -> Result<(), PolicyError> {
        obs.check_cameras(&self.camera_keys())?;
        if let Some(dim) = self.spec.state_dim {
            obs.check_state(dim)?;
        }
        Ok(())
    }

    fn camera_keys(&self) -> Vec<&str> {
        self.spec.cameras.iter().map(|c| c.key.as_str()).collect()
    }

    fn prepare(&self, obs: &Observation) -> Result<Prepared, PolicyError> {
        let spec = &self.spec;
        let frames = obs.camera_frames(&self.camera_keys())?;
        let task = obs.task.as_deref();
        let prep = prepare_frames(spec, &self.tokenizer, &self.chat_template, frames, task)?;
        check_prompt_tokens(
            prep.input_ids.len(),
            self.max_prompt_tokens,
            task.unwrap_or_default(),
        )?;
        Ok(prep)
    }

    /// Runs the vision graph once per image; returns `(image_embeds, deepstack[k])`, rows of all
    /// images concatenated in camera order.
    fn encode_images(&self, prep: &Prepared) -> Result<(Vec<f32>, Vec<Vec<f32>>), PolicyError> {
        let vcfg = &self.backbone.vision_config;
        let taps = vcfg.deepstack_visual_indexes.len();
        let (mut embeds, mut deepstack) = (Vec::new(), vec![Vec::new(); taps]);
        let mut offset = 0;
        for grid in &prep.grids {
            let n = grid[0] * grid[1] * grid[2];
            let rows =
                prep.pixel_values[offset * prep.patch_dim..(offset + n) * prep.patch_dim].to_vec();
            offset += n;
            let tables = vision_inputs::vision_inputs(vcfg, *grid);
            let hd = vcfg.head_dim();
            let inputs = [
                (
                    vision_io::PIXEL_VALUES,
                    &Tensor::f32(&[n, prep.patch_dim], rows),
                ),
                (
                    vision_io::POS_EMBED_INDEX,
                    &Tensor::i64(&[4, n], tables.pos_embed_index),
                ),
                (
                    vision_io::POS_EMBED_WEIGHT,
                    &Tensor::f32(&[4, n], tables.pos_embed_weight),
                ),
                (vision_io::ROPE_COS, &Tensor::f32(&[n, hd], tables.rope_cos)),
                (vision_io::ROPE_SIN, &Tensor::f32(&[n, hd], tables.rope_sin)),
            ];
            let mut out = self.vision.run(&inputs)?;
            let image_embeds = out.take_f32(vision_io::IMAGE_EMBEDS)?;
            ensure_finite("vision_embeds", &image_embeds)?;
            embeds.extend(image_embeds);
            for (k, acc) in deepstack.iter_mut().enumerate() {
                acc.extend(out.take_f32(&vision_io::deepstack_output_name(k))?);
            }
        }
        Ok((embeds, deepstack))
    }

    fn embodied_hidden(
        &self,
        input_ids: &[i64],
        grids: &[[usize; 3]],
        image_embeds: &[f32],
        deepstack: &[Vec<f32>],
    ) -> Result<(Vec<f32>, usize), PolicyError> {
        let spec = &self.spec;
        let tcfg = &self.backbone.text_config;
        let hidden = tcfg.hidden_size;
        let seq = input_ids.len();
        let image_token = self.backbone.image_token_id;
        let positions =
            rope::mrope_position_ids(input_ids, grids, image_token, spec.image.merge_size);
        let (cos, sin) = rope::mrope_cos_sin(tcfg, &positions);
        let readout: Vec<i64> = input_ids
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == spec.embodied_token_id)
            .map(|(i, _)| i as i64)
            .collect();
        if readout.len() != spec.prompt.num_embodied {
            return Err(PolicyError::Other(format!(
                "prompt has {} embodied-action tokens, expected {}",
                readout.len(),
                spec.prompt.num_embodied
            )));
        }
        let image_rows = image_embeds.len() / hidden;
        let hd = tcfg.head_dim();
        let mut inputs = vec![
            (
                text_io::INPUT_IDS.to_string(),
                Tensor::i64(&[seq], input_ids.to_vec()),
            ),
            (
                text_io::IMAGE_EMBEDS.to_string(),
                Tensor::f32(&[image_rows, hidden], image_embeds.to_vec()),
            ),
            (
                text_io::IMAGE_ROW_INDEX.to_string(),
                Tensor::i64(&[seq], rope::image_row_index(input_ids, image_token)),
            ),
            (text_io::ROPE_COS.to_string(), Tensor::f32(&[seq, hd], cos)),
            (text_io::ROPE_SIN.to_string(), Tensor::f32(&[seq, hd], sin)),
            (
                text_io::ATTENTION_BIAS.to_string(),
                Tensor::f32(&[seq, seq], rope::causal_bias(seq)),
            ),
            (
                text_io::READOUT_INDEX.to_string(),
                Tensor::i64(&[readout.len()], readout.clone()),
            ),
        ];
        for (k, ds) in deepstack.iter().enumerate() {
            inputs.push((
                text_io::deepstack_input_name(k),
                Tensor::f32(&[image_rows, hidden], ds.clone()),
            ));
        }
        let named: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, v)| (n.as_str(), v)).collect();
        let mut out = self.text.run(&named)?;
        let hidden = out.take_f32(text_io::READOUT_HIDDEN)?;
        ensure_finite("embodied_hidden", &hidden)?;
        Ok((hidden.into_raw_vec_and_offset().0, readout.len()))
    }

    /// The Euler start `[chunk_size, action_dim]` is named [`NOISE`] in given noise.
    pub fn noise_shape(&self) -> [usize; 2] {
        [self.spec.chunk_size, self.spec.action_dim]
    }

    /// One chunk from `obs`, the Euler loop starting at `noise` (`[chunk_size, action_dim]`).
    pub fn predict_chunk(
        &self,
        obs: &Observation,
        noise: ndarray::ArrayD<f32>,
        keep: bool,
    ) -> Result<Prediction, PolicyError> {
        let spec = &self.spec;
        let (chunk, adim) = (spec.chunk_size, spec.action_dim);
        self.check_observation(obs)?;
        let mut x = noise.into_raw_vec_and_offset().0;
        let mut timings: StageTimings = Vec::new();
        let mut dump = BTreeMap::new();

        let t = Instant::now();
        let prep = self.prepare(obs)?;
        timings.push(("preprocess".into(), ms(t)));

        let t = Instant::now();
        let (image_embeds, deepstack) = self.encode_images(&prep)?;
        timings.push(("vision".into(), ms(t)));

        let t = Instant::now();
        let (cond, cond_rows) =
            self.embodied_hidden(&prep.input_ids, &prep.grids, &image_embeds, &deepstack)?;
        timings.push(("text".into(), ms(t)));
        let cond_dim = cond.len() / cond_rows;

        let state = match (spec.state_dim, &obs.state) {
            (Some(_), Some(raw)) => {
                let mut s = raw.clone();
                if let Some(norm) = &self.manifest.normalization.state {
                    norm.normalize(&mut s);
                }
                Some(s)
            }
            _ => None,
        };

        let conditioning = Tensor::f32(&[cond_rows, cond_dim], cond.clone());
        let step_context: Vec<(String, Tensor)> = match &self.dit_condition {
            Some(graph) => {
                let t = Instant::now();
                let out = graph.run(&[(dit_io::CONDITIONING, &conditioning)])?;
                timings.push(("dit_condition".into(), ms(t)));
                out.into_iter().collect()
            }
            None => vec![(dit_io::CONDITIONING.to_string(), conditioning)],
        };
        let state_input = state
            .as_ref()
            .map(|st| Tensor::f32(&[st.len()], st.clone()));

        let sampler = EulerFlowMatching::new(&spec.timesteps);
        let mut velocities = Vec::with_capacity(sampler.steps());
        for s in 0..sampler.steps() {
            let t = Instant::now();
            let step_inputs = [
                Tensor::f32(&[chunk, adim], x.clone()),
                Tensor::i64(&[1], vec![sampler.bucket(s)]),
            ];
            let mut inputs = vec![
                (dit_io::NOISY_ACTIONS, &step_inputs[0]),
                (dit_io::TIMESTEP, &step_inputs[1]),
            ];
            inputs.extend(
                step_context
                    .iter()
                    .map(|(name, value)| (name.as_str(), value)),
            );
            if let Some(st) = &state_input {
                inputs.push((dit_io::STATE, st));
            }
            let mut out = self.dit_step.run(&inputs)?;
            let v = out.take_f32(dit_io::VELOCITY)?.into_raw_vec_and_offset().0;
            ensure_finite(&format!("velocity_step{s}"), &v)?;
            sampler.step(s, &mut x, &v);
            timings.push((format!("dit_step{s}"), ms(t)));
            velocities.push(v);
        }

        let t = Instant::now();
        let (actions_normalized, actions) =
            post_process(&self.manifest, x, adim, obs.state.as_deref())?;
        timings.push(("postprocess".into(), ms(t)));

        if keep {
            let rows = |v: &[f32], w: usize| TensorValue::f32(&[v.len() / w, w], v.to_vec());
            let hidden = self.backbone.text_config.hidden_size;
            dump.insert(
                "input_ids".into(),
                TensorValue::i64(&[prep.input_ids.len()], prep.input_ids.clone()),
            );
            dump.insert(
                "pixel_values".into(),
                rows(&prep.pixel_values, prep.patch_dim),
            );
            let grid_flat: Vec<i64> = prep.grids.iter().flatten().map(|&g| g as i64).collect();
            dump.insert(
                "image_grid_thw".into(),
                TensorValue::i64(&[prep.grids.len(), 3], grid_flat),
            );
            dump.insert("vision_embeds".into(), rows(&image_embeds, hidden));
            for (k, ds) in deepstack.iter().enumerate() {
                dump.insert(format!("deepstack_{k}"), rows(ds, hidden));
            }
            dump.insert("embodied_hidden".into(), rows(&cond, cond_dim));
            if let Some(st) = &state {
                dump.insert(
                    "state_normalized".into(),
                    TensorValue::f32(&[st.len()], st.clone()),
                );
            }
            for (s, v) in velocities.iter().enumerate() {
                dump.insert(format!("velocity_step{s}"), rows(v, adim));
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
            reasoning: None,
        })
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
