//! The checkpoint tensors of one submodule: weight names are a shared prefix plus the
//! submodule's own local names.

use crate::builder::{GraphBuilder, Value};
use crate::nn;
use crate::weights::{WeightError, WeightSource};

/// A weight source seen through a name prefix (e.g. `model.action_model.`), and the layers
/// built from the tensors under it.
#[derive(Clone)]
pub struct Prefixed<'a> {
    pub weights: &'a dyn WeightSource,
    prefix: String,
}

impl<'a> Prefixed<'a> {
    /// `prefix` is used as given: include its trailing dot.
    pub fn new(weights: &'a dyn WeightSource, prefix: &str) -> Self {
        Prefixed {
            weights,
            prefix: prefix.to_string(),
        }
    }

    /// The full checkpoint name of `local`.
    pub fn name(&self, local: &str) -> String {
        format!("{}{local}", self.prefix)
    }

    /// `nn.Linear` with bias at `local` (`local.weight`, `local.bias`).
    pub fn linear(
        &self,
        g: &mut GraphBuilder,
        x: &Value,
        local: &str,
        in_features: usize,
        out_features: usize,
    ) -> Result<Value, WeightError> {
        self.linear_with_bias(g, x, local, in_features, out_features, true)
    }

    /// `nn.Linear` at `local`, with or without its bias.
    pub fn linear_with_bias(
        &self,
        g: &mut GraphBuilder,
        x: &Value,
        local: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Value, WeightError> {
        nn::linear(
            g,
            self.weights,
            x,
            &self.name(local),
            in_features,
            out_features,
            bias,
        )
    }

    /// RMSNorm over the last axis with the weight `local.weight`.
    pub fn rms_norm(
        &self,
        g: &mut GraphBuilder,
        x: &Value,
        local: &str,
        dim: usize,
        eps: f32,
    ) -> Result<Value, WeightError> {
        let weight_name = self.name(&format!("{local}.weight"));
        nn::rms_norm(g, self.weights, x, &weight_name, dim, eps)
    }
}
