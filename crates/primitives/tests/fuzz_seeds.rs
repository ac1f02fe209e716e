//! The seed corpora of the fuzz targets `read_key_text` (a PKCS#8 PEM key, a seed in
//! hex and an address) and `verify_signature` (a valid signature of each domain)
//! (`tb_primitives::seeds`, `docs/fuzzing.md`).

use tb_primitives::seeds::check_seeds;
use tb_primitives::{Address, Domain, SecretKey, Signature, FUZZ_SIGNATURE_HEADER_BYTES};

#[test]
fn fuzz_seeds() {
    let k = SecretKey::dev("seed-key");
    let hex: String = k.seed().iter().map(|x| format!("{x:02x}")).collect();
    let seeds = vec![
        k.to_pkcs8_pem().into_bytes(),
        hex.into_bytes(),
        k.address().to_text().into_bytes(),
    ];
    check_seeds(env!("CARGO_MANIFEST_DIR"), "read_key_text", &seeds, |b| {
        let Ok(t) = std::str::from_utf8(b) else {
            return false;
        };
        SecretKey::from_pkcs8_pem(t).is_ok()
            || SecretKey::from_seed_hex(t).is_ok()
            || t.parse::<Address>().is_ok()
    });
}

/// `key ‖ signature ‖ domain selector ‖ chain id ‖ payload`, as the target reads it.
fn parts(b: &[u8]) -> Option<(Address, Signature, Domain, u64, &[u8])> {
    let (head, payload) = b.split_at_checked(FUZZ_SIGNATURE_HEADER_BYTES)?;
    let domain = [Domain::Transaction, Domain::Receipt, Domain::Network][head[96] as usize % 3];
    Some((
        Address(head[..32].try_into().ok()?),
        Signature(head[32..96].try_into().ok()?),
        domain,
        u64::from_le_bytes(head[97..105].try_into().ok()?),
        payload,
    ))
}

#[test]
fn fuzz_seeds_verify_signature() {
    let k = SecretKey::dev("seed-signer");
    let seeds: Vec<Vec<u8>> = [
        (Domain::Transaction, 0u8),
        (Domain::Receipt, 1),
        (Domain::Network, 2),
    ]
    .iter()
    .enumerate()
    .map(|(i, (domain, selector))| {
        let chain_id = 7 + i as u64;
        let payload = format!("payload {i}").into_bytes();
        let sig = k.sign(*domain, chain_id, &payload);
        let mut b = k.address().0.to_vec();
        b.extend_from_slice(&sig.0);
        b.push(*selector);
        b.extend_from_slice(&chain_id.to_le_bytes());
        b.extend_from_slice(&payload);
        b
    })
    .collect();
    check_seeds(
        env!("CARGO_MANIFEST_DIR"),
        "verify_signature",
        &seeds,
        |b| {
            parts(b).is_some_and(|(a, sig, d, chain, payload)| {
                a.verify(d, chain, payload, &sig).is_ok()
            })
        },
    );
}
