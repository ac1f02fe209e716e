//! The committed seed corpora of the fuzz targets: `fuzz/corpus/<target>/seed-NN`, small
//! valid inputs that each crate's tests write from its own encoders. A format change
//! that leaves a seed stale fails that test, instead of seeding the fuzzer with inputs
//! its decoder now refuses at the first byte. Behind the `proptest` feature, which only
//! test builds enable.
//!
//! `TB_FUZZ_WRITE_SEEDS=1 cargo test --workspace fuzz_seeds` rewrites every seed; the
//! files beside them (named by libFuzzer after their SHA-1) are what fuzzing found and
//! kept (`docs/fuzzing.md`).

use std::path::{Path, PathBuf};

/// Longest seed: libFuzzer's default `-max_len` grows to the longest input of its
/// corpus, and long inputs slow every run.
pub const SEED_BYTES_MAX: usize = 64 * 1024;

/// The corpus folder of fuzz target `target`, from the `CARGO_MANIFEST_DIR` of a crate
/// under `crates/`.
pub fn corpus_dir(manifest_dir: &str, target: &str) -> PathBuf {
    Path::new(manifest_dir)
        .join("../../fuzz/corpus")
        .join(target)
}

/// Checks the seeds of fuzz target `target` against `seeds`, the encoders' current
/// output: every seed must be accepted by `accepts` and at most [`SEED_BYTES_MAX`]
/// long, and each committed `seed-NN` file must equal seed `NN` (none missing, none
/// left over). With `TB_FUZZ_WRITE_SEEDS=1` in the environment the files are written
/// first. Panics with what differs (a test helper).
pub fn check_seeds(
    manifest_dir: &str,
    target: &str,
    seeds: &[Vec<u8>],
    accepts: impl Fn(&[u8]) -> bool,
) {
    let dir = corpus_dir(manifest_dir, target);
    for (i, s) in seeds.iter().enumerate() {
        assert!(accepts(s), "{target}: seed {i} is refused by its decoder");
        assert!(
            s.len() <= SEED_BYTES_MAX,
            "{target}: seed {i} is {} bytes, over {SEED_BYTES_MAX}",
            s.len()
        );
    }
    let name = |i: usize| format!("seed-{i:02}");
    if std::env::var_os("TB_FUZZ_WRITE_SEEDS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).expect("create the corpus folder");
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(dir.join(name(i)), s).expect("write a seed");
        }
        for i in seeds.len()..100 {
            let _ = std::fs::remove_file(dir.join(name(i)));
        }
    }
    let stale = "stale: rerun with TB_FUZZ_WRITE_SEEDS=1 and commit fuzz/corpus";
    for (i, s) in seeds.iter().enumerate() {
        let p = dir.join(name(i));
        let on_disk = std::fs::read(&p)
            .unwrap_or_else(|e| panic!("{target}: {} is missing ({e}); {stale}", p.display()));
        assert!(on_disk == *s, "{target}: {} differs; {stale}", p.display());
    }
    let extra = dir.join(name(seeds.len()));
    assert!(
        !extra.exists(),
        "{target}: {} is left over; {stale}",
        extra.display()
    );
}
