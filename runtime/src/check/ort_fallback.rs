//! Where ONNX Runtime puts a node its TensorRT provider leaves: vjx registers TensorRT, then
//! CUDA (see `GpuOptions::providers`), and ONNX Runtime's CPU provider takes the rest. A node
//! therefore lands on CUDA when the CUDA provider registers a kernel for its op, opset and
//! element types, and on the CPU otherwise.
//!
//! Source (re-encoded, nothing copied): microsoft/onnxruntime `docs/OperatorKernels.md`, the
//! CUDAExecutionProvider section, at commit 001d12d2 (main, opset-25 era). Each row gives the
//! types of the kernel registered for opset 17 (the opset vjx writes) or, for kernels first
//! registered later, from their first opset; ops whose kernels stop before 17 carry that range.
//! The CPU provider's kernels are not checked (a node no provider has a kernel for makes ONNX
//! Runtime refuse the graph at load, which `vjx run --backend ort` shows).

use super::graph_facts::{type_name, Operand};
use serde::Serialize;
use vjx_graphs::onnx::tensor_proto::DataType;
use vjx_graphs::onnx::NodeProto;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Cuda,
    Cpu,
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Provider::Cuda => "CUDA",
            Provider::Cpu => "CPU",
        })
    }
}

/// Where a node TensorRT refuses runs, and why there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    pub provider: Provider,
    pub why: String,
}

/// The provider ONNX Runtime gives `node` (in `domain` at `opset`) once TensorRT has refused it;
/// `operand_type` gives the element type of a node operand when known. An operand of unknown
/// type is taken to fit the kernel.
pub fn fallback(
    node: &NodeProto,
    domain: &str,
    opset: i64,
    operand_type: impl Fn(Operand) -> Option<DataType>,
) -> Fallback {
    let op = node.op_type.as_deref().unwrap_or("");
    let domain = if domain == "ai.onnx" { "" } else { domain };
    let cpu = |why: String| Fallback {
        provider: Provider::Cpu,
        why,
    };
    let Some(kernel) = CUDA.iter().find(|k| k.domain == domain && k.op == op) else {
        return cpu(format!("the CUDA provider has no {op} kernel"));
    };
    if opset < kernel.since || kernel.until.is_some_and(|until| opset > until) {
        return cpu(format!(
            "the CUDA provider has no {op} kernel for opset {opset}"
        ));
    }
    for (operand, types) in kernel.types {
        let Some(t) = operand_type(*operand) else {
            continue;
        };
        if !types.contains(&t) {
            let taken: Vec<&str> = types.iter().map(|t| type_name(*t)).collect();
            return cpu(format!(
                "the CUDA provider's {op} takes {} on its {operand}, this node has {}",
                taken.join("/"),
                type_name(t)
            ));
        }
    }
    Fallback {
        provider: Provider::Cuda,
        why: format!("the CUDA provider has a {op} kernel for these types"),
    }
}

struct Kernel {
    domain: &'static str,
    op: &'static str,
    since: i64,
    until: Option<i64>,
    /// Constrained operands and the types the kernel takes there; empty: any type.
    types: &'static [(Operand, &'static [DataType])],
}

const fn onnx(op: &'static str, types: &'static [(Operand, &'static [DataType])]) -> Kernel {
    Kernel {
        domain: "",
        op,
        since: 1,
        until: None,
        types,
    }
}

const fn onnx_since(
    op: &'static str,
    since: i64,
    types: &'static [(Operand, &'static [DataType])],
) -> Kernel {
    Kernel {
        domain: "",
        op,
        since,
        until: None,
        types,
    }
}

const fn onnx_range(
    op: &'static str,
    since: i64,
    until: i64,
    types: &'static [(Operand, &'static [DataType])],
) -> Kernel {
    Kernel {
        domain: "",
        op,
        since,
        until: Some(until),
        types,
    }
}

const fn ms(op: &'static str, types: &'static [(Operand, &'static [DataType])]) -> Kernel {
    Kernel {
        domain: "com.microsoft",
        op,
        since: 1,
        until: None,
        types,
    }
}

use DataType::{
    Bfloat16 as BF16, Bool as BOOL, Double as F64, Float as F32, Float16 as F16, Int16 as I16,
    Int32 as I32, Int64 as I64, Int8 as I8, Uint16 as U16, Uint32 as U32, Uint64 as U64,
    Uint8 as U8,
};

const IN0: Operand = Operand::Input(0);
const ANY: &[(Operand, &[DataType])] = &[];
const FLT: &[(Operand, &[DataType])] = &[(IN0, &[F64, F32, F16])];
const FLT_BF: &[(Operand, &[DataType])] = &[(IN0, &[BF16, F64, F32, F16])];
const HALF: &[(Operand, &[DataType])] = &[(IN0, &[F32, F16])];
const HALF_BF: &[(Operand, &[DataType])] = &[(IN0, &[BF16, F32, F16])];
const NUMERIC: &[(Operand, &[DataType])] = &[(
    IN0,
    &[BF16, F64, F32, F16, I16, I32, I64, I8, U16, U32, U64, U8],
)];
const DATA: &[(Operand, &[DataType])] = &[(
    IN0,
    &[
        BF16, BOOL, F64, F32, F16, I16, I32, I64, I8, U16, U32, U64, U8,
    ],
)];
const COMPARE: &[(Operand, &[DataType])] = &[(IN0, &[F64, F32, F16, I32, I64, U32, U64])];
const MIN_MAX: &[(Operand, &[DataType])] = &[(IN0, &[BF16, F64, F32, F16, I32, I64, U32, U64])];
const LOGIC: &[(Operand, &[DataType])] = &[(IN0, &[BOOL])];
const REDUCE: &[(Operand, &[DataType])] = &[(IN0, &[F64, F32, F16, I32])];
const INT8_ONLY: &[(Operand, &[DataType])] = &[(IN0, &[I8])];

#[rustfmt::skip]
static CUDA: &[Kernel] = &[
    onnx("Abs", NUMERIC),
    onnx("Add", NUMERIC),
    onnx("And", LOGIC),
    onnx("ArgMax", FLT),
    onnx("ArgMin", FLT),
    onnx_since("Attention", 23, HALF_BF),
    onnx("AveragePool", FLT),
    onnx("BatchNormalization", FLT),
    onnx("Cast", &[(IN0, &[BF16, BOOL, F64, F32, F16, I16, I32, I64, I8, U16, U32, U64, U8]), (Operand::Output(0), &[BF16, BOOL, F64, F32, F16, I16, I32, I64, I8, U16, U32, U64, U8])]),
    onnx("Ceil", FLT),
    onnx("Clip", &[(IN0, &[F64, F32, F16, I64, I8, U64, U8])]),
    onnx("Compress", DATA),
    onnx("Concat", DATA),
    onnx("ConstantOfShape", &[(Operand::Output(0), &[BF16, BOOL, F64, F32, F16, I16, I32, I64, I8, U16, U32, U64, U8])]),
    onnx("Conv", FLT),
    onnx("ConvTranspose", FLT),
    onnx("Cos", FLT),
    onnx("CumSum", &[(IN0, &[F64, F32, F16, I32, I64, U32, U64])]),
    onnx("DepthToSpace", FLT),
    onnx("DequantizeLinear", &[(IN0, &[I8, U8])]),
    onnx("Div", NUMERIC),
    onnx("Dropout", FLT_BF),
    onnx("Einsum", FLT),
    onnx("Elu", FLT),
    onnx("Equal", &[(IN0, &[BOOL, F64, F32, F16, I32, I64, U32, U64])]),
    onnx("Erf", FLT_BF),
    onnx("Exp", FLT_BF),
    onnx("Expand", DATA),
    onnx("EyeLike", &[(IN0, &[F64, F32, I32, I64, U64])]),
    onnx("Flatten", DATA),
    onnx("Floor", FLT),
    onnx("GRU", FLT),
    onnx("Gather", DATA),
    onnx("GatherElements", DATA),
    onnx("GatherND", &[(IN0, &[BF16, BOOL, F64, F32, F16, I64])]),
    onnx_since("Gelu", 20, FLT_BF),
    onnx("Gemm", FLT_BF),
    onnx("GlobalAveragePool", FLT),
    onnx("GlobalMaxPool", FLT),
    onnx("Greater", COMPARE),
    onnx("GreaterOrEqual", COMPARE),
    onnx_since("GridSample", 16, &[(IN0, &[F32])]),
    onnx("HardSigmoid", FLT),
    onnx("HardSwish", FLT),
    onnx("Identity", DATA),
    onnx("If", ANY),
    onnx("ImageScaler", FLT),
    onnx("InstanceNormalization", FLT),
    onnx("IsInf", &[(IN0, &[F64, F32])]),
    onnx("IsNaN", FLT_BF),
    onnx("LRN", FLT),
    onnx("LSTM", FLT),
    onnx("LayerNormalization", FLT_BF),
    onnx("LeakyRelu", FLT),
    onnx("Less", COMPARE),
    onnx("LessOrEqual", COMPARE),
    onnx("Log", FLT),
    onnx("LogSoftmax", FLT),
    onnx("Loop", ANY),
    onnx("MatMul", FLT_BF),
    onnx("MatMulInteger", &[(IN0, &[I8]), (Operand::Input(1), &[I8])]),
    onnx("Max", MIN_MAX),
    onnx("MaxPool", &[(IN0, &[F64, F32, F16, I8, U8])]),
    onnx("Min", MIN_MAX),
    onnx("Mod", MIN_MAX),
    onnx("Mul", NUMERIC),
    onnx("Neg", &[(IN0, &[BF16, F64, F32, F16, I16, I32, I64, I8])]),
    onnx("NonZero", &[(IN0, &[BOOL, F32, F16, I32, I64, U8])]),
    onnx("Not", LOGIC),
    onnx("OneHot", &[(Operand::Input(2), &[F32, F16, I64])]),
    onnx("Or", LOGIC),
    onnx("PRelu", FLT),
    onnx("Pad", &[(IN0, &[BOOL, F64, F32, F16])]),
    onnx("Pow", &[(IN0, &[BF16, F64, F32, F16, I32, I64])]),
    onnx("QuantizeLinear", &[(IN0, &[F32])]),
    onnx_since("RMSNormalization", 23, FLT_BF),
    onnx("RNN", FLT),
    onnx("RandomNormal", &[(Operand::Output(0), &[F64, F32, F16])]),
    onnx("RandomNormalLike", &[(Operand::Output(0), &[F64, F32, F16])]),
    onnx("RandomUniform", &[(Operand::Output(0), &[F64, F32, F16])]),
    onnx("RandomUniformLike", &[(Operand::Output(0), &[F64, F32, F16])]),
    onnx("Range", &[(IN0, &[F64, F32, I16, I32, I64])]),
    onnx("Reciprocal", FLT),
    onnx("ReduceL1", REDUCE),
    onnx("ReduceL2", REDUCE),
    onnx("ReduceLogSum", FLT),
    onnx("ReduceLogSumExp", FLT),
    onnx("ReduceMax", &[(IN0, &[F64, F32, F16, I32, I64])]),
    onnx("ReduceMean", REDUCE),
    onnx("ReduceMin", &[(IN0, &[F64, F32, F16, I32, I64, I8, U8])]),
    onnx("ReduceProd", REDUCE),
    onnx("ReduceSum", &[(IN0, &[BF16, F64, F32, F16, I32, I64])]),
    onnx("ReduceSumSquare", FLT),
    onnx("Relu", FLT_BF),
    onnx("Reshape", DATA),
    onnx("Resize", &[(IN0, &[F64, F32, F16, I32, U8])]),
    onnx("ReverseSequence", DATA),
    onnx("RoiAlign", &[(IN0, &[F64, F32])]),
    onnx_since("RotaryEmbedding", 23, HALF_BF),
    onnx("Round", FLT),
    onnx("Scan", DATA),
    onnx_range("Scatter", 9, 10, DATA),
    onnx("ScatterElements", DATA),
    onnx("ScatterND", DATA),
    onnx("Selu", FLT),
    onnx("SequenceAt", ANY),
    onnx("SequenceConstruct", ANY),
    onnx("SequenceEmpty", ANY),
    onnx("SequenceErase", ANY),
    onnx("SequenceInsert", ANY),
    onnx("SequenceLength", ANY),
    onnx("Shape", DATA),
    onnx("Shrink", &[(IN0, &[F64, F32, F16, I16, I32, I64, I8, U16, U32, U64, U8])]),
    onnx("Sigmoid", FLT_BF),
    onnx("Sign", NUMERIC),
    onnx("SimplifiedLayerNormalization", FLT_BF),
    onnx("Sin", FLT),
    onnx("Size", DATA),
    onnx("Slice", DATA),
    onnx("Softmax", FLT_BF),
    onnx("Softplus", FLT),
    onnx("Softsign", FLT),
    onnx("SpaceToDepth", FLT),
    onnx("Split", DATA),
    onnx("Sqrt", FLT_BF),
    onnx("Squeeze", DATA),
    onnx("Sub", NUMERIC),
    onnx("Sum", FLT_BF),
    onnx("Tanh", FLT_BF),
    onnx_since("TensorScatter", 24, DATA),
    onnx("ThresholdedRelu", FLT),
    onnx("Tile", &[(IN0, &[BF16, F64, F32, F16, I32, I64])]),
    onnx("TopK", &[(IN0, &[F64, F32, F16, I32, I64])]),
    onnx("Transpose", DATA),
    onnx("Trilu", DATA),
    onnx("Unsqueeze", DATA),
    onnx_range("Upsample", 7, 9, &[(IN0, &[F64, F32, F16, I32, U8])]),
    onnx("Where", &[(Operand::Input(1), &[BF16, F64, F32, F16, I32, I64, U8])]),
    onnx("Xor", LOGIC),
    ms("Attention", HALF_BF),
    ms("BeamSearch", ANY),
    ms("BiasAdd", HALF),
    ms("BiasDropout", FLT_BF),
    ms("BiasGelu", FLT_BF),
    ms("BiasSoftmax", FLT),
    ms("BiasSplitGelu", HALF),
    ms("BitmaskBiasDropout", FLT_BF),
    ms("BitmaskDropout", FLT_BF),
    ms("ComplexMul", HALF),
    ms("ComplexMulConj", HALF),
    ms("ConvTransposeWithDynamicPads", &[(IN0, &[F32])]),
    ms("DecoderAttention", HALF),
    ms("DecoderMaskedMultiHeadAttention", HALF),
    ms("DecoderMaskedSelfAttention", HALF),
    ms("DequantizeLinear", &[(IN0, &[I8, U8]), (Operand::Input(1), &[F16])]),
    ms("DequantizeWithOrder", INT8_ONLY),
    ms("DynamicTimeWarping", &[(IN0, &[F32])]),
    ms("EmbedLayerNormalization", ANY),
    ms("FastGelu", FLT_BF),
    ms("FusedConv", &[(IN0, &[F32])]),
    ms("FusedMatMul", FLT_BF),
    ms("GatedRelativePositionBias", HALF),
    ms("GatherBlockQuantized", ANY),
    ms("Gelu", FLT_BF),
    ms("GemmFloat8", ANY),
    ms("GemmaRotaryEmbedding", ANY),
    ms("GreedySearch", ANY),
    ms("GridSample", &[(IN0, &[F32])]),
    ms("GroupNorm", HALF),
    ms("GroupQueryAttention", &[(IN0, &[BF16, F16])]),
    ms("Inverse", FLT),
    ms("Irfft", FLT),
    ms("LongformerAttention", HALF),
    ms("MatMulBnb4", HALF_BF),
    ms("MatMulNBits", HALF_BF),
    ms("MoE", HALF_BF),
    ms("MultiHeadAttention", HALF_BF),
    ms("NGramRepeatBlock", ANY),
    ms("NhwcConv", HALF),
    ms("PackedAttention", HALF),
    ms("PackedMultiHeadAttention", HALF),
    ms("PagedAttention", &[(IN0, &[BF16, F16])]),
    ms("QAttention", INT8_ONLY),
    ms("QMoE", &[(IN0, &[BF16, F16])]),
    ms("QOrderedAttention", INT8_ONLY),
    ms("QOrderedGelu", INT8_ONLY),
    ms("QOrderedLayerNormalization", INT8_ONLY),
    ms("QOrderedLongformerAttention", INT8_ONLY),
    ms("QOrderedMatMul", INT8_ONLY),
    ms("QuantizeLinear", &[(IN0, &[F16])]),
    ms("QuantizeWithOrder", HALF),
    ms("QuickGelu", FLT_BF),
    ms("RelativePositionBias", HALF),
    ms("RemovePadding", HALF),
    ms("RestorePadding", HALF),
    ms("Rfft", FLT),
    ms("RotaryEmbedding", HALF_BF),
    ms("Sampling", ANY),
    ms("SkipGroupNorm", HALF),
    ms("SkipLayerNormalization", HALF_BF),
    ms("SkipSimplifiedLayerNormalization", HALF_BF),
    ms("SparseAttention", &[(IN0, &[BF16, F16])]),
    ms("TransposeMatMul", FLT_BF),
    ms("Trilu", DATA),
    ms("UnfoldTensor", DATA),
    ms("WhisperBeamSearch", ANY),
];
