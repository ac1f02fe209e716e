//! The example jobs (`examples/jobs/`), built from fixed seeds:
//! `tb-cli job build --example NAME -o examples/jobs/NAME.btj`.

use crate::builder::{ProgramBuilder, Val};
use crate::error::{JobError, Result};
use crate::format::{InputTensorDescriptor, Job, Normalisation, SideTensor};
use crate::program::InputSlot;
use blocktorch::compose::{self as c, AttentionOptions, Backend, View};
use blocktorch::rng::{uniform_f32, SplitMix64};
use blocktorch::{BinaryOp, CompareOp, CpuFabric, DType, Fabric, HostData, Prim, UnaryOp};

/// The example names, in the order `tb-cli job build --example` lists them.
pub const EXAMPLES: [&str; 4] = ["mlp", "transformer", "matmul-chain", "train-step"];

fn seeded_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut r = SplitMix64::new(seed);
    (0..n).map(|_| (r.next_u64() >> 56) as u8).collect()
}

fn weight(
    b: &ProgramBuilder,
    name: &str,
    seed: u64,
    shape: &[usize],
    scale: f32,
) -> blocktorch::Result<Val> {
    let n = shape.iter().product();
    b.param(
        name,
        HostData::F32(uniform_f32(seed, n, -scale, scale)),
        shape,
    )
}

fn t_err(e: blocktorch::TensorError) -> JobError {
    JobError::Unencodable {
        field: "example",
        message: e.to_string(),
    }
}

/// Builds example `name` as a job for the CPU reference's kernels.
pub fn build_example(name: &str) -> Result<Job> {
    let kernel = CpuFabric::reference().kernel_variant_digest();
    let (descriptor, program, input) = match name {
        "mlp" => mlp().map_err(t_err)?,
        "transformer" => transformer().map_err(t_err)?,
        "matmul-chain" => matmul_chain().map_err(t_err)?,
        "train-step" => train_step().map_err(t_err)?,
        other => {
            return Err(JobError::Unencodable {
                field: "example",
                message: format!(
                    "no example {other:?}; the examples are {}",
                    EXAMPLES.join(", ")
                ),
            })
        }
    };
    Job::new(kernel, descriptor, program, input)
}

type Parts = (InputTensorDescriptor, crate::program::Program, HostData);

/// A two-layer MLP classifier on a batch of 8 u8 28×28 images (`bytes / 255`):
/// 784 → 128 (ReLU) → 10, softmax. Output `probs` [8, 10].
fn mlp() -> blocktorch::Result<Parts> {
    let (batch, d_in, hidden, classes) = (8, 784, 128, 10);
    let d = InputTensorDescriptor::dense(DType::U8, &[batch, d_in], Normalisation::Bytes255);
    let b = ProgramBuilder::new(&d);
    let x = b.input(InputSlot::Main)?;
    let w1 = weight(&b, "w1", 11, &[d_in, hidden], 1.0 / (d_in as f32).sqrt())?;
    let b1 = weight(&b, "b1", 12, &[hidden], 0.1)?;
    let w2 = weight(
        &b,
        "w2",
        13,
        &[hidden, classes],
        1.0 / (hidden as f32).sqrt(),
    )?;
    let b2 = weight(&b, "b2", 14, &[classes], 0.1)?;
    let h = c::binary(&b, BinaryOp::Add, &b.exec(&Prim::Matmul, &[&x, &w1])?, &b1)?;
    let h = c::unary(&b, UnaryOp::Relu, &h)?;
    let logits = c::binary(&b, BinaryOp::Add, &b.exec(&Prim::Matmul, &[&h, &w2])?, &b2)?;
    let probs = c::softmax(&b, &logits, -1)?;
    b.output("probs", &probs);
    Ok((d, b.finish(), HostData::U8(seeded_bytes(15, batch * d_in))))
}

/// A pre-norm transformer encoder block on `x: [2, 32, 64]` with 4 heads: layer-norm,
/// QKV, attention with the descriptor's key mask (`[1, 32]`, the last 4 keys masked) and
/// additive bias (bias array 0, `[32, 32]`), output projection, residual, layer-norm,
/// GELU (erf) MLP 64 → 256 → 64, residual. Output `y` [2, 32, 64].
fn transformer() -> blocktorch::Result<Parts> {
    transformer_parts(2, 32, 64, 4, 256)
}

/// An embedding lookup whose model is large and whose job is small: a seeded f32 table
/// `[rows, dim]` (`rows × dim × 4` bytes of weights), `tokens` i32 token ids as the
/// input, the rows they pick scaled by 0.5. Output `emb` [tokens, dim]. For publishing
/// large models by reference (tests and benchmarks: about 100 MB at 25 600 × 1024).
pub fn lookup_job(rows: usize, dim: usize, tokens: usize, seed: u64) -> Result<Job> {
    let build = || -> blocktorch::Result<Parts> {
        let d = InputTensorDescriptor::dense(DType::I32, &[tokens], Normalisation::None);
        let b = ProgramBuilder::new(&d);
        let ids = b.input(InputSlot::Main)?;
        let table = weight(&b, "table", seed, &[rows, dim], 1.0)?;
        let picked = b.exec(&Prim::Gather, &[&table, &ids])?;
        let half = b.param("half", HostData::F32(vec![0.5]), &[])?;
        let emb = c::binary(&b, BinaryOp::Mul, &picked, &half)?;
        b.output("emb", &emb);
        let mut r = SplitMix64::new(seed ^ 0x5eed);
        let ids: Vec<i32> = (0..tokens)
            .map(|_| (r.next_u64() % rows.max(1) as u64) as i32)
            .collect();
        Ok((d, b.finish(), HostData::I32(ids)))
    };
    let kernel = CpuFabric::reference().kernel_variant_digest();
    let (d, p, input) = build().map_err(t_err)?;
    Job::new(kernel, d, p, input)
}

/// The transformer example's block at other sizes (batch, tokens, model width, heads,
/// MLP width), as a job for the CPU reference's kernels (benchmarks use larger ones).
pub fn transformer_job(bsz: usize, t: usize, dm: usize, h: usize, dff: usize) -> Result<Job> {
    let kernel = CpuFabric::reference().kernel_variant_digest();
    let (d, p, input) = transformer_parts(bsz, t, dm, h, dff).map_err(t_err)?;
    Job::new(kernel, d, p, input)
}

fn transformer_parts(
    bsz: usize,
    t: usize,
    dm: usize,
    h: usize,
    dff: usize,
) -> blocktorch::Result<Parts> {
    if h == 0 || !dm.is_multiple_of(h) || t < 5 {
        return Err(blocktorch::TensorError::InvalidArgument {
            op: "transformer example",
            message: "heads must divide the width and there must be at least 5 tokens".into(),
        });
    }
    let dh = dm / h;
    let mut d = InputTensorDescriptor::dense(DType::F32, &[bsz, t, dm], Normalisation::None);
    d.attention_mask = Some(SideTensor {
        shape: vec![1, t],
        data: HostData::U8((0..t).map(|j| (j < t - 4) as u8).collect()),
    });
    d.bias = vec![SideTensor {
        shape: vec![t, t],
        data: HostData::F32(
            (0..t * t)
                .map(|k| -0.05 * ((k / t) as f32 - (k % t) as f32).abs())
                .collect(),
        ),
    }];
    let b = ProgramBuilder::new(&d);
    let x = b.input(InputSlot::Main)?;
    let mask = b.input(InputSlot::Mask)?;
    let bias = b.input(InputSlot::Bias(0))?;
    let ones = |name: &str, seed: u64| -> blocktorch::Result<Val> {
        b.param(name, HostData::F32(uniform_f32(seed, dm, 0.9, 1.1)), &[dm])
    };
    let ln1_w = ones("ln1.weight", 21)?;
    let ln1_b = weight(&b, "ln1.bias", 22, &[dm], 0.05)?;
    let wqkv = weight(&b, "attn.qkv", 23, &[dm, 3 * dm], 1.0 / (dm as f32).sqrt())?;
    let wo = weight(&b, "attn.out", 24, &[dm, dm], 1.0 / (dm as f32).sqrt())?;
    let ln2_w = ones("ln2.weight", 25)?;
    let ln2_b = weight(&b, "ln2.bias", 26, &[dm], 0.05)?;
    let w_up = weight(&b, "mlp.up", 27, &[dm, dff], 1.0 / (dm as f32).sqrt())?;
    let w_down = weight(&b, "mlp.down", 28, &[dff, dm], 1.0 / (dff as f32).sqrt())?;

    let ln1 = c::layer_norm(&b, &x, 1, Some(&ln1_w), Some(&ln1_b), 1e-5)?;
    let qkv = b.exec(&Prim::Matmul, &[&ln1, &wqkv])?;
    let qkv = c::reshape(&b, &qkv, &[bsz, t, 3, h, dh])?;
    let head = |i: usize| -> blocktorch::Result<Val> {
        let p = b.view(
            &qkv,
            View::Slice {
                axis: 2,
                start: i,
                end: i + 1,
                step: 1,
            },
        )?;
        let p = c::reshape(&b, &c::contiguous(&b, &p)?, &[bsz, t, h, dh])?;
        c::contiguous(&b, &c::transpose(&b, &p, 1, 2)?)
    };
    let (q, k, v) = (head(0)?, head(1)?, head(2)?);
    let att = c::attention(
        &b,
        &q,
        &k,
        &v,
        Some(&mask),
        Some(&bias),
        &AttentionOptions {
            scale: None,
            causal: false,
        },
    )?;
    let att = c::reshape(
        &b,
        &c::contiguous(&b, &c::transpose(&b, &att, 1, 2)?)?,
        &[bsz, t, dm],
    )?;
    let x1 = c::binary(&b, BinaryOp::Add, &x, &b.exec(&Prim::Matmul, &[&att, &wo])?)?;
    let ln2 = c::layer_norm(&b, &x1, 1, Some(&ln2_w), Some(&ln2_b), 1e-5)?;
    let up = c::unary(
        &b,
        UnaryOp::GeluErf,
        &b.exec(&Prim::Matmul, &[&ln2, &w_up])?,
    )?;
    let y = c::binary(
        &b,
        BinaryOp::Add,
        &x1,
        &b.exec(&Prim::Matmul, &[&up, &w_down])?,
    )?;
    b.output("y", &y);
    let input = HostData::F32(uniform_f32(29, bsz * t * dm, -1.0, 1.0));
    Ok((d, b.finish(), input))
}

/// A batched matmul chain on `x: [4, 64, 96]`: `y = tanh(x·W1)·W2·W3`, then the batched
/// Gram product `y·xᵀ` ([4, 64, 64]). Output `gram`.
fn matmul_chain() -> blocktorch::Result<Parts> {
    let (bsz, m, k) = (4usize, 64usize, 96usize);
    let d = InputTensorDescriptor::dense(DType::F32, &[bsz, m, k], Normalisation::None);
    let b = ProgramBuilder::new(&d);
    let x = b.input(InputSlot::Main)?;
    let w1 = weight(&b, "w1", 31, &[k, 128], 0.1)?;
    let w2 = weight(&b, "w2", 32, &[128, 64], 0.1)?;
    let w3 = weight(&b, "w3", 33, &[64, k], 0.1)?;
    let y = c::unary(&b, UnaryOp::Tanh, &b.exec(&Prim::Matmul, &[&x, &w1])?)?;
    let y = b.exec(&Prim::Matmul, &[&y, &w2])?;
    let y = b.exec(&Prim::Matmul, &[&y, &w3])?;
    let xt = c::transpose(&b, &x, 1, 2)?;
    let gram = b.exec(&Prim::Matmul, &[&y, &xt])?;
    b.output("gram", &gram);
    Ok((
        d,
        b.finish(),
        HostData::F32(uniform_f32(34, bsz * m * k, -1.0, 1.0)),
    ))
}

/// The labels of the training example: sample `i` has class `(7 i + 3) mod 10`.
pub fn train_step_labels(batch: usize) -> Vec<usize> {
    (0..batch).map(|i| (7 * i + 3) % 10).collect()
}

/// One training step of a 64 → 32 (ReLU) → 10 classifier on 16 u8 samples
/// (`bytes / 255`): the mean cross-entropy `loss` and its gradients `grad_w1`,
/// `grad_b1`, `grad_w2`, `grad_b2`, the backward pass written out as ops.
fn train_step() -> blocktorch::Result<Parts> {
    let (batch, d_in, hidden, classes) = (16usize, 64usize, 32usize, 10usize);
    let d = InputTensorDescriptor::dense(DType::U8, &[batch, d_in], Normalisation::Bytes255);
    let b = ProgramBuilder::new(&d);
    let x = b.input(InputSlot::Main)?;
    let w1 = weight(&b, "w1", 41, &[d_in, hidden], 1.0 / (d_in as f32).sqrt())?;
    let b1 = weight(&b, "b1", 42, &[hidden], 0.1)?;
    let w2 = weight(
        &b,
        "w2",
        43,
        &[hidden, classes],
        1.0 / (hidden as f32).sqrt(),
    )?;
    let b2 = weight(&b, "b2", 44, &[classes], 0.1)?;
    let mut onehot = vec![0.0f32; batch * classes];
    for (i, l) in train_step_labels(batch).into_iter().enumerate() {
        onehot[i * classes + l] = 1.0;
    }
    let y = b.param("labels.onehot", HostData::F32(onehot), &[batch, classes])?;
    // Forward.
    let z1 = c::binary(&b, BinaryOp::Add, &b.exec(&Prim::Matmul, &[&x, &w1])?, &b1)?;
    let h = c::unary(&b, UnaryOp::Relu, &z1)?;
    let logits = c::binary(&b, BinaryOp::Add, &b.exec(&Prim::Matmul, &[&h, &w2])?, &b2)?;
    let lsm = c::log_softmax(&b, &logits, -1)?;
    let nll = c::sum(&b, &c::binary(&b, BinaryOp::Mul, &y, &lsm)?, &[0, 1], false)?;
    let loss = c::binary_scalar(
        &b,
        BinaryOp::Div,
        &c::unary(&b, UnaryOp::Neg, &nll)?,
        batch as f32,
    )?;
    // Backward: dlogits = (softmax − onehot) / batch.
    let p = c::softmax(&b, &logits, -1)?;
    let dlogits = c::binary_scalar(
        &b,
        BinaryOp::Div,
        &c::binary(&b, BinaryOp::Sub, &p, &y)?,
        batch as f32,
    )?;
    let ht = c::transpose(&b, &h, 0, 1)?;
    let grad_w2 = b.exec(&Prim::Matmul, &[&ht, &dlogits])?;
    let grad_b2 = c::sum(&b, &dlogits, &[0], false)?;
    let w2t = c::transpose(&b, &w2, 0, 1)?;
    let dh = b.exec(&Prim::Matmul, &[&dlogits, &w2t])?;
    let pos = c::compare(&b, CompareOp::Gt, &z1, &c::scalar(&b, 0.0)?)?;
    let dz1 = c::select(&b, &pos, &dh, &c::scalar(&b, 0.0)?)?;
    let xt = c::transpose(&b, &x, 0, 1)?;
    let grad_w1 = b.exec(&Prim::Matmul, &[&xt, &dz1])?;
    let grad_b1 = c::sum(&b, &dz1, &[0], false)?;
    b.output("loss", &loss);
    b.output("grad_w1", &grad_w1);
    b.output("grad_b1", &grad_b1);
    b.output("grad_w2", &grad_w2);
    b.output("grad_b2", &grad_b2);
    Ok((d, b.finish(), HostData::U8(seeded_bytes(45, batch * d_in))))
}
