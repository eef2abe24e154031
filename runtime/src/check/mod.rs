//! `vjx check`: which nodes of an export the ONNX parser of a given TensorRT version will not
//! take, where ONNX Runtime's TensorRT provider then runs them, and which graph inputs need an
//! optimization profile. Only the graph protos are read, never the weights.
//!
//! The check works on the graphs as written, which is what `trtexec` and TensorRT's parser see.
//! ONNX Runtime folds constant subgraphs before it partitions, so under it a node this reports
//! can occasionally disappear; nothing it accepts is refused for that reason.

pub mod graph_facts;
pub mod node_rules;
pub mod ort_fallback;
pub mod profiles;
pub mod report;
pub mod tensorrt_support;
#[cfg(test)]
mod tests;

use crate::backend::ShapeProfile;
use crate::manifest::{Manifest, ManifestError};
use graph_facts::{subgraphs, type_name, GraphFacts};
use prost::Message;
use report::{ExportReport, GraphReport, Summary, UnsupportedNode};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use tensorrt_support::{op_types, tensorrt_type, typed_operands, TypeMapping};
use thiserror::Error;
use vjx_graphs::onnx::tensor_proto::DataType;
use vjx_graphs::onnx::{GraphProto, ModelProto, NodeProto};

pub use tensorrt_support::{Target, UnknownTarget};

#[derive(Debug, Error)]
pub enum CheckError {
    #[error("{path}: no such directory")]
    NotADir { path: PathBuf },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{path}: listed in the manifest but missing")]
    MissingGraph { path: PathBuf },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not an ONNX model ({reason})")]
    Invalid { path: PathBuf, reason: String },
    #[error("{dir}: cannot rebuild the runtime's shape profiles: {reason}")]
    Profiles { dir: PathBuf, reason: String },
}

/// Checks every graph the export's manifest lists against `target`.
pub fn check_export(dir: &Path, target: Target) -> Result<ExportReport, CheckError> {
    if !dir.is_dir() {
        return Err(CheckError::NotADir {
            path: dir.to_path_buf(),
        });
    }
    let manifest = Manifest::load(dir, false)?;
    let profiles =
        crate::policy::shape_profiles(dir, &manifest).map_err(|e| CheckError::Profiles {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
    let graphs = manifest
        .graphs
        .iter()
        .map(|(role, entry)| {
            let path = dir.join(&entry.file);
            if !path.is_file() {
                return Err(CheckError::MissingGraph { path });
            }
            let model = read_model(&path)?;
            check_graph(role, &entry.file, &model, &path, target, profiles.get(role))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ExportReport {
        target,
        export_dir: dir.to_path_buf(),
        policy_type: manifest.policy_type().to_string(),
        precision: manifest.precision.name().to_string(),
        summary: Summary::of(&graphs),
        graphs,
    })
}

/// Checks one `.onnx` file; `profile` is the shape profile it would be loaded with, if any.
pub fn check_model(
    path: &Path,
    target: Target,
    profile: Option<&ShapeProfile>,
) -> Result<GraphReport, CheckError> {
    let model = read_model(path)?;
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let role = path
        .file_stem()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    check_graph(&role, &file, &model, path, target, profile)
}

fn read_model(path: &Path) -> Result<ModelProto, CheckError> {
    let bytes = std::fs::read(path).map_err(|source| CheckError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let model = ModelProto::decode(bytes.as_slice()).map_err(|e| CheckError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if model.graph.as_ref().is_none_or(|g| g.node.is_empty()) {
        return Err(CheckError::Invalid {
            path: path.to_path_buf(),
            reason: "it holds no graph nodes".into(),
        });
    }
    Ok(model)
}

fn check_graph(
    role: &str,
    file: &str,
    model: &ModelProto,
    path: &Path,
    target: Target,
    profile: Option<&ShapeProfile>,
) -> Result<GraphReport, CheckError> {
    let graph = model.graph.as_ref().expect("read_model checked the graph");
    let opsets: HashMap<String, i64> = model
        .opset_import
        .iter()
        .map(|o| {
            (
                canonical_domain(o.domain.as_deref().unwrap_or("")).to_string(),
                o.version.unwrap_or(1),
            )
        })
        .collect();
    let opset = *opsets.get("").ok_or_else(|| CheckError::Invalid {
        path: path.to_path_buf(),
        reason: "it imports no default-domain opset".into(),
    })?;
    let mut walk = Walk {
        target,
        opsets: &opsets,
        nodes: 0,
        unsupported: Vec::new(),
        narrowed: BTreeMap::new(),
    };
    walk.graph(graph, &GraphFacts::of(graph));
    Ok(GraphReport {
        role: role.to_string(),
        file: file.to_string(),
        opset,
        opset_supported: target.opsets().contains(&opset),
        nodes: walk.nodes,
        notes: narrowing_notes(&walk.narrowed, target),
        unsupported: walk.unsupported,
        dynamic_inputs: profiles::dynamic_inputs(graph, profile),
    })
}

fn canonical_domain(domain: &str) -> &str {
    if domain == "ai.onnx" {
        ""
    } else {
        domain
    }
}

/// The nodes of one graph and its subgraphs, checked in order.
struct Walk<'a> {
    target: Target,
    opsets: &'a HashMap<String, i64>,
    nodes: usize,
    unsupported: Vec<UnsupportedNode>,
    /// ONNX type → the names of the tensors imported as a narrower type.
    narrowed: BTreeMap<DataType, BTreeSet<String>>,
}

impl Walk<'_> {
    fn graph(&mut self, graph: &GraphProto, facts: &GraphFacts) {
        for (index, node) in graph.node.iter().enumerate() {
            self.nodes += 1;
            self.node(node, index, facts);
            for (_, sub) in subgraphs(node) {
                self.graph(sub, &facts.nested(sub));
            }
        }
    }

    fn node(&mut self, node: &NodeProto, index: usize, facts: &GraphFacts) {
        let target = self.target;
        let op = node.op_type.as_deref().unwrap_or("");
        let domain = canonical_domain(node.domain.as_deref().unwrap_or(""));
        let mut reasons = Vec::new();
        if !domain.is_empty() {
            reasons.push(format!(
                "op of domain `{domain}`: {}'s ONNX parser imports default-domain ONNX ops only (a custom op needs a TensorRT plugin)",
                target.label()
            ));
        } else if let Some(types) = op_types(target, op) {
            for operand in typed_operands(op, node.input.len()) {
                let Some(t) = facts.operand_type(node, operand) else {
                    continue;
                };
                let mapping = tensorrt_type(target, t);
                let Some(trt) = mapping.trt_type() else {
                    reasons.push(format!(
                        "{operand} is {}, a type {} does not have",
                        type_name(t),
                        target.label()
                    ));
                    continue;
                };
                if let TypeMapping::Narrowed(_) = mapping {
                    if let Some(name) = operand.name(node) {
                        self.narrowed.entry(t).or_default().insert(name.to_string());
                    }
                }
                if !types.contains(&trt) {
                    let taken: Vec<&str> = types.iter().map(|t| type_name(*t)).collect();
                    let imported = if trt == t {
                        String::new()
                    } else {
                        format!(" (imported as {})", type_name(trt))
                    };
                    reasons.push(format!(
                        "{} takes {op} on {} only, {operand} is {}{imported}",
                        target.label(),
                        taken.join("/"),
                        type_name(t)
                    ));
                }
            }
            reasons.extend(node_rules::broken_restrictions(node, facts, target));
        } else {
            reasons.push(format!(
                "{}'s ONNX parser has no importer for {op}",
                target.label()
            ));
        }
        if reasons.is_empty() {
            return;
        }
        let opset = self.opsets.get(domain).copied().unwrap_or(1);
        let fallback = ort_fallback::fallback(node, domain, opset, |operand| {
            facts.operand_type(node, operand)
        });
        self.unsupported.push(UnsupportedNode {
            node: node_name(node, index),
            op: op.to_string(),
            domain: domain.to_string(),
            reason: reasons.join("; "),
            fallback: fallback.provider,
            fallback_reason: fallback.why,
        });
    }
}

fn node_name(node: &NodeProto, index: usize) -> String {
    match node.name.as_deref() {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => format!(
            "#{index} ({})",
            node.output
                .first()
                .map(String::as_str)
                .unwrap_or("no output")
        ),
    }
}

/// One note per narrowed type, naming the first few tensors.
fn narrowing_notes(narrowed: &BTreeMap<DataType, BTreeSet<String>>, target: Target) -> Vec<String> {
    narrowed
        .iter()
        .map(|(from, names)| {
            let to = tensorrt_type(target, *from)
                .trt_type()
                .map(type_name)
                .unwrap_or("?");
            let limit = match *from {
                DataType::Int64 => "values clamped to ±2^31−1",
                _ => "values clamped to ±f32::MAX, precision lost",
            };
            let shown: Vec<String> = names.iter().take(3).map(|n| format!("`{n}`")).collect();
            let more = match names.len() - shown.len() {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            format!(
                "{} has no {}, so these are imported as {to} ({limit}): {}{more}",
                target.label(),
                type_name(*from),
                shown.join(", ")
            )
        })
        .collect()
}
