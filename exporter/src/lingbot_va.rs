//! Export of a LingBot-VA checkpoint: the UMT5 text encoder, the Wan VAE encoder (first and
//! streaming calls) and decoder, the transformer's text conditioning and its two single-stream
//! steps, plus the tokenizer, the configs and the manifest.
//!
//! The LeRobot checkpoint holds only the transformer; the VAE, UMT5 and tokenizer come from
//! the `vae/`, `text_encoder/` and `tokenizer/` sub-folders of `wan_pretrained_path`
//! (overridden by `--backbone`).

use crate::checkpoint::{self, ResolvedRepo};
use crate::export::{write_graph, write_manifest, ExportOptions, ExportedGraph};
use crate::lerobot_processors;
use crate::progress::Progress;
use crate::safetensors_weights::ShardedWeights;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vjx_format::lingbot_va::{roles, LingbotVaSpec};
use vjx_format::{CameraSpec, PolicySpec};
use vjx_graphs::lingbot_va::config::LingbotVaConfig;
use vjx_graphs::lingbot_va::transformer;
use vjx_graphs::umt5::{build_umt5_encoder_graph, Umt5Config};
use vjx_graphs::wan_vae::{build_vae_decode_graphs, build_vae_encode_graphs, WanVaeConfig};
use vjx_graphs::Precision;

const TRANSFORMER_PREFIX: &str = "transformer.";
/// What `--backbone` (or `wan_pretrained_path`) must hold; weights are found per folder.
const BACKBONE_FILES: &[&str] = &[
    "vae/config.json",
    "text_encoder/config.json",
    "tokenizer/tokenizer.json",
];
const POLICY_CONFIG_FILE: &str = "policy_config.json";
const VAE_CONFIG_FILE: &str = "vae_config.json";
const TOKENIZER_FILE: &str = "tokenizer.json";

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// `dir/<stem>.safetensors` or its sharded index, named in the error when neither is there.
fn open_weights(dir: &Path, stems: &[&str]) -> Result<ShardedWeights> {
    let mut last = None;
    for stem in stems {
        match ShardedWeights::open_dir_named(dir, stem) {
            Ok(w) => return Ok(w),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one stem"))
        .with_context(|| format!("opening the weights in {}", dir.display()))
}

pub fn export_lingbot_va(
    ckpt: &ResolvedRepo,
    opts: &ExportOptions,
    out: &Path,
    progress: &Progress,
) -> Result<(PathBuf, Vec<ExportedGraph>)> {
    if opts.precision != Precision::F32 {
        bail!(
            "--precision {}: LingBot-VA exports only fp32 for now (its parity tests cover fp32 only)",
            opts.precision.name()
        );
    }
    let config_path = ckpt.path("config.json");
    let config_text = read_text(&config_path)?;
    let config = LingbotVaConfig::from_json_str(&config_text)
        .with_context(|| format!("parsing {}", config_path.display()))?;
    let config_json: serde_json::Value = serde_json::from_str(&config_text)?;

    let backbone_spec = opts
        .backbone
        .clone()
        .unwrap_or_else(|| config.wan_pretrained_path.clone());
    progress.message(&format!("resolving the Wan backbone {backbone_spec}"));
    let backbone = checkpoint::resolve(&backbone_spec, None, BACKBONE_FILES, opts.progress).with_context(|| {
        format!(
            "resolving the Wan backbone `{backbone_spec}` named by wan_pretrained_path in {} (override with --backbone <dir>)",
            config_path.display()
        )
    })?;
    let vae_dir = backbone.root.join("vae");
    let text_dir = backbone.root.join("text_encoder");
    let vae_config_text = read_text(&vae_dir.join("config.json"))?;
    let vae_config = WanVaeConfig::from_json_str(&vae_config_text)
        .with_context(|| format!("parsing {}", vae_dir.join("config.json").display()))?;
    let umt5_config = Umt5Config::from_json_str(&read_text(&text_dir.join("config.json"))?)
        .with_context(|| format!("parsing {}", text_dir.join("config.json").display()))?;
    if umt5_config.d_model != config.text_dim {
        bail!(
            "{}: d_model {} but the policy's text_dim ({}) is {}; the backbone does not belong to this checkpoint",
            text_dir.join("config.json").display(),
            umt5_config.d_model,
            config_path.display(),
            config.text_dim
        );
    }
    if vae_config.z_dim != config.in_channels {
        bail!(
            "{}: z_dim {} but the policy's in_channels ({}) is {}",
            vae_dir.join("config.json").display(),
            vae_config.z_dim,
            config_path.display(),
            config.in_channels
        );
    }

    let mut graphs = BTreeMap::new();
    let mut report = Vec::new();
    let mut files = BTreeMap::new();

    progress.message("building the UMT5 text encoder graph");
    let text_weights = open_weights(&text_dir, &["model"])?;
    let text_model = build_umt5_encoder_graph(&umt5_config, &text_weights, "")?;
    graphs.insert(
        roles::TEXT_ENCODER.to_string(),
        write_graph(
            text_model,
            &text_weights,
            out,
            roles::TEXT_ENCODER,
            &mut report,
            &mut files,
        )?,
    );
    drop(text_weights);

    progress.message("building the VAE graphs");
    let vae_weights = open_weights(&vae_dir, &["diffusion_pytorch_model", "model"])?;
    let (encode_first, encode_stream) = build_vae_encode_graphs(&vae_config, &vae_weights, "")?;
    for (role, model) in [
        (roles::VAE_ENCODE_FIRST, encode_first),
        (roles::VAE_ENCODE_STREAM, encode_stream),
    ] {
        graphs.insert(
            role.to_string(),
            write_graph(model, &vae_weights, out, role, &mut report, &mut files)?,
        );
    }
    let (decode_first, decode_stream) = build_vae_decode_graphs(&vae_config, &vae_weights, "")?;
    for (role, model) in [
        (roles::VAE_DECODE_FIRST, decode_first),
        (roles::VAE_DECODE_STREAM, decode_stream),
    ] {
        graphs.insert(
            role.to_string(),
            write_graph(model, &vae_weights, out, role, &mut report, &mut files)?,
        );
    }
    drop(vae_weights);

    progress.message("building the transformer graphs");
    let weights = ShardedWeights::open_dir(&ckpt.root)?;
    let condition = transformer::build_text_condition_graph(&config, &weights, TRANSFORMER_PREFIX)?;
    graphs.insert(
        roles::TEXT_CONDITION.to_string(),
        write_graph(
            condition,
            &weights,
            out,
            roles::TEXT_CONDITION,
            &mut report,
            &mut files,
        )?,
    );
    let video = transformer::build_video_step_graph(&config, &weights, TRANSFORMER_PREFIX)?;
    graphs.insert(
        roles::VIDEO_STEP.to_string(),
        write_graph(
            video,
            &weights,
            out,
            roles::VIDEO_STEP,
            &mut report,
            &mut files,
        )?,
    );
    let action = transformer::build_action_step_graph(&config, &weights, TRANSFORMER_PREFIX)?;
    graphs.insert(
        roles::ACTION_STEP.to_string(),
        write_graph(
            action,
            &weights,
            out,
            roles::ACTION_STEP,
            &mut report,
            &mut files,
        )?,
    );

    progress.message("writing tokenizer, configs and manifest");
    std::fs::copy(
        backbone.path("tokenizer/tokenizer.json"),
        out.join(TOKENIZER_FILE),
    )
    .with_context(|| {
        format!(
            "copying {}",
            backbone.path("tokenizer/tokenizer.json").display()
        )
    })?;
    std::fs::write(out.join(POLICY_CONFIG_FILE), &config_text)?;
    std::fs::write(out.join(VAE_CONFIG_FILE), &vae_config_text)?;

    let fallbacks = lerobot_processors::PolicyFallbacks::from_policy_config(&config_json);
    let processors = lerobot_processors::read_processors(&ckpt.root, &fallbacks)?;
    if processors.action_dim != config.used_action_channel_ids.len() {
        bail!(
            "{}: the postprocessor's action width is {} but used_action_channel_ids lists {} channels",
            ckpt.root.display(),
            processors.action_dim,
            config.used_action_channel_ids.len()
        );
    }

    let cameras = config
        .obs_cam_keys
        .iter()
        .map(|key| {
            let shape = config_json
                .pointer(&format!(
                    "/input_features/{}/shape",
                    key.replace('~', "~0").replace('/', "~1")
                ))
                .and_then(|v| serde_json::from_value::<Vec<usize>>(v.clone()).ok())
                .unwrap_or_default();
            CameraSpec {
                key: key.clone(),
                shape,
            }
        })
        .collect::<Vec<_>>();
    if cameras.is_empty() {
        bail!("{}: obs_cam_keys is empty", config_path.display());
    }
    let spec = LingbotVaSpec {
        cameras,
        policy_config_file: POLICY_CONFIG_FILE.to_string(),
        vae_config_file: VAE_CONFIG_FILE.to_string(),
        tokenizer_file: TOKENIZER_FILE.to_string(),
        negative_prompt: String::new(),
    };
    write_manifest(
        out,
        opts,
        backbone_spec,
        PolicySpec::LingbotVa(spec),
        graphs,
        (processors.normalization, processors.post_steps),
        files,
    )?;
    Ok((backbone.root.clone(), report))
}
