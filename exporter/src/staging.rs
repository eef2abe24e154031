//! The temp dir an export is written into beside `--out`, and what removes it when the export
//! does not finish: dropping it (an error), SIGINT/SIGTERM/SIGHUP (removed, then the process
//! ends by the signal), and for a crash or SIGKILL, the next export into the same parent.
//!
//! Its writer holds an exclusive `flock` on the dir's [`LOCK_FILE`] for as long as it lives;
//! the kernel releases it however the writer ends. A staging dir whose lock can be taken is
//! therefore stale, and one whose lock is held belongs to a running export and is left alone,
//! as is a dir without the lock file (being created, being moved into place, or written by an
//! older vjx).

use std::fs::File;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// The name every staging dir starts with.
pub const PREFIX: &str = ".vjx-export-";
/// The file in a staging dir its writer keeps locked; not part of the export.
pub const LOCK_FILE: &str = ".vjx-export.lock";

/// A staging dir, removed on drop unless [`Staging::persist`] moved it into place.
pub struct Staging {
    dir: Option<TempDir>,
    _lock: File,
}

impl Staging {
    /// Creates a locked staging dir in `parent` that interrupts remove.
    pub fn create(parent: &Path) -> std::io::Result<Self> {
        interrupts::install();
        let dir = tempfile::Builder::new().prefix(PREFIX).tempdir_in(parent)?;
        let lock = lock::create_locked(dir.path())?;
        interrupts::register(dir.path());
        Ok(Staging {
            dir: Some(dir),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("staging dir").path()
    }

    /// Moves the finished export to `out` (which must not exist), without its lock file.
    pub fn persist(mut self, out: &Path) -> std::io::Result<()> {
        let dir = self.dir.take().expect("staging dir");
        std::fs::remove_file(dir.path().join(LOCK_FILE))?;
        let staged = dir.keep();
        let moved = std::fs::rename(&staged, out);
        interrupts::deregister(&staged);
        if moved.is_err() {
            let _ = std::fs::remove_dir_all(&staged);
        }
        moved
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            drop(dir);
            interrupts::deregister(&path);
        }
    }
}

/// Removes the staging dirs in `parent` that no live export holds; returns those removed.
/// Best effort: a dir that cannot be removed is left for a later export.
pub fn remove_stale(parent: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(PREFIX))
        })
        .filter(|dir| lock::is_stale(dir) && std::fs::remove_dir_all(dir).is_ok())
        .collect()
}

#[cfg(unix)]
mod lock {
    use super::LOCK_FILE;
    use std::fs::File;
    use std::os::fd::AsRawFd;
    use std::path::Path;

    fn try_lock(file: &File) -> bool {
        // SAFETY: flock on a file descriptor this process owns.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
    }

    /// The dir's lock file, locked. It appears under its name only once locked, so that no
    /// other export can take a live dir's lock in between.
    pub(super) fn create_locked(dir: &Path) -> std::io::Result<File> {
        let pending = dir.join(format!("{LOCK_FILE}.pending"));
        let file = File::create(&pending)?;
        if !try_lock(&file) {
            return Err(std::io::Error::last_os_error());
        }
        std::fs::write(&pending, format!("{}\n", std::process::id()))?;
        std::fs::rename(&pending, dir.join(LOCK_FILE))?;
        Ok(file)
    }

    /// Whether `dir` has a lock file that no process holds.
    pub(super) fn is_stale(dir: &Path) -> bool {
        File::open(dir.join(LOCK_FILE)).is_ok_and(|file| try_lock(&file))
    }
}

#[cfg(not(unix))]
mod lock {
    use super::LOCK_FILE;
    use std::fs::File;
    use std::path::Path;

    /// Without `flock`, the lock file only marks the dir; stale dirs are never removed.
    pub(super) fn create_locked(dir: &Path) -> std::io::Result<File> {
        File::create(dir.join(LOCK_FILE))
    }

    pub(super) fn is_stale(_dir: &Path) -> bool {
        false
    }
}

/// The staging dirs of this process, removed when a terminating signal arrives.
#[cfg(unix)]
mod interrupts {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, Once};

    static ACTIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    /// Starts the thread that, on SIGINT, SIGTERM or SIGHUP, removes the registered dirs and
    /// then ends the process as the signal would have.
    pub(super) fn install() {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
                return;
            };
            std::thread::spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    let dirs = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
                    dirs.iter().for_each(|dir| remove(dir));
                    let _ = signal_hook::low_level::emulate_default_handler(signal);
                    std::process::exit(128 + signal);
                }
            });
        });
    }

    /// Removes `dir`, retrying while the export's own thread still adds files to it.
    fn remove(dir: &Path) {
        for _ in 0..10 {
            if std::fs::remove_dir_all(dir).is_ok() || !dir.exists() {
                return;
            }
        }
    }

    pub(super) fn register(dir: &Path) {
        let mut dirs = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        dirs.push(dir.to_path_buf());
    }

    pub(super) fn deregister(dir: &Path) {
        let mut dirs = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        dirs.retain(|d| d != dir);
    }
}

#[cfg(not(unix))]
mod interrupts {
    use std::path::Path;

    pub(super) fn install() {}
    pub(super) fn register(_dir: &Path) {}
    pub(super) fn deregister(_dir: &Path) {}
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_staging_dir_whose_lock_no_process_holds_is_removed() {
        let parent = tempfile::tempdir().unwrap();
        let stale = parent.path().join(format!("{PREFIX}crashed"));
        std::fs::create_dir(&stale).unwrap();
        std::fs::write(stale.join(LOCK_FILE), "4242\n").unwrap();
        assert_eq!(remove_stale(parent.path()), vec![stale.clone()]);
        assert!(!stale.exists());
    }

    #[test]
    fn a_live_staging_dir_is_kept() {
        let parent = tempfile::tempdir().unwrap();
        let live = Staging::create(parent.path()).unwrap();
        assert_eq!(remove_stale(parent.path()), Vec::<PathBuf>::new());
        assert!(live.path().join(LOCK_FILE).is_file());
    }

    #[test]
    fn a_staging_dir_without_a_lock_file_is_kept() {
        let parent = tempfile::tempdir().unwrap();
        let older = parent.path().join(format!("{PREFIX}older-vjx"));
        std::fs::create_dir(&older).unwrap();
        assert_eq!(remove_stale(parent.path()), Vec::<PathBuf>::new());
        assert!(older.is_dir());
    }

    #[test]
    fn a_persisted_export_leaves_no_lock_file_and_no_staging_dir() {
        let parent = tempfile::tempdir().unwrap();
        let staging = Staging::create(parent.path()).unwrap();
        std::fs::write(staging.path().join("manifest.json"), "{}").unwrap();
        let out = parent.path().join("out");
        staging.persist(&out).unwrap();
        let names: Vec<_> = std::fs::read_dir(parent.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out")]);
        assert!(!out.join(LOCK_FILE).exists());
    }
}
