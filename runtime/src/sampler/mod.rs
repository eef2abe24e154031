//! The denoising loops' samplers behind one trait: each knows the model timestep of every loop
//! entry and how the sample moves given the model's output there.

pub mod ddim;
pub mod euler;
pub mod flow_match;

pub use ddim::{Ddim, DdimConfig};
pub use euler::EulerFlowMatching;
pub use flow_match::FlowMatchScheduler;

pub trait Sampler {
    /// The model's timestep at each loop entry, in loop order.
    fn timesteps(&self) -> Vec<f32>;

    /// Moves `sample` by the model's output at loop entry `index` (of [`Self::timesteps`]).
    ///
    /// # Panics
    /// If `index` is past the loop or the slices differ in length.
    fn step(&self, index: usize, sample: &mut [f32], model_output: &[f32]);
}
