//! A profiled run with prepared constants uploads them afresh, so its allocation
//! profile epoch is that of any run. Alone in its own test binary: the allocation
//! profiler is process-wide, and another test's allocations would show in it.

use blocktorch::CpuFabric;
use tb_job::examples::build_example;
use tb_job::{execute, execute_prepared, CacheLookup, ExecOptions, ModelCache, PreparedModel};

#[test]
fn a_profiled_run_uploads_its_constants_and_keeps_its_epoch() {
    let job = build_example("mlp").unwrap();
    let fabric = CpuFabric::reference();
    let opts = ExecOptions {
        profile: true,
        ..ExecOptions::default()
    };
    let plain = execute(&job, &fabric, opts).unwrap();
    let prepared = PreparedModel::new(&job, &fabric).unwrap();
    let r = execute_prepared(&job, &fabric, &prepared, opts).unwrap();
    assert!(plain.profile_epoch.is_some());
    assert_eq!(plain.profile_epoch, r.profile_epoch, "profiled");
    assert_eq!(plain.trace_root, r.trace_root);
    let cache = ModelCache::new(1 << 30);
    let (r, how) = cache.execute(&job, &fabric, opts).unwrap();
    assert_eq!(
        plain.profile_epoch, r.profile_epoch,
        "profiled through the cache"
    );
    assert_eq!(plain.trace_root, r.trace_root);
    assert_eq!(how, CacheLookup::Profiled);
    assert_eq!(cache.usage(), (0, 0), "a profiled run prepares nothing");
}
