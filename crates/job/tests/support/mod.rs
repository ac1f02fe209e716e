//! What several of tb-job's test binaries share: the spec's worked example job and hex.
#![allow(dead_code)]

use blocktorch::{DType, HostData, Prim};
use tb_job::program::{Const, Output};
use tb_job::{InputSlot, InputTensorDescriptor, Job, Node, Normalisation, Op, Program};

/// Lowercase hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The worked example of `docs/spec/job-format-v0.md` §12 (inline, version 0): `y = w ·
/// x` with `w = [[1, 0], [0, 2]]` and the 2×2 f32 input `[1, 2, 3, 4]`, kernel digest
/// `0xAB…`.
pub fn worked_example() -> Job {
    let d = InputTensorDescriptor::dense(DType::F32, &[2, 2], Normalisation::None);
    let program = Program {
        runtime: blocktorch::RUNTIME_VERSION.into(),
        consts: vec![Const {
            name: "w".into(),
            shape: vec![2, 2],
            data: HostData::F32(vec![1.0, 0.0, 0.0, 2.0]),
        }],
        ops: vec![
            Op {
                node: Node::Input(InputSlot::Main),
                args: vec![],
            },
            Op {
                node: Node::Prim(Prim::Matmul),
                args: vec![1, 0],
            },
        ],
        outputs: vec![Output {
            name: "y".into(),
            value: 2,
        }],
    };
    let input = HostData::F32(vec![1.0, 2.0, 3.0, 4.0]);
    Job::new([0xAB; 32], d, program, input).unwrap()
}
