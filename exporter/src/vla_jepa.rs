//! Export of a VLA-JEPA checkpoint: the Qwen3-VL vision and text graphs, one DiT step, the
//! augmented tokenizer, the chat template and the manifest.

use crate::checkpoint::{self, ResolvedRepo};
use crate::export::{read_json, write_graph, write_manifest, ExportOptions, ExportedGraph};
use crate::lerobot_processors;
use crate::policy_tokenizer;
use crate::progress::Progress;
use crate::safetensors_weights::ShardedWeights;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vjx_format::chat_template::load_chat_template;
use vjx_format::prompt::{PolicyTokenSpec, PromptSpec, DEFAULT_INSTRUCTION};
use vjx_format::qwen_image::QwenImageProcessorConfig;
use vjx_format::vla_jepa::{roles, VlaJepaSpec};
use vjx_format::{CameraSpec, PolicySpec};
use vjx_graphs::qwen3_vl::{text, vision, Qwen3VlConfig};
use vjx_graphs::vla_jepa::{config::VlaJepaConfig, dit};
use vjx_graphs::WeightSource;

const VISION_PREFIX: &str = "model.qwen.model.model.visual.";
const TEXT_PREFIX: &str = "model.qwen.model.model.language_model.";
const ACTION_HEAD_PREFIX: &str = "model.action_model.";
/// The tied token embedding is saved under one of these two names.
const EMBED_NAMES: [&str; 2] = [
    "model.qwen.model.model.language_model.embed_tokens.weight",
    "model.qwen.model.lm_head.weight",
];

const BACKBONE_FILES: &[&str] = &["config.json", "tokenizer.json", "preprocessor_config.json"];
const TOKENIZER_FILE: &str = "tokenizer.json";
const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";
const BACKBONE_CONFIG_FILE: &str = "backbone_config.json";

pub fn export_vla_jepa(
    ckpt: &ResolvedRepo,
    opts: &ExportOptions,
    out: &Path,
    progress: &Progress,
) -> Result<(PathBuf, Vec<ExportedGraph>)> {
    let config_path = ckpt.path("config.json");
    let config_text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let config = VlaJepaConfig::from_json_str(&config_text)
        .with_context(|| format!("parsing {}", config_path.display()))?;
    let config_json: serde_json::Value = serde_json::from_str(&config_text)?;
    let backbone_spec = opts
        .backbone
        .clone()
        .unwrap_or_else(|| config.qwen_model_name.clone());
    progress.message(&format!("resolving backbone {backbone_spec}"));
    let backbone = checkpoint::resolve(&backbone_spec, None, BACKBONE_FILES, opts.progress)
        .with_context(|| {
            format!("resolving the backbone `{backbone_spec}` named by qwen_model_name in {} (override with --backbone <dir>)", config_path.display())
        })?;
    let qwen: Qwen3VlConfig = read_json(&backbone.path("config.json"))?;
    let image_processor = QwenImageProcessorConfig::from_backbone_dir(&backbone.root)?;
    let chat_template = load_chat_template(&backbone.root)?;

    let weights = ShardedWeights::open_dir(&ckpt.root)?;
    let mut graphs = BTreeMap::new();
    let mut report = Vec::new();
    let mut files = BTreeMap::new();
    let precision = opts.precision;

    progress.message("building the vision graph");
    let vision_model =
        vision::build_vision_graph_at(&qwen.vision_config, &weights, VISION_PREFIX, precision)?;
    graphs.insert(
        roles::VISION.to_string(),
        write_graph(
            vision_model,
            &weights,
            out,
            roles::VISION,
            &mut report,
            &mut files,
        )?,
    );

    progress.message("building the text graph");
    let embed = weights.first_present(&EMBED_NAMES)?;
    let text_model = text::build_text_graph_at(
        &qwen.text_config,
        &weights,
        &text::TextGraphOptions {
            prefix: TEXT_PREFIX.to_string(),
            embed_weight_name: embed.to_string(),
            num_deepstack: qwen.vision_config.deepstack_visual_indexes.len(),
        },
        precision,
    )?;
    graphs.insert(
        roles::TEXT.to_string(),
        write_graph(
            text_model,
            &weights,
            out,
            roles::TEXT,
            &mut report,
            &mut files,
        )?,
    );

    progress.message("building the DiT graphs");
    let (condition_model, step_model) = dit::build_dit_graphs_split(
        &config,
        qwen.text_config.hidden_size,
        &weights,
        ACTION_HEAD_PREFIX,
        precision,
    )?;
    let condition = write_graph(
        condition_model,
        &weights,
        out,
        roles::DIT_CONDITION,
        &mut report,
        &mut files,
    )?;
    graphs.insert(roles::DIT_CONDITION.to_string(), condition);
    graphs.insert(
        roles::DIT_STEP.to_string(),
        write_graph(
            step_model,
            &weights,
            out,
            roles::DIT_STEP,
            &mut report,
            &mut files,
        )?,
    );

    progress.message("writing tokenizer, template and manifest");
    let token_spec = PolicyTokenSpec::for_chunk_size(
        config.chunk_size,
        &config.special_action_token,
        &config.embodied_action_token,
    );
    let tokenizer_json = backbone.path("tokenizer.json");
    let tokenizer = policy_tokenizer::with_policy_tokens(&tokenizer_json, &token_spec)?;
    policy_tokenizer::save(&tokenizer, &out.join(TOKENIZER_FILE))?;
    let embodied_token_id = i64::from(policy_tokenizer::token_id(
        &tokenizer,
        &config.embodied_action_token,
        &tokenizer_json,
    )?);
    std::fs::write(out.join(CHAT_TEMPLATE_FILE), &chat_template)?;
    std::fs::write(
        out.join(BACKBONE_CONFIG_FILE),
        serde_json::to_string_pretty(&qwen)? + "\n",
    )?;

    let fallbacks = lerobot_processors::PolicyFallbacks::from_policy_config(&config_json);
    let processors = lerobot_processors::read_processors(&ckpt.root, &fallbacks)?;

    let cameras = config
        .camera_keys()
        .into_iter()
        .map(|key| {
            let shape = config
                .input_features
                .get(&key)
                .map(|f| f.shape.clone())
                .unwrap_or_default();
            CameraSpec { key, shape }
        })
        .collect::<Vec<_>>();
    if cameras.is_empty() {
        bail!(
            "{}: input_features declares no VISUAL feature",
            config_path.display()
        );
    }
    let spec = VlaJepaSpec {
        cameras,
        resize_images_to: config.resize_images_to,
        image: image_processor,
        backbone_config_file: BACKBONE_CONFIG_FILE.to_string(),
        prompt: PromptSpec {
            template: config.prompt_template.clone(),
            action_token_format: config.special_action_token.clone(),
            embodied_token: config.embodied_action_token.clone(),
            tokens_per_step: config.num_action_tokens_per_timestep,
            num_steps: config.num_action_prompt_steps(),
            num_embodied: config.num_embodied_action_tokens_per_instruction,
            default_instruction: DEFAULT_INSTRUCTION.to_string(),
        },
        tokenizer_file: TOKENIZER_FILE.to_string(),
        chat_template_file: CHAT_TEMPLATE_FILE.to_string(),
        embodied_token_id,
        chunk_size: config.chunk_size,
        n_action_steps: config.n_action_steps,
        action_dim: config.action_dim(),
        state_dim: config.state_dim(),
        timesteps: dit::euler_timesteps(&config),
    };
    write_manifest(
        out,
        opts,
        backbone_spec,
        PolicySpec::VlaJepa(Box::new(spec)),
        graphs,
        (processors.normalization, processors.post_steps),
        files,
    )?;
    Ok((backbone.root.clone(), report))
}
