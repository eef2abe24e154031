//! An interrupted export leaves no temp dir beside `--out`; one killed outright (SIGKILL, a
//! crash) leaves one that the next export into the same dir removes, without touching the
//! temp dir of an export still running.
//!
//! The exports are held mid-way deterministically: the checkpoint's `policy_preprocessor.json`
//! is a named pipe, which the exporter opens after writing every graph into its temp dir and
//! which blocks until the test writes the real file into it.
#![cfg(unix)]

mod common;

use common::*;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CASE: &str = "two_cam_resize";
const PIPELINE: &str = "policy_preprocessor.json";

/// A copy of the case's checkpoint whose preprocessor pipeline is a named pipe.
fn blocking_checkpoint(dir: &Path) -> PathBuf {
    let ckpt = dir.join("checkpoint");
    copy_tree(&case(CASE).join("checkpoint"), &ckpt);
    std::fs::remove_file(ckpt.join(PIPELINE)).unwrap();
    let made = Command::new("mkfifo")
        .arg(ckpt.join(PIPELINE))
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo failed");
    ckpt
}

/// A running `vjx export`, killed if the test ends before it does.
struct Export(Child);

impl Export {
    fn start(ckpt: &Path, out: &Path) -> Self {
        let child = vjx()
            .args(["export", "--json", "--checkpoint"])
            .arg(ckpt)
            .arg("--backbone")
            .arg(case(CASE).join("backbone"))
            .arg("--out")
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Export(child)
    }

    fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args(["-s", name, &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -s {name} failed");
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        self.0.wait().unwrap()
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The temp dir of the export writing into `parent`, once its graphs are written.
fn staging_dir_with_graphs(parent: &Path) -> PathBuf {
    let start = Instant::now();
    loop {
        let written = leftover_staging_dirs(parent)
            .into_iter()
            .find(|d| d.join("backbone_config.json").is_file());
        if let Some(dir) = written {
            return dir;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no temp dir with graphs appeared in {}",
            parent.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Lets the export blocked on `ckpt`'s pipe go on, feeding it the real pipeline.
fn unblock(ckpt: &Path) {
    let pipeline = std::fs::read(case(CASE).join("checkpoint").join(PIPELINE)).unwrap();
    std::fs::write(ckpt.join(PIPELINE), pipeline).unwrap();
}

/// A plain export of the case into `out`.
fn export_now(out: &Path) {
    let result = vjx()
        .args(["export", "--json", "--checkpoint"])
        .arg(case(CASE).join("checkpoint"))
        .arg("--backbone")
        .arg(case(CASE).join("backbone"))
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", stderr(&result));
}

/// Sends `name` to an export held mid-way; checks what it leaves beside `--out`.
fn interrupted_export_leaves_nothing(name: &str, number: i32) {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = blocking_checkpoint(dir.path());
    let parent = dir.path().join("exports");
    let out = parent.join("policy");
    let mut export = Export::start(&ckpt, &out);
    staging_dir_with_graphs(&parent);
    export.signal(name);
    let status = export.wait();
    assert_eq!(status.signal(), Some(number), "{status:?}");
    assert_eq!(leftover_staging_dirs(&parent), Vec::<PathBuf>::new());
    assert!(!out.exists());
}

#[test]
fn sigterm_during_an_export_removes_its_temp_dir() {
    interrupted_export_leaves_nothing("TERM", 15);
}

#[test]
fn ctrl_c_during_an_export_removes_its_temp_dir() {
    interrupted_export_leaves_nothing("INT", 2);
}

#[test]
fn an_export_removes_the_temp_dir_of_a_killed_export() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = blocking_checkpoint(dir.path());
    let parent = dir.path().join("exports");
    let mut killed = Export::start(&ckpt, &parent.join("killed"));
    let stale = staging_dir_with_graphs(&parent);
    killed.signal("KILL");
    killed.wait();
    assert!(
        stale.is_dir(),
        "SIGKILL cannot be handled: the temp dir stays"
    );

    export_now(&parent.join("next"));
    assert!(!stale.exists(), "{} was not removed", stale.display());
    assert!(parent.join("next/manifest.json").is_file());
}

#[test]
fn an_export_leaves_the_temp_dir_of_a_running_export_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = blocking_checkpoint(dir.path());
    let parent = dir.path().join("exports");
    let mut running = Export::start(&ckpt, &parent.join("running"));
    let live = staging_dir_with_graphs(&parent);

    export_now(&parent.join("next"));
    assert!(live.is_dir(), "the running export's temp dir was removed");

    unblock(&ckpt);
    assert!(running.wait().success());
    let finished = parent.join("running");
    assert!(finished.join("manifest.json").is_file());
    assert!(!finished.join(".vjx-export.lock").exists());
    assert_eq!(leftover_staging_dirs(&parent), Vec::<PathBuf>::new());
}
