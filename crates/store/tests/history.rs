//! A long seeded random history on the state on disk: a node whose cache is the
//! smallest allowed (so most reads miss and go to redb) and a node with the default
//! cache import the same blocks, fork, reorg and reopen; at every step their tips and
//! roots agree, and at the end a replay of the canonical chain in memory from the
//! genesis entries gives exactly the stored state. Published objects (sharing a
//! chunk, sent whole or in part, in any order, their partial copies expiring) check
//! the content-addressed chunk store: each distinct chunk value is stored once and
//! counted once per state entry that names it, through every undo.
//!
//! `TB_HISTORY_SEED` picks another history; `TB_HISTORY_ROUNDS` a longer one.

mod common;

use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use redb::{ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use tb_chain::state::{account_key, Account};
use tb_chain::{execute_block, ChainParams, State, StateRead};
use tb_primitives::{encode, Address, SecretKey};
use tb_store::{ChainDb, ImportOutcome, StoreConfig, CACHE_BYTES_MIN};

/// Accounts in the genesis state: enough that the trie's nodes and entries are
/// several times the small cache.
const GENESIS_ACCOUNTS: usize = 20_000;
const SENDERS: usize = 12;

fn sender(i: usize) -> SecretKey {
    SecretKey::dev(&format!("history-sender-{i}"))
}

/// Four objects of three chunks whose first chunk is the same.
fn objects(p: &ChainParams) -> Vec<Vec<tb_chain::tx::PublishBlob>> {
    (0..4u8)
        .map(|k| {
            let mut bytes: Vec<u8> = (0..1024).map(|i| (i % 251) as u8).collect();
            bytes.extend((0..1500).map(|i| (i % 241) as u8 ^ k));
            tb_chain::market::objects::publish_payloads(&p.market, Address([0; 32]), &bytes)
        })
        .collect()
}

fn history_params() -> ChainParams {
    let mut p = params();
    p.market.blob_chunk_bytes = 1024;
    p.market.blob_retention_blocks = 12;
    p
}

fn random_address(rng: &mut ChaCha8Rng) -> Address {
    Address(rng.gen())
}

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn genesis_entries(rng: &mut ChaCha8Rng) -> (Entries, Vec<Address>) {
    let mut addrs = Vec::new();
    let mut e = Vec::new();
    for i in 0..SENDERS {
        let a = Account {
            nonce: 0,
            consumer: 1 << 40,
            industrial: 1 << 40,
        };
        e.push((account_key(&sender(i).address()), encode(&a)));
    }
    for _ in 0..GENESIS_ACCOUNTS {
        let addr = random_address(rng);
        let a = Account {
            nonce: 0,
            consumer: rng.gen_range(1..1_000_000),
            industrial: rng.gen_range(0..1_000),
        };
        e.push((account_key(&addr), encode(&a)));
        addrs.push(addr);
    }
    (e, addrs)
}

/// A block of up to `SENDERS` transfers to existing or fresh accounts.
fn block_on(db: &mut ChainDb, rng: &mut ChaCha8Rng, known: &mut Vec<Address>) -> tb_chain::Block {
    let n = rng.gen_range(0..=SENDERS);
    let mut txs = Vec::new();
    let objs = objects(db.params());
    for s in 0..n {
        if rng.gen_bool(0.25) {
            // Some chunks of one object, in a random order.
            let mut chunks = objs[rng.gen_range(0..objs.len())].clone();
            chunks.retain(|_| rng.gen_bool(0.7));
            for i in (1..chunks.len()).rev() {
                chunks.swap(i, rng.gen_range(0..=i));
            }
            let k = sender(s);
            let nonce = db.state().account(&k.address()).nonce;
            for (j, mut c) in chunks.into_iter().enumerate() {
                c.from = k.address();
                c.nonce = nonce + j as u64;
                txs.push(tb_chain::tx::SignedTx::sign(
                    tb_chain::tx::TxPayload::PublishBlob(c),
                    &k,
                    db.params().chain_id,
                ));
            }
            continue;
        }
        let to = if rng.gen_bool(0.3) {
            let a = random_address(rng);
            known.push(a);
            a
        } else {
            known[rng.gen_range(0..known.len())]
        };
        txs.push(transfer(
            db,
            &sender(s),
            to,
            rng.gen_range(1..10_000),
            rng.gen_range(0..10),
            0,
        ));
    }
    let miner = sender(rng.gen_range(0..SENDERS)).address();
    let b = mine_on_tip(db, &txs, miner);
    assert_eq!(b.txs.len(), txs.len(), "every transaction applies");
    b
}

fn import(db: &mut ChainDb, b: &tb_chain::Block) -> ImportOutcome {
    db.import_block(b, b.header.timestamp_ms).unwrap()
}

fn small() -> StoreConfig {
    StoreConfig {
        cache_bytes: CACHE_BYTES_MIN,
    }
}

#[test]
fn a_small_cache_and_a_large_one_agree_through_forks_reorgs_and_reopens_and_with_a_replay() {
    let seed: u64 = std::env::var("TB_HISTORY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x4157);
    let rounds: usize = std::env::var("TB_HISTORY_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (genesis, mut known) = genesis_entries(&mut rng);
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (dir.path().join("a.redb"), dir.path().join("b.redb"));
    let batches = || genesis.chunks(4_096).map(|c| c.to_vec());
    let p = history_params();
    let mut a = ChainDb::create_with_genesis_state(&pa, p.clone(), small(), batches()).unwrap();
    let mut b =
        ChainDb::create_with_genesis_state(&pb, p.clone(), StoreConfig::default(), batches())
            .unwrap();
    assert_eq!(a.tip_id(), b.tip_id());
    let (mut reorgs, mut reopens) = (0, 0);
    for round in 0..rounds {
        match rng.gen_range(0..10) {
            // A fork: A mines `d` blocks, B mines `d + 1` on the same parent; each
            // then hears the other's branch and both end on B's.
            0..=2 => {
                let d = rng.gen_range(1..=3);
                let mine_a: Vec<_> = (0..d)
                    .map(|_| block_on(&mut a, &mut rng, &mut known))
                    .collect();
                let mine_b: Vec<_> = (0..=d)
                    .map(|_| block_on(&mut b, &mut rng, &mut known))
                    .collect();
                for blk in &mine_a {
                    import(&mut b, blk);
                }
                let mut last = ImportOutcome::SideChain;
                for blk in &mine_b {
                    last = import(&mut a, blk);
                }
                assert!(
                    matches!(last, ImportOutcome::Reorged { undone, applied, .. } if undone == d && applied == d + 1),
                    "round {round}: {last:?}"
                );
                reorgs += 1;
            }
            // The small-cache node restarts.
            3 => {
                drop(a);
                a = ChainDb::open_with(&pa, p.clone(), small()).unwrap();
                reopens += 1;
            }
            _ => {
                let blk = block_on(&mut a, &mut rng, &mut known);
                assert!(matches!(
                    import(&mut b, &blk),
                    ImportOutcome::Extended { .. }
                ));
            }
        }
        assert_eq!(a.tip_id(), b.tip_id(), "round {round}");
        for _ in 0..20 {
            let who = known[rng.gen_range(0..known.len())];
            assert_eq!(
                a.state().account(&who),
                b.state().account(&who),
                "round {round}"
            );
        }
    }
    assert!(
        reorgs > 0 && reopens > 0,
        "{reorgs} reorgs, {reopens} reopens"
    );

    // Replay the canonical chain in memory from the genesis entries.
    let mut replay = State::from_entries(genesis.iter().cloned());
    for h in 1..=a.tip().height {
        let blk = a.block_at(h).unwrap().unwrap();
        execute_block(&p, &mut replay, &blk, 1).unwrap();
        assert_eq!(replay.root(), blk.header.state_root, "height {h}");
    }
    // Every account read through the small cache (which cannot hold them all, so
    // it evicts) equals the replay's.
    for who in &known {
        assert_eq!(a.state().account(who), replay.account(who));
    }
    let usage = a.cache_usage();
    assert!(usage.misses > known.len() as u64 / 2, "{usage:?}");
    assert!(
        usage.entries < known.len(),
        "nothing was evicted: {usage:?}"
    );
    assert!(usage.bytes <= CACHE_BYTES_MIN, "{usage:?}");
    let mut stored = a.state().entries();
    stored.sort();
    let mut replayed = replay.entries();
    replayed.sort();
    assert_eq!(stored.len(), replayed.len());
    assert!(
        stored == replayed,
        "the stored entries differ from the replay's"
    );
    let chunk_entries = stored
        .iter()
        .filter(|(k, _)| tb_chain::market::records::is_chunk_key(k))
        .count();
    assert!(chunk_entries > 0, "the history published nothing");
    let height = a.tip().height;
    drop(a);
    check_chunk_refs(&pa);
    eprintln!(
        "seed {seed:#x}: {rounds} rounds, height {height}, {reorgs} reorgs, {reopens} reopens, {} entries ({chunk_entries} chunks), cache {usage:?}",
        stored.len()
    );
}

/// In the store's tables: every chunk entry in `state` names a value hash; each
/// hash is counted in `chunk_refs` exactly as often as entries name it, and
/// `chunks` holds exactly the counted hashes (nothing leaked, nothing dangling).
fn check_chunk_refs(path: &std::path::Path) {
    const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
    const CHUNKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("chunks");
    const REFS: TableDefinition<&[u8], u64> = TableDefinition::new("chunk_refs");
    let db = redb::Database::open(path).unwrap();
    let r = db.begin_read().unwrap();
    let mut named: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for e in r.open_table(STATE).unwrap().iter().unwrap() {
        let (k, v) = e.unwrap();
        if tb_chain::market::records::is_chunk_key(k.value()) {
            assert_eq!(v.value().len(), 32);
            *named.entry(v.value().to_vec()).or_default() += 1;
        }
    }
    let counted: BTreeMap<Vec<u8>, u64> = r
        .open_table(REFS)
        .unwrap()
        .iter()
        .unwrap()
        .map(|e| {
            let (k, v) = e.unwrap();
            (k.value().to_vec(), v.value())
        })
        .collect();
    assert_eq!(named, counted);
    let held: Vec<Vec<u8>> = r
        .open_table(CHUNKS)
        .unwrap()
        .iter()
        .unwrap()
        .map(|e| e.unwrap().0.value().to_vec())
        .collect();
    assert_eq!(held, counted.keys().cloned().collect::<Vec<_>>());
}
