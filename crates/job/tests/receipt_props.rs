//! `SignedReceipt::from_bytes` (bytes from outside: the chain's `SubmitReceipt`, files
//! `tb-cli` reads): never a panic, accepted bytes are canonical, signatures verify only
//! for their chain and provider.

use proptest::prelude::*;
use tb_job::{Receipt, SignedReceipt};
use tb_primitives::{Id, SecretKey};

fn receipt(key: &SecretKey, commit: String, latency: u64) -> Receipt {
    Receipt {
        task_id: Id([7; 32]),
        kernel_variant_digest: [1; 32],
        benchmark_commit: commit,
        tensor_profile_epoch: [2; 32],
        proof_latency_ms: latency,
        output_digest_sha256: [3; 32],
        input_descriptor_hash: [4; 32],
        artifact_hash: [5; 32],
        trace_root: Id([6; 32]),
        trace_sha256: [9; 32],
        result_sha256: [10; 32],
        n_ops: 9,
        fabric: "cpu".into(),
        device_hash: [8; 32],
        provider: key.address(),
    }
}

proptest! {
    #[test]
    fn decoding_never_panics_and_accepted_bytes_are_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        if let Ok(r) = SignedReceipt::from_bytes(&bytes) {
            prop_assert_eq!(r.to_bytes(), bytes);
        }
    }

    #[test]
    fn mutated_receipts_never_panic_and_never_verify_unchanged(
        commit in "[a-z0-9]{0,64}",
        latency in any::<u64>(),
        at in any::<prop::sample::Index>(),
        mask in 1..=255u8,
    ) {
        let key = SecretKey::dev("receipt-props");
        let signed = receipt(&key, commit, latency).sign(&key, 5).unwrap();
        let bytes = signed.to_bytes();
        prop_assert_eq!(SignedReceipt::from_bytes(&bytes).unwrap(), signed.clone());
        prop_assert!(signed.verify(5).is_ok());
        prop_assert!(signed.verify(6).is_err());
        let mut b = bytes.clone();
        let i = at.index(b.len());
        b[i] ^= mask;
        if let Ok(r) = SignedReceipt::from_bytes(&b) {
            prop_assert!(r.verify(5).is_err(), "a flipped byte still verifies");
        }
    }
}

#[test]
fn oversized_text_and_foreign_keys_are_refused() {
    let key = SecretKey::dev("receipt-props");
    // Text past 64 bytes is refused when signing, and when decoding bytes that carry it.
    let long = receipt(&key, "x".repeat(65), 1);
    assert!(long.clone().sign(&key, 5).is_err());
    let forged = SignedReceipt {
        signature: key.sign(
            tb_primitives::Domain::Receipt,
            5,
            &tb_primitives::encode(&long),
        ),
        receipt: long,
    };
    assert!(SignedReceipt::from_bytes(&forged.to_bytes()).is_err());
    let other = SecretKey::dev("someone else");
    assert!(receipt(&key, String::new(), 1).sign(&other, 5).is_err());
}
