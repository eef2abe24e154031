//! `manifest.json`: everything the runtime needs to run an export dir, written by the
//! exporter. Loading checks the format version, the policy type, the manifest's own checksum,
//! every value the pipeline relies on (see `validate.rs`) and every file's sha256.

use crate::dexvla::DexVlaSpec;
use crate::lingbot_va::LingbotVaSpec;
use crate::normalization::{Normalization, PostStep};
use crate::tensor::{Precision, TensorSpec};
use crate::validate::{FieldError, Width};
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
/// 3: `manifest_sha256` covers the manifest itself; `files` lists every file it names.
pub const FORMAT_VERSION: u32 = 3;
/// The key of the manifest's own checksum, see [`content_sha256`].
pub const CHECKSUM_KEY: &str = "manifest_sha256";

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

/// The checksum `manifest.json` carries under [`CHECKSUM_KEY`]: the sha256 (hex) of the
/// manifest's JSON value without that key, written compactly by serde_json with the keys of
/// every object sorted (byte order), numbers as serde_json parses and prints them. Key order
/// and whitespace are thus free; any changed value, added or removed key changes it.
pub fn content_sha256(manifest: &serde_json::Value) -> String {
    let content = match manifest {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .filter(|(key, _)| *key != CHECKSUM_KEY)
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        ),
        other => other.clone(),
    };
    hex::encode(Sha256::digest(canonical(&content).to_string().as_bytes()))
}

/// `value` with the keys of every object in sorted order.
fn canonical(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
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

    /// The files the section names, by key under `policy`.
    pub fn files(&self) -> Vec<(&'static str, &str)> {
        match self {
            PolicySpec::VlaJepa(spec) => spec.files(),
            PolicySpec::LingbotVa(spec) => spec.files(),
            PolicySpec::Dexvla(spec) => spec.files(),
        }
    }

    /// Checks the section's own values (see each policy's `check`).
    pub fn check(&self) -> Result<(), FieldError> {
        match self {
            PolicySpec::VlaJepa(spec) => spec.check(),
            PolicySpec::LingbotVa(_) => Ok(()),
            PolicySpec::Dexvla(spec) => spec.check(),
        }
    }

    /// Checks the config files the section names against it.
    pub fn check_files(&self, dir: &Path) -> Result<(), ManifestError> {
        match self {
            PolicySpec::VlaJepa(spec) => spec.check_files(dir),
            PolicySpec::LingbotVa(_) => Ok(()),
            PolicySpec::Dexvla(spec) => spec.check_files(dir),
        }
    }

    /// The action width the section fixes, with its key (LingBot-VA's comes from its config).
    pub fn action_width(&self) -> Width<'static> {
        match self {
            PolicySpec::VlaJepa(spec) => Some((spec.action_dim, "policy.action_dim")),
            PolicySpec::LingbotVa(_) => None,
            PolicySpec::Dexvla(spec) => Some((spec.action_dim, "policy.action_dim")),
        }
    }

    /// The state width the section fixes, with its key.
    pub fn state_width(&self) -> Width<'static> {
        match self {
            PolicySpec::VlaJepa(spec) => spec.state_dim.map(|d| (d, "policy.state_dim")),
            PolicySpec::LingbotVa(_) => None,
            PolicySpec::Dexvla(spec) => Some((spec.state_dim, "policy.state_dim")),
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
    #[error("{path}: no `{CHECKSUM_KEY}`; re-export with this vjx")]
    NoChecksum { path: PathBuf },
    #[error(
        "{path}: the manifest was edited after export (its content hashes to {found}, \
         `{CHECKSUM_KEY}` says {expected}); re-export with this vjx instead of editing it"
    )]
    Edited {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error(
        "{path}: {key} names `{file}`, which has no entry in `files`, so its checksum is never \
         checked; re-export with this vjx"
    )]
    Unlisted {
        path: PathBuf,
        key: String,
        file: String,
    },
    /// A value the pipeline cannot use, in the manifest or in a file it names.
    #[error("{path}: {field}")]
    Field { path: PathBuf, field: FieldError },
}

impl Manifest {
    /// Reads `<dir>/manifest.json`, checks its version, policy type and own checksum,
    /// validates it ([`Manifest::validate`]) and, if `verify`, checks every file's checksum.
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
        let expected = match raw.get(CHECKSUM_KEY) {
            Some(serde_json::Value::String(sha)) => sha.clone(),
            _ => return Err(ManifestError::NoChecksum { path }),
        };
        let found = content_sha256(&raw);
        if found != expected {
            return Err(ManifestError::Edited {
                path,
                expected,
                found,
            });
        }
        let manifest: Manifest =
            serde_json::from_value(raw).map_err(|e| ManifestError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        manifest.validate(dir)?;
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

    /// Writes `<dir>/manifest.json` with its [`content_sha256`] under [`CHECKSUM_KEY`].
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::write(dir.join(MANIFEST_FILE), self.to_sealed_json() + "\n")
    }

    /// The manifest as written: pretty JSON ending with its checksum.
    fn to_sealed_json(&self) -> String {
        let text = serde_json::to_string_pretty(self).expect("manifest serializes");
        seal(&text).expect("a manifest is a JSON object")
    }
}

/// `text`, a manifest's JSON object without [`CHECKSUM_KEY`], with its [`content_sha256`]
/// added as the last key. The checksum is of the value a reader parses from this very text,
/// and the text is kept as it is: parsing and re-writing floats could change their digits.
pub fn seal(text: &str) -> Result<String, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    let sha = content_sha256(&value);
    let body = text.trim_end();
    let body = body.strip_suffix('}').unwrap_or(body).trim_end();
    Ok(format!("{body},\n  \"{CHECKSUM_KEY}\": \"{sha}\"\n}}"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_checksum_ignores_key_order_and_whitespace() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b": [1, {"y": 2, "x": 3}], "a": "s"}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":"s","b":[1,{"x":3,"y":2}]}"#).unwrap();
        assert_eq!(content_sha256(&a), content_sha256(&b));
    }

    #[test]
    fn the_checksum_changes_with_one_digit() {
        let a = json!({"normalization": {"std": [0.25, 0.5]}});
        let b = json!({"normalization": {"std": [0.25, 0.6]}});
        assert_ne!(content_sha256(&a), content_sha256(&b));
    }

    #[test]
    fn the_checksum_does_not_cover_itself() {
        let a = json!({"a": 1});
        let b = json!({"a": 1, CHECKSUM_KEY: "anything"});
        assert_eq!(content_sha256(&a), content_sha256(&b));
    }

    #[test]
    fn a_sealed_text_ends_with_the_checksum_of_its_content() {
        let sealed = seal("{\n  \"a\": 0.1,\n  \"b\": [1e-7]\n}").unwrap();
        let value: serde_json::Value = serde_json::from_str(&sealed).unwrap();
        assert!(sealed
            .trim_end()
            .ends_with(&format!("\"{}\"\n}}", content_sha256(&value))));
        assert!(sealed.starts_with("{\n  \"a\": 0.1,\n  \"b\": [1e-7],\n"));
    }
}
