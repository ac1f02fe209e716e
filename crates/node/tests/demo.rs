//! The README's first command runs to completion and tells the story it claims.

#[test]
fn demo_runs_and_checks_itself() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_the-block"))
        .arg("demo")
        .output()
        .expect("the binary starts");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "rejected: nonce 9 leaves a gap",
        "@bob resolves to",
        "Reorged",
        "conservation holds",
        "verified",
        "Publish: the mlp model",
        "reads provisional",
        "reads final",
    ] {
        assert!(
            text.contains(needle),
            "demo output lacks {needle:?}:\n{text}"
        );
    }
}

#[test]
fn unknown_command_is_a_usage_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_the-block"))
        .arg("frobnicate")
        .output()
        .expect("the binary starts");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
