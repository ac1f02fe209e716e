//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use tb_chain::tx::FeeSelector;
use tb_chain::tx::{SignedTx, Transfer, TxPayload};
use tb_chain::{mine, Block, ChainParams, StateRead};
use tb_primitives::{Address, SecretKey};
use tb_store::ChainDb;

pub fn params() -> ChainParams {
    ChainParams::devnet()
}

pub fn key(i: usize) -> SecretKey {
    SecretKey::dev(&format!("test-key-{i}"))
}

/// Builds, seals and imports a block on the tip; returns it.
pub fn mine_on_tip(db: &mut ChainDb, txs: &[SignedTx], beneficiary: Address) -> Block {
    let now = db.tip().timestamp_ms + 1_000;
    let mut b = db.build_template(txs.iter(), now, beneficiary).unwrap();
    b.header = mine(&b.header, 0, 10_000_000).expect("devnet difficulty is small");
    db.import_block(&b, now).unwrap();
    b
}

/// A transfer from `from` using its next nonce in `db`'s state (plus `skip`).
pub fn transfer(
    db: &ChainDb,
    from: &SecretKey,
    to: Address,
    c: u64,
    i: u64,
    skip: u64,
) -> SignedTx {
    let nonce = db.state().account(&from.address()).nonce + skip;
    SignedTx::sign(
        TxPayload::Transfer(Transfer {
            from: from.address(),
            to,
            amount_consumer: c,
            amount_industrial: i,
            fee: 10,
            fee_selector: FeeSelector::ALL[(nonce % 3) as usize].into(),
            nonce,
            memo: b"test".to_vec(),
        }),
        from,
        db.params().chain_id,
    )
}

/// Sorted state entries, for comparing two states exactly.
pub fn entries(db: &ChainDb) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut v: Vec<_> = db.state().entries();
    v.sort();
    v
}

/// The schema version a store file records (read with redb directly).
pub fn schema_of(path: &std::path::Path) -> u32 {
    const META: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
    let db = redb::Database::open(path).unwrap();
    let r = db.begin_read().unwrap();
    let v = r
        .open_table(META)
        .unwrap()
        .get("schema_version")
        .unwrap()
        .unwrap();
    u32::from_le_bytes(v.value().try_into().unwrap())
}
