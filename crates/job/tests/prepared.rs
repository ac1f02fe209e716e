//! Prepared models: a run with constants uploaded once gives exactly the result of a
//! run that uploads them, a prepared model of another model or fabric is refused, and
//! the cache keeps models under its byte budget.

use blocktorch::cpu::gemm::Simd;
use blocktorch::{CpuConfig, CpuFabric};
use std::sync::Arc;
use tb_job::examples::{build_example, EXAMPLES};
use tb_job::{
    execute, execute_prepared, replay_values, replay_values_prepared, validate, CacheLookup,
    ExecOptions, ExecResult, JobError, ModelCache, PreparedModel,
};

/// Everything but the wall time.
fn same_run(a: &ExecResult, b: &ExecResult, what: &str) {
    assert_eq!(a.outputs, b.outputs, "{what}: outputs");
    assert_eq!(a.output_digest, b.output_digest, "{what}: output digest");
    assert_eq!(a.op_digests, b.op_digests, "{what}: leaves");
    assert_eq!(a.trace_root, b.trace_root, "{what}: trace root");
    assert_eq!(a.n_ops, b.n_ops, "{what}: ops");
    assert_eq!(a.profile_epoch, b.profile_epoch, "{what}: profile epoch");
    assert_eq!(a.kernel_variant_digest, b.kernel_variant_digest, "{what}");
}

#[test]
fn every_example_runs_to_the_same_bits_with_prepared_constants() {
    let mut fabrics = vec![CpuFabric::reference()];
    if Simd::Avx2Fma.available() {
        fabrics.push(CpuFabric::new(CpuConfig::new(Simd::Avx2Fma, 2)).unwrap());
    }
    for fabric in &fabrics {
        for name in EXAMPLES {
            let job = build_example(name).unwrap();
            let plain = execute(&job, fabric, ExecOptions::default()).unwrap();
            let prepared = PreparedModel::new(&job, fabric).unwrap();
            assert_eq!(prepared.artifact_hash(), job.artifact_hash);
            let consts: u64 = job
                .program
                .consts
                .iter()
                .map(|c| c.data.len() as u64 * c.data.dtype().size_bytes() as u64)
                .sum();
            assert!(
                prepared.bytes() > 0 && prepared.bytes() <= consts,
                "{name}: {} prepared bytes of {consts}",
                prepared.bytes()
            );
            // Twice with the same uploads: the first run must not have changed them.
            for round in 0..2 {
                let r = execute_prepared(&job, fabric, &prepared, ExecOptions::default()).unwrap();
                same_run(&plain, &r, &format!("{name} round {round}"));
            }
            // The bare replay of the last op, with and without.
            let last = (job.program.consts.len() + job.program.ops.len() - 1) as u32;
            let a = replay_values(&job, fabric, &[last, 0]).unwrap();
            let b = replay_values_prepared(&job, fabric, &prepared, &[last, 0]).unwrap();
            assert_eq!(a, b, "{name}: replayed values");
        }
    }
}

#[test]
fn a_prepared_model_of_another_model_or_fabric_is_refused() {
    let mlp = build_example("mlp").unwrap();
    let chain = build_example("matmul-chain").unwrap();
    let reference = CpuFabric::reference();
    let prepared = PreparedModel::new(&mlp, &reference).unwrap();
    let err = execute_prepared(&chain, &reference, &prepared, ExecOptions::default()).unwrap_err();
    match &err {
        JobError::PreparedMismatch { message } => {
            assert!(message.contains("model"), "{message}")
        }
        other => panic!("expected PreparedMismatch, got {other:?}"),
    }
    let other = CpuFabric::new(CpuConfig::new(Simd::Scalar, 3)).unwrap();
    let err = execute_prepared(&mlp, &other, &prepared, ExecOptions::default()).unwrap_err();
    match &err {
        JobError::PreparedMismatch { message } => {
            assert!(message.contains("3 threads"), "{message}")
        }
        other => panic!("expected PreparedMismatch, got {other:?}"),
    }
    assert!(
        replay_values_prepared(&chain, &reference, &prepared, &[0]).is_err(),
        "the bare replay checks too"
    );
}

#[test]
fn the_cache_keeps_models_under_its_budget_least_recently_used_out() {
    let fabric = CpuFabric::reference();
    let jobs: Vec<_> = ["mlp", "matmul-chain", "transformer"]
        .iter()
        .map(|n| build_example(n).unwrap())
        .collect();
    let sizes: Vec<u64> = jobs
        .iter()
        .map(|j| PreparedModel::new(j, &fabric).unwrap().bytes())
        .collect();
    // Room for the first two, or for the first and the third, never all three.
    let budget = (sizes[0] + sizes[1]).max(sizes[0] + sizes[2]);
    let cache = ModelCache::new(budget);
    assert_eq!(cache.budget(), budget);
    let lookup = |i: usize| cache.get_or_prepare(&jobs[i], &fabric).unwrap().1;
    assert_eq!(lookup(0), CacheLookup::Miss);
    assert_eq!(lookup(1), CacheLookup::Miss);
    assert_eq!(cache.usage(), (2, sizes[0] + sizes[1]));
    assert_eq!(
        lookup(0),
        CacheLookup::Hit,
        "0 is now the most recently used"
    );
    assert_eq!(lookup(2), CacheLookup::Miss);
    assert_eq!(
        cache.usage(),
        (2, sizes[0] + sizes[2]),
        "the least recently used (1) made room"
    );
    assert_eq!(lookup(0), CacheLookup::Hit, "the most recent stayed");
    assert_eq!(lookup(1), CacheLookup::Miss, "the least recent went");
    assert!(cache.usage().1 <= budget);

    // A model larger than the whole budget is prepared for the run, never kept.
    let small = ModelCache::new(sizes[0] - 1);
    let (_, how) = small.get_or_prepare(&jobs[0], &fabric).unwrap();
    assert_eq!(how, CacheLookup::TooLarge);
    assert_eq!(small.usage(), (0, 0));
    let off = ModelCache::new(0);
    let (r, how) = off
        .execute(&jobs[0], &fabric, ExecOptions::default())
        .unwrap();
    assert_eq!(how, CacheLookup::TooLarge);
    same_run(
        &execute(&jobs[0], &fabric, ExecOptions::default()).unwrap(),
        &r,
        "budget 0",
    );

    // Two fabrics, two entries for one model.
    let other = CpuFabric::new(CpuConfig::new(Simd::Scalar, 2)).unwrap();
    let both = ModelCache::new(1 << 30);
    both.get_or_prepare(&jobs[0], &fabric).unwrap();
    let (_, how) = both.get_or_prepare(&jobs[0], &other).unwrap();
    assert_eq!(how, CacheLookup::Miss);
    assert_eq!(both.usage(), (2, 2 * sizes[0]));
}

#[test]
fn threads_sharing_a_cache_get_the_same_results() {
    let cache = Arc::new(ModelCache::new(1 << 30));
    let names = ["mlp", "transformer", "matmul-chain"];
    let want: Vec<_> = names
        .iter()
        .map(|n| {
            let job = build_example(n).unwrap();
            validate(&job).unwrap();
            execute(&job, &CpuFabric::reference(), ExecOptions::default()).unwrap()
        })
        .collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let cache = cache.clone();
            let want = &want;
            s.spawn(move || {
                let fabric = CpuFabric::reference();
                for round in 0..3 {
                    let i = (t + round) % names.len();
                    let job = build_example(names[i]).unwrap();
                    let (r, _) = cache
                        .execute(&job, &fabric, ExecOptions::default())
                        .unwrap();
                    same_run(&want[i], &r, &format!("thread {t} {}", names[i]));
                }
            });
        }
    });
    assert_eq!(cache.usage().0, names.len(), "one entry per model");
}
