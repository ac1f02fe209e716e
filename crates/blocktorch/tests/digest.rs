//! `Fabric::digest` and `Fabric::trace_leaf` (the CPU fabric streams its storage) equal
//! the digests of the downloaded data, for every layout and dtype, NaNs canonicalised;
//! the trace leaf is BLAKE3 over its prefix and the very bytes SHA-256 hashes.

use blocktorch::compose::{apply_view, View};
use blocktorch::digest::TRACE_LEAF_PREFIX;
use blocktorch::{output_digest_sha256, trace_leaf, CpuFabric, Fabric, HostData};

#[test]
fn streamed_digest_equals_downloaded_digest_for_views() {
    let f = CpuFabric::reference();
    let n: usize = 3 * 5000;
    let mut vals: Vec<f32> = (0..n).map(|i| (i as f32).sin()).collect();
    vals[7] = f32::from_bits(0x7fc0_0001); // a NaN with a payload
    vals[9000] = -f32::NAN;
    let datas = [
        HostData::F32(vals),
        HostData::U8((0..n).map(|i| i as u8).collect()),
        HostData::I32((0..n as i32).map(|i| i * -3).collect()),
        HostData::U32((0..n as u32).collect()),
    ];
    for data in datas {
        let t = f.upload(&data, &[3, 5000]).unwrap();
        let views = [
            t.clone(),
            apply_view(&t, &View::Permute(vec![1, 0])).unwrap(),
            apply_view(
                &t,
                &View::Slice {
                    axis: 1,
                    start: 1,
                    end: 4999,
                    step: 3,
                },
            )
            .unwrap(),
            apply_view(
                &apply_view(
                    &t,
                    &View::Slice {
                        axis: 0,
                        start: 1,
                        end: 2,
                        step: 1,
                    },
                )
                .unwrap(),
                &View::BroadcastTo(vec![4, 1, 5000]),
            )
            .unwrap(),
            apply_view(
                &t,
                &View::Slice {
                    axis: 1,
                    start: 10,
                    end: 10,
                    step: 1,
                },
            )
            .unwrap(),
        ];
        for v in views {
            let host = f.download(&v).unwrap();
            let want = output_digest_sha256(v.shape(), &host).unwrap();
            assert_eq!(
                f.digest(&v).unwrap(),
                want,
                "{:?} {:?}",
                data.dtype(),
                v.layout()
            );
            let leaf = trace_leaf(v.shape(), &host).unwrap();
            assert_eq!(f.trace_leaf(&v).unwrap(), leaf, "{:?}", v.layout());
            assert_eq!(leaf, spec_leaf(v.shape(), &host));
            assert_ne!(leaf, want);
        }
    }
    // NaN payloads do not matter.
    let a = f.upload(&HostData::F32(vec![f32::NAN]), &[1]).unwrap();
    let b = f
        .upload(&HostData::F32(vec![f32::from_bits(0xffc0_1234)]), &[1])
        .unwrap();
    assert_eq!(f.digest(&a).unwrap(), f.digest(&b).unwrap());
}

/// The trace leaf as `docs/spec/job-format-v0.md` §10 writes it, byte by byte.
fn spec_leaf(shape: &[usize], data: &HostData) -> [u8; 32] {
    let mut bytes = b"TB/job/leaf/v1".to_vec();
    assert_eq!(&bytes[..], TRACE_LEAF_PREFIX);
    bytes.push(data.dtype().tag());
    bytes.push(shape.len() as u8);
    for d in shape {
        bytes.extend_from_slice(&(*d as u32).to_le_bytes());
    }
    match data {
        HostData::F32(v) => v.iter().for_each(|x| {
            let bits = if x.is_nan() { 0x7fc0_0000 } else { x.to_bits() };
            bytes.extend_from_slice(&bits.to_le_bytes())
        }),
        HostData::U8(v) => bytes.extend_from_slice(v),
        HostData::I32(v) => v
            .iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes())),
        HostData::U32(v) => v
            .iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes())),
    }
    *blake3::hash(&bytes).as_bytes()
}

#[test]
fn trace_leaves_refuse_what_digests_refuse() {
    let data = HostData::F32(vec![1.0; 6]);
    assert!(trace_leaf(&[2, 3], &data).is_ok());
    assert!(trace_leaf(&[4, 2], &data).is_err());
    assert!(trace_leaf(&[1; 9], &HostData::F32(vec![1.0])).is_err());
    // The empty tensor has a leaf (its header alone).
    let empty = trace_leaf(&[0, 3], &HostData::F32(vec![])).unwrap();
    assert_eq!(empty, spec_leaf(&[0, 3], &HostData::F32(vec![])));
}
