//! Reference-counted host storage. A [`Storage`] is immutable once built: every op
//! writes a fresh one, so views can share it freely. Allocation and free are recorded
//! by the profiler (`crate::profile`).

use crate::dtype::DType;
use crate::profile::{record, RecordKind};
use std::sync::Mutex;

/// f32 buffers of at least this many bytes are recycled through the pool instead of
/// being returned to the OS, so a large op output does not pay a page fault per 4 KiB.
pub const POOL_BUFFER_BYTES_MIN: usize = 1 << 20;
/// Most bytes the pool keeps; beyond it freed buffers go back to the OS.
pub const POOL_BYTES_MAX: usize = 512 << 20;

static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

fn pool() -> std::sync::MutexGuard<'static, Vec<Vec<f32>>> {
    POOL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A zero-filled f32 buffer of `n` elements, reusing a pooled buffer when one of a
/// fitting capacity (n ..= 2n) is free. Contents are always exactly `n` zeros, so reuse
/// is invisible to results.
pub fn alloc_f32_zeroed(n: usize) -> Vec<f32> {
    if n * 4 >= POOL_BUFFER_BYTES_MIN {
        let taken = {
            let mut p = pool();
            let best = p
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= n && v.capacity() <= 2 * n)
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            best.map(|i| p.swap_remove(i))
        };
        if let Some(mut v) = taken {
            v.clear();
            v.resize(n, 0.0);
            return v;
        }
    }
    vec![0.0; n]
}

fn recycle(v: Vec<f32>) {
    let bytes = v.capacity() * 4;
    if bytes < POOL_BUFFER_BYTES_MIN {
        return;
    }
    let mut p = pool();
    let held: usize = p.iter().map(|b| b.capacity() * 4).sum();
    if held + bytes <= POOL_BYTES_MAX {
        p.push(v);
    }
}

/// Returns every pooled buffer to the OS.
pub fn release_pool() {
    pool().clear();
}

/// Bytes held by the pool now.
pub fn pool_bytes() -> usize {
    pool().iter().map(|b| b.capacity() * 4).sum()
}

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
    /// The contiguous row-major layout of these elements as `shape`: refused with
    /// `LengthMismatch` unless the shape holds exactly as many elements (and with the
    /// shape limits' errors).
    pub fn layout_as(&self, shape: &[usize]) -> crate::Result<crate::Layout> {
        let layout = crate::Layout::contiguous(shape)?;
        if layout.numel() != self.len() {
            return Err(crate::TensorError::LengthMismatch {
                shape: shape.to_vec(),
                expected: layout.numel(),
                got: self.len(),
            });
        }
        Ok(layout)
    }

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
    /// The elements of the view `layout` of these elements, in logical order
    /// ([`crate::Layout::gather_slice`]): what `gather(layout.offsets())` gives, a row
    /// at a time.
    pub fn gather_layout(&self, layout: &crate::Layout) -> HostData {
        match self {
            HostData::F32(v) => HostData::F32(layout.gather_slice(v)),
            HostData::U8(v) => HostData::U8(layout.gather_slice(v)),
            HostData::I32(v) => HostData::I32(layout.gather_slice(v)),
            HostData::U32(v) => HostData::U32(layout.gather_slice(v)),
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
        if let HostData::F32(v) = &mut self.data {
            recycle(std::mem::take(v));
        }
    }
}
