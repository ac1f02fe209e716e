//! Reference-counted host storage. A [`Storage`] is immutable once built: every op
//! writes a fresh one, so views can share it freely. Allocation and free are recorded
//! by the profiler (`crate::profile`).

use crate::dtype::DType;
use crate::profile::{record, RecordKind};

/// The elements of a storage, by dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    /// f32 elements.
    F32(Vec<f32>),
    /// u8 elements.
    U8(Vec<u8>),
    /// i32 elements.
    I32(Vec<i32>),
    /// u32 elements.
    U32(Vec<u32>),
}

impl HostData {
    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        match self {
            HostData::F32(_) => DType::F32,
            HostData::U8(_) => DType::U8,
            HostData::I32(_) => DType::I32,
            HostData::U32(_) => DType::U32,
        }
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            HostData::F32(v) => v.len(),
            HostData::U8(v) => v.len(),
            HostData::I32(v) => v.len(),
            HostData::U32(v) => v.len(),
        }
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Size in bytes.
    pub fn size_bytes(&self) -> usize {
        self.len() * self.dtype().size_bytes()
    }
    /// `n` zero elements of `dtype`.
    pub fn zeros(dtype: DType, n: usize) -> HostData {
        match dtype {
            DType::F32 => HostData::F32(vec![0.0; n]),
            DType::U8 => HostData::U8(vec![0; n]),
            DType::I32 => HostData::I32(vec![0; n]),
            DType::U32 => HostData::U32(vec![0; n]),
        }
    }
    /// Gathers the elements at `offsets` (in order) into a new buffer.
    pub fn gather(&self, offsets: impl Iterator<Item = usize>) -> HostData {
        match self {
            HostData::F32(v) => HostData::F32(offsets.map(|o| v[o]).collect()),
            HostData::U8(v) => HostData::U8(offsets.map(|o| v[o]).collect()),
            HostData::I32(v) => HostData::I32(offsets.map(|o| v[o]).collect()),
            HostData::U32(v) => HostData::U32(offsets.map(|o| v[o]).collect()),
        }
    }
    /// Little-endian bytes of the elements, with every f32 NaN canonicalised.
    pub fn to_le_bytes_canonical(&self) -> Vec<u8> {
        match self {
            HostData::F32(v) => v
                .iter()
                .flat_map(|x| crate::canonical_f32_bits(*x).to_le_bytes())
                .collect(),
            HostData::U8(v) => v.clone(),
            HostData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            HostData::U32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// The device a storage lives on. Host storage is always `cpu`.
pub const DEVICE_CPU: &str = "cpu";

/// An immutable, reference-counted (through `Arc`) buffer of elements in host memory.
#[derive(Debug)]
pub struct Storage {
    data: HostData,
    label: &'static str,
}

impl Storage {
    /// Wraps `data`, recording an allocation under `label`.
    pub fn new(data: HostData, label: &'static str) -> Storage {
        record(RecordKind::Alloc, label, data.size_bytes(), DEVICE_CPU);
        Storage { data, label }
    }
    /// The elements.
    pub fn data(&self) -> &HostData {
        &self.data
    }
    /// The label it was allocated under.
    pub fn label(&self) -> &'static str {
        self.label
    }
    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }
    /// f32 elements, if that is the dtype.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            HostData::F32(v) => Some(v),
            _ => None,
        }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        record(
            RecordKind::Free,
            self.label,
            self.data.size_bytes(),
            DEVICE_CPU,
        );
    }
}
