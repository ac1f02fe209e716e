//! The plug-in interface for compute fabrics (CPU now, CUDA next, others later).
//!
//! A fabric owns buffers in its own memory, moves data to and from the host, and executes
//! the primitives of [`Prim`]. It must give results bit-identical to the CPU reference
//! (NaN payloads aside: every NaN is canonicalised before comparing or hashing); the
//! public conformance suite, `crate::conformance`, proves it.

use crate::dtype::DType;
use crate::error::{Result, TensorError};
use crate::layout::Layout;
use crate::ops::Prim;
use crate::storage::HostData;
use sha2::{Digest as _, Sha256};
use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

/// A buffer that lives in a fabric's memory. The fabric downcasts it through `as_any`.
pub trait FabricBuffer: Any + Send + Sync + Debug {
    /// `self` as `Any`, for the owning fabric to downcast.
    fn as_any(&self) -> &dyn Any;
    /// The device name (`cpu`, `cuda:0`, …).
    fn device(&self) -> &str;
    /// Number of elements in the buffer.
    fn len(&self) -> usize;
    /// The element type of the buffer.
    fn dtype(&self) -> DType;
    /// Whether the buffer holds no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tensor as a fabric holds it: dtype, a [`Layout`] over a shared buffer. View
/// operations (reshape of contiguous data, slice, permute, broadcast) change only the
/// layout and work the same on every fabric.
#[derive(Clone, Debug)]
pub struct FabricTensor {
    dtype: DType,
    layout: Layout,
    buffer: Arc<dyn FabricBuffer>,
}

impl FabricTensor {
    /// Wraps a buffer; refuses a layout that reaches past the buffer's end.
    pub fn new(
        dtype: DType,
        layout: Layout,
        buffer: Arc<dyn FabricBuffer>,
    ) -> Result<FabricTensor> {
        if buffer.dtype() != dtype {
            return Err(TensorError::DTypeMismatch {
                op: "tensor",
                expected: buffer.dtype(),
                got: dtype,
            });
        }
        if let Some(max) = layout.max_offset() {
            if max >= buffer.len() {
                return Err(TensorError::InvalidArgument {
                    op: "layout",
                    message: format!(
                        "layout reaches element {max} of a buffer of {} elements",
                        buffer.len()
                    ),
                });
            }
        }
        Ok(FabricTensor {
            dtype,
            layout,
            buffer,
        })
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// The layout (shape, strides, offset).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.layout.shape()
    }
    /// The shared buffer.
    pub fn buffer(&self) -> &Arc<dyn FabricBuffer> {
        &self.buffer
    }
    /// Whether two tensors share one buffer.
    pub fn is_alias_of(&self, other: &FabricTensor) -> bool {
        Arc::ptr_eq(&self.buffer, &other.buffer)
    }
    /// The same buffer under another layout (refused if it leaves the buffer).
    pub fn with_layout(&self, layout: Layout) -> Result<FabricTensor> {
        FabricTensor::new(self.dtype, layout, self.buffer.clone())
    }
}

/// A trace leaf that may still be being computed ([`Fabric::trace_leaf_deferred`]).
pub struct PendingLeaf(Pending);

enum Pending {
    Ready(Result<[u8; 32]>),
    Deferred(Box<dyn FnOnce() -> Result<[u8; 32]> + Send>),
}

impl PendingLeaf {
    /// A leaf already computed (or its error).
    pub fn ready(leaf: Result<[u8; 32]>) -> PendingLeaf {
        PendingLeaf(Pending::Ready(leaf))
    }

    /// A leaf that `wait` finishes (helping compute it) and returns.
    pub fn deferred(wait: impl FnOnce() -> Result<[u8; 32]> + Send + 'static) -> PendingLeaf {
        PendingLeaf(Pending::Deferred(Box::new(wait)))
    }

    /// The leaf, once computed; the calling thread helps with the fabric's background
    /// work until it is.
    pub fn wait(self) -> Result<[u8; 32]> {
        match self.0 {
            Pending::Ready(leaf) => leaf,
            Pending::Deferred(wait) => wait(),
        }
    }
}

impl Debug for PendingLeaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Pending::Ready(_) => "PendingLeaf(ready)",
            Pending::Deferred(_) => "PendingLeaf(deferred)",
        })
    }
}

/// A compute fabric.
pub trait Fabric: Send + Sync {
    /// Short stable name (`cpu`, `cuda`).
    fn name(&self) -> &str;
    /// Human description of the device and configuration.
    fn device_description(&self) -> String;
    /// SHA-256 over the fabric's kernel sources (embedded at build time) and the runtime
    /// version stamp; see [`kernel_variant_digest`].
    fn kernel_variant_digest(&self) -> [u8; 32];
    /// Copies contiguous row-major host data of `shape` into fabric memory.
    fn upload(&self, data: &HostData, shape: &[usize]) -> Result<FabricTensor>;
    /// [`Fabric::upload`] of data the caller gives up: a fabric whose memory is the
    /// host's (the CPU) keeps it without a copy. The same tensor either way.
    fn upload_owned(&self, data: HostData, shape: &[usize]) -> Result<FabricTensor> {
        self.upload(&data, shape)
    }
    /// Copies a tensor (any layout) back to the host, in row-major logical order.
    fn download(&self, tensor: &FabricTensor) -> Result<HostData>;
    /// Executes one primitive. Inputs may have any layout; the output is contiguous.
    fn execute(&self, prim: &Prim, inputs: &[&FabricTensor]) -> Result<FabricTensor>;
    /// `output_digest_sha256` of a tensor (any layout). The default downloads it; a
    /// fabric may hash in place (the CPU fabric streams its storage without a copy).
    fn digest(&self, tensor: &FabricTensor) -> Result<[u8; 32]> {
        let host = self.download(tensor)?;
        crate::digest::output_digest_sha256(tensor.shape(), &host)
    }
    /// `trace_leaf` (BLAKE3) of a tensor (any layout). The default downloads it; a
    /// fabric may hash in place.
    fn trace_leaf(&self, tensor: &FabricTensor) -> Result<[u8; 32]> {
        let host = self.download(tensor)?;
        crate::digest::trace_leaf(tensor.shape(), &host)
    }
    /// `trace_leaf` of a tensor, computed in the background where the fabric can; the
    /// handle's [`PendingLeaf::wait`] gives it. The CPU fabric queues a leaf's pieces
    /// for its workers, which hash them when no kernel share is waiting, and for any of
    /// its threads that would otherwise spin. The default hashes now. No bit depends on
    /// which thread hashes.
    fn trace_leaf_deferred(&self, tensor: &FabricTensor) -> PendingLeaf {
        PendingLeaf::ready(self.trace_leaf(tensor))
    }
    /// Whether the executor should leave this fabric's trace leaves to the fabric's
    /// own threads (`true`: it hands every content leaf to [`Fabric::trace_leaf_deferred`],
    /// as the CPU fabric's workers hash between its kernels), rather than hash them on
    /// a hashing thread of its own beside the ops (`false`, the default: a device
    /// fabric's leaf is a download and a host hash that can overlap the next ops). No
    /// bit depends on it.
    fn hashes_on_its_workers(&self) -> bool {
        false
    }
}

/// The kernel variant digest: SHA-256 over, for each `(name, source)` in order, the
/// LE u64 lengths and bytes of name and source, then the runtime version stamp.
pub fn kernel_variant_digest(sources: &[(&str, &str)], runtime_version: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"blocktorch/kernel-variant/v1");
    h.update((sources.len() as u64).to_le_bytes());
    for (name, src) in sources {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((src.len() as u64).to_le_bytes());
        h.update(src.as_bytes());
    }
    h.update((runtime_version.len() as u64).to_le_bytes());
    h.update(runtime_version.as_bytes());
    h.finalize().into()
}

/// A device fabric's kernel files joined into one program, in order, each after a
/// `// ---- NAME ----` line (a comment in CUDA C and WGSL alike).
pub fn concat_sources(files: &[(&str, &str)]) -> String {
    let mut src = String::new();
    for (name, text) in files {
        src.push_str(&format!("// ---- {name} ----\n"));
        src.push_str(text);
        src.push('\n');
    }
    src
}

/// The rows an index tensor names (`Gather`, `IndexAdd`), checked against `size` on the
/// host: the same `IndexOutOfRange` (at the first bad index in logical order) or
/// `DTypeMismatch` on every fabric that downloads its indices before a launch.
pub fn checked_rows(indices: HostData, op: &'static str, size: usize) -> Result<Vec<u32>> {
    let check = |v: i64| -> Result<u32> {
        if v < 0 || v as u64 >= size as u64 {
            return Err(TensorError::IndexOutOfRange { op, index: v, size });
        }
        Ok(v as u32)
    };
    match indices {
        HostData::I32(v) => v.into_iter().map(|x| check(x as i64)).collect(),
        HostData::U32(v) => v.into_iter().map(|x| check(x as i64)).collect(),
        other => Err(TensorError::DTypeMismatch {
            op,
            expected: DType::I32,
            got: other.dtype(),
        }),
    }
}

/// `IndexAdd`'s sources grouped by target row (a CSR, by a stable counting sort): row
/// `r`'s positions are `positions[start[r]..start[r + 1]]`, in increasing order, so a
/// fabric that gives each output element its own sequential sum adds them in the order
/// of semantics §3.8 without atomics. `targets[p]` is position `p`'s row (< `rows`).
pub fn index_add_csr(targets: &[u32], rows: usize) -> (Vec<u32>, Vec<u32>) {
    let mut start = vec![0u32; rows + 1];
    for &i in targets {
        start[i as usize + 1] += 1;
    }
    for i in 0..rows {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut positions = vec![0u32; targets.len()];
    for (p, &i) in targets.iter().enumerate() {
        positions[fill[i as usize] as usize] = p as u32;
        fill[i as usize] += 1;
    }
    (start, positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_add_csr_keeps_positions_in_order_per_row() {
        let (start, positions) = index_add_csr(&[2, 0, 2, 1, 0, 2], 4);
        assert_eq!(start, vec![0, 2, 3, 6, 6]);
        assert_eq!(positions, vec![1, 4, 3, 0, 2, 5]);
        let (start, positions) = index_add_csr(&[], 2);
        assert_eq!((start, positions), (vec![0, 0, 0], vec![]));
    }

    #[test]
    fn checked_rows_refuses_the_first_bad_index() {
        assert_eq!(
            checked_rows(HostData::I32(vec![0, 3, 1]), "gather", 4).unwrap(),
            vec![0, 3, 1]
        );
        assert!(matches!(
            checked_rows(HostData::I32(vec![0, -1, 9]), "gather", 4),
            Err(TensorError::IndexOutOfRange {
                index: -1,
                size: 4,
                ..
            })
        ));
        assert!(matches!(
            checked_rows(HostData::U32(vec![4]), "index_add", 4),
            Err(TensorError::IndexOutOfRange { index: 4, .. })
        ));
        assert!(matches!(
            checked_rows(HostData::F32(vec![0.0]), "gather", 4),
            Err(TensorError::DTypeMismatch { .. })
        ));
    }
}
