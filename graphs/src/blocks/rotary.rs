//! Rotary position embedding applied in the graph, with the cos/sin tables as inputs. The
//! models pair the dimensions of a head in one of two layouts, each with its own table shape.

use crate::builder::{GraphBuilder, Value};

/// `cat(-x[..., d/2:], x[..., :d/2])` on the last axis of width `dim`.
fn rotate_half(g: &mut GraphBuilder, x: &Value, dim: usize) -> Value {
    let half = (dim / 2) as i64;
    let first = g.slice(x, -1, 0, half);
    let second = g.slice(x, -1, half, dim as i64);
    let neg = g.neg(&second);
    g.concat(&[&neg, &first], -1)
}

/// Rotates dimension `i` with `i + dim/2` (transformers' `rotate_half` layout, Qwen):
/// `x · cos + rotate_half(x) · sin`, with full-width `cos`, `sin` broadcast against `x`.
pub fn rotate_halves(
    g: &mut GraphBuilder,
    x: &Value,
    cos: &Value,
    sin: &Value,
    dim: usize,
) -> Value {
    let rot = rotate_half(g, x, dim);
    let a = g.mul(x, cos);
    let b = g.mul(&rot, sin);
    g.add(&a, &b)
}

/// Rotates adjacent pairs `(x[2i], x[2i+1])` (the complex-number layout, Wan) of every head of
/// `x` (`[batch, L, heads, head_dim]`) by the angles of `cos`, `sin` (`[L, 1, head_dim/2, 1]`).
pub fn rotate_pairs(
    g: &mut GraphBuilder,
    x: &Value,
    cos: &Value,
    sin: &Value,
    head_dim: usize,
) -> Value {
    let pairs = g.reshape(x, &[0, 0, 0, (head_dim / 2) as i64, 2]);
    let re = g.slice(&pairs, -1, 0, 1);
    let im = g.slice(&pairs, -1, 1, 2);
    let re_cos = g.mul(&re, cos);
    let im_sin = g.mul(&im, sin);
    let re_sin = g.mul(&re, sin);
    let im_cos = g.mul(&im, cos);
    let out_re = g.sub(&re_cos, &im_sin);
    let out_im = g.add(&re_sin, &im_cos);
    let rotated = g.concat(&[&out_re, &out_im], -1);
    g.reshape(&rotated, &[0, 0, 0, head_dim as i64])
}
