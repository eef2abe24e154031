//! Normalization of the state going in and the post-processing of the action chunk coming
//! out, as the checkpoint's LeRobot processor pipelines define them.

use crate::validate::{FieldError, Width};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NormMode {
    MeanStd,
    MinMax,
    /// `[q01, q99]` → `[-1, 1]`.
    Quantiles,
    /// `[q10, q90]` → `[-1, 1]`.
    Quantile10,
    #[default]
    Identity,
}

impl NormMode {
    /// The name LeRobot (and the manifest) gives the mode.
    pub fn name(self) -> &'static str {
        match self {
            NormMode::MeanStd => "MEAN_STD",
            NormMode::MinMax => "MIN_MAX",
            NormMode::Quantiles => "QUANTILES",
            NormMode::Quantile10 => "QUANTILE10",
            NormMode::Identity => "IDENTITY",
        }
    }
}

/// One feature's normalization statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureNorm {
    pub mode: NormMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q01: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q99: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q10: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q90: Option<Vec<f32>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub state: Option<FeatureNorm>,
    pub action: FeatureNorm,
}

/// The post-processing steps, in the checkpoint's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum PostStep {
    Clip { min: f32, max: f32 },
    PreSnapGripper { dim: usize, threshold: f32 },
    Unnormalize,
    AbsoluteActions { mask: Vec<bool> },
    BinarizeGripper { dim: usize, threshold: f32 },
}

/// LeRobot's epsilon in `(x - mean) / (std + eps)` and in a zero min-max range.
const NORM_EPS: f32 = 1e-8;

impl FeatureNorm {
    fn stat<'a>(stat: &'a Option<Vec<f32>>, name: &str, len: usize) -> &'a [f32] {
        let v = stat.as_deref().unwrap_or_else(|| {
            panic!("normalization stat `{name}` missing (manifest validated on load)")
        });
        assert_eq!(v.len(), len, "normalization stat `{name}` length");
        v
    }

    /// Raw → normalized.
    pub fn normalize(&self, x: &mut [f32]) {
        let n = x.len();
        match self.mode {
            NormMode::Identity => {}
            NormMode::MeanStd => {
                let (mean, std) = (
                    Self::stat(&self.mean, "mean", n),
                    Self::stat(&self.std, "std", n),
                );
                for i in 0..n {
                    x[i] = (x[i] - mean[i]) / (std[i] + NORM_EPS);
                }
            }
            NormMode::MinMax => {
                let (min, max) = (
                    Self::stat(&self.min, "min", n),
                    Self::stat(&self.max, "max", n),
                );
                for i in 0..n {
                    let denom = min_max_denom(min[i], max[i]);
                    x[i] = (x[i] - min[i]) / denom * 2.0 - 1.0;
                }
            }
            NormMode::Quantiles | NormMode::Quantile10 => {
                let (low, high) = self.quantile_range(n);
                for i in 0..n {
                    let denom = min_max_denom(low[i], high[i]);
                    x[i] = 2.0 * (x[i] - low[i]) / denom - 1.0;
                }
            }
        }
    }

    /// The `(low, high)` quantiles of a quantile mode.
    fn quantile_range(&self, n: usize) -> (&[f32], &[f32]) {
        match self.mode {
            NormMode::Quantile10 => (
                Self::stat(&self.q10, "q10", n),
                Self::stat(&self.q90, "q90", n),
            ),
            _ => (
                Self::stat(&self.q01, "q01", n),
                Self::stat(&self.q99, "q99", n),
            ),
        }
    }

    /// Normalized → raw.
    pub fn unnormalize(&self, x: &mut [f32]) {
        let n = x.len();
        match self.mode {
            NormMode::Identity => {}
            NormMode::MeanStd => {
                let (mean, std) = (
                    Self::stat(&self.mean, "mean", n),
                    Self::stat(&self.std, "std", n),
                );
                for i in 0..n {
                    x[i] = x[i] * std[i] + mean[i];
                }
            }
            NormMode::MinMax => {
                let (min, max) = (
                    Self::stat(&self.min, "min", n),
                    Self::stat(&self.max, "max", n),
                );
                for i in 0..n {
                    let denom = min_max_denom(min[i], max[i]);
                    x[i] = (x[i] + 1.0) / 2.0 * denom + min[i];
                }
            }
            NormMode::Quantiles | NormMode::Quantile10 => {
                let (low, high) = self.quantile_range(n);
                for i in 0..n {
                    let denom = min_max_denom(low[i], high[i]);
                    x[i] = (x[i] + 1.0) * denom / 2.0 + low[i];
                }
            }
        }
    }

    /// The statistics `mode` reads, by name.
    fn required_stats(&self) -> Vec<(&'static str, &Option<Vec<f32>>)> {
        match self.mode {
            NormMode::Identity => vec![],
            NormMode::MeanStd => vec![("mean", &self.mean), ("std", &self.std)],
            NormMode::MinMax => vec![("min", &self.min), ("max", &self.max)],
            NormMode::Quantiles => vec![("q01", &self.q01), ("q99", &self.q99)],
            NormMode::Quantile10 => vec![("q10", &self.q10), ("q90", &self.q90)],
        }
    }

    /// Checks that the statistics the mode reads are present, finite and `width` long (or,
    /// without a width, as long as each other). `key` names the feature in errors.
    pub fn check(&self, key: &str, width: Width) -> Result<(), FieldError> {
        let mut expected = width.map(|(len, from)| (len, format!("{from} is")));
        for (name, stat) in self.required_stats() {
            let stat_key = format!("{key}.{name}");
            let Some(values) = stat else {
                return Err(FieldError::new(
                    stat_key,
                    format!("is missing; {} normalization needs it", self.mode.name()),
                ));
            };
            match &expected {
                Some((len, from)) if values.len() != *len => {
                    return Err(FieldError::new(
                        stat_key,
                        format!("has {} values, {from} {len}", values.len()),
                    ))
                }
                Some(_) => {}
                None => expected = Some((values.len(), format!("{stat_key} has"))),
            }
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(FieldError::new(
                    format!("{stat_key}[{i}]"),
                    format!("is {}; statistics must be finite", values[i]),
                ));
            }
        }
        Ok(())
    }

    /// The feature width its statistics describe (None for identity without stats).
    pub fn width(&self) -> Option<usize> {
        [
            &self.mean, &self.std, &self.min, &self.max, &self.q01, &self.q99, &self.q10, &self.q90,
        ]
        .into_iter()
        .flatten()
        .map(|v| v.len())
        .next()
    }
}

fn min_max_denom(min: f32, max: f32) -> f32 {
    let d = max - min;
    if d == 0.0 {
        NORM_EPS
    } else {
        d
    }
}

/// Checks that each step can run on actions of `action` width: gripper dims inside it, a
/// relative mask of its length, clip bounds in order.
pub fn check_post_steps(steps: &[PostStep], action: Width) -> Result<(), FieldError> {
    for (i, step) in steps.iter().enumerate() {
        let key = format!("postprocess[{i}]");
        match (step, action) {
            (PostStep::Clip { min, max }, _)
                if matches!(
                    min.partial_cmp(max),
                    None | Some(std::cmp::Ordering::Greater)
                ) =>
            {
                return Err(FieldError::new(
                    key,
                    format!("clips to [{min}, {max}]; min must not exceed max"),
                ))
            }
            (
                PostStep::PreSnapGripper { dim, .. } | PostStep::BinarizeGripper { dim, .. },
                Some((width, from)),
            ) if *dim >= width => {
                return Err(FieldError::new(
                    format!("{key}.dim"),
                    format!("is {dim}, past the action width ({from} is {width})"),
                ))
            }
            (PostStep::AbsoluteActions { mask }, Some((width, from))) if mask.len() != width => {
                return Err(FieldError::new(
                    format!("{key}.mask"),
                    format!("has {} entries, {from} is {width}", mask.len()),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Applies `steps` to each row (one action) of a `[chunk, action_dim]` chunk in place.
/// `raw_state` is the un-normalized robot state, used by the relative-actions step.
pub fn apply_post_steps(
    steps: &[PostStep],
    action_norm: &FeatureNorm,
    chunk: &mut [f32],
    action_dim: usize,
    raw_state: Option<&[f32]>,
) {
    for row in chunk.chunks_mut(action_dim) {
        for step in steps {
            match step {
                PostStep::Clip { min, max } => {
                    row.iter_mut().for_each(|v| *v = v.clamp(*min, *max))
                }
                PostStep::PreSnapGripper { dim, threshold } => {
                    row[*dim] = if row[*dim] >= *threshold { 1.0 } else { 0.0 };
                }
                PostStep::Unnormalize => action_norm.unnormalize(row),
                PostStep::AbsoluteActions { mask } => {
                    if let Some(state) = raw_state {
                        for (i, m) in mask.iter().enumerate().take(row.len().min(state.len())) {
                            if *m {
                                row[i] += state[i];
                            }
                        }
                    }
                }
                PostStep::BinarizeGripper { dim, threshold } => {
                    row[*dim] = if row[*dim] > *threshold { -1.0 } else { 1.0 };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn min_max(min: Vec<f32>, max: Vec<f32>) -> FeatureNorm {
        FeatureNorm {
            mode: NormMode::MinMax,
            min: Some(min),
            max: Some(max),
            ..Default::default()
        }
    }

    #[test]
    fn min_max_unnormalize_maps_minus_one_to_min_and_one_to_max() {
        let norm = min_max(vec![-2.0, 0.0], vec![2.0, 10.0]);
        let mut x = [-1.0, 1.0];
        norm.unnormalize(&mut x);
        assert_eq!(x, [-2.0, 10.0]);
    }

    #[test]
    fn mean_std_normalize_divides_by_std_plus_eps() {
        let norm = FeatureNorm {
            mode: NormMode::MeanStd,
            mean: Some(vec![1.0]),
            std: Some(vec![2.0]),
            ..Default::default()
        };
        let mut x = [5.0];
        norm.normalize(&mut x);
        assert!((x[0] - 4.0 / (2.0 + 1e-8)).abs() < 1e-7);
    }

    #[test]
    fn clip_then_unnormalize_keeps_actions_inside_the_range() {
        let norm = min_max(vec![0.0, 0.0], vec![4.0, 4.0]);
        let mut chunk = [3.0, -0.5, -7.0, 0.0];
        apply_post_steps(
            &[
                PostStep::Clip {
                    min: -1.0,
                    max: 1.0,
                },
                PostStep::Unnormalize,
            ],
            &norm,
            &mut chunk,
            2,
            None,
        );
        assert_eq!(chunk, [4.0, 1.0, 0.0, 2.0]);
    }

    #[test]
    fn binarize_gripper_maps_open_to_minus_one() {
        let norm = min_max(vec![0.0], vec![1.0]);
        let mut chunk = [0.7, 0.2];
        apply_post_steps(
            &[PostStep::BinarizeGripper {
                dim: 0,
                threshold: 0.5,
            }],
            &norm,
            &mut chunk,
            1,
            None,
        );
        assert_eq!(chunk, [-1.0, 1.0]);
    }

    #[test]
    fn absolute_actions_add_the_raw_state_where_the_mask_allows() {
        let norm = min_max(vec![0.0, 0.0], vec![1.0, 1.0]);
        let mut chunk = [1.0, 1.0];
        apply_post_steps(
            &[PostStep::AbsoluteActions {
                mask: vec![true, false],
            }],
            &norm,
            &mut chunk,
            2,
            Some(&[10.0, 10.0]),
        );
        assert_eq!(chunk, [11.0, 1.0]);
    }

    #[test]
    fn quantiles_unnormalize_maps_minus_one_to_q01_and_one_to_q99() {
        let norm = FeatureNorm {
            mode: NormMode::Quantiles,
            q01: Some(vec![-0.5, 2.0]),
            q99: Some(vec![1.5, 2.0]),
            ..Default::default()
        };
        let mut x = [-1.0, 1.0];
        norm.unnormalize(&mut x);
        // A zero quantile range falls back to LeRobot's eps as the denominator.
        assert_eq!(x, [-0.5, 2.0 + 1e-8]);
        let mut y = [0.5, 2.0];
        norm.normalize(&mut y);
        assert_eq!(y, [0.0, -1.0]);
    }

    #[test]
    fn stats_without_a_fixed_width_must_agree_with_each_other() {
        let norm = FeatureNorm {
            mode: NormMode::Quantiles,
            q01: Some(vec![0.0; 7]),
            q99: Some(vec![1.0; 6]),
            ..Default::default()
        };
        let err = norm.check("normalization.action", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "normalization.action.q99 has 6 values, normalization.action.q01 has 7"
        );
    }

    #[test]
    fn identity_needs_no_stats() {
        assert_eq!(
            FeatureNorm::default().check("normalization.state", Some((8, "policy.state_dim"))),
            Ok(())
        );
    }
}
