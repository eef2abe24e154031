//! `vjx export`: resolve → read config → build graphs → write manifest, all into a temp dir
//! beside the output that is renamed into place only when everything succeeded.

use crate::checkpoint;
use crate::progress::Progress;
use crate::staging::{self, Staging};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vjx_format::normalization::{Normalization, PostStep};
use vjx_format::{GraphEntry, Manifest, PolicySpec, Source};
use vjx_graphs::{Model, Precision, WeightSource};

#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// A local dir or a hub id.
    pub checkpoint: String,
    /// Overrides the backbone named in the checkpoint's config.
    pub backbone: Option<String>,
    pub revision: Option<String>,
    pub out: PathBuf,
    pub force: bool,
    pub progress: bool,
    /// Arithmetic of the exported graphs (see `Precision`).
    pub precision: Precision,
    /// The generation limit of policies that reason in text (DexVLA: 256 by default).
    pub max_new_tokens: Option<usize>,
    /// Actions executed from each chunk before the next is predicted, where the checkpoint
    /// does not fix it (DexVLA's original layout: the whole chunk by default).
    pub replan_every: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportedGraph {
    pub role: String,
    pub file: String,
    pub nodes: usize,
    pub weight_bytes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub out: PathBuf,
    pub policy_type: String,
    pub checkpoint: PathBuf,
    pub backbone: PathBuf,
    pub precision: String,
    pub graphs: Vec<ExportedGraph>,
    /// Bytes of all graph weights as written.
    pub weight_bytes: usize,
    pub seconds: f64,
    /// Peak resident memory of this process so far (Linux; null elsewhere).
    pub peak_rss_mb: Option<f64>,
}

/// Writes one policy's export into a staging dir; returns the backbone dir it read and the
/// graphs it wrote.
type PolicyExporter = fn(
    &checkpoint::ResolvedRepo,
    &ExportOptions,
    &Path,
    &Progress,
) -> Result<(PathBuf, Vec<ExportedGraph>)>;

/// The exporter of each policy type, by the `type` of its LeRobot config (the manifest's
/// tag), with the checkpoint files it needs.
const POLICY_EXPORTERS: [(&str, &[&str], PolicyExporter); 3] = [
    (
        PolicySpec::TYPES[0],
        LEROBOT_FILES,
        crate::vla_jepa::export_vla_jepa,
    ),
    (
        PolicySpec::TYPES[1],
        LEROBOT_FILES,
        crate::lingbot_va::export_lingbot_va,
    ),
    // The original DexVLA trainer may shard its weights: the exporter opens what is there.
    (
        PolicySpec::TYPES[2],
        &["config.json"],
        crate::dexvla::export_dexvla,
    ),
];

/// Files every LeRobot checkpoint has.
pub const LEROBOT_FILES: &[&str] = &["config.json", "model.safetensors"];

/// `model_type` of the original DexVLA repository's checkpoints, which carry no `type`.
const ORIGINAL_DEXVLA_MODEL_TYPE: &str = "qwen2_vla";

/// The policy type of a checkpoint's config.json: LeRobot's `type` field, or the original
/// DexVLA repository's `model_type`.
pub fn policy_type(config_path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", config_path.display()))?;
    if let Some(kind) = json.get("type").and_then(|t| t.as_str()) {
        return Ok(kind.to_string());
    }
    if json.get("model_type").and_then(|t| t.as_str()) == Some(ORIGINAL_DEXVLA_MODEL_TYPE) {
        return Ok(PolicySpec::TYPES[2].to_string());
    }
    bail!(
        "{}: no `type` field (is this a LeRobot policy checkpoint?)",
        config_path.display()
    )
}

pub fn export(opts: &ExportOptions) -> Result<ExportReport> {
    let start = Instant::now();
    if opts.out.exists() && !opts.force {
        bail!(
            "{} already exists; pass --force to replace it",
            opts.out.display()
        );
    }
    let progress = Progress::new(opts.progress);
    progress.message(&format!("resolving checkpoint {}", opts.checkpoint));
    let config_only = checkpoint::resolve(
        &opts.checkpoint,
        opts.revision.as_deref(),
        &["config.json"],
        opts.progress,
    )?;
    let config_path = config_only.path("config.json");
    let kind = policy_type(&config_path)?;
    let Some((_, files, export_policy)) = POLICY_EXPORTERS.iter().find(|(name, ..)| *name == kind)
    else {
        bail!(
            "{}: policy type `{kind}` is not supported (supported: {})",
            config_path.display(),
            PolicySpec::TYPES.join(", ")
        );
    };
    if kind != PolicySpec::TYPES[2] {
        let dexvla_only = [
            ("--max-new-tokens", opts.max_new_tokens.is_some()),
            ("--replan-every", opts.replan_every.is_some()),
        ];
        if let Some((flag, _)) = dexvla_only.iter().find(|(_, given)| *given) {
            bail!("{flag} applies to DexVLA exports only; this checkpoint is {kind}");
        }
    }
    let ckpt = checkpoint::resolve(
        &opts.checkpoint,
        opts.revision.as_deref(),
        files,
        opts.progress,
    )?;
    let parent = match opts.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    for stale in staging::remove_stale(&parent) {
        progress.message(&format!(
            "removed {}, left by an interrupted export",
            stale.display()
        ));
    }
    let staging = Staging::create(&parent)
        .with_context(|| format!("creating a temp dir in {}", parent.display()))?;

    let (backbone_root, graphs) = export_policy(&ckpt, opts, staging.path(), &progress)?;

    if opts.out.exists() {
        std::fs::remove_dir_all(&opts.out)
            .with_context(|| format!("removing the old export at {}", opts.out.display()))?;
    }
    let staged = staging.path().to_path_buf();
    staging.persist(&opts.out).with_context(|| {
        format!(
            "moving the export from {} to {}",
            staged.display(),
            opts.out.display()
        )
    })?;
    progress.finish(&format!("exported to {}", opts.out.display()));
    Ok(ExportReport {
        out: opts.out.clone(),
        policy_type: kind,
        checkpoint: ckpt.root.clone(),
        backbone: backbone_root,
        precision: opts.precision.name().to_string(),
        weight_bytes: graphs.iter().map(|g| g.weight_bytes).sum(),
        graphs,
        seconds: start.elapsed().as_secs_f64(),
        peak_rss_mb: crate::progress::peak_rss_mb(),
    })
}

/// Reads and parses a JSON file, naming it in the error.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Writes one graph (and its external data) into `dir` as `<role>.onnx`, records its
/// checksums and its report line, and returns its manifest entry.
pub(crate) fn write_graph(
    model: Model,
    weights: &dyn WeightSource,
    dir: &Path,
    role: &str,
    graphs: &mut Vec<ExportedGraph>,
    checksums: &mut BTreeMap<String, String>,
) -> Result<GraphEntry> {
    let (nodes, bytes) = (model.num_nodes(), model.weight_bytes());
    let inputs = model.inputs.clone();
    let outputs = model.outputs.clone();
    let written = model
        .write_with(dir, role, weights)
        .with_context(|| format!("writing the {role} graph"))?;
    let file = written
        .graph_file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    checksums.insert(file.clone(), written.graph_sha256.clone());
    if let (Some(path), Some(sha)) = (&written.data_file, &written.data_sha256) {
        checksums.insert(
            path.file_name().unwrap().to_string_lossy().into_owned(),
            sha.clone(),
        );
    }
    graphs.push(ExportedGraph {
        role: role.to_string(),
        file: file.clone(),
        nodes,
        weight_bytes: bytes,
    });
    Ok(GraphEntry {
        file,
        data_file: written
            .data_file
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned()),
        inputs,
        outputs,
    })
}

/// What every policy's export writes into `out/manifest.json`, once its files are in place:
/// the checksums of every file, the export options, and the policy's own parts.
pub(crate) fn write_manifest(
    out: &Path,
    opts: &ExportOptions,
    backbone: String,
    policy: PolicySpec,
    graphs: BTreeMap<String, GraphEntry>,
    processing: (Normalization, Vec<PostStep>),
    mut files: BTreeMap<String, String>,
) -> Result<()> {
    checksum_other_files(out, &mut files)?;
    let (normalization, postprocess) = processing;
    let manifest = Manifest {
        format_version: vjx_format::FORMAT_VERSION,
        vjx_version: env!("CARGO_PKG_VERSION").to_string(),
        precision: opts.precision,
        source: Source {
            checkpoint: opts.checkpoint.clone(),
            backbone,
            revision: opts.revision.clone(),
        },
        policy,
        graphs,
        normalization,
        postprocess,
        files,
    };
    // What `Manifest::load` would refuse is refused here, before the export is moved into place.
    manifest
        .validate(out)
        .context("the export would not load; nothing was written")?;
    manifest
        .write(out)
        .with_context(|| format!("writing the manifest in {}", out.display()))
}

/// Adds the checksum of every file in `out` the graphs did not already record (the staging
/// dir's lock file is not part of the export).
fn checksum_other_files(out: &Path, files: &mut BTreeMap<String, String>) -> Result<()> {
    for entry in std::fs::read_dir(out)? {
        let path = entry?.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == staging::LOCK_FILE {
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(e) = files.entry(name) {
            e.insert(vjx_format::sha256_file(&path)?);
        }
    }
    Ok(())
}
