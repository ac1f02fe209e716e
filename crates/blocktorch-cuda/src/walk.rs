//! The walk a kernel takes over a row-major shape (`struct Walk` in
//! `kernels/elementwise.cu`), built on the host from each view's layout.

use super::*;

/// The walk a kernel takes over a row-major shape (mirrors `struct Walk` in
/// `kernels/elementwise.cu`): view `v` reads element `i` at
/// `off[v] + Σ coord[d] · stride[v][d]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Walk {
    pub(crate) n: u32,
    pub(crate) rank: u32,
    pub(crate) contig: u32,
    pub(crate) pad: u32,
    pub(crate) shape: [u32; RANK_MAX],
    pub(crate) off: [u32; 4],
    pub(crate) stride: [[u32; RANK_MAX]; 4],
}

/// The destination view of a copy kernel.
pub(crate) const DST_VIEW: usize = 3;

pub(crate) fn to_u32(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| fabric_err(format!("{what} {v} exceeds the 32-bit index range")))
}

impl Walk {
    pub(crate) fn new(shape: &[usize]) -> Result<Walk> {
        if shape.len() > RANK_MAX {
            return Err(TensorError::RankTooLarge {
                rank: shape.len(),
                max: RANK_MAX,
            });
        }
        let mut w = Walk {
            n: to_u32(shape.iter().product(), "element count")?,
            rank: shape.len() as u32,
            ..Walk::default()
        };
        for (d, s) in shape.iter().enumerate() {
            w.shape[d] = to_u32(*s, "dimension")?;
        }
        Ok(w)
    }

    /// Sets view `v` from strides (one per dim of the walk) and an offset.
    pub(crate) fn view_parts(mut self, v: usize, strides: &[usize], offset: usize) -> Result<Walk> {
        self.off[v] = to_u32(offset, "offset")?;
        let mut expect = 1usize;
        let mut contiguous = true;
        for d in (0..self.rank as usize).rev() {
            let size = self.shape[d] as usize;
            // A dim of size 1 contributes nothing; its stride may be anything.
            let s = if size <= 1 { 0 } else { strides[d] };
            self.stride[v][d] = to_u32(s, "stride")?;
            if size > 1 && s != expect {
                contiguous = false;
            }
            expect = expect.saturating_mul(size);
        }
        if contiguous {
            self.contig |= 1 << v;
        }
        Ok(self)
    }

    /// Sets view `v` from a layout of the walk's shape.
    pub(crate) fn view(self, v: usize, layout: &Layout) -> Result<Walk> {
        self.view_parts(v, layout.strides(), layout.offset())
    }

    /// View `v` is the contiguous output itself.
    pub(crate) fn contiguous_view(mut self, v: usize) -> Walk {
        self.contig |= 1 << v;
        self
    }
}
