//! Result objects (`BTRS`, `docs/spec/verification.md` §2a): a run's outputs encode to
//! an object whose digests are the run's output digest on every example; the worked
//! example byte by byte; every defect is a typed error naming the field and its byte
//! offset; the streaming scanner the chain runs accepts exactly what the decoder
//! accepts, whatever the pieces, with the same digests.

mod support;

use blocktorch::{CpuFabric, HostData};
use proptest::prelude::*;
use support::hex;
use tb_job::result::{RESULT_BYTES_MAX, RESULT_OUTPUTS_MAX};
use tb_job::{
    examples, scan_result, ExecOptions, JobError, ReplayMode, ResultObject, ResultScanner,
    ResultTensor,
};

fn one(name: &str, shape: &[usize], data: HostData) -> ResultObject {
    ResultObject {
        outputs: vec![ResultTensor {
            name: name.into(),
            shape: shape.to_vec(),
            data,
        }],
    }
}

/// Feeds `b` to a scanner in pieces of `piece` bytes.
fn scan_in(b: &[u8], piece: usize) -> tb_job::Result<tb_job::ResultSummary> {
    let mut s = ResultScanner::new();
    for c in b.chunks(piece.max(1)) {
        s.feed(c);
    }
    s.finish()
}

#[test]
fn every_example_run_gives_a_result_whose_digest_is_the_runs() {
    for name in examples::EXAMPLES {
        let job = examples::build_example(name).unwrap();
        let run = tb_job::execute(
            &job,
            &CpuFabric::reference(),
            ExecOptions {
                replay: ReplayMode::CrossFabric,
                profile: false,
            },
        )
        .unwrap();
        let r = ResultObject::of_run(&run);
        let bytes = r.encode().unwrap();
        let back = ResultObject::decode(&bytes).unwrap();
        assert_eq!(back, r, "{name}");
        assert_eq!(back.output_digest(), run.output_digest, "{name}");
        let digests: Vec<[u8; 32]> = run.outputs.iter().map(|o| o.digest).collect();
        assert_eq!(back.digests(), digests, "{name}");
        for piece in [1, 3, 4096, bytes.len()] {
            let s = scan_in(&bytes, piece).unwrap();
            assert_eq!(
                s.output_digest, run.output_digest,
                "{name} in pieces of {piece}"
            );
            assert_eq!(s.outputs as usize, run.outputs.len());
        }
    }
}

#[test]
fn the_worked_example() {
    // `y = [[1, 4], [3, 8]]`, the output of the job format's worked example.
    let r = one("y", &[2, 2], HostData::F32(vec![1.0, 4.0, 3.0, 8.0]));
    let b = r.encode().unwrap();
    let expected = [
        "42545253 00 01000000",
        "01 79",
        "01 02 02000000 02000000",
        "0000803f 00008040 00004040 00000041",
    ]
    .concat()
    .replace(' ', "");
    assert_eq!(hex(&b), expected);
    // The digest of the output is the SHA-256 of its bytes from the dtype tag on: the
    // output digest of `job-format-v0.md` §12.
    assert_eq!(
        hex(&r.output_digest()),
        "a108f1490333710069847439c0aae56d4ce356d64831e79edd4d2cb8a09a7f75"
    );
    assert_eq!(
        hex(&ResultObject::sha256(&b)),
        hex(&<sha2::Sha256 as sha2::Digest>::digest(&b))
    );
}

#[test]
fn nans_are_canonical_in_the_object() {
    let odd_nan = f32::from_bits(0x7fc0_0001);
    let r = one("y", &[2], HostData::F32(vec![odd_nan, 1.0]));
    assert!(r.encode().is_err(), "a non-canonical NaN cannot be encoded");
    let canon = one("y", &[2], HostData::F32(vec![f32::NAN, 1.0]));
    let mut b = canon.encode().unwrap();
    // The same bytes with the NaN's payload changed are refused, at the element.
    let at = b.len() - 8;
    b[at] = 0x01;
    let e = ResultObject::decode(&b).unwrap_err();
    assert!(
        matches!(e, JobError::Invalid { field: "output data", offset, .. } if offset == at),
        "{e}"
    );
    let s = scan_in(&b, 3).unwrap_err();
    assert!(
        matches!(s, JobError::Invalid { field: "output data", offset, .. } if offset == at),
        "{s}"
    );
}

#[test]
fn defects_name_their_field_and_offset() {
    let r = ResultObject {
        outputs: vec![
            ResultTensor {
                name: "a".into(),
                shape: vec![3],
                data: HostData::I32(vec![1, -2, 3]),
            },
            ResultTensor {
                name: "".into(),
                shape: vec![],
                data: HostData::U8(vec![9]),
            },
        ],
    };
    let b = r.encode().unwrap();
    let check = |bytes: &[u8], field: &str, offset: usize| {
        let e = ResultObject::decode(bytes).unwrap_err();
        let (f, o) = match &e {
            JobError::Truncated { field, offset, .. }
            | JobError::BadMagic { field, offset, .. }
            | JobError::UnknownTag { field, offset, .. }
            | JobError::TooLarge { field, offset, .. }
            | JobError::Invalid { field, offset, .. } => (*field, *offset),
            JobError::TrailingBytes { offset, .. } => ("trailing", *offset),
            other => panic!("{other}"),
        };
        assert_eq!((f, o), (field, offset), "{e}");
        assert!(scan_result(bytes).is_err(), "the scanner refuses it too");
    };
    let m = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut x = b.clone();
        f(&mut x);
        x
    };
    check(&m(&|x| x[0] = b'X'), "magic", 0);
    check(&m(&|x| x[4] = 1), "version", 4);
    check(&m(&|x| x[5] = 0), "output count", 5);
    check(
        &m(&|x| x[5] = RESULT_OUTPUTS_MAX as u8 + 1),
        "output count",
        5,
    );
    check(&m(&|x| x[9] = 65), "output name", 9);
    check(&m(&|x| x[10] = 0xff), "output name", 10);
    check(&m(&|x| x[11] = 9), "output dtype", 11);
    check(&m(&|x| x[12] = 9), "output shape", 12);
    check(&b[..20], "output data", 17);
    check(&m(&|x| x.push(0)), "trailing", b.len());
    check(&b[..3], "magic", 0);
}

#[test]
fn limits() {
    let too_many = ResultObject {
        outputs: (0..=RESULT_OUTPUTS_MAX)
            .map(|i| ResultTensor {
                name: format!("o{i}"),
                shape: vec![1],
                data: HostData::U8(vec![0]),
            })
            .collect(),
    };
    assert!(too_many.encode().is_err());
    assert!(ResultObject { outputs: vec![] }.encode().is_err());
    let e = ResultObject::decode(&vec![0u8; RESULT_BYTES_MAX + 1]).unwrap_err();
    assert!(matches!(
        e,
        JobError::TooLarge {
            field: "result",
            ..
        }
    ));
}

proptest! {
    /// The fuzz target's body over random bytes.
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        tb_job::fuzzing::decode_result(&data);
    }

    /// A valid object with one byte changed, or cut short: decoder and scanner agree for
    /// every piece size, and what is accepted is canonical.
    #[test]
    fn decoder_and_scanner_agree_on_mutations(
        vals in proptest::collection::vec(any::<u32>(), 1..12),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
        piece in 1usize..17,
    ) {
        let r = ResultObject { outputs: vec![
            ResultTensor { name: "x".into(), shape: vec![vals.len()],
                data: HostData::F32(vals.iter().map(|v| {
                    let f = f32::from_bits(*v);
                    if f.is_nan() { f32::NAN } else { f }
                }).collect()) },
            ResultTensor { name: "idx".into(), shape: vec![1, vals.len()],
                data: HostData::U32(vals.clone()) },
        ]};
        let mut b = r.encode().unwrap();
        let i = at.index(b.len());
        if cut { b.truncate(i); } else { b[i] = byte; }
        let d = ResultObject::decode(&b);
        let s = scan_in(&b, piece);
        prop_assert_eq!(d.is_ok(), s.is_ok(), "decoder {:?} scanner {:?}", d, s);
        if let (Ok(d), Ok(s)) = (d, s) {
            prop_assert_eq!(d.encode().unwrap(), b);
            prop_assert_eq!(d.digests(), s.digests);
            prop_assert_eq!(d.output_digest(), s.output_digest);
        }
    }
}
