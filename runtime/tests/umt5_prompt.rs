//! LingBot-VA prompt preparation: `clean_prompt` against Python's `html.unescape` and `\s`
//! (expected strings checked with upstream's `clean_prompt`), and tokenization against
//! `T5TokenizerFast` on the tiny tokenizer of the UMT5 graph fixture
//! (`graphs/tests/fixtures/umt5`, written by `graphs/tests/make_umt5_reference.py`).

use ndarray::Array1;
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;
use vjx_runtime::preprocess::umt5_prompt::{
    clean_prompt, encode_prompt, html_unescape, prepare_prompt,
};
use vjx_runtime::preprocess::PreprocessError;

// ---------------------------------------------------------------------------------------------
// clean_prompt

#[test]
fn clean_prompt_unescapes_the_usual_entities() {
    assert_eq!(
        clean_prompt(
            "put the bowl &amp; the plate &lt;here&gt; &quot;now&quot; &#39;ok&#39; &#x41;"
        ),
        "put the bowl & the plate <here> \"now\" 'ok' A"
    );
    assert_eq!(
        clean_prompt("caf&eacute; &frac12;cup &Eacute;"),
        "café ½cup É"
    );
}

#[test]
fn clean_prompt_unescapes_twice() {
    assert_eq!(clean_prompt("salt &amp;amp; pepper"), "salt & pepper");
    assert_eq!(clean_prompt("&amp;lt;b&amp;gt;"), "<b>");
    assert_eq!(clean_prompt("&amp;#39;x&amp;#39;"), "'x'");
}

#[test]
fn clean_prompt_collapses_whitespace_runs_and_strips_the_ends() {
    assert_eq!(
        clean_prompt("  pick   up\tthe\n\nblock  "),
        "pick up the block"
    );
    assert_eq!(clean_prompt("   "), "");
    assert_eq!(clean_prompt(""), "");
}

#[test]
fn clean_prompt_treats_unicode_whitespace_as_python_does() {
    // Ideographic, no-break, em and hair spaces; Python's `\s` also matches U+001C..U+001F and U+0085.
    assert_eq!(
        clean_prompt("\u{3000}open\u{a0}the\u{2003}drawer\u{200a} "),
        "open the drawer"
    );
    assert_eq!(clean_prompt("a\u{1c}b\u{1f}c\u{85}d"), "a b c d");
}

#[test]
fn html_unescape_handles_legacy_names_prefixes_and_bad_references_like_python() {
    assert_eq!(
        html_unescape(
            "&ampfoo; &notit; &copy2023 &amp &lt3 &unknown; &#128; &#x110000; &#0; &#65 &#xZZ; & x"
        ),
        "&foo; ¬it; ©2023 & <3 &unknown; € \u{FFFD} \u{FFFD} A &#xZZ; & x"
    );
    assert_eq!(html_unescape("fish&chips"), "fish&chips");
    assert_eq!(html_unescape("&#11;x&#1;y"), "xy");
}

// ---------------------------------------------------------------------------------------------
// Tokenization against T5TokenizerFast (tiny tokenizer)

fn umt5_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../graphs/tests/fixtures/umt5")
}

fn load_tokenizer(path: &Path) -> Tokenizer {
    Tokenizer::from_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn npy_i64(path: &Path) -> Vec<i64> {
    let a: Array1<i64> =
        ndarray_npy::read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    a.to_vec()
}

struct TinyCase {
    name: String,
    prompt: String,
    cleaned: String,
    max_len: usize,
}

fn tiny_cases() -> Vec<TinyCase> {
    let text = std::fs::read_to_string(umt5_fixture().join("cases.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases: Vec<TinyCase> = json
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, c)| TinyCase {
            name: name.clone(),
            prompt: c["prompt"].as_str().unwrap().to_string(),
            cleaned: c["cleaned"].as_str().unwrap().to_string(),
            max_len: c["max_len"].as_u64().unwrap() as usize,
        })
        .collect();
    assert!(cases.len() >= 3);
    cases
}

#[test]
fn clean_prompt_matches_upstream_on_the_fixture_prompts() {
    for case in tiny_cases() {
        assert_eq!(clean_prompt(&case.prompt), case.cleaned, "{}", case.name);
    }
}

#[test]
fn prepare_prompt_matches_t5_tokenizer_fast_padded_truncated_and_empty() {
    let tokenizer = load_tokenizer(&umt5_fixture().join("tokenizer/tokenizer.json"));
    for case in tiny_cases() {
        let dir = umt5_fixture().join(&case.name);
        let (ids, mask) = prepare_prompt(&tokenizer, &case.prompt, case.max_len).unwrap();
        assert_eq!(ids, npy_i64(&dir.join("input_ids.npy")), "{}", case.name);
        assert_eq!(
            mask,
            npy_i64(&dir.join("attention_mask.npy")),
            "{}",
            case.name
        );
    }
}

#[test]
fn encode_prompt_keeps_the_end_token_last_when_truncating() {
    let tokenizer = load_tokenizer(&umt5_fixture().join("tokenizer/tokenizer.json"));
    let eos = tokenizer.token_to_id("</s>").unwrap() as i64;
    let text = "pick up the red block and place it in the bowl ".repeat(20);
    let (ids, mask) = encode_prompt(&tokenizer, text.trim(), 16).unwrap();
    assert_eq!(ids.len(), 16);
    assert_eq!(ids[15], eos);
    assert!(ids[..15].iter().all(|&id| id != eos));
    assert_eq!(mask, vec![1; 16]);
}

#[test]
fn encode_prompt_of_the_empty_prompt_is_the_end_token_then_padding() {
    let tokenizer = load_tokenizer(&umt5_fixture().join("tokenizer/tokenizer.json"));
    let eos = tokenizer.token_to_id("</s>").unwrap() as i64;
    let pad = tokenizer.token_to_id("<pad>").unwrap() as i64;
    let (ids, mask) = encode_prompt(&tokenizer, "", 8).unwrap();
    assert_eq!(ids, [vec![eos], vec![pad; 7]].concat());
    assert_eq!(mask, [vec![1], vec![0; 7]].concat());
}

#[test]
fn encode_prompt_needs_a_pad_token() {
    let path = umt5_fixture().join("tokenizer/tokenizer.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Rename `<pad>` in the vocabulary and the added tokens.
    json["model"]["vocab"][0][0] = "<nopad>".into();
    json["added_tokens"][0]["content"] = "<nopad>".into();
    let tokenizer = Tokenizer::from_bytes(json.to_string().as_bytes()).unwrap();
    assert!(tokenizer.token_to_id("<pad>").is_none());
    match encode_prompt(&tokenizer, "pick up the block", 8) {
        Err(PreprocessError::PromptEncoding { reason, .. }) => {
            assert!(reason.contains("<pad>"), "{reason}")
        }
        other => panic!("expected a PromptEncoding error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// LingBot-VA fixtures: each case's task, cleaned and tokenized with its own tokenizer

fn lingbot_cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/lingbot_va");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("fixtures missing at {}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("reference/input_ids.npy").is_file())
        .collect();
    cases.sort();
    assert!(
        !cases.is_empty(),
        "no LingBot-VA cases under {}",
        root.display()
    );
    cases
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn lingbot_task_cleans_to_upstreams_prompt() {
    for case in lingbot_cases() {
        let task = read_json(&case.join("episode.json"))["task"]
            .as_str()
            .unwrap()
            .to_string();
        let summary = read_json(&case.join("reference/summary.json"));
        assert_eq!(
            clean_prompt(&task),
            summary["prompt_clean"].as_str().unwrap(),
            "{}",
            case.display()
        );
    }
}

#[test]
fn lingbot_task_tokenizes_to_upstreams_ids_and_mask() {
    for case in lingbot_cases() {
        let task = read_json(&case.join("episode.json"))["task"]
            .as_str()
            .unwrap()
            .to_string();
        let max_len = read_json(&case.join("checkpoint/config.json"))["max_sequence_length"]
            .as_u64()
            .unwrap() as usize;
        let tokenizer = load_tokenizer(&case.join("wan/tokenizer/tokenizer.json"));
        let (ids, mask) = prepare_prompt(&tokenizer, &task, max_len).unwrap();
        assert_eq!(
            ids,
            npy_i64(&case.join("reference/input_ids.npy")),
            "{}",
            case.display()
        );
        assert_eq!(
            mask,
            npy_i64(&case.join("reference/attention_mask.npy")),
            "{}",
            case.display()
        );
    }
}
