//! A long seeded random history on the state on disk: a node whose cache is the
//! smallest allowed (so most reads miss and go to redb) and a node with the default
//! cache import the same blocks, fork, reorg and reopen; at every step their tips and
//! roots agree, and at the end a replay of the canonical chain in memory from the
//! genesis entries gives exactly the stored state.
//!
//! `TB_HISTORY_SEED` picks another history; `TB_HISTORY_ROUNDS` a longer one.

mod common;

use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
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

fn random_address(rng: &mut ChaCha8Rng) -> Address {
    Address(rng.gen())
}

fn genesis_entries(rng: &mut ChaCha8Rng) -> (Vec<(Vec<u8>, Vec<u8>)>, Vec<Address>) {
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
    for s in 0..n {
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
    assert_eq!(b.txs.len(), n, "every transfer applies");
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
    let p: ChainParams = params();
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
                let mine_a: Vec<_> = (0..d).map(|_| block_on(&mut a, &mut rng, &mut known)).collect();
                let mine_b: Vec<_> =
                    (0..=d).map(|_| block_on(&mut b, &mut rng, &mut known)).collect();
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
                assert!(matches!(import(&mut b, &blk), ImportOutcome::Extended { .. }));
            }
        }
        assert_eq!(a.tip_id(), b.tip_id(), "round {round}");
        for _ in 0..20 {
            let who = known[rng.gen_range(0..known.len())];
            assert_eq!(a.state().account(&who), b.state().account(&who), "round {round}");
        }
    }
    assert!(reorgs > 0 && reopens > 0, "{reorgs} reorgs, {reopens} reopens");

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
    assert!(usage.entries < known.len(), "nothing was evicted: {usage:?}");
    assert!(usage.bytes <= CACHE_BYTES_MIN, "{usage:?}");
    let mut stored = a.state().entries();
    stored.sort();
    let mut replayed = replay.entries();
    replayed.sort();
    assert_eq!(stored.len(), replayed.len());
    assert!(stored == replayed, "the stored entries differ from the replay's");
    eprintln!(
        "seed {seed:#x}: {rounds} rounds, height {}, {reorgs} reorgs, {reopens} reopens, {} entries, cache {usage:?}",
        a.tip().height,
        stored.len()
    );
}
