//! Finds a checkpoint or backbone on disk from what the user typed: a local directory, a
//! snapshot already in the Hugging Face cache, or (when online) a fresh download into it.

// Resolution fails at most once per run; its error carries every place looked, unboxed.
#![allow(clippy::result_large_err)]

use std::fmt;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const DEFAULT_REVISION: &str = "main";
const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How the files were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Local,
    Cache,
    Downloaded,
}

/// A directory holding the requested files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRepo {
    pub root: PathBuf,
    pub origin: Origin,
}

impl ResolvedRepo {
    pub fn path(&self, file: &str) -> PathBuf {
        self.root.join(file)
    }
}

/// Where and how to look, read from the environment by [`ResolveOptions::from_env`] or
/// spelled out by tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOptions {
    /// Hub cache roots in the order they are searched; downloads go into the first.
    pub cache_roots: Vec<CacheRoot>,
    /// No network: only local dirs and the cache.
    pub offline: bool,
    pub progress: bool,
    pub endpoint: String,
    pub token: Option<String>,
}

/// One hub cache directory (the one holding `models--org--name/`) and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRoot {
    pub dir: PathBuf,
    pub from: &'static str,
}

impl ResolveOptions {
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Same as [`from_env`](Self::from_env) with `var` standing in for `std::env::var`.
    ///
    /// The cache is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
    /// Every one that is set is searched, in that order, so a model cached under a
    /// different setting is still found; downloads go into the first.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mut cache_roots = Vec::new();
        if let Some(dir) = set("HF_HUB_CACHE") {
            cache_roots.push(CacheRoot {
                dir: PathBuf::from(dir),
                from: "$HF_HUB_CACHE",
            });
        }
        if let Some(home) = set("HF_HOME") {
            cache_roots.push(CacheRoot {
                dir: PathBuf::from(home).join("hub"),
                from: "$HF_HOME/hub",
            });
        }
        if let Some(home) = set("HOME").or_else(|| set("USERPROFILE")) {
            cache_roots.push(CacheRoot {
                dir: PathBuf::from(home)
                    .join(".cache")
                    .join("huggingface")
                    .join("hub"),
                from: "~/.cache/huggingface/hub",
            });
        }
        cache_roots.dedup_by(|a, b| a.dir == b.dir);
        ResolveOptions {
            cache_roots,
            offline: set("HF_HUB_OFFLINE").is_some_and(|v| is_truthy(&v)),
            progress: true,
            endpoint: set("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
            token: set("HF_TOKEN"),
        }
    }
}

/// huggingface_hub's reading of a boolean environment variable.
fn is_truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_uppercase().as_str(),
        "1" | "ON" | "YES" | "TRUE"
    )
}

/// Every place that was searched, for error messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacesLooked(pub Vec<PathBuf>);

impl fmt::Display for PlacesLooked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(
                f,
                "  (no cache directory: HOME, HF_HOME and HF_HUB_CACHE are all unset)"
            );
        }
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|p| format!("  {}", p.display()))
            .collect();
        write!(f, "{}", lines.join("\n"))
    }
}

#[derive(Debug, Error)]
pub enum ResolveError {
    #[error("`{spec}` is neither an existing directory nor a hub id of the form `org/name`")]
    NotADirOrHubId { spec: String },
    #[error("{path} exists but is not a directory (give the directory that holds {files:?})")]
    NotADirectory { path: PathBuf, files: Vec<String> },
    #[error("`{file}` is missing from the local directory {dir}")]
    MissingLocalFile { file: String, dir: PathBuf },
    #[error(
        "`{repo}` (revision {revision}) is not available offline: {missing:?} not found. Looked in:\n{looked}\n\
         To fix: pass a local directory (e.g. `--backbone <dir>`), point HF_HUB_CACHE at a cache \
         that holds it, or go online (unset HF_HUB_OFFLINE) to download it"
    )]
    NotCachedOffline {
        repo: String,
        revision: String,
        missing: Vec<String>,
        looked: PlacesLooked,
    },
    #[error(
        "could not download `{file}` of `{repo}` (revision {revision}) into {cache}: {reason}\n\
         Also looked in:\n{looked}\n\
         To fix: check the hub id, revision and network (the hub may be unreachable), pass a \
         local directory (e.g. `--backbone <dir>`), or point HF_HUB_CACHE at a cache that holds it"
    )]
    DownloadFailed {
        repo: String,
        revision: String,
        file: String,
        cache: PathBuf,
        reason: String,
        looked: PlacesLooked,
    },
    #[error(
        "`{repo}` is not cached and there is no cache directory to download it into \
         (HOME, HF_HOME and HF_HUB_CACHE are all unset); set HF_HUB_CACHE or pass a local directory"
    )]
    NoCacheDir { repo: String },
}

/// Finds `spec` (a local directory or a hub id `org/name`) holding all of `files`, reading
/// the cache location and offline mode from the environment.
pub fn resolve(
    spec: &str,
    revision: Option<&str>,
    files: &[&str],
    progress: bool,
) -> Result<ResolvedRepo, ResolveError> {
    let options = ResolveOptions {
        progress,
        ..ResolveOptions::from_env()
    };
    resolve_with(spec, revision, files, &options)
}

/// [`resolve`] with explicit options.
pub fn resolve_with(
    spec: &str,
    revision: Option<&str>,
    files: &[&str],
    options: &ResolveOptions,
) -> Result<ResolvedRepo, ResolveError> {
    let local = Path::new(spec);
    if local.exists() {
        return resolve_local(local, files);
    }
    if !is_hub_id(spec) {
        return Err(ResolveError::NotADirOrHubId {
            spec: spec.to_string(),
        });
    }
    let revision = revision.unwrap_or(DEFAULT_REVISION);

    let mut looked = PlacesLooked(vec![
        std::path::absolute(local).unwrap_or_else(|_| local.to_path_buf())
    ]);
    let mut most_complete: Option<(PathBuf, Vec<String>)> = None;
    for root in &options.cache_roots {
        let repo_dir = root.dir.join(repo_folder_name(spec));
        match snapshot_dir(&repo_dir, revision) {
            Some(snapshot) => {
                let missing = missing_files(&snapshot, files);
                if missing.is_empty() {
                    return Ok(ResolvedRepo {
                        root: snapshot,
                        origin: Origin::Cache,
                    });
                }
                looked.0.push(snapshot.clone());
                if most_complete
                    .as_ref()
                    .is_none_or(|(_, m)| missing.len() < m.len())
                {
                    most_complete = Some((snapshot, missing));
                }
            }
            None => looked.0.push(repo_dir),
        }
    }

    if options.offline {
        let missing = most_complete
            .map(|(_, m)| m)
            .unwrap_or_else(|| files.iter().map(|f| f.to_string()).collect());
        return Err(ResolveError::NotCachedOffline {
            repo: spec.to_string(),
            revision: revision.to_string(),
            missing,
            looked,
        });
    }
    download(spec, revision, files, options, looked)
}

fn resolve_local(dir: &Path, files: &[&str]) -> Result<ResolvedRepo, ResolveError> {
    if !dir.is_dir() {
        return Err(ResolveError::NotADirectory {
            path: dir.to_path_buf(),
            files: files.iter().map(|f| f.to_string()).collect(),
        });
    }
    if let Some(file) = missing_files(dir, files).into_iter().next() {
        return Err(ResolveError::MissingLocalFile {
            file,
            dir: dir.to_path_buf(),
        });
    }
    Ok(ResolvedRepo {
        root: dir.to_path_buf(),
        origin: Origin::Local,
    })
}

/// `org/name` or a bare `name`: the characters the hub allows, at most one slash.
fn is_hub_id(spec: &str) -> bool {
    let parts: Vec<&str> = spec.split('/').collect();
    let part_ok = |p: &&str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (1..=2).contains(&parts.len()) && parts.iter().all(part_ok)
}

/// `org/name` → `models--org--name`, the layout huggingface_hub and hf-hub share.
fn repo_folder_name(repo_id: &str) -> String {
    format!("models--{}", repo_id.replace('/', "--"))
}

fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit())
}

/// The snapshot directory a revision points to in `repo_dir`, if it exists: a commit hash
/// names its snapshot directly; a branch or tag goes through `refs/<revision>`.
fn snapshot_dir(repo_dir: &Path, revision: &str) -> Option<PathBuf> {
    let snapshots = repo_dir.join("snapshots");
    if is_commit_hash(revision) {
        let dir = snapshots.join(revision);
        return dir.is_dir().then_some(dir);
    }
    let commit = std::fs::read_to_string(repo_dir.join("refs").join(revision)).ok()?;
    let dir = snapshots.join(commit.trim());
    dir.is_dir().then_some(dir)
}

fn missing_files(dir: &Path, files: &[&str]) -> Vec<String> {
    files
        .iter()
        .filter(|f| !dir.join(f).is_file())
        .map(|f| f.to_string())
        .collect()
}

/// Downloads `files` into the first cache root with hf-hub (which skips files it already has).
fn download(
    repo_id: &str,
    revision: &str,
    files: &[&str],
    options: &ResolveOptions,
    looked: PlacesLooked,
) -> Result<ResolvedRepo, ResolveError> {
    let cache_root = options
        .cache_roots
        .first()
        .ok_or_else(|| ResolveError::NoCacheDir {
            repo: repo_id.to_string(),
        })?;
    let failed = |file: &str, reason: String| ResolveError::DownloadFailed {
        repo: repo_id.to_string(),
        revision: revision.to_string(),
        file: file.to_string(),
        cache: cache_root.dir.clone(),
        reason,
        looked: looked.clone(),
    };
    let mut builder = ApiBuilder::from_cache(Cache::new(cache_root.dir.clone()))
        .with_progress(options.progress)
        .with_endpoint(options.endpoint.clone());
    if options.token.is_some() {
        builder = builder.with_token(options.token.clone());
    }
    let api = builder
        .build()
        .map_err(|e| failed(files.first().copied().unwrap_or(""), e.to_string()))?;
    let repo = api.repo(Repo::with_revision(
        repo_id.to_string(),
        RepoType::Model,
        revision.to_string(),
    ));

    let mut snapshot: Option<PathBuf> = None;
    for file in files {
        let path = repo.get(file).map_err(|e| failed(file, e.to_string()))?;
        snapshot = Some(snapshot_root_of(&path, file));
    }
    let root = match snapshot {
        Some(root) => root,
        None => snapshot_dir(&cache_root.dir.join(repo_folder_name(repo_id)), revision)
            .ok_or_else(|| {
                failed(
                    "",
                    "no files were requested and no snapshot exists".to_string(),
                )
            })?,
    };
    Ok(ResolvedRepo {
        root,
        origin: Origin::Downloaded,
    })
}

/// `snapshots/<hash>/a/b.json` for file `a/b.json` → `snapshots/<hash>`.
fn snapshot_root_of(path: &Path, file: &str) -> PathBuf {
    let depth = Path::new(file).components().count();
    let mut root = path.to_path_buf();
    for _ in 0..depth {
        root.pop();
    }
    root
}
