//! Tensors as stored: dtype, shape and little-endian bytes, read from and written to safetensors.

use crate::error::CheckpointError;
use burn::tensor::{bf16, f16, BoolStore, DType, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One tensor as a checkpoint stores it: element type, shape and little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredTensor {
    /// Element type, in safetensors' terms.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// `shape.product() * dtype.size()` bytes, little-endian.
    pub bytes: Vec<u8>,
}

/// Tensors by name, in name order.
pub type TensorMap = BTreeMap<String, StoredTensor>;

impl StoredTensor {
    /// A tensor's data as stored; `name` is only used in the error for a dtype safetensors lacks.
    pub fn from_data(name: &str, data: TensorData) -> Result<Self, CheckpointError> {
        let dtype = safetensors_dtype(data.dtype).ok_or_else(|| CheckpointError::UnsupportedDtype {
            name: name.to_string(),
            dtype: format!("{:?}", data.dtype),
        })?;
        Ok(Self { dtype, shape: data.shape.to_vec(), bytes: data.as_bytes().to_vec() })
    }

    /// A `u8` vector tensor holding `bytes` (opaque blobs such as an optimizer record).
    pub fn blob(bytes: Vec<u8>) -> Self {
        Self { dtype: Dtype::U8, shape: vec![bytes.len()], bytes }
    }

    /// The tensor as Burn data, decoded element by element (no alignment assumptions).
    pub fn to_data(&self) -> Result<TensorData, String> {
        let shape = self.shape.clone();
        let expected = self.shape.iter().try_fold(element_bytes(self.dtype), |n, &d| n.checked_mul(d));
        if expected != Some(self.bytes.len()) {
            return Err(format!(
                "{} bytes do not hold a {:?} tensor of shape {:?}",
                self.bytes.len(),
                self.dtype,
                shape
            ));
        }
        macro_rules! decode {
            ($t:ty) => {{
                const N: usize = std::mem::size_of::<$t>();
                let values: Vec<$t> = self
                    .bytes
                    .chunks_exact(N)
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk of N")))
                    .collect();
                TensorData::new(values, shape)
            }};
        }
        Ok(match self.dtype {
            Dtype::F64 => decode!(f64),
            Dtype::F32 => decode!(f32),
            Dtype::F16 => decode!(f16),
            Dtype::BF16 => decode!(bf16),
            Dtype::I64 => decode!(i64),
            Dtype::I32 => decode!(i32),
            Dtype::I16 => decode!(i16),
            Dtype::I8 => decode!(i8),
            Dtype::U64 => decode!(u64),
            Dtype::U32 => decode!(u32),
            Dtype::U16 => decode!(u16),
            Dtype::U8 => decode!(u8),
            Dtype::BOOL => TensorData::new(self.bytes.iter().map(|&b| b != 0).collect::<Vec<bool>>(), shape),
            other => return Err(format!("dtype {other:?} is not supported")),
        })
    }

    /// The values as `f32`, for float tensors.
    pub fn to_f32(&self) -> Result<Vec<f32>, String> {
        let data = self.to_data()?;
        if !matches!(self.dtype, Dtype::F64 | Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            return Err(format!("{:?} is not a float dtype", self.dtype));
        }
        data.convert::<f32>().to_vec::<f32>().map_err(|e| format!("{e:?}"))
    }

    /// An `f32` tensor.
    pub fn from_f32(values: Vec<f32>, shape: Vec<usize>) -> Self {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self { dtype: Dtype::F32, shape, bytes }
    }
}

impl View for &StoredTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }

    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Bytes per element (0 for sub-byte types, which checkpoints never hold).
pub fn element_bytes(dtype: Dtype) -> usize {
    dtype.bitsize() / 8
}

/// The safetensors element type of a Burn dtype, if it has one.
pub fn safetensors_dtype(dtype: DType) -> Option<Dtype> {
    Some(match dtype {
        DType::F64 => Dtype::F64,
        DType::F32 | DType::Flex32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::I64 => Dtype::I64,
        DType::I32 => Dtype::I32,
        DType::I16 => Dtype::I16,
        DType::I8 => Dtype::I8,
        DType::U64 => Dtype::U64,
        DType::U32 => Dtype::U32,
        DType::U16 => Dtype::U16,
        DType::U8 => Dtype::U8,
        DType::Bool(BoolStore::Native) => Dtype::BOOL,
        _ => return None,
    })
}

/// Serializes tensors (and optional string metadata) to safetensors bytes.
pub fn encode(tensors: &TensorMap, metadata: Option<HashMap<String, String>>) -> Result<Vec<u8>, CheckpointError> {
    safetensors::tensor::serialize(tensors.iter().map(|(name, t)| (name.as_str(), t)), metadata)
        .map_err(|e| CheckpointError::Model { problem: format!("could not serialize tensors: {e}") })
}

/// Parses safetensors bytes into owned tensors and the header's metadata; never panics.
pub fn decode(bytes: &[u8], path: &Path) -> Result<(TensorMap, HashMap<String, String>), CheckpointError> {
    let invalid = |problem: String| CheckpointError::TensorFile { path: path.to_path_buf(), problem };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| invalid(e.to_string()))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(bytes).map_err(|e| invalid(e.to_string()))?;
    let tensors = file
        .iter()
        .map(|(name, view)| {
            let tensor =
                StoredTensor { dtype: view.dtype(), shape: view.shape().to_vec(), bytes: view.data().to_vec() };
            (name.to_string(), tensor)
        })
        .collect();
    Ok((tensors, metadata))
}

/// Reads and parses a safetensors file.
pub fn read_file(path: &Path) -> Result<(TensorMap, HashMap<String, String>), CheckpointError> {
    let bytes = std::fs::read(path).map_err(CheckpointError::io("read", path))?;
    decode(&bytes, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_round_trip_through_safetensors_bytes() {
        let mut map = TensorMap::new();
        map.insert("a".into(), StoredTensor::from_data("a", TensorData::new(vec![1.5f32, -2.0], [2, 1])).unwrap());
        map.insert("b".into(), StoredTensor::from_data("b", TensorData::new(vec![3i64], [1])).unwrap());
        map.insert("c".into(), StoredTensor::from_data("c", TensorData::new(vec![true, false], [2])).unwrap());
        let bytes = encode(&map, None).unwrap();
        let (back, _) = decode(&bytes, Path::new("mem")).unwrap();
        assert_eq!(back, map);
        assert_eq!(back["a"].to_data().unwrap().to_vec::<f32>().unwrap(), [1.5, -2.0]);
        assert_eq!(back["c"].to_data().unwrap().to_vec::<bool>().unwrap(), [true, false]);
    }

    #[test]
    fn inconsistent_lengths_are_errors_not_panics() {
        let bad = StoredTensor { dtype: Dtype::F32, shape: vec![3], bytes: vec![0; 5] };
        assert!(bad.to_data().is_err());
        let huge = StoredTensor { dtype: Dtype::F32, shape: vec![usize::MAX, 2], bytes: vec![] };
        assert!(huge.to_data().is_err());
        assert!(decode(&[1, 2, 3], Path::new("mem")).is_err());
    }
}
