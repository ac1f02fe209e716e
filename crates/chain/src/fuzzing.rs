//! Bodies of the fuzz targets in `fuzz/fuzz_targets/`, kept here so the same
//! code runs under libFuzzer (nightly, `cargo fuzz run …`) and as stable
//! property tests (`crates/chain/tests/codec_props.rs`).
//!
//! Each body must never panic on any input, except through its own
//! assertions, which flag a real bug.

use crate::block::{tx_root, Block};
use crate::execute::check_stateless;
use crate::params::ChainParams;
use crate::tx::SignedTx;
use tb_primitives::encode;

/// Any bytes through `SignedTx::decode`: accepted bytes are canonical, and the
/// stateless checks, signature check and id run on what decoded.
pub fn decode_tx(data: &[u8]) {
    let params = ChainParams::mainnet();
    if let Ok(tx) = SignedTx::decode(data, &params) {
        assert_eq!(encode(&tx), data, "accepted bytes must be canonical");
        let _ = check_stateless(&tx, &params);
        let _ = tx.verify_signature(params.chain_id);
        let _ = tx.id();
    }
}

/// Any bytes through `Block::decode`: accepted bytes are canonical, and the
/// stateless transaction checks, tx root and id run on what decoded.
pub fn decode_block(data: &[u8]) {
    let params = ChainParams::mainnet();
    if let Ok(block) = Block::decode(data, &params) {
        assert_eq!(encode(&block), data, "accepted bytes must be canonical");
        for tx in &block.txs {
            let _ = check_stateless(tx, &params);
        }
        let _ = tx_root(&block.txs);
        let _ = block.id();
    }
}

/// Any bytes as a stored trie record (an inner node, or a root reference): accepted
/// bytes are exactly the canonical encoding, and a decoded node rehashes.
pub fn decode_trie_node(data: &[u8]) {
    use crate::trie::{Child, InnerNode};
    if let Some(n) = InnerNode::decode(data) {
        assert_eq!(n.encode().as_slice(), data, "accepted a non-canonical node");
        let _ = n.children.map(|c| c.hash());
    }
    if let Some(c) = Child::decode(data) {
        assert_eq!(
            c.encode().as_slice(),
            data,
            "accepted a non-canonical child"
        );
    }
}
