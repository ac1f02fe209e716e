//! Autograd: every differentiable op's backward pass against central finite
//! differences (the forward runs in f32; the difference quotient is formed in f64), plus
//! accumulation, detach and determinism.

use blocktorch::rng::uniform_f32;
use blocktorch::{AttentionOptions, BinaryOp, Tensor};

type Fwd = dyn Fn(&[Tensor]) -> blocktorch::Result<Tensor>;

/// Loss = Σ f(xs) · w for fixed pseudo-random weights w, so every output element matters.
fn loss(f: &Fwd, xs: &[Tensor], seed: u64) -> Tensor {
    let y = f(xs).expect("forward");
    let w = Tensor::rand_uniform(y.shape(), -1.0, 1.0, seed).unwrap();
    y.mul(&w).unwrap().sum(&[], false).unwrap()
}

/// Compares analytic gradients with central differences for every input element.
fn gradcheck(name: &str, values: Vec<(Vec<f32>, Vec<usize>)>, f: &Fwd) {
    let xs: Vec<Tensor> = values
        .iter()
        .map(|(v, s)| {
            Tensor::from_f32(v.clone(), s)
                .unwrap()
                .requires_grad()
                .unwrap()
        })
        .collect();
    loss(f, &xs, 7).backward().expect("backward");
    for (i, (v, s)) in values.iter().enumerate() {
        let g = xs[i]
            .grad()
            .unwrap_or_else(|| panic!("{name}: input {i} got no gradient"))
            .to_vec_f32()
            .unwrap();
        assert_eq!(g.len(), v.len());
        for j in 0..v.len() {
            let h = 1e-2f32 * v[j].abs().max(1.0);
            let eval = |delta: f32| -> f64 {
                let plain: Vec<Tensor> = values
                    .iter()
                    .enumerate()
                    .map(|(k, (vv, ss))| {
                        let mut vv = vv.clone();
                        if k == i {
                            vv[j] += delta;
                        }
                        Tensor::from_f32(vv, ss).unwrap()
                    })
                    .collect();
                loss(f, &plain, 7).item().unwrap() as f64
            };
            let numeric = (eval(h) - eval(-h)) / (2.0 * h as f64);
            let analytic = g[j] as f64;
            let tol = 2e-2 * numeric.abs().max(analytic.abs()) + 3e-3;
            assert!(
                (numeric - analytic).abs() <= tol,
                "{name}: d/dx{i}[{j}] (shape {s:?}): analytic {analytic}, numeric {numeric}"
            );
        }
    }
}

fn vals(seed: u64, shape: &[usize], lo: f32, hi: f32) -> (Vec<f32>, Vec<usize>) {
    (
        uniform_f32(seed, shape.iter().product(), lo, hi),
        shape.to_vec(),
    )
}

#[test]
fn unary_gradients() {
    let general = [vals(1, &[2, 5], -2.0, 2.0)];
    let positive = [vals(2, &[2, 5], 0.5, 3.0)];
    type Case<'a> = (&'a str, &'a [(Vec<f32>, Vec<usize>)], Box<Fwd>);
    let cases: Vec<Case> = vec![
        ("neg", &general, Box::new(|x| x[0].neg())),
        ("abs", &general, Box::new(|x| x[0].abs())),
        ("exp", &general, Box::new(|x| x[0].exp())),
        ("log", &positive, Box::new(|x| x[0].log())),
        ("sqrt", &positive, Box::new(|x| x[0].sqrt())),
        ("rsqrt", &positive, Box::new(|x| x[0].rsqrt())),
        ("recip", &positive, Box::new(|x| x[0].recip())),
        ("tanh", &general, Box::new(|x| x[0].tanh())),
        ("sigmoid", &general, Box::new(|x| x[0].sigmoid())),
        ("relu", &general, Box::new(|x| x[0].relu())),
        ("gelu_tanh", &general, Box::new(|x| x[0].gelu_tanh())),
        ("gelu_erf", &general, Box::new(|x| x[0].gelu_erf())),
        ("erf", &general, Box::new(|x| x[0].erf())),
        ("pow 3", &general, Box::new(|x| x[0].pow_scalar(3.0))),
        ("pow -1.5", &positive, Box::new(|x| x[0].pow_scalar(-1.5))),
    ];
    for (name, v, f) in &cases {
        gradcheck(name, v.to_vec(), f.as_ref());
    }
}

#[test]
fn binary_and_select_gradients_with_broadcasting() {
    let a = vals(3, &[3, 4], -2.0, 2.0);
    let b = vals(4, &[4], 0.5, 2.0);
    let col = vals(5, &[3, 1], -2.0, 2.0);
    gradcheck("add", vec![a.clone(), b.clone()], &|x| x[0].add(&x[1]));
    gradcheck("sub", vec![a.clone(), col.clone()], &|x| x[0].sub(&x[1]));
    gradcheck("mul", vec![a.clone(), b.clone()], &|x| x[0].mul(&x[1]));
    gradcheck("div", vec![a.clone(), b.clone()], &|x| x[0].div(&x[1]));
    gradcheck("maximum", vec![a.clone(), col.clone()], &|x| {
        x[0].maximum(&x[1])
    });
    gradcheck("minimum", vec![a.clone(), col.clone()], &|x| {
        x[0].minimum(&x[1])
    });
    gradcheck("masked_fill", vec![a.clone()], &|x| {
        let mask = x[0]
            .detach()
            .compare(blocktorch::CompareOp::Gt, &Tensor::scalar(0.0))?;
        x[0].masked_fill(&mask, 0.5)
    });
    gradcheck("scalar ops", vec![a], &|x| {
        x[0].binary_scalar(BinaryOp::Mul, 3.0)?
            .binary_scalar(BinaryOp::Sub, 1.0)
    });
}

#[test]
fn reduction_and_matmul_gradients() {
    let a = vals(6, &[2, 3, 4], -2.0, 2.0);
    gradcheck("sum axes", vec![a.clone()], &|x| x[0].sum(&[0, 2], true));
    gradcheck("mean", vec![a.clone()], &|x| x[0].mean(&[1], false));
    gradcheck("max", vec![a.clone()], &|x| x[0].max(&[-1], false));
    let w = vals(7, &[4, 5], -1.0, 1.0);
    gradcheck("matmul batched", vec![a.clone(), w.clone()], &|x| {
        x[0].matmul(&x[1])
    });
    gradcheck(
        "matmul transposed",
        vec![a.clone(), vals(8, &[5, 4], -1.0, 1.0)],
        &|x| x[0].matmul(&x[1].transpose(0, 1)?),
    );
}

#[test]
fn composite_gradients() {
    let x = vals(9, &[3, 6], -2.0, 2.0);
    gradcheck("softmax", vec![x.clone()], &|x| x[0].softmax(-1));
    gradcheck("softmax axis 0", vec![x.clone()], &|x| x[0].softmax(0));
    gradcheck("log_softmax", vec![x.clone()], &|x| x[0].log_softmax(-1));
    gradcheck(
        "layer_norm",
        vec![
            x.clone(),
            vals(10, &[6], 0.5, 1.5),
            vals(11, &[6], -1.0, 1.0),
        ],
        &|x| x[0].layer_norm(1, Some(&x[1]), Some(&x[2]), 1e-5),
    );
    let q = vals(12, &[2, 3, 4], -1.0, 1.0);
    let k = vals(13, &[2, 5, 4], -1.0, 1.0);
    let v = vals(14, &[2, 5, 3], -1.0, 1.0);
    let bias = vals(15, &[1, 5], -0.5, 0.5);
    gradcheck(
        "attention",
        vec![q.clone(), k.clone(), v.clone(), bias],
        &|x| {
            let mask = Tensor::from_u8((0..15).map(|i| (i % 5 != 3) as u8).collect(), &[3, 5])?;
            x[0].attention(
                &x[1],
                &x[2],
                Some(&mask),
                Some(&x[3]),
                &AttentionOptions::default(),
            )
        },
    );
    gradcheck("causal attention", vec![q, k, v], &|x| {
        x[0].attention(
            &x[1],
            &x[2],
            None,
            None,
            &AttentionOptions {
                scale: Some(0.7),
                causal: true,
            },
        )
    });
}

#[test]
fn view_gather_concat_gradients() {
    let x = vals(16, &[4, 6], -2.0, 2.0);
    gradcheck("slice step", vec![x.clone()], &|x| x[0].slice(1, 1, 6, 2));
    gradcheck("permute+reshape", vec![x.clone()], &|x| {
        x[0].permute(&[1, 0])?.reshape(&[3, 8])
    });
    gradcheck("expand", vec![vals(17, &[4, 1], -1.0, 1.0)], &|x| {
        x[0].expand(&[2, 4, 3])
    });
    gradcheck("unsqueeze/squeeze", vec![x.clone()], &|x| {
        x[0].unsqueeze(1)?.squeeze(1)?.exp()
    });
    gradcheck(
        "concat",
        vec![x.clone(), vals(18, &[4, 2], -1.0, 1.0)],
        &|x| Tensor::concat(&[&x[0], &x[1]], 1),
    );
    gradcheck("embedding with repeats", vec![x], &|x| {
        x[0].embedding(&Tensor::from_i32(vec![3, 0, 3, 1], &[2, 2])?)
    });
}

#[test]
fn accumulation_detach_and_determinism() {
    let x = Tensor::from_f32(vec![1.0, 2.0, 3.0], &[3])
        .unwrap()
        .requires_grad()
        .unwrap();
    let y = x.mul(&x).unwrap().sum(&[], false).unwrap();
    y.backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec_f32().unwrap(), vec![2.0, 4.0, 6.0]);
    y.backward().unwrap();
    assert_eq!(
        x.grad().unwrap().to_vec_f32().unwrap(),
        vec![4.0, 8.0, 12.0],
        "gradients accumulate"
    );
    x.zero_grad();
    assert!(x.grad().is_none());
    // detach cuts the graph: only the attached factor contributes.
    let z = x.mul(&x.detach()).unwrap().sum(&[], false).unwrap();
    z.backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec_f32().unwrap(), vec![1.0, 2.0, 3.0]);
    // Errors are typed.
    assert!(Tensor::scalar(1.0).backward().is_err());
    assert!(
        x.mul(&x).unwrap().backward().is_err(),
        "non-scalar backward needs an explicit gradient"
    );
    assert!(Tensor::from_i32(vec![1], &[1])
        .unwrap()
        .requires_grad()
        .is_err());
    // The same graph gives the same gradient bits every time.
    let run = || {
        let w = Tensor::rand_uniform(&[16, 64], -1.0, 1.0, 3)
            .unwrap()
            .requires_grad()
            .unwrap();
        let inp = Tensor::rand_uniform(&[8, 16], -1.0, 1.0, 4).unwrap();
        let h = inp
            .matmul(&w)
            .unwrap()
            .gelu_tanh()
            .unwrap()
            .layer_norm(1, None, None, 1e-5)
            .unwrap();
        h.softmax(-1)
            .unwrap()
            .mul(&h)
            .unwrap()
            .sum(&[], false)
            .unwrap()
            .backward()
            .unwrap();
        w.grad().unwrap().output_digest_sha256().unwrap()
    };
    assert_eq!(run(), run());
}
