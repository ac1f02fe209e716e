//! Tensor API: views copy nothing, limits are typed errors, ops give the specified values.

use blocktorch::{AttentionOptions, BinaryOp, CompareOp, DType, HostData, Tensor, TensorError};

fn t(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_f32(data.to_vec(), shape).expect("valid tensor")
}

/// Checks a tensor's shape and values bit for bit (NaN canonicalised).
fn check(got: &Tensor, shape: &[usize], want: &[f32]) {
    assert_eq!(got.shape(), shape, "shape");
    let v = got.to_vec_f32().expect("f32");
    let bits = |x: &[f32]| {
        x.iter()
            .map(|v| blocktorch::canonical_f32_bits(*v))
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(&v), bits(want), "values: got {v:?}, want {want:?}");
}

#[test]
fn rank_limits_are_typed_errors() {
    let ok = Tensor::zeros(&[1; 8]).expect("rank 8 is allowed");
    assert_eq!(ok.rank(), 8);
    assert!(matches!(
        Tensor::zeros(&[1; 9]),
        Err(TensorError::RankTooLarge { rank: 9, max: 8 })
    ));
    assert!(matches!(
        ok.unsqueeze(0),
        Err(TensorError::RankTooLarge { .. })
    ));
    assert!(matches!(
        Tensor::from_f32(vec![1.0; 5], &[2, 3]),
        Err(TensorError::LengthMismatch { .. })
    ));
    assert!(matches!(
        Tensor::zeros(&[1 << 20, 1 << 20]),
        Err(TensorError::TooManyElements { .. })
    ));
}

#[test]
fn views_share_storage_and_read_correctly() {
    let x = t(&(0..24).map(|i| i as f32).collect::<Vec<_>>(), &[2, 3, 4]);
    let tr = x.transpose(0, 2).unwrap();
    assert!(tr.is_alias_of(&x), "transpose is a view");
    assert_eq!(tr.shape(), &[4, 3, 2]);
    assert!(!tr.layout().is_contiguous());
    let s = x.slice(2, 1, 4, 2).unwrap();
    assert!(s.is_alias_of(&x));
    check(
        &s,
        &[2, 3, 2],
        &[1., 3., 5., 7., 9., 11., 13., 15., 17., 19., 21., 23.],
    );
    let p = x.permute(&[1, 0, 2]).unwrap().slice(0, 2, 3, 1).unwrap();
    check(&p, &[1, 2, 4], &[8., 9., 10., 11., 20., 21., 22., 23.]);
    let e = t(&[1., 2., 3.], &[3, 1]).expand(&[3, 2]).unwrap();
    assert!(e.layout().strides().contains(&0));
    check(&e, &[3, 2], &[1., 1., 2., 2., 3., 3.]);
    // Reshape of a contiguous view is a view; of a transposed one it copies.
    assert!(x.reshape(&[6, 4]).unwrap().is_alias_of(&x));
    let r = tr.reshape(&[24]).unwrap();
    assert!(!r.is_alias_of(&x));
    assert_eq!(r.to_vec_f32().unwrap()[..4], [0., 12., 4., 16.]);
    let c = tr.contiguous().unwrap();
    assert!(c.layout().is_contiguous() && !c.is_alias_of(&x));
    assert_eq!(c.to_vec_f32().unwrap(), tr.to_vec_f32().unwrap());
    // detach shares storage; deep_clone does not.
    assert!(x.detach().is_alias_of(&x));
    assert!(!x.deep_clone().unwrap().is_alias_of(&x));
    // Bad views are typed errors.
    assert!(matches!(
        x.slice(1, 0, 3, 0),
        Err(TensorError::InvalidSlice { .. })
    ));
    assert!(matches!(
        x.slice(5, 0, 1, 1),
        Err(TensorError::AxisOutOfRange { .. })
    ));
    assert!(matches!(
        x.permute(&[0, 0, 1]),
        Err(TensorError::InvalidPermutation { .. })
    ));
    assert!(matches!(
        x.reshape(&[5, 5]),
        Err(TensorError::InvalidReshape { .. })
    ));
    assert!(matches!(
        x.expand(&[2, 5, 4]),
        Err(TensorError::NotBroadcastable { .. })
    ));
}

#[test]
fn host_round_trips_every_dtype() {
    let cases = [
        HostData::F32(vec![1.5, -0.0, f32::INFINITY]),
        HostData::U8(vec![0, 255, 7]),
        HostData::I32(vec![-5, i32::MAX, 0]),
        HostData::U32(vec![u32::MAX, 1, 2]),
    ];
    for data in cases {
        let x = Tensor::from_data(data.clone(), &[3]).unwrap();
        assert_eq!(x.to_host().unwrap(), data);
        assert_eq!(x.transpose(0, 0).unwrap().to_host().unwrap(), data);
    }
}

#[test]
fn binary_ops_broadcast() {
    let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    let b = t(&[10., 20., 30.], &[3]);
    check(
        &a.add(&b).unwrap(),
        &[2, 3],
        &[11., 22., 33., 14., 25., 36.],
    );
    let col = t(&[2., 4.], &[2, 1]);
    check(
        &a.div(&col).unwrap(),
        &[2, 3],
        &[0.5, 1., 1.5, 1., 1.25, 1.5],
    );
    check(
        &a.binary_scalar(BinaryOp::Sub, 1.0).unwrap(),
        &[2, 3],
        &[0., 1., 2., 3., 4., 5.],
    );
    assert!(matches!(
        a.add(&t(&[1., 2.], &[2])),
        Err(TensorError::ShapeMismatch { .. })
    ));
    // max/min: NaN wins, +0 beats −0 for max, −0 beats +0 for min.
    let x = t(&[0.0, f32::NAN, 1.0], &[3]);
    let y = t(&[-0.0, 1.0, 2.0], &[3]);
    check(&x.maximum(&y).unwrap(), &[3], &[0.0, f32::NAN, 2.0]);
    check(&x.minimum(&y).unwrap(), &[3], &[-0.0, f32::NAN, 1.0]);
    let m = x.compare(CompareOp::Lt, &y).unwrap();
    assert_eq!(m.to_host().unwrap(), HostData::U8(vec![0, 0, 1]));
    check(&m.select(&x, &y).unwrap(), &[3], &[-0.0, 1.0, 1.0]);
    check(
        &x.masked_fill(&m, -7.0).unwrap(),
        &[3],
        &[0.0, f32::NAN, -7.0],
    );
    assert!(matches!(
        x.add(&Tensor::from_u8(vec![1; 3], &[3]).unwrap()),
        Err(TensorError::DTypeMismatch { .. })
    ));
}

#[test]
fn reductions_follow_the_canonical_order() {
    // 1e8 + 1 + … : the canonical 32-lane order is observable and fixed.
    let mut v = vec![1.0f32; 100];
    v[0] = 1.0e8;
    let x = t(&v, &[100]);
    // Lane 0 holds 1e8 + x[32] + x[64] + x[96] = 1e8 (each +1 is lost), the other 31
    // lanes hold 3 or 4 ones; the tree adds lanes 0..16 with 16..32 first.
    let want = {
        let mut p = [0.0f32; 32];
        for (i, x) in v.iter().enumerate() {
            p[i % 32] += x;
        }
        let mut s = 16;
        while s > 0 {
            for l in 0..s {
                p[l] += p[l + s];
            }
            s /= 2;
        }
        p[0]
    };
    check(&x.sum(&[], false).unwrap(), &[], &[want]);
    let m = t(&[1., 5., 3., 5., 2., -1.], &[2, 3]);
    check(&m.sum(&[0], false).unwrap(), &[3], &[6., 7., 2.]);
    check(&m.sum(&[1], true).unwrap(), &[2, 1], &[9., 6.]);
    check(&m.mean(&[], false).unwrap(), &[], &[2.5]);
    check(&m.max(&[1], false).unwrap(), &[2], &[5., 5.]);
    assert_eq!(
        m.argmax(1, false).unwrap().to_host().unwrap(),
        HostData::I32(vec![1, 0])
    );
    assert_eq!(
        t(&[1., f32::NAN, f32::NAN], &[3])
            .argmax(0, false)
            .unwrap()
            .to_host()
            .unwrap(),
        HostData::I32(vec![1])
    );
    assert!(matches!(
        Tensor::zeros(&[2, 0]).unwrap().max(&[1], false),
        Err(TensorError::EmptyReduction { .. })
    ));
    check(
        &Tensor::zeros(&[2, 0]).unwrap().sum(&[1], false).unwrap(),
        &[2],
        &[0., 0.],
    );
    assert!(matches!(
        m.sum(&[1, 1], false),
        Err(TensorError::InvalidArgument { .. })
    ));
}

#[test]
fn matmul_broadcasts_batches() {
    let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    let b = t(&[1., 0., 0., 1., 1., 1.], &[3, 2]);
    check(&a.matmul(&b).unwrap(), &[2, 2], &[4., 5., 10., 11.]);
    let batched = Tensor::concat(&[&a.unsqueeze(0).unwrap(), &a.unsqueeze(0).unwrap()], 0).unwrap();
    check(
        &batched.matmul(&b).unwrap(),
        &[2, 2, 2],
        &[4., 5., 10., 11., 4., 5., 10., 11.],
    );
    // Transposed operand is read through its strides.
    check(
        &a.matmul(&a.transpose(0, 1).unwrap()).unwrap(),
        &[2, 2],
        &[14., 32., 32., 77.],
    );
    assert!(matches!(
        a.matmul(&a),
        Err(TensorError::ShapeMismatch { .. })
    ));
    // k = 0 gives +0.
    check(
        &Tensor::zeros(&[2, 0])
            .unwrap()
            .matmul(&Tensor::zeros(&[0, 3]).unwrap())
            .unwrap(),
        &[2, 3],
        &[0.; 6],
    );
}

#[test]
fn softmax_layer_norm_attention() {
    let x = t(&[1., 2., 3., 1., 1., 1.], &[2, 3]);
    let s = x.softmax(-1).unwrap().to_vec_f32().unwrap();
    assert!((s[0] + s[1] + s[2] - 1.0).abs() < 1e-6 && s[0] < s[1] && s[1] < s[2]);
    assert!(s[3..].iter().all(|v| *v == s[3]));
    let ls = x.log_softmax(-1).unwrap().to_vec_f32().unwrap();
    for (a, b) in ls.iter().zip(&s) {
        assert!((a.exp() - b).abs() < 1e-6);
    }
    // softmax along axis 0 equals softmax of the transpose along -1, transposed back.
    let s0 = x.softmax(0).unwrap().to_vec_f32().unwrap();
    let s1 = x
        .transpose(0, 1)
        .unwrap()
        .softmax(-1)
        .unwrap()
        .transpose(0, 1)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert_eq!(s0, s1);
    let ln = x
        .layer_norm(1, None, None, 1e-5)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert!((ln[0] + ln[1] + ln[2]).abs() < 1e-6 && (ln[2] - 1.2247).abs() < 1e-3);
    assert_eq!(&ln[3..], &[0.0, 0.0, 0.0]);
    // Attention: one query attending to two keys with a mask on the second = the first value.
    let q = t(&[1., 0.], &[1, 2]);
    let k = t(&[1., 0., 0., 1.], &[2, 2]);
    let v = t(&[10., 20., 30., 40.], &[2, 2]);
    let mask = Tensor::from_u8(vec![1, 0], &[1, 2]).unwrap();
    check(
        &q.attention(&k, &v, Some(&mask), None, &AttentionOptions::default())
            .unwrap(),
        &[1, 2],
        &[10., 20.],
    );
    // Causal with Lq = Lk: the first query sees only the first key.
    let qq = t(&[1., 0., 0., 1.], &[2, 2]);
    let out = qq
        .attention(
            &k,
            &v,
            None,
            None,
            &AttentionOptions {
                scale: Some(1.0),
                causal: true,
            },
        )
        .unwrap();
    assert_eq!(&out.to_vec_f32().unwrap()[..2], &[10., 20.]);
}

#[test]
fn embedding_concat_cast() {
    let table = t(&[0., 1., 10., 11., 20., 21.], &[3, 2]);
    let idx = Tensor::from_i32(vec![2, 0, 2], &[3]).unwrap();
    check(
        &table.embedding(&idx).unwrap(),
        &[3, 2],
        &[20., 21., 0., 1., 20., 21.],
    );
    let bad = Tensor::from_i32(vec![3], &[1]).unwrap();
    assert!(matches!(
        table.embedding(&bad),
        Err(TensorError::IndexOutOfRange { index: 3, .. })
    ));
    let neg = Tensor::from_i32(vec![-1], &[1]).unwrap();
    assert!(matches!(
        table.embedding(&neg),
        Err(TensorError::IndexOutOfRange { index: -1, .. })
    ));
    let c = Tensor::concat(&[&table, &t(&[5., 6.], &[1, 2])], 0).unwrap();
    check(&c, &[4, 2], &[0., 1., 10., 11., 20., 21., 5., 6.]);
    assert!(matches!(
        Tensor::concat(&[&table, &t(&[5.], &[1, 1])], 0),
        Err(TensorError::ShapeMismatch { .. })
    ));
    let bytes = Tensor::from_u8(vec![0, 128, 255], &[3]).unwrap();
    check(
        &bytes
            .cast(DType::F32)
            .unwrap()
            .binary_scalar(BinaryOp::Div, 255.0)
            .unwrap(),
        &[3],
        &[0.0, 128.0 / 255.0, 1.0],
    );
    let f = t(&[-1.5, 3e9, f32::NAN, 2.7], &[4]);
    assert_eq!(
        f.cast(DType::I32).unwrap().to_host().unwrap(),
        HostData::I32(vec![-1, i32::MAX, 0, 2])
    );
    assert_eq!(
        f.cast(DType::U8).unwrap().to_host().unwrap(),
        HostData::U8(vec![0, 255, 0, 2])
    );
    let i = Tensor::from_i32(vec![-3, 300], &[2]).unwrap();
    assert_eq!(
        i.cast(DType::U8).unwrap().to_host().unwrap(),
        HostData::U8(vec![0, 255])
    );
}

#[test]
fn digest_canonicalises_nan_and_commits_to_shape() {
    let a = t(&[f32::NAN, 1.0], &[2]);
    let b = t(&[f32::from_bits(0xffc0_0001), 1.0], &[2]);
    assert_eq!(
        a.output_digest_sha256().unwrap(),
        b.output_digest_sha256().unwrap()
    );
    let c = t(&[f32::NAN, 1.0], &[1, 2]);
    assert_ne!(
        a.output_digest_sha256().unwrap(),
        c.output_digest_sha256().unwrap()
    );
    let z = t(&[0.0, 1.0], &[2]);
    let nz = t(&[-0.0, 1.0], &[2]);
    assert_ne!(
        z.output_digest_sha256().unwrap(),
        nz.output_digest_sha256().unwrap(),
        "±0 differ"
    );
}

#[test]
fn layouts_cannot_escape_their_buffer() {
    use blocktorch::{FabricTensor, Layout};
    let x = t(&[1., 2., 3., 4.], &[4]);
    let inside = Layout::from_parts(vec![2], vec![2], 1).unwrap();
    let v = x.raw().with_layout(inside).unwrap();
    assert_eq!(Tensor::from_fabric(v).to_vec_f32().unwrap(), vec![2., 4.]);
    let outside = Layout::from_parts(vec![3], vec![2], 0).unwrap();
    assert!(matches!(
        x.raw().with_layout(outside.clone()),
        Err(TensorError::InvalidArgument { .. })
    ));
    assert!(FabricTensor::new(DType::F32, outside, x.raw().buffer().clone()).is_err());
}

#[test]
fn declared_dtype_must_match_the_buffer() {
    use blocktorch::FabricTensor;
    let x = t(&[1., 2.], &[2]);
    let r = FabricTensor::new(DType::U8, x.layout().clone(), x.raw().buffer().clone());
    assert!(matches!(r, Err(TensorError::DTypeMismatch { .. })));
}

#[test]
fn pooled_buffers_are_reused_without_leaking_values() {
    use blocktorch::storage::{pool_bytes, POOL_BUFFER_BYTES_MIN};
    let n = POOL_BUFFER_BYTES_MIN; // 4 MiB of f32: pooled
    let a = Tensor::rand_uniform(&[n], -1.0, 1.0, 11).unwrap();
    let host = a.to_vec_f32().unwrap();
    for round in 0..3 {
        // Each output may land in a buffer an earlier output freed.
        let e = a.exp().unwrap().to_vec_f32().unwrap();
        let s = a.add(&a).unwrap().to_vec_f32().unwrap();
        let m = a
            .matmul(&Tensor::ones(&[1, 1]).unwrap().expand(&[1, 1]).unwrap())
            .ok();
        assert!(m.is_none(), "rank-1 matmul is refused");
        for i in (0..n).step_by(4099) {
            assert_eq!(
                e[i].to_bits(),
                blocktorch::math::exp(host[i]).to_bits(),
                "round {round}"
            );
            assert_eq!(
                s[i].to_bits(),
                (host[i] + host[i]).to_bits(),
                "round {round}"
            );
        }
        // A smaller output reusing a larger buffer has exactly its own length.
        let half = a.slice(0, 0, n / 2 + 1, 1).unwrap().neg().unwrap();
        assert_eq!(half.numel(), n / 2 + 1);
        assert_eq!(half.to_vec_f32().unwrap()[n / 2], -host[n / 2]);
    }
    assert!(pool_bytes() > 0, "freed large buffers are kept for reuse");
}

#[test]
fn review_regressions_are_typed_errors_not_panics() {
    use blocktorch::{FabricTensor, Layout};
    // Empty views whose offset would sit past the data.
    let e = Tensor::zeros(&[0, 5]).unwrap().slice(1, 2, 5, 1).unwrap();
    assert_eq!(e.neg().unwrap().shape(), &[0, 3]);
    let empty_idx = Tensor::from_i32(vec![], &[0]).unwrap();
    let t = Tensor::zeros(&[3, 0]).unwrap().slice(0, 1, 3, 1).unwrap();
    assert_eq!(t.embedding(&empty_idx).unwrap().shape(), &[0, 0]);
    // A step far past the axis leaves one element and no overflow.
    let x = Tensor::zeros(&[10, 10]).unwrap();
    assert_eq!(x.slice(0, 0, 10, usize::MAX / 2).unwrap().shape(), &[1, 10]);
    // A layout whose reach overflows is refused.
    let huge = Layout::from_parts(vec![2], vec![usize::MAX], 1).unwrap();
    assert!(FabricTensor::new(DType::F32, huge, x.raw().buffer().clone()).is_err());
    // layer_norm parameters must have the normalised shape.
    let w = Tensor::ones(&[5, 10]).unwrap();
    assert!(matches!(
        x.layer_norm(1, Some(&w), None, 1e-5),
        Err(TensorError::ShapeMismatch { .. })
    ));
    // The digest header refuses shapes it could not encode.
    assert!(blocktorch::digest::digest_header(DType::F32, &[1; 9]).is_err());
}

#[test]
fn max_gradient_is_exact_beyond_f32_integer_range() {
    let n = (1 << 24) + 2;
    let mut v = vec![0.0f32; n];
    v[n - 1] = 1.0;
    let x = Tensor::from_f32(v, &[n]).unwrap().requires_grad().unwrap();
    x.max(&[-1], false).unwrap().backward().unwrap();
    let g = x.grad().unwrap().to_vec_f32().unwrap();
    assert_eq!(g[n - 1], 1.0);
    assert_eq!(
        g[n - 2],
        0.0,
        "neighbouring index must not share the gradient"
    );
    assert_eq!(g.iter().filter(|v| **v != 0.0).count(), 1);
}
