#![no_main]
//! Arbitrary manifest.json text, sealed with its own checksum when it is JSON (so that the
//! fuzzer reaches the parser and the validation behind the checksum), then loaded.

#[path = "scratch.rs"]
mod scratch;

use libfuzzer_sys::fuzz_target;
use vjx_format::manifest::{seal, Manifest, CHECKSUM_KEY};

fuzz_target!(|data: &[u8]| {
    let path = scratch::scratch("export/manifest.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text = match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(mut value) => {
            if let Some(map) = value.as_object_mut() {
                map.remove(CHECKSUM_KEY);
            }
            seal(&serde_json::to_string_pretty(&value).unwrap()).unwrap()
        }
        Err(_) => String::from_utf8_lossy(data).into_owned(),
    };
    std::fs::write(&path, text).unwrap();
    let _ = Manifest::load(path.parent().unwrap(), false);
});
