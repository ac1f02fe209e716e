//! The job index (`ChainDb::jobs_newest`): the canonical chain's jobs newest first by
//! submission, paged, following a reorg, kept across a reopen, and built from the
//! canonical bodies when a v4 store (one without it) is opened.

mod common;

use common::*;
use redb::TableDefinition;
use tb_chain::market::exec::task_id;
use tb_chain::market::records as r;
use tb_chain::tx::{FeeSelector, JobSpec, SignedTx, SubmitJob, TxPayload};
use tb_chain::StateRead;
use tb_primitives::{Id, SecretKey};
use tb_store::{ChainDb, ImportOutcome, SCHEMA_VERSION};

/// A `SubmitJob` from `from` at its next nonce plus `skip`; `salt` makes it distinct.
fn submit(db: &ChainDb, from: &SecretKey, skip: u64, salt: u8) -> SignedTx {
    let nonce = db.state().account(&from.address()).nonce + skip;
    let spec = JobSpec {
        blob_sha256: [salt; 32],
        blob_bytes: 100,
        flops: 1_000,
        kernel_digest: [0; 32],
        model: 0,
        lane: 0,
        region: None,
        max_price: 1_000,
        redundancy: 1,
        deadline: db.tip().height + 500,
        n_ops: 2,
        outputs: vec![1],
        model_object: None,
    };
    SignedTx::sign(
        TxPayload::SubmitJob(SubmitJob {
            from: from.address(),
            spec,
            fee: 1_000,
            fee_selector: FeeSelector::Industrial.into(),
            nonce,
        }),
        from,
        db.params().chain_id,
    )
}

/// Mines `txs` on the tip (every one must apply); returns their task ids in order.
fn mine_jobs(db: &mut ChainDb, txs: &[SignedTx]) -> Vec<Id> {
    let b = mine_on_tip(db, txs, key(0).address());
    assert_eq!(b.txs.len(), txs.len(), "every job applied");
    let h = b.header.height;
    txs.iter()
        .map(|tx| task_id(db.params().chain_id, h, tx))
        .collect()
}

fn newest(db: &ChainDb) -> Vec<Id> {
    let (total, ids) = db.jobs_newest(0, usize::MAX).unwrap();
    assert_eq!(total, ids.len() as u64);
    ids
}

/// Blocks with jobs (two, one, none, three) on a funded miner; the ids oldest first.
fn chain_with_jobs(db: &mut ChainDb) -> Vec<Id> {
    let m = key(0);
    for _ in 0..3 {
        mine_on_tip(db, &[], m.address());
    }
    let mut ids = Vec::new();
    let a = [submit(db, &m, 0, 1), submit(db, &m, 1, 2)];
    ids.extend(mine_jobs(db, &a));
    let b = [submit(db, &m, 0, 3)];
    ids.extend(mine_jobs(db, &b));
    let t = transfer(db, &m, key(1).address(), 5, 0, 0);
    mine_on_tip(db, &[t], m.address());
    let c = [
        submit(db, &m, 0, 4),
        submit(db, &m, 1, 5),
        submit(db, &m, 2, 6),
    ];
    ids.extend(mine_jobs(db, &c));
    ids
}

#[test]
fn jobs_are_listed_newest_first_by_height_then_place_in_the_block_and_paged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    let mut db = ChainDb::open(&path, params()).unwrap();
    assert_eq!(db.jobs_newest(0, 10).unwrap(), (0, vec![]));
    let mut ids = chain_with_jobs(&mut db);
    ids.reverse();
    assert_eq!(newest(&db), ids);
    // Every listed id is a job the state holds.
    for t in &ids {
        assert!(r::job(db.state(), t).is_some(), "{t}");
    }
    let mut paged = Vec::new();
    for offset in [0, 4] {
        let (total, page) = db.jobs_newest(offset, 4).unwrap();
        assert_eq!(total, 6);
        paged.extend(page);
    }
    assert_eq!(paged, ids, "two pages are the whole list");
    assert_eq!(db.jobs_newest(6, 10).unwrap(), (6, vec![]));
    assert_eq!(db.jobs_newest(u64::MAX, 10).unwrap(), (6, vec![]));
    let mut seen = Vec::new();
    db.for_each_job_newest(|t| {
        seen.push(t);
        seen.len() < 3
    })
    .unwrap();
    assert_eq!(seen, ids[..3], "the walk stops when asked");
    drop(db);
    let db = ChainDb::open(&path, params()).unwrap();
    assert_eq!(newest(&db), ids, "kept across a reopen");
}

#[test]
fn a_reorg_drops_the_abandoned_branchs_jobs_and_lists_the_new_ones() {
    let d = tempfile::tempdir().unwrap();
    let mut a = ChainDb::open(d.path().join("a.redb"), params()).unwrap();
    let mut b = ChainDb::open(d.path().join("b.redb"), params()).unwrap();
    let m = key(0);
    for _ in 0..3 {
        let blk = mine_on_tip(&mut a, &[], m.address());
        b.import_block(&blk, blk.header.timestamp_ms).unwrap();
    }
    let shared = [submit(&a, &m, 0, 9)];
    let blk = mine_on_tip(&mut a, &shared, m.address());
    b.import_block(&blk, blk.header.timestamp_ms).unwrap();
    let shared_id = task_id(a.params().chain_id, blk.header.height, &shared[0]);
    // Branch A: one block with two jobs. Branch B: two blocks, a job in the second.
    let on_a = [submit(&a, &m, 0, 10), submit(&a, &m, 1, 11)];
    let a_ids = mine_jobs(&mut a, &on_a);
    assert_eq!(newest(&a), [a_ids[1], a_ids[0], shared_id]);
    let b1 = mine_on_tip(&mut b, &[], m.address());
    let on_b = [submit(&b, &m, 0, 12)];
    let b_ids = mine_jobs(&mut b, &on_b);
    let b2 = b.block_at(b.tip().height).unwrap().unwrap();
    a.import_block(&b1, b1.header.timestamp_ms).unwrap();
    let out = a.import_block(&b2, b2.header.timestamp_ms).unwrap();
    assert!(matches!(out, ImportOutcome::Reorged { .. }), "{out:?}");
    assert_eq!(newest(&a), [b_ids[0], shared_id]);
    assert_eq!(newest(&a), newest(&b));
}

#[test]
fn a_v4_store_gets_its_job_index_built_when_opened() {
    const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    const JOB_INDEX: TableDefinition<&[u8], &[u8]> = TableDefinition::new("job_index");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    let (ids, tip) = {
        let mut db = ChainDb::open(&path, params()).unwrap();
        let mut ids = chain_with_jobs(&mut db);
        ids.reverse();
        (ids, db.tip_id())
    };
    // What a v4 build wrote: the same tables without the job index.
    {
        let raw = redb::Database::open(&path).unwrap();
        let w = raw.begin_write().unwrap();
        assert!(w.delete_table(JOB_INDEX).unwrap());
        w.open_table(META)
            .unwrap()
            .insert("schema_version", 4u32.to_le_bytes().as_slice())
            .unwrap();
        w.commit().unwrap();
    }
    let db = ChainDb::open(&path, params()).unwrap();
    assert_eq!(db.tip_id(), tip);
    assert_eq!(newest(&db), ids);
    drop(db);
    assert_eq!(schema_of(&path), SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 5);
}
