//! `kernel_variant_digest` commits to every kernel source and the runtime version stamp.

use blocktorch::cpu::KERNEL_SOURCES;
use blocktorch::fabric::Fabric;
use blocktorch::{kernel_variant_digest, CpuFabric, RUNTIME_VERSION};

#[test]
fn cpu_digest_covers_its_embedded_sources() {
    let d = CpuFabric::reference().kernel_variant_digest();
    assert_eq!(d, kernel_variant_digest(&KERNEL_SOURCES, RUNTIME_VERSION));
    // The configuration does not change the kernels.
    assert_eq!(d, blocktorch::cpu::default_fabric().kernel_variant_digest());
    let names: Vec<&str> = KERNEL_SOURCES.iter().map(|s| s.0).collect();
    for needed in [
        "cpu/gemm.rs",
        "cpu/kernels.rs",
        "math.rs",
        "scalar.rs",
        "compose.rs",
    ] {
        assert!(
            names.contains(&needed),
            "{needed} is not covered by the digest"
        );
    }
    assert!(KERNEL_SOURCES
        .iter()
        .any(|(_, src)| src.contains("fn sgemm_batched")));
}

#[test]
fn changing_one_character_changes_the_digest() {
    let base = kernel_variant_digest(&KERNEL_SOURCES, RUNTIME_VERSION);
    for (i, (name, src)) in KERNEL_SOURCES.iter().enumerate() {
        // Change one character in the middle of each source.
        let mut chars: Vec<char> = src.chars().collect();
        let at = chars.len() / 2;
        chars[at] = if chars[at] == 'x' { 'y' } else { 'x' };
        let changed: String = chars.into_iter().collect();
        let mut sources = KERNEL_SOURCES;
        sources[i] = (name, &changed);
        assert_ne!(
            kernel_variant_digest(&sources, RUNTIME_VERSION),
            base,
            "{name}"
        );
    }
    assert_ne!(
        kernel_variant_digest(&KERNEL_SOURCES, "blocktorch-0.0.0"),
        base,
        "version stamp"
    );
    // Moving bytes between name and source is not a collision (lengths are framed).
    assert_ne!(
        kernel_variant_digest(&[("ab", "c")], "v"),
        kernel_variant_digest(&[("a", "bc")], "v")
    );
}
