//! Export of a DexVLA checkpoint in either layout users have:
//!
//! - **original**: a `checkpoint-N/` directory written by the juruobenruo/DexVLA trainer
//!   (`config.json` with `model_type: qwen2_vla` and `policy_head_config`, the whole model in
//!   `model*.safetensors`, the tokenizer, `preprocessor_config.json`, `chat_template.json`)
//!   with the dataset statistics beside it or in its parent (`dataset_stats.json`, converted
//!   from the trainer's `dataset_stats.pkl` by `scripts/dexvla_stats_to_json.py`);
//! - **lerobot**: a directory saved by the LeRobot port (PR #767: `config.json` with
//!   `type: dexvla`, `model.safetensors` with every module under `model.` and the
//!   normalization buffers), plus the Qwen2-VL directory its `qwen2_vl_path` names (or
//!   `--backbone`) for the tokenizer, image processor and chat template.
//!
//! Graphs: the Qwen2-VL vision tower, the text stack (prefill and decode with a key/value
//! cache), the condition (fusion + ScaleDP's combine) and one ScaleDP step.

use crate::checkpoint::{self, ResolvedRepo};
use crate::export::{read_json, write_graph, write_manifest, ExportOptions, ExportedGraph};
use crate::progress::Progress;
use crate::safetensors_weights::ShardedWeights;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vjx_format::chat_template::load_chat_template;
use vjx_format::dexvla::{roles, DdimSpec, DexVlaSpec, EvalCrop, Fusion, GenerationSpec};
use vjx_format::normalization::{FeatureNorm, NormMode, Normalization, PostStep};
use vjx_format::qwen_image::QwenImageProcessorConfig;
use vjx_format::{CameraSpec, PolicySpec};
use vjx_graphs::dexvla::{condition, scaledp, ScaleDpConfig};
use vjx_graphs::qwen2_vl::text::{build_generation_graph, TextWeightNames};
use vjx_graphs::qwen2_vl::Qwen2VlConfig;
use vjx_graphs::qwen3_vl::vision::{build_vision_graph_styled, VisionStyle};
use vjx_graphs::{Precision, WeightSource};

const TOKENIZER_FILE: &str = "tokenizer.json";
const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";
const BACKBONE_CONFIG_FILE: &str = "backbone_config.json";
const STATS_FILE: &str = "dataset_stats.json";
const STATS_PICKLE: &str = "dataset_stats.pkl";
/// What the Qwen2-VL directory must hold.
const BACKBONE_FILES: &[&str] = &["config.json", "tokenizer.json", "preprocessor_config.json"];

/// Upstream's `max_new_tokens` for the reasoning.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 256;
/// The original evaluation's center crop: 95 % of each side kept.
const EVAL_CROP_RATIO: f64 = 0.95;
/// The original repository's cameras (`aloha_scripts/constants.py`), in prompt order, and the
/// frame size its training resized to.
const ORIGINAL_CAMERAS: [&str; 3] = [
    "observation.images.cam_high",
    "observation.images.cam_left_wrist",
    "observation.images.cam_right_wrist",
];
const ORIGINAL_FRAME: [usize; 3] = [3, 240, 320];
/// `MODEL_STRUCTURE` of the LeRobot port: ScaleDP attention heads by `policy_head_size`
/// (depth and width are read from the weights).
const SCALEDP_HEADS: [(&str, usize); 2] = [("scaledp_h", 16), ("scaledp_l", 16)];

/// Which of the two layouts a checkpoint directory is, and what differs between them.
struct Layout {
    name: &'static str,
    /// Prefix of every module of the model in the safetensors.
    prefix: &'static str,
    backbone: ResolvedRepo,
    backbone_spec: String,
    qwen: Qwen2VlConfig,
    head: ScaleDpConfig,
    fusion: Fusion,
    cameras: Vec<CameraSpec>,
    n_action_steps: usize,
    eos_token_id: i64,
}

pub fn export_dexvla(
    ckpt: &ResolvedRepo,
    opts: &ExportOptions,
    out: &Path,
    progress: &Progress,
) -> Result<(PathBuf, Vec<ExportedGraph>)> {
    if opts.precision == Precision::Int8 {
        bail!(
            "--precision int8: DexVLA exports fp32 or fp16 for now. Dynamically quantized int8 \
             misses the documented bars on the DexVLA fixtures (actions up to 0.32 relative L2, \
             and the greedy reasoning changes tokens; docs/dexvla.md); calibrated int8 is planned"
        );
    }
    let config: Value = read_json(&ckpt.path("config.json"))?;
    let is_lerobot = config.get("type").and_then(Value::as_str) == Some("dexvla");
    // A LeRobot port's checkpoint on the hub: fetch its weights too (the original trainer's
    // directories are local).
    let ckpt = &if is_lerobot && !ckpt.path("model.safetensors").is_file() {
        checkpoint::resolve(
            &opts.checkpoint,
            opts.revision.as_deref(),
            crate::export::LEROBOT_FILES,
            opts.progress,
        )?
    } else {
        ckpt.clone()
    };
    let weights = ShardedWeights::open_dir(&ckpt.root)
        .with_context(|| format!("opening the weights in {}", ckpt.root.display()))?;
    let layout = match is_lerobot {
        true => lerobot_layout(ckpt, &config, &weights, opts, progress)?,
        false => original_layout(ckpt, &config, opts, progress)?,
    };
    progress.message(&format!("{} layout", layout.name));
    let normalization = match layout.name {
        "lerobot" => lerobot_normalization(&weights, &layout)?,
        _ => original_normalization(&ckpt.root, &layout)?,
    };

    let image_processor = QwenImageProcessorConfig::from_backbone_dir(&layout.backbone.root)?;
    let chat_template = load_chat_template(&layout.backbone.root)?;
    let precision = opts.precision;
    let p = layout.prefix;
    let mut graphs = BTreeMap::new();
    let mut report = Vec::new();
    let mut files = BTreeMap::new();
    let mut write = |model, role: &str| -> Result<()> {
        let entry = write_graph(model, &weights, out, role, &mut report, &mut files)?;
        graphs.insert(role.to_string(), entry);
        Ok(())
    };

    progress.message("building the vision graph");
    let tower = layout.qwen.tower();
    write(
        build_vision_graph_styled(
            &tower,
            &weights,
            &format!("{p}visual."),
            precision,
            VisionStyle::QWEN2_VL,
        )?,
        roles::VISION,
    )?;

    progress.message("building the text graph");
    // The tied embedding may be saved under the LM head's name only (the LeRobot port's).
    let embed_names = [
        format!("{p}model.embed_tokens.weight"),
        format!("{p}lm_head.weight"),
    ];
    let embed = weights.first_present(&[embed_names[0].as_str(), embed_names[1].as_str()])?;
    let names = TextWeightNames {
        prefix: format!("{p}model."),
        embed_tokens: embed.to_string(),
    };
    write(
        build_generation_graph(&layout.qwen, &weights, &names, precision)?,
        roles::TEXT,
    )?;

    progress.message("building the condition and ScaleDP step graphs");
    write(
        condition::build_condition_graph(&layout.head, layout.fusion, &weights, p, precision)?,
        roles::CONDITION,
    )?;
    write(
        scaledp::build_step_graph(&layout.head, &weights, p, precision)?,
        roles::DIFFUSION_STEP,
    )?;

    progress.message("writing tokenizer, template and manifest");
    let tokenizer_src = layout.backbone.path(TOKENIZER_FILE);
    std::fs::copy(&tokenizer_src, out.join(TOKENIZER_FILE))
        .with_context(|| format!("copying {}", tokenizer_src.display()))?;
    std::fs::write(out.join(CHAT_TEMPLATE_FILE), &chat_template)?;
    std::fs::write(
        out.join(BACKBONE_CONFIG_FILE),
        serde_json::to_string_pretty(&layout.qwen)? + "\n",
    )?;

    let chunk = layout.head.prediction_horizon;
    let n_action_steps = match opts.replan_every {
        Some(n) if n == 0 || n > chunk => {
            bail!("--replan-every {n}: must be between 1 and the chunk size {chunk}")
        }
        Some(n) => n,
        None => layout.n_action_steps,
    };
    let generation = (layout.fusion == Fusion::Film).then(|| GenerationSpec {
        max_new_tokens: opts.max_new_tokens.unwrap_or(DEFAULT_MAX_NEW_TOKENS),
        eos_token_id: layout.eos_token_id,
    });
    let spec = DexVlaSpec {
        cameras: layout.cameras.clone(),
        eval_crop: Some(EvalCrop {
            ratio: EVAL_CROP_RATIO,
        }),
        image: image_processor,
        backbone_config_file: BACKBONE_CONFIG_FILE.to_string(),
        tokenizer_file: TOKENIZER_FILE.to_string(),
        chat_template_file: CHAT_TEMPLATE_FILE.to_string(),
        image_token_id: layout.qwen.image_token_id,
        fusion: layout.fusion,
        generation,
        ddim: DdimSpec {
            num_train_timesteps: layout.head.num_train_timesteps,
            num_inference_steps: layout.head.num_inference_timesteps,
        },
        chunk_size: layout.head.prediction_horizon,
        n_action_steps,
        action_dim: layout.head.action_dim(),
        state_dim: layout.head.state_dim,
    };
    write_manifest(
        out,
        opts,
        layout.backbone_spec.clone(),
        PolicySpec::Dexvla(Box::new(spec)),
        graphs,
        (normalization, vec![PostStep::Unnormalize]),
        files,
    )?;
    Ok((layout.backbone.root.clone(), report))
}

/// The trainer's own directory: the Qwen2-VL config is the checkpoint's config, and the
/// tokenizer, processor and template were copied into it (unless `--backbone` says otherwise).
fn original_layout(
    ckpt: &ResolvedRepo,
    config: &Value,
    opts: &ExportOptions,
    progress: &Progress,
) -> Result<Layout> {
    let config_path = ckpt.path("config.json");
    if config.get("model_type").and_then(Value::as_str) != Some("qwen2_vla") {
        bail!(
            "{}: neither a LeRobot DexVLA config (`type: dexvla`) nor an original DexVLA one \
             (`model_type: qwen2_vla`)",
            config_path.display()
        );
    }
    let qwen: Qwen2VlConfig = serde_json::from_value(config.clone())
        .with_context(|| format!("{}: reading the Qwen2-VL fields", config_path.display()))?;
    let head_json = config
        .get("policy_head_config")
        .with_context(|| format!("{}: no `policy_head_config`", config_path.display()))?;
    let head: ScaleDpConfig = serde_json::from_value(head_json.clone())
        .with_context(|| format!("{}: key `policy_head_config`", config_path.display()))?;
    check_head_type(config, &config_path)?;
    let (backbone_spec, backbone) = match &opts.backbone {
        Some(spec) => {
            progress.message(&format!("resolving the Qwen2-VL files {spec}"));
            (spec.clone(), checkpoint::resolve(spec, None, BACKBONE_FILES, opts.progress)?)
        }
        None => (
            ckpt.root.display().to_string(),
            checkpoint::resolve(&ckpt.root.to_string_lossy(), None, BACKBONE_FILES, false)
                .context("the original layout keeps the tokenizer and image processor beside the weights; name another directory with --backbone")?,
        ),
    };
    Ok(Layout {
        name: "original",
        prefix: "",
        backbone,
        backbone_spec,
        fusion: fusion(config),
        eos_token_id: config
            .get("eos_token_id")
            .and_then(Value::as_i64)
            .unwrap_or(IM_END),
        n_action_steps: head.prediction_horizon,
        cameras: ORIGINAL_CAMERAS
            .iter()
            .map(|key| CameraSpec {
                key: key.to_string(),
                shape: ORIGINAL_FRAME.to_vec(),
            })
            .collect(),
        qwen,
        head,
    })
}

/// `<|im_end|>`, Qwen2-VL's end of turn.
const IM_END: i64 = 151645;

/// The LeRobot port's directory: the head's shape comes from the config and the weights, the
/// Qwen2-VL config and files from `qwen2_vl_path`.
fn lerobot_layout(
    ckpt: &ResolvedRepo,
    config: &Value,
    weights: &ShardedWeights,
    opts: &ExportOptions,
    progress: &Progress,
) -> Result<Layout> {
    let config_path = ckpt.path("config.json");
    check_head_type(config, &config_path)?;
    let field = |key: &str| {
        config
            .get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .with_context(|| {
                format!(
                    "{}: key `{key}` missing or not a number",
                    config_path.display()
                )
            })
    };
    let backbone_spec = match &opts.backbone {
        Some(spec) => spec.clone(),
        None => {
            let named = config
                .get("qwen2_vl_path")
                .and_then(Value::as_str)
                .with_context(|| {
                    format!(
                        "{}: no `qwen2_vl_path`; name the Qwen2-VL directory with --backbone",
                        config_path.display()
                    )
                })?;
            // A relative path is taken from the checkpoint directory.
            let beside = ckpt.root.join(named);
            if Path::new(named).is_relative() && beside.is_dir() {
                beside.display().to_string()
            } else {
                named.to_string()
            }
        }
    };
    progress.message(&format!("resolving the Qwen2-VL directory {backbone_spec}"));
    let backbone = checkpoint::resolve(&backbone_spec, None, BACKBONE_FILES, opts.progress)
        .with_context(|| {
            format!(
                "resolving `{backbone_spec}` named by qwen2_vl_path in {} (override with --backbone <dir>)",
                config_path.display()
            )
        })?;
    let qwen: Qwen2VlConfig = read_json(&backbone.path("config.json"))?;

    let size = config
        .get("policy_head_size")
        .and_then(Value::as_str)
        .unwrap_or("scaledp_l");
    let num_heads = SCALEDP_HEADS
        .iter()
        .find(|(name, _)| *name == size)
        .map(|(_, heads)| *heads)
        .with_context(|| {
            format!(
                "{}: key `policy_head_size`: `{size}` is not one of scaledp_h, scaledp_l",
                config_path.display()
            )
        })?;
    let positions = weights
        .shape("model.policy_head.pos_embed")
        .with_context(|| format!("{}: no `model.policy_head.pos_embed`", weights.describe()))?;
    let depth = (0..)
        .take_while(|i| weights.contains(&format!("model.policy_head.blocks.{i}.attn.qkv.weight")))
        .count();
    let chunk_size = field("chunk_size")?;
    let head = ScaleDpConfig {
        input_dim: field("action_dim")?,
        output_dim: None,
        cond_dim: qwen.hidden_size,
        state_dim: field("state_dim")?,
        prediction_horizon: chunk_size,
        depth,
        n_emb: positions.get(2).copied().unwrap_or(0),
        num_heads,
        mlp_ratio: 4.0,
        num_inference_timesteps: 10,
        num_train_timesteps: 100,
        learn_sigma: false,
        is_tinyvla: false,
    };
    let cameras = visual_features(config);
    if cameras.is_empty() {
        bail!(
            "{}: input_features declares no VISUAL feature",
            config_path.display()
        );
    }
    Ok(Layout {
        name: "lerobot",
        prefix: "model.",
        backbone,
        backbone_spec,
        fusion: fusion(config),
        eos_token_id: IM_END,
        n_action_steps: config
            .get("n_action_steps")
            .and_then(Value::as_u64)
            .map_or(chunk_size, |n| n as usize),
        cameras,
        qwen,
        head,
    })
}

fn check_head_type(config: &Value, path: &Path) -> Result<()> {
    match config.get("policy_head_type").and_then(Value::as_str) {
        None | Some("scale_dp_policy") => Ok(()),
        Some(other) => bail!(
            "{}: key `policy_head_type`: `{other}` is not supported (only scale_dp_policy)",
            path.display()
        ),
    }
}

/// FiLM on generated reasoning when the config has both `using_film` and `with_llm_head`
/// (their defaults); otherwise TinyVLA's mean pool.
fn fusion(config: &Value) -> Fusion {
    let flag = |key: &str| config.get(key).and_then(Value::as_bool).unwrap_or(true);
    if flag("using_film") && flag("with_llm_head") {
        Fusion::Film
    } else {
        Fusion::MeanPool
    }
}

/// The VISUAL features of a LeRobot config, in its order.
fn visual_features(config: &Value) -> Vec<CameraSpec> {
    let Some(features) = config.get("input_features").and_then(Value::as_object) else {
        return Vec::new();
    };
    features
        .iter()
        .filter(|(_, f)| f.get("type").and_then(Value::as_str) == Some("VISUAL"))
        .map(|(key, f)| CameraSpec {
            key: key.clone(),
            shape: f
                .get("shape")
                .and_then(Value::as_array)
                .map(|s| {
                    s.iter()
                        .filter_map(|d| d.as_u64().map(|d| d as usize))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// State MEAN_STD and action MIN_MAX from the port's normalization buffers.
fn lerobot_normalization(weights: &ShardedWeights, layout: &Layout) -> Result<Normalization> {
    let vector = |name: &str, len: usize| -> Result<Vec<f32>> {
        let t = weights
            .tensor_f32(name)
            .with_context(|| format!("{}: normalization buffer `{name}`", weights.describe()))?;
        if t.data.len() != len {
            bail!(
                "{}: `{name}` has {} values, the policy's width is {len}",
                weights.describe(),
                t.data.len()
            );
        }
        Ok(t.data)
    };
    let (s, a) = (layout.head.state_dim, layout.head.action_dim());
    Ok(Normalization {
        state: Some(FeatureNorm {
            mode: NormMode::MeanStd,
            mean: Some(vector("normalize_inputs.buffer_observation_state.mean", s)?),
            std: Some(vector("normalize_inputs.buffer_observation_state.std", s)?),
            ..FeatureNorm::default()
        }),
        action: FeatureNorm {
            mode: NormMode::MinMax,
            min: Some(vector("unnormalize_outputs.buffer_action.min", a)?),
            max: Some(vector("unnormalize_outputs.buffer_action.max", a)?),
            ..FeatureNorm::default()
        },
    })
}

/// State MEAN_STD (`qpos_mean`, `qpos_std`) and action MIN_MAX (`action_min`, `action_max`)
/// from the trainer's statistics, beside the checkpoint or in its parent.
fn original_normalization(root: &Path, layout: &Layout) -> Result<Normalization> {
    let places = [root.to_path_buf(), root.join("..")];
    let Some(path) = places
        .iter()
        .map(|d| d.join(STATS_FILE))
        .find(|p| p.is_file())
    else {
        if let Some(pickle) = places
            .iter()
            .map(|d| d.join(STATS_PICKLE))
            .find(|p| p.is_file())
        {
            bail!(
                "{}: vjx reads the statistics as JSON; convert them with \
                 `python3 scripts/dexvla_stats_to_json.py {}` (writes {STATS_FILE} beside it)",
                pickle.display(),
                pickle.display()
            );
        }
        bail!(
            "no {STATS_FILE} (or {STATS_PICKLE}) in {} or its parent: the original layout keeps \
             the dataset statistics there",
            root.display()
        );
    };
    let stats: BTreeMap<String, Value> = read_json(&path)?;
    let vector = |key: &str, len: usize| -> Result<Vec<f32>> {
        let values: Vec<f32> = stats
            .get(key)
            .and_then(Value::as_array)
            .with_context(|| format!("{}: key `{key}` missing or not a list", path.display()))?
            .iter()
            .map(|v| v.as_f64().map(|v| v as f32))
            .collect::<Option<_>>()
            .with_context(|| format!("{}: key `{key}` holds a non-number", path.display()))?;
        if values.len() != len {
            bail!(
                "{}: key `{key}` has {} values, the policy's width is {len}",
                path.display(),
                values.len()
            );
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            bail!(
                "{}: `{key}[{i}]` is {} as f32; vjx does not export non-finite statistics",
                path.display(),
                values[i]
            );
        }
        Ok(values)
    };
    let (s, a) = (layout.head.state_dim, layout.head.action_dim());
    Ok(Normalization {
        state: Some(FeatureNorm {
            mode: NormMode::MeanStd,
            mean: Some(vector("qpos_mean", s)?),
            std: Some(vector("qpos_std", s)?),
            ..FeatureNorm::default()
        }),
        action: FeatureNorm {
            mode: NormMode::MinMax,
            min: Some(vector("action_min", a)?),
            max: Some(vector("action_max", a)?),
            ..FeatureNorm::default()
        },
    })
}
