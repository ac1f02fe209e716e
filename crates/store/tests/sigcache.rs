//! Signatures verified once: a block's transactions that the mempool admitted are not
//! checked again at import, and the cache never weakens the check — a transaction it
//! does not hold (a tampered copy of one it does included) is checked strictly.

mod common;

use common::*;
use tb_chain::execute::{BlockError, TxError};
use tb_chain::mempool::{Mempool, MempoolConfig};
use tb_chain::{mine, StateRead};
use tb_store::{ChainDb, ImportError, ImportOutcome};

fn pool() -> Mempool {
    let cfg = MempoolConfig {
        fee_floor_per_byte: 0,
        ..Default::default()
    };
    Mempool::new(cfg, params())
}

#[test]
fn admitted_transactions_are_not_checked_again_and_the_others_are() {
    let d = tempfile::tempdir().unwrap();
    let mut db = ChainDb::open(d.path().join("c.redb"), params()).unwrap();
    let m = key(0);
    for _ in 0..2 {
        mine_on_tip(&mut db, &[], m.address());
    }
    let txs: Vec<_> = (0..3)
        .map(|k| transfer(&db, &m, key(1).address(), 10, 0, k))
        .collect();
    let mut pool = pool();
    let now = db.tip().timestamp_ms;
    for tx in &txs[..2] {
        pool.admit(tx.clone(), db.state(), now).unwrap();
    }
    let cache = pool.sig_cache();
    assert_eq!(cache.len(), 2);
    db.set_sig_cache(cache.clone());
    let (h0, m0) = cache.hits_misses();
    let b = mine_on_tip(&mut db, &txs, m.address());
    assert_eq!(b.txs.len(), 3);
    let (h1, m1) = cache.hits_misses();
    // Building looked each up once and import once more: the two admitted hit, the
    // third was checked both times.
    assert_eq!((h1 - h0, m1 - m0), (4, 2));
    assert_eq!(db.state().account(&key(1).address()).consumer, 30);
}

#[test]
fn a_tampered_copy_of_a_cached_transaction_is_still_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut db = ChainDb::open(d.path().join("c.redb"), params()).unwrap();
    let m = key(0);
    mine_on_tip(&mut db, &[], m.address());
    let ok = transfer(&db, &m, key(1).address(), 1, 0, 0);
    let other = transfer(&db, &m, key(1).address(), 1, 0, 1);
    let mut pool = pool();
    let now = db.tip().timestamp_ms;
    pool.admit(ok.clone(), db.state(), now).unwrap();
    pool.admit(other.clone(), db.state(), now).unwrap();
    db.set_sig_cache(pool.sig_cache());
    let tip = db.tip_id();
    let before = entries(&db);
    let t = db.tip().timestamp_ms + 1_000;
    let mut blk = db.build_template([&ok, &other], t, m.address()).unwrap();
    assert_eq!(blk.txs.len(), 2);
    // The second transaction's signature tampered with: its id is no longer the
    // cached one, so import checks it and refuses the block at its index.
    blk.txs[1].signature.0[5] ^= 1;
    blk.header.tx_root = tb_chain::block::tx_root(&blk.txs);
    blk.header = mine(&blk.header, 0, 1_000_000).unwrap();
    let err = db.import_block(&blk, t).unwrap_err();
    assert!(
        matches!(
            err,
            ImportError::Block(BlockError::Tx {
                index: 1,
                error: TxError::BadSignature
            })
        ),
        "{err}"
    );
    assert_eq!(db.tip_id(), tip);
    assert_eq!(entries(&db), before);
    // The honest block imports.
    let mut good = db.build_template([&ok, &other], t, m.address()).unwrap();
    good.header = mine(&good.header, 0, 1_000_000).unwrap();
    assert!(matches!(
        db.import_block(&good, t),
        Ok(ImportOutcome::Extended { height: 2 })
    ));
}
