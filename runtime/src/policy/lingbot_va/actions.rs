//! Action-space helpers of the LingBot-VA loop: used channels and quantile unnormalization.
//!
//! Model-space actions are `[action_dim, F, apf]` (upstream's `[1, action_dim, F, apf, 1]`
//! without the unit axes). Quantile unnormalization of the returned chunk is
//! `postprocess::FeatureNorm` with `NormMode::Quantiles`, applied per row.

use ndarray::{Array2, ArrayView3, ArrayViewMut, Axis, RemoveAxis};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ActionError {
    #[error("used action channel {channel} is outside action_dim {action_dim}")]
    ChannelOutOfRange { channel: usize, action_dim: usize },
    #[error("actions have {got} channels, the used channels were checked against {action_dim}")]
    ActionDim { got: usize, action_dim: usize },
}

/// The config's `used_action_channel_ids`, checked against `action_dim`. Order matters: it is
/// the order of the returned action columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedChannels {
    ids: Vec<usize>,
    action_dim: usize,
}

impl UsedChannels {
    pub fn new(ids: Vec<usize>, action_dim: usize) -> Result<Self, ActionError> {
        if let Some(&channel) = ids.iter().find(|&&c| c >= action_dim) {
            return Err(ActionError::ChannelOutOfRange {
                channel,
                action_dim,
            });
        }
        Ok(UsedChannels { ids, action_dim })
    }

    pub fn ids(&self) -> &[usize] {
        &self.ids
    }

    pub fn action_dim(&self) -> usize {
        self.action_dim
    }

    fn check(&self, channels: usize) -> Result<(), ActionError> {
        if channels == self.action_dim {
            Ok(())
        } else {
            Err(ActionError::ActionDim {
                got: channels,
                action_dim: self.action_dim,
            })
        }
    }
}

/// What `predict_action_chunk` returns from the model-space actions `[action_dim, F, apf]`:
/// the used channels as columns, one row per step (frame-major), `[n_steps, n_used]`. On the
/// first chunk frame 0 is the conditioning frame and is dropped (`skip_first_frame`).
pub fn select_used_channels(
    actions: ArrayView3<f32>,
    used: &UsedChannels,
    skip_first_frame: bool,
) -> Result<Array2<f32>, ActionError> {
    let (channels, frames, per_frame) = actions.dim();
    used.check(channels)?;
    let first = usize::from(skip_first_frame).min(frames);
    let steps = (frames - first) * per_frame;
    Ok(Array2::from_shape_fn(
        (steps, used.ids.len()),
        |(step, column)| actions[[used.ids[column], first + step / per_frame, step % per_frame]],
    ))
}

/// Zeroes the channels (axis 0) not in `used`, in place. Like upstream's `*= 0` it multiplies, so
/// negative values become −0.0.
pub fn zero_unused_channels<D: RemoveAxis>(
    mut actions: ArrayViewMut<f32, D>,
    used: &UsedChannels,
) -> Result<(), ActionError> {
    used.check(actions.len_of(Axis(0)))?;
    for (channel, mut lane) in actions.axis_iter_mut(Axis(0)).enumerate() {
        if !used.ids.contains(&channel) {
            lane.mapv_inplace(|v| v * 0.0);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn used_channels_beyond_action_dim_are_rejected() {
        assert_eq!(
            UsedChannels::new(vec![0, 30], 30),
            Err(ActionError::ChannelOutOfRange {
                channel: 30,
                action_dim: 30
            })
        );
    }

    #[test]
    fn selected_steps_run_frame_major_in_used_order() {
        let actions = Array3::from_shape_fn((3, 2, 2), |(c, f, j)| (c * 100 + f * 10 + j) as f32);
        let used = UsedChannels::new(vec![2, 0], 3).unwrap();
        let chunk = select_used_channels(actions.view(), &used, true).unwrap();
        assert_eq!(chunk, ndarray::array![[210.0, 10.0], [211.0, 11.0]]);
    }
}
