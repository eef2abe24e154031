//! A per-process scratch dir on tmpfs for the readers that take a path.

use std::path::PathBuf;

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vjx-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}
