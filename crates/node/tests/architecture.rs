//! The architecture invariants of `ARCHITECTURE.md` that an absence states, checked:
//! no cycle between the source files of a crate (but the one named), and no clock, IO
//! or randomness in `tb-chain` outside its telemetry.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every crate but `blocktorch`: no cycle between its files. `blocktorch`: only the
/// tensor and its autograd rules name each other (two files describing one thing).
#[test]
fn no_cycle_between_the_files_of_a_crate() {
    let r = root();
    let mut crates: Vec<PathBuf> = std::fs::read_dir(r.join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    crates.sort();
    assert!(crates.len() >= 12, "{crates:?}");
    let out = Command::new("python3")
        .arg(r.join("scripts/file-cycles.py"))
        .args(&crates)
        .output();
    let Ok(out) = out else {
        println!("SKIPPED: python3 is not installed here; scripts/file-cycles.py not run");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let cycles: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(": cycle among "))
        .collect();
    assert_eq!(
        cycles,
        [format!(
            "{}: cycle among autograd, tensor",
            r.join("crates/blocktorch/src").display()
        )],
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.matches("no cycles").count(),
        crates.len() - 1,
        "{text}"
    );
}

#[test]
fn the_chain_reads_no_clock_and_does_no_io_outside_its_telemetry() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/chain/src"), &mut files);
    assert!(files.len() > 20, "{files:?}");
    let banned = [
        "Instant::now",
        "SystemTime",
        "std::fs",
        "std::net",
        "File::",
        "OsRng",
        "thread_rng",
        "std::env",
    ];
    for f in files {
        if f.ends_with("telemetry.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for b in banned {
            assert!(!text.contains(b), "{} uses {b}", f.display());
        }
    }
}

/// `unsafe` only where ARCHITECTURE.md says (SIMD, the OpenBLAS and GPU FFI), each
/// block with a `// SAFETY:` comment above it; every crate root forbids or denies it.
#[test]
fn unsafe_code_is_only_where_the_architecture_says() {
    let r = root();
    let allowed = [
        "crates/blocktorch/src/cpu/gemm.rs",
        "crates/blocktorch/src/cpu/kernels.rs",
        "crates/blocktorch-bench/src/openblas.rs",
        "crates/blocktorch-cuda/src/driver.rs",
        "crates/blocktorch-cuda/src/bin/tb-cuda-bench.rs",
    ];
    let mut files = Vec::new();
    for c in std::fs::read_dir(r.join("crates")).unwrap() {
        let src = c.unwrap().path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
            let root_file = ["lib.rs", "main.rs"]
                .iter()
                .map(|f| src.join(f))
                .find(|p| p.exists())
                .unwrap();
            let text = std::fs::read_to_string(&root_file).unwrap();
            assert!(
                text.contains("#![forbid(unsafe_code)]") || text.contains("#![deny(unsafe_code)]"),
                "{} neither forbids nor denies unsafe code",
                root_file.display()
            );
        }
    }
    for f in files {
        let rel = f
            .strip_prefix(&r)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let code = l.split("//").next().unwrap_or("");
            let is_unsafe = ["unsafe {", "unsafe fn", "unsafe impl", "unsafe extern"]
                .iter()
                .any(|u| code.contains(u));
            // A function-pointer type (`type F = unsafe extern "C" fn(..)`) is no block.
            if !is_unsafe || code.trim_start().starts_with("type ") {
                continue;
            }
            assert!(
                allowed.contains(&rel.as_str()),
                "{rel}:{}: unsafe outside the files ARCHITECTURE.md names",
                i + 1
            );
            let above = lines[..i].iter().rev().take(12);
            assert!(
                above.into_iter().any(|a| a.contains("SAFETY:")) || code.contains("unsafe fn"),
                "{rel}:{}: an unsafe block without a // SAFETY: comment above it",
                i + 1
            );
        }
    }
}
