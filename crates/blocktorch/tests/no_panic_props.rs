//! Property test: any op on any shape (empty dims, rank 0, bad axes, bad indices,
//! mismatched shapes and dtypes) returns `Ok` or a typed error — never a panic.

use blocktorch::{AttentionOptions, BinaryOp, CompareOp, DType, Tensor, UnaryOp};
use proptest::prelude::*;

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..4, 0..5)
}

fn tensor(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_uniform(shape, -3.0, 3.0, seed).expect("small shapes are valid")
}

fn run_op(
    which: u8,
    a: &Tensor,
    b: &Tensor,
    axis: isize,
    k: usize,
) -> Result<Tensor, blocktorch::TensorError> {
    let idx = Tensor::from_i32(vec![axis as i32, k as i32 - 1], &[2])?;
    let mask = a.compare(CompareOp::Gt, b);
    match which % 24 {
        0 => a.unary(UnaryOp::ALL[k % UnaryOp::ALL.len()]),
        1 => a.binary(BinaryOp::ALL[k % BinaryOp::ALL.len()], b),
        2 => mask?.select(a, b),
        3 => a.sum(&[axis], k.is_multiple_of(2)),
        4 => a.mean(&[axis, axis + 1], false),
        5 => a.max(&[axis], true),
        6 => a.argmax(axis, false),
        7 => a.matmul(b),
        8 => a.softmax(axis),
        9 => a.log_softmax(axis),
        10 => a.layer_norm(k, Some(b), None, 1e-5),
        11 => a.attention(
            b,
            b,
            None,
            Some(a),
            &AttentionOptions {
                scale: None,
                causal: k.is_multiple_of(2),
            },
        ),
        12 => a.embedding(&idx),
        13 => Tensor::concat(&[a, b], axis),
        14 => a.cast(DType::ALL[k % 4])?.cast(DType::F32),
        15 => a.slice(axis, k, k + 2, k),
        16 => a.transpose(axis, k as isize),
        17 => a.permute(&[k, 0, 1][..a.rank().min(3)]),
        18 => a.expand(b.shape()),
        19 => a.reshape(b.shape()),
        20 => a.squeeze(k)?.unsqueeze(k),
        21 => a.masked_fill(&mask?, 1.0),
        22 => a.pow_scalar(k as f32 - 1.5),
        _ => {
            let y = a.requires_grad()?.mul(b)?.sum(&[], false)?;
            y.backward()?;
            Ok(y)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn ops_never_panic(sa in shape(), sb in shape(), which in any::<u8>(), axis in -4isize..5, k in 0usize..5, seed in any::<u64>()) {
        let a = tensor(&sa, seed);
        let b = tensor(&sb, seed ^ 1);
        // Ok or a typed error are both fine; a panic fails the property.
        let _ = run_op(which, &a, &b, axis, k);
        // Same-shape operands reach the kernels more often.
        let b2 = tensor(&sa, seed ^ 2);
        let _ = run_op(which, &a, &b2, axis, k);
    }
}
