//! `Fabric::digest` (the CPU fabric streams its storage) equals the digest of the
//! downloaded data, for every layout and dtype, NaNs canonicalised.

use blocktorch::compose::{apply_view, View};
use blocktorch::{output_digest_sha256, CpuFabric, Fabric, HostData};

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
            let want = output_digest_sha256(v.shape(), &f.download(&v).unwrap()).unwrap();
            assert_eq!(
                f.digest(&v).unwrap(),
                want,
                "{:?} {:?}",
                data.dtype(),
                v.layout()
            );
        }
    }
    // NaN payloads do not matter.
    let a = f.upload(&HostData::F32(vec![f32::NAN]), &[1]).unwrap();
    let b = f
        .upload(&HostData::F32(vec![f32::from_bits(0xffc0_1234)]), &[1])
        .unwrap();
    assert_eq!(f.digest(&a).unwrap(), f.digest(&b).unwrap());
}
