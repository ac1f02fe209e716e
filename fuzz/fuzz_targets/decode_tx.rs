//! Any bytes through `SignedTx::decode`: never a panic, and accepted bytes are
//! the canonical encoding of what they decoded to. Mirrors `fuzz_decode_tx`
//! in `crates/chain/tests/codec_props.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tb_chain::execute::check_stateless;
use tb_chain::{ChainParams, SignedTx};
use tb_primitives::encode;

fuzz_target!(|data: &[u8]| {
    let params = ChainParams::mainnet();
    if let Ok(tx) = SignedTx::decode(data, &params) {
        assert_eq!(encode(&tx), data, "accepted bytes must be canonical");
        let _ = check_stateless(&tx, &params);
        let _ = tx.verify_signature(params.chain_id);
        let _ = tx.id();
    }
});
