//! Any bytes through `Block::decode`: never a panic, accepted bytes are
//! canonical, and the stateless transaction checks run on every decoded
//! transaction. Mirrors `fuzz_decode_block` in
//! `crates/chain/tests/codec_props.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tb_chain::block::tx_root;
use tb_chain::execute::check_stateless;
use tb_chain::{Block, ChainParams};
use tb_primitives::encode;

fuzz_target!(|data: &[u8]| {
    let params = ChainParams::mainnet();
    if let Ok(block) = Block::decode(data, &params) {
        assert_eq!(encode(&block), data, "accepted bytes must be canonical");
        for tx in &block.txs {
            let _ = check_stateless(tx, &params);
        }
        let _ = tx_root(&block.txs);
        let _ = block.id();
    }
});
