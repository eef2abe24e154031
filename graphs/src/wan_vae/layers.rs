//! The VAE's layers on `[batch, channels, time, height, width]` tensors, as plain ONNX ops
//! (3-D `Conv`, `Gather`, `Reshape` from `Shape`), so that batch, time and the spatial size
//! stay symbolic. Weight names are diffusers' (`{prefix}{module}.weight`).

use super::state::{CacheSlot, CausalState, Phase};
use crate::blocks::attention::attend;
use crate::builder::{Attr, DType, Encoding, GraphBuilder, Layout, Value};
use crate::nn;
use crate::weights::{WeightError, WeightSource};

/// `F.normalize`'s default eps.
const NORMALIZE_EPS: f32 = 1e-12;

/// A graph under construction with its weights and causal state.
pub struct VaeNet<'a> {
    pub g: GraphBuilder,
    w: &'a dyn WeightSource,
    prefix: String,
    pub state: CausalState,
}

type R = Result<Value, WeightError>;

impl<'a> VaeNet<'a> {
    pub fn new(g: GraphBuilder, w: &'a dyn WeightSource, prefix: &str, state: CausalState) -> Self {
        VaeNet {
            g,
            w,
            prefix: prefix.to_string(),
            state,
        }
    }

    pub fn phase(&self) -> Phase {
        self.state.phase()
    }

    fn weight(&mut self, name: &str, shape: &[usize]) -> R {
        self.weight_laid_out(name, shape, Layout::AsIs)
    }

    fn weight_laid_out(&mut self, name: &str, shape: &[usize], layout: Layout) -> R {
        let full = format!("{}{name}", self.prefix);
        self.g
            .checkpoint_weight(self.w, &full, shape, layout, Encoding::F32)
    }

    /// `nn.Conv3d` at `module` (`.weight` `[cout, cin, kt, kh, kw]`, `.bias`).
    #[allow(clippy::too_many_arguments)]
    pub fn conv3d(
        &mut self,
        x: &Value,
        module: &str,
        cin: usize,
        cout: usize,
        kernel: [usize; 3],
        stride: [usize; 3],
        pads: [usize; 6],
    ) -> R {
        let weight = self.weight_laid_out(
            &format!("{module}.weight"),
            &[cout, cin, kernel[0], kernel[1], kernel[2]],
            Layout::TapsToChannels,
        )?;
        let bias = self.weight(&format!("{module}.bias"), &[cout])?;
        Ok(frame_conv(
            &mut self.g,
            x,
            &weight,
            &bias,
            kernel,
            stride,
            pads,
        ))
    }

    /// `nn.Conv2d(cin, cout, 3)` at `module`, applied to every frame.
    fn conv2d_per_frame(
        &mut self,
        x: &Value,
        module: &str,
        cin: usize,
        cout: usize,
        stride: usize,
        pads: [usize; 6],
    ) -> R {
        let weight = self.weight(&format!("{module}.weight"), &[cout, cin, 3, 3])?;
        let bias = self.weight(&format!("{module}.bias"), &[cout])?;
        Ok(frame_conv(
            &mut self.g,
            x,
            &weight,
            &bias,
            [1, 3, 3],
            [1, stride, stride],
            pads,
        ))
    }

    /// `WanCausalConv3d(cin, cout, 3, padding=1)` with its frames of history from the state.
    pub fn causal_conv(
        &mut self,
        x: &Value,
        module: &str,
        cin: usize,
        cout: usize,
        downscale: usize,
    ) -> R {
        let padded = self.state.conv_history(&mut self.g, x, cin, downscale);
        self.conv3d(
            &padded,
            module,
            cin,
            cout,
            [3, 3, 3],
            [1, 1, 1],
            [0, 1, 1, 0, 1, 1],
        )
    }

    /// `WanRMS_norm` over the channel axis: `normalize(x, dim=1) · sqrt(C) · gamma`; the stored
    /// `gamma` (`[C, 1, 1, 1]` or `[C, 1, 1]`) is used as `[C, 1, 1, 1]`.
    pub fn rms_norm(
        &mut self,
        x: &Value,
        module: &str,
        channels: usize,
        gamma_shape: &[usize],
    ) -> R {
        let gamma = self.weight(&format!("{module}.gamma"), gamma_shape)?;
        let g = &mut self.g;
        let gamma = if gamma_shape.len() == 4 {
            gamma
        } else {
            g.reshape(&gamma, &[channels as i64, 1, 1, 1])
        };
        let norm = nn::l2_norm(g, x, &[1], NORMALIZE_EPS);
        let eps = g.scalar_f32(NORMALIZE_EPS);
        let norm = g.op("Max", &[&norm, &eps], vec![]);
        let normalized = g.div(x, &norm);
        let scale = g.scalar_f32((channels as f64).sqrt() as f32);
        let scaled = g.mul(&normalized, &scale);
        Ok(g.mul(&scaled, &gamma))
    }

    /// `WanResidualBlock(cin, cout)`: `conv2(silu(norm2(conv1(silu(norm1(x)))))) + shortcut(x)`.
    pub fn residual_block(
        &mut self,
        x: &Value,
        module: &str,
        cin: usize,
        cout: usize,
        downscale: usize,
    ) -> R {
        let shortcut = if cin != cout {
            self.conv3d(
                x,
                &format!("{module}.conv_shortcut"),
                cin,
                cout,
                [1, 1, 1],
                [1, 1, 1],
                [0; 6],
            )?
        } else {
            x.clone()
        };
        let h = self.rms_norm(x, &format!("{module}.norm1"), cin, &[cin, 1, 1, 1])?;
        let h = nn::silu(&mut self.g, &h);
        let h = self.causal_conv(&h, &format!("{module}.conv1"), cin, cout, downscale)?;
        let h = self.rms_norm(&h, &format!("{module}.norm2"), cout, &[cout, 1, 1, 1])?;
        let h = nn::silu(&mut self.g, &h);
        let h = self.causal_conv(&h, &format!("{module}.conv2"), cout, cout, downscale)?;
        Ok(self.g.add(&h, &shortcut))
    }

    /// `WanAttentionBlock(c)`: one head over the `h·w` positions of each frame, plus the input.
    fn attention_block(&mut self, x: &Value, module: &str, c: usize) -> R {
        let normed = self.rms_norm(x, &format!("{module}.norm"), c, &[c, 1, 1])?;
        let g = &mut self.g;
        let tokens = g.transpose(&normed, &[0, 2, 3, 4, 1]);
        let tokens = g.reshape(&tokens, &[0, 0, -1, c as i64]);
        let qkv = nn::project(
            g,
            self.w,
            &tokens,
            &format!("{}{module}.to_qkv.weight", self.prefix),
            &[3 * c, c, 1, 1],
        )?;
        let qkv_bias = nn::vector(
            g,
            self.w,
            &format!("{}{module}.to_qkv.bias", self.prefix),
            3 * c,
        )?;
        let qkv = g.add(&qkv, &qkv_bias);
        let (c64, scale) = (c as i64, g.scalar_f32(1.0 / (c as f32).sqrt()));
        let q = g.slice(&qkv, -1, 0, c64);
        let q = g.mul(&q, &scale);
        let k = g.slice(&qkv, -1, c64, 2 * c64);
        let kt = g.transpose(&k, &[0, 1, 3, 2]);
        let v = g.slice(&qkv, -1, 2 * c64, 3 * c64);
        let context = attend(g, &q, &kt, &v, None);
        let out = nn::project(
            g,
            self.w,
            &context,
            &format!("{}{module}.proj.weight", self.prefix),
            &[c, c, 1, 1],
        )?;
        let proj_bias = nn::vector(g, self.w, &format!("{}{module}.proj.bias", self.prefix), c)?;
        let out = g.add(&out, &proj_bias);
        let out = g.transpose(&out, &[0, 3, 1, 2]);
        let shape = g.op("Shape", &[x], vec![]);
        let out = g.op("Reshape", &[&out, &shape], vec![]);
        Ok(g.add(&out, x))
    }

    /// `WanMidBlock(c)`: resnet, attention, resnet.
    pub fn mid_block(&mut self, x: &Value, module: &str, c: usize, downscale: usize) -> R {
        let x = self.residual_block(x, &format!("{module}.resnets.0"), c, c, downscale)?;
        let x = self.attention_block(&x, &format!("{module}.attentions.0"), c)?;
        self.residual_block(&x, &format!("{module}.resnets.1"), c, c, downscale)
    }

    /// `WanResample` downsample: `ZeroPad2d(0,1,0,1)` + stride-2 3×3 conv per frame, then for
    /// `downsample3d` the stride-2 time conv over the previous chunk's last frame and this one
    /// (skipped on the first call, which only stores its frame). `downscale` is the output's.
    pub fn downsample(
        &mut self,
        x: &Value,
        module: &str,
        c: usize,
        temporal: bool,
        downscale: usize,
    ) -> R {
        let x = self.conv2d_per_frame(
            x,
            &format!("{module}.resample.1"),
            c,
            c,
            2,
            [0, 0, 0, 0, 1, 1],
        )?;
        if !temporal {
            return Ok(x);
        }
        let cache = self.state.next(CacheSlot {
            channels: c,
            frames: 1,
            downscale,
        });
        let last = self.g.slice(&x, 2, -1, i64::MAX);
        self.state.update(last);
        match cache {
            None => Ok(x),
            Some(cache) => {
                let joined = self.g.concat(&[&cache, &x], 2);
                self.conv3d(
                    &joined,
                    &format!("{module}.time_conv"),
                    c,
                    c,
                    [3, 1, 1],
                    [2, 1, 1],
                    [0; 6],
                )
            }
        }
    }

    /// `WanResample` upsample: for `upsample3d` first the time conv (`c → 2c`, its two halves
    /// interleaved as frames 2t, 2t+1; skipped on the first call, whose "Rep" cache is zero
    /// history), then nearest ×2 and a 3×3 conv per frame. `downscale` is the input's.
    pub fn upsample(
        &mut self,
        x: &Value,
        module: &str,
        c: usize,
        temporal: bool,
        downscale: usize,
    ) -> R {
        let mut x = x.clone();
        if temporal {
            let slot = CacheSlot {
                channels: c,
                frames: super::state::CONV_HISTORY,
                downscale,
            };
            match self.state.next(slot) {
                None => {
                    let zeros = zero_history(&mut self.g, &x, slot.frames);
                    self.state.update(zeros);
                }
                Some(cache) => {
                    let padded = self.g.concat(&[&cache, &x], 2);
                    let kept = self.g.slice(&padded, 2, -(slot.frames as i64), i64::MAX);
                    self.state.update(kept);
                    let y = self.conv3d(
                        &padded,
                        &format!("{module}.time_conv"),
                        c,
                        2 * c,
                        [3, 1, 1],
                        [1, 1, 1],
                        [0; 6],
                    )?;
                    let even = self.g.slice(&y, 1, 0, c as i64);
                    let odd = self.g.slice(&y, 1, c as i64, 2 * c as i64);
                    x = interleave(&mut self.g, &[even, odd], 2);
                }
            }
        }
        let x = interleave(&mut self.g, &[x.clone(), x], 4);
        let x = interleave(&mut self.g, &[x.clone(), x], 3);
        self.conv2d_per_frame(
            &x,
            &format!("{module}.resample.1"),
            c,
            c,
            1,
            [0, 1, 1, 0, 1, 1],
        )
    }
}

/// `Conv` with explicit kernel shape, strides and `[t0, h0, w0, t1, h1, w1]` pads.
#[allow(clippy::too_many_arguments)]
fn conv(
    g: &mut GraphBuilder,
    x: &Value,
    weight: &Value,
    bias: Option<&Value>,
    kernel: [usize; 3],
    stride: [usize; 3],
    pads: [usize; 6],
    group: usize,
) -> Value {
    let ints = |v: &[usize]| Attr::Ints(v.iter().map(|&d| d as i64).collect());
    let mut inputs = vec![x, weight];
    if let Some(b) = bias {
        inputs.push(b);
    }
    g.op(
        "Conv",
        &inputs,
        vec![
            ("kernel_shape", ints(&kernel)),
            ("strides", ints(&stride)),
            ("pads", ints(&pads)),
            ("group", Attr::Int(group as i64)),
        ],
    )
}

/// A convolution of `[B, C, T, H, W]` with a `[kt, kh, kw]` kernel and no temporal padding, as
/// one 2-D `Conv`: the frames fold into the batch and the `kt` temporal taps of each output frame
/// (input frames `t·st + k`) stack on the channel axis, to match `weight` `[cout, kt·cin, kh, kw]`.
/// The sums are the 3-D `Conv`'s. At the real VAE widths tract runs this about 5× faster than its
/// 3-D `Conv`, and ONNX Runtime's CPU provider about as fast (but with a slower load and a higher
/// RSS; bench/README.md).
fn frame_conv(
    g: &mut GraphBuilder,
    x: &Value,
    weight: &Value,
    bias: &Value,
    kernel: [usize; 3],
    stride: [usize; 3],
    pads: [usize; 6],
) -> Value {
    assert!(
        pads[0] == 0 && pads[3] == 0,
        "frame_conv takes no temporal padding (causal history is concatenated before)"
    );
    let [kt, kh, kw] = kernel;
    let frames_first = g.transpose(x, &[0, 2, 1, 3, 4]);
    let stacked = if kt == 1 && stride[0] == 1 {
        frames_first
    } else {
        let taps: Vec<Value> = (0..kt)
            .map(|k| {
                let end = if k + 1 == kt {
                    i64::MAX
                } else {
                    -((kt - 1 - k) as i64)
                };
                strided_slice(g, &frames_first, 1, k as i64, end, stride[0] as i64)
            })
            .collect();
        let refs: Vec<&Value> = taps.iter().collect();
        g.concat(&refs, 2)
    };
    let folded = merge_with_next(g, &stacked, 0, 5);
    let ints = |v: &[usize]| Attr::Ints(v.iter().map(|&d| d as i64).collect());
    let y = g.op(
        "Conv",
        &[&folded, weight, bias],
        vec![
            ("kernel_shape", ints(&[kh, kw])),
            ("strides", ints(&stride[1..])),
            ("pads", ints(&[pads[1], pads[2], pads[4], pads[5]])),
        ],
    );
    // [B·T', cout, H', W'] → [B, T', cout, H', W'] → [B, cout, T', H', W']
    let x_shape = g.op("Shape", &[x], vec![]);
    let batch = g.slice(&x_shape, 0, 0, 1);
    let any = g.const_i64(&[-1]);
    let y_shape = g.op("Shape", &[&y], vec![]);
    let per_frame = g.slice(&y_shape, 0, 1, 4);
    let target = g.concat(&[&batch, &any, &per_frame], 0);
    let unfolded = g.op("Reshape", &[&y, &target], vec![]);
    g.transpose(&unfolded, &[0, 2, 1, 3, 4])
}

/// `x[start:end:step]` along `axis`.
fn strided_slice(
    g: &mut GraphBuilder,
    x: &Value,
    axis: i64,
    start: i64,
    end: i64,
    step: i64,
) -> Value {
    if step == 1 {
        return g.slice(x, axis, start, end);
    }
    let s = g.const_i64(&[start]);
    let e = g.const_i64(&[end]);
    let a = g.const_i64(&[axis]);
    let st = g.const_i64(&[step]);
    g.op("Slice", &[x, &s, &e, &a, &st], vec![])
}

/// Zeros shaped like `x` `[B, C, T, H, W]` but with `frames` frames.
fn zero_history(g: &mut GraphBuilder, x: &Value, frames: usize) -> Value {
    let shape = g.op("Shape", &[x], vec![]);
    let lead = g.slice(&shape, 0, 0, 2);
    let t = g.const_i64(&[frames as i64]);
    let spatial = g.slice(&shape, 0, 3, 5);
    let target = g.concat(&[&lead, &t, &spatial], 0);
    // Without a `value` attribute the fill is a float zero, which tract makes f64.
    let zeros = g.op("ConstantOfShape", &[&target], vec![]);
    g.cast(&zeros, DType::F32)
}

/// `out[..., i·k + j, ...] = xs[j][..., i, ...]` along `axis` of 5-D tensors.
pub fn interleave(g: &mut GraphBuilder, xs: &[Value], axis: usize) -> Value {
    if xs.len() == 1 {
        return xs[0].clone();
    }
    let expanded: Vec<Value> = xs
        .iter()
        .map(|x| g.unsqueeze(x, &[axis as i64 + 1]))
        .collect();
    let refs: Vec<&Value> = expanded.iter().collect();
    let stacked = g.concat(&refs, axis as i64 + 1);
    merge_with_next(g, &stacked, axis, 6)
}

/// Merges `axis` and `axis + 1` of a rank-`rank` tensor (the shape read at run time).
fn merge_with_next(g: &mut GraphBuilder, x: &Value, axis: usize, rank: usize) -> Value {
    let shape = g.op("Shape", &[x], vec![]);
    let a = axis as i64;
    let mut parts = Vec::new();
    if axis > 0 {
        parts.push(g.slice(&shape, 0, 0, a));
    }
    let outer = g.slice(&shape, 0, a, a + 1);
    let inner = g.slice(&shape, 0, a + 1, a + 2);
    parts.push(g.mul(&outer, &inner));
    if axis + 2 < rank {
        parts.push(g.slice(&shape, 0, a + 2, rank as i64));
    }
    let refs: Vec<&Value> = parts.iter().collect();
    let target = g.concat(&refs, 0);
    g.op("Reshape", &[x, &target], vec![])
}

/// Patchify (`[B, 3, T, p·h, p·w]` → `[B, 3p², T, h, w]`, channel `c·p² + pw·p + ph`) as a
/// stride-`p` conv with one-hot weights (exact).
pub fn patchify(g: &mut GraphBuilder, x: &Value, channels: usize, p: usize) -> Value {
    if p == 1 {
        return x.clone();
    }
    let (pp, out) = (p * p, channels * p * p);
    let mut w = vec![0f32; out * channels * pp];
    for c in 0..channels {
        for ph in 0..p {
            for pw in 0..p {
                let o = c * pp + pw * p + ph;
                w[((o * channels + c) * p + ph) * p + pw] = 1.0;
            }
        }
    }
    let weight = g.const_f32("patchify_weight", &[out, channels, 1, p, p], w);
    conv(g, x, &weight, None, [1, p, p], [1, p, p], [0; 6], 1)
}

/// The inverse of [`patchify`]: `[B, 3p², T, h, w]` → `[B, 3, T, p·h, p·w]`.
pub fn unpatchify(g: &mut GraphBuilder, x: &Value, channels: usize, p: usize) -> Value {
    if p == 1 {
        return x.clone();
    }
    let mut rows = Vec::new();
    for ph in 0..p {
        let columns: Vec<Value> = (0..p)
            .map(|pw| {
                let idx: Vec<i64> = (0..channels)
                    .map(|c| (c * p * p + pw * p + ph) as i64)
                    .collect();
                let idx = g.const_i64(&idx);
                g.gather(x, &idx, 1)
            })
            .collect();
        rows.push(interleave(g, &columns, 4));
    }
    interleave(g, &rows, 3)
}

/// `AvgDown3D(cin, cout, ft, fs)`: the mean of channel groups after a space/time-to-depth, as
/// a stride-`(ft, fs, fs)` conv with constant weights `1/group` (grouped when each output reads
/// a single input channel). `front_pad` zero frames come first (diffusers pads T to a multiple
/// of `ft` at the front).
pub fn avg_down(
    g: &mut GraphBuilder,
    x: &Value,
    cin: usize,
    cout: usize,
    ft: usize,
    fs: usize,
    front_pad: usize,
) -> Value {
    let factor = ft * fs * fs;
    if factor == 1 && cin == cout {
        return x.clone();
    }
    let group_size = cin * factor / cout;
    let inv = 1.0 / group_size as f32;
    // The depth-to-channel index of input channel `ci` and kernel offset `sub` is
    // `ci·factor + sub`; output `o` averages indices `[o·group, (o+1)·group)`.
    let depthwise = cout.is_multiple_of(cin);
    let per_group_in = if depthwise { 1 } else { cin };
    let mut w = vec![0f32; cout * per_group_in * factor];
    for o in 0..cout {
        for k in 0..group_size {
            let index = o * group_size + k;
            let (ci, sub) = (index / factor, index % factor);
            let ci_local = if depthwise { 0 } else { ci };
            w[(o * per_group_in + ci_local) * factor + sub] = inv;
        }
    }
    let weight = g.const_f32("avg_down_weight", &[cout, per_group_in, ft, fs, fs], w);
    let group = if depthwise { cin } else { 1 };
    conv(
        g,
        x,
        &weight,
        None,
        [ft, fs, fs],
        [ft, fs, fs],
        [front_pad, 0, 0, 0, 0, 0],
        group,
    )
}

/// `DupUp3D(cin, cout, ft, fs)`: channel `repeat_interleave` then depth-to-space/time; with
/// `first_chunk` the first `ft - 1` frames are dropped.
pub fn dup_up(
    g: &mut GraphBuilder,
    x: &Value,
    cin: usize,
    cout: usize,
    ft: usize,
    fs: usize,
    first_chunk: bool,
) -> Value {
    let factor = ft * fs * fs;
    let repeats = cout * factor / cin;
    let mut frames = Vec::new();
    for a in 0..ft {
        let mut rows = Vec::new();
        for b in 0..fs {
            let columns: Vec<Value> = (0..fs)
                .map(|c| {
                    let sub = a * fs * fs + b * fs + c;
                    let idx: Vec<i64> = (0..cout)
                        .map(|o| ((o * factor + sub) / repeats) as i64)
                        .collect();
                    let idx = g.const_i64(&idx);
                    g.gather(x, &idx, 1)
                })
                .collect();
            rows.push(interleave(g, &columns, 4));
        }
        frames.push(interleave(g, &rows, 3));
    }
    let out = interleave(g, &frames, 2);
    if first_chunk && ft > 1 {
        g.slice(&out, 2, ft as i64 - 1, i64::MAX)
    } else {
        out
    }
}
