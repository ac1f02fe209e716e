//! The mempool's tests: admission codes, nonce queues, eviction, TTL, orphans, reorgs,
//! and random operation sequences that keep its invariants.

use super::*;
use crate::execute::{apply_tx, Fees};
use crate::state::{account_key, handle_key, reverse_handle_key, Account, Overlay, State};
use crate::tx::FeeSelector;
use crate::tx::{RegisterHandle, Transfer};
use proptest::prelude::*;
use tb_primitives::{encode, SecretKey};

impl Mempool {
    /// Every invariant of the module docs; `state` is the state the
    /// pool was last brought in line with, if it was for every sender.
    fn assert_invariants(&self, state: Option<&State>) {
        let mut count = 0usize;
        let mut bytes = 0usize;
        let mut tails = BTreeSet::new();
        let mut handles = BTreeMap::new();
        assert!(self.senders.len() <= self.by_id.len());
        for (addr, q) in &self.senders {
            assert!(!q.is_empty(), "empty queue kept");
            assert!(q.len() <= self.config.per_sender_max, "per-sender limit");
            let first = *q.keys().next().unwrap();
            for (i, (nonce, e)) in q.iter().enumerate() {
                assert_eq!(*nonce, first + i as u64, "nonce continuity");
                assert_eq!(e.tx.payload.nonce(), *nonce);
                assert_eq!(e.tx.payload.from(), *addr);
                assert_eq!(e.id, e.tx.id());
                assert_eq!(e.bytes, e.tx.encoded_len());
                assert_eq!(self.by_id.get(&e.id), Some(&(*addr, *nonce)));
                if let TxPayload::RegisterHandle(h) = &e.tx.payload {
                    assert!(handles.insert(h.handle.clone(), *addr).is_none());
                }
                count += 1;
                bytes += e.bytes;
            }
            let (_, t) = q.last_key_value().unwrap();
            tails.insert((t.rate, t.id));
            if let Some(state) = state {
                let mut cursor = Cursor::new(state, addr);
                assert_eq!(
                    first, cursor.account_nonce,
                    "queue starts at the account nonce"
                );
                for e in q.values() {
                    cursor
                        .step(state, &e.tx)
                        .expect("pending txs apply in order");
                }
            }
        }
        let mut alt_bytes = 0usize;
        let mut alt_count = 0usize;
        let mut of_sender: BTreeMap<Address, usize> = BTreeMap::new();
        for ((addr, nonce), v) in &self.alternates {
            assert!(!v.is_empty(), "empty alternates kept");
            assert!(v.len() <= ALTERNATES_PER_NONCE_MAX, "alternates per nonce");
            let primary = self.senders.get(addr).and_then(|q| q.get(nonce));
            let primary = primary.expect("an alternate has a pending entry at its nonce");
            for e in v {
                assert_ne!(e.id, primary.id);
                assert_eq!(e.id, e.tx.id());
                assert_eq!((e.tx.payload.from(), e.tx.payload.nonce()), (*addr, *nonce));
                assert_eq!(self.alt_ids.get(&e.id), Some(&(*addr, *nonce)));
                assert!(!self.by_id.contains_key(&e.id));
                assert!(!matches!(e.tx.payload, TxPayload::RegisterHandle(_)));
                alt_bytes += e.bytes;
                alt_count += 1;
                *of_sender.entry(*addr).or_default() += 1;
            }
        }
        let mut held_bytes = 0usize;
        let mut held_of: BTreeMap<Address, usize> = BTreeMap::new();
        for ((addr, nonce), e) in &self.held {
            assert_eq!((e.tx.payload.from(), e.tx.payload.nonce()), (*addr, *nonce));
            assert_eq!(self.held_ids.get(&e.id), Some(&(*addr, *nonce)));
            assert!(!self.by_id.contains_key(&e.id) && !self.alt_ids.contains_key(&e.id));
            if let Some(state) = state {
                let next = self.next_nonce(addr, state);
                assert!(*nonce > next, "held {nonce} but the next nonce is {next}");
                let ahead = state.account(addr).nonce + self.config.per_sender_max as u64;
                assert!(*nonce < ahead, "held too far ahead");
            }
            held_bytes += e.bytes;
            *held_of.entry(*addr).or_default() += 1;
        }
        assert_eq!(self.held.len(), self.held_ids.len());
        assert_eq!(held_bytes, self.held_bytes);
        assert!(self.held.len() <= self.config.capacity_max.div_ceil(8));
        assert!(held_bytes <= self.config.bytes_max.div_ceil(8));
        assert!(held_of
            .values()
            .all(|n| *n <= self.config.per_sender_max.div_ceil(4)));
        assert!(self.ready.len() <= self.config.capacity_max.div_ceil(8));
        assert_eq!(alt_count, self.alt_ids.len());
        assert_eq!(alt_bytes, self.alt_bytes);
        assert!(alt_count <= self.config.capacity_max.div_ceil(8));
        assert!(alt_bytes <= self.config.bytes_max.div_ceil(8));
        assert!(of_sender
            .values()
            .all(|n| *n <= self.config.per_sender_max.div_ceil(4)));
        assert_eq!(count, self.by_id.len());
        assert_eq!(bytes, self.bytes);
        assert_eq!(tails, self.tails);
        assert_eq!(handles, self.handles);
        assert!(count <= self.config.capacity_max, "capacity");
        assert!(bytes <= self.config.bytes_max, "bytes limit");
    }
}

fn params() -> ChainParams {
    ChainParams::devnet()
}

fn key(name: &str) -> SecretKey {
    SecretKey::dev(name)
}

fn addr(name: &str) -> Address {
    key(name).address()
}

fn fund(state: &mut State, who: &str, consumer: u64, industrial: u64, nonce: u64) {
    let acc = Account {
        nonce,
        consumer,
        industrial,
    };
    state.apply(&vec![(account_key(&addr(who)), Some(encode(&acc)))]);
}

fn funded(names: &[&str], consumer: u64) -> State {
    let mut s = State::new();
    for n in names {
        fund(&mut s, n, consumer, consumer, 0);
    }
    s
}

fn transfer_with(from: &str, nonce: u64, fee: u64, edit: impl FnOnce(&mut Transfer)) -> SignedTx {
    let mut t = Transfer {
        from: addr(from),
        to: addr("zed"),
        amount_consumer: 100,
        amount_industrial: 0,
        fee,
        fee_selector: FeeSelector::Consumer.into(),
        nonce,
        memo: Vec::new(),
    };
    edit(&mut t);
    SignedTx::sign(TxPayload::Transfer(t), &key(from), params().chain_id)
}

fn transfer(from: &str, nonce: u64, fee: u64) -> SignedTx {
    transfer_with(from, nonce, fee, |_| {})
}

fn register(from: &str, handle: &str, nonce: u64) -> SignedTx {
    let p = TxPayload::RegisterHandle(RegisterHandle {
        from: addr(from),
        handle: handle.to_string(),
        fee: 1_000,
        fee_selector: FeeSelector::Consumer.into(),
        nonce,
    });
    SignedTx::sign(p, &key(from), params().chain_id)
}

fn pool_with(edit: impl FnOnce(&mut MempoolConfig)) -> Mempool {
    let mut c = MempoolConfig::default();
    edit(&mut c);
    Mempool::new(c, params())
}

fn pool() -> Mempool {
    pool_with(|_| {})
}

/// Applies `txs` in order to `state` as a block would; panics if one fails.
fn mine(state: &mut State, txs: &[SignedTx]) -> crate::state::Changes {
    let mut ov = Overlay::new(state);
    let mut fees = Fees::default();
    for tx in txs {
        let ctx = crate::execute::TxCtx {
            params: &params(),
            height: 1,
            timestamp_ms: 0,
        };
        apply_tx(&mut ov, tx, &mut fees, &ctx).expect("selected tx applies");
    }
    let (changes, undo) = ov.finish();
    state.apply(&changes);
    undo
}

fn check(err: AdmissionError, code: u16, reason: &str) {
    assert_eq!(err.code(), code, "{err:?}");
    assert_eq!(err.reason(), reason, "{err:?}");
    assert_eq!(REJECTION_REASONS[usize::from(code) - 1], (code, reason));
}

#[test]
fn drop_with_dependents_removes_the_entry_and_its_later_nonces_only() {
    let state = funded(&["ann", "bob"], 1_000_000);
    let mut p = pool();
    let a: Vec<SignedTx> = (0..3).map(|n| transfer("ann", n, 1_000)).collect();
    for t in a.iter().chain([&transfer("bob", 0, 1_000)]) {
        p.admit(t.clone(), &state, 0).unwrap();
    }
    assert_eq!(p.drop_with_dependents(&a[1].id()), 2);
    assert!(p.contains(&a[0].id()) && !p.contains(&a[1].id()) && !p.contains(&a[2].id()));
    assert_eq!(p.len(), 2, "bob's entry stays");
    assert_eq!(p.next_nonce(&addr("ann"), &state), 1);
    assert_eq!(p.drop_with_dependents(&a[2].id()), 0, "gone already");
}

#[test]
fn drop_skipped_drops_a_skipped_next_nonce_with_its_dependents_only() {
    let state = funded(&["ann", "bob", "cat"], 1_000_000);
    let mut p = pool();
    let a: Vec<SignedTx> = (0..2).map(|n| transfer("ann", n, 1_000)).collect();
    let b: Vec<SignedTx> = (0..2).map(|n| transfer("bob", n, 1_000)).collect();
    let c = transfer("cat", 0, 1_000);
    for t in a.iter().chain(&b).chain([&c]) {
        p.admit(t.clone(), &state, 0).unwrap();
    }
    // The template took ann's first and cat's; it skipped ann's second (not at ann's
    // next nonce on the tip: kept) and bob's first (at bob's next nonce: dropped, with
    // bob's second).
    let picked: Vec<SignedTx> = p.select(100, 1 << 20);
    let included = vec![a[0].clone(), c.clone()];
    assert_eq!(p.drop_skipped(&picked, &included, &state), 2);
    assert!(p.contains(&a[0].id()) && p.contains(&a[1].id()) && p.contains(&c.id()));
    assert!(!p.contains(&b[0].id()) && !p.contains(&b[1].id()));
    assert_eq!(
        p.drop_skipped(&picked, &included, &state),
        0,
        "nothing more to drop"
    );
}

#[test]
fn drop_unexecutable_drops_a_stale_head_with_its_dependents_only() {
    // ann, a provider with the minimum stake, asks to unstake ten times that (she had,
    // on a branch that lost): admission checks her funds and her registration, not her
    // stake, so it enters the pool, and no block can ever include it; her transfer
    // behind it waits on it. bob's transfers execute.
    let (state, unstake) = provider_world();
    let after = transfer("ann", 3, 1_000);
    let b: Vec<SignedTx> = (0..2).map(|n| transfer("bob", n, 1_000)).collect();
    let mut p = pool();
    for t in [&unstake, &after].into_iter().chain(&b) {
        p.admit(t.clone(), &state, 0).unwrap();
    }
    assert_eq!(p.sweep_orphans(&state), 0, "nonces and funds line up");
    assert_eq!(p.drop_unexecutable(&state, 2, 1_000), 2);
    assert!(!p.contains(&unstake.id()) && !p.contains(&after.id()));
    assert!(
        p.contains(&b[0].id()) && p.contains(&b[1].id()),
        "bob's stay"
    );
    assert_eq!(p.drop_unexecutable(&state, 2, 1_000), 0, "nothing more");
    p.assert_invariants(Some(&state));
}

/// ann, a provider with the minimum stake, and an `Unstake` of ten times that at
/// `nonce`: admitted (admission does not check stakes), never executable.
fn provider_world() -> (State, SignedTx) {
    use crate::builders::{cpu_caps, register_provider, stake};
    let mut state = funded(&["ann", "bob"], 1_000_000_000);
    let signed = |p: TxPayload, n: u64| {
        let mut p = p;
        *p.nonce_mut() = n;
        *p.fee_mut() = 1_000;
        SignedTx::sign(p, &key("ann"), params().chain_id)
    };
    let min = params().market.min_stake_micro;
    mine(
        &mut state,
        &[
            signed(
                register_provider(addr("ann"), cpu_caps(1), FeeSelector::Industrial),
                0,
            ),
            signed(stake(addr("ann"), min, FeeSelector::Industrial), 1),
        ],
    );
    let TxPayload::Stake(change) = stake(addr("ann"), 10 * min, FeeSelector::Industrial) else {
        unreachable!("stake builds a Stake")
    };
    let unstake = signed(TxPayload::Unstake(change), 2);
    (state, unstake)
}

#[test]
fn an_alternate_takes_the_place_of_a_pending_transaction_that_cannot_execute() {
    // ann signed two versions of nonces 2 and 3 (her node crashed and decided again):
    // this pool heard the stale unstake first. Its own version of 2 is an alternate,
    // and when the unstake is found not to execute the alternate takes its place;
    // the transfer behind the unstake becomes an alternate of nonce 3.
    let (state, unstake) = provider_world();
    let stale_next = transfer("ann", 3, 1_000);
    let mine_2 = transfer_with("ann", 2, 1_000, |t| t.amount_consumer = 7);
    let mine_3 = transfer_with("ann", 3, 1_000, |t| t.amount_consumer = 8);
    let mut p = pool();
    for t in [&unstake, &stale_next, &mine_2, &mine_3] {
        p.admit(t.clone(), &state, 0).unwrap();
    }
    assert_eq!((p.len(), p.alternates_len()), (2, 2));
    assert_eq!(
        p.select(10, 1 << 20),
        vec![unstake.clone(), stale_next.clone()],
        "alternates are never selected"
    );
    p.assert_invariants(Some(&state));
    assert_eq!(p.drop_unexecutable(&state, 2, 1_000), 0, "two out, two in");
    assert_eq!(p.counters().alternates_promoted_total, 2);
    assert!(!p.contains(&unstake.id()));
    assert_eq!(
        p.select(10, 1 << 20),
        vec![mine_2.clone(), mine_3.clone()],
        "her alternates are pending in nonce order"
    );
    assert!(
        p.contains(&stale_next.id()),
        "displaced, kept as an alternate"
    );
    assert_eq!(p.alternates_len(), 1);
    p.assert_invariants(Some(&state));
    // A block with the other pool's version of nonce 2: the pending one is stale,
    // nonce 3's pending and alternate both still apply.
    let mut s = state.clone();
    mine(&mut s, std::slice::from_ref(&mine_2));
    p.remove_included(std::slice::from_ref(&mine_2), &s);
    assert_eq!(p.select(10, 1 << 20), vec![mine_3.clone()]);
    p.assert_invariants(Some(&s));
    // A block with the alternate of nonce 3 instead: it leaves, and the pending one
    // is stale.
    let mut s2 = s.clone();
    mine(&mut s2, std::slice::from_ref(&stale_next));
    p.remove_included(std::slice::from_ref(&stale_next), &s2);
    assert!(p.is_empty() && p.alternates_len() == 0);
    p.assert_invariants(Some(&s2));
}

#[test]
fn a_skipped_head_is_replaced_by_its_alternate() {
    let (state, unstake) = provider_world();
    let other = transfer("ann", 2, 1_000);
    let mut p = pool();
    p.admit(unstake.clone(), &state, 0).unwrap();
    p.admit(other.clone(), &state, 0).unwrap();
    let picked = p.select(10, 1 << 20);
    assert_eq!(picked, vec![unstake.clone()]);
    assert_eq!(p.drop_skipped(&picked, &[], &state), 0, "one out, one in");
    assert_eq!(p.select(10, 1 << 20), vec![other]);
    assert_eq!(p.alternates_len(), 0);
    p.assert_invariants(Some(&state));
}

#[test]
fn alternates_keep_within_their_limits() {
    let state = funded(&["ann"], 1_000_000);
    // per_sender_max 8: at most 2 alternates for ann; capacity 8: 1 in the pool.
    let mut p = pool_with(|c| {
        c.per_sender_max = 8;
        c.capacity_max = 8;
    });
    for n in 0..3 {
        p.admit(transfer("ann", n, 1_000), &state, 0).unwrap();
    }
    p.admit(transfer("ann", 0, 1_001), &state, 0).unwrap();
    refuse(&mut p, &state, transfer("ann", 1, 1_001), "duplicate_nonce");
    p.assert_invariants(Some(&state));
    // A handle claim is never an alternate (it would claim a handle it may never
    // take); an alternate that cannot pay where it stands is refused as such.
    let mut p = pool();
    p.admit(transfer("ann", 0, 1_000), &state, 0).unwrap();
    refuse(
        &mut p,
        &state,
        register("ann", "@ann", 0),
        "duplicate_nonce",
    );
    let too_much = transfer_with("ann", 0, 1_000, |t| t.amount_consumer = 10_000_000);
    refuse(&mut p, &state, too_much, "insufficient_balance");
    // Evicting a tail takes its alternates with it.
    let state = funded(&["ann", "bob"], 1_000_000);
    let mut p = pool_with(|c| c.capacity_max = 1);
    let cheap = transfer("ann", 0, 1_000);
    p.admit(cheap.clone(), &state, 0).unwrap();
    p.admit(transfer("ann", 0, 1_001), &state, 0).unwrap();
    p.admit(transfer("bob", 0, 5_000), &state, 0).unwrap();
    assert!(!p.contains(&cheap.id()) && p.alternates_len() == 0);
    p.assert_invariants(Some(&state));
}

#[test]
fn a_transaction_ahead_of_a_gap_is_held_until_the_gap_closes() {
    let state = funded(&["ann", "bob"], 1_000_000);
    let mut p = pool();
    let a: Vec<SignedTx> = (0..3).map(|n| transfer("ann", n, 1_000)).collect();
    // Gossip brought ann's 2 and 1 before her 0: refused as gaps (not relayed), held.
    for t in [&a[2], &a[1]] {
        let err = refuse(&mut p, &state, t.clone(), "nonce_gap");
        assert!(matches!(err, AdmissionError::NonceGap { expected: 0, .. }));
    }
    assert!(p.is_held(&a[1].id()) && p.is_held(&a[2].id()));
    assert_eq!((p.len(), p.held_len()), (0, 2));
    // The same one again: still a gap, held once.
    refuse(&mut p, &state, a[2].clone(), "nonce_gap");
    assert_eq!(p.held_len(), 2);
    p.assert_invariants(Some(&state));
    p.admit(a[0].clone(), &state, 0).unwrap();
    assert_eq!(
        p.select(10, 1 << 20),
        a,
        "the gap closed: all three pending"
    );
    assert_eq!(p.take_ready(), vec![a[1].clone(), a[2].clone()], "to relay");
    assert!(p.take_ready().is_empty());
    assert_eq!(p.counters().held_admitted_total, 2);
    p.assert_invariants(Some(&state));

    // A block can close the gap too: bob's 0 was mined elsewhere.
    let b: Vec<SignedTx> = (0..2).map(|n| transfer("bob", n, 1_000)).collect();
    refuse(&mut p, &state, b[1].clone(), "nonce_gap");
    let mut s = state.clone();
    mine(&mut s, std::slice::from_ref(&b[0]));
    p.remove_included(std::slice::from_ref(&b[0]), &s);
    assert!(p.contains(&b[1].id()) && p.held_len() == 0);
    assert_eq!(p.take_ready(), vec![b[1].clone()]);
    p.assert_invariants(Some(&s));
}

#[test]
fn held_transactions_keep_within_their_limits_and_expire() {
    let state = funded(&["ann"], 1_000_000);
    let mut p = pool_with(|c| {
        c.per_sender_max = 8;
        c.ttl_ms = 1_000;
    });
    // Two per sender (a quarter of 8), and never 8 or more ahead of the account.
    refuse(&mut p, &state, transfer("ann", 8, 1_000), "nonce_gap");
    assert_eq!(p.held_len(), 0, "too far ahead");
    for n in [3, 5, 6] {
        refuse(&mut p, &state, transfer("ann", n, 1_000), "nonce_gap");
    }
    assert_eq!(p.held_len(), 2);
    // A second version of a held nonce is not held.
    let other = transfer_with("ann", 3, 1_000, |t| t.amount_consumer = 1);
    refuse(&mut p, &state, other.clone(), "nonce_gap");
    assert!(!p.is_held(&other.id()));
    p.assert_invariants(Some(&state));
    assert_eq!(p.purge_expired(999), 0);
    assert_eq!(p.held_len(), 2);
    p.purge_expired(1_000);
    assert_eq!(p.held_len(), 0, "expired with their time to live");
    p.assert_invariants(Some(&state));
}

#[test]
fn codes_are_pinned() {
    use AdmissionError as E;
    check(E::BadSignature, 1, "bad_signature");
    check(E::InvalidSelector(3), 2, "invalid_selector");
    check(E::MemoTooLarge { len: 1, max: 0 }, 3, "memo_too_large");
    check(E::TxTooLarge { len: 1, max: 0 }, 4, "tx_too_large");
    check(E::InvalidHandle("x".into()), 5, "invalid_handle");
    check(E::FeeBelowFloor { fee: 0, floor: 1 }, 6, "fee_below_floor");
    check(
        E::NonceReused {
            expected: 1,
            got: 0,
        },
        7,
        "nonce_reused",
    );
    check(
        E::NonceGap {
            expected: 0,
            got: 1,
        },
        8,
        "nonce_gap",
    );
    check(E::DuplicateNonce { nonce: 0 }, 9, "duplicate_nonce");
    check(E::DuplicateTx(Id::ZERO), 10, "duplicate_tx");
    let short = E::InsufficientBalance {
        token: Token::Consumer,
        need: 1,
        have: 0,
    };
    check(short, 11, "insufficient_balance");
    check(E::BalanceOverflow, 12, "balance_overflow");
    check(E::HandleTaken("@bob".into()), 13, "handle_taken");
    check(E::AddressHasHandle, 14, "address_has_handle");
    check(E::SenderFull { max: 1 }, 15, "sender_full");
    check(E::PoolFull, 16, "pool_full");
    check(
        E::Expired {
            age_ms: 1,
            ttl_ms: 1,
        },
        17,
        "expired",
    );
    use GovernanceRefusal as G;
    use MarketRefusal as M;
    let market = [
        (M::Fields, 18, "invalid_market_tx"),
        (M::NotProvider, 19, "not_a_provider"),
        (M::Stake, 20, "stake_refused"),
        (M::Job, 21, "job_refused"),
        (M::Model, 22, "model_unavailable"),
        (M::UnknownTask, 23, "unknown_task"),
        (M::Receipt, 24, "receipt_mismatch"),
        (M::NoLease, 25, "no_lease"),
        (M::Stage, 26, "wrong_stage"),
        (M::Duplicate, 27, "duplicate"),
        (M::Unpublished, 28, "object_unpublished"),
        (M::TraceMismatch, 29, "trace_mismatch"),
        (M::Chunk, 30, "chunk_refused"),
        (M::Challenge, 31, "challenge_refused"),
        (M::Dispute, 32, "dispute_refused"),
        (M::Report, 33, "report_refused"),
    ];
    let governance = [
        (G::Proposal, 34, "invalid_proposal"),
        (G::NotEligible, 35, "not_eligible"),
        (G::Slots, 36, "proposal_slots_full"),
        (G::UnknownProposal, 37, "unknown_proposal"),
        (G::ProposalState, 38, "proposal_state"),
    ];
    assert_eq!(market.len(), M::ALL.len());
    assert_eq!(governance.len(), G::ALL.len());
    let refusals = market
        .map(|(k, c, r)| (E::Market(k, "x".into()), c, r))
        .into_iter()
        .chain(governance.map(|(k, c, r)| (E::Governance(k, "x".into()), c, r)));
    for (e, code, reason) in refusals {
        check(e, code, reason);
    }
    assert_eq!(REJECTION_REASONS.len(), 38);
    // The table is in code order, codes and reasons unique.
    for (i, (code, _)) in REJECTION_REASONS.iter().enumerate() {
        assert_eq!(usize::from(*code), i + 1);
    }
    let reasons: BTreeSet<_> = REJECTION_REASONS.iter().map(|(_, r)| r).collect();
    assert_eq!(reasons.len(), REJECTION_REASONS.len());
}

#[test]
fn tx_errors_map_to_admission_errors() {
    let e = AdmissionError::from;
    assert_eq!(
        e(TxError::BadNonce {
            expected: 5,
            got: 4
        })
        .reason(),
        "nonce_reused"
    );
    assert_eq!(
        e(TxError::BadNonce {
            expected: 5,
            got: 6
        })
        .reason(),
        "nonce_gap"
    );
    assert_eq!(
        e(TxError::InvalidSelector(9)),
        AdmissionError::InvalidSelector(9)
    );
    assert_eq!(
        e(TxError::AddressHasHandle),
        AdmissionError::AddressHasHandle
    );
}

/// Admits `tx` into `pool` over `state` and expects refusal `reason`.
fn refuse(pool: &mut Mempool, state: &State, tx: SignedTx, reason: &str) -> AdmissionError {
    let err = pool.admit(tx, state, 0).expect_err(reason);
    assert_eq!(err.reason(), reason, "{err}");
    err
}

#[test]
fn stateless_refusals() {
    let state = funded(&["alice"], 1_000_000);
    let mut p = pool();
    let mut tampered = transfer("alice", 0, 1_000);
    if let TxPayload::Transfer(t) = &mut tampered.payload {
        t.amount_consumer += 1;
    }
    refuse(&mut p, &state, tampered, "bad_signature");
    let other_chain = SignedTx::sign(transfer("alice", 0, 1_000).payload, &key("alice"), 7);
    refuse(&mut p, &state, other_chain, "bad_signature");
    let tx = transfer_with("alice", 0, 1_000, |t| t.fee_selector = 3);
    assert_eq!(
        refuse(&mut p, &state, tx, "invalid_selector"),
        AdmissionError::InvalidSelector(3)
    );
    let tx = transfer_with("alice", 0, 1_000, |t| t.memo = vec![7; 257]);
    refuse(&mut p, &state, tx, "memo_too_large");
    refuse(
        &mut p,
        &state,
        register("alice", "@Alice", 0),
        "invalid_handle",
    );
    let tx = transfer("alice", 0, 0);
    let floor = tx.encoded_len() as u64;
    assert_eq!(
        floor, 166,
        "the plain transfer size quoted in docs/spec/errors.md"
    );
    assert_eq!(
        refuse(&mut p, &state, tx, "fee_below_floor"),
        AdmissionError::FeeBelowFloor { fee: 0, floor }
    );
    // Exactly the floor is enough.
    p.admit(transfer("alice", 0, floor), &state, 0).unwrap();

    let mut small = params();
    small.tx_bytes_max = 200;
    let mut p = Mempool::new(MempoolConfig::default(), small);
    let tx = transfer_with("alice", 0, 1_000, |t| t.memo = vec![7; 100]);
    refuse(&mut p, &state, tx, "tx_too_large");
    assert!(p.is_empty());
}

#[test]
fn nonce_refusals() {
    let mut state = funded(&[], 0);
    fund(&mut state, "alice", 1_000_000, 0, 5);
    let mut p = pool();
    let err = refuse(&mut p, &state, transfer("alice", 4, 1_000), "nonce_reused");
    assert_eq!(
        err,
        AdmissionError::NonceReused {
            expected: 5,
            got: 4
        }
    );
    // Too far ahead to be held (64 nonces past the account's).
    let err = refuse(&mut p, &state, transfer("alice", 69, 1_000), "nonce_gap");
    assert_eq!(
        err,
        AdmissionError::NonceGap {
            expected: 5,
            got: 69
        }
    );
    assert_eq!(p.held_len(), 0);
    let first = transfer("alice", 5, 1_000);
    p.admit(first.clone(), &state, 0).unwrap();
    let err = refuse(&mut p, &state, first.clone(), "duplicate_tx");
    assert!(matches!(err, AdmissionError::DuplicateTx(_)));
    // No replace-by-fee: a better-paying tx with a pending nonce becomes an
    // alternate (never selected), and past the alternates' limit it is refused.
    let better = transfer("alice", 5, 9_000);
    p.admit(better.clone(), &state, 0).unwrap();
    assert!(p.contains(&better.id()));
    assert_eq!((p.len(), p.alternates_len()), (1, 1));
    assert_eq!(p.select(10, 1 << 20), vec![first.clone()]);
    p.admit(transfer("alice", 5, 9_001), &state, 0).unwrap();
    let err = refuse(
        &mut p,
        &state,
        transfer("alice", 5, 9_002),
        "duplicate_nonce",
    );
    assert_eq!(err, AdmissionError::DuplicateNonce { nonce: 5 });
    let err = refuse(&mut p, &state, transfer("alice", 7, 1_000), "nonce_gap");
    assert_eq!(
        err,
        AdmissionError::NonceGap {
            expected: 6,
            got: 7
        }
    );
    // 7 was held: 6 closes the gap and both are pending.
    p.admit(transfer("alice", 6, 1_000), &state, 0).unwrap();
    assert_eq!(p.next_nonce(&addr("alice"), &state), 8);
    assert_eq!(p.take_ready(), vec![transfer("alice", 7, 1_000)]);
    p.assert_invariants(Some(&state));
}

#[test]
fn balance_counts_pending_spends() {
    let mut state = State::new();
    fund(&mut state, "alice", 1_000, 500, 0);
    let mut p = pool();
    let spend = |n, amount| transfer_with("alice", n, 300, |t| t.amount_consumer = amount);
    p.admit(spend(0, 300), &state, 0).unwrap(); // 600 of 1000
    let err = refuse(&mut p, &state, spend(1, 300), "insufficient_balance");
    assert_eq!(
        err,
        AdmissionError::InsufficientBalance {
            token: Token::Consumer,
            need: 1_200,
            have: 1_000,
        }
    );
    p.admit(spend(1, 100), &state, 0).unwrap(); // exactly 1000
                                                // Industrial counted on its own.
    let ind = transfer_with("alice", 2, 0, |t| {
        t.amount_consumer = 0;
        t.amount_industrial = 400;
        t.fee = 200;
        t.fee_selector = FeeSelector::Industrial.into();
    });
    let err = refuse(&mut p, &state, ind, "insufficient_balance");
    assert!(matches!(
        err,
        AdmissionError::InsufficientBalance {
            token: Token::Industrial,
            need: 600,
            have: 500
        }
    ));
    // A self-transfer gives its amount back to later txs.
    let mut state = State::new();
    fund(&mut state, "bob", 1_000, 0, 0);
    let mut p = pool();
    let to_self = transfer_with("bob", 0, 300, |t| {
        t.to = addr("bob");
        t.amount_consumer = 600;
    });
    p.admit(to_self, &state, 0).unwrap();
    p.admit(
        transfer_with("bob", 1, 300, |t| t.amount_consumer = 400),
        &state,
        0,
    )
    .unwrap();
    p.assert_invariants(Some(&state));
}

#[test]
fn overflow_refusals() {
    let mut state = funded(&["alice"], 1_000_000);
    let tx = transfer_with("alice", 0, 1_000, |t| t.amount_consumer = u64::MAX);
    refuse(&mut pool(), &state, tx, "balance_overflow");
    fund(&mut state, "zed", u64::MAX - 10, 0, 0);
    let tx = transfer_with("alice", 0, 1_000, |t| t.amount_consumer = 11);
    refuse(&mut pool(), &state, tx, "balance_overflow");
}

#[test]
fn handle_refusals() {
    let mut state = funded(&["alice", "bob", "carol"], 1_000_000);
    state.apply(&vec![
        (handle_key("@carol"), Some(encode(&addr("carol")))),
        (
            reverse_handle_key(&addr("carol")),
            Some(encode(&"@carol".to_string())),
        ),
    ]);
    let mut p = pool();
    refuse(
        &mut p,
        &state,
        register("alice", "@carol", 0),
        "handle_taken",
    );
    refuse(
        &mut p,
        &state,
        register("carol", "@other", 0),
        "address_has_handle",
    );
    p.admit(register("alice", "@alice", 0), &state, 0).unwrap();
    // Claimed by a pending tx of another sender, or a second claim of one sender.
    refuse(&mut p, &state, register("bob", "@alice", 0), "handle_taken");
    refuse(
        &mut p,
        &state,
        register("alice", "@alice2", 1),
        "address_has_handle",
    );
    p.assert_invariants(Some(&state));
}

#[test]
fn limit_and_expiry_refusals() {
    let state = funded(&["alice", "bob", "carol"], 1_000_000);
    let mut p = pool_with(|c| c.per_sender_max = 2);
    p.admit(transfer("alice", 0, 1_000), &state, 0).unwrap();
    p.admit(transfer("alice", 1, 1_000), &state, 0).unwrap();
    let err = refuse(&mut p, &state, transfer("alice", 2, 1_000), "sender_full");
    assert_eq!(err, AdmissionError::SenderFull { max: 2 });

    let mut p = pool_with(|c| c.capacity_max = 2);
    p.admit(transfer("alice", 0, 5_000), &state, 0).unwrap();
    p.admit(transfer("bob", 0, 5_000), &state, 0).unwrap();
    refuse(&mut p, &state, transfer("carol", 0, 1_000), "pool_full");
    // Equal fee per byte does not beat the lowest.
    refuse(&mut p, &state, transfer("carol", 0, 5_000), "pool_full");
    let tx = transfer("carol", 0, 1_000);
    let bytes = tx.encoded_len();
    let mut p = pool_with(|c| c.bytes_max = bytes - 1);
    refuse(&mut p, &state, tx, "pool_full");

    let mut p = pool_with(|c| c.ttl_ms = 1_000);
    let err = p
        .admit_at(transfer("alice", 0, 1_000), &state, 500, 1_500)
        .unwrap_err();
    assert_eq!(
        err,
        AdmissionError::Expired {
            age_ms: 1_000,
            ttl_ms: 1_000
        }
    );
    p.admit_at(transfer("alice", 0, 1_000), &state, 501, 1_500)
        .unwrap();
}

#[test]
fn rejections_are_counted_by_reason() {
    let state = funded(&["alice"], 1_000_000);
    let mut p = pool();
    let _ = p.admit(transfer("alice", 3, 1_000), &state, 0);
    let _ = p.admit(transfer("alice", 4, 1_000), &state, 0);
    let _ = p.admit(transfer("alice", 0, 0), &state, 0);
    p.admit(transfer("alice", 0, 1_000), &state, 0).unwrap();
    let by_reason = p.rejected_by_reason();
    assert_eq!(by_reason.len(), REJECTION_REASONS.len());
    assert_eq!(by_reason["nonce_gap"], 2);
    assert_eq!(by_reason["fee_below_floor"], 1);
    assert_eq!(by_reason.values().sum::<u64>(), 3);
    assert_eq!(p.counters().rejected_by_code[7], 2);
    assert_eq!(p.counters().admitted_total, 1);
}

#[test]
fn counters_saturate() {
    let mut n = u64::MAX - 1;
    bump(&mut n, 5);
    assert_eq!(n, u64::MAX);
}

#[test]
fn eviction_takes_the_lowest_paying_tail() {
    let state = funded(&["alice", "bob", "carol", "dave"], 1_000_000);
    let mut p = pool_with(|c| c.capacity_max = 3);
    // alice's first pays least, but it is not a tail: her tail pays most.
    let a0 = transfer("alice", 0, 200);
    let a1 = transfer("alice", 1, 5_000);
    let b0 = transfer("bob", 0, 1_000);
    for tx in [&a0, &a1, &b0] {
        p.admit(tx.clone(), &state, 0).unwrap();
    }
    p.admit(transfer("carol", 0, 1_500), &state, 0).unwrap();
    assert!(!p.contains(&b0.id()), "bob's tail paid least among tails");
    assert!(p.contains(&a0.id()) && p.contains(&a1.id()));
    assert_eq!(p.counters().evictions_total, 1);
    // Now carol's 1_500 is the lowest tail; dave at 1_400 does not beat it.
    refuse(&mut p, &state, transfer("dave", 0, 1_400), "pool_full");
    p.assert_invariants(Some(&state));

    // A sender never evicts its own txs: alice's own tail is the lowest,
    // so her next tx would have to beat bob's.
    let mut p = pool_with(|c| c.capacity_max = 2);
    p.admit(transfer("alice", 0, 300), &state, 0).unwrap();
    p.admit(transfer("bob", 0, 2_000), &state, 0).unwrap();
    refuse(&mut p, &state, transfer("alice", 1, 1_000), "pool_full");
    p.admit(transfer("alice", 1, 3_000), &state, 0).unwrap();
    assert_eq!(p.pending_count(&addr("alice")), 2);
    assert_eq!(p.pending_count(&addr("bob")), 0);
    p.assert_invariants(Some(&state));
}

#[test]
fn eviction_for_bytes_can_take_several_tails_of_one_sender() {
    let state = funded(&["alice", "bob"], 1_000_000);
    let small = transfer("alice", 0, 1_000).encoded_len();
    let big = transfer_with("bob", 0, 1, |t| t.memo = vec![0; 150]).encoded_len();
    // Room for three small ones; the big one needs two of them gone.
    let mut p = pool_with(|c| c.bytes_max = 3 * small);
    for n in 0..3 {
        p.admit(transfer("alice", n, 1_000 + n), &state, 0).unwrap();
    }
    assert!(big > small && big <= 2 * small);
    let tx = transfer_with("bob", 0, 100_000, |t| t.memo = vec![0; 150]);
    p.admit(tx, &state, 0).unwrap();
    assert_eq!(p.pending_count(&addr("alice")), 1, "tails 2 then 1 evicted");
    assert_eq!(p.counters().evictions_total, 2);
    p.assert_invariants(Some(&state));
}

#[test]
fn ttl_purge_drops_dependents_as_orphans() {
    let state = funded(&["alice", "bob"], 1_000_000);
    let mut p = pool_with(|c| c.ttl_ms = 1_000);
    p.admit(transfer("alice", 0, 1_000), &state, 0).unwrap();
    p.admit(transfer("alice", 1, 1_000), &state, 500).unwrap();
    p.admit(transfer("bob", 0, 1_000), &state, 600).unwrap();
    assert_eq!(p.purge_expired(999), 0);
    assert_eq!(p.purge_expired(1_000), 2);
    assert_eq!(p.len(), 1);
    assert_eq!(p.pending_count(&addr("bob")), 1);
    assert_eq!(p.counters().ttl_drop_total, 1);
    assert_eq!(p.counters().orphan_sweep_total, 1);
    assert_eq!(p.purge_expired(1_600), 1);
    assert!(p.is_empty() && p.bytes() == 0);
    p.assert_invariants(Some(&state));
}

#[test]
fn select_respects_nonces_and_limits() {
    let state = funded(&["alice", "bob", "carol"], 1_000_000);
    let mut p = pool();
    let a0 = transfer("alice", 0, 500);
    let a1 = transfer("alice", 1, 90_000);
    let b0 = transfer("bob", 0, 2_000);
    let c0 = transfer("carol", 0, 1_000);
    // a1 comes first: held for the gap, and admitted with a0.
    for tx in [&a1, &c0, &b0, &a0] {
        let _ = p.admit(tx.clone(), &state, 0);
    }
    assert_eq!(
        p.select(10, usize::MAX),
        vec![b0.clone(), c0.clone(), a0.clone(), a1.clone()]
    );
    assert_eq!(p.select(2, usize::MAX), vec![b0.clone(), c0.clone()]);
    // Room for one only: the best. A sender whose next does not fit is skipped.
    let one = b0.encoded_len();
    assert_eq!(p.select(10, one), vec![b0.clone()]);
    let got = p.select(10, usize::MAX);
    let mut s = state.clone();
    mine(&mut s, &got);

    // alice's next pays most per byte but does not fit: nothing more of
    // hers is taken, though her second would fit.
    let mut p = pool();
    let a0 = transfer_with("alice", 0, 200_000, |t| t.memo = vec![1; 200]);
    let a1 = transfer("alice", 1, 90_000);
    let b0 = transfer("bob", 0, 2_000);
    for tx in [&a0, &a1, &b0] {
        p.admit(tx.clone(), &state, 0).unwrap();
    }
    assert_eq!(p.select(10, usize::MAX), vec![a0, a1, b0.clone()]);
    assert_eq!(p.select(10, 2 * one), vec![b0]);
}

#[test]
fn select_breaks_ties_by_id() {
    let state = funded(&["alice", "bob"], 1_000_000);
    let mut p = pool();
    let a = transfer("alice", 0, 1_000);
    let b = transfer("bob", 0, 1_000);
    p.admit(a.clone(), &state, 0).unwrap();
    p.admit(b.clone(), &state, 0).unwrap();
    let mut want = vec![a, b];
    want.sort_by_key(|t| t.id());
    assert_eq!(p.select(10, usize::MAX), want);
}

#[test]
fn blocks_and_reorgs() {
    let mut state = funded(&["alice", "bob"], 10_000);
    let base = state.clone();
    let mut p = pool();
    let a: Vec<_> = (0..3).map(|n| transfer("alice", n, 1_000)).collect();
    for tx in &a {
        p.admit(tx.clone(), &state, 0).unwrap();
    }
    let b0 = transfer("bob", 0, 1_000);
    p.admit(b0.clone(), &state, 0).unwrap();
    // A block includes alice 0 and 1.
    let block = vec![a[0].clone(), a[1].clone()];
    let undo = mine(&mut state, &block);
    assert_eq!(p.remove_included(&block, &state), 2);
    assert_eq!(p.counters().included_total, 2);
    p.assert_invariants(Some(&state));
    assert_eq!(p.len(), 2);
    assert!(p.contains(&a[2].id()) && p.contains(&b0.id()));

    // The block is undone: its txs come back before alice 2.
    state.apply(&undo);
    assert_eq!(p.reinsert(&block, &state, 10), 2);
    p.assert_invariants(Some(&state));
    assert_eq!(p.pending_count(&addr("alice")), 3);
    assert_eq!(p.admitted_ms(&a[0].id()), Some(10));
    assert_eq!(p.admitted_ms(&a[2].id()), Some(0));
    assert_eq!(state.account(&addr("alice")), base.account(&addr("alice")));

    // A conflicting tx of bob's is mined elsewhere and empties him: bob's
    // pending tx is stale, and a block that spends alice's balance makes
    // her later txs unaffordable.
    let b0x = transfer_with("bob", 0, 1_000, |t| t.amount_consumer = 8_000);
    let a0x = transfer_with("alice", 0, 1_000, |t| t.amount_consumer = 8_000);
    let block = vec![b0x, a0x];
    mine(&mut state, &block);
    let before = p.counters().orphan_sweep_total;
    assert_eq!(p.remove_included(&block, &state), 4);
    assert_eq!(p.counters().orphan_sweep_total - before, 4);
    assert!(p.is_empty());
    p.assert_invariants(Some(&state));
}

#[test]
fn stale_sender_is_resynced_on_admission() {
    let mut state = funded(&["alice"], 1_000_000);
    let mut p = pool();
    p.admit(transfer("alice", 0, 1_000), &state, 0).unwrap();
    p.admit(transfer("alice", 1, 1_000), &state, 0).unwrap();
    // Both mined without the pool being told.
    mine(
        &mut state,
        &[transfer("alice", 0, 1_000), transfer("alice", 1, 1_000)],
    );
    p.admit(transfer("alice", 2, 1_000), &state, 0).unwrap();
    assert_eq!(p.len(), 1);
    p.assert_invariants(Some(&state));
}

// -----------------------------------------------------------------------
// Property: random admission, alternates, purge, select, mining (of pending
// entries or of another pool's alternates), skipped heads, external txs and
// reorgs keep every invariant, and every selection applies to the state.

const SENDERS: [&str; 4] = ["p0", "p1", "p2", "p3"];

#[derive(Clone, Debug)]
enum Op {
    Admit {
        sender: usize,
        nonce_delta: i8,
        fee: u64,
        amount: u64,
        memo: u8,
        seen_back_ms: u64,
    },
    Handle {
        sender: usize,
        handle: u8,
    },
    Advance {
        ms: u64,
    },
    Purge,
    Sweep,
    Mine {
        max_count: usize,
        max_bytes: usize,
    },
    /// A block of another pool that holds `sender`'s first alternate as pending.
    MineAlternate {
        sender: usize,
    },
    /// A template skipped `sender`'s next transaction.
    SkipHead {
        sender: usize,
    },
    External {
        sender: usize,
        amount: u64,
    },
    Reorg,
}

fn op() -> impl Strategy<Value = Op> {
    let n = SENDERS.len();
    let admit = (
        0..n,
        -1i8..=2,
        0u64..6_000,
        0u64..400_000,
        0u8..120,
        0u64..2_500,
    );
    let admit =
        admit.prop_map(
            |(sender, nonce_delta, fee, amount, memo, seen_back_ms)| Op::Admit {
                sender,
                nonce_delta,
                fee,
                amount,
                memo,
                seen_back_ms,
            },
        );
    let handle = (0..n, 0u8..3).prop_map(|(sender, handle)| Op::Handle { sender, handle });
    let mine = (0usize..5, 150usize..1_200).prop_map(|(max_count, max_bytes)| Op::Mine {
        max_count,
        max_bytes,
    });
    let external =
        (0..n, 0u64..900_000).prop_map(|(sender, amount)| Op::External { sender, amount });
    prop_oneof![
        8 => admit,
        1 => handle,
        2 => (0u64..800).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Purge),
        1 => Just(Op::Sweep),
        1 => mine,
        1 => external,
        1 => Just(Op::Reorg),
        1 => (0..n).prop_map(|sender| Op::MineAlternate { sender }),
        1 => (0..n).prop_map(|sender| Op::SkipHead { sender }),
    ]
}

/// Whether `tx` applies on `state` (a block could hold it).
fn applies(state: &State, tx: &SignedTx) -> bool {
    let mut ov = Overlay::new(state);
    let cp = params();
    let ctx = crate::execute::TxCtx {
        params: &cp,
        height: 1,
        timestamp_ms: 0,
    };
    apply_tx(&mut ov, tx, &mut Fees::default(), &ctx).is_ok()
}

fn run(ops: &[Op]) {
    let mut state = funded(&SENDERS, 1_000_000);
    let mut p = pool_with(|c| {
        c.capacity_max = 5;
        c.bytes_max = 2_000;
        c.per_sender_max = 3;
        c.ttl_ms = 2_000;
    });
    let mut now = 10_000u64;
    let mut undone: Vec<(crate::state::Changes, Vec<SignedTx>)> = Vec::new();
    for op in ops {
        match op {
            Op::Admit {
                sender,
                nonce_delta,
                fee,
                amount,
                memo,
                seen_back_ms,
            } => {
                let name = SENDERS[*sender];
                let next = p.next_nonce(&addr(name), &state);
                let nonce = next.saturating_add_signed(i64::from(*nonce_delta));
                let tx = transfer_with(name, nonce, *fee, |t| {
                    t.to = addr(SENDERS[(*sender + 1) % SENDERS.len()]);
                    t.amount_consumer = *amount;
                    t.memo = vec![0; usize::from(*memo)];
                });
                let before = p.len();
                match p.admit_at(tx.clone(), &state, now - seen_back_ms, now) {
                    Ok(id) => {
                        assert_eq!(id, tx.id());
                        assert!(p.contains(&id));
                        if nonce != next {
                            assert!(nonce < next, "no gap is admitted");
                            assert!(
                                p.iter_alternates().any(|t| t.id() == id),
                                "a pending nonce is admitted only as an alternate"
                            );
                        }
                    }
                    Err(_) => assert!(!p.contains(&tx.id()) && p.len() <= before),
                }
            }
            Op::Handle { sender, handle } => {
                let name = SENDERS[*sender];
                let nonce = p.next_nonce(&addr(name), &state);
                let _ = p.admit(register(name, &format!("@hh{handle}"), nonce), &state, now);
            }
            Op::Advance { ms } => now += ms,
            Op::Purge => {
                let before = p.len();
                let gone = p.purge_expired(now);
                assert_eq!(p.len() + gone, before);
                let ttl = p.config().ttl_ms;
                for tx in p.iter() {
                    assert!(now - p.admitted_ms(&tx.id()).unwrap() < ttl);
                }
            }
            Op::Sweep => {
                assert_eq!(p.sweep_orphans(&state), 0, "already in line with the state");
            }
            Op::Mine {
                max_count,
                max_bytes,
            } => {
                let block = p.select(*max_count, *max_bytes);
                assert!(block.len() <= *max_count);
                assert!(block.iter().map(|t| t.encoded_len()).sum::<usize>() <= *max_bytes);
                let undo = mine(&mut state, &block);
                p.remove_included(&block, &state);
                undone.push((undo, block));
            }
            Op::MineAlternate { sender } => {
                let from = addr(SENDERS[*sender]);
                let nonce = state.account(&from).nonce;
                let alt = p
                    .iter_alternates()
                    .find(|t| t.payload.from() == from && t.payload.nonce() == nonce)
                    .cloned();
                // Alternates are re-checked only when promoted: this one may no
                // longer apply, and then no block holds it.
                if let Some(tx) = alt.filter(|t| applies(&state, t)) {
                    let undo = mine(&mut state, std::slice::from_ref(&tx));
                    p.remove_included(std::slice::from_ref(&tx), &state);
                    assert!(!p.contains(&tx.id()));
                    undone.push((undo, vec![tx]));
                }
            }
            Op::SkipHead { sender } => {
                let from = addr(SENDERS[*sender]);
                let head = p.select(usize::MAX, usize::MAX);
                let head: Vec<SignedTx> = head
                    .into_iter()
                    .filter(|t| t.payload.from() == from)
                    .take(1)
                    .collect();
                let alternates: Vec<Id> = head.first().map_or(vec![], |h| {
                    p.iter_alternates()
                        .filter(|t| {
                            t.payload.from() == from && t.payload.nonce() == h.payload.nonce()
                        })
                        .map(|t| t.id())
                        .collect()
                });
                p.drop_skipped(&head, &[], &state);
                if let Some(h) = head.first() {
                    assert!(!p.contains(&h.id()));
                    // Only an alternate of the skipped nonce may take its place.
                    let now_pending = p
                        .select(usize::MAX, usize::MAX)
                        .into_iter()
                        .find(|t| t.payload.from() == from)
                        .map(|t| t.id());
                    if let Some(id) = now_pending {
                        assert!(alternates.contains(&id), "promoted from its alternates");
                    }
                }
            }
            Op::External { sender, amount } => {
                let name = SENDERS[*sender];
                let nonce = state.account(&addr(name)).nonce;
                let tx = transfer_with(name, nonce, 7, |t| t.amount_consumer = *amount);
                if applies(&state, &tx) {
                    let undo = mine(&mut state, std::slice::from_ref(&tx));
                    p.remove_included(std::slice::from_ref(&tx), &state);
                    undone.push((undo, vec![tx]));
                }
            }
            Op::Reorg => {
                if let Some((undo, txs)) = undone.pop() {
                    state.apply(&undo);
                    let n = p.reinsert(&txs, &state, now);
                    assert!(n <= txs.len());
                }
            }
        }
        p.assert_invariants(Some(&state));
        let everything = p.select(usize::MAX, usize::MAX);
        assert_eq!(everything.len(), p.len());
        let mut s = state.clone();
        mine(&mut s, &everything);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_sequences_keep_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        run(&ops);
    }
}
