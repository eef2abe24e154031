//! Finding and opening the ONNX Runtime shared library for the `ort` backend. Nothing is linked
//! at build time (ort's `load-dynamic`), so the library is looked up at run time in this order:
//! `ORT_DYLIB_PATH`; the `onnxruntime`/`onnxruntime-gpu` Python package (its `capi` dir) on the
//! Python path; the system library dirs. It is opened once per process.

use ort::environment::Environment;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use thiserror::Error;

/// File names of the library: the wheel ships only the versioned one (`libonnxruntime.so.1.31.1`).
const LIBRARY_STEM: &str = "libonnxruntime.so";

/// System dirs searched after `LD_LIBRARY_PATH`.
const SYSTEM_LIBRARY_DIRS: &[&str] = &[
    "/usr/lib",
    "/usr/local/lib",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
];

const HOW_TO_INSTALL: &str = "install it with `pip install onnxruntime` (or `onnxruntime-gpu` for CUDA/TensorRT; \
on a Jetson, NVIDIA's JetPack onnxruntime-gpu wheel), or run scripts/install_onnxruntime.sh, \
or point ORT_DYLIB_PATH at a libonnxruntime.so (version 1.31 or newer)";

#[derive(Debug, Error)]
pub enum OrtLibraryError {
    #[error("ORT_DYLIB_PATH is set to {0}, but no such file exists; {HOW_TO_INSTALL}")]
    DylibPathMissing(PathBuf),
    #[error("ONNX Runtime library not found; looked in:\n{}\n{HOW_TO_INSTALL}", looked_in(.0))]
    NotFound(Vec<PathBuf>),
    #[error("opening ONNX Runtime library {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("ONNX Runtime is already loaded from {loaded} in this process; cannot also load {requested}")]
    AlreadyLoaded { loaded: PathBuf, requested: PathBuf },
    #[error("creating the ONNX Runtime environment from {path}: {reason}")]
    Environment { path: PathBuf, reason: String },
}

fn looked_in(places: &[PathBuf]) -> String {
    places.iter().map(|p| format!("  {}", p.display())).collect::<Vec<_>>().join("\n")
}

/// Where to look for the library. `from_process()` fills it from the environment; tests build it
/// with explicit paths.
#[derive(Debug, Clone, Default)]
pub struct SearchPaths {
    /// The value of `ORT_DYLIB_PATH`: when set, the only place looked.
    pub dylib_path: Option<PathBuf>,
    /// Python path entries (site-packages dirs) that may hold an `onnxruntime` package.
    pub python_paths: Vec<PathBuf>,
    /// Dirs that may hold `libonnxruntime.so*` directly.
    pub library_dirs: Vec<PathBuf>,
}

impl SearchPaths {
    /// `ORT_DYLIB_PATH`, `$PYTHONPATH` plus `sys.path` of `python3` (when installed),
    /// `$LD_LIBRARY_PATH` plus the usual system dirs.
    pub fn from_process() -> Self {
        let dylib_path = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()).map(PathBuf::from);
        let mut python_paths: Vec<PathBuf> = std::env::var_os("PYTHONPATH")
            .map(|v| std::env::split_paths(&v).collect())
            .unwrap_or_default();
        python_paths.extend(python_sys_path());
        let mut library_dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
            .map(|v| std::env::split_paths(&v).collect())
            .unwrap_or_default();
        library_dirs.extend(SYSTEM_LIBRARY_DIRS.iter().map(PathBuf::from));
        SearchPaths { dylib_path, python_paths: dedup(python_paths), library_dirs: dedup(library_dirs) }
    }
}

fn dedup(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut seen = Vec::new();
    for p in paths {
        if !p.as_os_str().is_empty() && !seen.contains(&p) {
            seen.push(p);
        }
    }
    seen
}

/// `sys.path` of `python3`, or nothing when there is no python3.
fn python_sys_path() -> Vec<PathBuf> {
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; print('\\n'.join(sys.path))"])
        .stderr(std::process::Stdio::null())
        .output();
    match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(PathBuf::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// The first `libonnxruntime.so` or `libonnxruntime.so.<version>` in `dir` (unversioned first,
/// then the highest version by name).
fn library_in(dir: &Path) -> Option<PathBuf> {
    let plain = dir.join(LIBRARY_STEM);
    if plain.is_file() {
        return Some(plain);
    }
    let mut versioned: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{LIBRARY_STEM}.")))
                && p.is_file()
        })
        .collect();
    versioned.sort();
    versioned.pop()
}

/// The library file to open, or an error naming every place looked.
pub fn find_library(search: &SearchPaths) -> Result<PathBuf, OrtLibraryError> {
    if let Some(path) = &search.dylib_path {
        return if path.is_file() { Ok(path.clone()) } else { Err(OrtLibraryError::DylibPathMissing(path.clone())) };
    }
    let mut looked = vec![PathBuf::from("ORT_DYLIB_PATH (not set)")];
    // `onnxruntime` and `onnxruntime-gpu` both install the `onnxruntime` package.
    let package_dirs = search.python_paths.iter().map(|p| p.join("onnxruntime").join("capi"));
    for dir in package_dirs.chain(search.library_dirs.iter().cloned()) {
        if let Some(lib) = library_in(&dir) {
            return Ok(lib);
        }
        looked.push(dir.join(format!("{LIBRARY_STEM}*")));
    }
    Err(OrtLibraryError::NotFound(looked))
}

/// The opened library and its environment, shared by every session of the process.
pub struct OrtRuntime {
    pub library: PathBuf,
    pub environment: Environment,
}

static RUNTIME: OnceLock<OrtRuntime> = OnceLock::new();
static OPENING: Mutex<()> = Mutex::new(());

/// Opens the library at `path` and creates the process's ONNX Runtime environment. ort holds one
/// library per process: a second call with the same file returns the first result, one with
/// another file is an error. A failed open is an error (never a panic) and may be retried.
pub fn open(path: &Path) -> Result<&'static OrtRuntime, OrtLibraryError> {
    let _guard = OPENING.lock().unwrap_or_else(|e| e.into_inner());
    let requested = path.canonicalize().map_err(|e| OrtLibraryError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if let Some(runtime) = RUNTIME.get() {
        return if runtime.library == requested {
            Ok(runtime)
        } else {
            Err(OrtLibraryError::AlreadyLoaded { loaded: runtime.library.clone(), requested })
        };
    }
    // `init_from`'s error is our own type: wrapping it in ort::Error would call into the
    // (not loaded) library.
    let builder = ort::init_from(&requested).map_err(|e| OrtLibraryError::Open {
        path: requested.clone(),
        reason: e.to_string(),
    })?;
    let environment = builder.with_name("vjx").build().map_err(|e| OrtLibraryError::Environment {
        path: requested.clone(),
        reason: e.to_string(),
    })?;
    Ok(RUNTIME.get_or_init(|| OrtRuntime { library: requested, environment }))
}

/// Finds the library from the process environment and opens it (once per process).
pub fn runtime() -> Result<&'static OrtRuntime, OrtLibraryError> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    open(&find_library(&SearchPaths::from_process())?)
}
