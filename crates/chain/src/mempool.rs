//! The mempool: transactions waiting for a block.
//!
//! Admission gives every refusal a typed [`AdmissionError`] with a **stable
//! numeric code** and a snake_case reason label (the `reason` of the node's
//! `tx_rejected_total{reason}` metric); `docs/spec/errors.md` is the table.
//!
//! Pure like the rest of the crate: the caller passes the time (`now_ms`) and
//! the state to check against; nothing here reads a clock or does IO.
//!
//! Rules (spelled out in `docs/spec/errors.md`):
//!
//! * **Nonce continuity.** A sender's pending transactions carry consecutive
//!   nonces starting at its account nonce. The next one must carry the next
//!   nonce; a nonce already pending is refused (no replace-by-fee).
//! * **Pending balance.** A sender's pending transactions, applied in nonce
//!   order on top of its state balance, must all be affordable: the new one
//!   is checked against the balance left after the earlier pending ones.
//! * **Limits.** [`MempoolConfig`] bounds the count, the bytes, the fee per
//!   byte, the time to live and the pending count per sender.
//! * **Eviction.** When full, the pool evicts the pending transaction with
//!   the lowest fee per byte among the *last* (highest-nonce) pending
//!   transaction of every *other* sender, repeating until the new one fits,
//!   and only if the new one's fee per byte is strictly higher than every
//!   victim's. Evicting a tail never breaks a sender's continuity; a sender
//!   never evicts its own transactions (they are the new one's predecessors).
//! * **Expiry.** An entry expires `ttl_ms` after it was admitted;
//!   [`Mempool::purge_expired`] drops it together with the later-nonce
//!   transactions of the same sender, which depend on it (counted as orphans).
//! * **After a block.** [`Mempool::remove_included`] drops the included
//!   transactions and re-checks every sender against the new state
//!   ([`Mempool::sweep_orphans`]); [`Mempool::reinsert`] re-admits the
//!   transactions of blocks undone by a reorganisation.
//!
//! Invariants (asserted by the tests after every operation): the count, bytes
//! and per-sender count never exceed their limits; each sender's nonces are
//! consecutive, and after any call that takes a state they start at that
//! state's account nonce and are affordable in order; at most one pending
//! handle claim per handle and per sender. Outputs never depend on hash-map
//! order: every map here is a `BTreeMap`, and ties are broken by tx id.

use crate::execute::{check_stateless, TxError};
use crate::params::ChainParams;
use crate::state::StateRead;
use crate::tx::{SignedTx, TxPayload};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::ops::Bound;
use tb_primitives::{Address, Id, Token};
use thiserror::Error;

/// Default of [`MempoolConfig::capacity_max`]: pending transactions.
pub const CAPACITY_MAX_DEFAULT: usize = 10_000;
/// Default of [`MempoolConfig::bytes_max`]: two full blocks' worth.
pub const BYTES_MAX_DEFAULT: usize = 16 * 1024 * 1024;
/// Default of [`MempoolConfig::fee_floor_per_byte`], micro-units per byte.
pub const FEE_FLOOR_PER_BYTE_DEFAULT: u64 = 1;
/// Default of [`MempoolConfig::ttl_ms`]: one hour.
pub const TTL_MS_DEFAULT: u64 = 60 * 60 * 1_000;
/// Default of [`MempoolConfig::per_sender_max`].
pub const PER_SENDER_MAX_DEFAULT: usize = 64;

/// The mempool's limits. Node-local policy, not consensus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Pending transactions, all senders together.
    pub capacity_max: usize,
    /// Canonical encoded bytes of the pending transactions, summed.
    pub bytes_max: usize,
    /// Minimum fee per encoded byte, micro-units: a transaction of `n` bytes
    /// must pay at least `n * fee_floor_per_byte` (in either token).
    pub fee_floor_per_byte: u64,
    /// How long an entry may wait, from admission. `0` admits nothing.
    pub ttl_ms: u64,
    /// Pending transactions of one sender.
    pub per_sender_max: usize,
}

impl Default for MempoolConfig {
    fn default() -> MempoolConfig {
        MempoolConfig {
            capacity_max: CAPACITY_MAX_DEFAULT,
            bytes_max: BYTES_MAX_DEFAULT,
            fee_floor_per_byte: FEE_FLOOR_PER_BYTE_DEFAULT,
            ttl_ms: TTL_MS_DEFAULT,
            per_sender_max: PER_SENDER_MAX_DEFAULT,
        }
    }
}

/// Why the mempool refuses a transaction. Each variant has a stable
/// [`code`](AdmissionError::code) and [`reason`](AdmissionError::reason);
/// changing either is a breaking change of the RPC and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdmissionError {
    #[error("signature does not verify")]
    BadSignature,
    #[error("fee selector {0} is not 0, 1 or 2")]
    InvalidSelector(u8),
    #[error("memo is {len} bytes, above the limit of {max}")]
    MemoTooLarge { len: usize, max: usize },
    #[error("transaction is {len} bytes, above the limit of {max}")]
    TxTooLarge { len: usize, max: usize },
    #[error("handle {0:?} does not follow the handle syntax")]
    InvalidHandle(String),
    #[error(
        "fee {} is below the floor of {} tokens for this transaction's size",
        tb_primitives::Amount(*fee),
        tb_primitives::Amount(*floor)
    )]
    FeeBelowFloor { fee: u64, floor: u64 },
    #[error("nonce {got} is already used: the account's nonce is {expected}")]
    NonceReused { expected: u64, got: u64 },
    #[error("nonce {got} leaves a gap: the sender's next nonce is {expected}")]
    NonceGap { expected: u64, got: u64 },
    #[error("another pending transaction of this sender has nonce {nonce}")]
    DuplicateNonce { nonce: u64 },
    #[error("transaction {0} is already pending")]
    DuplicateTx(Id),
    #[error(
        "insufficient {token:?} balance: need {} tokens with the pending transactions, have {}",
        tb_primitives::Amount(*need),
        tb_primitives::Amount(*have)
    )]
    InsufficientBalance { token: Token, need: u64, have: u64 },
    #[error("a balance would overflow")]
    BalanceOverflow,
    #[error("handle {0:?} is registered or claimed by a pending transaction")]
    HandleTaken(String),
    #[error("the sender holds a handle or has a pending claim")]
    AddressHasHandle,
    #[error("the sender already has {max} pending transactions")]
    SenderFull { max: usize },
    #[error("the pool is full and the fee per byte does not beat the lowest evictable one")]
    PoolFull,
    #[error("first seen {age_ms} ms ago, not less than the time to live of {ttl_ms} ms")]
    Expired { age_ms: u64, ttl_ms: u64 },
    #[error("invalid market transaction: {0}")]
    InvalidMarketTx(String),
}

/// The one table of admission refusals: each variant's stable numeric code (from 1,
/// in order) and its snake_case reason (the metric's `reason` label, the RPC's `data`),
/// from which [`AdmissionError::code`], [`AdmissionError::reason`] and
/// [`REJECTION_REASONS`] are all generated.
macro_rules! rejections {
    ($($code:literal $reason:literal => $variant:ident,)*) => {
        /// Every `(code, reason)`, in code order: code `c` is at index `c - 1`.
        pub const REJECTION_REASONS: [(u16, &str); [$($code),*].len()] =
            [$(($code, $reason)),*];

        impl AdmissionError {
            /// The stable numeric code, from 1.
            pub fn code(&self) -> u16 {
                match self {
                    $(AdmissionError::$variant { .. } => $code,)*
                }
            }

            /// The stable snake_case label (the metric's `reason`).
            pub fn reason(&self) -> &'static str {
                match self {
                    $(AdmissionError::$variant { .. } => $reason,)*
                }
            }
        }
    };
}

rejections! {
     1 "bad_signature" => BadSignature,
     2 "invalid_selector" => InvalidSelector,
     3 "memo_too_large" => MemoTooLarge,
     4 "tx_too_large" => TxTooLarge,
     5 "invalid_handle" => InvalidHandle,
     6 "fee_below_floor" => FeeBelowFloor,
     7 "nonce_reused" => NonceReused,
     8 "nonce_gap" => NonceGap,
     9 "duplicate_nonce" => DuplicateNonce,
    10 "duplicate_tx" => DuplicateTx,
    11 "insufficient_balance" => InsufficientBalance,
    12 "balance_overflow" => BalanceOverflow,
    13 "handle_taken" => HandleTaken,
    14 "address_has_handle" => AddressHasHandle,
    15 "sender_full" => SenderFull,
    16 "pool_full" => PoolFull,
    17 "expired" => Expired,
    18 "invalid_market_tx" => InvalidMarketTx,
}

const REASON_COUNT: usize = REJECTION_REASONS.len();

impl From<TxError> for AdmissionError {
    fn from(e: TxError) -> AdmissionError {
        match e {
            TxError::BadSignature => AdmissionError::BadSignature,
            TxError::InvalidSelector(s) => AdmissionError::InvalidSelector(s),
            TxError::MemoTooLarge { len, max } => AdmissionError::MemoTooLarge { len, max },
            TxError::TxTooLarge { len, max } => AdmissionError::TxTooLarge { len, max },
            TxError::BadNonce { expected, got } if got < expected => {
                AdmissionError::NonceReused { expected, got }
            }
            TxError::BadNonce { expected, got } => AdmissionError::NonceGap { expected, got },
            TxError::InsufficientBalance { token, need, have } => {
                AdmissionError::InsufficientBalance { token, need, have }
            }
            TxError::BalanceOverflow => AdmissionError::BalanceOverflow,
            TxError::InvalidHandle(h) => AdmissionError::InvalidHandle(h),
            TxError::HandleTaken(h) => AdmissionError::HandleTaken(h),
            TxError::AddressHasHandle => AdmissionError::AddressHasHandle,
            TxError::Market(m) => AdmissionError::InvalidMarketTx(m),
        }
    }
}

/// Monotonic counters, exported by the node as metrics. They saturate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MempoolCounters {
    /// Transactions admitted by `admit`/`admit_at`.
    pub admitted_total: u64,
    /// Pending transactions removed because a block included them.
    pub included_total: u64,
    /// Entries dropped by `purge_expired` (or a `reinsert`) because their
    /// time to live ran out.
    pub ttl_drop_total: u64,
    /// Entries dropped because a transaction they depend on left the pool, or
    /// because they no longer apply to the state (already mined, unaffordable,
    /// handle taken).
    pub orphan_sweep_total: u64,
    /// Entries evicted to make room for a better-paying transaction.
    pub evictions_total: u64,
    /// Refusals by `admit`/`admit_at`, at index `code - 1`.
    pub rejected_by_code: [u64; REASON_COUNT],
}

/// A fee per byte compared exactly, as the fraction `fee / bytes`.
#[derive(Clone, Copy, Debug)]
struct FeeRate {
    fee: u64,
    bytes: u64,
}

impl FeeRate {
    fn new(fee: u64, bytes: usize) -> FeeRate {
        FeeRate {
            fee,
            bytes: u64::try_from(bytes).unwrap_or(u64::MAX).max(1),
        }
    }
}

impl Ord for FeeRate {
    fn cmp(&self, o: &FeeRate) -> Ordering {
        (u128::from(self.fee) * u128::from(o.bytes))
            .cmp(&(u128::from(o.fee) * u128::from(self.bytes)))
    }
}

impl PartialOrd for FeeRate {
    fn partial_cmp(&self, o: &FeeRate) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl PartialEq for FeeRate {
    fn eq(&self, o: &FeeRate) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}

impl Eq for FeeRate {}

#[derive(Clone, Debug)]
struct Entry {
    tx: SignedTx,
    id: Id,
    bytes: usize,
    rate: FeeRate,
    admitted_ms: u64,
}

/// One sender's pending transactions by nonce.
type Queue = BTreeMap<u64, Entry>;

/// A sender's account as its pending transactions leave it, walked in nonce
/// order. Mirrors `execute::apply_tx` for the sender's side.
struct Cursor {
    account_nonce: u64,
    have_consumer: u64,
    have_industrial: u64,
    nonce: u64,
    consumer: u64,
    industrial: u64,
    has_handle: bool,
    /// Whether the sender is a registered provider, or registers in an earlier
    /// pending transaction.
    is_provider: bool,
}

impl Cursor {
    fn new<S: StateRead + ?Sized>(state: &S, addr: &Address) -> Cursor {
        let acc = state.account(addr);
        Cursor {
            account_nonce: acc.nonce,
            have_consumer: acc.consumer,
            have_industrial: acc.industrial,
            nonce: acc.nonce,
            consumer: acc.consumer,
            industrial: acc.industrial,
            has_handle: state.handle_of(addr).is_some(),
            is_provider: crate::market::records::provider(state, addr).is_some(),
        }
    }

    /// Takes `tx` as the sender's next transaction; unchanged on error.
    fn step<S: StateRead + ?Sized>(
        &mut self,
        state: &S,
        tx: &SignedTx,
    ) -> Result<(), AdmissionError> {
        let p = &tx.payload;
        let got = p.nonce();
        if got < self.account_nonce {
            return Err(AdmissionError::NonceReused {
                expected: self.account_nonce,
                got,
            });
        }
        if got < self.nonce {
            return Err(AdmissionError::DuplicateNonce { nonce: got });
        }
        if got > self.nonce {
            return Err(AdmissionError::NonceGap {
                expected: self.nonce,
                got,
            });
        }
        let (need_c, need_i) = p.spend().ok_or(AdmissionError::BalanceOverflow)?;
        let short = |token, have: u64, left: u64, need: u64| AdmissionError::InsufficientBalance {
            token,
            need: have.saturating_sub(left).saturating_add(need),
            have,
        };
        if self.consumer < need_c {
            return Err(short(
                Token::Consumer,
                self.have_consumer,
                self.consumer,
                need_c,
            ));
        }
        if self.industrial < need_i {
            return Err(short(
                Token::Industrial,
                self.have_industrial,
                self.industrial,
                need_i,
            ));
        }
        let mut consumer = self.consumer - need_c;
        let mut industrial = self.industrial - need_i;
        let mut has_handle = self.has_handle;
        match p {
            TxPayload::Transfer(t) if t.to == p.from() => {
                // A self-transfer gives its amounts back; never above the old balance.
                consumer += t.amount_consumer;
                industrial += t.amount_industrial;
            }
            TxPayload::Transfer(t) => {
                let to = state.account(&t.to);
                if to.consumer.checked_add(t.amount_consumer).is_none()
                    || to.industrial.checked_add(t.amount_industrial).is_none()
                {
                    return Err(AdmissionError::BalanceOverflow);
                }
            }
            TxPayload::RegisterHandle(h) => {
                if state.handle_owner(&h.handle).is_some() {
                    return Err(AdmissionError::HandleTaken(h.handle.clone()));
                }
                if has_handle {
                    return Err(AdmissionError::AddressHasHandle);
                }
                has_handle = true;
            }
            // Market transactions: the sender's funds (fee, stake, escrow) are
            // accounted above; their market rules are checked when a block applies
            // them, and a block template skips one that fails.
            TxPayload::RegisterProvider(_) => self.is_provider = true,
            TxPayload::Stake(_)
            | TxPayload::Unstake(_)
            | TxPayload::Heartbeat(_)
            | TxPayload::Propose(_)
            | TxPayload::Vote(_)
                if !self.is_provider =>
            {
                return Err(AdmissionError::InvalidMarketTx(
                    "not a registered provider".into(),
                ));
            }
            TxPayload::SubmitReceipt(r) => {
                if !self.is_provider {
                    return Err(AdmissionError::InvalidMarketTx(
                        "not a registered provider".into(),
                    ));
                }
                if crate::market::records::job(state, &r.task_id).is_none() {
                    return Err(AdmissionError::InvalidMarketTx("unknown task".into()));
                }
            }
            TxPayload::SealReceipt(r) => {
                if !self.is_provider {
                    return Err(AdmissionError::InvalidMarketTx(
                        "not a registered provider".into(),
                    ));
                }
                if crate::market::records::job(state, &r.task_id).is_none() {
                    return Err(AdmissionError::InvalidMarketTx("unknown task".into()));
                }
            }
            TxPayload::Challenge(c) => {
                if crate::market::records::job(state, &c.task_id).is_none() {
                    return Err(AdmissionError::InvalidMarketTx("unknown task".into()));
                }
            }
            TxPayload::SupplyEvidence(e) => {
                if crate::market::records::job(state, &e.task_id).is_none() {
                    return Err(AdmissionError::InvalidMarketTx("unknown task".into()));
                }
            }
            TxPayload::ReportMalformed(m) => {
                if !self.is_provider {
                    return Err(AdmissionError::InvalidMarketTx(
                        "not a registered provider".into(),
                    ));
                }
                if crate::market::records::job(state, &m.task_id).is_none() {
                    return Err(AdmissionError::InvalidMarketTx("unknown task".into()));
                }
            }
            TxPayload::Stake(_)
            | TxPayload::Unstake(_)
            | TxPayload::Heartbeat(_)
            | TxPayload::SubmitJob(_)
            | TxPayload::PublishBlob(_)
            | TxPayload::Propose(_)
            | TxPayload::Vote(_) => {}
        }
        // Saturating: an account would need 2^64 transactions to get here.
        self.nonce = self.nonce.saturating_add(1);
        self.consumer = consumer;
        self.industrial = industrial;
        self.has_handle = has_handle;
        Ok(())
    }
}

/// A transaction offered for (re-)admission.
struct Candidate {
    tx: SignedTx,
    seen_ms: u64,
    /// `false` for entries already in the pool, whose signature was checked.
    verify: bool,
}

/// Pending transactions. See the module docs for the rules.
#[derive(Clone, Debug)]
pub struct Mempool {
    config: MempoolConfig,
    params: ChainParams,
    senders: BTreeMap<Address, Queue>,
    by_id: BTreeMap<Id, (Address, u64)>,
    /// `(rate, id)` of every sender's highest-nonce entry: the evictable ones.
    tails: BTreeSet<(FeeRate, Id)>,
    /// Handles claimed by pending `RegisterHandle`s, and the claimant.
    handles: BTreeMap<String, Address>,
    bytes: usize,
    counters: MempoolCounters,
}

impl Mempool {
    pub fn new(config: MempoolConfig, params: ChainParams) -> Mempool {
        Mempool {
            config,
            params,
            senders: BTreeMap::new(),
            by_id: BTreeMap::new(),
            tails: BTreeSet::new(),
            handles: BTreeMap::new(),
            bytes: 0,
            counters: MempoolCounters::default(),
        }
    }

    /// The parameters admission checks against.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// Replaces the parameters the stateless checks use. Governance changes the
    /// market parameters on chain (`governance::effective_params`); until the node
    /// passes the tip's effective parameters here, admission keeps judging market
    /// transactions by the old ones (a block template still skips what the block's
    /// own parameters refuse). Pending entries are not re-checked.
    pub fn set_params(&mut self, params: ChainParams) {
        self.params = params;
    }

    pub fn config(&self) -> &MempoolConfig {
        &self.config
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Canonical encoded bytes of the pending transactions, summed.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.by_id.contains_key(id)
    }

    pub fn get(&self, id: &Id) -> Option<&SignedTx> {
        self.entry(id).map(|e| &e.tx)
    }

    /// When the entry was admitted (the `seen_ms` it was admitted with).
    pub fn admitted_ms(&self, id: &Id) -> Option<u64> {
        self.entry(id).map(|e| e.admitted_ms)
    }

    /// Pending transactions of `addr`.
    pub fn pending_count(&self, addr: &Address) -> usize {
        self.senders.get(addr).map_or(0, |q| q.len())
    }

    /// The nonce `addr`'s next transaction should carry: past its pending
    /// ones if they continue the account nonce in `state`.
    pub fn next_nonce<S: StateRead + ?Sized>(&self, addr: &Address, state: &S) -> u64 {
        let nonce = state.account(addr).nonce;
        match self.senders.get(addr) {
            Some(q) if q.first_key_value().map(|(n, _)| *n) == Some(nonce) => q
                .last_key_value()
                .map_or(nonce, |(n, _)| n.saturating_add(1)),
            _ => nonce,
        }
    }

    /// Every pending transaction, by sender then nonce.
    pub fn iter(&self) -> impl Iterator<Item = &SignedTx> + '_ {
        self.senders
            .values()
            .flat_map(|q| q.values().map(|e| &e.tx))
    }

    pub fn counters(&self) -> &MempoolCounters {
        &self.counters
    }

    /// Refusals per reason label, every reason present (zeros included).
    pub fn rejected_by_reason(&self) -> BTreeMap<&'static str, u64> {
        REJECTION_REASONS
            .iter()
            .zip(self.counters.rejected_by_code.iter())
            .map(|((_, reason), n)| (*reason, *n))
            .collect()
    }

    /// Admits `tx`, first seen now. See [`Mempool::admit_at`].
    pub fn admit<S: StateRead + ?Sized>(
        &mut self,
        tx: SignedTx,
        state: &S,
        now_ms: u64,
    ) -> Result<Id, AdmissionError> {
        self.admit_at(tx, state, now_ms, now_ms)
    }

    /// Admits `tx`, first seen at `seen_ms` (its entry expires `ttl_ms` after
    /// that; a `seen_ms` in the future counts as `now_ms`), against `state`
    /// (the tip's). Returns its id. Checks, in order: duplicate id, the
    /// stateless rules, expiry, fee floor, signature, then the sender's
    /// nonce, balance and handle rules on top of its pending transactions,
    /// the per-sender limit and the capacity (evicting if it pays more).
    /// Before the sender checks, the sender's pending transactions are
    /// brought in line with `state` as [`Mempool::sweep_orphans`] would.
    pub fn admit_at<S: StateRead + ?Sized>(
        &mut self,
        tx: SignedTx,
        state: &S,
        seen_ms: u64,
        now_ms: u64,
    ) -> Result<Id, AdmissionError> {
        let verify = true;
        let r = self.admit_inner(
            Candidate {
                tx,
                seen_ms,
                verify,
            },
            state,
            now_ms,
        );
        match &r {
            Ok(_) => bump(&mut self.counters.admitted_total, 1),
            Err(e) => {
                let i = usize::from(e.code()).wrapping_sub(1);
                if let Some(n) = self.counters.rejected_by_code.get_mut(i) {
                    bump(n, 1);
                }
            }
        }
        r
    }

    /// Drops every entry admitted `ttl_ms` or more before `now_ms`, with the
    /// later-nonce entries of its sender (orphans). Returns how many entries
    /// left, expired and orphaned together.
    pub fn purge_expired(&mut self, now_ms: u64) -> usize {
        let ttl_ms = self.config.ttl_ms;
        let expired = |e: &Entry| now_ms.saturating_sub(e.admitted_ms) >= ttl_ms;
        let hit: Vec<(Address, u64)> = self
            .senders
            .iter()
            .filter_map(|(a, q)| q.iter().find(|(_, e)| expired(e)).map(|(n, _)| (*a, *n)))
            .collect();
        let (mut ttl, mut orphans) = (0u64, 0u64);
        for (addr, first) in hit {
            let mut q = self.take_queue(&addr);
            let gone = q.split_off(&first);
            for e in gone.values() {
                self.forget(&addr, e);
                if expired(e) {
                    ttl += 1;
                } else {
                    orphans += 1;
                }
            }
            self.put_queue(addr, q);
        }
        bump(&mut self.counters.ttl_drop_total, ttl);
        bump(&mut self.counters.orphan_sweep_total, orphans);
        usize::try_from(ttl + orphans).unwrap_or(usize::MAX)
    }

    /// Re-checks every sender against `state`: drops entries whose nonce is
    /// below the account nonce (mined, or replaced by a mined transaction),
    /// and from the first entry that no longer applies in nonce order (a gap,
    /// an unaffordable spend, a taken handle) every later one. Returns how
    /// many were dropped (all counted in `orphan_sweep_total`).
    pub fn sweep_orphans<S: StateRead + ?Sized>(&mut self, state: &S) -> usize {
        let addrs: Vec<Address> = self.senders.keys().copied().collect();
        addrs.iter().map(|a| self.sync_sender(a, state).1).sum()
    }

    /// After a block is applied: drops its transactions (`txs`, in block
    /// order) and sweeps every sender against `state`, the new tip's.
    /// Returns how many entries left, included and swept together.
    pub fn remove_included<S: StateRead + ?Sized>(&mut self, txs: &[SignedTx], state: &S) -> usize {
        let mut included = 0usize;
        for tx in txs {
            let Some(&(addr, nonce)) = self.by_id.get(&tx.id()) else {
                continue;
            };
            let mut q = self.take_queue(&addr);
            if let Some(e) = q.remove(&nonce) {
                self.forget(&addr, &e);
                included += 1;
            }
            self.put_queue(addr, q);
        }
        bump(&mut self.counters.included_total, included as u64);
        included + self.sweep_orphans(state)
    }

    /// Drops the entry `id` with every later-nonce entry of its sender (they can no
    /// longer apply): for a transaction a block builder found not to execute, which
    /// would otherwise block its sender until its time to live. Returns how many
    /// entries left (the dependents counted in `orphan_sweep_total`).
    pub fn drop_with_dependents(&mut self, id: &Id) -> usize {
        let Some(&(addr, nonce)) = self.by_id.get(id) else {
            return 0;
        };
        let mut q = self.take_queue(&addr);
        let gone = q.split_off(&nonce);
        for e in gone.values() {
            self.forget(&addr, e);
        }
        self.put_queue(addr, q);
        bump(
            &mut self.counters.orphan_sweep_total,
            gone.len().saturating_sub(1) as u64,
        );
        gone.len()
    }

    /// After a reorganisation: re-admits `txs` (the undone blocks'
    /// transactions, any order) against `state`, the new tip's, as seen at
    /// `now_ms`. Best effort: each sender's reinserted and pending
    /// transactions are re-admitted together in nonce order with the usual
    /// checks (on a nonce clash the reinserted one is offered first; pending
    /// ones keep their admission time), then every sender is swept. Refusals
    /// are not counted as rejections. Returns how many of `txs` are pending
    /// afterwards (one already pending before the call is not counted).
    pub fn reinsert<S: StateRead + ?Sized>(
        &mut self,
        txs: &[SignedTx],
        state: &S,
        now_ms: u64,
    ) -> usize {
        let mut groups: BTreeMap<Address, Vec<(u64, u8, Candidate)>> = BTreeMap::new();
        let mut fresh: BTreeSet<Id> = BTreeSet::new();
        for tx in txs {
            let id = tx.id();
            if self.by_id.contains_key(&id) || !fresh.insert(id) {
                continue;
            }
            let c = Candidate {
                tx: tx.clone(),
                seen_ms: now_ms,
                verify: true,
            };
            groups
                .entry(tx.payload.from())
                .or_default()
                .push((tx.payload.nonce(), 0, c));
        }
        for (addr, group) in groups.iter_mut() {
            let q = self.take_queue(addr);
            for e in q.into_values() {
                self.forget(addr, &e);
                let c = Candidate {
                    tx: e.tx,
                    seen_ms: e.admitted_ms,
                    verify: false,
                };
                group.push((c.tx.payload.nonce(), 1, c));
            }
            group.sort_by_key(|(nonce, rank, _)| (*nonce, *rank));
        }
        for (_, group) in groups {
            for (_, rank, c) in group {
                match self.admit_inner(c, state, now_ms) {
                    Ok(_) => {}
                    Err(_) if rank == 0 => {}
                    Err(AdmissionError::Expired { .. }) => {
                        bump(&mut self.counters.ttl_drop_total, 1)
                    }
                    Err(_) => bump(&mut self.counters.orphan_sweep_total, 1),
                }
            }
        }
        self.sweep_orphans(state);
        fresh.iter().filter(|id| self.contains(id)).count()
    }

    /// Candidates for a block template: at most `max_count` transactions of
    /// at most `max_bytes` encoded bytes together. Repeatedly takes the
    /// best-paying (fee per byte, then smaller id) next transaction among the
    /// senders, each sender's in nonce order; a sender whose next one does
    /// not fit contributes nothing more.
    pub fn select(&self, max_count: usize, max_bytes: usize) -> Vec<SignedTx> {
        let mut heap: BinaryHeap<(FeeRate, Reverse<Id>, Address, u64)> = self
            .senders
            .iter()
            .filter_map(|(a, q)| {
                q.first_key_value()
                    .map(|(n, e)| (e.rate, Reverse(e.id), *a, *n))
            })
            .collect();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while out.len() < max_count {
            let Some((_, _, addr, nonce)) = heap.pop() else {
                break;
            };
            let Some(q) = self.senders.get(&addr) else {
                continue;
            };
            let Some(e) = q.get(&nonce) else {
                continue;
            };
            let Some(total) = bytes.checked_add(e.bytes).filter(|t| *t <= max_bytes) else {
                continue;
            };
            bytes = total;
            out.push(e.tx.clone());
            if let Some((n, next)) = q.range((Bound::Excluded(nonce), Bound::Unbounded)).next() {
                heap.push((next.rate, Reverse(next.id), addr, *n));
            }
        }
        out
    }

    fn entry(&self, id: &Id) -> Option<&Entry> {
        let (addr, nonce) = self.by_id.get(id)?;
        self.senders.get(addr)?.get(nonce)
    }

    fn admit_inner<S: StateRead + ?Sized>(
        &mut self,
        c: Candidate,
        state: &S,
        now_ms: u64,
    ) -> Result<Id, AdmissionError> {
        let tx = c.tx;
        let id = tx.id();
        if self.by_id.contains_key(&id) {
            return Err(AdmissionError::DuplicateTx(id));
        }
        check_stateless(&tx, &self.params)?;
        let age_ms = now_ms.saturating_sub(c.seen_ms);
        if age_ms >= self.config.ttl_ms {
            return Err(AdmissionError::Expired {
                age_ms,
                ttl_ms: self.config.ttl_ms,
            });
        }
        let bytes = tx.encoded_len();
        let fee = tx.payload.fee();
        let floor = u128::try_from(bytes)
            .unwrap_or(u128::MAX)
            .saturating_mul(u128::from(self.config.fee_floor_per_byte));
        if u128::from(fee) < floor {
            let floor = u64::try_from(floor).unwrap_or(u64::MAX);
            return Err(AdmissionError::FeeBelowFloor { fee, floor });
        }
        if c.verify && !tx.verify_signature(self.params.chain_id) {
            return Err(AdmissionError::BadSignature);
        }
        let from = tx.payload.from();
        let (mut cursor, _) = self.sync_sender(&from, state);
        cursor.step(state, &tx)?;
        if let TxPayload::RegisterHandle(h) = &tx.payload {
            if self.handles.contains_key(&h.handle) {
                return Err(AdmissionError::HandleTaken(h.handle.clone()));
            }
        }
        if self.pending_count(&from) >= self.config.per_sender_max {
            return Err(AdmissionError::SenderFull {
                max: self.config.per_sender_max,
            });
        }
        let rate = FeeRate::new(fee, bytes);
        for victim in self.plan_eviction(&from, rate, bytes)? {
            self.evict(&victim);
        }
        let entry = Entry {
            id,
            bytes,
            rate,
            admitted_ms: c.seen_ms.min(now_ms),
            tx,
        };
        let mut q = self.take_queue(&from);
        self.remember(&from, &entry);
        q.insert(entry.tx.payload.nonce(), entry);
        self.put_queue(from, q);
        Ok(id)
    }

    /// The entries to evict, in order, so that a transaction of `from` with
    /// `rate` and `bytes` fits; `PoolFull` if that takes evicting one that
    /// pays as much or more per byte, or is impossible.
    fn plan_eviction(
        &self,
        from: &Address,
        rate: FeeRate,
        bytes: usize,
    ) -> Result<Vec<Id>, AdmissionError> {
        let (count_max, bytes_max) = (self.config.capacity_max, self.config.bytes_max);
        if count_max == 0 || bytes > bytes_max {
            return Err(AdmissionError::PoolFull);
        }
        let mut count = self.by_id.len().saturating_add(1);
        let mut total = self.bytes.saturating_add(bytes);
        let mut victims = Vec::new();
        let mut tails = self
            .tails
            .iter()
            .filter(|(_, id)| self.by_id.get(id).map(|(a, _)| a) != Some(from))
            .peekable();
        // Predecessors of planned victims: evictable once their tail is gone.
        let mut exposed: BinaryHeap<Reverse<(FeeRate, Id)>> = BinaryHeap::new();
        while count > count_max || total > bytes_max {
            let take_exposed = match (tails.peek(), exposed.peek()) {
                (Some(t), Some(Reverse(x))) => x < *t,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (None, None) => return Err(AdmissionError::PoolFull),
            };
            let next = if take_exposed {
                exposed.pop().map(|Reverse(x)| x)
            } else {
                tails.next().copied()
            };
            let (victim_rate, victim) = next.ok_or(AdmissionError::PoolFull)?;
            if victim_rate >= rate {
                return Err(AdmissionError::PoolFull);
            }
            let (addr, nonce) = self.by_id.get(&victim).ok_or(AdmissionError::PoolFull)?;
            let q = self.senders.get(addr).ok_or(AdmissionError::PoolFull)?;
            let e = q.get(nonce).ok_or(AdmissionError::PoolFull)?;
            count -= 1;
            total = total.saturating_sub(e.bytes);
            victims.push(victim);
            if let Some((_, prev)) = q.range(..*nonce).next_back() {
                exposed.push(Reverse((prev.rate, prev.id)));
            }
        }
        Ok(victims)
    }

    fn evict(&mut self, id: &Id) {
        let Some(&(addr, nonce)) = self.by_id.get(id) else {
            return;
        };
        let mut q = self.take_queue(&addr);
        debug_assert_eq!(
            q.last_key_value().map(|(n, _)| *n),
            Some(nonce),
            "evicting a tail"
        );
        if let Some(e) = q.remove(&nonce) {
            self.forget(&addr, &e);
            bump(&mut self.counters.evictions_total, 1);
        }
        self.put_queue(addr, q);
    }

    /// Brings `addr`'s queue in line with `state` (see `sweep_orphans`).
    /// Returns the cursor past the kept entries and how many were dropped.
    fn sync_sender<S: StateRead + ?Sized>(&mut self, addr: &Address, state: &S) -> (Cursor, usize) {
        let q = self.take_queue(addr);
        let mut cursor = Cursor::new(state, addr);
        let mut kept = Queue::new();
        let mut dropped = 0usize;
        let mut broken = false;
        for (nonce, e) in q {
            let stale = nonce < cursor.account_nonce;
            broken = broken || (!stale && cursor.step(state, &e.tx).is_err());
            if stale || broken {
                self.forget(addr, &e);
                dropped += 1;
            } else {
                kept.insert(nonce, e);
            }
        }
        self.put_queue(*addr, kept);
        bump(&mut self.counters.orphan_sweep_total, dropped as u64);
        (cursor, dropped)
    }

    /// Detaches `addr`'s queue (and its tail from the eviction index).
    fn take_queue(&mut self, addr: &Address) -> Queue {
        let q = self.senders.remove(addr).unwrap_or_default();
        if let Some((_, t)) = q.last_key_value() {
            self.tails.remove(&(t.rate, t.id));
        }
        q
    }

    /// Attaches `addr`'s queue (if not empty) and indexes its tail.
    fn put_queue(&mut self, addr: Address, q: Queue) {
        if let Some((_, t)) = q.last_key_value() {
            self.tails.insert((t.rate, t.id));
            self.senders.insert(addr, q);
        }
    }

    /// Bookkeeping for an entry joining `addr`'s queue.
    fn remember(&mut self, addr: &Address, e: &Entry) {
        self.by_id.insert(e.id, (*addr, e.tx.payload.nonce()));
        self.bytes = self.bytes.saturating_add(e.bytes);
        if let TxPayload::RegisterHandle(h) = &e.tx.payload {
            self.handles.insert(h.handle.clone(), *addr);
        }
    }

    /// Bookkeeping for an entry leaving `addr`'s queue.
    fn forget(&mut self, addr: &Address, e: &Entry) {
        self.by_id.remove(&e.id);
        debug_assert!(self.bytes >= e.bytes, "byte count out of step");
        self.bytes = self.bytes.saturating_sub(e.bytes);
        if let TxPayload::RegisterHandle(h) = &e.tx.payload {
            if self.handles.get(&h.handle) == Some(addr) {
                self.handles.remove(&h.handle);
            }
        }
    }
}

fn bump(counter: &mut u64, n: u64) {
    *counter = counter.saturating_add(n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execute::{apply_tx, Fees};
    use crate::state::{account_key, handle_key, reverse_handle_key, Account, Overlay, State};
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

    fn transfer_with(
        from: &str,
        nonce: u64,
        fee: u64,
        edit: impl FnOnce(&mut Transfer),
    ) -> SignedTx {
        let mut t = Transfer {
            from: addr(from),
            to: addr("zed"),
            amount_consumer: 100,
            amount_industrial: 0,
            fee,
            fee_selector: 0,
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
            fee_selector: 0,
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
        check(E::InvalidMarketTx("x".into()), 18, "invalid_market_tx");
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
        let err = refuse(&mut p, &state, transfer("alice", 6, 1_000), "nonce_gap");
        assert_eq!(
            err,
            AdmissionError::NonceGap {
                expected: 5,
                got: 6
            }
        );
        let first = transfer("alice", 5, 1_000);
        p.admit(first.clone(), &state, 0).unwrap();
        let err = refuse(&mut p, &state, first, "duplicate_tx");
        assert!(matches!(err, AdmissionError::DuplicateTx(_)));
        // No replace-by-fee: a better-paying tx with a pending nonce is refused.
        refuse(
            &mut p,
            &state,
            transfer("alice", 5, 9_000),
            "duplicate_nonce",
        );
        let err = refuse(&mut p, &state, transfer("alice", 7, 1_000), "nonce_gap");
        assert_eq!(
            err,
            AdmissionError::NonceGap {
                expected: 6,
                got: 7
            }
        );
        p.admit(transfer("alice", 6, 1_000), &state, 0).unwrap();
        assert_eq!(p.next_nonce(&addr("alice"), &state), 7);
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
            t.fee_selector = 1;
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
        for tx in [&a1, &c0, &b0, &a0] {
            let _ = p.admit(tx.clone(), &state, 0);
        }
        p.admit(a1.clone(), &state, 0).unwrap();
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
    // Property: random admission, purge, select, mining, external txs and
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
        ]
    }

    fn run(ops: &[Op]) {
        let mut state = funded(&SENDERS, 1_000_000);
        let mut p = pool_with(|c| {
            c.capacity_max = 5;
            c.bytes_max = 1_000;
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
                            assert_eq!(nonce, next, "only the next nonce is admitted");
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
                Op::External { sender, amount } => {
                    let name = SENDERS[*sender];
                    let nonce = state.account(&addr(name)).nonce;
                    let tx = transfer_with(name, nonce, 7, |t| t.amount_consumer = *amount);
                    let mut ov = Overlay::new(&state);
                    let cp = params();
                    let ctx = crate::execute::TxCtx {
                        params: &cp,
                        height: 1,
                        timestamp_ms: 0,
                    };
                    if apply_tx(&mut ov, &tx, &mut Fees::default(), &ctx).is_ok() {
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
}
