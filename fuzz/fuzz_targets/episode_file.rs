#![no_main]
//! Arbitrary bytes as `vjx episode --episode` file.

#[path = "scratch.rs"]
mod scratch;

use libfuzzer_sys::fuzz_target;
use vjx_runtime::policy::EpisodeFile;

fuzz_target!(|data: &[u8]| {
    let path = scratch::scratch("episode.json");
    std::fs::write(&path, data).unwrap();
    let _ = EpisodeFile::read(&path);
});
