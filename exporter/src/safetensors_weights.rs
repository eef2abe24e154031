//! Checkpoint weights read straight from memory-mapped safetensors files: one file
//! ([`SafetensorsWeights`]) or a sharded checkpoint described by
//! `model.safetensors.index.json` ([`ShardedWeights`]). Both serve graph modules through
//! [`WeightSource`], converting BF16/F16/F32 to f32 on demand.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::{Metadata, SafeTensorError};
use safetensors::{Dtype, SafeTensors};
use thiserror::Error;
use vjx_graphs::weights::{WeightError, WeightSource, WeightTensor};

/// Size of the little-endian u64 that starts every safetensors file (the header length).
const HEADER_LEN_BYTES: usize = 8;

pub const SINGLE_FILE_NAME: &str = "model.safetensors";
pub const INDEX_FILE_NAME: &str = "model.safetensors.index.json";

#[derive(Debug, Error)]
pub enum WeightsError {
    #[error("safetensors file {path} does not exist")]
    NotFound { path: PathBuf },
    #[error("cannot read safetensors file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "safetensors file {path} is truncated: its header describes {expected_bytes} bytes, \
         the file has {actual_bytes} (re-download or re-save the checkpoint)"
    )]
    Truncated {
        path: PathBuf,
        expected_bytes: u64,
        actual_bytes: u64,
    },
    #[error("safetensors file {path} has a corrupt header: {reason}")]
    CorruptHeader { path: PathBuf, reason: String },
    #[error(
        "tensor `{tensor}` in {path} is stored as {dtype}, which cannot be converted to f32 \
         (supported: BF16, F16, F32)"
    )]
    UnsupportedDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("tensor `{tensor}` is missing from {path}")]
    MissingTensor { path: PathBuf, tensor: String },
    #[error(
        "`{tensor}{index:?}` in {path} is {value}; vjx does not export non-finite values \
         (is the checkpoint damaged, or did its training diverge?)"
    )]
    NonFinite {
        path: PathBuf,
        tensor: String,
        /// The first non-finite element, one index per dimension.
        index: Vec<usize>,
        value: f32,
    },
    #[error("shard index {path} is not valid: {reason}")]
    BadIndex { path: PathBuf, reason: String },
    #[error("shard index {index} maps tensor `{tensor}` to {shard}, which does not hold it")]
    IndexedTensorMissing {
        index: PathBuf,
        shard: PathBuf,
        tensor: String,
    },
    #[error("neither {stem}.safetensors nor {stem}.safetensors.index.json exists in {dir}")]
    NoWeightsInDir { dir: PathBuf, stem: String },
}

/// Where one tensor lives inside the mapped file, and how it is stored.
#[derive(Debug, Clone)]
struct TensorEntry {
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range in the whole file (header included).
    start: usize,
    end: usize,
}

/// One safetensors file, memory-mapped; tensors are converted to f32 when asked for.
pub struct SafetensorsWeights {
    path: PathBuf,
    map: Mmap,
    tensors: BTreeMap<String, TensorEntry>,
    /// Names dropped when tied tensors were saved once → the name that was kept, from the
    /// header's `__metadata__` (as `huggingface_hub.save_torch_state_dict` writes it).
    aliases: BTreeMap<String, String>,
}

impl std::fmt::Debug for SafetensorsWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsWeights")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl SafetensorsWeights {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => WeightsError::NotFound { path: path.clone() },
            _ => WeightsError::Io {
                path: path.clone(),
                source,
            },
        })?;
        // SAFETY: the map is read-only and lives as long as `self`. Like every mmap user we
        // rely on nobody truncating the checkpoint while an export is running.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| WeightsError::Io {
            path: path.clone(),
            source,
        })?;
        let (header_len, metadata) =
            SafeTensors::read_metadata(&map).map_err(|e| header_error(&path, &map, e))?;
        let data_start = HEADER_LEN_BYTES + header_len;
        let tensors: BTreeMap<String, TensorEntry> = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let entry = TensorEntry {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: data_start + info.data_offsets.0,
                    end: data_start + info.data_offsets.1,
                };
                (name, entry)
            })
            .collect();
        let aliases = metadata
            .metadata()
            .iter()
            .flatten()
            .filter(|(alias, kept)| !tensors.contains_key(*alias) && tensors.contains_key(*kept))
            .map(|(alias, kept)| (alias.clone(), kept.clone()))
            .collect();
        Ok(SafetensorsWeights {
            path,
            map,
            tensors,
            aliases,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names of the stored tensors, sorted (aliases not included).
    pub fn names(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }

    /// Tied names that were not stored → the stored name they share data with.
    pub fn aliases(&self) -> &BTreeMap<String, String> {
        &self.aliases
    }

    pub fn dtype(&self, name: &str) -> Option<Dtype> {
        self.entry(name).map(|t| t.dtype)
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entry(name).map(|t| t.shape.as_slice())
    }

    /// The tensor's stored little-endian bytes (may be unaligned).
    pub fn raw_bytes(&self, name: &str) -> Option<&[u8]> {
        self.entry(name).map(|t| &self.map[t.start..t.end])
    }

    /// A stored tensor, or the one a tied alias points to.
    fn entry(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors
            .get(name)
            .or_else(|| self.tensors.get(self.aliases.get(name)?))
    }

    /// Drops the mapped pages of a tensor already converted from this process's resident set (the
    /// page cache keeps them), so that reading a whole checkpoint does not keep it all resident.
    fn release_pages(&self, offset: usize, len: usize) {
        #[cfg(unix)]
        // SAFETY: the map is read-only and file-backed; dropped pages are faulted back in from
        // the file, with the same contents, on the next access.
        let _ = unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len)
        };
        #[cfg(not(unix))]
        let _ = (offset, len);
    }

    /// The tensor converted to f32; refused if it holds a NaN or an infinity.
    pub fn tensor_f32(&self, name: &str) -> Result<WeightTensor, WeightsError> {
        let entry = self
            .entry(name)
            .ok_or_else(|| WeightsError::MissingTensor {
                path: self.path.clone(),
                tensor: name.to_string(),
            })?;
        let bytes = &self.map[entry.start..entry.end];
        let (data, all_finite) =
            convert_to_f32(entry.dtype, bytes).ok_or_else(|| WeightsError::UnsupportedDtype {
                path: self.path.clone(),
                tensor: name.to_string(),
                dtype: format!("{:?}", entry.dtype),
            })?;
        self.release_pages(entry.start, entry.end - entry.start);
        if !all_finite {
            let flat = data.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(WeightsError::NonFinite {
                path: self.path.clone(),
                tensor: name.to_string(),
                index: unravel(flat, &entry.shape),
                value: data[flat],
            });
        }
        Ok(WeightTensor::new(entry.shape.clone(), data))
    }
}

impl WeightSource for SafetensorsWeights {
    fn shape(&self, name: &str) -> Result<Vec<usize>, WeightError> {
        SafetensorsWeights::shape(self, name)
            .map(<[usize]>::to_vec)
            .ok_or_else(|| WeightError::Missing {
                name: name.to_string(),
                source_desc: self.describe(),
            })
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn contains(&self, name: &str) -> bool {
        self.entry(name).is_some()
    }

    fn get(&self, name: &str) -> Result<WeightTensor, WeightError> {
        self.tensor_f32(name)
            .map_err(|e| to_weight_error(name, &self.describe(), e))
    }
}

fn to_weight_error(name: &str, source_desc: &str, e: WeightsError) -> WeightError {
    match e {
        WeightsError::MissingTensor { .. } => WeightError::Missing {
            name: name.to_string(),
            source_desc: source_desc.to_string(),
        },
        WeightsError::NonFinite {
            path, index, value, ..
        } => WeightError::NonFinite {
            name: name.to_string(),
            index,
            value,
            source_desc: path.display().to_string(),
        },
        other => WeightError::Invalid {
            name: name.to_string(),
            reason: other.to_string(),
            source_desc: source_desc.to_string(),
        },
    }
}

/// Converts stored little-endian elements to f32, byte-wise so unaligned data is fine, and
/// says whether all of them are finite (checked in the same pass). `None` for a dtype that is
/// not a 16/32-bit float.
fn convert_to_f32(dtype: Dtype, bytes: &[u8]) -> Option<(Vec<f32>, bool)> {
    Some(match dtype {
        Dtype::F32 => convert(bytes, f32::from_le_bytes),
        // bf16 is the top half of an f32: shifting the bits up is exact.
        Dtype::BF16 => convert(bytes, |b: [u8; 2]| {
            f32::from_bits((u16::from_le_bytes(b) as u32) << 16)
        }),
        Dtype::F16 => convert(bytes, |b: [u8; 2]| {
            half::f16::from_bits(u16::from_le_bytes(b)).to_f32()
        }),
        _ => return None,
    })
}

fn convert<const N: usize>(bytes: &[u8], element: impl Fn([u8; N]) -> f32) -> (Vec<f32>, bool) {
    let mut out = Vec::with_capacity(bytes.len() / N);
    let mut all_finite = true;
    for chunk in bytes.chunks_exact(N) {
        let v = element(chunk.try_into().expect("chunks of N bytes"));
        all_finite &= v.is_finite();
        out.push(v);
    }
    (out, all_finite)
}

/// The per-dimension index of element `flat` of a row-major tensor of `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &dim) in shape.iter().enumerate().rev() {
        if dim > 0 {
            index[i] = flat % dim;
            flat /= dim;
        }
    }
    index
}

/// Turns the safetensors crate's header error into one that says what is wrong with the file.
fn header_error(path: &Path, file: &[u8], e: SafeTensorError) -> WeightsError {
    let actual_bytes = file.len() as u64;
    let corrupt = |reason: String| WeightsError::CorruptHeader {
        path: path.to_path_buf(),
        reason,
    };
    match e {
        SafeTensorError::HeaderTooSmall => WeightsError::Truncated {
            path: path.to_path_buf(),
            expected_bytes: HEADER_LEN_BYTES as u64,
            actual_bytes,
        },
        SafeTensorError::InvalidHeaderLength => match declared_header_len(file) {
            Some(n) => WeightsError::Truncated {
                path: path.to_path_buf(),
                expected_bytes: (HEADER_LEN_BYTES as u64).saturating_add(n),
                actual_bytes,
            },
            None => corrupt("invalid header length".to_string()),
        },
        SafeTensorError::MetadataIncompleteBuffer => match expected_file_len(file) {
            Some(expected_bytes) if expected_bytes > actual_bytes => WeightsError::Truncated {
                path: path.to_path_buf(),
                expected_bytes,
                actual_bytes,
            },
            Some(expected_bytes) => corrupt(format!(
                "the tensors end at byte {expected_bytes} but the file has {actual_bytes} bytes"
            )),
            None => corrupt("the tensor data does not match the header".to_string()),
        },
        SafeTensorError::HeaderTooLarge => corrupt(format!(
            "declared header length {} is implausibly large (not a safetensors file?)",
            declared_header_len(file).unwrap_or(0)
        )),
        SafeTensorError::InvalidHeader(err) => corrupt(format!("header is not UTF-8: {err}")),
        SafeTensorError::InvalidHeaderDeserialization(err) => {
            corrupt(format!("header is not valid safetensors JSON: {err}"))
        }
        SafeTensorError::InvalidOffset(name) => corrupt(format!(
            "data offsets of tensor `{name}` are not contiguous"
        )),
        SafeTensorError::TensorInvalidInfo => {
            corrupt("a tensor's byte range does not match its dtype and shape".to_string())
        }
        other => corrupt(format!("{other:?}")),
    }
}

fn declared_header_len(file: &[u8]) -> Option<u64> {
    let bytes: [u8; HEADER_LEN_BYTES] = file.get(..HEADER_LEN_BYTES)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// The file length the header implies (header + all tensor data), when the header parses.
fn expected_file_len(file: &[u8]) -> Option<u64> {
    let n = usize::try_from(declared_header_len(file)?).ok()?;
    let header = file.get(HEADER_LEN_BYTES..HEADER_LEN_BYTES.checked_add(n)?)?;
    let metadata: Metadata = serde_json::from_slice(header).ok()?;
    Some((HEADER_LEN_BYTES + n + metadata.data_len()) as u64)
}

/// A checkpoint split over several safetensors files, with one name → shard map.
/// A single `model.safetensors` is the one-shard case.
#[derive(Debug)]
pub struct ShardedWeights {
    description: String,
    shards: Vec<SafetensorsWeights>,
    shard_of: BTreeMap<String, usize>,
}

impl ShardedWeights {
    /// Opens `dir/model.safetensors`, or else the shards listed in
    /// `dir/model.safetensors.index.json`.
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<Self, WeightsError> {
        Self::open_dir_named(dir, "model")
    }

    /// Opens `dir/<stem>.safetensors`, or else the shards listed in
    /// `dir/<stem>.safetensors.index.json` (diffusers names its files `diffusion_pytorch_model`).
    pub fn open_dir_named(dir: impl AsRef<Path>, stem: &str) -> Result<Self, WeightsError> {
        let dir = dir.as_ref();
        let single = dir.join(format!("{stem}.safetensors"));
        let index = dir.join(format!("{stem}.safetensors.index.json"));
        if single.is_file() {
            Ok(Self::from_single(SafetensorsWeights::open(single)?))
        } else if index.is_file() {
            Self::open_index(index)
        } else {
            Err(WeightsError::NoWeightsInDir {
                dir: dir.to_path_buf(),
                stem: stem.to_string(),
            })
        }
    }

    pub fn from_single(weights: SafetensorsWeights) -> Self {
        let shard_of = weights
            .tensors
            .keys()
            .chain(weights.aliases.keys())
            .map(|n| (n.clone(), 0))
            .collect();
        ShardedWeights {
            description: weights.describe(),
            shards: vec![weights],
            shard_of,
        }
    }

    /// Opens every shard named in the index's `weight_map` (paths relative to the index).
    pub fn open_index(index_path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        let index_path = index_path.as_ref().to_path_buf();
        let bad_index = |reason: String| WeightsError::BadIndex {
            path: index_path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&index_path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => WeightsError::NotFound {
                path: index_path.clone(),
            },
            _ => WeightsError::Io {
                path: index_path.clone(),
                source,
            },
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad_index(format!("not JSON: {e}")))?;
        let weight_map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| bad_index("no `weight_map` object".to_string()))?;
        let base = index_path.parent().unwrap_or(Path::new("."));

        let mut shard_files: Vec<String> = Vec::new();
        let mut shard_of = BTreeMap::new();
        for (tensor, file) in weight_map {
            let file = file
                .as_str()
                .ok_or_else(|| bad_index(format!("shard of `{tensor}` is not a string")))?;
            let slot = match shard_files.iter().position(|f| f == file) {
                Some(i) => i,
                None => {
                    shard_files.push(file.to_string());
                    shard_files.len() - 1
                }
            };
            shard_of.insert(tensor.clone(), slot);
        }
        let shards = shard_files
            .iter()
            .map(|f| SafetensorsWeights::open(base.join(f)))
            .collect::<Result<Vec<_>, _>>()?;
        for (tensor, &slot) in &shard_of {
            if !shards[slot].contains(tensor) {
                return Err(WeightsError::IndexedTensorMissing {
                    index: index_path.clone(),
                    shard: shards[slot].path.clone(),
                    tensor: tensor.clone(),
                });
            }
        }
        for (slot, shard) in shards.iter().enumerate() {
            for alias in shard.aliases.keys() {
                shard_of.entry(alias.clone()).or_insert(slot);
            }
        }
        Ok(ShardedWeights {
            description: index_path.display().to_string(),
            shards,
            shard_of,
        })
    }

    /// Names of the stored tensors over all shards, sorted (tied aliases not included).
    pub fn names(&self) -> Vec<&str> {
        self.shard_of
            .iter()
            .filter(|(name, &i)| self.shards[i].tensors.contains_key(*name))
            .map(|(name, _)| name.as_str())
            .collect()
    }

    pub fn dtype(&self, name: &str) -> Option<Dtype> {
        self.shard(name)?.dtype(name)
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.shard(name)?.shape(name)
    }

    pub fn raw_bytes(&self, name: &str) -> Option<&[u8]> {
        self.shard(name)?.raw_bytes(name)
    }

    /// The files behind this source, in the order they were first referenced.
    pub fn shard_paths(&self) -> Vec<&Path> {
        self.shards.iter().map(|s| s.path()).collect()
    }

    pub fn tensor_f32(&self, name: &str) -> Result<WeightTensor, WeightsError> {
        match self.shard(name) {
            Some(shard) => shard.tensor_f32(name),
            None => Err(WeightsError::MissingTensor {
                path: PathBuf::from(&self.description),
                tensor: name.to_string(),
            }),
        }
    }

    fn shard(&self, name: &str) -> Option<&SafetensorsWeights> {
        self.shard_of.get(name).map(|&i| &self.shards[i])
    }
}

impl WeightSource for ShardedWeights {
    fn shape(&self, name: &str) -> Result<Vec<usize>, WeightError> {
        ShardedWeights::shape(self, name)
            .map(<[usize]>::to_vec)
            .ok_or_else(|| WeightError::Missing {
                name: name.to_string(),
                source_desc: self.describe(),
            })
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn contains(&self, name: &str) -> bool {
        self.shard_of.contains_key(name)
    }

    fn get(&self, name: &str) -> Result<WeightTensor, WeightError> {
        self.tensor_f32(name)
            .map_err(|e| to_weight_error(name, &self.describe(), e))
    }
}
