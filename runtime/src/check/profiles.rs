//! The graph inputs TensorRT needs an optimization profile for (a dimension the graph leaves
//! open), and the range vjx's runtime gives each when it loads the graph on TensorRT.

use crate::backend::ShapeProfile;
use serde::Serialize;
use vjx_graphs::builder::Dim;
use vjx_graphs::onnx::tensor_shape_proto::dimension;
use vjx_graphs::onnx::{type_proto, GraphProto, ValueInfoProto};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DynamicInput {
    pub name: String,
    /// Fixed sizes and the names of the open dimensions (`?` for an unnamed one).
    pub shape: Vec<Dim>,
    /// The min/opt/max shapes vjx's runtime builds the engine for; `None`: ONNX Runtime's
    /// TensorRT provider builds for the shapes of the first run and rebuilds the engine each
    /// time an input leaves the range seen so far.
    pub profile: Option<ProfileRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileRange {
    pub min: Vec<usize>,
    pub opt: Vec<usize>,
    pub max: Vec<usize>,
}

/// The inputs of `graph` with an open dimension, each with its range in `profile` when the
/// profile names it with the input's rank.
pub fn dynamic_inputs(graph: &GraphProto, profile: Option<&ShapeProfile>) -> Vec<DynamicInput> {
    let initializers: Vec<&str> = graph
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    graph
        .input
        .iter()
        .filter(|v| {
            v.name
                .as_deref()
                .is_some_and(|n| !initializers.contains(&n))
        })
        .filter_map(|input| {
            let shape = shape_of(input)?;
            if shape.iter().all(|d| matches!(d, Dim::Fixed(_))) {
                return None;
            }
            let name = input.name.clone().unwrap_or_default();
            let profile = profile
                .and_then(|p| p.inputs.iter().find(|r| r.name == name))
                .filter(|r| r.min.len() == shape.len())
                .map(|r| ProfileRange {
                    min: r.min.clone(),
                    opt: r.opt.clone(),
                    max: r.max.clone(),
                });
            Some(DynamicInput {
                name,
                shape,
                profile,
            })
        })
        .collect()
}

fn shape_of(input: &ValueInfoProto) -> Option<Vec<Dim>> {
    let Some(type_proto::Value::TensorType(t)) = input.r#type.as_ref()?.value.as_ref() else {
        return None;
    };
    let dims = &t.shape.as_ref()?.dim;
    Some(
        dims.iter()
            .map(|d| match &d.value {
                Some(dimension::Value::DimValue(v)) if *v >= 0 => Dim::Fixed(*v),
                Some(dimension::Value::DimParam(p)) if !p.is_empty() => Dim::Named(p.clone()),
                _ => Dim::Named("?".into()),
            })
            .collect(),
    )
}
