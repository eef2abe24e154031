//! `manifest.json`: everything the runtime needs to run an export dir, written by the
//! exporter. Loading checks the format version and every file's sha256.

use crate::postprocess::{Normalization, PostStep};
use crate::preprocess::prompt::PromptSpec;
use crate::preprocess::qwen_image::QwenImageProcessorConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use thiserror::Error;
use vjx_graphs::builder::TensorSpec;
use vjx_graphs::qwen3_vl::Qwen3VlConfig;

pub const MANIFEST_FILE: &str = "manifest.json";
/// Bumped whenever a field changes meaning; the runtime refuses other versions.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub policy_type: String,
    pub vjx_version: String,
    pub precision: String,
    pub source: Source,
    /// Graph role (`vision`, `text`, `dit_step`) → its files and I/O.
    pub graphs: BTreeMap<String, GraphEntry>,
    /// The policy's own section: exactly one is present, the one `policy_type` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vla_jepa: Option<VlaJepaSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lingbot_va: Option<LingbotVaSpec>,
    pub normalization: Normalization,
    pub postprocess: Vec<PostStep>,
    /// Every file of the export (graphs, weights, tokenizer, template) → sha256 hex.
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source {
    pub checkpoint: String,
    pub backbone: String,
    pub revision: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GraphEntry {
    pub file: String,
    pub data_file: Option<String>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// A camera the policy reads, in the order the prompt lists them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CameraSpec {
    pub key: String,
    /// `[C, H, W]` as the checkpoint's input_features declare it.
    pub shape: Vec<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VlaJepaSpec {
    pub cameras: Vec<CameraSpec>,
    /// LeRobot's area resize before the Qwen processor (`resize_images_to`), `[H, W]`.
    pub resize_images_to: Option<[usize; 2]>,
    pub image: QwenImageProcessorConfig,
    pub backbone: Qwen3VlConfig,
    pub prompt: PromptSpec,
    pub tokenizer_file: String,
    pub chat_template_file: String,
    pub embodied_token_id: i64,
    pub chunk_size: usize,
    pub n_action_steps: usize,
    pub action_dim: usize,
    pub state_dim: Option<usize>,
    /// The discretized timestep fed to the DiT at each Euler step.
    pub timesteps: Vec<i64>,
}

/// What a LingBot-VA export needs besides its graphs. The configs are copies of the
/// checkpoint's own files, read at load with the same parsers the exporter used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LingbotVaSpec {
    /// Cameras in `obs_cam_keys` order.
    pub cameras: Vec<CameraSpec>,
    /// The LeRobot checkpoint's config.json.
    pub policy_config_file: String,
    /// The Wan VAE's `vae/config.json`.
    pub vae_config_file: String,
    /// The UMT5 tokenizer's `tokenizer.json`.
    pub tokenizer_file: String,
    /// The classifier-free-guidance prompt (upstream encodes `""`).
    pub negative_prompt: String,
}

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("{path}: not an export dir (no {MANIFEST_FILE}); run `vjx export` first")]
    Missing { path: PathBuf },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path}: manifest format version {found}, this vjx reads version {FORMAT_VERSION}; re-export with this vjx")]
    Version { path: PathBuf, found: u32 },
    #[error("{path}: checksum mismatch (manifest says {expected}, file has {found}); the export is damaged, re-export it")]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{path}: listed in the manifest but missing")]
    MissingFile { path: PathBuf },
    #[error(
        "{path}: policy type `{policy_type}` but no `{section}` section; re-export with this vjx"
    )]
    MissingSection {
        path: PathBuf,
        policy_type: String,
        section: &'static str,
    },
}

impl Manifest {
    /// Reads `<dir>/manifest.json`, checks its version and, if `verify`, every checksum.
    pub fn load(dir: &Path, verify: bool) -> Result<Self, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|_| ManifestError::Missing {
            path: dir.to_path_buf(),
        })?;
        let raw: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ManifestError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let found = raw
            .get("format_version")
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as u32;
        if found != FORMAT_VERSION {
            return Err(ManifestError::Version { path, found });
        }
        let manifest: Manifest =
            serde_json::from_value(raw).map_err(|e| ManifestError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let section = match manifest.policy_type.as_str() {
            "vla_jepa" if manifest.vla_jepa.is_none() => Some("vla_jepa"),
            "lingbot_va" if manifest.lingbot_va.is_none() => Some("lingbot_va"),
            _ => None,
        };
        if let Some(section) = section {
            return Err(ManifestError::MissingSection {
                path,
                policy_type: manifest.policy_type.clone(),
                section,
            });
        }
        if verify {
            for (file, expected) in &manifest.files {
                let file_path = dir.join(file);
                if !file_path.is_file() {
                    return Err(ManifestError::MissingFile { path: file_path });
                }
                let found = sha256_file(&file_path).map_err(|e| ManifestError::Invalid {
                    path: file_path.clone(),
                    reason: e.to_string(),
                })?;
                if &found != expected {
                    return Err(ManifestError::Checksum {
                        path: file_path,
                        expected: expected.clone(),
                        found,
                    });
                }
            }
        }
        Ok(manifest)
    }

    /// The cameras the policy reads, in its order.
    pub fn cameras(&self) -> &[CameraSpec] {
        match (&self.vla_jepa, &self.lingbot_va) {
            (Some(spec), _) => &spec.cameras,
            (None, Some(spec)) => &spec.cameras,
            (None, None) => &[],
        }
    }

    /// The VLA-JEPA section; `load` checked it is there when the policy type says so.
    pub fn vla_jepa(&self) -> &VlaJepaSpec {
        self.vla_jepa
            .as_ref()
            .expect("a vla_jepa manifest has its section (checked at load)")
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).expect("manifest serializes");
        std::fs::write(dir.join(MANIFEST_FILE), text + "\n")
    }
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
