//! Property tests: every view reads the elements that index arithmetic on the original
//! says it should, and ops on views equal ops on materialised copies.

use blocktorch::{BinaryOp, Layout, Tensor};
use proptest::prelude::*;

fn shape_strategy() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5, 1..5)
}

/// Row-major multi-index of flat position `i` in `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (i, d)| acc * d + i)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn permute_reads_permuted_indices(shape in shape_strategy(), seed in any::<u64>()) {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let x = Tensor::from_f32(data, &shape).unwrap();
        let mut perm: Vec<usize> = (0..shape.len()).collect();
        // Deterministic shuffle from the seed.
        for i in (1..perm.len()).rev() {
            perm.swap(i, (seed as usize ^ (i * 7919)) % (i + 1));
        }
        let p = x.permute(&perm).unwrap();
        prop_assert!(p.is_alias_of(&x));
        let got = p.to_vec_f32().unwrap();
        for (flat, v) in got.iter().enumerate() {
            let idx = unravel(flat, p.shape());
            let mut orig = vec![0; shape.len()];
            for (i, &pi) in perm.iter().enumerate() {
                orig[pi] = idx[i];
            }
            prop_assert_eq!(*v, ravel(&orig, &shape) as f32);
        }
    }

    #[test]
    fn slice_reads_stepped_indices(shape in shape_strategy(), axis_seed in any::<usize>(), start in 0usize..4, len in 0usize..5, step in 1usize..4) {
        let axis = axis_seed % shape.len();
        let n: usize = shape.iter().product();
        let x = Tensor::from_f32((0..n).map(|i| i as f32).collect(), &shape).unwrap();
        let start = start.min(shape[axis]);
        let end = start + len * step;
        let s = x.slice(axis as isize, start, end, step).unwrap();
        let got = s.to_vec_f32().unwrap();
        for (flat, v) in got.iter().enumerate() {
            let mut idx = unravel(flat, s.shape());
            idx[axis] = start + idx[axis] * step;
            prop_assert!(idx[axis] < shape[axis]);
            prop_assert_eq!(*v, ravel(&idx, &shape) as f32);
        }
    }

    #[test]
    fn ops_on_views_equal_ops_on_copies(shape in prop::collection::vec(1usize..6, 2..4), seed in any::<u64>()) {
        let x = Tensor::rand_uniform(&shape, -3.0, 3.0, seed).unwrap();
        let t = x.transpose(0, -1).unwrap();
        let tc = t.contiguous().unwrap();
        prop_assert_eq!(t.exp().unwrap().to_vec_f32().unwrap(), tc.exp().unwrap().to_vec_f32().unwrap());
        prop_assert_eq!(
            t.binary(BinaryOp::Mul, &t).unwrap().to_vec_f32().unwrap(),
            tc.binary(BinaryOp::Mul, &tc).unwrap().to_vec_f32().unwrap()
        );
        prop_assert_eq!(
            t.sum(&[0], false).unwrap().to_vec_f32().unwrap(),
            tc.sum(&[0], false).unwrap().to_vec_f32().unwrap()
        );
        prop_assert_eq!(
            t.softmax(-1).unwrap().to_vec_f32().unwrap(),
            tc.softmax(-1).unwrap().to_vec_f32().unwrap()
        );
    }

    #[test]
    fn reshape_round_trips(shape in shape_strategy(), seed in any::<u64>()) {
        let x = Tensor::rand_uniform(&shape, -1.0, 1.0, seed).unwrap();
        let n: usize = shape.iter().product();
        let flat = x.reshape(&[n]).unwrap();
        prop_assert!(flat.is_alias_of(&x));
        let back = flat.reshape(&shape).unwrap();
        prop_assert_eq!(back.to_vec_f32().unwrap(), x.to_vec_f32().unwrap());
    }

    #[test]
    fn gather_slice_reads_what_offsets_name(shape in shape_strategy(), seed in any::<u64>(), start in 0usize..3, step in 1usize..3) {
        // A permuted, sliced, broadcast view: every kind of stride (0, 1, > 1).
        let n: usize = shape.iter().product();
        let data: Vec<u32> = (0..n as u32).collect();
        let mut l = Layout::contiguous(&shape).unwrap();
        let mut perm: Vec<usize> = (0..shape.len()).collect();
        for i in (1..perm.len()).rev() {
            perm.swap(i, (seed as usize ^ (i * 31)) % (i + 1));
        }
        l = l.permute(&perm).unwrap();
        let axis = (seed as usize >> 8) % l.rank();
        let d = l.shape()[axis];
        let start = start.min(d);
        l = l.slice(axis, start, d, step).unwrap();
        let mut wide = vec![2];
        wide.extend_from_slice(l.shape());
        let mut b = vec![1];
        b.extend_from_slice(l.shape());
        let lb = Layout::from_parts(b, [0].iter().chain(l.strides()).copied().collect(), l.offset())
            .unwrap()
            .broadcast_to(&wide)
            .unwrap();
        for v in [&l, &lb] {
            let want: Vec<u32> = v.offsets().map(|o| data[o]).collect();
            prop_assert_eq!(v.gather_slice(&data), want);
        }
    }

    #[test]
    fn select_on_broadcast_views_picks_elementwise(rows in 1usize..40, cols in 1usize..40, seed in any::<u64>()) {
        // The attention mask's shape: a [rows, 1] condition broadcast over columns, a
        // transposed operand and a broadcast scalar.
        let cond: Vec<u8> = (0..rows).map(|i| ((seed >> (i % 64)) & 1) as u8).collect();
        let c = Tensor::from_u8(cond.clone(), &[rows, 1]).unwrap();
        let a = Tensor::rand_uniform(&[cols, rows], -1.0, 1.0, seed).unwrap().transpose(0, 1).unwrap();
        let b = Tensor::from_f32(vec![-7.5], &[1, 1]).unwrap();
        let got = c.select(&a, &b).unwrap().to_vec_f32().unwrap();
        let av = a.to_vec_f32().unwrap();
        for i in 0..rows {
            for j in 0..cols {
                let want = if cond[i] != 0 { av[i * cols + j] } else { -7.5 };
                prop_assert_eq!(got[i * cols + j].to_bits(), want.to_bits());
            }
        }
    }
}
