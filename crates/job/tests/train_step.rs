//! The training example's hand-written backward pass agrees with BlockTorch's autograd.

use blocktorch::{BinaryOp, HostData, Tensor};
use tb_job::examples::{build_example, train_step_labels};
use tb_job::{execute, ExecOptions};

fn named(job: &tb_job::Job, name: &str) -> (Vec<f32>, Vec<usize>) {
    let c = job.program.consts.iter().find(|c| c.name == name).unwrap();
    match &c.data {
        HostData::F32(v) => (v.clone(), c.shape.clone()),
        _ => panic!("{name} is f32"),
    }
}

#[test]
fn gradients_match_autograd() {
    let job = build_example("train-step").unwrap();
    let run = execute(
        &job,
        &blocktorch::CpuFabric::reference(),
        ExecOptions::default(),
    )
    .unwrap();
    let out = |n: &str| -> Vec<f32> {
        match &run.outputs.iter().find(|o| o.name == n).unwrap().data {
            HostData::F32(v) => v.clone(),
            _ => panic!(),
        }
    };
    // The same step with autograd.
    let HostData::U8(bytes) = &job.input else {
        panic!()
    };
    let x = Tensor::from_f32(bytes.iter().map(|b| *b as f32 / 255.0).collect(), &[16, 64]).unwrap();
    let p = |n: &str| {
        let (v, s) = named(&job, n);
        Tensor::from_f32(v, &s).unwrap().requires_grad().unwrap()
    };
    let (w1, b1, w2, b2) = (p("w1"), p("b1"), p("w2"), p("b2"));
    let (y, ys) = named(&job, "labels.onehot");
    let y = Tensor::from_f32(y, &ys).unwrap();
    let h = x.matmul(&w1).unwrap().add(&b1).unwrap().relu().unwrap();
    let logits = h.matmul(&w2).unwrap().add(&b2).unwrap();
    let lsm = logits.log_softmax(-1).unwrap();
    let loss = y
        .mul(&lsm)
        .unwrap()
        .sum(&[0, 1], false)
        .unwrap()
        .neg()
        .unwrap()
        .binary_scalar(BinaryOp::Div, 16.0)
        .unwrap();
    loss.backward().unwrap();
    assert_eq!(
        out("loss"),
        vec![loss.item().unwrap()],
        "the forward pass is the same ops"
    );
    for (name, t) in [
        ("grad_w1", &w1),
        ("grad_b1", &b1),
        ("grad_w2", &w2),
        ("grad_b2", &b2),
    ] {
        let want = t.grad().unwrap().to_vec_f32().unwrap();
        let got = out(name);
        assert_eq!(want.len(), got.len());
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        for (i, (a, b)) in want.iter().zip(&got).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * scale,
                "{name}[{i}]: autograd {a}, job {b}"
            );
        }
    }
    assert_eq!(train_step_labels(3), vec![3, 0, 7]);
}
