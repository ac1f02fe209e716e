//! Malformed job blobs: each is a valid small job changed by one precise mutation, and
//! each is refused with the expected error — variant, field and byte offset — and a
//! message that names both (`docs/spec/job-format-v0.md`).
//!
//! The base job exercises every section of the format. Its layout, byte by byte (the
//! offsets the cases below name):
//!
//! ```text
//!   0 magic "BTRA"        4 version 0          5 kernel digest (32)
//!  37 artifact length    41 input length
//!  45 dtype u8 (2)       46 rank 2            47 dim 2      51 dim 3
//!  55 stride 3           59 stride 1          63 normalisation 1 (bytes/255)
//!  64 epoch length 2     65 "e0"
//!  67 mask flag 1        68 mask rank 2       69 dim 1      73 dim 3     77 mask 1 1 0
//!  80 padding flag 1     81 padding token 7
//!  85 bias count 1       86 bias rank 1       87 dim 3      91 bias f32 × 3
//! 103 "BTPG"            107 artifact version 108 runtime length 21   109 runtime
//! 130 constant count 1  134 name length 1    135 "w"       136 dtype f32 (1)
//! 137 rank 2            138 dim 3            142 dim 2     146 data f32 × 6
//! 170 op count 6
//! 174 op 0 input main:      174 opcode 0x01, 175 slot 0, 176 index 0, 177 argc 0
//! 178 op 1 matmul(1, 0):    178 opcode 0x15, 179 argc 2, 180 arg 1, 184 arg 0
//! 188 op 2 unary tanh(2):   188 opcode 0x10, 189 code 7, 190 argc 1, 191 arg 2
//! 195 op 3 input bias 0:    195 opcode 0x01, 196 slot 3, 197 index 0, 198 argc 0
//! 199 op 4 pow 2.0 (4):     199 opcode 0x10, 200 code 14, 201 exponent, 205 argc 1, 206 arg 4
//! 210 op 5 reshape [3,1]:   210 opcode 0x20, 211 rank 2, 212 dim 3, 216 dim 1, 220 argc 1, 221 arg 5
//! 225 output count 2    229 "y" (length, name) 231 value 3     235 "z" 237 value 6
//! 241 input bytes × 6   247 end
//! ```

mod support;

use blocktorch::compose::View;
use blocktorch::{CpuFabric, DType, Fabric, HostData, Prim, TensorError, UnaryOp};
use sha2::{Digest as _, Sha256};
use support::hex;
use tb_job::format::{JOB_BLOB_BYTES_MAX, PROFILE_EPOCH_BYTES_MAX};
use tb_job::program::{
    Const, Output, CONSTS_MAX, NAME_BYTES_MAX, OPS_MAX, OP_ARGS_MAX, OUTPUTS_MAX,
    PROGRAM_BYTES_MAX, PROGRAM_FLOPS_MAX, RUNTIME_BYTES_MAX,
};
use tb_job::{
    validate, InputSlot, InputTensorDescriptor, Job, JobError, Node, Normalisation, Op, Program,
    SideTensor,
};

const ARTIFACT_LEN_AT: usize = 37;
const INPUT_LEN_AT: usize = 41;
const ARTIFACT_AT: usize = 103;
const INPUT_AT: usize = 241;
const BLOB_LEN: usize = 247;

fn base_job() -> Job {
    let mut d = InputTensorDescriptor::dense(DType::U8, &[2, 3], Normalisation::Bytes255);
    d.profile_epoch = "e0".into();
    d.attention_mask = Some(SideTensor {
        shape: vec![1, 3],
        data: HostData::U8(vec![1, 1, 0]),
    });
    d.padding_token = Some(7);
    d.bias = vec![SideTensor {
        shape: vec![3],
        data: HostData::F32(vec![0.5, -0.5, 0.25]),
    }];
    let op = |node: Node, args: &[u32]| Op {
        node,
        args: args.to_vec(),
    };
    let program = Program {
        runtime: blocktorch::RUNTIME_VERSION.into(),
        consts: vec![Const {
            name: "w".into(),
            shape: vec![3, 2],
            data: HostData::F32(vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
        }],
        ops: vec![
            op(Node::Input(InputSlot::Main), &[]),
            op(Node::Prim(Prim::Matmul), &[1, 0]),
            op(Node::Prim(Prim::Unary(UnaryOp::Tanh)), &[2]),
            op(Node::Input(InputSlot::Bias(0)), &[]),
            op(Node::Prim(Prim::Unary(UnaryOp::PowScalar(2.0))), &[4]),
            op(Node::View(View::Reshape(vec![3, 1])), &[5]),
        ],
        outputs: vec![
            Output {
                name: "y".into(),
                value: 3,
            },
            Output {
                name: "z".into(),
                value: 6,
            },
        ],
    };
    let kernel = CpuFabric::reference().kernel_variant_digest();
    Job::new(
        kernel,
        d,
        program,
        HostData::U8(vec![0, 51, 102, 153, 204, 255]),
    )
    .unwrap()
}

fn base() -> Vec<u8> {
    base_job().encode().unwrap()
}

/// The base blob with `f` applied.
fn mutated(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = base();
    f(&mut b);
    b
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Replaces `remove` bytes at `at` with `insert`, keeping the artifact length right when
/// the change is inside the artifact.
fn splice(b: &mut Vec<u8>, at: usize, remove: usize, insert: &[u8]) {
    b.splice(at..at + remove, insert.iter().copied());
    let art_len = get_u32(b, ARTIFACT_LEN_AT) as usize;
    if (ARTIFACT_AT..ARTIFACT_AT + art_len).contains(&at) {
        let new = art_len + insert.len() - remove;
        put_u32(b, ARTIFACT_LEN_AT, new as u32);
    }
}

fn field_offset(e: &JobError) -> Option<(&'static str, usize)> {
    match e {
        JobError::Truncated { field, offset, .. }
        | JobError::BadMagic { field, offset, .. }
        | JobError::UnknownTag { field, offset, .. }
        | JobError::TooLarge { field, offset, .. }
        | JobError::Overflow { field, offset }
        | JobError::LengthMismatch { field, offset, .. }
        | JobError::Invalid { field, offset, .. } => Some((field, *offset)),
        JobError::TrailingBytes { offset, .. } => Some(("trailing", *offset)),
        _ => None,
    }
}

/// `blob` fails to decode with exactly `expected`, and the message names the field and
/// the byte offset.
#[track_caller]
fn check(blob: &[u8], expected: JobError) {
    let got = Job::decode(blob).expect_err("the blob must be refused");
    assert_eq!(got, expected);
    let msg = got.to_string();
    let (field, offset) = field_offset(&got).expect("a decode error names field and offset");
    assert!(msg.contains(field), "{msg:?} names {field:?}");
    assert!(
        msg.contains(&format!("byte {offset}")),
        "{msg:?} names byte {offset}"
    );
}

/// `blob` decodes but fails validation with exactly `expected`.
#[track_caller]
fn check_invalid(blob: &[u8], expected: JobError) {
    let job = Job::decode(blob).expect("the blob decodes");
    assert_eq!(
        validate(&job).expect_err("validation must refuse it"),
        expected
    );
}

fn truncated(field: &'static str, offset: usize, needed: usize, available: usize) -> JobError {
    JobError::Truncated {
        field,
        offset,
        needed,
        available,
    }
}

fn tag(field: &'static str, offset: usize, tag: u64) -> JobError {
    JobError::UnknownTag { field, offset, tag }
}

fn too_large(field: &'static str, offset: usize, value: u64, max: usize) -> JobError {
    JobError::TooLarge {
        field,
        offset,
        value,
        max: max as u64,
    }
}

fn invalid(field: &'static str, offset: usize, message: &str) -> JobError {
    JobError::Invalid {
        field,
        offset,
        message: message.into(),
    }
}

#[test]
fn the_base_job_has_the_documented_layout_and_runs() {
    let b = base();
    assert_eq!(b.len(), BLOB_LEN);
    assert_eq!(&b[0..4], b"BTRA");
    assert_eq!(
        get_u32(&b, ARTIFACT_LEN_AT) as usize,
        INPUT_AT - ARTIFACT_AT
    );
    assert_eq!(get_u32(&b, INPUT_LEN_AT), 6);
    assert_eq!(&b[ARTIFACT_AT..ARTIFACT_AT + 4], b"BTPG");
    assert_eq!(&b[109..130], blocktorch::RUNTIME_VERSION.as_bytes());
    assert_eq!(
        (b[174], b[178], b[188], b[189], b[200], b[210]),
        (0x01, 0x15, 0x10, 7, 14, 0x20)
    );
    assert_eq!((b[230], b[236]), (b'y', b'z'));
    assert_eq!(&b[INPUT_AT..], &[0, 51, 102, 153, 204, 255]);
    let job = Job::decode(&b).unwrap();
    let plan = validate(&job).unwrap();
    assert_eq!(plan.values[3].layout.shape(), &[2, 2]);
    assert_eq!(plan.values[6].layout.shape(), &[3, 1]);
    let run = tb_job::execute(&job, &CpuFabric::reference(), Default::default()).unwrap();
    assert_eq!(run.n_ops, 6);
    assert_eq!(run.outputs.len(), 2);
    // The spec's rules, recomputed from their description (§10): several outputs
    // combine under "BTOUT0"; the trace root is the domain-separated Merkle root.
    let mut h = Sha256::new();
    h.update(b"BTOUT0");
    h.update(2u32.to_le_bytes());
    h.update(run.outputs[0].digest);
    h.update(run.outputs[1].digest);
    assert_eq!(run.output_digest, <[u8; 32]>::from(h.finalize()));
    assert_eq!(run.outputs[0].digest, run.op_digests[2]);
    assert_eq!(run.outputs[1].digest, run.op_digests[5]);
    // Every other op's leaf: BLAKE3 over "TB/job/leaf/v1" and the bytes the SHA-256
    // digest hashes, or 32 zero bytes for a derived op (a view, or a cheap element-wise
    // op with one reader).
    let nc = job.program.consts.len() as u32;
    let all: Vec<u32> = (nc..nc + run.n_ops as u32).collect();
    let values = tb_job::replay_values(&job, &CpuFabric::reference(), &all).unwrap();
    for (i, (shape, data)) in values.iter().enumerate() {
        if i == 2 || i == 5 {
            continue;
        }
        let trace = tb_job::leaves::TracePlan::of(&job.program, &validate(&job).unwrap());
        let expected = match trace.kinds[i] {
            tb_job::leaves::LeafKind::Derived => [0; 32],
            _ => {
                let mut h = blake3::Hasher::new();
                h.update(b"TB/job/leaf/v1");
                h.update(&blocktorch::digest::digest_header(data.dtype(), shape).unwrap());
                match data {
                    HostData::F32(v) => v.iter().for_each(|x| {
                        h.update(&blocktorch::canonical_f32_bits(*x).to_le_bytes());
                    }),
                    HostData::U8(v) => {
                        h.update(v);
                    }
                    other => panic!("op {i}: no {:?} in the base job", other.dtype()),
                }
                *h.finalize().as_bytes()
            }
        };
        assert_eq!(run.op_digests[i], expected, "op {i}'s leaf");
    }
    assert_eq!(spec_trace_root(&run.op_digests), run.trace_root.0);
}

/// The trace root as `docs/spec/job-format-v0.md` §10 describes it.
fn spec_trace_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    let h = |x: &[u8]| tb_primitives::blake3_id(b"TB/job/trace/v1", x).0;
    let mut level: Vec<[u8; 32]> = leaves
        .iter()
        .map(|l| h(&[&[0u8][..], l].concat()))
        .collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| match p {
                [l, r] => h(&[&[1u8][..], l, r].concat()),
                [one] => *one,
                _ => unreachable!(),
            })
            .collect();
    }
    let count = (leaves.len() as u64).to_le_bytes();
    h(&[&[2u8][..], &count, &level[0]].concat())
}

#[test]
fn header() {
    check(
        &mutated(|b| b[0] = b'X'),
        JobError::BadMagic {
            field: "magic",
            offset: 0,
            expected: *b"BTRA",
            found: *b"XTRA",
        },
    );
    check(&mutated(|b| b[4] = 2), tag("version", 4, 2));
    // Truncation inside each header field.
    check(&base()[..0], truncated("magic", 0, 4, 0));
    check(&base()[..2], truncated("magic", 0, 4, 2));
    check(&base()[..4], truncated("version", 4, 1, 0));
    check(&base()[..20], truncated("kernel digest", 5, 32, 15));
    check(&base()[..39], truncated("artifact length", 37, 4, 2));
    check(&base()[..44], truncated("input length", 41, 4, 3));
    check(&base()[..45], truncated("descriptor dtype", 45, 1, 0));
    // A blob above the limit is refused before anything is read.
    let huge = vec![0u8; JOB_BLOB_BYTES_MAX + 1];
    check(
        &huge,
        too_large("blob", 0, huge.len() as u64, JOB_BLOB_BYTES_MAX),
    );
}

#[test]
fn descriptor() {
    // Truncation inside each descriptor field.
    check(&base()[..46], truncated("descriptor shape", 46, 1, 0));
    check(&base()[..49], truncated("descriptor shape", 47, 4, 2));
    check(&base()[..57], truncated("descriptor stride", 55, 4, 2));
    check(
        &base()[..63],
        truncated("descriptor normalisation", 63, 1, 0),
    );
    check(
        &base()[..64],
        truncated("descriptor profile epoch", 64, 1, 0),
    );
    check(
        &base()[..66],
        truncated("descriptor profile epoch", 65, 2, 1),
    );
    check(
        &base()[..67],
        truncated("descriptor attention-mask flag", 67, 1, 0),
    );
    check(
        &base()[..70],
        truncated("descriptor attention-mask shape", 69, 4, 1),
    );
    check(
        &base()[..78],
        truncated("descriptor attention mask", 77, 3, 1),
    );
    check(
        &base()[..80],
        truncated("descriptor padding flag", 80, 1, 0),
    );
    check(
        &base()[..83],
        truncated("descriptor padding token", 81, 4, 2),
    );
    check(&base()[..85], truncated("descriptor bias count", 85, 1, 0));
    check(&base()[..88], truncated("descriptor bias shape", 87, 4, 1));
    check(&base()[..95], truncated("descriptor bias", 91, 12, 4));

    // Tags.
    check(&mutated(|b| b[45] = 0), tag("descriptor dtype", 45, 0));
    check(&mutated(|b| b[45] = 5), tag("descriptor dtype", 45, 5));
    check(
        &mutated(|b| b[63] = 2),
        tag("descriptor normalisation", 63, 2),
    );
    check(
        &mutated(|b| b[67] = 2),
        tag("descriptor attention-mask flag", 67, 2),
    );
    check(
        &mutated(|b| b[80] = 2),
        tag("descriptor padding flag", 80, 2),
    );
    // bytes/255 is for u8 input only: the same blob with an f32 dtype.
    check(
        &mutated(|b| b[45] = DType::F32.tag()),
        invalid(
            "descriptor normalisation",
            63,
            "bytes/255 needs u8 input, the dtype is F32",
        ),
    );

    // Ranks, dims and counts.
    check(
        &mutated(|b| b[46] = 9),
        too_large("descriptor shape", 46, 9, blocktorch::RANK_MAX),
    );
    // Rank 3 of u32::MAX dims: the product overflows 64 bits at the third dim.
    let mut dims = vec![3u8];
    dims.extend([0xFF; 12]);
    check(
        &mutated(|b| splice(b, 46, 9, &dims)),
        JobError::Overflow {
            field: "descriptor shape",
            offset: 46,
        },
    );
    // [65536, 65536] does not overflow but is above ELEMENTS_MAX.
    check(
        &mutated(|b| {
            put_u32(b, 47, 65536);
            put_u32(b, 51, 65536);
        }),
        too_large("descriptor shape", 46, 1 << 32, blocktorch::ELEMENTS_MAX),
    );
    check(
        &mutated(|b| b[68] = 9),
        too_large(
            "descriptor attention-mask shape",
            68,
            9,
            blocktorch::RANK_MAX,
        ),
    );
    check(
        &mutated(|b| b[85] = 9),
        too_large("descriptor bias count", 85, 9, 8),
    );
    check(
        &mutated(|b| b[86] = 9),
        too_large("descriptor bias shape", 86, 9, 8),
    );

    // The profile-epoch label: too long (checked before its bytes), not UTF-8.
    check(
        &mutated(|b| b[64] = (PROFILE_EPOCH_BYTES_MAX + 1) as u8),
        too_large("descriptor profile epoch", 64, 65, PROFILE_EPOCH_BYTES_MAX),
    );
    check(
        &mutated(|b| b[66] = 0xFF),
        invalid("descriptor profile epoch", 65, "not UTF-8"),
    );

    // Mask values are 0 or 1: the offset is the bad element's.
    check(
        &mutated(|b| b[77] = 2),
        invalid(
            "descriptor attention mask",
            77,
            "mask values are 0 or 1, found 2",
        ),
    );
    check(
        &mutated(|b| b[79] = 2),
        invalid(
            "descriptor attention mask",
            79,
            "mask values are 0 or 1, found 2",
        ),
    );
}

#[test]
fn lengths_and_input() {
    // The header's input length disagrees with the descriptor.
    check(
        &mutated(|b| put_u32(b, INPUT_LEN_AT, 7)),
        JobError::LengthMismatch {
            field: "input length",
            offset: INPUT_LEN_AT,
            declared: 7,
            actual: 6,
        },
    );
    // A stride of 4 for axis 0 makes the descriptor need 1 + 1·4 + 2·1 = 7 elements.
    check(
        &mutated(|b| put_u32(b, 55, 4)),
        JobError::LengthMismatch {
            field: "input length",
            offset: INPUT_LEN_AT,
            declared: 6,
            actual: 7,
        },
    );
    // f32 input [2³¹ − 1, 1] with stride u32::MAX on axis 0: the element count fits, the
    // byte count (× 4) overflows 64 bits.
    check(
        &mutated(|b| {
            b[45] = DType::F32.tag();
            b[63] = 0;
            put_u32(b, 47, (1 << 31) - 1);
            put_u32(b, 51, 1);
            put_u32(b, 55, u32::MAX);
        }),
        JobError::Overflow {
            field: "descriptor strides",
            offset: 45,
        },
    );
    // Strides that reach far past the 6 bytes.
    check(
        &mutated(|b| {
            put_u32(b, 47, 3);
            put_u32(b, 55, u32::MAX);
            put_u32(b, 59, u32::MAX);
        }),
        JobError::LengthMismatch {
            field: "input length",
            offset: INPUT_LEN_AT,
            declared: 6,
            actual: (2 * u32::MAX as u64 + 2 * u32::MAX as u64 + 1),
        },
    );
    // Truncated inside the input, and a trailing byte.
    check(&base()[..BLOB_LEN - 1], truncated("input", INPUT_AT, 6, 5));
    check(
        &mutated(|b| b.push(0)),
        JobError::TrailingBytes {
            offset: BLOB_LEN,
            count: 1,
        },
    );
}

#[test]
fn artifact_framing() {
    // The artifact length points past the end of the blob.
    check(
        &mutated(|b| put_u32(b, ARTIFACT_LEN_AT, 1000)),
        truncated("artifact", ARTIFACT_AT, 1000, BLOB_LEN - ARTIFACT_AT),
    );
    // Cutting the blob inside the artifact is caught by the artifact's length first.
    check(&base()[..150], truncated("artifact", ARTIFACT_AT, 138, 47));
    // An artifact length that ends inside the artifact: the program is truncated there
    // (the constant's second dim at 142 has 1 byte of the artifact left).
    check(
        &mutated(|b| put_u32(b, ARTIFACT_LEN_AT, 40)),
        truncated("constant shape", 142, 4, 1),
    );
    check(
        &mutated(|b| put_u32(b, ARTIFACT_LEN_AT, 2)),
        truncated("artifact magic", ARTIFACT_AT, 4, 2),
    );
    // An artifact length one past the artifact: the program has a trailing byte, the
    // first input byte.
    check(
        &mutated(|b| put_u32(b, ARTIFACT_LEN_AT, 139)),
        JobError::TrailingBytes {
            offset: INPUT_AT,
            count: 1,
        },
    );
    check(
        &mutated(|b| b[105] = b'X'),
        JobError::BadMagic {
            field: "artifact magic",
            offset: ARTIFACT_AT,
            expected: *b"BTPG",
            found: *b"BTXG",
        },
    );
    check(&mutated(|b| b[107] = 1), tag("artifact version", 107, 1));
    check(
        &mutated(|b| b[108] = (RUNTIME_BYTES_MAX + 1) as u8),
        too_large("artifact runtime", 108, 65, RUNTIME_BYTES_MAX),
    );
}

/// Truncates the artifact (and the blob) at absolute offset `at`.
fn artifact_cut_at(at: usize) -> Vec<u8> {
    mutated(|b| {
        b.truncate(at);
        put_u32(b, ARTIFACT_LEN_AT, (at - ARTIFACT_AT) as u32);
        put_u32(b, INPUT_LEN_AT, 6);
        b.extend([0, 51, 102, 153, 204, 255]);
    })
}

#[test]
fn artifact_truncation() {
    check(
        &artifact_cut_at(107),
        truncated("artifact version", 107, 1, 0),
    );
    check(
        &artifact_cut_at(108),
        truncated("artifact runtime", 108, 1, 0),
    );
    check(
        &artifact_cut_at(120),
        truncated("artifact runtime", 109, 21, 11),
    );
    check(
        &artifact_cut_at(132),
        truncated("constant count", 130, 4, 2),
    );
    check(&artifact_cut_at(134), truncated("constant name", 134, 1, 0));
    check(
        &artifact_cut_at(136),
        truncated("constant dtype", 136, 1, 0),
    );
    check(
        &artifact_cut_at(137),
        truncated("constant shape", 137, 1, 0),
    );
    check(
        &artifact_cut_at(160),
        truncated("constant data", 146, 24, 14),
    );
    check(&artifact_cut_at(172), truncated("op count", 170, 4, 2));
    check(&artifact_cut_at(174), truncated("opcode", 174, 1, 0));
    check(&artifact_cut_at(175), truncated("input slot", 175, 1, 0));
    check(
        &artifact_cut_at(176),
        truncated("input slot index", 176, 1, 0),
    );
    check(
        &artifact_cut_at(177),
        truncated("op argument count", 177, 1, 0),
    );
    check(&artifact_cut_at(182), truncated("op argument", 180, 4, 2));
    check(&artifact_cut_at(189), truncated("unary op", 189, 1, 0));
    check(&artifact_cut_at(203), truncated("pow exponent", 201, 4, 2));
    check(&artifact_cut_at(213), truncated("reshape shape", 212, 4, 1));
    check(&artifact_cut_at(227), truncated("output count", 225, 4, 2));
    check(&artifact_cut_at(229), truncated("output name", 229, 1, 0));
    check(&artifact_cut_at(230), truncated("output name", 230, 1, 0));
    check(&artifact_cut_at(233), truncated("output value", 231, 4, 2));
}

#[test]
fn artifact_fields() {
    // Counts above their limits (checked before anything is allocated or read).
    let count = |at: usize, v: usize| mutated(move |b| put_u32(b, at, v as u32));
    check(
        &count(130, CONSTS_MAX + 1),
        too_large("constant count", 130, 4097, CONSTS_MAX),
    );
    check(
        &count(170, OPS_MAX + 1),
        too_large("op count", 170, 65_537, OPS_MAX),
    );
    check(
        &count(225, OUTPUTS_MAX + 1),
        too_large("output count", 225, 257, OUTPUTS_MAX),
    );
    check(
        &count(130, u32::MAX as usize),
        too_large("constant count", 130, u32::MAX as u64, CONSTS_MAX),
    );
    check(
        &mutated(|b| b[179] = (OP_ARGS_MAX + 1) as u8),
        too_large("op argument count", 179, 17, OP_ARGS_MAX),
    );

    // Constants: names, dtype, rank.
    check(
        &mutated(|b| b[135] = 0xFF),
        invalid("constant name", 135, "not UTF-8"),
    );
    check(
        &mutated(|b| b[134] = (NAME_BYTES_MAX + 1) as u8),
        too_large("constant name", 134, 65, NAME_BYTES_MAX),
    );
    // A real 65-byte name, not just its length byte.
    check(
        &mutated(|b| splice(b, 134, 2, &[&[65u8][..], &[b'n'; 65]].concat())),
        too_large("constant name", 134, 65, NAME_BYTES_MAX),
    );
    check(&mutated(|b| b[136] = 9), tag("constant dtype", 136, 9));
    check(
        &mutated(|b| b[137] = 9),
        too_large("constant shape", 137, 9, blocktorch::RANK_MAX),
    );

    // Ops: opcodes and their immediates.
    check(&mutated(|b| b[174] = 0x02), tag("opcode", 174, 2));
    check(&mutated(|b| b[174] = 0xFF), tag("opcode", 174, 0xFF));
    check(&mutated(|b| b[175] = 4), tag("input slot", 175, 4));
    check(&mutated(|b| b[189] = 15), tag("unary op", 189, 15));
    check(&mutated(|b| b[189] = 0xFF), tag("unary op", 189, 0xFF));
    // Another opcode before the tanh's code byte 7: out of range for each table.
    check(&mutated(|b| b[188] = 0x14), tag("reduce op", 189, 7));
    check(&mutated(|b| b[188] = 0x11), tag("binary op", 189, 7));
    check(&mutated(|b| b[188] = 0x12), tag("compare op", 189, 7));
    check(&mutated(|b| b[188] = 0x19), tag("cast dtype", 189, 7));
    check(
        &mutated(|b| b[211] = 9),
        too_large("reshape shape", 211, 9, blocktorch::RANK_MAX),
    );

    // Outputs.
    check(
        &mutated(|b| b[230] = 0xFF),
        invalid("output name", 230, "not UTF-8"),
    );
    check(
        &mutated(|b| b[229] = (NAME_BYTES_MAX + 1) as u8),
        too_large("output name", 229, 65, NAME_BYTES_MAX),
    );
}

#[test]
fn validation() {
    // Wrong runtime string ("…sem1" → "…sem2").
    check_invalid(
        &mutated(|b| b[129] += 1),
        JobError::UnsupportedRuntime {
            declared: "blocktorch-0.2.0+sem2".into(),
            supported: blocktorch::RUNTIME_VERSION,
        },
    );
    // Op 1 (matmul) reads value 3, which op 2 defines: a forward reference.
    check_invalid(
        &mutated(|b| put_u32(b, 180, 3)),
        JobError::BadReference {
            op: 1,
            arg: 0,
            value: 3,
            defined: 2,
        },
    );
    // Op 1 reads itself (value 2).
    check_invalid(
        &mutated(|b| put_u32(b, 184, 2)),
        JobError::BadReference {
            op: 1,
            arg: 1,
            value: 2,
            defined: 2,
        },
    );
    // Wrong arity: tanh given a second argument (value 0).
    check_invalid(
        &mutated(|b| {
            b[190] = 2;
            splice(b, 195, 0, &[0, 0, 0, 0]);
        }),
        JobError::Op {
            op: 2,
            name: "unary Tanh".into(),
            source: TensorError::InvalidArgument {
                op: "unary",
                message: "expected 1 inputs, got 2".into(),
            },
        },
    );
    // A view with no argument.
    check_invalid(
        &mutated(|b| {
            b[220] = 0;
            splice(b, 221, 4, &[]);
        }),
        JobError::Op {
            op: 5,
            name: "view reshape([3, 1])".into(),
            source: TensorError::InvalidArgument {
                op: "program",
                message: "takes 1 arguments, has 0".into(),
            },
        },
    );
    // The constant w becomes [2, 3] (same data): x [2, 3] · w [2, 3] does not fit.
    check_invalid(
        &mutated(|b| {
            put_u32(b, 138, 2);
            put_u32(b, 142, 3);
        }),
        JobError::Op {
            op: 1,
            name: "matmul".into(),
            source: TensorError::ShapeMismatch {
                op: "matmul",
                lhs: vec![2, 3],
                rhs: vec![2, 3],
            },
        },
    );
    // A dtype rule: the main input as raw u8 (normalisation 0) into matmul.
    check_invalid(
        &mutated(|b| b[63] = 0),
        JobError::Op {
            op: 1,
            name: "matmul".into(),
            source: TensorError::DTypeMismatch {
                op: "matmul",
                expected: DType::F32,
                got: DType::U8,
            },
        },
    );
    // A missing input slot: op 3 reads bias array 1, which the descriptor lacks.
    check_invalid(
        &mutated(|b| b[197] = 1),
        JobError::Op {
            op: 3,
            name: "input Bias(1)".into(),
            source: TensorError::InvalidArgument {
                op: "input",
                message: "the descriptor has no bias array 1".into(),
            },
        },
    );
    // A reshape to the wrong element count.
    check_invalid(
        &mutated(|b| put_u32(b, 212, 4)),
        JobError::Op {
            op: 5,
            name: "view reshape([4, 1])".into(),
            source: TensorError::InvalidReshape {
                from: vec![3],
                to: vec![4, 1],
            },
        },
    );
    // Output "z" refers to value 7; values are 0..=6.
    check_invalid(
        &mutated(|b| put_u32(b, 237, 7)),
        JobError::BadOutput {
            output: 1,
            name: "z".into(),
            value: 7,
            defined: 7,
        },
    );
    // No outputs at all.
    check_invalid(
        &mutated(|b| {
            put_u32(b, 225, 0);
            splice(b, 229, 12, &[]);
        }),
        JobError::NoOutputs,
    );
}

/// A job whose only data is a 1×1 constant: `b = broadcast(c, [2, 2])`, then `extra`
/// copies of `b` and `matmul(b, b)`. Every shape it computes comes from the broadcast,
/// so patching the broadcast's dims in the blob scales its cost with no data to match.
fn broadcast_job(copies: usize) -> Vec<u8> {
    let d = InputTensorDescriptor::dense(DType::F32, &[1], Normalisation::None);
    let op = |node: Node, args: &[u32]| Op {
        node,
        args: args.to_vec(),
    };
    let mut ops = vec![op(Node::View(View::BroadcastTo(vec![2, 2])), &[0])];
    ops.extend((0..copies).map(|_| op(Node::Prim(Prim::Copy), &[1])));
    ops.push(op(Node::Prim(Prim::Matmul), &[1, 1]));
    let program = Program {
        runtime: blocktorch::RUNTIME_VERSION.into(),
        consts: vec![Const {
            name: "c".into(),
            shape: vec![1, 1],
            data: HostData::F32(vec![1.0]),
        }],
        outputs: vec![Output {
            name: "y".into(),
            value: ops.len() as u32,
        }],
        ops,
    };
    let job = Job::new([0; 32], d, program, HostData::F32(vec![0.0])).unwrap();
    job.encode().unwrap()
}

/// Sets both dims of the broadcast op (`0x23, rank 2, 2, 2`) to `n`.
fn widen_broadcast(blob: &mut [u8], n: u32) {
    let pat = [0x23, 2, 2, 0, 0, 0, 2, 0, 0, 0];
    let at = blob.windows(pat.len()).position(|w| w == pat).unwrap();
    put_u32(blob, at + 2, n);
    put_u32(blob, at + 6, n);
}

#[test]
fn cost_bounds() {
    // The valid form validates.
    validate(&Job::decode(&broadcast_job(0)).unwrap()).unwrap();
    // 46340² ≤ ELEMENTS_MAX, so every shape is legal, but the matmul costs
    // 2 · 46340³ ≈ 1.99·10¹⁴ FLOPs.
    let n = 46_340u128;
    let mut b = broadcast_job(0);
    widen_broadcast(&mut b, n as u32);
    check_invalid(
        &b,
        JobError::CostExceeded {
            what: "FLOPs",
            value: 2 * n * n * n,
            max: PROGRAM_FLOPS_MAX,
        },
    );
    // Bytes: copies of an 8 GiB broadcast view cost 2 · 4 · 2¹⁵·2¹⁵ bytes each but no
    // FLOPs; 130 of them and a small matmul pass 2⁴⁰ bytes.
    let n = 1u128 << 15;
    let mut b = broadcast_job(130);
    widen_broadcast(&mut b, n as u32);
    let job = Job::decode(&b).unwrap();
    let err = validate(&job).unwrap_err();
    let copy_bytes = 130 * 2 * 4 * n * n;
    let matmul_bytes = 3 * 4 * n * n;
    // The broadcast view itself is charged the bytes it exposes (the cost model charges
    // every view so, whether or not its leaf hashes them).
    let view_bytes = 4 * n * n;
    assert_eq!(
        err,
        JobError::CostExceeded {
            what: "bytes",
            value: copy_bytes + matmul_bytes + view_bytes,
            max: PROGRAM_BYTES_MAX,
        }
    );
}

/// The worked example of `docs/spec/job-format-v0.md` §12: its bytes and test vectors.
#[test]
fn the_spec_worked_example() {
    let job = support::worked_example();
    let blob = job.encode().unwrap();
    let expected = [
        "42545241 00",
        &"ab".repeat(32),
        "57000000 10000000",
        "01 02 02000000 02000000 02000000 01000000 00 00 00 00 00",
        "42545047 00 15",
        &hex(blocktorch::RUNTIME_VERSION.as_bytes()),
        "01000000 01 77 01 02 02000000 02000000",
        "0000803f 00000000 00000000 00000040",
        "02000000 01 00 00 00 15 02 01000000 00000000",
        "01000000 01 79 02000000",
        "0000803f 00000040 00004040 00008040",
    ]
    .concat()
    .replace(' ', "");
    assert_eq!(hex(&blob), expected);
    assert_eq!(blob.len(), 171);
    let plan = validate(&job).unwrap();
    assert_eq!((plan.total.flops, plan.total.bytes), (16, 64));
    let opts = tb_job::ExecOptions {
        replay: tb_job::ReplayMode::CrossFabric,
        profile: false,
    };
    let run = tb_job::execute(&job, &CpuFabric::reference(), opts).unwrap();
    assert!(run.cross_fabric);
    assert_eq!(run.outputs[0].data, HostData::F32(vec![1.0, 4.0, 3.0, 8.0]));
    assert_eq!(
        hex(&run.op_digests[0]),
        "0000000000000000000000000000000000000000000000000000000000000000"
    );
    assert_eq!(run.op_digests[1], run.output_digest);
    assert_eq!(
        hex(&run.output_digest),
        "a108f1490333710069847439c0aae56d4ce356d64831e79edd4d2cb8a09a7f75"
    );
    assert_eq!(
        run.trace_root.to_hex(),
        "27f5241c81590c9d360b41584ff13426b0c14803812b7601b5a449ce6249910f"
    );
    assert_eq!(
        Job::task_id(&blob).to_hex(),
        "c36fc7d1725cce47c456d6fc657326afe002710d61ecc7d9a97d8c8d2247c30c"
    );
    // Strict mode refuses it: the kernel digest is not the CPU reference's.
    let strict = tb_job::execute(&job, &CpuFabric::reference(), Default::default());
    assert!(matches!(strict, Err(JobError::KernelDigestMismatch { .. })));
}
