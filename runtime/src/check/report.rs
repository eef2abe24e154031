//! What `vjx check` found, for scripts (serde) and for people (one block per graph).

use super::ort_fallback::Provider;
use super::profiles::DynamicInput;
use super::tensorrt_support::Target;
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;
use vjx_graphs::builder::Dim;

#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub target: Target,
    pub export_dir: PathBuf,
    pub policy_type: String,
    pub precision: String,
    pub graphs: Vec<GraphReport>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct GraphReport {
    /// The graph's role in the manifest (`text`, `dit_step`, ...), or the file stem.
    pub role: String,
    pub file: String,
    /// The default-domain opset the graph imports, and whether the target's parser takes it.
    pub opset: i64,
    pub opset_supported: bool,
    /// Every node, those of subgraphs included.
    pub nodes: usize,
    /// The nodes the target's parser will not take, in graph order.
    pub unsupported: Vec<UnsupportedNode>,
    /// What the parser takes but changes (narrowed element types).
    pub notes: Vec<String>,
    pub dynamic_inputs: Vec<DynamicInput>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnsupportedNode {
    pub node: String,
    pub op: String,
    /// Empty for the default ONNX domain.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    pub reason: String,
    /// Where ONNX Runtime runs the node instead, under the TensorRT provider.
    pub fallback: Provider,
    pub fallback_reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub graphs: usize,
    pub nodes: usize,
    pub unsupported: usize,
    pub unsupported_opsets: usize,
    pub dynamic_inputs: usize,
    pub dynamic_inputs_without_profile: usize,
    /// Whether anything falls off TensorRT (a node, or a graph's opset).
    pub falls_off_tensorrt: bool,
}

impl GraphReport {
    pub fn falls_off_tensorrt(&self) -> bool {
        !self.opset_supported || !self.unsupported.is_empty()
    }
}

impl Summary {
    pub fn of(graphs: &[GraphReport]) -> Self {
        let dynamic = graphs.iter().flat_map(|g| &g.dynamic_inputs);
        Summary {
            graphs: graphs.len(),
            nodes: graphs.iter().map(|g| g.nodes).sum(),
            unsupported: graphs.iter().map(|g| g.unsupported.len()).sum(),
            unsupported_opsets: graphs.iter().filter(|g| !g.opset_supported).count(),
            dynamic_inputs: dynamic.clone().count(),
            dynamic_inputs_without_profile: dynamic.filter(|d| d.profile.is_none()).count(),
            falls_off_tensorrt: graphs.iter().any(GraphReport::falls_off_tensorrt),
        }
    }
}

impl ExportReport {
    /// One block per graph, then a summary line.
    pub fn to_text(&self) -> String {
        let t = self.target;
        let mut out = format!(
            "{} ({}) check of {} ({}, {})\n",
            t.label(),
            t.jetpack(),
            self.export_dir.display(),
            self.policy_type,
            self.precision
        );
        for g in &self.graphs {
            out.push('\n');
            graph_block(&mut out, g, t);
        }
        let s = &self.summary;
        let opsets = match s.unsupported_opsets {
            0 => String::new(),
            n => format!(
                ", {n} with an opset outside {}..={}",
                t.opsets().start(),
                t.opsets().end()
            ),
        };
        let _ = writeln!(
            out,
            "\nsummary: {} graphs, {} nodes, {} not taken by {}{opsets}; {} dynamic inputs, {} without a vjx profile",
            s.graphs, s.nodes, s.unsupported, t.label(), s.dynamic_inputs, s.dynamic_inputs_without_profile
        );
        out
    }
}

fn graph_block(out: &mut String, g: &GraphReport, t: Target) {
    let verdict = match g.unsupported.len() {
        0 => format!("all taken by {}", t.label()),
        n => format!("{n} not taken by {} ({})", t.label(), tally(g)),
    };
    let _ = writeln!(
        out,
        "{} ({}): opset {}, {} nodes, {verdict}",
        g.role, g.file, g.opset, g.nodes
    );
    if !g.opset_supported {
        let (lo, hi) = t.opsets().into_inner();
        let _ = writeln!(
            out,
            "  opset {} is outside the opsets {} imports ({lo}..={hi})",
            g.opset,
            t.label()
        );
    }
    for u in &g.unsupported {
        let domain = if u.domain.is_empty() {
            String::new()
        } else {
            format!(" [{}]", u.domain)
        };
        let _ = writeln!(
            out,
            "  {}{domain} {}: {}\n      → {} island: {}",
            u.op, u.node, u.reason, u.fallback, u.fallback_reason
        );
    }
    if g.dynamic_inputs.is_empty() {
        out.push_str("  no dynamic inputs\n");
    } else {
        out.push_str("  dynamic inputs (TensorRT optimization profiles):\n");
        for d in &g.dynamic_inputs {
            let profile = match &d.profile {
                Some(p) => format!(
                    "vjx profile min {:?} opt {:?} max {:?}",
                    p.min, p.opt, p.max
                ),
                None => "no vjx profile".into(),
            };
            let _ = writeln!(
                out,
                "    {:<24} {:<26} {profile}",
                d.name,
                shape_text(&d.shape)
            );
        }
        if g.dynamic_inputs.iter().any(|d| d.profile.is_none()) {
            out.push_str(
                "    (without a profile, ONNX Runtime's TensorRT provider builds the engine for the first shapes it sees\n     \
                 and rebuilds it whenever an input leaves the range seen so far)\n",
            );
        }
    }
    for note in &g.notes {
        let _ = writeln!(out, "  note: {note}");
    }
}

/// "84 DynamicQuantizeLinear, 84 MatMulInteger", in order of first appearance.
fn tally(g: &GraphReport) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for u in &g.unsupported {
        match counts.iter_mut().find(|(op, _)| *op == u.op) {
            Some((_, n)) => *n += 1,
            None => counts.push((&u.op, 1)),
        }
    }
    counts
        .iter()
        .map(|(op, n)| format!("{n} {op}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn shape_text(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(v) => v.to_string(),
            Dim::Named(n) => n.clone(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}
