//! The restrictions on attributes, modes, build-time constants and ranks that TensorRT's ONNX
//! importers put on a node whose op and types they take, as far as the graph alone shows them.
//!
//! Sources: the "Restrictions" column of onnx/onnx-tensorrt `docs/operators.md` at
//! `release/8.5-GA`, `release/8.6-GA` and `release/10.1-GA` (10.3: tensor `axes` for Slice per
//! `CHANGELOG.md`), and the rank limit `nvinfer1::Dims::MAX_DIMS` the importers check.

use super::graph_facts::{attr, int_attr, ints_attr, string_attr, GraphFacts};
use super::tensorrt_support::Target;
use vjx_graphs::onnx::NodeProto;

/// TensorRT tensors have at most this many dimensions.
pub const MAX_RANK: usize = 8;

/// Every restriction `node` breaks on `target`, as reasons for the report.
pub fn broken_restrictions(node: &NodeProto, facts: &GraphFacts, target: Target) -> Vec<String> {
    let op = node.op_type.as_deref().unwrap_or("");
    let mut reasons = Vec::new();
    let input = |i: usize| {
        node.input
            .get(i)
            .map(String::as_str)
            .filter(|n| !n.is_empty())
    };
    let must_be_weight = |i: usize, what: &str, reasons: &mut Vec<String>| {
        if let Some(name) = input(i) {
            if !facts.is_weight(name) {
                reasons.push(format!("{what} (`{name}`) must be an initializer"));
            }
        }
    };
    use Target::*;
    match op {
        "Slice" if target < TensorRt103 => must_be_weight(3, "axes", &mut reasons),
        "Squeeze" | "Unsqueeze" => must_be_weight(1, "axes", &mut reasons),
        "CumSum" => must_be_weight(1, "axis", &mut reasons),
        "OneHot" if target >= TensorRt103 => must_be_weight(1, "depth", &mut reasons),
        "Pad" if target >= TensorRt103 => must_be_weight(3, "axes", &mut reasons),
        "InstanceNormalization" if target == TensorRt85 => {
            must_be_weight(1, "scale", &mut reasons);
            must_be_weight(2, "B", &mut reasons);
            rank_between(node, facts, 3, 5, &mut reasons);
        }
        "TopK" => top_k(node, facts, target, &mut reasons, &must_be_weight),
        "Resize" => resize(node, target, &mut reasons),
        "AveragePool" | "MaxPool" | "LpPool" => pool(node, op, target, &mut reasons),
        "DequantizeLinear" | "QuantizeLinear" => zero_point(node, facts, &mut reasons),
        "Einsum" if target < TensorRt103 => einsum(node, &mut reasons),
        "LayerNormalization"
            if target >= TensorRt103 && node.output.iter().skip(1).any(|o| !o.is_empty()) =>
        {
            reasons
                .push("only the first output (Y) is imported; Mean and InvStdDev are not".into());
        }
        "Constant" if target >= TensorRt103 => {
            for name in ["sparse_value", "value_string", "value_strings"] {
                if attr(node, name).is_some() {
                    reasons.push(format!("a `{name}` Constant is not imported"));
                }
            }
        }
        "ScatterND"
            if target >= TensorRt103
                && string_attr(node, "reduction").is_some_and(|r| r != "none") =>
        {
            reasons.push("`reduction` is not supported".into());
        }
        "LSTM" if target >= TensorRt103 => {
            for name in ["input_forget", "layout"] {
                if int_attr(node, name).unwrap_or(0) != 0 {
                    reasons.push(format!("`{name}` must be 0"));
                }
            }
        }
        "GridSample" if target >= TensorRt103 => rank_between(node, facts, 4, 4, &mut reasons),
        "Dropout" if target >= TensorRt103 => {
            if let Some(name) = input(2) {
                match facts.inline_ints(name) {
                    Some(v) if v.iter().all(|&x| x == 0) => {}
                    Some(_) => reasons.push("`training_mode` must be false".into()),
                    None if !facts.is_weight(name) => {
                        reasons.push(format!("`training_mode` (`{name}`) must be an initializer"))
                    }
                    None => {}
                }
            }
        }
        "If" => {
            let outputs = |branch: &str| -> Vec<String> {
                attr(node, branch)
                    .and_then(|a| a.g.as_ref())
                    .map(|g| g.output.iter().filter_map(|o| o.name.clone()).collect())
                    .unwrap_or_default()
            };
            let (then_out, else_out) = (outputs("then_branch"), outputs("else_branch"));
            if let Some(shared) = then_out.iter().find(|n| else_out.contains(n)) {
                reasons.push(format!(
                    "both branches output `{shared}`; their outputs must have different names"
                ));
            }
        }
        _ => {}
    }
    if let Some(rank) = too_many_dims(node, facts) {
        reasons.push(format!(
            "a tensor of rank {rank}; TensorRT tensors have at most {MAX_RANK} dimensions"
        ));
    }
    reasons
}

fn rank_between(
    node: &NodeProto,
    facts: &GraphFacts,
    lo: usize,
    hi: usize,
    reasons: &mut Vec<String>,
) {
    if let Some(rank) = node.input.first().and_then(|x| facts.rank(x)) {
        if !(lo..=hi).contains(&rank) {
            let want = if lo == hi {
                format!("{lo}")
            } else {
                format!("{lo} to {hi}")
            };
            reasons.push(format!("input rank must be {want}, is {rank}"));
        }
    }
}

fn top_k(
    node: &NodeProto,
    facts: &GraphFacts,
    target: Target,
    reasons: &mut Vec<String>,
    must_be_weight: &impl Fn(usize, &str, &mut Vec<String>),
) {
    match target {
        Target::TensorRt85 => must_be_weight(1, "K", reasons),
        Target::TensorRt86 => {}
        Target::TensorRt103 => {
            if int_attr(node, "sorted").unwrap_or(1) != 1 {
                reasons.push("`sorted` must be 1".into());
            }
            let k = node.input.get(1).and_then(|k| facts.inline_ints(k));
            if let Some(k) = k.and_then(|v| v.first().copied()).filter(|&k| k >= 3840) {
                reasons.push(format!("K must be below 3840, is {k}"));
            }
        }
    }
}

fn resize(node: &NodeProto, target: Target, reasons: &mut Vec<String>) {
    const TRANSFORMS: [&str; 5] = [
        "half_pixel",
        "pytorch_half_pixel",
        "tf_half_pixel_for_nn",
        "asymmetric",
        "align_corners",
    ];
    const MODES: [&str; 2] = ["nearest", "linear"];
    const NEAREST: [&str; 4] = ["floor", "ceil", "round_prefer_floor", "round_prefer_ceil"];
    let mut check = |name: &str, allowed: &[&str]| {
        if let Some(value) = string_attr(node, name).filter(|v| !allowed.contains(&v.as_str())) {
            reasons.push(format!(
                "{name} `{value}` is not supported (supported: {})",
                allowed.join(", ")
            ));
        }
    };
    check("coordinate_transformation_mode", &TRANSFORMS);
    check("mode", &MODES);
    check("nearest_mode", &NEAREST);
    if target >= Target::TensorRt103 {
        check("keep_aspect_ratio_policy", &["stretch"]);
        if int_attr(node, "antialias").unwrap_or(0) != 0 {
            reasons.push("antialiasing is not supported".into());
        }
    }
}

fn pool(node: &NodeProto, op: &str, target: Target, reasons: &mut Vec<String>) {
    if op != "LpPool" {
        if let Some(kernel) =
            ints_attr(node, "kernel_shape").filter(|k| !(2..=3).contains(&k.len()))
        {
            reasons.push(format!(
                "only 2-D and 3-D pooling is supported, kernel_shape has {} dims",
                kernel.len()
            ));
        }
    }
    if op == "MaxPool" && node.output.get(1).is_some_and(|o| !o.is_empty()) {
        reasons.push("the `Indices` output is not supported".into());
    }
    if target >= Target::TensorRt103
        && ints_attr(node, "dilations").is_some_and(|d| d.iter().any(|&x| x != 1))
    {
        reasons.push("`dilations` must be all ones".into());
    }
}

/// TensorRT quantizes symmetrically: a zero point, when given, must be an initializer of zeros.
fn zero_point(node: &NodeProto, facts: &GraphFacts, reasons: &mut Vec<String>) {
    let Some(name) = node.input.get(2).filter(|n| !n.is_empty()) else {
        return;
    };
    if !facts.is_weight(name) {
        reasons.push(format!("the zero point (`{name}`) must be an initializer"));
    } else if facts
        .inline_ints(name)
        .is_some_and(|v| v.iter().any(|&z| z != 0))
    {
        reasons.push(format!(
            "the zero point (`{name}`) must be all zeros (TensorRT quantizes symmetrically)"
        ));
    }
}

fn einsum(node: &NodeProto, reasons: &mut Vec<String>) {
    let Some(equation) = string_attr(node, "equation") else {
        return;
    };
    if equation.contains("...") {
        reasons.push("ellipsis in the Einsum equation is not supported".into());
    }
    let inputs = equation.split("->").next().unwrap_or("");
    for term in inputs.split(',') {
        let letters: Vec<char> = term.chars().filter(|c| c.is_ascii_alphabetic()).collect();
        if letters
            .iter()
            .enumerate()
            .any(|(i, c)| letters[..i].contains(c))
        {
            reasons.push(format!(
                "diagonal operations (`{}` repeats an index) are not supported",
                term.trim()
            ));
        }
    }
}

/// The largest known rank above [`MAX_RANK`] among the node's inputs and first output.
fn too_many_dims(node: &NodeProto, facts: &GraphFacts) -> Option<usize> {
    node.input
        .iter()
        .chain(node.output.first())
        .filter(|n| !n.is_empty())
        .filter_map(|n| facts.rank(n))
        .filter(|&r| r > MAX_RANK)
        .max()
}
