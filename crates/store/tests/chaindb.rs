//! Block import, queries, reorgs, invalid blocks and schema versions.

mod common;

use common::*;
use tb_chain::execute::{BlockError, TxError};
use tb_chain::{mine, StateRead};
use tb_store::{ChainDb, ImportError, ImportOutcome, StoreError, SCHEMA_VERSION};

#[test]
fn creates_genesis_then_extends_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    let miner = key(0);
    let (tip, txid, entries_before) = {
        let mut db = ChainDb::open(&path, params()).unwrap();
        assert_eq!(db.tip().height, 0);
        for _ in 0..3 {
            mine_on_tip(&mut db, &[], miner.address());
        }
        let tx = transfer(&db, &miner, key(1).address(), 1_000, 2_000, 0);
        let b = mine_on_tip(&mut db, std::slice::from_ref(&tx), miner.address());
        assert_eq!(b.txs.len(), 1);
        assert_eq!(db.state().account(&key(1).address()).consumer, 1_000);
        assert_eq!(db.state().account(&key(1).address()).industrial, 2_000);
        (db.tip().clone(), tx.id(), entries(&db))
    };
    let db = ChainDb::open(&path, params()).unwrap();
    assert_eq!(db.tip(), &tip);
    assert_eq!(entries(&db), entries_before);
    let loc = db.tx_location(&txid).unwrap().unwrap();
    assert_eq!((loc.height, loc.index), (4, 0));
    assert_eq!(db.block_at(4).unwrap().unwrap().txs[0].id(), txid);
    assert!(db.block_at(5).unwrap().is_none());
}

#[test]
fn reorg_to_heavier_fork_equals_applying_it_from_the_fork_point() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let mut a = ChainDb::open(d1.path().join("a.redb"), params()).unwrap();
    let mut b = ChainDb::open(d2.path().join("b.redb"), params()).unwrap();
    let (m, x, y) = (key(0), key(1), key(2));
    // Common prefix, imported into both.
    for _ in 0..3 {
        let blk = mine_on_tip(&mut a, &[], m.address());
        assert!(matches!(
            b.import_block(&blk, blk.header.timestamp_ms).unwrap(),
            ImportOutcome::Extended { .. }
        ));
    }
    // Branch A: 2 blocks paying x.
    for _ in 0..2 {
        let tx = transfer(&a, &m, x.address(), 5_000, 0, 0);
        mine_on_tip(&mut a, &[tx], m.address());
    }
    // Branch B: 3 blocks paying y, a handle, mined to y.
    let mut branch_b = Vec::new();
    for i in 0..3 {
        let tx = transfer(&b, &m, y.address(), 7_000 + i, 1, 0);
        branch_b.push(mine_on_tip(&mut b, &[tx], y.address()));
    }
    assert_ne!(a.tip_id(), b.tip_id());
    let a_nonce = a.state().account(&m.address()).nonce;
    assert_eq!(a_nonce, 2);
    // Feed B's branch to A: the first two are side chain, the third reorgs.
    let o1 = a
        .import_block(&branch_b[0], branch_b[0].header.timestamp_ms)
        .unwrap();
    let o2 = a
        .import_block(&branch_b[1], branch_b[1].header.timestamp_ms)
        .unwrap();
    assert_eq!(
        (o1, o2),
        (ImportOutcome::SideChain, ImportOutcome::SideChain)
    );
    let o3 = a
        .import_block(&branch_b[2], branch_b[2].header.timestamp_ms)
        .unwrap();
    assert!(
        matches!(
            o3,
            ImportOutcome::Reorged {
                undone: 2,
                applied: 3,
                ..
            }
        ),
        "{o3:?}"
    );
    assert_eq!(a.tip_id(), b.tip_id());
    assert_eq!(entries(&a), entries(&b));
    assert_eq!(a.state().account(&x.address()).consumer, 0);
    assert_eq!(a.state().account(&m.address()).nonce, 3);
    // Transactions of the abandoned branch left the index; B's are in it.
    for blk in &branch_b {
        assert_eq!(
            a.tx_location(&blk.txs[0].id()).unwrap().unwrap().block,
            blk.id()
        );
    }
    // Re-importing is a no-op.
    assert_eq!(
        a.import_block(&branch_b[2], 0).unwrap(),
        ImportOutcome::AlreadyKnown
    );
    // And the reorged store reopens at the same state.
    let tip = a.tip_id();
    drop(a);
    let a = ChainDb::open(d1.path().join("a.redb"), params()).unwrap();
    assert_eq!(a.tip_id(), tip);
    assert_eq!(entries(&a), entries(&b));
}

#[test]
fn invalid_body_is_refused_recorded_and_leaves_state_alone() {
    let d = tempfile::tempdir().unwrap();
    let mut db = ChainDb::open(d.path().join("c.redb"), params()).unwrap();
    let m = key(0);
    mine_on_tip(&mut db, &[], m.address());
    let before = entries(&db);
    let tip = db.tip_id();
    let tx = transfer(&db, &m, key(1).address(), 1, 0, 0);
    let now = db.tip().timestamp_ms + 1_000;
    let mut blk = db.build_template([&tx], now, m.address()).unwrap();
    // Tamper with the signature, keep the roots consistent with the txs.
    blk.txs[0].signature.0[3] ^= 1;
    blk.header.tx_root = tb_chain::block::tx_root(&blk.txs);
    blk.header = mine(&blk.header, 0, 1_000_000).unwrap();
    let err = db.import_block(&blk, now).unwrap_err();
    assert!(
        matches!(
            err,
            ImportError::Block(BlockError::Tx {
                index: 0,
                error: TxError::BadSignature
            })
        ),
        "{err}"
    );
    assert_eq!(db.tip_id(), tip);
    assert_eq!(entries(&db), before);
    assert!(matches!(
        db.import_block(&blk, now),
        Err(ImportError::KnownInvalid(_))
    ));
    // A child of the invalid block is refused too.
    let mut child = blk.clone();
    child.header.parent = blk.id();
    child.header.height += 1;
    assert!(db.import_block(&child, now).is_err());
    // Wrong state root.
    let mut blk2 = db.build_template([&tx], now, m.address()).unwrap();
    blk2.header.state_root.0[0] ^= 1;
    blk2.header = mine(&blk2.header, 0, 1_000_000).unwrap();
    assert!(matches!(
        db.import_block(&blk2, now),
        Err(ImportError::Block(BlockError::BadStateRoot { .. }))
    ));
    assert_eq!(entries(&db), before);
    // The honest block still imports.
    let mut ok = db.build_template([&tx], now, m.address()).unwrap();
    ok.header = mine(&ok.header, 0, 1_000_000).unwrap();
    assert!(matches!(
        db.import_block(&ok, now),
        Ok(ImportOutcome::Extended { height: 2 })
    ));
}

#[test]
fn reorg_onto_a_branch_with_an_invalid_block_rolls_back() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let mut a = ChainDb::open(d1.path().join("a.redb"), params()).unwrap();
    let mut b = ChainDb::open(d2.path().join("b.redb"), params()).unwrap();
    let m = key(0);
    let blk = mine_on_tip(&mut a, &[], m.address());
    b.import_block(&blk, blk.header.timestamp_ms).unwrap();
    let tx = transfer(&a, &m, key(1).address(), 3, 0, 0);
    mine_on_tip(&mut a, &[tx], m.address());
    let before = entries(&a);
    let tip = a.tip_id();
    // Branch on b: block 2' is fine, block 3' carries a wrong state root.
    let b2 = mine_on_tip(&mut b, &[], key(5).address());
    let now = b.tip().timestamp_ms + 1_000;
    let mut b3 = b.build_template([], now, key(5).address()).unwrap();
    b3.header.state_root.0[0] ^= 1;
    b3.header = mine(&b3.header, 0, 1_000_000).unwrap();
    assert_eq!(a.import_block(&b2, now).unwrap(), ImportOutcome::SideChain);
    assert!(matches!(
        a.import_block(&b3, now),
        Err(ImportError::Block(BlockError::BadStateRoot { .. }))
    ));
    assert_eq!(a.tip_id(), tip);
    assert_eq!(entries(&a), before);
    drop(a);
    let a = ChainDb::open(d1.path().join("a.redb"), params()).unwrap();
    assert_eq!(a.tip_id(), tip);
}

#[test]
fn header_rules_are_enforced_on_import() {
    let d = tempfile::tempdir().unwrap();
    let mut db = ChainDb::open(d.path().join("h.redb"), params()).unwrap();
    let m = key(0);
    let now = db.tip().timestamp_ms + 1_000;
    let good = db.build_template([], now, m.address()).unwrap();
    let check = |db: &mut ChainDb, f: &dyn Fn(&mut tb_chain::BlockHeader), now: u64| {
        let mut b = good.clone();
        f(&mut b.header);
        b.header = mine(&b.header, 0, 1_000_000).unwrap();
        match db.import_block(&b, now) {
            Err(ImportError::Block(e)) => e,
            other => panic!("expected a block error, got {other:?}"),
        }
    };
    assert!(matches!(
        check(&mut db, &|h| h.coinbase_consumer += 1, now),
        BlockError::BadCoinbase { .. }
    ));
    assert!(matches!(
        check(&mut db, &|h| h.difficulty = 2, now),
        BlockError::BadDifficulty { .. }
    ));
    assert!(matches!(
        check(&mut db, &|h| h.version = 9, now),
        BlockError::BadVersion(9)
    ));
    assert!(matches!(
        check(&mut db, &|h| h.height = 5, now),
        BlockError::BadHeight { .. }
    ));
    assert!(matches!(
        check(&mut db, &|h| h.timestamp_ms -= 1_000, now),
        BlockError::TimestampTooOld { .. }
    ));
    assert!(matches!(
        check(&mut db, &|_| {}, now - 60_000),
        BlockError::TimestampInFuture { .. }
    ));
    let mut orphan = good.clone();
    orphan.header.parent.0[0] ^= 1;
    assert!(matches!(
        db.import_block(&orphan, now),
        Err(ImportError::UnknownParent(_))
    ));
}

#[test]
fn schema_newer_and_obsolete_are_refused_wrong_chain_refused() {
    use redb::{Database, TableDefinition};
    let meta: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.redb");
    let m = key(0);
    let txid = {
        let mut db = ChainDb::open(&path, params()).unwrap();
        mine_on_tip(&mut db, &[], m.address());
        let tx = transfer(&db, &m, key(1).address(), 1, 0, 0);
        mine_on_tip(&mut db, std::slice::from_ref(&tx), m.address());
        tx.id()
    };
    let set_version = |v: u32| {
        let db = Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        w.open_table(meta)
            .unwrap()
            .insert("schema_version", v.to_le_bytes().as_slice())
            .unwrap();
        w.commit().unwrap();
    };
    // Pretend a newer build wrote it.
    set_version(SCHEMA_VERSION + 1);
    let err = ChainDb::open(&path, params()).unwrap_err();
    assert!(matches!(
        err,
        StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION
        } if found == SCHEMA_VERSION + 1
    ));
    assert_eq!(
        err.to_string(),
        "store schema is newer than this build: found v6, supports up to v5"
    );
    // A store written under the consensus encodings before v3 is refused, with the fix.
    for old in [1u32, 2] {
        set_version(old);
        let err = ChainDb::open(&path, params()).unwrap_err();
        assert!(
            matches!(err, StoreError::Obsolete { found, min: 3 } if found == old),
            "{err}"
        );
        assert!(
            err.to_string().contains("remove the data directory"),
            "{err}"
        );
    }
    set_version(SCHEMA_VERSION);
    let db = ChainDb::open(&path, params()).unwrap();
    assert_eq!(db.tx_location(&txid).unwrap().unwrap().height, 2);
    drop(db);
    let mut other = params();
    other.chain_id = 99;
    assert!(matches!(
        ChainDb::open(&path, other),
        Err(StoreError::WrongChain {
            found: 1337,
            expected: 99
        })
    ));
}

#[test]
fn a_branch_through_an_invalid_block_is_refused_without_re_executing_it() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let mut a = ChainDb::open(d1.path().join("a.redb"), params()).unwrap();
    let mut b = ChainDb::open(d2.path().join("b.redb"), params()).unwrap();
    let m = key(0);
    let a1 = mine_on_tip(&mut a, &[], m.address());
    b.import_block(&a1, a1.header.timestamp_ms).unwrap();
    mine_on_tip(&mut a, &[], m.address());
    mine_on_tip(&mut a, &[], m.address());
    let tip = a.tip_id();
    let before = entries(&a);
    // Side branch from a1: b2 (bad state root), b3, then two children of b3.
    let now = b.tip().timestamp_ms + 1_000;
    let mut b2 = b.build_template([], now, key(5).address()).unwrap();
    b2.header.state_root.0[0] ^= 1;
    b2.header = mine(&b2.header, 0, 1_000_000).unwrap();
    let child = |p: &tb_chain::Block, who: usize| {
        let mut c = p.clone();
        c.header.parent = p.id();
        c.header.height += 1;
        c.header.timestamp_ms += 1_000;
        c.header.beneficiary = key(who).address();
        c.header = mine(&c.header, 0, 1_000_000).unwrap();
        c
    };
    let b3 = child(&b2, 5);
    let b4 = child(&b3, 5);
    let b4x = child(&b3, 6);
    let late = now + 10_000;
    assert_eq!(a.import_block(&b2, late).unwrap(), ImportOutcome::SideChain);
    assert_eq!(a.import_block(&b3, late).unwrap(), ImportOutcome::SideChain);
    // b4 makes the branch heavier: b2 executes and fails.
    assert!(matches!(
        a.import_block(&b4, late),
        Err(ImportError::Block(BlockError::BadStateRoot { .. }))
    ));
    // b4x descends from b3 (never executed) but through b2: refused as known
    // invalid before anything is undone.
    match a.import_block(&b4x, late) {
        Err(ImportError::KnownInvalid(bad)) => assert_eq!(bad, b2.id()),
        other => panic!("expected KnownInvalid(b2), got {other:?}"),
    }
    assert_eq!(a.tip_id(), tip);
    assert_eq!(entries(&a), before);
}

/// A peer can send an honest header with a body that is not the one it commits to (a
/// transaction dropped, added or changed). That is no verdict on the header: the honest
/// block with the same id must still import, on the best chain and on a side chain.
#[test]
fn a_body_that_is_not_the_headers_does_not_poison_the_block() {
    let d = tempfile::tempdir().unwrap();
    let mut db = ChainDb::open(d.path().join("c.redb"), params()).unwrap();
    let m = key(0);
    mine_on_tip(&mut db, &[], m.address());
    let fork_point = db.tip_id();
    let txs = [
        transfer(&db, &m, key(1).address(), 1, 0, 0),
        transfer(&db, &m, key(1).address(), 1, 0, 1),
    ];
    let now = db.tip().timestamp_ms + 1_000;
    let mut honest = db.build_template(txs.iter(), now, m.address()).unwrap();
    honest.header = mine(&honest.header, 0, 1_000_000).unwrap();
    assert_eq!(honest.txs.len(), 2);
    let mut dropped = honest.clone();
    dropped.txs.pop();
    let mut changed = honest.clone();
    changed.txs[1].signature.0[3] ^= 1;
    let mut added = honest.clone();
    added.txs.push(honest.txs[0].clone());
    for bad in [&dropped, &changed, &added] {
        assert_eq!(bad.id(), honest.id(), "the same header");
        let err = db.import_block(bad, now).unwrap_err();
        assert!(
            matches!(err, ImportError::Block(BlockError::BadTxRoot)),
            "{err}"
        );
    }
    assert_eq!(db.tip_id(), fork_point, "nothing imported");
    assert!(matches!(
        db.import_block(&honest, now),
        Ok(ImportOutcome::Extended { height: 2 })
    ));
    // On a side chain (no more work than the tip): the wrong body is not stored
    // under the honest id either.
    let mut side = {
        let d2 = tempfile::tempdir().unwrap();
        let mut other = ChainDb::open(d2.path().join("o.redb"), params()).unwrap();
        other
            .import_block(&db.block_at(1).unwrap().unwrap(), now)
            .unwrap();
        let t = [transfer(&other, &m, key(2).address(), 1, 0, 0)];
        let mut b = other
            .build_template(t.iter(), now, key(3).address())
            .unwrap();
        b.header = mine(&b.header, 0, 1_000_000).unwrap();
        b
    };
    let good_side = side.clone();
    side.txs.clear();
    assert!(matches!(
        db.import_block(&side, now),
        Err(ImportError::Block(BlockError::BadTxRoot))
    ));
    assert!(matches!(
        db.import_block(&good_side, now),
        Ok(ImportOutcome::SideChain)
    ));
    assert_eq!(db.block(&good_side.id()).unwrap().unwrap(), good_side);
}
