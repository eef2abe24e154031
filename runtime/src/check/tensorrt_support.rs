//! What the ONNX parser of each TensorRT version takes: the opset range, how ONNX element types
//! map onto TensorRT's, and which element types each op's importer accepts.
//!
//! Sources (the facts are re-encoded here; nothing is copied):
//! - the operator matrix: onnx/onnx-tensorrt `docs/operators.md` at tags `release/8.5-GA`
//!   (3b008c46), `release/8.6-GA` (6ba67d34) and `release/10.1-GA` (96e78110). No 10.2/10.3
//!   branch was available; onnx-tensorrt's `CHANGELOG.md` (main) lists for 10.2 only importer
//!   fixes (GRU, Squeeze) and for 10.3 tensor `axes` for Slice and a new ScatterElements plugin,
//!   so the 10.1 matrix is used for 10.3, with the Slice change applied in `node_rules`.
//! - the type mapping: `convertDtype` in `onnx2trt_utils.cpp` (`release/8.5-GA`, `release/8.6-GA`)
//!   and in `importerUtils.cpp` (`release/10.1-GA`).
//! - the opset ranges: the first line of each `docs/operators.md` ("up to opset 17" for 8.5 and
//!   8.6, "opset 9 to opset 20" for 10.x), and the parser's warning below opset 7 in
//!   `ModelImporter.cpp` (8.x).

use super::graph_facts::Operand;
use serde::Serialize;
use std::ops::RangeInclusive;
use std::str::FromStr;
use vjx_graphs::onnx::tensor_proto::DataType;

/// A TensorRT release, as shipped by JetPack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Target {
    /// JetPack 5.1.
    #[serde(rename = "tensorrt-8.5")]
    TensorRt85,
    /// JetPack 6.0.
    #[serde(rename = "tensorrt-8.6")]
    TensorRt86,
    /// JetPack 6.1 and 6.2.
    #[serde(rename = "tensorrt-10.3")]
    TensorRt103,
}

impl Target {
    pub const ALL: [Target; 3] = [Target::TensorRt85, Target::TensorRt86, Target::TensorRt103];
    pub const NAMES: [&'static str; 3] = ["tensorrt-8.5", "tensorrt-8.6", "tensorrt-10.3"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self.column()]
    }

    /// "TensorRT 10.3".
    pub fn label(self) -> &'static str {
        ["TensorRT 8.5", "TensorRT 8.6", "TensorRT 10.3"][self.column()]
    }

    pub fn jetpack(self) -> &'static str {
        ["JetPack 5.1", "JetPack 6.0", "JetPack 6.1/6.2"][self.column()]
    }

    fn column(self) -> usize {
        self as usize
    }

    /// The default-domain opsets this version's parser is documented to import.
    pub fn opsets(self) -> RangeInclusive<i64> {
        match self {
            Target::TensorRt85 | Target::TensorRt86 => 7..=17,
            Target::TensorRt103 => 9..=20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown target `{0}` (available: tensorrt-8.5, tensorrt-8.6, tensorrt-10.3)")]
pub struct UnknownTarget(pub String);

impl FromStr for Target {
    type Err = UnknownTarget;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| UnknownTarget(s.to_string()))
    }
}

/// How the parser brings an ONNX element type into the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeMapping {
    Native(DataType),
    /// Imported as a narrower type: values beyond its range are clamped.
    Narrowed(DataType),
    Unsupported,
}

impl TypeMapping {
    pub fn trt_type(self) -> Option<DataType> {
        match self {
            TypeMapping::Native(t) | TypeMapping::Narrowed(t) => Some(t),
            TypeMapping::Unsupported => None,
        }
    }
}

/// f64 is always imported as f32; TensorRT 8.x has no i64 and imports it as i32; 8.x has no
/// bf16, fp8 or int4; every other ONNX type (i16, u16, u32, u64, strings, complex, the other
/// fp8 kinds) has no TensorRT type.
pub fn tensorrt_type(target: Target, t: DataType) -> TypeMapping {
    use DataType::*;
    match (t, target) {
        (Float | Float16 | Int8 | Uint8 | Bool | Int32, _) => TypeMapping::Native(t),
        (Double, _) => TypeMapping::Narrowed(Float),
        (Int64, Target::TensorRt85 | Target::TensorRt86) => TypeMapping::Narrowed(Int32),
        (Int64 | Bfloat16 | Float8e4m3fn | Int4, Target::TensorRt103) => TypeMapping::Native(t),
        _ => TypeMapping::Unsupported,
    }
}

/// The element types `op`'s importer takes on `target` (in TensorRT's types, after
/// [`tensorrt_type`]), or `None` when the parser has no importer for it.
pub fn op_types(target: Target, op: &str) -> Option<&'static [DataType]> {
    OPS.iter()
        .find(|r| r.op == op)
        .and_then(|r| r.types[target.column()])
}

/// The operands the matrix's type column constrains: the data operands, not index, shape or
/// axes inputs (whose i64 the parser takes as shape tensors).
pub fn typed_operands(op: &str, n_inputs: usize) -> Vec<Operand> {
    let inputs = |ix: &[usize]| ix.iter().map(|&i| Operand::Input(i)).collect();
    match op {
        "Add" | "Sub" | "Mul" | "Div" | "Mod" | "Max" | "Min" | "Mean" | "Sum" | "Equal"
        | "Greater" | "GreaterOrEqual" | "Less" | "LessOrEqual" | "And" | "Or" | "Xor"
        | "Concat" | "MatMul" | "Gemm" | "Einsum" | "PRelu" | "Range" => {
            (0..n_inputs).map(Operand::Input).collect()
        }
        "Where" => inputs(&[1, 2]),
        "Cast" => vec![Operand::Input(0), Operand::Output(0)],
        "CastLike" => inputs(&[0, 1]),
        "Constant" | "ConstantOfShape" | "RandomNormal" | "RandomUniform" => {
            vec![Operand::Output(0)]
        }
        "ScatterElements" | "ScatterND" | "Scatter" => inputs(&[0, 2]),
        "OneHot" => inputs(&[2]),
        "Conv" | "ConvTranspose" => inputs(&[0, 1]),
        _ => inputs(&[0]),
    }
}

struct OpRow {
    op: &'static str,
    /// Per [`Target`] column: the types taken, `None` where the op has no importer (marked
    /// unsupported in the matrix).
    types: [Option<&'static [DataType]>; 3],
}

const fn row(
    op: &'static str,
    v85: Option<&'static [DataType]>,
    v86: Option<&'static [DataType]>,
    v103: Option<&'static [DataType]>,
) -> OpRow {
    OpRow {
        op,
        types: [v85, v86, v103],
    }
}

const NO: Option<&'static [DataType]> = None;
const F32: DataType = DataType::Float;
const F16: DataType = DataType::Float16;
const BF16: DataType = DataType::Bfloat16;
const I32: DataType = DataType::Int32;
const I64: DataType = DataType::Int64;
const I8: DataType = DataType::Int8;
const U8: DataType = DataType::Uint8;
const BOOL: DataType = DataType::Bool;
const FP8: DataType = DataType::Float8e4m3fn;
const I4: DataType = DataType::Int4;

/// The operator matrix: one row per op the matrix of any of the three versions lists; ops it
/// does not list have no importer either.
#[rustfmt::skip]
static OPS: &[OpRow] = &[
    row("Abs", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("Acos", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Acosh", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Add", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("AffineGrid", NO, NO, NO),
    row("And", Some(&[BOOL]), Some(&[BOOL]), Some(&[BOOL])),
    row("ArgMax", Some(&[F32, F16]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("ArgMin", Some(&[F32, F16]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("Asin", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Asinh", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Atan", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Atanh", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("AveragePool", Some(&[F32, F16, I8, I32]), Some(&[F32, F16, I8, I32]), Some(&[F32, F16, BF16])),
    row("BatchNormalization", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Bernoulli", NO, NO, NO),
    row("BitShift", NO, NO, NO),
    row("BitwiseAnd", NO, NO, NO),
    row("BitwiseNot", NO, NO, NO),
    row("BitwiseOr", NO, NO, NO),
    row("BitwiseXor", NO, NO, NO),
    row("BlackmanWindow", NO, NO, NO),
    row("Cast", Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, I32, I8, U8, BOOL]), Some(&[F32, F16, BF16, I32, I64, U8, BOOL])),
    row("CastLike", NO, NO, Some(&[F32, F16, BF16, I32, I64, U8, BOOL])),
    row("Ceil", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Celu", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("CenterCropPad", NO, NO, NO),
    row("Clip", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("Col2Im", NO, NO, NO),
    row("Compress", NO, NO, NO),
    row("Concat", Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("ConcatFromSequence", NO, NO, NO),
    row("Constant", Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("ConstantOfShape", Some(&[F32]), Some(&[F32]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("Conv", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("ConvInteger", NO, NO, NO),
    row("ConvTranspose", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("Cos", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Cosh", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("CumSum", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("DeformConv", NO, NO, Some(&[F32, F16])),
    row("DepthToSpace", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("DequantizeLinear", Some(&[I8]), Some(&[I8]), Some(&[I8, FP8, I4])),
    row("Det", NO, NO, NO),
    row("DFT", NO, NO, NO),
    row("Div", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("Dropout", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("DynamicQuantizeLinear", NO, NO, NO),
    row("Einsum", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Elu", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("Equal", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("Erf", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Exp", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Expand", Some(&[F32, F16, I32, BOOL]), Some(&[F32, F16, I32, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("EyeLike", Some(&[F32, F16, I32, BOOL]), Some(&[F32, F16, I32, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("Flatten", Some(&[F32, F16, I32, BOOL]), Some(&[F32, F16, I32, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("Floor", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Gather", Some(&[F32, F16, I8, I32, BOOL]), Some(&[F32, F16, I8, I32, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("GatherElements", Some(&[F32, F16, I8, I32, BOOL]), Some(&[F32, F16, I8, I32, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("GatherND", Some(&[F32, F16, I8, I32, BOOL]), Some(&[F32, F16, I8, I32, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("Gelu", NO, NO, Some(&[F32, F16, BF16, I8, I32, I64])),
    row("Gemm", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("GlobalAveragePool", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("GlobalLpPool", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("GlobalMaxPool", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("Greater", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("GreaterOrEqual", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("GridSample", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16])),
    row("GroupNormalization", NO, Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("GRU", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("HammingWindow", NO, NO, NO),
    row("HannWindow", NO, NO, NO),
    row("Hardmax", NO, NO, Some(&[F32, F16, BF16])),
    row("HardSigmoid", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("HardSwish", NO, Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("Identity", Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("If", Some(&[F32, F16, I32, BOOL]), Some(&[F32, F16, I32, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("ImageDecoder", NO, NO, NO),
    row("ImageScaler", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("InstanceNormalization", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("IsInf", NO, Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("IsNaN", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("LayerNormalization", NO, Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("LeakyRelu", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("Less", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("LessOrEqual", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("Log", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("LogSoftmax", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Loop", Some(&[F32, F16, I32, BOOL]), Some(&[F32, F16, I32, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("LpNormalization", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("LpPool", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("LRN", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("LSTM", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("MatMul", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("MatMulInteger", NO, NO, NO),
    row("Max", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("MaxPool", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("MaxRoiPool", NO, NO, NO),
    row("MaxUnpool", NO, NO, NO),
    row("Mean", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, FP8, I32, I64])),
    row("MeanVarianceNormalization", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("MelWeightMatrix", NO, NO, NO),
    row("Min", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("Mish", NO, NO, Some(&[F32, F16])),
    row("Mod", NO, Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("Mul", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("Multinomial", NO, NO, NO),
    row("Neg", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("NegativeLogLikelihoodLoss", NO, NO, NO),
    row("NonMaxSuppression", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16])),
    row("NonZero", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16])),
    row("Not", Some(&[BOOL]), Some(&[BOOL]), Some(&[BOOL])),
    row("OneHot", NO, Some(&[F32, F16, I32, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("Optional", NO, NO, NO),
    row("OptionalGetElement", NO, NO, NO),
    row("OptionalHasElement", NO, NO, NO),
    row("Or", Some(&[BOOL]), Some(&[BOOL]), Some(&[BOOL])),
    row("Pad", Some(&[F32, F16, I8, I32]), Some(&[F32, F16, I8, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("ParametricSoftplus", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("Pow", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("PRelu", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("QLinearConv", NO, NO, NO),
    row("QLinearMatMul", NO, NO, NO),
    row("QuantizeLinear", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("RandomNormal", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("RandomNormalLike", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("RandomUniform", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("RandomUniformLike", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Range", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("Reciprocal", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("ReduceL1", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16, I32, I64])),
    row("ReduceL2", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16, I32, I64])),
    row("ReduceLogSum", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16, I32, I64])),
    row("ReduceLogSumExp", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16, I32, I64])),
    row("ReduceMax", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16, I32, I64])),
    row("ReduceMean", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16, I32, I64])),
    row("ReduceMin", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16, I32, I64])),
    row("ReduceProd", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16, I32, I64])),
    row("ReduceSum", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16, I32, I64])),
    row("ReduceSumSquare", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16, I32, I64])),
    row("RegexFullMatch", NO, NO, NO),
    row("Relu", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16, I32, I64])),
    row("Reshape", Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("Resize", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("ReverseSequence", Some(&[F32, F16]), Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("RNN", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("RoiAlign", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16])),
    row("Round", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("ScaledTanh", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("Scan", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Scatter", Some(&[F32, F16, I8, I32]), Some(&[F32, F16, I8, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("ScatterElements", Some(&[F32, F16, I8, I32]), Some(&[F32, F16, I8, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("ScatterND", Some(&[F32, F16, I8, I32]), Some(&[F32, F16, I8, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("Selu", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("SequenceAt", NO, NO, NO),
    row("SequenceConstruct", NO, NO, NO),
    row("SequenceEmpty", NO, NO, NO),
    row("SequenceErase", NO, NO, NO),
    row("SequenceInsert", NO, NO, NO),
    row("SequenceLength", NO, NO, NO),
    row("SequenceMap", NO, NO, NO),
    row("Shape", Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("Shrink", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("Sigmoid", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("Sign", Some(&[F32, F16, I8, I32]), Some(&[F32, F16, I8, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("Sin", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Sinh", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Size", Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("Slice", Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("Softmax", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("SoftmaxCrossEntropyLoss", NO, NO, NO),
    row("Softplus", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("Softsign", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("SpaceToDepth", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("Split", Some(&[F32, F16, I32, BOOL]), Some(&[F32, F16, I32, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("SplitToSequence", NO, NO, NO),
    row("Sqrt", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Squeeze", Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("STFT", NO, NO, NO),
    row("StringConcat", NO, NO, NO),
    row("StringNormalizer", NO, NO, NO),
    row("StringSplit", NO, NO, NO),
    row("Sub", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("Sum", Some(&[F32, F16, I32]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("Tan", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Tanh", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("TfIdfVectorizer", NO, NO, NO),
    row("ThresholdedRelu", Some(&[F32, F16, I8]), Some(&[F32, F16, I8]), Some(&[F32, F16, BF16])),
    row("Tile", Some(&[F32, F16, I32, BOOL]), Some(&[F32, F16, I32, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("TopK", Some(&[F32, F16]), Some(&[F32, F16, I32]), Some(&[F32, F16, BF16, I32, I64])),
    row("Transpose", Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("Trilu", Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("Unique", NO, NO, NO),
    row("Unsqueeze", Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, I32, I8, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("Upsample", Some(&[F32, F16]), Some(&[F32, F16]), Some(&[F32, F16, BF16])),
    row("Where", Some(&[F32, F16, I32, BOOL]), Some(&[F32, F16, I32, BOOL]), Some(&[F32, F16, BF16, I32, I64, BOOL])),
    row("Xor", Some(&[BOOL]), Some(&[BOOL]), Some(&[BOOL])),
];
