//! `Layout`: how a logical shape maps onto a flat storage buffer (shape, strides in
//! elements, offset). Views, slices, transposes and broadcasts only change the layout;
//! they never copy data.

use crate::error::{Result, TensorError};
use crate::{ELEMENTS_MAX, RANK_MAX};

/// Shape, strides (in elements) and offset of a tensor view over its storage.
/// Strides are non-negative; a stride of 0 repeats an element (broadcast).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

/// Checks a shape against [`RANK_MAX`] and [`ELEMENTS_MAX`] and returns its element count.
pub fn check_shape(shape: &[usize]) -> Result<usize> {
    if shape.len() > RANK_MAX {
        return Err(TensorError::RankTooLarge {
            rank: shape.len(),
            max: RANK_MAX,
        });
    }
    let mut n: usize = 1;
    for &d in shape {
        if d > u32::MAX as usize {
            return Err(TensorError::TooManyElements {
                shape: shape.to_vec(),
                max: ELEMENTS_MAX,
            });
        }
        n = n.saturating_mul(d);
    }
    if n > ELEMENTS_MAX {
        return Err(TensorError::TooManyElements {
            shape: shape.to_vec(),
            max: ELEMENTS_MAX,
        });
    }
    Ok(n)
}

/// Row-major strides of a contiguous tensor of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1usize;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.saturating_mul(d.max(1));
    }
    strides
}

/// Resolves a possibly negative axis (`-1` is the last) against `rank`.
pub fn resolve_axis(op: &'static str, axis: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(TensorError::AxisOutOfRange { op, axis, rank });
    }
    Ok(a as usize)
}

/// The broadcast of two shapes (NumPy rules: align trailing dims; 1 stretches).
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(TensorError::ShapeMismatch {
                    op,
                    lhs: a.to_vec(),
                    rhs: b.to_vec(),
                })
            }
        };
    }
    check_shape(&out)?;
    Ok(out)
}

impl Layout {
    /// A contiguous row-major layout at offset 0. Checks the shape limits.
    pub fn contiguous(shape: &[usize]) -> Result<Layout> {
        check_shape(shape)?;
        Ok(Layout {
            strides: contiguous_strides(shape),
            shape: shape.to_vec(),
            offset: 0,
        })
    }

    /// A layout from raw parts. The caller guarantees every reachable offset is in bounds of
    /// its storage; [`Layout::max_offset`] tells the largest one.
    pub fn from_parts(shape: Vec<usize>, strides: Vec<usize>, offset: usize) -> Result<Layout> {
        check_shape(&shape)?;
        if strides.len() != shape.len() {
            return Err(TensorError::InvalidArgument {
                op: "layout",
                message: format!("{} strides for rank {}", strides.len(), shape.len()),
            });
        }
        Ok(Layout {
            shape,
            strides,
            offset,
        })
    }

    /// The logical shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Strides in elements, one per dimension.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    /// Offset of element `[0, 0, …]` in the storage.
    pub fn offset(&self) -> usize {
        self.offset
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the view is row-major contiguous (offset may be non-zero). Dimensions of
    /// size 1 may have any stride; an empty view is contiguous.
    pub fn is_contiguous(&self) -> bool {
        if self.numel() == 0 {
            return true;
        }
        let mut expected = 1usize;
        for (&d, &s) in self.shape.iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d;
        }
        true
    }

    /// The largest storage offset this view reaches (`None` for an empty view;
    /// `usize::MAX` if the arithmetic overflows).
    pub fn max_offset(&self) -> Option<usize> {
        if self.numel() == 0 {
            return None;
        }
        // Saturating: a layout whose reach overflows is out of every buffer.
        Some(
            self.shape
                .iter()
                .zip(&self.strides)
                .fold(self.offset, |acc, (&d, &s)| {
                    acc.saturating_add((d - 1).saturating_mul(s))
                }),
        )
    }

    /// A view with a new shape of the same element count. Only contiguous views can be
    /// reshaped without a copy; otherwise `None` (the caller materialises first).
    pub fn reshape(&self, shape: &[usize]) -> Result<Option<Layout>> {
        let n = check_shape(shape)?;
        if n != self.numel() {
            return Err(TensorError::InvalidReshape {
                from: self.shape.clone(),
                to: shape.to_vec(),
            });
        }
        if !self.is_contiguous() {
            return Ok(None);
        }
        Ok(Some(Layout {
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: self.offset,
        }))
    }

    /// Elements `start, start+step, …` below `end` of `axis`. `end` is clamped to the size.
    pub fn slice(&self, axis: usize, start: usize, end: usize, step: usize) -> Result<Layout> {
        if axis >= self.rank() {
            return Err(TensorError::AxisOutOfRange {
                op: "slice",
                axis: axis as isize,
                rank: self.rank(),
            });
        }
        let size = self.shape[axis];
        let end_c = end.min(size);
        if step == 0 || start > end_c {
            return Err(TensorError::InvalidSlice {
                axis,
                size,
                start,
                end,
                step,
            });
        }
        let len = (end_c - start).div_ceil(step);
        let mut out = self.clone();
        out.shape[axis] = len;
        // A step reaching past the axis leaves at most one element: keep the stride.
        out.strides[axis] = if len <= 1 {
            self.strides[axis]
        } else {
            self.strides[axis].saturating_mul(step)
        };
        if out.numel() > 0 {
            out.offset += start * self.strides[axis];
        }
        Ok(out)
    }

    /// Reorders dimensions: output dimension `i` is input dimension `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Layout> {
        let rank = self.rank();
        let mut seen = vec![false; rank];
        if perm.len() != rank {
            return Err(TensorError::InvalidPermutation {
                perm: perm.to_vec(),
                rank,
            });
        }
        for &p in perm {
            if p >= rank || seen[p] {
                return Err(TensorError::InvalidPermutation {
                    perm: perm.to_vec(),
                    rank,
                });
            }
            seen[p] = true;
        }
        Ok(Layout {
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        })
    }

    /// Swaps two dimensions.
    pub fn transpose(&self, a: usize, b: usize) -> Result<Layout> {
        let rank = self.rank();
        for axis in [a, b] {
            if axis >= rank {
                return Err(TensorError::AxisOutOfRange {
                    op: "transpose",
                    axis: axis as isize,
                    rank,
                });
            }
        }
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Expands to `shape` by the broadcasting rules, with stride 0 on stretched dims.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Layout> {
        check_shape(shape)?;
        let err = || TensorError::NotBroadcastable {
            from: self.shape.clone(),
            to: shape.to_vec(),
        };
        if shape.len() < self.rank() {
            return Err(err());
        }
        let lead = shape.len() - self.rank();
        let mut strides = vec![0; shape.len()];
        for i in 0..shape.len() {
            if i < lead {
                continue;
            }
            let (d, s) = (self.shape[i - lead], self.strides[i - lead]);
            if d == shape[i] {
                strides[i] = s;
            } else if d == 1 {
                strides[i] = 0;
            } else {
                return Err(err());
            }
        }
        Ok(Layout {
            shape: shape.to_vec(),
            strides,
            offset: self.offset,
        })
    }

    /// Inserts a dimension of size 1 at `axis` (0..=rank).
    pub fn unsqueeze(&self, axis: usize) -> Result<Layout> {
        if axis > self.rank() {
            return Err(TensorError::AxisOutOfRange {
                op: "unsqueeze",
                axis: axis as isize,
                rank: self.rank(),
            });
        }
        let mut shape = self.shape.clone();
        let mut strides = self.strides.clone();
        shape.insert(axis, 1);
        strides.insert(axis, 0);
        check_shape(&shape)?;
        Ok(Layout {
            shape,
            strides,
            offset: self.offset,
        })
    }

    /// Removes a dimension of size 1.
    pub fn squeeze(&self, axis: usize) -> Result<Layout> {
        if axis >= self.rank() || self.shape[axis] != 1 {
            return Err(TensorError::InvalidArgument {
                op: "squeeze",
                message: format!("axis {axis} of shape {:?} is not of size 1", self.shape),
            });
        }
        let mut out = self.clone();
        out.shape.remove(axis);
        out.strides.remove(axis);
        Ok(out)
    }

    /// Storage offsets of every element, in row-major order of the logical shape.
    pub fn offsets(&self) -> Offsets<'_> {
        Offsets {
            layout: self,
            index: vec![0; self.rank()],
            next: self.offset,
            left: self.numel(),
        }
    }

    /// Calls `f(storage_offset_of_row_start, inner_stride)` for every row of the
    /// innermost dimension, in row-major order; rows have `shape[rank-1]` elements
    /// (a rank-0 view is one row of one element).
    pub fn for_each_row(&self, mut f: impl FnMut(usize)) {
        let rank = self.rank();
        if self.numel() == 0 {
            return;
        }
        if rank <= 1 {
            f(self.offset);
            return;
        }
        let outer = &self.shape[..rank - 1];
        let mut index = vec![0usize; rank - 1];
        let mut off = self.offset;
        loop {
            f(off);
            let mut d = rank - 1;
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                index[d] += 1;
                off += self.strides[d];
                if index[d] < outer[d] {
                    break;
                }
                off -= self.strides[d] * index[d];
                index[d] = 0;
            }
        }
    }

    /// Length and stride of the innermost dimension (1 and 0 for rank 0).
    pub fn inner(&self) -> (usize, usize) {
        match (self.shape.last(), self.strides.last()) {
            (Some(&d), Some(&s)) => (d, s),
            _ => (1, 0),
        }
    }

    /// The storage offset of the first element of row `r`, a row being one run of the
    /// innermost dimension (row-major order over the other dimensions).
    pub fn row_offset(&self, mut r: usize) -> usize {
        let rank = self.rank();
        let mut off = self.offset;
        if rank <= 1 {
            return off;
        }
        for d in (0..rank - 1).rev() {
            let n = self.shape[d];
            off += (r % n) * self.strides[d];
            r /= n;
        }
        off
    }

    /// The elements of this view of `data` in logical (row-major) order: the same as
    /// `offsets().map(|o| data[o])`, walked a row at a time (a slice copy when the
    /// innermost stride is 1).
    pub fn gather_slice<T: Copy>(&self, data: &[T]) -> Vec<T> {
        let n = self.numel();
        if n == 0 {
            return Vec::new();
        }
        if self.is_contiguous() {
            return data[self.offset..self.offset + n].to_vec();
        }
        let (len, stride) = self.inner();
        let mut out = Vec::with_capacity(n);
        for r in 0..n / len {
            let o = self.row_offset(r);
            if stride == 1 {
                out.extend_from_slice(&data[o..o + len]);
            } else {
                out.extend((0..len).map(|j| data[o + j * stride]));
            }
        }
        out
    }
}

/// Iterator over storage offsets in logical row-major order.
pub struct Offsets<'a> {
    layout: &'a Layout,
    index: Vec<usize>,
    next: usize,
    left: usize,
}

impl Iterator for Offsets<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let cur = self.next;
        let shape = &self.layout.shape;
        let strides = &self.layout.strides;
        let mut d = shape.len();
        while d > 0 {
            d -= 1;
            self.index[d] += 1;
            self.next += strides[d];
            if self.index[d] < shape[d] {
                return Some(cur);
            }
            self.next -= strides[d] * self.index[d];
            self.index[d] = 0;
        }
        Some(cur)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}
