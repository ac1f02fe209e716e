//! Property tests: every view reads the elements that index arithmetic on the original
//! says it should, and ops on views equal ops on materialised copies.

use blocktorch::{BinaryOp, Tensor};
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
}
