//! Finding and opening the ONNX Runtime shared library for the `ort` backend. Nothing is linked
//! at build time (ort's `load-dynamic`), so the library is looked up at run time in this order:
//! `ORT_DYLIB_PATH`; the `onnxruntime`/`onnxruntime-gpu` Python package (its `capi` dir) on the
//! Python path; the system library dirs. It is opened once per process, after its version is read
//! and checked: `ort` is built at ONNX Runtime's API level 17, so 1.17 is the oldest it runs.

use super::ort_version::OrtVersion;
use ort::environment::Environment;
use std::ffi::CStr;
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

/// The oldest ONNX Runtime whose C API has the level `ort` is built against (`api-17`).
pub const MINIMUM_VERSION: OrtVersion = OrtVersion::new(1, ort::MINOR_VERSION, 0);

const HOW_TO_INSTALL: &str = "install it with `pip install onnxruntime` (or `onnxruntime-gpu` for CUDA/TensorRT; \
on a Jetson with JetPack 6, onnxruntime-gpu from the jetson-ai-lab pip index, see the README's Jetson section), \
or run scripts/install_onnxruntime.sh, or point ORT_DYLIB_PATH at a libonnxruntime.so (version 1.17 or newer)";

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
    #[error("{path}: cannot tell which ONNX Runtime version this is: {reason}")]
    UnknownVersion { path: PathBuf, reason: String },
    #[error("{path} is ONNX Runtime {version}; the ort backend needs {MINIMUM_VERSION} or newer. {}", too_old_hint(.version))]
    TooOld { path: PathBuf, version: OrtVersion },
}

fn too_old_hint(version: &OrtVersion) -> String {
    if (version.major, version.minor) == (1, 16) {
        format!(
            "ONNX Runtime 1.16 is what JetPack 5 (CUDA 11.4, TensorRT 8.5) gets: there, run with `--backend tract` \
             (the CPU, nothing to install), or build ONNX Runtime 1.17 or newer from source against TensorRT 8.5 \
             (untested). Elsewhere, {HOW_TO_INSTALL}"
        )
    } else {
        format!("To fix: {HOW_TO_INSTALL}")
    }
}

fn looked_in(places: &[PathBuf]) -> String {
    places
        .iter()
        .map(|p| format!("  {}", p.display()))
        .collect::<Vec<_>>()
        .join("\n")
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
        let dylib_path = std::env::var_os("ORT_DYLIB_PATH")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let mut python_paths: Vec<PathBuf> = std::env::var_os("PYTHONPATH")
            .map(|v| std::env::split_paths(&v).collect())
            .unwrap_or_default();
        python_paths.extend(python_sys_path());
        let mut library_dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
            .map(|v| std::env::split_paths(&v).collect())
            .unwrap_or_default();
        library_dirs.extend(SYSTEM_LIBRARY_DIRS.iter().map(PathBuf::from));
        SearchPaths {
            dylib_path,
            python_paths: dedup(python_paths),
            library_dirs: dedup(library_dirs),
        }
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
/// then the highest version).
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
    versioned.sort_by_key(|p| (OrtVersion::from_file_name(p), p.clone()));
    versioned.pop()
}

/// The library file to open, or an error naming every place looked.
pub fn find_library(search: &SearchPaths) -> Result<PathBuf, OrtLibraryError> {
    if let Some(path) = &search.dylib_path {
        return if path.is_file() {
            Ok(path.clone())
        } else {
            Err(OrtLibraryError::DylibPathMissing(path.clone()))
        };
    }
    let mut looked = vec![PathBuf::from("ORT_DYLIB_PATH (not set)")];
    // `onnxruntime` and `onnxruntime-gpu` both install the `onnxruntime` package.
    let package_dirs = search
        .python_paths
        .iter()
        .map(|p| p.join("onnxruntime").join("capi"));
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
    /// What the library reports (`OrtGetApiBase()->GetVersionString()`), else its file name's.
    pub version: OrtVersion,
    pub environment: Environment,
}

/// The version of the ONNX Runtime library at `path`, read from the library itself; the
/// version in its file name when the library's own string does not parse.
pub fn library_version(path: &Path) -> Result<OrtVersion, OrtLibraryError> {
    let reported = reported_version(path)?;
    reported.parse().or_else(|reason| {
        OrtVersion::from_file_name(path).ok_or_else(|| OrtLibraryError::UnknownVersion {
            path: path.to_path_buf(),
            reason,
        })
    })
}

/// Calls `OrtGetApiBase()->GetVersionString()`, which every ONNX Runtime since 1.0 exports.
fn reported_version(path: &Path) -> Result<String, OrtLibraryError> {
    let open_err = |reason: String| OrtLibraryError::Open {
        path: path.to_path_buf(),
        reason,
    };
    // SAFETY: loading runs the library's initialisers, as `ort` itself does when it opens it; the
    // symbol has the C API's documented signature and both calls only return static data.
    unsafe {
        let library = libloading::Library::new(path).map_err(|e| open_err(e.to_string()))?;
        let api_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
            library.get(b"OrtGetApiBase").map_err(|_| {
                open_err("no `OrtGetApiBase` symbol: not an ONNX Runtime library".into())
            })?;
        let base = api_base();
        if base.is_null() {
            return Err(open_err("`OrtGetApiBase` returned null".into()));
        }
        let text = ((*base).GetVersionString)();
        if text.is_null() {
            return Err(open_err("`GetVersionString` returned null".into()));
        }
        let version = CStr::from_ptr(text).to_string_lossy().into_owned();
        // Kept loaded: `ort` opens the same file next, and ONNX Runtime is not made to be unloaded.
        std::mem::forget(library);
        Ok(version)
    }
}

/// Refuses a library older than [`MINIMUM_VERSION`], naming it and what to install instead.
pub fn check_version(path: &Path, version: OrtVersion) -> Result<(), OrtLibraryError> {
    if version < MINIMUM_VERSION {
        return Err(OrtLibraryError::TooOld {
            path: path.to_path_buf(),
            version,
        });
    }
    Ok(())
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
            Err(OrtLibraryError::AlreadyLoaded {
                loaded: runtime.library.clone(),
                requested,
            })
        };
    }
    let version = library_version(&requested)?;
    check_version(&requested, version)?;
    // `init_from`'s error is our own type: wrapping it in ort::Error would call into the
    // (not loaded) library.
    let builder = ort::init_from(&requested).map_err(|e| OrtLibraryError::Open {
        path: requested.clone(),
        reason: e.to_string(),
    })?;
    let environment =
        builder
            .with_name("vjx")
            .build()
            .map_err(|e| OrtLibraryError::Environment {
                path: requested.clone(),
                reason: e.to_string(),
            })?;
    Ok(RUNTIME.get_or_init(|| OrtRuntime {
        library: requested,
        version,
        environment,
    }))
}

/// Finds the library from the process environment and opens it (once per process).
pub fn runtime() -> Result<&'static OrtRuntime, OrtLibraryError> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    open(&find_library(&SearchPaths::from_process())?)
}
