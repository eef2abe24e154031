//! Where TensorRT's engine and timing caches live so that they survive a restart and are never
//! reused when stale. An engine is only valid for the ONNX Runtime and TensorRT versions that
//! built it, the GPU it was built on, the graph and weights it was built from, the FP16 flag and
//! the optimization profile; each such key gets its own dir, `<cache dir>/<graph stem>/<key id>/`,
//! holding a `key.json` that names every part. Preparing a graph's dir removes the dirs of that
//! graph built under another key and says which part changed.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// What a part of the key is when it cannot be found on this machine.
pub const UNKNOWN: &str = "unknown";

pub const KEY_FILE: &str = "key.json";

/// Everything a TensorRT engine depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    pub onnxruntime: String,
    pub tensorrt: String,
    pub gpu: String,
    /// sha256 of the graph file and of its external data file, by file name.
    pub graph_sha256: BTreeMap<String, String>,
    pub fp16: bool,
    /// TensorRT's min/opt/max shapes, empty when the graph has no profile.
    pub profile: String,
}

/// One part of a key that differs between a cached engine and this load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub part: &'static str,
    pub was: String,
    pub now: String,
}

impl CacheKey {
    /// 16 hex digits of the sha256 of the key: the name of its dir.
    pub fn id(&self) -> String {
        let json = serde_json::to_string(self).expect("a cache key serializes");
        hex::encode(&Sha256::digest(json.as_bytes())[..8])
    }

    /// The parts of `self` that differ from `cached`, in the key's order.
    pub fn changes_from(&self, cached: &CacheKey) -> Vec<Change> {
        let short = |digests: &BTreeMap<String, String>| {
            digests
                .iter()
                .map(|(file, sha)| format!("{file} {}", &sha[..sha.len().min(12)]))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let parts = [
            (
                "ONNX Runtime version",
                cached.onnxruntime.clone(),
                self.onnxruntime.clone(),
            ),
            (
                "TensorRT version",
                cached.tensorrt.clone(),
                self.tensorrt.clone(),
            ),
            ("GPU", cached.gpu.clone(), self.gpu.clone()),
            (
                "graph checksum",
                short(&cached.graph_sha256),
                short(&self.graph_sha256),
            ),
            ("FP16", cached.fp16.to_string(), self.fp16.to_string()),
            (
                "optimization profile",
                cached.profile.clone(),
                self.profile.clone(),
            ),
        ];
        parts
            .into_iter()
            .filter(|(_, was, now)| was != now)
            .map(|(part, was, now)| Change { part, was, now })
            .collect()
    }
}

/// Whether a graph's engine was there before its session was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineCache {
    /// No engine under this key: TensorRT builds it (and caches it) now.
    Empty,
    /// An engine built under this key is loaded instead of built.
    Populated,
}

impl EngineCache {
    pub fn name(self) -> &'static str {
        match self {
            EngineCache::Empty => "empty",
            EngineCache::Populated => "populated",
        }
    }
}

/// A removed cache dir and why it was stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleCache {
    pub dir: PathBuf,
    /// Empty when its `key.json` was missing or unreadable.
    pub changes: Vec<Change>,
}

impl StaleCache {
    /// One line for the log.
    pub fn describe(&self, graph_stem: &str) -> String {
        let why = if self.changes.is_empty() {
            format!("no readable {KEY_FILE}")
        } else {
            let parts: Vec<String> = self
                .changes
                .iter()
                .map(|c| format!("{} changed ({} -> {})", c.part, c.was, c.now))
                .collect();
            parts.join("; ")
        };
        format!(
            "TensorRT cache of {graph_stem}: {why}; removed {}, the engine is rebuilt",
            self.dir.display()
        )
    }
}

/// A graph's cache dir, ready for TensorRT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedCache {
    pub dir: PathBuf,
    pub state: EngineCache,
    pub removed: Vec<StaleCache>,
}

#[derive(Debug, Error)]
#[error("TensorRT cache {path}: {reason}")]
pub struct CacheError {
    pub path: PathBuf,
    pub reason: String,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> CacheError + '_ {
    move |e| CacheError {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// `<root>/<graph stem>/<key id>`.
pub fn key_dir(root: &Path, graph_stem: &str, key: &CacheKey) -> PathBuf {
    root.join(graph_stem).join(key.id())
}

/// Removes the dirs under `<root>/<graph stem>/` built under another key, creates this key's dir
/// with its `key.json`, and says whether an engine is already there. Files beside the key dirs
/// and other graphs' dirs are left alone.
pub fn prepare(root: &Path, graph_stem: &str, key: &CacheKey) -> Result<PreparedCache, CacheError> {
    let graph_dir = root.join(graph_stem);
    let dir = key_dir(root, graph_stem, key);
    let mut removed = Vec::new();
    if graph_dir.is_dir() {
        for entry in std::fs::read_dir(&graph_dir).map_err(io_err(&graph_dir))? {
            let other = entry.map_err(io_err(&graph_dir))?.path();
            if other == dir || !other.is_dir() {
                continue;
            }
            let changes = read_key(&other)
                .map(|cached| key.changes_from(&cached))
                .unwrap_or_default();
            std::fs::remove_dir_all(&other).map_err(io_err(&other))?;
            removed.push(StaleCache {
                dir: other,
                changes,
            });
        }
    }
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let key_file = dir.join(KEY_FILE);
    if read_key(&dir).as_ref() != Some(key) {
        let json = serde_json::to_string_pretty(key).expect("a cache key serializes");
        std::fs::write(&key_file, json + "\n").map_err(io_err(&key_file))?;
    }
    let state = if has_engine(&dir).map_err(io_err(&dir))? {
        EngineCache::Populated
    } else {
        EngineCache::Empty
    };
    Ok(PreparedCache {
        dir,
        state,
        removed,
    })
}

fn read_key(dir: &Path) -> Option<CacheKey> {
    serde_json::from_str(&std::fs::read_to_string(dir.join(KEY_FILE)).ok()?).ok()
}

/// ONNX Runtime names its TensorRT engines `<prefix>_<hash>_<n>_<n>_sm<cc>.engine`.
fn has_engine(dir: &Path) -> std::io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        if entry?.path().extension().is_some_and(|e| e == "engine") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// sha256 of a graph file and of its external data file (`<graph>.data`, as vjx writes it) when
/// there is one: for graphs outside an export, whose manifest would hold them.
pub fn hash_graph_files(graph_file: &Path) -> Result<BTreeMap<String, String>, CacheError> {
    let mut digests = BTreeMap::new();
    let data_file = PathBuf::from(format!("{}.data", graph_file.display()));
    for file in [graph_file, data_file.as_path()] {
        if file == data_file && !file.is_file() {
            continue;
        }
        let sha = crate::manifest::sha256_file(file).map_err(io_err(file))?;
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        digests.insert(name, sha);
    }
    Ok(digests)
}

/// The TensorRT version of the first `libnvinfer.so.X.Y.Z` in `dirs` (the highest, when a dir
/// holds several), or [`UNKNOWN`].
pub fn tensorrt_version(dirs: &[PathBuf]) -> String {
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let best = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| libnvinfer_version(&e.file_name().to_string_lossy()))
            .max();
        if let Some((major, minor, patch)) = best {
            return format!("{major}.{minor}.{patch}");
        }
    }
    UNKNOWN.to_string()
}

/// `libnvinfer.so.10.3.0` → (10, 3, 0); `None` for `libnvinfer.so`, `libnvinfer.so.10` or another library.
pub fn libnvinfer_version(file_name: &str) -> Option<(u32, u32, u32)> {
    let version = file_name.strip_prefix("libnvinfer.so.")?;
    let parts: Vec<u32> = version
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match parts[..] {
        [major, minor, patch, ..] => Some((major, minor, patch)),
        _ => None,
    }
}

/// Where TensorRT's library is looked for: `LD_LIBRARY_PATH`, beside ONNX Runtime's library and
/// in pip's `tensorrt_libs` next to its Python package, then the usual system dirs (JetPack puts
/// it in /usr/lib/aarch64-linux-gnu).
pub fn tensorrt_search_dirs(onnxruntime_library: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    if let Some(lib_dir) = onnxruntime_library.parent() {
        dirs.push(lib_dir.to_path_buf());
        if let Some(site_packages) = lib_dir.parent().and_then(Path::parent) {
            dirs.push(site_packages.join("tensorrt_libs"));
        }
    }
    dirs.extend(
        [
            "/usr/lib/aarch64-linux-gnu",
            "/usr/lib/x86_64-linux-gnu",
            "/usr/local/cuda/lib64",
            "/usr/lib",
            "/usr/local/lib",
        ]
        .iter()
        .map(PathBuf::from),
    );
    dirs
}

/// What GPU `device_id` is: the Jetson board, else the driver's model name, else what
/// `nvidia-smi` says (name and compute capability), else [`UNKNOWN`].
pub fn gpu_identity(device_id: i32) -> String {
    if let Some(model) = std::fs::read("/proc/device-tree/model")
        .ok()
        .and_then(|b| jetson_model(&b))
    {
        return model;
    }
    if let Some(model) = proc_driver_gpu_model(device_id) {
        return model;
    }
    nvidia_smi_gpu(device_id).unwrap_or_else(|| UNKNOWN.to_string())
}

/// The board name from `/proc/device-tree/model` when it is an NVIDIA (Jetson) board.
pub fn jetson_model(device_tree_model: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(device_tree_model);
    let model = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (model.contains("Jetson") || model.contains("NVIDIA")).then(|| model.to_string())
}

/// The `Model:` line of `/proc/driver/nvidia/gpus/<bus id>/information`.
pub fn driver_gpu_model(information: &str) -> Option<String> {
    information
        .lines()
        .find_map(|l| l.strip_prefix("Model:"))
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
}

/// The `device_id`-th GPU in bus order, as CUDA numbers them with `CUDA_DEVICE_ORDER=PCI_BUS_ID`.
fn proc_driver_gpu_model(device_id: i32) -> Option<String> {
    let mut gpus: Vec<PathBuf> = std::fs::read_dir("/proc/driver/nvidia/gpus")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    gpus.sort();
    let info = std::fs::read_to_string(
        gpus.get(usize::try_from(device_id).ok()?)?
            .join("information"),
    )
    .ok()?;
    driver_gpu_model(&info)
}

fn nvidia_smi_gpu(device_id: i32) -> Option<String> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,compute_cap",
            "--format=csv,noheader",
            "-i",
            &device_id.to_string(),
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?.trim();
    (out.status.success() && !line.is_empty()).then(|| line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CacheKey {
        CacheKey {
            onnxruntime: "1.22.1".into(),
            tensorrt: "10.3.0".into(),
            gpu: "NVIDIA Jetson AGX Orin Developer Kit".into(),
            graph_sha256: BTreeMap::from([
                (
                    "vision.onnx".into(),
                    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
                ),
                (
                    "vision.onnx.data".into(),
                    "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752".into(),
                ),
            ]),
            fp16: true,
            profile:
                "min=pixel_values:256x1536|opt=pixel_values:256x1536|max=pixel_values:256x1536"
                    .into(),
        }
    }

    fn write_engine(dir: &Path) {
        std::fs::write(
            dir.join("vision_2068723788287043730_0_0_sm87.engine"),
            b"engine",
        )
        .unwrap();
    }

    #[test]
    fn equal_keys_share_a_dir_and_any_changed_part_moves_it() {
        let root = Path::new("/cache");
        assert_eq!(
            key_dir(root, "vision", &key()),
            key_dir(root, "vision", &key())
        );
        let variants: [fn(&mut CacheKey); 6] = [
            |k| k.onnxruntime = "1.25.1".into(),
            |k| k.tensorrt = "10.7.0".into(),
            |k| k.gpu = "NVIDIA GeForce RTX 4090, 8.9".into(),
            |k| *k.graph_sha256.get_mut("vision.onnx.data").unwrap() = "00".repeat(32),
            |k| k.fp16 = false,
            |k| k.profile = String::new(),
        ];
        for change in variants {
            let mut other = key();
            change(&mut other);
            assert_ne!(
                key_dir(root, "vision", &other),
                key_dir(root, "vision", &key()),
                "{other:?}"
            );
        }
    }

    #[test]
    fn the_changed_parts_are_named_with_both_values() {
        let mut now = key();
        now.onnxruntime = "1.25.1".into();
        now.fp16 = false;
        let changes = now.changes_from(&key());
        assert_eq!(
            changes,
            vec![
                Change {
                    part: "ONNX Runtime version",
                    was: "1.22.1".into(),
                    now: "1.25.1".into()
                },
                Change {
                    part: "FP16",
                    was: "true".into(),
                    now: "false".into()
                },
            ]
        );
        assert!(key().changes_from(&key()).is_empty());
    }

    #[test]
    fn a_first_load_creates_the_key_dir_with_its_key_and_finds_it_empty() {
        let root = tempfile::tempdir().unwrap();
        let prepared = prepare(root.path(), "vision", &key()).unwrap();
        assert_eq!(prepared.dir, root.path().join("vision").join(key().id()));
        assert_eq!(prepared.state, EngineCache::Empty);
        assert!(prepared.removed.is_empty());
        let written: CacheKey =
            serde_json::from_str(&std::fs::read_to_string(prepared.dir.join(KEY_FILE)).unwrap())
                .unwrap();
        assert_eq!(written, key());
    }

    #[test]
    fn a_restart_with_the_same_key_finds_the_engine_and_keeps_it() {
        let root = tempfile::tempdir().unwrap();
        let first = prepare(root.path(), "vision", &key()).unwrap();
        write_engine(&first.dir);
        let second = prepare(root.path(), "vision", &key()).unwrap();
        assert_eq!(second.dir, first.dir);
        assert_eq!(second.state, EngineCache::Populated);
        assert!(second.removed.is_empty());
    }

    #[test]
    fn a_stale_cache_of_the_same_graph_is_removed_and_its_change_named() {
        let root = tempfile::tempdir().unwrap();
        let old = prepare(root.path(), "vision", &key()).unwrap();
        write_engine(&old.dir);
        let mut upgraded = key();
        upgraded.tensorrt = "10.7.0".into();
        let new = prepare(root.path(), "vision", &upgraded).unwrap();
        assert_eq!(new.state, EngineCache::Empty);
        assert!(!old.dir.exists(), "the stale engine dir is still there");
        assert_eq!(new.removed.len(), 1);
        assert_eq!(new.removed[0].dir, old.dir);
        let line = new.removed[0].describe("vision");
        assert!(
            line.contains("TensorRT version changed (10.3.0 -> 10.7.0)"),
            "{line}"
        );
        assert!(line.contains(&*old.dir.to_string_lossy()), "{line}");
    }

    #[test]
    fn other_graphs_and_loose_files_are_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let text = prepare(root.path(), "text", &key()).unwrap();
        std::fs::write(root.path().join("vision_notes.txt"), b"mine").unwrap();
        std::fs::create_dir_all(root.path().join("vision")).unwrap();
        std::fs::write(root.path().join("vision").join("README"), b"mine").unwrap();
        let mut other = key();
        other.fp16 = false;
        prepare(root.path(), "vision", &other).unwrap();
        assert!(text.dir.join(KEY_FILE).is_file());
        assert!(root.path().join("vision_notes.txt").is_file());
        assert!(root.path().join("vision").join("README").is_file());
    }

    #[test]
    fn a_key_dir_without_a_readable_key_is_stale() {
        let root = tempfile::tempdir().unwrap();
        let broken = root.path().join("vision").join("0123456789abcdef");
        std::fs::create_dir_all(&broken).unwrap();
        std::fs::write(broken.join(KEY_FILE), b"{ not json").unwrap();
        let prepared = prepare(root.path(), "vision", &key()).unwrap();
        assert_eq!(
            prepared.removed,
            vec![StaleCache {
                dir: broken.clone(),
                changes: vec![]
            }]
        );
        assert!(prepared.removed[0]
            .describe("vision")
            .contains("no readable key.json"));
        assert!(!broken.exists());
    }

    #[test]
    fn the_tensorrt_version_comes_from_the_first_dir_with_a_full_libnvinfer_name() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(a.path().join("libnvinfer.so.10"), b"").unwrap();
        for name in [
            "libnvinfer.so.8.6.2",
            "libnvinfer.so.10.3.0",
            "libnvinfer_plugin.so.10.3.0",
        ] {
            std::fs::write(b.path().join(name), b"").unwrap();
        }
        let dirs = vec![
            PathBuf::from("/nonexistent"),
            a.path().to_path_buf(),
            b.path().to_path_buf(),
        ];
        assert_eq!(tensorrt_version(&dirs), "10.3.0");
        assert_eq!(tensorrt_version(&dirs[..2]), UNKNOWN);
    }

    #[test]
    fn libnvinfer_names_give_their_version() {
        assert_eq!(libnvinfer_version("libnvinfer.so.10.3.0"), Some((10, 3, 0)));
        assert_eq!(libnvinfer_version("libnvinfer.so.8.5.2.2"), Some((8, 5, 2)));
        assert_eq!(libnvinfer_version("libnvinfer.so.10"), None);
        assert_eq!(libnvinfer_version("libnvinfer_plugin.so.10.3.0"), None);
    }

    #[test]
    fn a_jetson_is_named_by_its_board() {
        assert_eq!(
            jetson_model(b"NVIDIA Jetson AGX Orin Developer Kit\0").as_deref(),
            Some("NVIDIA Jetson AGX Orin Developer Kit")
        );
        assert_eq!(jetson_model(b"Raspberry Pi 4 Model B Rev 1.4\0"), None);
    }

    #[test]
    fn a_discrete_gpu_is_named_by_the_drivers_model_line() {
        let info =
            "Model: \t\t NVIDIA GeForce RTX 4090\nIRQ:   \t\t 186\nBus Location: \t 0000:01:00.0\n";
        assert_eq!(
            driver_gpu_model(info).as_deref(),
            Some("NVIDIA GeForce RTX 4090")
        );
        assert_eq!(driver_gpu_model("IRQ: 186\n"), None);
    }

    #[test]
    fn a_graph_outside_an_export_is_keyed_by_its_files_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let graph = dir.path().join("g.onnx");
        std::fs::write(&graph, b"graph").unwrap();
        let alone = hash_graph_files(&graph).unwrap();
        assert_eq!(alone.keys().collect::<Vec<_>>(), ["g.onnx"]);
        std::fs::write(dir.path().join("g.onnx.data"), b"weights").unwrap();
        let with_data = hash_graph_files(&graph).unwrap();
        assert_eq!(
            with_data.keys().collect::<Vec<_>>(),
            ["g.onnx", "g.onnx.data"]
        );
        assert_eq!(with_data["g.onnx"], alone["g.onnx"]);
        assert_eq!(
            with_data["g.onnx.data"],
            crate::manifest::sha256_file(&dir.path().join("g.onnx.data")).unwrap()
        );
    }
}
