//! Golden vectors: the committed example jobs (`examples/jobs/*.btj`) are exactly what
//! the builders make, and their output digests and trace roots are committed here.
//!
//! Regenerate the files with `tb-cli job build --example NAME -o examples/jobs/NAME.btj`
//! (or `TB_JOB_WRITE_EXAMPLES=1 cargo test -p tb-job --test golden`); a change that
//! alters a digest alters results: bump `blocktorch::RUNTIME_VERSION` and say so.

use blocktorch::CpuFabric;
use std::path::PathBuf;
use tb_job::examples::{build_example, EXAMPLES};
use tb_job::{execute, ExecOptions, Job};

/// (example, output_digest_sha256, trace_root).
const GOLDEN: [(&str, &str, &str); 4] = [
    (
        "mlp",
        "8bf9aca93bd363f4532202ab94d414c3711eedebb62fae7497c1322e2171ed18",
        "47108c63167f6be2f4190666bfc053ee852eb0dbd197867892aa717702d78142",
    ),
    (
        "transformer",
        "0990e3558b63fb1a84279a2f84b93c7941779516f6eab55485e431834c12b390",
        "5d82f1991db04756e90159211908908de8ac235c4f8fd95ee903752b2c19a1e2",
    ),
    (
        "matmul-chain",
        "4d729e6f450a8148491ab19fa979f6d1e570f63f6f076ca51d17269f9ace7931",
        "edf9516ef52972656843ddcfe0265254aa37d4306f2cf44099322142190ca85c",
    ),
    (
        "train-step",
        "090eded38a19fccce1534f315e854f2ab2bd7062357f2ccf1f0b8acd01e618a5",
        "41f67e9594952f6aa6a308f6245aae8c9f9c958a41236983bfb90b30b0f70b2f",
    ),
];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/jobs/{name}.btj"))
}

#[test]
fn committed_example_files_are_what_the_builders_make() {
    for name in EXAMPLES {
        let blob = build_example(name).unwrap().encode().unwrap();
        if std::env::var_os("TB_JOB_WRITE_EXAMPLES").is_some() {
            std::fs::write(path(name), &blob).unwrap();
        }
        let committed = std::fs::read(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            committed == blob,
            "examples/jobs/{name}.btj differs from the builder's output: regenerate it with `tb-cli job build --example {name} -o examples/jobs/{name}.btj`"
        );
    }
}

#[test]
fn golden_digests_of_the_example_jobs() {
    assert_eq!(GOLDEN.map(|g| g.0), EXAMPLES);
    for (name, output, trace) in GOLDEN {
        let blob = std::fs::read(path(name)).unwrap();
        let job = Job::decode(&blob).unwrap();
        let r = execute(&job, &CpuFabric::reference(), ExecOptions::default()).unwrap();
        assert_eq!(
            hex(&r.output_digest),
            output,
            "{name}: output_digest_sha256"
        );
        assert_eq!(r.trace_root.to_hex(), trace, "{name}: trace_root");
    }
}
