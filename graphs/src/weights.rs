//! Where graph modules get their weights from: a name → f32 tensor lookup that the exporter
//! backs with the checkpoint's safetensors (any stored dtype converted to f32).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum WeightError {
    #[error("tensor `{name}` is missing from {source_desc}")]
    Missing { name: String, source_desc: String },
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?} (from {source_desc})")]
    Shape {
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
        source_desc: String,
    },
    #[error(
        "`{name}{index:?}` in {source_desc} is {value}; vjx does not export non-finite values \
         (is the checkpoint damaged, or did its training diverge?)"
    )]
    NonFinite {
        name: String,
        /// The first non-finite element, one index per dimension.
        index: Vec<usize>,
        value: f32,
        source_desc: String,
    },
    #[error("tensor `{name}` in {source_desc}: {reason}")]
    Invalid {
        name: String,
        reason: String,
        source_desc: String,
    },
}

/// A weight converted to f32, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl WeightTensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        WeightTensor { shape, data }
    }

    /// The transpose of a 2-D tensor (PyTorch's `[out, in]` Linear weight → ONNX `[in, out]`).
    pub fn transposed_2d(&self) -> WeightTensor {
        // In square tiles, so that reads and writes both stay within a few cache lines.
        const TILE: usize = 32;
        let (rows, cols) = (self.shape[0], self.shape[1]);
        let mut out = vec![0f32; self.data.len()];
        for r0 in (0..rows).step_by(TILE) {
            for c0 in (0..cols).step_by(TILE) {
                for r in r0..(r0 + TILE).min(rows) {
                    let src = &self.data[r * cols..(r + 1) * cols];
                    for c in c0..(c0 + TILE).min(cols) {
                        out[c * rows + r] = src[c];
                    }
                }
            }
        }
        WeightTensor::new(vec![cols, rows], out)
    }
}

pub trait WeightSource {
    /// Human-readable origin used in errors (e.g. the safetensors file path).
    fn describe(&self) -> String;
    fn contains(&self, name: &str) -> bool;
    /// The tensor, converted to f32.
    fn get(&self, name: &str) -> Result<WeightTensor, WeightError>;

    /// The tensor's shape, without reading its data.
    fn shape(&self, name: &str) -> Result<Vec<usize>, WeightError> {
        Ok(self.get(name)?.shape)
    }

    /// The tensor, checked against the shape the graph needs.
    fn get_shaped(&self, name: &str, expected: &[usize]) -> Result<WeightTensor, WeightError> {
        let t = self.get(name)?;
        if t.shape != expected {
            return Err(WeightError::Shape {
                name: name.to_string(),
                found: t.shape,
                expected: expected.to_vec(),
                source_desc: self.describe(),
            });
        }
        Ok(t)
    }

    /// The first of `names` that is present (e.g. tied embeddings stored under either key).
    fn first_present<'a>(&self, names: &[&'a str]) -> Result<&'a str, WeightError> {
        names
            .iter()
            .copied()
            .find(|n| self.contains(n))
            .ok_or_else(|| WeightError::Missing {
                name: names.join("` or `"),
                source_desc: self.describe(),
            })
    }
}

/// An in-memory weight source, for tests and for derived tensors.
#[derive(Debug, Default, Clone)]
pub struct MemoryWeights {
    pub tensors: std::collections::BTreeMap<String, WeightTensor>,
}

impl WeightSource for MemoryWeights {
    fn describe(&self) -> String {
        "in-memory weights".to_string()
    }
    fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
    fn get(&self, name: &str) -> Result<WeightTensor, WeightError> {
        self.tensors
            .get(name)
            .cloned()
            .ok_or_else(|| WeightError::Missing {
                name: name.to_string(),
                source_desc: self.describe(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::WeightTensor;

    #[test]
    fn transpose_moves_every_element_across_tile_edges() {
        let (rows, cols) = (37, 45);
        let t = WeightTensor::new(
            vec![rows, cols],
            (0..rows * cols).map(|i| i as f32).collect(),
        );
        let tt = t.transposed_2d();
        assert_eq!(tt.shape, vec![cols, rows]);
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(tt.data[c * rows + r], t.data[r * cols + c]);
            }
        }
    }
}
