//! The parameter block of one dispatch (`P` in `kernels/common.wgsl`), built on the host
//! from the tensors' layouts.

use blocktorch::{Layout, Result, TensorError, RANK_MAX};

use crate::fabric_err;

/// Words in a parameter block.
pub(crate) const P_WORDS: usize = 55;
const P_AUX: usize = 3;
/// Kernel arguments a block carries.
pub(crate) const AUX_MAX: usize = 8;
const P_SHAPE: usize = 11;
const P_OFF: usize = 19;
const P_STRIDE: usize = 23;
/// The destination view of a copy kernel.
pub(crate) const DST_VIEW: usize = 3;

pub(crate) fn to_u32(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| fabric_err(format!("{what} {v} exceeds the 32-bit index range")))
}

/// One dispatch's parameters: a count, a walk over a row-major shape with up to four
/// views (view `v` reads logical element `i` at `off[v] + Σ coord[d] · stride[v][d]`),
/// and up to [`AUX_MAX`] kernel arguments.
#[derive(Clone, Debug)]
pub(crate) struct Params {
    words: [u32; P_WORDS],
}

impl Params {
    /// A walk over `shape`; the count (`P[0]`) is `count`.
    pub(crate) fn new(count: usize, shape: &[usize]) -> Result<Params> {
        if shape.len() > RANK_MAX {
            return Err(TensorError::RankTooLarge {
                rank: shape.len(),
                max: RANK_MAX,
            });
        }
        let mut words = [0u32; P_WORDS];
        words[0] = to_u32(count, "element count")?;
        words[1] = shape.len() as u32;
        for (d, s) in shape.iter().enumerate() {
            words[P_SHAPE + d] = to_u32(*s, "dimension")?;
        }
        Ok(Params { words })
    }

    /// Sets kernel argument `k`.
    pub(crate) fn aux(mut self, k: usize, v: u32) -> Params {
        debug_assert!(k < AUX_MAX);
        self.words[P_AUX + k] = v;
        self
    }

    /// Sets view `v` from strides (one per dimension of the walk) and an offset. The
    /// view is marked contiguous when its strides are the row-major strides of the
    /// walk's shape (size-1 dimensions aside), so the kernel's shortcut `off + i` and
    /// its general walk give the same offsets.
    pub(crate) fn view_parts(
        mut self,
        v: usize,
        strides: &[usize],
        offset: usize,
    ) -> Result<Params> {
        let rank = self.words[1] as usize;
        self.words[P_OFF + v] = to_u32(offset, "offset")?;
        let mut expect = 1usize;
        let mut contiguous = true;
        for d in (0..rank).rev() {
            let size = self.words[P_SHAPE + d] as usize;
            let s = if size <= 1 { 0 } else { strides[d] };
            self.words[P_STRIDE + v * RANK_MAX + d] = to_u32(s, "stride")?;
            if size > 1 && s != expect {
                contiguous = false;
            }
            expect = expect.saturating_mul(size);
        }
        if contiguous {
            self.words[2] |= 1 << v;
        } else {
            self.words[2] &= !(1 << v);
        }
        Ok(self)
    }

    /// Sets view `v` from a layout of the walk's shape.
    pub(crate) fn view(self, v: usize, layout: &Layout) -> Result<Params> {
        self.view_parts(v, layout.strides(), layout.offset())
    }

    /// View `v` is a contiguous tensor of the walk's shape starting at `offset`.
    pub(crate) fn contiguous_view(self, v: usize, offset: usize) -> Result<Params> {
        let rank = self.words[1] as usize;
        let shape: Vec<usize> = self.words[P_SHAPE..P_SHAPE + rank]
            .iter()
            .map(|s| *s as usize)
            .collect();
        let strides = blocktorch::layout::contiguous_strides(&shape);
        self.view_parts(v, &strides, offset)
    }

    /// The block as little-endian bytes, for upload.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[cfg(test)]
    pub(crate) fn words(&self) -> &[u32; P_WORDS] {
        &self.words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_marked_contiguous_only_for_row_major_strides() {
        let p = Params::new(6, &[2, 1, 3])
            .and_then(|p| p.view_parts(0, &[3, 99, 1], 5))
            .and_then(|p| p.view_parts(1, &[1, 0, 2], 0))
            .and_then(|p| p.contiguous_view(DST_VIEW, 7))
            .expect("params");
        let w = p.words();
        assert_eq!(w[0], 6);
        assert_eq!(w[1], 3);
        assert_eq!(
            w[2],
            1 | (1 << DST_VIEW),
            "views 0 and 3 are contiguous, 1 is not"
        );
        assert_eq!(w[P_OFF], 5);
        assert_eq!(w[P_OFF + DST_VIEW], 7);
        // The size-1 dimension's stride is zeroed.
        assert_eq!(&w[P_STRIDE..P_STRIDE + 3], &[3, 0, 1]);
        assert_eq!(&w[P_STRIDE + RANK_MAX..P_STRIDE + RANK_MAX + 3], &[1, 0, 2]);
        assert_eq!(p.bytes().len(), P_WORDS * 4);
    }

    #[test]
    fn out_of_range_values_are_typed_errors() {
        assert!(matches!(
            Params::new(1, &[1; RANK_MAX + 1]),
            Err(TensorError::RankTooLarge { .. })
        ));
        assert!(matches!(
            Params::new(1usize << 33, &[1]),
            Err(TensorError::Fabric { .. })
        ));
    }
}
