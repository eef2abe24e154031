//! `manifest.json`: everything the runtime needs to run an export dir, written by the
//! exporter. Loading checks the format version, the policy type and every file's sha256.

use crate::dexvla::DexVlaSpec;
use crate::lingbot_va::LingbotVaSpec;
use crate::normalization::{Normalization, PostStep};
use crate::tensor::{Precision, TensorSpec};
use crate::vla_jepa::VlaJepaSpec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const MANIFEST_FILE: &str = "manifest.json";
/// Bumped whenever a field changes meaning; the runtime refuses other versions.
/// 2: the policy's section moved under `policy`, tagged by `type`; `precision` is checked.
pub const FORMAT_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub vjx_version: String,
    pub precision: Precision,
    pub source: Source,
    /// What the policy's runner needs besides its graphs; `type` names the policy.
    pub policy: PolicySpec,
    /// Graph role (see each policy's `roles`) → its files and I/O.
    pub graphs: BTreeMap<String, GraphEntry>,
    pub normalization: Normalization,
    pub postprocess: Vec<PostStep>,
    /// Every file of the export (graphs, weights, tokenizer, template) → sha256 hex.
    pub files: BTreeMap<String, String>,
}

/// The policy's own section of the manifest, one variant per policy vjx runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PolicySpec {
    VlaJepa(Box<VlaJepaSpec>),
    LingbotVa(LingbotVaSpec),
    Dexvla(Box<DexVlaSpec>),
}

impl PolicySpec {
    /// The `type` tags this vjx reads.
    pub const TYPES: [&'static str; 3] = ["vla_jepa", "lingbot_va", "dexvla"];

    /// The `type` tag, also the name of the policy in reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            PolicySpec::VlaJepa(_) => Self::TYPES[0],
            PolicySpec::LingbotVa(_) => Self::TYPES[1],
            PolicySpec::Dexvla(_) => Self::TYPES[2],
        }
    }

    /// The cameras the policy reads, in its order.
    pub fn cameras(&self) -> &[CameraSpec] {
        match self {
            PolicySpec::VlaJepa(spec) => &spec.cameras,
            PolicySpec::LingbotVa(spec) => &spec.cameras,
            PolicySpec::Dexvla(spec) => &spec.cameras,
        }
    }
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

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("{path}: not an export dir (no {MANIFEST_FILE}); run `vjx export` first")]
    Missing { path: PathBuf },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path}: manifest format version {found}, this vjx reads version {FORMAT_VERSION}; re-export with this vjx")]
    Version { path: PathBuf, found: u32 },
    #[error("{path}: policy type `{found}` is not supported by this vjx (supported: {})", PolicySpec::TYPES.join(", "))]
    UnsupportedPolicy { path: PathBuf, found: String },
    #[error("{path}: checksum mismatch (manifest says {expected}, file has {found}); the export is damaged, re-export it")]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{path}: listed in the manifest but missing")]
    MissingFile { path: PathBuf },
    #[error("{dir}: the manifest lists no `{role}` graph; re-export with this vjx")]
    MissingGraph { dir: PathBuf, role: String },
}

impl Manifest {
    /// Reads `<dir>/manifest.json`, checks its version and policy type and, if `verify`,
    /// every checksum.
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
        let policy_type = raw
            .pointer("/policy/type")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        if !PolicySpec::TYPES.contains(&policy_type) {
            return Err(ManifestError::UnsupportedPolicy {
                path,
                found: policy_type.to_string(),
            });
        }
        let manifest: Manifest =
            serde_json::from_value(raw).map_err(|e| ManifestError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if verify {
            manifest.verify_files(dir)?;
        }
        Ok(manifest)
    }

    fn verify_files(&self, dir: &Path) -> Result<(), ManifestError> {
        for (file, expected) in &self.files {
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
        Ok(())
    }

    /// The policy's `type` tag.
    pub fn policy_type(&self) -> &'static str {
        self.policy.type_name()
    }

    /// The cameras the policy reads, in its order.
    pub fn cameras(&self) -> &[CameraSpec] {
        self.policy.cameras()
    }

    /// The graph of `role` in the export at `dir`.
    pub fn graph(&self, dir: &Path, role: &str) -> Result<&GraphEntry, ManifestError> {
        self.graphs
            .get(role)
            .ok_or_else(|| ManifestError::MissingGraph {
                dir: dir.to_path_buf(),
                role: role.to_string(),
            })
    }

    /// The path of the graph file of `role` in the export at `dir`.
    pub fn graph_path(&self, dir: &Path, role: &str) -> Result<PathBuf, ManifestError> {
        Ok(dir.join(&self.graph(dir, role)?.file))
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
