// Names the build: `TB_GIT_COMMIT` is the commit the binary was built from (the
// environment's `TB_GIT_COMMIT` when set, else `git rev-parse`, else `unknown`), for
// `--version`, `tb_build_info` and the `benchmark_commit` of the node's receipts.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=TB_GIT_COMMIT");
    // A new commit or checkout moves HEAD or the ref it names.
    for p in [
        "../../.git/HEAD",
        "../../.git/refs/heads",
        "../../.git/packed-refs",
    ] {
        if std::path::Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    let commit = std::env::var("TB_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            let c = String::from_utf8(out.stdout).ok()?.trim().to_string();
            (out.status.success() && !c.is_empty()).then_some(c)
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TB_GIT_COMMIT={commit}");
}
