//! Made `v3_store.redb` (next to this file) with the schema-v3 release, commit
//! 15aae59: copied there as `crates/store/examples/make_v3_store.rs` and run as
//! `cargo run -p tb-store --example make_v3_store -- crates/store/tests/data/v3_store.redb`.
//! Kept as the record of what the store holds; the migration test
//! (`tests/migrate.rs`) checks the same facts after opening it with this build.
//! (Not compiled here: it is written against the v3 API.)

use tb_chain::tx::FeeSelector;
use tb_chain::market::objects::publish_payloads;
use tb_chain::tx::{PublishBlob, RegisterHandle, SignedTx, Transfer, TxPayload};
use tb_chain::{mine, ChainParams, StateRead};
use tb_primitives::{Address, SecretKey};
use tb_store::ChainDb;

pub fn params() -> ChainParams {
    let mut p = ChainParams::devnet();
    p.market.blob_chunk_bytes = 1024;
    p
}

pub fn object(n: usize, salt: u8) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8 ^ salt).collect()
}

fn seal(db: &mut ChainDb, txs: &[SignedTx], to: Address) {
    let now = db.tip().timestamp_ms + 1_000;
    let mut b = db.build_template(txs.iter(), now, to).unwrap();
    assert_eq!(b.txs.len(), txs.len(), "every transaction applies");
    b.header = mine(&b.header, 0, 10_000_000).unwrap();
    db.import_block(&b, now).unwrap();
}

fn sign(db: &ChainDb, k: &SecretKey, mut p: TxPayload, skip: u64) -> SignedTx {
    *p.nonce_mut() = db.state().account(&k.address()).nonce + skip;
    SignedTx::sign(p, k, db.params().chain_id)
}

fn blob(db: &ChainDb, k: &SecretKey, mut b: PublishBlob, skip: u64) -> SignedTx {
    b.from = k.address();
    sign(db, k, TxPayload::PublishBlob(b), skip)
}

fn main() {
    let path = std::env::args().nth(1).expect("a path");
    let a = SecretKey::dev("v3-a");
    let b = SecretKey::dev("v3-b");
    let mut db = ChainDb::open(&path, params()).unwrap();
    for _ in 0..3 {
        seal(&mut db, &[], a.address());
    }
    seal(&mut db, &[], b.address());
    let handle = sign(
        &db,
        &a,
        TxPayload::RegisterHandle(RegisterHandle {
            from: a.address(),
            handle: "@v3_alice".into(),
            fee: 1_000,
            fee_selector: FeeSelector::Consumer.into(),
            nonce: 0,
        }),
        0,
    );
    let pay = sign(
        &db,
        &a,
        TxPayload::Transfer(Transfer {
            from: a.address(),
            to: b.address(),
            amount_consumer: 12_345,
            amount_industrial: 678,
            fee: 1_000,
            fee_selector: FeeSelector::Consumer.into(),
            nonce: 0,
            memo: b"v3".to_vec(),
        }),
        1,
    );
    seal(&mut db, &[handle, pay], a.address());
    // Object X (3,000 bytes, 3 chunks): B sends chunk 0 first, then A sends all
    // three; A's copy completes X, B's partial copy keeps a chunk identical to A's.
    let x = publish_payloads(&db.params().market, a.address(), &object(3000, 0));
    let mut txs = vec![blob(&db, &b, x[0].clone(), 0)];
    for (i, c) in x.iter().enumerate() {
        txs.push(blob(&db, &a, c.clone(), i as u64));
    }
    // Object Y (2,000 bytes): only its first chunk, from A.
    let y = publish_payloads(&db.params().market, a.address(), &object(2000, 0x5A));
    txs.push(blob(&db, &a, y[0].clone(), 3));
    seal(&mut db, &txs, a.address());
    seal(&mut db, &[], b.address());
    println!(
        "height {} root {} entries {}",
        db.tip().height,
        db.tip().state_root,
        db.state().len()
    );
    drop(db);
    // Compacted so that the committed fixture is small.
    let mut raw = redb::Database::open(&path).unwrap();
    while raw.compact().unwrap() {}
}
