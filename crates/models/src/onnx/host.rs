//! Tensors known at import: initializers, `Constant`s and everything computed from them
//! and from shapes alone (the shape subgraphs an exporter writes: `Shape`, `Gather` on
//! a shape, `Concat` of dims, …). The importer folds these on the host, exactly (integers
//! stay 64-bit), and only what reaches a run-time op becomes a program constant.

use crate::error::{ModelError, Result};
use blocktorch::layout::contiguous_strides;

/// The elements of a host tensor, row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum HostValues {
    /// ONNX `FLOAT`.
    F32(Vec<f32>),
    /// ONNX `INT64`, `INT32`, `INT8`, `UINT8`, `INT16`, `UINT16`, `UINT32` (exact).
    I64(Vec<i64>),
    /// ONNX `BOOL`.
    Bool(Vec<bool>),
}

impl HostValues {
    /// Element count.
    pub fn len(&self) -> usize {
        match self {
            HostValues::F32(v) => v.len(),
            HostValues::I64(v) => v.len(),
            HostValues::Bool(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kind's name, for errors.
    pub fn kind(&self) -> &'static str {
        match self {
            HostValues::F32(_) => "float",
            HostValues::I64(_) => "int",
            HostValues::Bool(_) => "bool",
        }
    }

    fn pick(&self, idx: &[usize]) -> HostValues {
        match self {
            HostValues::F32(v) => HostValues::F32(idx.iter().map(|&i| v[i]).collect()),
            HostValues::I64(v) => HostValues::I64(idx.iter().map(|&i| v[i]).collect()),
            HostValues::Bool(v) => HostValues::Bool(idx.iter().map(|&i| v[i]).collect()),
        }
    }
}

/// A tensor on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Elements, row-major; `values.len()` is the shape's product.
    pub values: HostValues,
}

/// Pairs of integers read by a broadcast binary op, in output order.
type IntPairs = Vec<(i64, i64)>;

fn bad(op: &'static str, message: String) -> ModelError {
    ModelError::Fold { op, message }
}

/// The product of `shape`, refused above `blocktorch::ELEMENTS_MAX`.
pub fn numel(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|n| *n <= blocktorch::ELEMENTS_MAX)
        .ok_or_else(|| bad("shape", format!("{shape:?} holds too many elements")))
}

/// NumPy broadcasting of two shapes (the runtime's rule).
pub fn broadcast(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    blocktorch::layout::broadcast_shapes(op, a, b)
        .map_err(|_| bad(op, format!("shapes {a:?} and {b:?} do not broadcast")))
}

/// For each element of `out` (row-major), the flat index of the element of a tensor of
/// shape `from` that broadcasting reads: a strided walk with stride 0 on the stretched
/// and the leading dims.
fn broadcast_index(from: &[usize], out: &[usize]) -> Vec<usize> {
    let strides = contiguous_strides(from);
    let lead = out.len() - from.len();
    let src: Vec<usize> = (0..out.len())
        .map(|d| {
            if d < lead || from[d - lead] == 1 {
                0
            } else {
                strides[d - lead]
            }
        })
        .collect();
    gather_strided(out, &src, 0)
}

impl HostTensor {
    /// A tensor; the values must fill the shape.
    pub fn new(shape: Vec<usize>, values: HostValues) -> Result<HostTensor> {
        if numel(&shape)? != values.len() {
            return Err(bad(
                "tensor",
                format!("{} values do not fill shape {shape:?}", values.len()),
            ));
        }
        Ok(HostTensor { shape, values })
    }

    /// A rank-1 int tensor.
    pub fn ints(v: Vec<i64>) -> HostTensor {
        HostTensor {
            shape: vec![v.len()],
            values: HostValues::I64(v),
        }
    }

    /// The values as integers (ints and bools); floats are refused.
    pub fn as_ints(&self, op: &'static str) -> Result<Vec<i64>> {
        match &self.values {
            HostValues::I64(v) => Ok(v.clone()),
            HostValues::Bool(v) => Ok(v.iter().map(|&b| b as i64).collect()),
            HostValues::F32(_) => Err(bad(op, "expected an integer tensor".into())),
        }
    }

    /// The one value of a one-element tensor, as f32.
    pub fn scalar_f32(&self, op: &'static str) -> Result<f32> {
        if self.values.len() != 1 {
            return Err(bad(
                op,
                format!("expected one value, got shape {:?}", self.shape),
            ));
        }
        Ok(match &self.values {
            HostValues::F32(v) => v[0],
            HostValues::I64(v) => v[0] as f32,
            HostValues::Bool(v) => v[0] as u8 as f32,
        })
    }

    /// Dims from a rank-1 int tensor (a shape input), each ≥ 0.
    pub fn as_dims(&self, op: &'static str) -> Result<Vec<i64>> {
        if self.shape.len() > 1 {
            return Err(bad(
                op,
                format!("a shape must be rank 1, got {:?}", self.shape),
            ));
        }
        self.as_ints(op)
    }

    /// The same elements in another shape of equal size.
    pub fn reshape(&self, shape: Vec<usize>) -> Result<HostTensor> {
        HostTensor::new(shape, self.values.clone())
    }

    /// Dimension `i` of the result is dimension `perm[i]` of `self`.
    pub fn permute(&self, perm: &[usize]) -> Result<HostTensor> {
        let rank = self.shape.len();
        let mut seen = vec![false; rank];
        if perm.len() != rank
            || perm
                .iter()
                .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
        {
            return Err(bad(
                "transpose",
                format!("{perm:?} is not a permutation of {rank} axes"),
            ));
        }
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let strides = contiguous_strides(&self.shape);
        let src: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
        let idx = gather_strided(&shape, &src, 0);
        Ok(HostTensor {
            values: self.values.pick(&idx),
            shape,
        })
    }

    /// Elements `start..end` by `step` (≥ 1, clamped bounds) along `axis`.
    pub fn slice(&self, axis: usize, start: usize, end: usize, step: usize) -> Result<HostTensor> {
        let mut shape = self.shape.clone();
        let len = if end > start {
            (end - start).div_ceil(step)
        } else {
            0
        };
        shape[axis] = len;
        let strides = contiguous_strides(&self.shape);
        let mut src = strides.clone();
        src[axis] = strides[axis] * step;
        let idx = gather_strided(&shape, &src, start * strides[axis]);
        Ok(HostTensor {
            values: self.values.pick(&idx),
            shape,
        })
    }

    /// Rows `indices` along `axis` (indices already in range).
    pub fn gather(&self, axis: usize, indices: &HostTensor) -> Result<HostTensor> {
        let dim = self.shape[axis] as i64;
        let ids = indices.as_ints("Gather")?;
        let mut rows = Vec::with_capacity(ids.len());
        for i in ids {
            let j = if i < 0 { i + dim } else { i };
            if !(0..dim).contains(&j) {
                return Err(bad(
                    "Gather",
                    format!("index {i} out of range for {dim} rows"),
                ));
            }
            rows.push(j as usize);
        }
        let outer: usize = self.shape[..axis].iter().product();
        let inner: usize = self.shape[axis + 1..].iter().product();
        let mut idx = Vec::with_capacity(outer * rows.len() * inner);
        for o in 0..outer {
            for &r in &rows {
                let base = (o * self.shape[axis] + r) * inner;
                idx.extend(base..base + inner);
            }
        }
        let mut shape = self.shape[..axis].to_vec();
        shape.extend_from_slice(&indices.shape);
        shape.extend_from_slice(&self.shape[axis + 1..]);
        HostTensor::new(shape, self.values.pick(&idx))
    }

    /// Joins tensors of one kind along `axis`.
    pub fn concat(parts: &[&HostTensor], axis: usize) -> Result<HostTensor> {
        let first = parts
            .first()
            .ok_or_else(|| bad("Concat", "no inputs".into()))?;
        let mut shape = first.shape.clone();
        shape[axis] = 0;
        for p in parts {
            let same = p.shape.len() == first.shape.len()
                && p.shape
                    .iter()
                    .zip(&first.shape)
                    .enumerate()
                    .all(|(i, (a, b))| i == axis || a == b);
            if !same || p.values.kind() != first.values.kind() {
                return Err(bad(
                    "Concat",
                    format!("{:?} and {:?} do not join", first.shape, p.shape),
                ));
            }
            shape[axis] += p.shape[axis];
        }
        let outer: usize = first.shape[..axis].iter().product();
        let mut values = match &first.values {
            HostValues::F32(_) => HostValues::F32(Vec::new()),
            HostValues::I64(_) => HostValues::I64(Vec::new()),
            HostValues::Bool(_) => HostValues::Bool(Vec::new()),
        };
        for o in 0..outer {
            for p in parts {
                let chunk: usize = p.shape[axis..].iter().product();
                let range = o * chunk..(o + 1) * chunk;
                match (&mut values, &p.values) {
                    (HostValues::F32(out), HostValues::F32(v)) => out.extend_from_slice(&v[range]),
                    (HostValues::I64(out), HostValues::I64(v)) => out.extend_from_slice(&v[range]),
                    (HostValues::Bool(out), HostValues::Bool(v)) => {
                        out.extend_from_slice(&v[range])
                    }
                    _ => return Err(bad("Concat", "inputs of different kinds".into())),
                }
            }
        }
        HostTensor::new(shape, values)
    }

    /// Broadcast to `shape`.
    pub fn expand(&self, shape: &[usize]) -> Result<HostTensor> {
        let out = broadcast("Expand", &self.shape, shape)?;
        numel(&out)?;
        let idx = broadcast_index(&self.shape, &out);
        Ok(HostTensor {
            values: self.values.pick(&idx),
            shape: out,
        })
    }

    /// Converts to another kind (ONNX `Cast`): float → int truncates toward zero
    /// (saturating, NaN → 0), anything → bool is `!= 0`.
    pub fn cast(&self, to: &HostValues) -> HostTensor {
        let values = match (&self.values, to) {
            (HostValues::F32(v), HostValues::I64(_)) => {
                HostValues::I64(v.iter().map(|&x| x as i64).collect())
            }
            (HostValues::F32(v), HostValues::Bool(_)) => {
                HostValues::Bool(v.iter().map(|&x| x != 0.0).collect())
            }
            (HostValues::I64(v), HostValues::F32(_)) => {
                HostValues::F32(v.iter().map(|&x| x as f32).collect())
            }
            (HostValues::I64(v), HostValues::Bool(_)) => {
                HostValues::Bool(v.iter().map(|&x| x != 0).collect())
            }
            (HostValues::Bool(v), HostValues::F32(_)) => {
                HostValues::F32(v.iter().map(|&x| x as u8 as f32).collect())
            }
            (HostValues::Bool(v), HostValues::I64(_)) => {
                HostValues::I64(v.iter().map(|&x| x as i64).collect())
            }
            (same, _) => same.clone(),
        };
        HostTensor {
            shape: self.shape.clone(),
            values,
        }
    }

    /// The broadcast shape of two int (or bool) tensors and, for each of its elements
    /// in row-major order, the pair of values broadcasting reads.
    fn int_pairs(
        op: &'static str,
        a: &HostTensor,
        b: &HostTensor,
    ) -> Result<(Vec<usize>, IntPairs)> {
        let (x, y) = (a.as_ints(op)?, b.as_ints(op)?);
        let shape = broadcast(op, &a.shape, &b.shape)?;
        numel(&shape)?;
        let ia = broadcast_index(&a.shape, &shape);
        let ib = broadcast_index(&b.shape, &shape);
        let pairs = ia.iter().zip(&ib).map(|(&i, &j)| (x[i], y[j])).collect();
        Ok((shape, pairs))
    }

    /// An elementwise function of two int tensors, broadcast.
    pub fn zip_ints(
        op: &'static str,
        a: &HostTensor,
        b: &HostTensor,
        f: impl Fn(i64, i64) -> Option<i64>,
    ) -> Result<HostTensor> {
        let (shape, pairs) = HostTensor::int_pairs(op, a, b)?;
        let v = pairs
            .into_iter()
            .map(|(p, q)| {
                f(p, q).ok_or_else(|| bad(op, format!("{p} and {q} overflow or divide by zero")))
            })
            .collect::<Result<Vec<i64>>>()?;
        Ok(HostTensor {
            shape,
            values: HostValues::I64(v),
        })
    }

    /// An elementwise predicate of two int (or bool) tensors, broadcast.
    pub fn compare_ints(
        op: &'static str,
        a: &HostTensor,
        b: &HostTensor,
        f: impl Fn(i64, i64) -> bool,
    ) -> Result<HostTensor> {
        let (shape, pairs) = HostTensor::int_pairs(op, a, b)?;
        Ok(HostTensor {
            shape,
            values: HostValues::Bool(pairs.into_iter().map(|(p, q)| f(p, q)).collect()),
        })
    }

    /// `cond ? a : b`, broadcast over all three.
    pub fn select(cond: &HostTensor, a: &HostTensor, b: &HostTensor) -> Result<HostTensor> {
        let c = cond.as_ints("Where")?;
        let ab = broadcast("Where", &a.shape, &b.shape)?;
        let shape = broadcast("Where", &cond.shape, &ab)?;
        numel(&shape)?;
        let ic = broadcast_index(&cond.shape, &shape);
        let ia = broadcast_index(&a.shape, &shape);
        let ib = broadcast_index(&b.shape, &shape);
        let values = match (&a.values, &b.values) {
            (HostValues::F32(x), HostValues::F32(y)) => HostValues::F32(
                (0..ic.len())
                    .map(|k| if c[ic[k]] != 0 { x[ia[k]] } else { y[ib[k]] })
                    .collect(),
            ),
            (HostValues::I64(x), HostValues::I64(y)) => HostValues::I64(
                (0..ic.len())
                    .map(|k| if c[ic[k]] != 0 { x[ia[k]] } else { y[ib[k]] })
                    .collect(),
            ),
            (HostValues::Bool(x), HostValues::Bool(y)) => HostValues::Bool(
                (0..ic.len())
                    .map(|k| if c[ic[k]] != 0 { x[ia[k]] } else { y[ib[k]] })
                    .collect(),
            ),
            _ => return Err(bad("Where", "branches of different kinds".into())),
        };
        Ok(HostTensor { shape, values })
    }
}

/// Flat source indices of a strided walk over `shape` with element strides `src`.
fn gather_strided(shape: &[usize], src: &[usize], offset: usize) -> Vec<usize> {
    let n: usize = shape.iter().product();
    let mut idx = Vec::with_capacity(n);
    let mut pos = vec![0usize; shape.len()];
    for _ in 0..n {
        idx.push(offset + pos.iter().zip(src).map(|(p, s)| p * s).sum::<usize>());
        for d in (0..shape.len()).rev() {
            pos[d] += 1;
            if pos[d] < shape[d] {
                break;
            }
            pos[d] = 0;
        }
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(shape: &[usize], v: &[i64]) -> HostTensor {
        HostTensor::new(shape.to_vec(), HostValues::I64(v.to_vec())).unwrap()
    }

    #[test]
    fn folds_the_shape_ops_exactly() {
        let t = ints(&[2, 3], &[0, 1, 2, 3, 4, 5]);
        assert_eq!(
            t.permute(&[1, 0]).unwrap(),
            ints(&[3, 2], &[0, 3, 1, 4, 2, 5])
        );
        assert_eq!(t.slice(1, 1, 3, 1).unwrap(), ints(&[2, 2], &[1, 2, 4, 5]));
        assert_eq!(t.slice(1, 0, 3, 2).unwrap(), ints(&[2, 2], &[0, 2, 3, 5]));
        assert_eq!(t.gather(1, &ints(&[], &[-1])).unwrap(), ints(&[2], &[2, 5]));
        assert_eq!(
            t.gather(0, &ints(&[1], &[1])).unwrap(),
            ints(&[1, 3], &[3, 4, 5])
        );
        assert_eq!(
            HostTensor::concat(&[&t, &ints(&[2, 1], &[9, 8])], 1).unwrap(),
            ints(&[2, 4], &[0, 1, 2, 9, 3, 4, 5, 8])
        );
        assert_eq!(
            ints(&[1], &[7]).expand(&[2, 2]).unwrap(),
            ints(&[2, 2], &[7, 7, 7, 7])
        );
        let sum = HostTensor::zip_ints("Add", &t, &ints(&[3], &[10, 20, 30]), |a, b| {
            a.checked_add(b)
        })
        .unwrap();
        assert_eq!(sum, ints(&[2, 3], &[10, 21, 32, 13, 24, 35]));
        assert!(t.gather(0, &ints(&[], &[2])).is_err());
        assert!(
            HostTensor::zip_ints("Div", &t, &ints(&[], &[0]), |a, b| a.checked_div(b)).is_err()
        );
    }
}
