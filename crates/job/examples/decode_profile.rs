//! Where decode time goes for a large blob (a profiling aid; see BENCHMARKS.md).
use std::time::Instant;
use tb_job::{InputSlot, InputTensorDescriptor, Job, Normalisation, ProgramBuilder};
fn main() {
    let n = 5120usize;
    let d = InputTensorDescriptor::dense(blocktorch::DType::F32, &[1, n], Normalisation::None);
    let b = ProgramBuilder::new(&d);
    let x = b.input(InputSlot::Main).unwrap();
    let w = b
        .param("w", blocktorch::HostData::F32(vec![0.25; n * n]), &[n, n])
        .unwrap();
    let y = blocktorch::compose::Backend::exec(&b, &blocktorch::Prim::Matmul, &[&x, &w]).unwrap();
    b.output("y", &y);
    let job = Job::new(
        [0; 32],
        d,
        b.finish(),
        blocktorch::HostData::F32(vec![0.5; n]),
    )
    .unwrap();
    let blob = job.encode().unwrap();
    drop(job);
    for _ in 0..3 {
        let t = Instant::now();
        let j = Job::decode(&blob).unwrap();
        let t1 = t.elapsed();
        tb_job::validate(&j).unwrap();
        let t2 = t.elapsed();
        drop(j);
        let t3 = t.elapsed();
        println!("decode {t1:?} validate {:?} drop {:?}", t2 - t1, t3 - t2);
    }
}
