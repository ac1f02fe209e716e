//! A reorganisation through `Node::import`: the undone branch's transactions go back to
//! the mempool (those the new branch did not include), and subscribers get the new
//! branch's heads in order.

use tb_chain::tx::FeeSelector;
use tb_chain::{Transfer, TxPayload};
use tb_primitives::SecretKey;
use the_block::node::Node;
use the_block::workers::miner::mine_one;

#[test]
fn a_reorg_puts_the_undone_transactions_back_and_announces_the_new_heads() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let params = tb_chain::ChainParams::devnet();
    let a = Node::open(da.path(), params.clone(), None).unwrap();
    let b = Node::open(db.path(), params, None).unwrap();
    let alice = SecretKey::dev("alice");
    // Block 1 pays alice on both nodes.
    mine_one(&a, alice.address()).unwrap();
    let b1 = a.core().db.block_at(1).unwrap().unwrap();
    b.import(&b1).unwrap();
    // On A, alice's transfer is mined in block 2.
    let ids = a
        .submit_signed(
            &alice,
            vec![TxPayload::Transfer(Transfer {
                from: alice.address(),
                to: SecretKey::dev("bob").address(),
                amount_consumer: 1_000,
                amount_industrial: 0,
                fee: 0,
                fee_selector: FeeSelector::Consumer.into(),
                nonce: 0,
                memo: vec![],
            })],
        )
        .unwrap();
    mine_one(&a, alice.address()).unwrap();
    assert!(!a.core().pool.contains(&ids[0]), "included in block 2");
    // B mines a longer branch without it; A imports it and reorganises.
    let mut events = a.events.subscribe();
    for _ in 0..2 {
        mine_one(&b, SecretKey::dev("carol").address()).unwrap();
    }
    for h in 2..=3 {
        let blk = b.core().db.block_at(h).unwrap().unwrap();
        a.import(&blk).unwrap();
    }
    assert_eq!(a.core().db.tip_id(), b.core().db.tip_id());
    assert!(
        a.core().pool.contains(&ids[0]),
        "the undone transfer is pending again"
    );
    assert_eq!(a.metrics.sample("tb_chain_reorgs_total"), Some(1.0));
    let mut heads = Vec::new();
    while let Ok(e) = events.try_recv() {
        if e.kind == "newHeads" {
            heads.push(e.data["height"].as_u64().unwrap());
        }
    }
    assert_eq!(heads, vec![2, 3], "the new branch's heads, in order");
}
