#![no_main]
//! Arbitrary task text through the chat template and the tokenizer of the VLA-JEPA fixture's
//! backbone, with two images.

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vjx_runtime::preprocess::{prompt, tokenize::PolicyTokenizer};

const BACKBONE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/vla_jepa/two_cam_resize/backbone");

fn backbone() -> &'static (PolicyTokenizer, String) {
    static LOADED: OnceLock<(PolicyTokenizer, String)> = OnceLock::new();
    LOADED.get_or_init(|| {
        let dir = std::path::Path::new(BACKBONE);
        let tokenizer = PolicyTokenizer::load(&dir.join("tokenizer.json")).unwrap();
        let template = std::fs::read_to_string(dir.join("chat_template.jinja")).unwrap();
        (tokenizer, template)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(task) = std::str::from_utf8(data) else { return };
    let (tokenizer, template) = backbone();
    if let Ok(chat) = prompt::render_chat(template, 2, task) {
        let _ = tokenizer.encode_chat(&chat, &[4, 4]);
    }
});
