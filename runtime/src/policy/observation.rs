//! What the robot hands the policy each time: camera frames, state, task text, and the
//! initial noise of the sampler.

use super::PolicyError;
use crate::preprocess::image::{self as img, ImageF32};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub enum ImageInput {
    Path(PathBuf),
    /// Float32 CHW in [0, 1].
    Frame(ImageF32),
}

#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Feature key (e.g. `observation.images.image`) → frame.
    pub images: BTreeMap<String, ImageInput>,
    /// The raw (un-normalized) robot state.
    pub state: Option<Vec<f32>>,
    pub task: Option<String>,
}

impl Observation {
    /// Fails unless the images are exactly the cameras `keys`: none unknown, none missing.
    pub fn check_cameras(&self, keys: &[&str]) -> Result<(), PolicyError> {
        let cameras = || keys.join(", ");
        if let Some(extra) = self.images.keys().find(|k| !keys.contains(&k.as_str())) {
            return Err(PolicyError::Input(format!(
                "image key `{extra}` is not a camera of this policy (cameras: {})",
                cameras()
            )));
        }
        if let Some(missing) = keys.iter().find(|k| !self.images.contains_key(**k)) {
            return Err(PolicyError::Input(format!(
                "camera `{missing}` is missing: pass --image {missing}=<path> (cameras: {})",
                cameras()
            )));
        }
        Ok(())
    }

    /// Fails unless the robot state is given with `dim` finite values.
    pub fn check_state(&self, dim: usize) -> Result<&[f32], PolicyError> {
        let state = self.state.as_deref().ok_or_else(|| {
            PolicyError::Input(format!(
                "this policy needs the robot state ({dim} values): pass --state"
            ))
        })?;
        if state.len() != dim {
            return Err(PolicyError::Input(format!(
                "state has {} values, this policy needs {dim}",
                state.len()
            )));
        }
        if let Some(i) = state.iter().position(|v| !v.is_finite()) {
            return Err(PolicyError::Input(format!(
                "state value {} at index {i} is not finite",
                state[i]
            )));
        }
        Ok(state)
    }

    /// The frames of the cameras `keys`, in that order, as RGB float CHW in [0, 1] (a grey frame
    /// is repeated to three channels).
    pub fn camera_frames(&self, keys: &[&str]) -> Result<Vec<ImageF32>, PolicyError> {
        self.check_cameras(keys)?;
        keys.iter()
            .map(|key| {
                let frame = match &self.images[*key] {
                    ImageInput::Path(p) => img::load_rgb_f32(p)?,
                    ImageInput::Frame(f) => img::to_three_channels(f.clone()),
                };
                if frame.dim().0 != 3 {
                    return Err(PolicyError::Input(format!(
                        "camera `{key}`: frame has {} channels, expected 1 or 3",
                        frame.dim().0
                    )));
                }
                Ok(frame)
            })
            .collect()
    }
}
