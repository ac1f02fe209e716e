//! Any text through the key and address readers (`SecretKey::from_pkcs8_pem`,
//! `from_seed_hex`, `Address`'s parser): never a panic, and what reads writes back
//! as itself. The body is `tb_primitives::fuzz_key_text`, which the stable property
//! tests run too (crates/primitives/src/keys.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        tb_primitives::fuzz_key_text(text);
    }
});
