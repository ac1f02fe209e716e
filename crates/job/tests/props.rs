//! Property tests for the job codec and validation.
//!
//! * no byte string panics `Job::decode` + `validate` (+ a run of what is cheap): random
//!   bytes, random bytes behind a valid header, and valid blobs flipped, overwritten,
//!   inserted into, cut and truncated;
//! * every blob `Job::decode` accepts is canonical: `encode(decode(b)) == b`;
//! * random small programs recorded with `ProgramBuilder` round-trip through the codec,
//!   validate to exactly the dtypes and layouts the builder inferred, and run.
//!
//! `fuzz_decode_job` is the body of the cargo-fuzz target `fuzz/fuzz_targets/decode_job.rs`,
//! so the target's logic also runs on stable in `cargo test`.

use blocktorch::compose::{Backend, View};
use blocktorch::rng::uniform_f32;
use blocktorch::{
    BinaryOp, CompareOp, CpuFabric, DType, Fabric, HostData, Prim, ReduceOp, UnaryOp,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use std::sync::OnceLock;
use tb_job::{
    execute, validate, ExecOptions, InputSlot, InputTensorDescriptor, Job, Normalisation,
    ProgramBuilder, SideTensor, Val,
};
use tb_primitives::mutation::{arb_mutation, mutate};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// The fuzz target's body: `tb_job::fuzzing::decode_job`.

fn fuzz_decode_job(data: &[u8]) {
    tb_job::fuzzing::decode_job(data)
}

// ---------------------------------------------------------------------------
// Seed blobs.

/// A small job touching every section of the format: a u8 input read with strides
/// (column-major), bytes/255, a profile-epoch label, an attention mask, a padding
/// token, a bias array, a constant, every opcode and three outputs.
fn small_job() -> Job {
    let mut d = InputTensorDescriptor::dense(DType::U8, &[2, 3], Normalisation::Bytes255);
    d.strides = vec![1, 2];
    d.profile_epoch = "epoch-7".into();
    d.attention_mask = Some(SideTensor {
        shape: vec![1, 3],
        data: HostData::U8(vec![1, 0, 1]),
    });
    d.padding_token = Some(3);
    d.bias = vec![SideTensor {
        shape: vec![3],
        data: HostData::F32(vec![0.5, -0.5, 0.25]),
    }];
    let b = ProgramBuilder::new(&d);
    let r = (|| -> blocktorch::Result<()> {
        let x = b.input(InputSlot::Main)?;
        let mask = b.input(InputSlot::Mask)?;
        let pad = b.input(InputSlot::Padding)?;
        let bias = b.input(InputSlot::Bias(0))?;
        let w = b.param("w", HostData::F32(uniform_f32(1, 6, -1.0, 1.0)), &[3, 2])?;
        let h = b.exec(&Prim::Matmul, &[&x, &w])?;
        let h = b.exec(&Prim::Unary(UnaryOp::PowScalar(1.5)), &[&h])?;
        let xb = b.exec(&Prim::Binary(BinaryOp::Add), &[&x, &bias])?;
        let m = b.exec(&Prim::Cast(DType::F32), &[&mask])?;
        let gt = b.exec(&Prim::Compare(CompareOp::Gt), &[&xb, &m])?;
        let sel = b.exec(&Prim::Select, &[&gt, &xb, &m])?;
        let t = b.view(&sel, View::Permute(vec![1, 0]))?;
        let s = b.view(
            &t,
            View::Slice {
                axis: 0,
                start: 1,
                end: 3,
                step: 1,
            },
        )?;
        let c = b.exec(&Prim::Copy, &[&s])?;
        let r = b.exec(&Prim::Reduce(ReduceOp::Max), &[&c])?;
        let p = b.exec(&Prim::Cast(DType::F32), &[&pad])?;
        let p = b.view(&p, View::Unsqueeze(0))?;
        let r = b.exec(&Prim::Concat { axis: 0 }, &[&r, &p])?;
        let idx = b.exec(&Prim::Cast(DType::I32), &[&mask])?;
        let g = b.exec(&Prim::Gather, &[&w, &idx])?;
        let g = b.exec(&Prim::IndexAdd { rows: 3 }, &[&idx, &g])?;
        let rb = b.view(&r, View::Reshape(vec![3, 1]))?;
        let rb = b.view(&rb, View::BroadcastTo(vec![3, 2]))?;
        let g = b.exec(&Prim::Binary(BinaryOp::Add), &[&g, &rb])?;
        let ps = b.view(&p, View::Squeeze(0))?;
        let g = b.exec(&Prim::Binary(BinaryOp::Mul), &[&g, &ps])?;
        let g = b.exec(&Prim::Unary(UnaryOp::Tanh), &[&g])?;
        b.output("g", &g);
        b.output("h", &h);
        b.output("r", &r);
        Ok(())
    })();
    r.unwrap();
    let kernel = CpuFabric::reference().kernel_variant_digest();
    Job::new(
        kernel,
        d,
        b.finish(),
        HostData::U8(vec![0, 40, 80, 120, 160, 255]),
    )
    .unwrap()
}

/// Valid blobs to mutate: the small job and the train-step example.
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let train = tb_job::examples::build_example("train-step").unwrap();
        vec![small_job().encode().unwrap(), train.encode().unwrap()]
    })
}

#[test]
fn the_seeds_decode_validate_and_run() {
    for blob in seeds() {
        let job = Job::decode(blob).unwrap();
        assert_eq!(&job.encode().unwrap(), blob);
        let plan = validate(&job).unwrap();
        assert!(plan.total.flops < tb_job::fuzzing::FUZZ_FLOPS_RUN_MAX);
        let run = execute(&job, &CpuFabric::reference(), ExecOptions::default()).unwrap();
        assert_eq!(run.n_ops, job.program.ops.len());
        fuzz_decode_job(blob);
    }
}

// ---------------------------------------------------------------------------
// Mutations.

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..600)) {
        fuzz_decode_job(&bytes);
    }

    /// Random bytes behind the magic and version, so decoding reaches the descriptor.
    #[test]
    fn random_bodies_never_panic(body in vec(any::<u8>(), 0..600)) {
        let mut bytes = b"BTRA\0".to_vec();
        bytes.extend_from_slice(&body);
        fuzz_decode_job(&bytes);
    }

    /// Random bytes as the artifact of the small job, its lengths kept consistent.
    #[test]
    fn random_artifacts_never_panic(body in vec(any::<u8>(), 0..400), keep in any::<Index>()) {
        let job = small_job();
        let blob = &seeds()[0];
        let art = job.program.encode().unwrap();
        let art_at = blob.len() - 6 - art.len();
        // Keep a valid prefix of the artifact (magic, version, runtime, …), then noise.
        let cut = keep.index(art.len() + 1);
        let mut a = art[..cut].to_vec();
        a.extend_from_slice(&body);
        let mut bytes = blob[..art_at].to_vec();
        bytes[37..41].copy_from_slice(&(a.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&a);
        bytes.extend_from_slice(&blob[blob.len() - 6..]);
        fuzz_decode_job(&bytes);
    }

    #[test]
    fn mutated_jobs_never_panic(seed in any::<Index>(), ms in vec(arb_mutation(), 1..4)) {
        let seeds = seeds();
        let mut bytes = seeds[seed.index(seeds.len())].clone();
        for m in &ms {
            mutate(&mut bytes, m);
        }
        fuzz_decode_job(&bytes);
    }
}

// ---------------------------------------------------------------------------
// Random programs.

/// A descriptor: f32 or u8 (bytes/255) input of rank 1..=3, dims 1..=4, row- or
/// column-major; plus the input elements.
fn arb_input() -> impl Strategy<Value = (InputTensorDescriptor, HostData)> {
    (
        vec(1..=4usize, 1..=3),
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(shape, u8_input, column_major, seed)| {
            let (dtype, norm) = if u8_input {
                (DType::U8, Normalisation::Bytes255)
            } else {
                (DType::F32, Normalisation::None)
            };
            let mut d = InputTensorDescriptor::dense(dtype, &shape, norm);
            if column_major {
                let mut acc = 1;
                for (s, dim) in d.strides.iter_mut().zip(&shape) {
                    *s = acc;
                    acc *= dim;
                }
            }
            let n: usize = shape.iter().product();
            let data = uniform_f32(seed, n, -2.0, 2.0);
            let input = if u8_input {
                HostData::U8(data.iter().map(|x| ((x + 2.0) * 60.0) as u8).collect())
            } else {
                HostData::F32(data)
            };
            (d, input)
        })
}

/// One recorded step: `kind` picks the op, `a`, `b`, `c` pick operands and immediates.
type Step = (u8, u8, u8, u8);

/// Constants: up to three f32 tensors of rank 0..=3, dims 1..=4.
fn arb_params() -> impl Strategy<Value = Vec<Vec<usize>>> {
    vec(vec(1..=4usize, 0..=3), 0..=3)
}

/// Applies `step` to the pool; a step the runtime's rules refuse is skipped.
fn apply(b: &ProgramBuilder, pool: &[Val], step: Step) -> blocktorch::Result<Val> {
    let (kind, a, bb, c) = step;
    let pick = |i: u8| &pool[i as usize % pool.len()];
    let (x, y) = (pick(a), pick(bb));
    let rank = x.layout.rank();
    match kind % 16 {
        0 => {
            let op = UnaryOp::ALL[c as usize % UnaryOp::ALL.len()];
            b.exec(&Prim::Unary(op), &[x])
        }
        1 => b.exec(&Prim::Binary(BinaryOp::ALL[c as usize % 6]), &[x, y]),
        2 => b.exec(&Prim::Compare(CompareOp::ALL[c as usize % 6]), &[x, y]),
        3 => b.exec(&Prim::Select, &[pick(c), x, y]),
        4 => b.exec(&Prim::Reduce(ReduceOp::ALL[c as usize % 3]), &[x]),
        5 => b.exec(&Prim::Matmul, &[x, y]),
        6 => b.view(x, View::Permute((0..rank).rev().collect())),
        7 => {
            let x = if x.layout.is_contiguous() {
                x.clone()
            } else {
                b.exec(&Prim::Copy, &[x])?
            };
            b.view(&x, View::Reshape(vec![x.layout.numel()]))
        }
        8 => b.view(x, View::Unsqueeze(c as usize % (rank + 1))),
        9 => b.view(x, View::Squeeze(c as usize % rank.max(1))),
        10 => b.view(
            x,
            View::Slice {
                axis: c as usize % rank.max(1),
                start: (c as usize >> 4) % 2,
                end: 4,
                step: 1 + (c as usize >> 5) % 2,
            },
        ),
        11 => {
            let mut shape = vec![2];
            shape.extend_from_slice(x.layout.shape());
            b.view(x, View::BroadcastTo(shape))
        }
        12 => b.exec(&Prim::Cast(DType::from_tag(1 + c % 4).unwrap()), &[x]),
        13 => b.exec(&Prim::Copy, &[x]),
        14 => b.exec(
            &Prim::Concat {
                axis: c as usize % rank.max(1),
            },
            &[x, y],
        ),
        _ => {
            let t = b.view(y, View::Permute((0..y.layout.rank()).rev().collect()))?;
            b.exec(&Prim::Matmul, &[x, &t])
        }
    }
}

/// Records a random program; returns the job and every value the builder made.
fn random_job(
    (d, input): (InputTensorDescriptor, HostData),
    params: Vec<Vec<usize>>,
    steps: Vec<Step>,
    outputs: Vec<Index>,
) -> (Job, Vec<Val>) {
    let b = ProgramBuilder::new(&d);
    let mut pool = vec![b.input(InputSlot::Main).unwrap()];
    for (i, shape) in params.iter().enumerate() {
        let n = shape.iter().product();
        let data = HostData::F32(uniform_f32(i as u64, n, -1.0, 1.0));
        pool.push(b.param(&format!("p{i}"), data, shape).unwrap());
    }
    for step in steps {
        if let Ok(v) = apply(&b, &pool, step) {
            pool.push(v);
        }
    }
    b.output("last", pool.last().unwrap());
    for (i, o) in outputs.iter().enumerate() {
        b.output(&format!("out{i}"), o.get(&pool));
    }
    let kernel = CpuFabric::reference().kernel_variant_digest();
    let job = Job::new(kernel, d, b.finish(), input).unwrap();
    (job, pool)
}

/// A builder value's id after `finish`: constants keep theirs, op `i` becomes
/// `constants + i` (bit 31 marks ops while recording).
fn final_id(v: &Val, consts: usize) -> usize {
    const OP_BIT: u32 = 1 << 31;
    if v.id & OP_BIT != 0 {
        consts + (v.id & !OP_BIT) as usize
    } else {
        v.id as usize
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn random_programs_round_trip_validate_and_run(
        input in arb_input(),
        params in arb_params(),
        steps in vec(any::<Step>(), 1..16),
        outputs in vec(any::<Index>(), 0..3),
    ) {
        let (job, pool) = random_job(input, params, steps, outputs);
        let blob = job.encode().unwrap();
        let back = Job::decode(&blob).unwrap();
        prop_assert_eq!(&back, &job);
        prop_assert_eq!(back.encode().unwrap(), blob.clone());
        // Validation infers exactly what the builder inferred, value by value.
        let plan = validate(&back).unwrap();
        let nc = job.program.consts.len();
        prop_assert_eq!(plan.values.len(), nc + job.program.ops.len());
        for v in &pool {
            let info = &plan.values[final_id(v, nc)];
            prop_assert_eq!(info.dtype, v.dtype);
            prop_assert_eq!(&info.layout, &v.layout);
        }
        // A validated program runs, with the validated output shapes.
        let run = execute(&back, &CpuFabric::reference(), ExecOptions::default()).unwrap();
        prop_assert_eq!(run.op_digests.len(), job.program.ops.len());
        for (o, decl) in run.outputs.iter().zip(&job.program.outputs) {
            prop_assert_eq!(&o.shape[..], plan.values[decl.value as usize].layout.shape());
        }
        fuzz_decode_job(&blob);
    }
}
