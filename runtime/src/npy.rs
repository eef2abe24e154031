//! .npy files in and out (noise inputs, `--dump` outputs, fixtures).

use ndarray::ArrayD;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum NpyError {
    #[error("reading {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("writing {path}: {reason}")]
    Write { path: String, reason: String },
}

pub fn read_f32(path: &Path) -> Result<ArrayD<f32>, NpyError> {
    ndarray_npy::read_npy(path).map_err(|e| NpyError::Read {
        path: path.display().to_string(),
        reason: format!("{e} (expected a float32 .npy)"),
    })
}

pub fn read_i64(path: &Path) -> Result<ArrayD<i64>, NpyError> {
    ndarray_npy::read_npy(path).map_err(|e| NpyError::Read {
        path: path.display().to_string(),
        reason: format!("{e} (expected an int64 .npy)"),
    })
}

pub fn write_f32(path: &Path, array: &ArrayD<f32>) -> Result<(), NpyError> {
    ndarray_npy::write_npy(path, array).map_err(|e| NpyError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

pub fn write_i64(path: &Path, array: &ArrayD<i64>) -> Result<(), NpyError> {
    ndarray_npy::write_npy(path, array).map_err(|e| NpyError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}
