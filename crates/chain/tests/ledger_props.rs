//! Ledger properties: a seeded simulation of a devnet chain with random,
//! sometimes invalid, transactions; and hand-built invalid blocks that
//! `execute_block` must refuse.
//!
//! The simulation drives the pure API only (`build_block`, `mine`,
//! `validate_header`, `execute_block`, `State::apply`) and checks it against
//! an independent model of the ledger written here. After every block:
//!
//! * the block passes `validate_header` and `execute_block`, and its state
//!   root is the state's root once its changes are applied;
//! * `build_block` included exactly the candidates the model accepts, in order;
//! * every account and handle equals the model's;
//! * conservation: the coinbase summed over all heights equals the balances
//!   summed over all accounts plus the burned fees, per token;
//! * each account's nonce is the number of its transactions included so far;
//! * applying `undo` restores the parent's state root;
//! * the state root equals that of a state rebuilt from the same entries.
//!
//! A failing case prints its seed; `replay(seed)` reruns it.

use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use tb_chain::block::tx_root;
use tb_chain::consensus::TimedHeader;
use tb_chain::execute::Fees;
use tb_chain::state::Account;
use tb_chain::tx::handle_is_valid;
use tb_chain::tx::FeeSelector;
use tb_chain::{
    build_block, execute_block, genesis_header, mine, validate_header, Block, BlockError,
    BlockHeader, ChainParams, RegisterHandle, SignedTx, State, StateRead, Transfer, TxError,
    TxPayload,
};
use tb_primitives::{encode, Address, Id, SecretKey, MICRO_PER_TOKEN};

/// Blocks per simulated chain.
const SIM_BLOCKS: u64 = 40;
/// Candidates offered per block, at most.
const SIM_CANDIDATES_MAX: usize = 12;
/// Blocks mined before any transaction, all paid to the miner key.
const SIM_FUNDING_BLOCKS: u64 = 2;

// ---------------------------------------------------------------------------
// Chain helpers shared by the simulation and the rejection tests.

/// A chain under construction: headers from genesis, and the state at its tip.
struct Chain {
    params: ChainParams,
    headers: Vec<BlockHeader>,
    state: State,
}

impl Chain {
    fn new() -> Chain {
        let params = ChainParams::devnet();
        let genesis = genesis_header(&params);
        Chain {
            params,
            headers: vec![genesis],
            state: State::new(),
        }
    }

    fn tip(&self) -> &BlockHeader {
        self.headers.last().expect("genesis is always there")
    }

    /// The last up to `retarget_window + 1` headers, ending at the tip.
    fn ancestors(&self) -> Vec<TimedHeader> {
        let n = (self.params.retarget_window as usize + 1).min(self.headers.len());
        self.headers[self.headers.len() - n..]
            .iter()
            .map(|h| TimedHeader {
                timestamp_ms: h.timestamp_ms,
                difficulty: h.difficulty,
            })
            .collect()
    }

    /// Builds and mines a block on the tip (does not apply it).
    fn build(&mut self, candidates: &[SignedTx], now_ms: u64, beneficiary: Address) -> Block {
        let parent = self.tip().clone();
        let ancestors = self.ancestors();
        let mut block = build_block(
            &self.params,
            &mut self.state,
            &parent,
            &ancestors,
            candidates,
            now_ms,
            beneficiary,
        );
        block.header = mine(&block.header, 0, 1_000_000).expect("devnet difficulty is tiny");
        block
    }

    /// Validates, executes and applies a block; returns its effects.
    fn import(&mut self, block: &Block, now_ms: u64) -> tb_chain::BlockEffects {
        let parent = self.tip().clone();
        let ancestors = self.ancestors();
        validate_header(&self.params, &block.header, &parent, &ancestors, now_ms)
            .expect("a built block has a valid header");
        let root_before = self.state.root();
        let effects =
            execute_block(&self.params, &mut self.state, block, 1).expect("a built block executes");
        // On success execute_block leaves the block's post-state.
        assert_eq!(
            self.state.root(),
            block.header.state_root,
            "execute_block applied the block"
        );
        // Undo restores the parent state, and redo gets back to the block's.
        self.state.apply(&effects.undo);
        assert_eq!(
            self.state.root(),
            root_before,
            "undo restores the parent root"
        );
        self.state.apply(&effects.changes);
        assert_eq!(self.state.root(), block.header.state_root);
        self.headers.push(block.header.clone());
        effects
    }

    /// Time of the next block: one target interval after the tip.
    fn next_now_ms(&self) -> u64 {
        self.tip().timestamp_ms + self.params.block_time_target_ms
    }
}

/// A consumer transfer from `key` with a fee of 10 and no memo.
fn transfer(key: &SecretKey, to: Address, amount_consumer: u64, nonce: u64) -> Transfer {
    Transfer {
        from: key.address(),
        to,
        amount_consumer,
        amount_industrial: 0,
        fee: 10,
        fee_selector: FeeSelector::Consumer.into(),
        nonce,
        memo: Vec::new(),
    }
}

fn sign(t: Transfer, key: &SecretKey, chain_id: u64) -> SignedTx {
    SignedTx::sign(TxPayload::Transfer(t), key, chain_id)
}

// ---------------------------------------------------------------------------
// The model ledger: the rules of `docs/spec`, written out again by hand.

#[derive(Default)]
struct Model {
    accounts: BTreeMap<Address, Account>,
    handles: BTreeMap<String, Address>,
    handle_of: BTreeMap<Address, String>,
    burned: (u64, u64),
    /// Σ coinbase over all heights, per token.
    minted: (u128, u128),
    /// The AI Compute Fund's balances, per token.
    fund: (u128, u128),
}

impl Model {
    fn account(&self, a: &Address) -> Account {
        self.accounts.get(a).cloned().unwrap_or_default()
    }

    /// Applies `tx` if the rules accept it; `sig_ok` is whether the generator
    /// produced an honest signature. Returns whether it was applied.
    fn apply_tx(
        &mut self,
        params: &ChainParams,
        tx: &SignedTx,
        sig_ok: bool,
        fees: &mut Fees,
    ) -> bool {
        if !sig_ok || tx.payload.fee_selector() > 2 || encode(tx).len() > params.tx_bytes_max {
            return false;
        }
        let from = tx.payload.from();
        let mut sender = self.account(&from);
        if tx.payload.nonce() != sender.nonce {
            return false;
        }
        let fee = tx.payload.fee();
        let (fee_c, fee_i) = match tx.payload.fee_selector() {
            0 => (fee, 0),
            1 => (0, fee),
            _ => (fee - fee / 2, fee / 2),
        };
        let (amount_c, amount_i) = match &tx.payload {
            TxPayload::Transfer(t) => (t.amount_consumer, t.amount_industrial),
            TxPayload::RegisterHandle(_) => (0, 0),
            // The generator makes no market transactions (the market has its own tests).
            _ => return false,
        };
        let (Some(need_c), Some(need_i)) =
            (amount_c.checked_add(fee_c), amount_i.checked_add(fee_i))
        else {
            return false;
        };
        if sender.consumer < need_c || sender.industrial < need_i {
            return false;
        }
        let (Some(fees_c), Some(fees_i)) = (
            fees.consumer.checked_add(fee_c),
            fees.industrial.checked_add(fee_i),
        ) else {
            return false;
        };
        sender.consumer -= need_c;
        sender.industrial -= need_i;
        sender.nonce += 1;
        match &tx.payload {
            TxPayload::Transfer(t) => {
                if t.memo.len() > params.memo_bytes_max {
                    return false;
                }
                let mut to = if t.to == from {
                    sender.clone()
                } else {
                    self.account(&t.to)
                };
                let (Some(c), Some(i)) = (
                    to.consumer.checked_add(amount_c),
                    to.industrial.checked_add(amount_i),
                ) else {
                    return false;
                };
                to.consumer = c;
                to.industrial = i;
                if t.to == from {
                    self.accounts.insert(from, to);
                } else {
                    self.accounts.insert(from, sender);
                    self.accounts.insert(t.to, to);
                }
            }
            TxPayload::RegisterHandle(h) => {
                if !handle_is_valid(&h.handle)
                    || self.handles.contains_key(&h.handle)
                    || self.handle_of.contains_key(&from)
                {
                    return false;
                }
                self.handles.insert(h.handle.clone(), from);
                self.handle_of.insert(from, h.handle.clone());
                self.accounts.insert(from, sender);
            }
            _ => return false,
        }
        fees.consumer = fees_c;
        fees.industrial = fees_i;
        true
    }

    /// Coinbase and unburned fees to the beneficiary; the rest is burned.
    fn settle(&mut self, params: &ChainParams, header: &BlockHeader, fees: Fees) {
        let burn_c = fees.consumer * params.fee_burn_bps / 10_000;
        let burn_i = fees.industrial * params.fee_burn_bps / 10_000;
        // The AI Compute Fund's shares of the issuance and the fees.
        let m = &params.market;
        let fund_c = header.coinbase_consumer * m.block_mint_bps / 10_000
            + fees.consumer * m.fee_share_bps / 10_000;
        let fund_i = header.coinbase_industrial * m.block_mint_bps / 10_000
            + fees.industrial * m.fee_share_bps / 10_000;
        let mut b = self.account(&header.beneficiary);
        b.consumer += header.coinbase_consumer + fees.consumer - burn_c - fund_c;
        b.industrial += header.coinbase_industrial + fees.industrial - burn_i - fund_i;
        self.accounts.insert(header.beneficiary, b);
        self.fund.0 += fund_c as u128;
        self.fund.1 += fund_i as u128;
        self.burned.0 += burn_c;
        self.burned.1 += burn_i;
        self.minted.0 += header.coinbase_consumer as u128;
        self.minted.1 += header.coinbase_industrial as u128;
    }
}

// ---------------------------------------------------------------------------
// Transaction generator.

/// The handles that random registrations draw from, so that collisions happen.
const HANDLE_POOL: &[&str] = &["@alice", "@bob", "@carol", "@dave", "@erin", "@frank"];

struct Sim {
    chain: Chain,
    model: Model,
    rng: ChaCha8Rng,
    keys: Vec<SecretKey>,
    /// Addresses that hold no key (receive only).
    strangers: Vec<Address>,
    /// Transactions included per sender, counted from the blocks themselves.
    included: BTreeMap<Address, u64>,
    /// Every transaction included so far (for replays).
    history: Vec<SignedTx>,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let keys = (0..4).map(|i| SecretKey::dev(&format!("k{i}"))).collect();
        let strangers = (0..2).map(|_| Address(rng.gen())).collect();
        Sim {
            chain: Chain::new(),
            model: Model::default(),
            rng,
            keys,
            strangers,
            included: BTreeMap::new(),
            history: Vec::new(),
        }
    }

    fn recipient(&mut self) -> Address {
        if self.rng.gen_bool(0.15) {
            *self.strangers.choose(&mut self.rng).expect("non-empty")
        } else {
            self.keys
                .choose(&mut self.rng)
                .expect("non-empty")
                .address()
        }
    }

    /// Random amount up to about a third of `balance`, sometimes zero.
    fn amount(&mut self, balance: u64) -> u64 {
        if self.rng.gen_bool(0.2) {
            0
        } else {
            self.rng.gen_range(0..=balance / 3)
        }
    }

    /// One candidate and whether its signature is honest. `next_nonce` is the
    /// generator's guess of the sender's next nonce within this block.
    fn candidate(&mut self, next_nonce: &mut [u64]) -> (SignedTx, bool) {
        let chain_id = self.chain.params.chain_id;
        let k = self.rng.gen_range(0..self.keys.len());
        let key = self.keys[k].clone();
        let bal = self.model.account(&key.address());
        let mut nonce = next_nonce[k];
        let mut fee = self.rng.gen_range(0..20_000u64);
        let mut selector = self.rng.gen_range(0..=2u8);
        let mut amount_c = self.amount(bal.consumer);
        let mut amount_i = self.amount(bal.industrial);
        let mut memo = vec![0u8; self.rng.gen_range(0..=32)];
        self.rng.fill(memo.as_mut_slice());
        let mut sig_ok = true;
        let mut wrong_chain = false;
        let mut wrong_key = false;
        let is_handle = self.rng.gen_bool(0.2);
        let mut handle = if self.rng.gen_bool(0.7) {
            HANDLE_POOL
                .choose(&mut self.rng)
                .expect("non-empty")
                .to_string()
        } else {
            format!("@h{}", self.rng.gen_range(0..1_000_000u32))
        };
        // About a third of the candidates carry a deliberate fault.
        match self.rng.gen_range(0..30) {
            0 => nonce += self.rng.gen_range(1..3),
            1 => nonce = nonce.saturating_sub(self.rng.gen_range(1..3)),
            2 => amount_c = bal.consumer + self.rng.gen_range(1..1_000),
            3 => amount_i = bal.industrial + self.rng.gen_range(1..1_000),
            4 => selector = self.rng.gen_range(3..=255),
            5 => memo = vec![1; self.chain.params.memo_bytes_max + self.rng.gen_range(1..40)],
            6 => {
                sig_ok = false;
                wrong_key = true;
            }
            7 => {
                sig_ok = false;
                wrong_chain = true;
            }
            8 => {
                amount_c = u64::MAX;
                fee = fee.max(2);
            }
            9 => handle = "@Not_valid".to_string(),
            10 => {
                // A replay of an already included transaction.
                if let Some(old) = self.history.choose(&mut self.rng) {
                    return (old.clone(), true);
                }
            }
            _ => {}
        }
        let payload = if is_handle {
            TxPayload::RegisterHandle(RegisterHandle {
                from: key.address(),
                handle,
                fee,
                fee_selector: selector,
                nonce,
            })
        } else {
            TxPayload::Transfer(Transfer {
                from: key.address(),
                to: self.recipient(),
                amount_consumer: amount_c,
                amount_industrial: amount_i,
                fee,
                fee_selector: selector,
                nonce,
                memo,
            })
        };
        let signer = if wrong_key {
            self.keys[(k + 1) % self.keys.len()].clone()
        } else {
            key
        };
        let tx = SignedTx::sign(
            payload,
            &signer,
            if wrong_chain { chain_id + 1 } else { chain_id },
        );
        if nonce == next_nonce[k] {
            next_nonce[k] += 1;
        }
        (tx, sig_ok)
    }

    fn step(&mut self) {
        let height = self.chain.tip().height + 1;
        // Jittered clock, so the difficulty retarget has something to do.
        let now_ms = self.chain.tip().timestamp_ms + self.rng.gen_range(500..=1_500);
        let beneficiary = if height <= SIM_FUNDING_BLOCKS || self.rng.gen_bool(0.5) {
            self.keys[0].address()
        } else {
            self.recipient()
        };
        let mut candidates = Vec::new();
        if height > SIM_FUNDING_BLOCKS {
            let mut next_nonce: Vec<u64> = self
                .keys
                .iter()
                .map(|k| self.model.account(&k.address()).nonce)
                .collect();
            for _ in 0..self.rng.gen_range(0..=SIM_CANDIDATES_MAX) {
                candidates.push(self.candidate(&mut next_nonce));
            }
        }

        // What the model expects the block to hold.
        let params = self.chain.params.clone();
        let mut fees = Fees::default();
        let expected: Vec<SignedTx> = candidates
            .iter()
            .filter(|(tx, sig_ok)| self.model.apply_tx(&params, tx, *sig_ok, &mut fees))
            .map(|(tx, _)| tx.clone())
            .collect();

        let offered: Vec<SignedTx> = candidates.into_iter().map(|(tx, _)| tx).collect();
        let block = self.chain.build(&offered, now_ms, beneficiary);
        assert_eq!(block.header.height, height);
        assert_eq!(
            block.txs, expected,
            "build_block picks exactly the valid candidates"
        );
        assert_eq!(
            Block::decode(&encode(&block), &params).as_ref(),
            Ok(&block),
            "a built block round-trips"
        );
        let effects = self.chain.import(&block, now_ms);
        assert_eq!(effects.fees, fees);
        self.model.settle(&params, &block.header, fees);
        for tx in &block.txs {
            *self.included.entry(tx.payload.from()).or_default() += 1;
            self.history.push(tx.clone());
        }
        self.check_invariants();
    }

    fn check_invariants(&mut self) {
        // The root depends on the contents only, not on the order of writes.
        let rebuilt = State::from_entries(self.chain.state.entries()).root();
        assert_eq!(
            self.chain.state.root(),
            rebuilt,
            "root is a function of the entries"
        );
        let state = &self.chain.state;
        // Conservation, per token.
        let (sum_c, sum_i) = state.balance_sums();
        let totals = state.totals();
        let minted_c: u128 = self
            .chain
            .headers
            .iter()
            .map(|h| h.coinbase_consumer as u128)
            .sum();
        let minted_i: u128 = self
            .chain
            .headers
            .iter()
            .map(|h| h.coinbase_industrial as u128)
            .sum();
        let fund = tb_chain::market::records::fund(state);
        assert_eq!(
            (fund.consumer as u128, fund.industrial as u128),
            self.model.fund,
            "fund as the model has it"
        );
        assert_eq!(
            minted_c,
            sum_c + totals.burned_consumer as u128 + fund.consumer as u128,
            "consumer conserved"
        );
        assert_eq!(
            minted_i,
            sum_i + totals.burned_industrial as u128 + fund.industrial as u128,
            "industrial conserved"
        );
        assert_eq!((minted_c, minted_i), self.model.minted);
        assert_eq!(
            (totals.burned_consumer, totals.burned_industrial),
            self.model.burned
        );
        // Nonces count included transactions.
        let addrs: Vec<Address> = self
            .keys
            .iter()
            .map(SecretKey::address)
            .chain(self.strangers.iter().copied())
            .collect();
        for a in &addrs {
            let n = self.included.get(a).copied().unwrap_or(0);
            assert_eq!(state.account(a).nonce, n, "nonce of {a:?}");
        }
        // Every account and handle as the model has it.
        for (a, acc) in &self.model.accounts {
            assert_eq!(&state.account(a), acc, "account {a:?}");
        }
        let model_sum: (u128, u128) = self.model.accounts.values().fold((0, 0), |s, a| {
            (s.0 + a.consumer as u128, s.1 + a.industrial as u128)
        });
        assert_eq!(
            model_sum,
            (sum_c, sum_i),
            "no account outside the model holds tokens"
        );
        for (h, owner) in &self.model.handles {
            assert_eq!(state.handle_owner(h), Some(*owner));
            assert_eq!(state.handle_of(owner).as_deref(), Some(h.as_str()));
        }
        for h in HANDLE_POOL {
            assert_eq!(state.handle_owner(h), self.model.handles.get(*h).copied());
        }
    }
}

/// Runs one seeded simulation; returns how many transactions were included.
fn replay(seed: u64) -> usize {
    let mut sim = Sim::new(seed);
    for _ in 0..SIM_BLOCKS {
        sim.step();
    }
    sim.history.len()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_ledgers_conserve_tokens_and_count_nonces(seed in any::<u64>()) {
        replay(seed);
    }
}

/// The simulation is not vacuous: over a few seeds it includes transactions
/// and registers handles.
#[test]
fn simulation_includes_transactions() {
    let mut sim = Sim::new(7);
    for _ in 0..SIM_BLOCKS {
        sim.step();
    }
    assert!(
        sim.history.len() > 20,
        "only {} txs included",
        sim.history.len()
    );
    assert!(!sim.model.handles.is_empty(), "no handle registered");
    assert!(sim.model.burned.0 > 0, "no fee burned");
    assert!(
        sim.model.minted.0 == SIM_BLOCKS as u128 * 50 * MICRO_PER_TOKEN as u128,
        "devnet mints 50 tokens a block"
    );
}

// ---------------------------------------------------------------------------
// Blocks that execute_block must refuse.

/// A chain whose `k0` has been funded by two blocks, and a block on top of it
/// holding three transfers from `k0` (nonces 0, 1, 2) to `k1`.
fn funded_chain_and_block() -> (Chain, Block, Vec<SignedTx>) {
    let mut chain = Chain::new();
    let k0 = SecretKey::dev("k0");
    let k1 = SecretKey::dev("k1").address();
    for _ in 0..2 {
        let now = chain.next_now_ms();
        let b = chain.build(&[], now, k0.address());
        chain.import(&b, now);
    }
    let chain_id = chain.params.chain_id;
    let txs: Vec<SignedTx> = (0..3)
        .map(|n| sign(transfer(&k0, k1, 1_000 + n, n), &k0, chain_id))
        .collect();
    let now = chain.next_now_ms();
    let block = chain.build(&txs, now, k0.address());
    assert_eq!(block.txs, txs, "all three transfers are valid");
    (chain, block, txs)
}

/// Replaces the block's transactions, fixes the tx root and re-mines.
fn with_txs(block: &Block, txs: Vec<SignedTx>) -> Block {
    let mut b = block.clone();
    b.header.tx_root = tx_root(&txs);
    b.txs = txs;
    b.header = mine(&b.header, 0, 1_000_000).expect("devnet difficulty is tiny");
    b
}

/// Executes `block` on the chain's state, expecting `expected`, and checks
/// the state was left untouched.
fn check_refused(chain: &mut Chain, block: &Block, expected: BlockError) {
    let root = chain.state.root();
    let got = execute_block(&chain.params, &mut chain.state, block, 1);
    assert_eq!(got, Err(expected));
    assert_eq!(
        chain.state.root(),
        root,
        "a refused block leaves the state as it was"
    );
}

#[test]
fn the_honest_block_executes() {
    let (mut chain, block, _) = funded_chain_and_block();
    let now = block.header.timestamp_ms;
    chain.import(&block, now);
    assert_eq!(
        chain.state.account(&SecretKey::dev("k0").address()).nonce,
        3
    );
}

#[test]
fn refuses_a_tampered_signature() {
    let (mut chain, block, mut txs) = funded_chain_and_block();
    txs[1].signature.0[0] ^= 1;
    let bad = with_txs(&block, txs);
    check_refused(
        &mut chain,
        &bad,
        BlockError::Tx {
            index: 1,
            error: TxError::BadSignature,
        },
    );
}

#[test]
fn refuses_a_tampered_payload() {
    let (mut chain, block, mut txs) = funded_chain_and_block();
    if let TxPayload::Transfer(t) = &mut txs[2].payload {
        t.amount_consumer += 1;
    }
    let bad = with_txs(&block, txs);
    check_refused(
        &mut chain,
        &bad,
        BlockError::Tx {
            index: 2,
            error: TxError::BadSignature,
        },
    );
}

#[test]
fn refuses_a_nonce_gap() {
    let (mut chain, block, txs) = funded_chain_and_block();
    let bad = with_txs(&block, vec![txs[0].clone(), txs[2].clone()]);
    check_refused(
        &mut chain,
        &bad,
        BlockError::Tx {
            index: 1,
            error: TxError::BadNonce {
                expected: 1,
                got: 2,
            },
        },
    );
    // A gap from the start.
    let bad = with_txs(&block, vec![txs[1].clone()]);
    check_refused(
        &mut chain,
        &bad,
        BlockError::Tx {
            index: 0,
            error: TxError::BadNonce {
                expected: 0,
                got: 1,
            },
        },
    );
}

#[test]
fn refuses_a_repeated_nonce() {
    let (mut chain, block, txs) = funded_chain_and_block();
    // The same transaction twice.
    let bad = with_txs(&block, vec![txs[0].clone(), txs[0].clone()]);
    check_refused(
        &mut chain,
        &bad,
        BlockError::Tx {
            index: 1,
            error: TxError::BadNonce {
                expected: 1,
                got: 0,
            },
        },
    );
    // A different transaction reusing nonce 1.
    let k0 = SecretKey::dev("k0");
    let other = sign(
        transfer(&k0, SecretKey::dev("k2").address(), 5, 1),
        &k0,
        chain.params.chain_id,
    );
    let bad = with_txs(&block, vec![txs[0].clone(), txs[1].clone(), other]);
    check_refused(
        &mut chain,
        &bad,
        BlockError::Tx {
            index: 2,
            error: TxError::BadNonce {
                expected: 2,
                got: 1,
            },
        },
    );
}

#[test]
fn refuses_a_wrong_state_root() {
    let (mut chain, block, _) = funded_chain_and_block();
    let mut bad = block.clone();
    let wrong = Id([7; 32]);
    bad.header.state_root = wrong;
    bad.header = mine(&bad.header, 0, 1_000_000).expect("devnet difficulty is tiny");
    check_refused(
        &mut chain,
        &bad,
        BlockError::BadStateRoot {
            expected: wrong,
            got: block.header.state_root,
        },
    );
}

#[test]
fn refuses_a_wrong_tx_root() {
    let (mut chain, block, _) = funded_chain_and_block();
    let mut bad = block.clone();
    bad.header.tx_root = tx_root(&[]);
    check_refused(&mut chain, &bad, BlockError::BadTxRoot);
}

#[test]
fn refuses_what_build_block_would_skip() {
    let (mut chain, block, txs) = funded_chain_and_block();
    let k0 = SecretKey::dev("k0");
    let k1 = SecretKey::dev("k1").address();
    let id = chain.params.chain_id;
    let memo_max = chain.params.memo_bytes_max;
    let cases = [
        (
            Transfer {
                fee_selector: 3,
                ..transfer(&k0, k1, 1, 1)
            },
            TxError::InvalidSelector(3),
        ),
        (
            Transfer {
                memo: vec![0; memo_max + 1],
                ..transfer(&k0, k1, 1, 1)
            },
            TxError::MemoTooLarge {
                len: memo_max + 1,
                max: memo_max,
            },
        ),
        (
            transfer(&k0, k1, 1_000 * MICRO_PER_TOKEN, 1),
            TxError::InsufficientBalance {
                token: tb_primitives::Token::Consumer,
                need: 1_000 * MICRO_PER_TOKEN + 10,
                // Two 50-token coinbases less the fund's 1.5 % (block_mint_bps), then
                // the first transfer's amount and fee.
                have: 100 * MICRO_PER_TOKEN * (10_000 - chain.params.market.block_mint_bps)
                    / 10_000
                    - 1_000
                    - 10,
            },
        ),
    ];
    for (t, error) in cases {
        let bad = with_txs(&block, vec![txs[0].clone(), sign(t, &k0, id)]);
        check_refused(&mut chain, &bad, BlockError::Tx { index: 1, error });
    }
}

#[test]
fn build_block_leaves_state_untouched() {
    let (mut chain, _, txs) = funded_chain_and_block();
    let root = chain.state.root();
    let now = chain.next_now_ms();
    let k0 = SecretKey::dev("k0").address();
    let _ = chain.build(&txs, now, k0);
    assert_eq!(chain.state.root(), root);
}
