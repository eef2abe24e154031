//! The UMT5 text encoder graph against transformers' `UMT5EncoderModel`: on the tiny random
//! model written by `make_umt5_reference.py` (padded prompts of 64 and 200 tokens, so that
//! relative distances beyond `relative_attention_max_distance` and masked keys both occur),
//! and on the LingBot-VA fixtures (`tests/fixtures/lingbot_va/<case>/`), where the graph's
//! output with the padded rows zeroed must give upstream's prompt embeddings.

mod common;

use common::{i64_input, npy_f32, npy_i64, rel_l2, run_graph, SafetensorsFile};
use std::path::{Path, PathBuf};
use vjx_graphs::umt5::encoder::{relative_position_bucket, relative_position_buckets};
use vjx_graphs::umt5::{build_umt5_encoder_graph, Umt5Config, Umt5ConfigError};
use vjx_graphs::weights::MemoryWeights;
use vjx_graphs::WeightError;

const PARITY: f64 = 1e-4;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/umt5")
}

fn read_config(text_encoder: &Path) -> Umt5Config {
    let text = std::fs::read_to_string(text_encoder.join("config.json")).unwrap();
    Umt5Config::from_json_str(&text).unwrap()
}

/// The case dirs of the tiny-model fixture (each with ids, mask and upstream's output).
fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixture())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("last_hidden_state.npy").is_file())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 2,
        "expected the umt5 fixture cases under {}",
        fixture().display()
    );
    cases
}

/// Builds and writes the encoder graph for `text_encoder/`, returning the `.onnx` path.
fn write_encoder(text_encoder: &Path, out: &Path) -> (Umt5Config, PathBuf) {
    let cfg = read_config(text_encoder);
    let weights = SafetensorsFile::open(&text_encoder.join("model.safetensors"));
    let model = build_umt5_encoder_graph(&cfg, &weights, "").unwrap();
    let written = model.write_with(out, "text_encoder", &weights).unwrap();
    (cfg, written.graph_file)
}

/// Runs the graph on `[1, len]` ids and mask; returns `[len * d_model]`.
fn encode(graph: &Path, ids: &[i64], mask: &[i64]) -> Vec<f32> {
    let len = ids.len();
    let out = run_graph(
        graph,
        vec![
            i64_input(&[1, len], ids.to_vec()),
            i64_input(&[1, len], mask.to_vec()),
        ],
    );
    out[0].iter().copied().collect()
}

#[test]
fn config_reads_the_saved_encoder_config() {
    let cfg = read_config(&fixture().join("text_encoder"));
    assert_eq!((cfg.d_model, cfg.d_kv, cfg.d_ff), (32, 8, 64));
    assert_eq!((cfg.num_layers, cfg.num_heads), (2, 4));
    assert_eq!(
        (
            cfg.relative_attention_num_buckets,
            cfg.relative_attention_max_distance
        ),
        (32, 128)
    );
    assert_eq!(cfg.layer_norm_epsilon, 1e-6);
    assert_eq!(cfg.inner_dim(), 32);
}

#[test]
fn config_rejects_feed_forwards_other_than_gated_gelu() {
    let text = std::fs::read_to_string(fixture().join("text_encoder/config.json")).unwrap();
    for proj in ["relu", "gated-silu", "gelu"] {
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["feed_forward_proj"] = serde_json::Value::from(proj);
        match Umt5Config::from_json_str(&json.to_string()) {
            Err(Umt5ConfigError::UnsupportedFeedForward(found)) => assert_eq!(found, proj),
            other => panic!("{proj}: expected UnsupportedFeedForward, got {other:?}"),
        }
    }
}

#[test]
fn config_without_the_optional_fields_takes_transformers_defaults() {
    let cfg = Umt5Config::from_json_str(
        r#"{"d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 3, "num_heads": 4}"#,
    )
    .unwrap();
    assert_eq!(cfg.vocab_size, 250112);
    assert_eq!(
        (
            cfg.relative_attention_num_buckets,
            cfg.relative_attention_max_distance
        ),
        (32, 128)
    );
    assert_eq!(cfg.layer_norm_epsilon, 1e-6);
}

#[test]
fn relative_position_buckets_match_transformers_far_past_the_max_distance() {
    // Upstream's buckets of relative positions -300..=300 (the fixture model: 32 buckets, 128).
    let reference = npy_i64(&fixture().join("relative_position_buckets.npy"));
    let reach = (reference.len() as i64 - 1) / 2;
    for (r, expected) in (-reach..=reach).zip(reference.iter()) {
        assert_eq!(
            relative_position_bucket(r, 32, 128),
            *expected,
            "relative position {r}"
        );
    }
    // The in-graph table is the same function, clipped at ±max_distance.
    let cfg = read_config(&fixture().join("text_encoder"));
    let table = relative_position_buckets(&cfg);
    assert_eq!(table.len(), 2 * 128 + 1);
    assert_eq!(
        table[..],
        reference.as_slice().unwrap()[(reach - 128) as usize..=(reach + 128) as usize]
    );
}

#[test]
fn encoder_graph_matches_transformers_on_padded_and_full_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, graph) = write_encoder(&fixture().join("text_encoder"), dir.path());
    for case in cases() {
        let ids = npy_i64(&case.join("input_ids.npy"));
        let mask = npy_i64(&case.join("attention_mask.npy"));
        let reference = npy_f32(&case.join("last_hidden_state.npy"));
        assert_eq!(reference.shape(), &[ids.len(), cfg.d_model]);
        let out = encode(&graph, ids.as_slice().unwrap(), mask.as_slice().unwrap());
        let err = rel_l2(&out, reference.as_slice().unwrap());
        println!("{}: {} tokens, rel L2 {err:.2e}", case.display(), ids.len());
        assert!(err <= PARITY, "{}: rel L2 {err:.3e}", case.display());
    }
}

#[test]
fn encoder_graph_reads_the_token_table_under_either_tied_name() {
    let text_encoder = fixture().join("text_encoder");
    let cfg = read_config(&text_encoder);
    let file = SafetensorsFile::open(&text_encoder.join("model.safetensors"));
    let mut renamed = MemoryWeights::default();
    for name in weight_names(&cfg) {
        let stored = if name == "encoder.embed_tokens.weight" {
            "shared.weight"
        } else {
            &name
        };
        renamed.tensors.insert(
            name.clone(),
            vjx_graphs::WeightSource::get(&file, stored).unwrap(),
        );
    }
    let case = &cases()[0];
    let ids = npy_i64(&case.join("input_ids.npy"));
    let mask = npy_i64(&case.join("attention_mask.npy"));
    let reference = npy_f32(&case.join("last_hidden_state.npy"));
    let dir = tempfile::tempdir().unwrap();
    let model = build_umt5_encoder_graph(&cfg, &renamed, "").unwrap();
    let graph = model
        .write_with(dir.path(), "text_encoder", &renamed)
        .unwrap()
        .graph_file;
    let out = encode(&graph, ids.as_slice().unwrap(), mask.as_slice().unwrap());
    let err = rel_l2(&out, reference.as_slice().unwrap());
    assert!(err <= PARITY, "rel L2 {err:.3e}");
}

#[test]
fn encoder_graph_names_a_missing_block_weight() {
    let cfg = read_config(&fixture().join("text_encoder"));
    let mut weights = MemoryWeights::default();
    let file = SafetensorsFile::open(&fixture().join("text_encoder/model.safetensors"));
    for name in weight_names(&cfg) {
        if name != "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight" {
            weights.tensors.insert(
                name.clone(),
                vjx_graphs::WeightSource::get(
                    &file,
                    &name.replace("encoder.embed_tokens", "shared"),
                )
                .unwrap(),
            );
        }
    }
    match build_umt5_encoder_graph(&cfg, &weights, "") {
        Err(WeightError::Missing { name, .. }) => {
            assert_eq!(
                name,
                "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"
            )
        }
        other => panic!("expected a missing-weight error, got {:?}", other.err()),
    }
}

/// Every weight the encoder reads, with the token table under `encoder.embed_tokens.weight`.
fn weight_names(cfg: &Umt5Config) -> Vec<String> {
    let mut names = vec![
        "encoder.embed_tokens.weight".to_string(),
        "encoder.final_layer_norm.weight".to_string(),
    ];
    for i in 0..cfg.num_layers {
        let b = format!("encoder.block.{i}.layer.");
        for p in ["q", "k", "v", "o", "relative_attention_bias"] {
            names.push(format!("{b}0.SelfAttention.{p}.weight"));
        }
        names.push(format!("{b}0.layer_norm.weight"));
        for p in ["wi_0", "wi_1", "wo"] {
            names.push(format!("{b}1.DenseReluDense.{p}.weight"));
        }
        names.push(format!("{b}1.layer_norm.weight"));
    }
    names
}

// ---------------------------------------------------------------------------------------------
// LingBot-VA fixtures: text_embeds = last_hidden_state with the rows past mask.sum() zeroed

fn lingbot_cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/lingbot_va");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("fixtures missing at {}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("reference/text_embeds.npy").is_file())
        .collect();
    cases.sort();
    assert!(
        !cases.is_empty(),
        "no LingBot-VA cases under {}",
        root.display()
    );
    cases
}

/// The graph output with the rows past the mask's count zeroed, as upstream stores prompt embeddings.
fn prompt_embeds(graph: &Path, ids: &[i64], mask: &[i64], d_model: usize) -> Vec<f32> {
    let mut out = encode(graph, ids, mask);
    let valid = mask.iter().sum::<i64>() as usize;
    out[valid * d_model..].fill(0.0);
    out
}

/// The id of an added token in a `tokenizer.json`.
fn added_token_id(tokenizer_json: &Path, content: &str) -> i64 {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tokenizer_json).unwrap()).unwrap();
    json["added_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["content"] == content)
        .unwrap_or_else(|| panic!("{content} not in {}", tokenizer_json.display()))["id"]
        .as_i64()
        .unwrap()
}

#[test]
fn lingbot_prompt_embeds_are_the_zero_padded_encoder_output() {
    for case in lingbot_cases() {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, graph) = write_encoder(&case.join("wan/text_encoder"), dir.path());
        let ids = npy_i64(&case.join("reference/input_ids.npy"));
        let mask = npy_i64(&case.join("reference/attention_mask.npy"));
        let reference = npy_f32(&case.join("reference/text_embeds.npy"));
        assert_eq!(
            reference.shape(),
            &[ids.len(), cfg.d_model],
            "{}",
            case.display()
        );
        let out = prompt_embeds(
            &graph,
            ids.as_slice().unwrap(),
            mask.as_slice().unwrap(),
            cfg.d_model,
        );
        let err = rel_l2(&out, reference.as_slice().unwrap());
        println!("{}: text_embeds rel L2 {err:.2e}", case.display());
        assert!(err <= PARITY, "{}: rel L2 {err:.3e}", case.display());
    }
}

#[test]
fn lingbot_negative_prompt_embeds_encode_the_lone_end_token() {
    let mut checked = 0;
    for case in lingbot_cases() {
        let negative = case.join("reference/negative_text_embeds.npy");
        if !negative.is_file() {
            continue; // CFG off for this case: upstream encodes no negative prompt.
        }
        let dir = tempfile::tempdir().unwrap();
        let (cfg, graph) = write_encoder(&case.join("wan/text_encoder"), dir.path());
        let reference = npy_f32(&negative);
        let len = reference.shape()[0];
        let tokenizer = case.join("wan/tokenizer/tokenizer.json");
        // `""` tokenizes to `</s>` alone, then padding.
        let mut ids = vec![added_token_id(&tokenizer, "<pad>"); len];
        ids[0] = added_token_id(&tokenizer, "</s>");
        let mut mask = vec![0i64; len];
        mask[0] = 1;
        let out = prompt_embeds(&graph, &ids, &mask, cfg.d_model);
        let err = rel_l2(&out, reference.as_slice().unwrap());
        println!("{}: negative_text_embeds rel L2 {err:.2e}", case.display());
        assert!(err <= PARITY, "{}: rel L2 {err:.3e}", case.display());
        checked += 1;
    }
    assert!(checked > 0, "no case has negative_text_embeds.npy");
}
