#![no_main]
//! Arbitrary bytes as one websocket message to `vjx serve`: msgpack → request → observation.

use libfuzzer_sys::fuzz_target;
use vjx_serve::request::{decode_request, KeyMap, Limits};

fuzz_target!(|data: &[u8]| {
    let keys = KeyMap::for_cameras(&["observation.images.agentview", "observation.images.wrist"]);
    let limits = Limits {
        max_image_side: 512,
        max_task_bytes: 4096,
    };
    let _ = decode_request(&keys, limits, data);
});
