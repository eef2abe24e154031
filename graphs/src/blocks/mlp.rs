//! Feed-forward layers: two linears around an activation, and the gated form.

use super::Prefixed;
use crate::builder::{GraphBuilder, Value};
use crate::nn;
use crate::weights::WeightError;

/// The activation between the linears of a feed-forward layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu_pytorch_tanh`, `nn.GELU(approximate="tanh")`.
    GeluTanh,
    /// `gelu`, `nn.GELU()`.
    GeluErf,
    Silu,
    Relu,
    /// `quick_gelu`: `x · σ(1.702 x)` (CLIP, the Qwen2-VL vision tower).
    QuickGelu,
}

impl Activation {
    /// The activation a transformers config names in `hidden_act`.
    pub fn from_config(name: &str) -> Option<Self> {
        match name {
            "gelu_pytorch_tanh" | "gelu_new" => Some(Activation::GeluTanh),
            "gelu" => Some(Activation::GeluErf),
            "silu" | "swish" => Some(Activation::Silu),
            "relu" => Some(Activation::Relu),
            "quick_gelu" => Some(Activation::QuickGelu),
            _ => None,
        }
    }

    pub fn apply(self, g: &mut GraphBuilder, x: &Value) -> Value {
        match self {
            Activation::GeluTanh => nn::gelu_tanh(g, x),
            Activation::GeluErf => nn::gelu_erf(g, x),
            Activation::Silu => nn::silu(g, x),
            Activation::Relu => g.relu(x),
            Activation::QuickGelu => {
                let k = g.scalar_f32(1.702);
                let scaled = g.mul(x, &k);
                let gate = g.sigmoid(&scaled);
                g.mul(x, &gate)
            }
        }
    }
}

/// The widths of a feed-forward layer: input, between the linears, output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Widths {
    pub input: usize,
    pub hidden: usize,
    pub output: usize,
}

impl Widths {
    /// A residual branch: input and output `dim` wide, `hidden` between.
    pub fn residual(dim: usize, hidden: usize) -> Self {
        Widths {
            input: dim,
            hidden,
            output: dim,
        }
    }
}

/// `second(act(first(x)))`, both linears with bias, at the local names `first`, `second`.
pub fn feed_forward(
    g: &mut GraphBuilder,
    at: &Prefixed,
    x: &Value,
    [first, second]: [&str; 2],
    widths: Widths,
    activation: Activation,
) -> Result<Value, WeightError> {
    let h = at.linear(g, x, first, widths.input, widths.hidden)?;
    let h = activation.apply(g, &h);
    at.linear(g, &h, second, widths.hidden, widths.output)
}

/// `down(act(gate(x)) ⊙ up(x))` without biases, at the local names `[gate, up, down]`.
pub fn gated_feed_forward(
    g: &mut GraphBuilder,
    at: &Prefixed,
    x: &Value,
    [gate, up, down]: [&str; 3],
    widths: Widths,
    activation: Activation,
) -> Result<Value, WeightError> {
    let gate = at.linear_with_bias(g, x, gate, widths.input, widths.hidden, false)?;
    let gate = activation.apply(g, &gate);
    let up = at.linear_with_bias(g, x, up, widths.input, widths.hidden, false)?;
    let product = g.mul(&gate, &up);
    at.linear_with_bias(g, &product, down, widths.hidden, widths.output, false)
}
