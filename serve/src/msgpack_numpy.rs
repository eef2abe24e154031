//! openpi's msgpack encoding of numpy arrays: a map
//! `{"__ndarray__": true, "data": <raw bytes>, "dtype": "<f4", "shape": [...]}` whose keys the
//! Python packer writes as msgpack binary, plus numpy scalars as
//! `{"__npgeneric__": true, "data": <value>, "dtype": "<f8"}`.

use rmpv::Value;

/// Nesting deeper than this is refused before it can exhaust the stack.
const MAX_DEPTH: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CodecError {
    #[error("the message is not msgpack: {0}")]
    NotMsgpack(String),
    #[error("the message has {0} bytes after its msgpack value")]
    TrailingBytes(usize),
    #[error("`{field}`: {reason}")]
    Array { field: String, reason: String },
}

/// Element types a request's arrays may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    U8,
    I32,
    I64,
    F32,
    F64,
}

impl Dtype {
    fn parse(text: &str) -> Option<Dtype> {
        Some(match text {
            "|u1" | "<u1" | "u1" => Dtype::U8,
            "<i4" => Dtype::I32,
            "<i8" => Dtype::I64,
            "<f4" => Dtype::F32,
            "<f8" => Dtype::F64,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::I32 | Dtype::F32 => 4,
            Dtype::I64 | Dtype::F64 => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::U8 => "uint8",
            Dtype::I32 => "int32",
            Dtype::I64 => "int64",
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        }
    }
}

/// A decoded `__ndarray__`: C-ordered little-endian elements.
#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl NdArray {
    /// The elements as f32 (integers converted, f64 rounded).
    pub fn to_f32(&self) -> Vec<f32> {
        let chunks = self.data.chunks_exact(self.dtype.size());
        match self.dtype {
            Dtype::U8 => self.data.iter().map(|&v| f32::from(v)).collect(),
            Dtype::I32 => chunks
                .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
            Dtype::I64 => chunks
                .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
            Dtype::F32 => chunks
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            Dtype::F64 => chunks
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
        }
    }
}

/// Reads one msgpack value that must fill `bytes` exactly.
pub fn decode(bytes: &[u8]) -> Result<Value, CodecError> {
    let mut rest = bytes;
    let value = rmpv::decode::read_value_with_max_depth(&mut rest, MAX_DEPTH)
        .map_err(|e| CodecError::NotMsgpack(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, value).expect("writing to a Vec cannot fail");
    out
}

/// The text of a map key or string, whether packed as str or as bin.
pub fn key_text(key: &Value) -> Option<&str> {
    match key {
        Value::String(s) => s.as_str(),
        Value::Binary(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

fn entry<'v>(map: &'v [(Value, Value)], name: &str) -> Option<&'v Value> {
    map.iter()
        .find(|(k, _)| key_text(k) == Some(name))
        .map(|(_, v)| v)
}

/// `Some` when `value` is an `__ndarray__` map: the array, or why it cannot be read.
pub fn as_ndarray(field: &str, value: &Value) -> Option<Result<NdArray, CodecError>> {
    let Value::Map(map) = value else { return None };
    entry(map, "__ndarray__")?;
    let bad = |reason: String| CodecError::Array {
        field: field.to_string(),
        reason,
    };
    Some((|| {
        let dtype_text = entry(map, "dtype")
            .and_then(key_text)
            .ok_or_else(|| bad("the array has no `dtype` string".into()))?;
        let dtype = Dtype::parse(dtype_text).ok_or_else(|| {
            bad(format!(
                "dtype `{dtype_text}` is not accepted (uint8, int32, int64, float32 or float64, little-endian)"
            ))
        })?;
        let Some(Value::Array(dims)) = entry(map, "shape") else {
            return Err(bad("the array has no `shape` list".into()));
        };
        let shape = dims
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| bad(format!("shape {dims:?} is not a list of sizes")))?;
        let Some(Value::Binary(data)) = entry(map, "data") else {
            return Err(bad("the array has no binary `data`".into()));
        };
        let expected = shape
            .iter()
            .try_fold(dtype.size(), |n, &d| n.checked_mul(d))
            .ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
        if data.len() != expected {
            return Err(bad(format!(
                "shape {shape:?} of {} needs {expected} bytes of data, got {}",
                dtype.name(),
                data.len()
            )));
        }
        Ok(NdArray {
            dtype,
            shape,
            data: data.clone(),
        })
    })())
}

/// A float32 array as openpi's client unpacks it (binary keys, as numpy's packer writes them).
pub fn f32_ndarray(shape: &[usize], values: &[f32]) -> Value {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let key = |k: &str| Value::Binary(k.as_bytes().to_vec());
    Value::Map(vec![
        (key("__ndarray__"), Value::Boolean(true)),
        (key("data"), Value::Binary(data)),
        (key("dtype"), Value::from("<f4")),
        (
            key("shape"),
            Value::Array(shape.iter().map(|&d| Value::from(d as u64)).collect()),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed_array(dtype: &str, shape: &[u64], data: Vec<u8>) -> Value {
        let key = |k: &str| Value::Binary(k.as_bytes().to_vec());
        Value::Map(vec![
            (key("__ndarray__"), Value::Boolean(true)),
            (key("data"), Value::Binary(data)),
            (key("dtype"), Value::from(dtype)),
            (
                key("shape"),
                Value::Array(shape.iter().map(|&d| Value::from(d)).collect()),
            ),
        ])
    }

    #[test]
    fn a_float32_array_round_trips_through_the_wire_form() {
        let value = f32_ndarray(&[2, 2], &[1.0, -2.5, 3.25, 0.0]);
        let decoded = decode(&encode(&value)).unwrap();
        let array = as_ndarray("actions", &decoded).unwrap().unwrap();
        assert_eq!(array.shape, vec![2, 2]);
        assert_eq!(array.to_f32(), vec![1.0, -2.5, 3.25, 0.0]);
    }

    #[test]
    fn float64_and_integer_arrays_read_as_f32() {
        let f64s = packed_array(
            "<f8",
            &[2],
            [0.5f64, -1.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        );
        assert_eq!(
            as_ndarray("s", &f64s).unwrap().unwrap().to_f32(),
            vec![0.5, -1.0]
        );
        let i64s = packed_array("<i8", &[1], 7i64.to_le_bytes().to_vec());
        assert_eq!(as_ndarray("s", &i64s).unwrap().unwrap().to_f32(), vec![7.0]);
    }

    #[test]
    fn an_object_dtype_is_refused_naming_the_field() {
        let err = as_ndarray("observation/image", &packed_array("|O", &[1], vec![0; 8]))
            .unwrap()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`observation/image`: dtype `|O`"),
            "{err}"
        );
    }

    #[test]
    fn data_shorter_than_the_shape_is_refused() {
        let err = as_ndarray("state", &packed_array("<f4", &[3], vec![0; 8]))
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`state`: shape [3] of float32 needs 12 bytes of data, got 8"
        );
    }

    #[test]
    fn a_shape_whose_size_overflows_is_refused() {
        let err = as_ndarray("state", &packed_array("<f4", &[u64::MAX, 4], vec![]))
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
    }

    #[test]
    fn bytes_that_are_not_msgpack_are_refused() {
        assert!(matches!(
            decode(&[0x92, 0x01]),
            Err(CodecError::NotMsgpack(_))
        ));
    }

    #[test]
    fn trailing_bytes_after_the_value_are_refused() {
        let mut bytes = encode(&Value::from(1));
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(CodecError::TrailingBytes(1)));
    }

    #[test]
    fn nesting_past_the_depth_limit_is_refused() {
        let bytes = vec![0x91; 10_000];
        assert!(matches!(decode(&bytes), Err(CodecError::NotMsgpack(_))));
    }
}
