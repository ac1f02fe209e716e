//! Building or encoding a job refuses what the format cannot carry faithfully.

use blocktorch::{DType, HostData};
use tb_job::program::{Const, Output, Program};
use tb_job::{InputSlot, InputTensorDescriptor, Job, JobError, Normalisation, Op, SideTensor};

fn program(consts: Vec<Const>) -> Program {
    Program {
        runtime: blocktorch::RUNTIME_VERSION.into(),
        consts,
        ops: vec![Op {
            node: tb_job::Node::Input(InputSlot::Main),
            args: vec![],
        }],
        outputs: vec![Output {
            name: "x".into(),
            value: 0,
        }],
    }
}

fn job(d: InputTensorDescriptor, consts: Vec<Const>) -> tb_job::Result<Job> {
    let n = d.shape.iter().product();
    Job::new([0; 32], d, program(consts), HostData::F32(vec![0.5; n]))
}

fn dense() -> InputTensorDescriptor {
    InputTensorDescriptor::dense(DType::F32, &[2, 3], Normalisation::None)
}

fn unencodable(r: tb_job::Result<Job>, field: &str) {
    match r {
        Err(JobError::Unencodable { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected Unencodable {{ {field} }}, got {other:?}"),
    }
}

#[test]
fn side_tensors_must_match_their_shape_and_dtype() {
    assert!(job(dense(), vec![]).is_ok());
    let mut d = dense();
    d.bias = vec![SideTensor {
        shape: vec![1],
        data: HostData::U8(vec![0, 0, 0x80, 0x3f]),
    }];
    unencodable(job(d, vec![]), "descriptor bias");
    let mut d = dense();
    d.attention_mask = Some(SideTensor {
        shape: vec![2],
        data: HostData::U8(vec![1, 1, 0]),
    });
    unencodable(job(d, vec![]), "descriptor attention mask");
    let mut d = dense();
    d.attention_mask = Some(SideTensor {
        shape: vec![2],
        data: HostData::U8(vec![1, 2]),
    });
    unencodable(job(d, vec![]), "descriptor attention mask");
    let mut d = dense();
    d.padding_token = Some(u32::MAX);
    unencodable(job(d, vec![]), "descriptor padding token");
}

#[test]
fn constants_must_fit_the_format() {
    let c = |shape: Vec<usize>, n: usize| Const {
        name: "c".into(),
        shape,
        data: HostData::F32(vec![0.0; n]),
    };
    unencodable(job(dense(), vec![c(vec![1 << 32, 0], 0)]), "constant");
    unencodable(job(dense(), vec![c(vec![1 << 40, 1 << 40], 0)]), "constant");
    unencodable(job(dense(), vec![c(vec![2, 2], 3)]), "constant");
    assert!(job(dense(), vec![c(vec![2, 2], 4)]).is_ok());
}
