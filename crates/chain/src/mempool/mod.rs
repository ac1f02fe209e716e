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
//!   nonce. There is no replace-by-fee: a different transaction with a nonce
//!   already pending becomes an *alternate* of that nonce, never its replacement.
//! * **Alternates.** A sender that signed two transactions with one nonce (a
//!   provider whose node crashed and decided again, a wallet that failed over to
//!   another node) has peers that hold one version and refuse the other, and
//!   gossip does not deliver a refused transaction twice. If the version a pool
//!   holds then never executes (decided on a branch that lost), the sender is
//!   stuck behind it on every such pool until its time to live. So the pool keeps
//!   a second version as an alternate: it passes every admission check at its
//!   nonce (on top of the sender's earlier pending transactions), is never
//!   selected for a block, and is promoted in place of the pending one when that
//!   one leaves without being included ([`Mempool::drop_skipped`],
//!   [`Mempool::drop_unexecutable`], or a sweep that finds it no longer applies);
//!   the later pending transactions it displaces become alternates in turn.
//!   At most [`ALTERNATES_PER_NONCE_MAX`] per nonce, a quarter of
//!   `per_sender_max` per sender, and an eighth of `capacity_max` and of
//!   `bytes_max` in all (a budget beside the pending transactions', so the pool
//!   holds at most 1.125× its configured bytes); past those, and for a
//!   `RegisterHandle`, the refusal is `DuplicateNonce`. An alternate leaves with
//!   its nonce (mined, or its pending transaction dropped with no promotion), its
//!   own time to live, or the eviction of the pending transaction at its nonce.
//! * **Held for a gap.** A transaction whose nonce is ahead of its sender's next
//!   one is refused with `NonceGap`, and also *held*, not relayed, until the
//!   nonces before it arrive (gossip over several paths reorders a sender's
//!   transactions, and never delivers the refused one again). When the sender's
//!   next nonce reaches it — the missing ones admitted, or mined — it is admitted
//!   with the usual checks and handed to the node to relay
//!   ([`Mempool::take_ready`]). At most `per_sender_max` nonces ahead of the
//!   account's, one per nonce, a quarter of `per_sender_max` per sender and an
//!   eighth of `capacity_max` and `bytes_max` in all (with the alternates' eighth,
//!   a pool holds at most 1.25× its configured bytes); it expires with its time to
//!   live like an entry.
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
//! handle claim per handle and per sender; every alternate has a pending
//! transaction at its nonce, and the alternates keep within their limits. Outputs never depend on hash-map
//! order: every map here is a `BTreeMap`, and ties are broken by tx id.

use crate::error::{GovernanceRefusal, MarketRefusal};
use crate::execute::{check_stateless, TxError};
use crate::params::ChainParams;
use crate::sigcache::{SigCache, SIG_CACHE_ENTRIES_MAX};
use crate::state::{Overlay, State, StateRead};
use crate::tx::{SignedTx, TxPayload};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::ops::Bound;
use std::sync::Arc;
use tb_primitives::{Address, Id, Token};
use thiserror::Error;

/// Default of [`MempoolConfig::capacity_max`]: pending transactions.
pub const CAPACITY_MAX_DEFAULT: usize = 10_000;
// A full default pool's signature checks fit the cache twice over.
const _: () = assert!(SIG_CACHE_ENTRIES_MAX >= 2 * CAPACITY_MAX_DEFAULT);
/// Default of [`MempoolConfig::bytes_max`]: two full blocks' worth.
pub const BYTES_MAX_DEFAULT: usize = 16 * 1024 * 1024;
/// Default of [`MempoolConfig::fee_floor_per_byte`], micro-units per byte.
pub const FEE_FLOOR_PER_BYTE_DEFAULT: u64 = 1;
/// Default of [`MempoolConfig::ttl_ms`]: one hour.
pub const TTL_MS_DEFAULT: u64 = 60 * 60 * 1_000;
/// Default of [`MempoolConfig::per_sender_max`].
pub const PER_SENDER_MAX_DEFAULT: usize = 64;
/// Alternates kept for one pending nonce (see "Alternates" in the module docs).
pub const ALTERNATES_PER_NONCE_MAX: usize = 2;

/// The mempool's limits. Node-local policy, not consensus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Pending transactions, all senders together. Alternates have a budget of
    /// their own beside it: an eighth of this, rounded up.
    pub capacity_max: usize,
    /// Canonical encoded bytes of the pending transactions, summed. Alternates:
    /// an eighth of this besides, rounded up.
    pub bytes_max: usize,
    /// Minimum fee per encoded byte, micro-units: a transaction of `n` bytes
    /// must pay at least `n * fee_floor_per_byte` (in either token).
    pub fee_floor_per_byte: u64,
    /// How long an entry may wait, from admission. `0` admits nothing.
    pub ttl_ms: u64,
    /// Pending transactions of one sender. Its alternates: a quarter of this,
    /// rounded up.
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
    #[error("another pending transaction of this sender has nonce {nonce}, and it cannot be kept as an alternate")]
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
    #[error("invalid market transaction: {1}")]
    Market(MarketRefusal, String),
    #[error("invalid governance transaction: {1}")]
    Governance(GovernanceRefusal, String),
}

/// The one table of admission refusals: each variant's stable numeric code (from 1,
/// in order) and its snake_case reason (the metric's `reason` label, the RPC's `data`),
/// from which [`AdmissionError::code`], [`AdmissionError::reason`] and
/// [`REJECTION_REASONS`] are all generated.
/// The market's and governance's refusals continue it with their own tables
/// ([`MarketRefusal`], [`GovernanceRefusal`]).
macro_rules! rejections {
    ($($code:literal $reason:literal => $variant:ident,)*) => {
        /// The mempool's own `(code, reason)` pairs.
        const OWN_REASONS: [(u16, &str); [$($code),*].len()] = [$(($code, $reason)),*];

        impl AdmissionError {
            /// The stable numeric code, from 1.
            pub fn code(&self) -> u16 {
                match self {
                    $(AdmissionError::$variant { .. } => $code,)*
                    AdmissionError::Market(k, _) => k.code(),
                    AdmissionError::Governance(k, _) => k.code(),
                }
            }

            /// The stable snake_case label (the metric's `reason`).
            pub fn reason(&self) -> &'static str {
                match self {
                    $(AdmissionError::$variant { .. } => $reason,)*
                    AdmissionError::Market(k, _) => k.reason(),
                    AdmissionError::Governance(k, _) => k.reason(),
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
}

/// Every `(code, reason)`, in code order: code `c` is at index `c - 1` (the mempool's
/// own, then the market's, then governance's).
pub const REJECTION_REASONS: [(u16, &str); REASON_COUNT] = concat([
    &OWN_REASONS,
    &MarketRefusal::REASONS,
    &GovernanceRefusal::REASONS,
]);

/// `parts` one after the other (`N` their total length).
const fn concat<const N: usize>(parts: [&[(u16, &'static str)]; 3]) -> [(u16, &'static str); N] {
    let mut out = [(0u16, ""); N];
    let (mut i, mut p) = (0, 0);
    while p < parts.len() {
        let mut j = 0;
        while j < parts[p].len() {
            out[i] = parts[p][j];
            i += 1;
            j += 1;
        }
        p += 1;
    }
    out
}

const REASON_COUNT: usize =
    OWN_REASONS.len() + MarketRefusal::ALL.len() + GovernanceRefusal::ALL.len();

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
            TxError::Market(k, m) => AdmissionError::Market(k, m),
            TxError::Governance(k, m) => AdmissionError::Governance(k, m),
        }
    }
}

/// Monotonic counters, exported by the node as metrics. They saturate.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Alternates taken in, by admission (then also counted in `admitted_total`)
    /// or when a reorganisation re-admits a clash.
    pub alternates_admitted_total: u64,
    /// Alternates promoted in place of a pending transaction that left without
    /// being included.
    pub alternates_promoted_total: u64,
    /// Transactions held for a nonce gap.
    pub held_total: u64,
    /// Held transactions admitted once the gap before them closed.
    pub held_admitted_total: u64,
    /// Refusals by `admit`/`admit_at`, at index `code - 1`.
    pub rejected_by_code: [u64; REASON_COUNT],
}

impl Default for MempoolCounters {
    fn default() -> MempoolCounters {
        MempoolCounters {
            admitted_total: 0,
            included_total: 0,
            ttl_drop_total: 0,
            orphan_sweep_total: 0,
            evictions_total: 0,
            alternates_admitted_total: 0,
            alternates_promoted_total: 0,
            held_total: 0,
            held_admitted_total: 0,
            rejected_by_code: [0; REASON_COUNT],
        }
    }
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

/// The alternates of one pending `(sender, nonce)`, oldest first.
type Alternates = BTreeMap<(Address, u64), Vec<Entry>>;

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
        let not_provider = || {
            AdmissionError::Market(
                MarketRefusal::NotProvider,
                "not a registered provider".into(),
            )
        };
        let known_task = |t: &Id| match crate::market::records::job(state, t) {
            Some(_) => Ok(()),
            None => Err(AdmissionError::Market(
                MarketRefusal::UnknownTask,
                "unknown task".into(),
            )),
        };
        // A provider's transaction about a task.
        let provider_on = |is_provider: bool, t: &Id| {
            if is_provider {
                known_task(t)
            } else {
                Err(not_provider())
            }
        };
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
                return Err(not_provider());
            }
            TxPayload::SubmitReceipt(r) => provider_on(self.is_provider, &r.task_id)?,
            TxPayload::SealReceipt(r) => provider_on(self.is_provider, &r.task_id)?,
            TxPayload::ReportMalformed(m) => provider_on(self.is_provider, &m.task_id)?,
            TxPayload::Challenge(c) => known_task(&c.task_id)?,
            TxPayload::SupplyEvidence(e) => known_task(&e.task_id)?,
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
    /// Ids of the transactions whose signatures passed admission's strict check.
    sig_cache: Arc<SigCache>,
    /// Second versions of pending nonces (module docs, "Alternates").
    alternates: Alternates,
    alt_ids: BTreeMap<Id, (Address, u64)>,
    alt_bytes: usize,
    /// Transactions held for a nonce gap (module docs, "Held for a gap").
    held: BTreeMap<(Address, u64), Entry>,
    held_ids: BTreeMap<Id, (Address, u64)>,
    held_bytes: usize,
    /// Held transactions admitted since the last [`Mempool::take_ready`].
    ready: Vec<SignedTx>,
}

impl Mempool {
    pub fn new(config: MempoolConfig, params: ChainParams) -> Mempool {
        let params_chain_id = params.chain_id;
        Mempool {
            config,
            params,
            senders: BTreeMap::new(),
            by_id: BTreeMap::new(),
            tails: BTreeSet::new(),
            handles: BTreeMap::new(),
            bytes: 0,
            counters: MempoolCounters::default(),
            sig_cache: Arc::new(SigCache::new(params_chain_id, SIG_CACHE_ENTRIES_MAX)),
            alternates: Alternates::new(),
            alt_ids: BTreeMap::new(),
            alt_bytes: 0,
            held: BTreeMap::new(),
            held_ids: BTreeMap::new(),
            held_bytes: 0,
            ready: Vec::new(),
        }
    }

    /// The ids of the transactions whose signatures admission checked: block import
    /// and building skip those checks (`ChainDb::set_sig_cache`).
    pub fn sig_cache(&self) -> Arc<SigCache> {
        self.sig_cache.clone()
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

    /// Number of pending transactions (alternates not counted).
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

    /// Whether `id` is pending or held as an alternate.
    pub fn contains(&self, id: &Id) -> bool {
        self.by_id.contains_key(id) || self.alt_ids.contains_key(id)
    }

    /// Number of alternates held.
    pub fn alternates_len(&self) -> usize {
        self.alt_ids.len()
    }

    /// Number of transactions held for a nonce gap.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// Whether `id` is held for a nonce gap.
    pub fn is_held(&self, id: &Id) -> bool {
        self.held_ids.contains_key(id)
    }

    /// The held transactions admitted since the last call (the gap before them
    /// closed), in admission order: the node relays them, as it relays what it
    /// admits from a peer. Bounded by the held budget.
    pub fn take_ready(&mut self) -> Vec<SignedTx> {
        std::mem::take(&mut self.ready)
    }

    /// Every alternate, by sender then nonce then age.
    pub fn iter_alternates(&self) -> impl Iterator<Item = &SignedTx> + '_ {
        self.alternates
            .values()
            .flat_map(|v| v.iter().map(|e| &e.tx))
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

    /// Every pending transaction, by sender then nonce (alternates not included).
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
        let from = tx.payload.from();
        let r = self.admit_inner(
            Candidate {
                tx,
                seen_ms,
                verify,
            },
            state,
            now_ms,
        );
        if r.is_ok() {
            self.admit_held(&from, state);
        }
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
            self.drop_alternates(&addr, first..);
        }
        // Alternates and held transactions of their own age.
        let old: Vec<Id> = self
            .alternates
            .values()
            .flatten()
            .filter(|e| expired(e))
            .map(|e| e.id)
            .collect();
        for id in old {
            self.remove_alternate(&id);
        }
        let old: Vec<(Address, u64)> = self
            .held
            .iter()
            .filter(|(_, e)| expired(e))
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            self.remove_held(&k);
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
        // Senders with alternates too (theirs go with a mined nonce), and with
        // held transactions (a block may close their gap).
        let addrs: BTreeSet<Address> = self
            .senders
            .keys()
            .chain(self.alternates.keys().map(|(a, _)| a))
            .chain(self.held.keys().map(|(a, _)| a))
            .copied()
            .collect();
        let mut dropped = 0;
        for a in &addrs {
            dropped += self.sync_sender(a, state).1;
            self.admit_held(a, state);
        }
        dropped
    }

    /// After a block is applied: drops its transactions (`txs`, in block
    /// order) and sweeps every sender against `state`, the new tip's.
    /// Returns how many entries left, included and swept together.
    pub fn remove_included<S: StateRead + ?Sized>(&mut self, txs: &[SignedTx], state: &S) -> usize {
        let mut included = 0usize;
        for tx in txs {
            let id = tx.id();
            if self.remove_alternate(&id).is_some() {
                // Another pool's version of the nonce: its pending one is now stale.
                included += 1;
                continue;
            }
            let Some(&(addr, nonce)) = self.by_id.get(&id) else {
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
    /// longer apply) and the alternates of those nonces: for a transaction a block
    /// builder found not to execute, which would otherwise block its sender until its
    /// time to live. An alternate `id` is dropped alone. Returns how many pending
    /// entries left (the dependents counted in `orphan_sweep_total`).
    pub fn drop_with_dependents(&mut self, id: &Id) -> usize {
        if self.remove_alternate(id).is_some() {
            return 0;
        }
        let Some(&(addr, nonce)) = self.by_id.get(id) else {
            return 0;
        };
        let mut q = self.take_queue(&addr);
        let gone = q.split_off(&nonce);
        for e in gone.values() {
            self.forget(&addr, e);
        }
        self.put_queue(addr, q);
        self.drop_alternates(&addr, nonce..);
        bump(
            &mut self.counters.orphan_sweep_total,
            gone.len().saturating_sub(1) as u64,
        );
        gone.len()
    }

    /// Like [`Mempool::drop_with_dependents`] for a pending `id` that does not
    /// execute on `state`, the tip's, but its nonce's alternates are promoted in its
    /// place where one applies, and the later entries it displaces become
    /// alternates of their nonces (room permitting) before the sender's queue is
    /// rebuilt from the alternates in nonce order. Returns how many pending entries
    /// left, net of those promoted.
    fn drop_promoting<S: StateRead + ?Sized>(&mut self, id: &Id, state: &S) -> usize {
        if self.remove_alternate(id).is_some() {
            return 0;
        }
        let Some(&(addr, nonce)) = self.by_id.get(id) else {
            return 0;
        };
        let before = self.by_id.len();
        let mut q = self.take_queue(&addr);
        let mut gone = q.split_off(&nonce).into_values();
        if let Some(head) = gone.next() {
            self.forget(&addr, &head);
        }
        self.put_queue(addr, q);
        for e in gone {
            self.forget(&addr, &e);
            if !self.alternate_fits(&addr, e.tx.payload.nonce(), e.bytes) {
                bump(&mut self.counters.orphan_sweep_total, 1);
                continue;
            }
            self.insert_alternate(addr, e);
        }
        self.sync_sender(&addr, state);
        before.saturating_sub(self.by_id.len())
    }

    /// After a new tip: drops every sender's next transaction (the one at its account
    /// nonce) that no longer executes on `state`, the tip's, in a block at `height` and
    /// `timestamp_ms`, with what depends on it — a decision made on a branch that lost
    /// (a receipt for a lease this branch never gave, evidence for a dispute already
    /// ruled). Such an entry is never mined: the miners that find it skipped drop it
    /// ([`Mempool::drop_skipped`]) and, having seen it, do not take it back, while its
    /// sender's later transactions wait behind it here until its time to live. An
    /// alternate of its nonce that executes is promoted in its place, and the later
    /// entries it displaces become alternates of their nonces (module docs,
    /// "Alternates"). Costs one `apply_tx` per sender, and one more per alternate
    /// tried. Returns how many pending entries left, net of promotions.
    pub fn drop_unexecutable(&mut self, state: &State, height: u64, timestamp_ms: u64) -> usize {
        let params = self.params.clone();
        let ctx = crate::context::TxCtx {
            params: &params,
            height,
            timestamp_ms,
        };
        let heads: Vec<Id> = self
            .senders
            .iter()
            .filter_map(|(a, q)| {
                let (nonce, e) = q.first_key_value()?;
                (*nonce == state.account(a).nonce).then_some(e.id)
            })
            .collect();
        let mut dropped = 0;
        for mut id in heads {
            // Each turn drops an entry or promotes an alternate that did not run yet:
            // at most the sender's pending entries and alternates, together.
            while let Some(tx) = self.by_id.get(&id).and(self.get(&id)) {
                let mut ov = Overlay::new(state);
                let mut fees = crate::execute::Fees::default();
                if crate::execute::apply_tx(&mut ov, tx, &mut fees, &ctx).is_ok() {
                    break;
                }
                let from = tx.payload.from();
                dropped += self.drop_promoting(&id, state);
                let next = state.account(&from).nonce;
                match self.senders.get(&from).and_then(|q| q.get(&next)) {
                    Some(e) => id = e.id,
                    None => break,
                }
            }
        }
        dropped
    }

    /// After a block template was built from `picked` on `state` (the tip it was
    /// built on) and included `included`: drops every picked transaction the template
    /// skipped at its sender's next nonce — it does not execute on the tip (a late
    /// receipt, a second challenge) — with what depends on it, an alternate of its
    /// nonce promoted in its place where one applies (see
    /// [`Mempool::drop_unexecutable`]). Returns how many pending entries left, net of
    /// promotions.
    pub fn drop_skipped<S: StateRead + ?Sized>(
        &mut self,
        picked: &[SignedTx],
        included: &[SignedTx],
        state: &S,
    ) -> usize {
        let included: std::collections::BTreeSet<Id> = included.iter().map(|t| t.id()).collect();
        let mut dropped = 0;
        for tx in picked {
            let id = tx.id();
            let next = state.account(&tx.payload.from()).nonce;
            if !included.contains(&id) && tx.payload.nonce() == next {
                dropped += self.drop_promoting(&id, state);
            }
        }
        dropped
    }

    /// After a reorganisation: re-admits `txs` (the undone blocks'
    /// transactions, any order) against `state`, the new tip's, as seen at
    /// `now_ms`. Best effort: each sender's reinserted and pending
    /// transactions and alternates are re-admitted together in nonce order with
    /// the usual checks (on a nonce clash the reinserted one is offered first, then
    /// the pending one, then its alternates, so a clash keeps the others as
    /// alternates where there is room; pending ones keep their admission time),
    /// then every sender is swept. Refusals
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
            for e in self.take_alternates(addr, 0..) {
                let c = Candidate {
                    tx: e.tx,
                    seen_ms: e.admitted_ms,
                    verify: false,
                };
                group.push((c.tx.payload.nonce(), 2, c));
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
        if let Some((addr, nonce)) = self.by_id.get(id) {
            return self.senders.get(addr)?.get(nonce);
        }
        let key = self.alt_ids.get(id)?;
        self.alternates.get(key)?.iter().find(|e| e.id == *id)
    }

    fn admit_inner<S: StateRead + ?Sized>(
        &mut self,
        c: Candidate,
        state: &S,
        now_ms: u64,
    ) -> Result<Id, AdmissionError> {
        let tx = c.tx;
        let id = tx.id();
        if self.contains(&id) {
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
        let chain_id = self.params.chain_id;
        if c.verify && !self.sig_cache.contains(chain_id, &id) {
            if !tx.verify_signature(chain_id) {
                return Err(AdmissionError::BadSignature);
            }
            self.sig_cache.insert(chain_id, id);
        }
        let from = tx.payload.from();
        let (mut cursor, _) = self.sync_sender(&from, state);
        let nonce = tx.payload.nonce();
        let rate = FeeRate::new(fee, bytes);
        let admitted_ms = c.seen_ms.min(now_ms);
        if nonce >= cursor.account_nonce && nonce < cursor.nonce {
            return self.admit_alternate(tx, id, bytes, rate, admitted_ms, state);
        }
        if nonce > cursor.nonce {
            let gap = AdmissionError::NonceGap {
                expected: cursor.nonce,
                got: nonce,
            };
            self.hold(
                Entry {
                    tx,
                    id,
                    bytes,
                    rate,
                    admitted_ms,
                },
                cursor.account_nonce,
            );
            return Err(gap);
        }
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
        self.drop_alternates(&addr, nonce..);
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
        self.drop_alternates(addr, ..cursor.account_nonce);
        self.drop_held(addr, cursor.account_nonce);
        // Too far ahead after a reorganisation took the account nonce back.
        let ahead = cursor
            .account_nonce
            .saturating_add(self.config.per_sender_max as u64);
        let far: Vec<(Address, u64)> = self
            .held
            .range((*addr, ahead)..=(*addr, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in far {
            self.remove_held(&k);
        }
        let mut kept = Queue::new();
        let mut dropped = 0usize;
        let mut broken = false;
        for (nonce, e) in q {
            let stale = nonce < cursor.account_nonce;
            let fails = !stale && !broken && cursor.step(state, &e.tx).is_err();
            if stale || broken || fails {
                self.forget(addr, &e);
                dropped += 1;
            } else {
                kept.insert(nonce, e);
            }
            if fails {
                // An alternate of this nonce may apply where the pending one does not.
                match self.promote(addr, nonce, &mut cursor, state) {
                    Some(alt) => {
                        kept.insert(nonce, alt);
                    }
                    None => broken = true,
                }
            }
        }
        if !broken {
            // Alternates of nonces whose pending entries left (drop_promoting).
            while let Some(alt) = self.promote(addr, cursor.nonce, &mut cursor, state) {
                kept.insert(alt.tx.payload.nonce(), alt);
            }
        }
        self.drop_alternates(addr, cursor.nonce..);
        self.put_queue(*addr, kept);
        bump(&mut self.counters.orphan_sweep_total, dropped as u64);
        (cursor, dropped)
    }

    /// The first alternate of `(addr, nonce)` that `cursor` takes and that fits the
    /// pool's limits, made a pending entry (remembered; its alternates before it that
    /// do not apply leave, those after stay); `None` when there is none.
    fn promote<S: StateRead + ?Sized>(
        &mut self,
        addr: &Address,
        nonce: u64,
        cursor: &mut Cursor,
        state: &S,
    ) -> Option<Entry> {
        let mut alts = self.take_alternates(addr, nonce..=nonce).into_iter();
        let mut found = None;
        for e in alts.by_ref() {
            let fits = self.by_id.len() < self.config.capacity_max
                && self.bytes.saturating_add(e.bytes) <= self.config.bytes_max;
            if fits && cursor.step(state, &e.tx).is_ok() {
                found = Some(e);
                break;
            }
        }
        for e in alts {
            self.insert_alternate(*addr, e);
        }
        let e = found?;
        self.remember(addr, &e);
        bump(&mut self.counters.alternates_promoted_total, 1);
        Some(e)
    }

    /// Admits `tx` as an alternate of its nonce, already pending for its sender (see
    /// "Alternates" in the module docs); the checks before the sender's have passed.
    fn admit_alternate<S: StateRead + ?Sized>(
        &mut self,
        tx: SignedTx,
        id: Id,
        bytes: usize,
        rate: FeeRate,
        admitted_ms: u64,
        state: &S,
    ) -> Result<Id, AdmissionError> {
        let from = tx.payload.from();
        let nonce = tx.payload.nonce();
        let refused = AdmissionError::DuplicateNonce { nonce };
        if matches!(tx.payload, TxPayload::RegisterHandle(_)) {
            return Err(refused);
        }
        // Its own checks (balance, market pre-checks) where it would stand.
        let mut cursor = Cursor::new(state, &from);
        if let Some(q) = self.senders.get(&from) {
            for e in q.range(..nonce).map(|(_, e)| e) {
                cursor.step(state, &e.tx).map_err(|_| refused.clone())?;
            }
        }
        cursor.step(state, &tx)?;
        if !self.alternate_fits(&from, nonce, bytes) {
            return Err(refused);
        }
        let entry = Entry {
            tx,
            id,
            bytes,
            rate,
            admitted_ms,
        };
        self.insert_alternate(from, entry);
        bump(&mut self.counters.alternates_admitted_total, 1);
        Ok(id)
    }

    /// Whether an alternate of `bytes` for `(addr, nonce)` keeps within the limits.
    fn alternate_fits(&self, addr: &Address, nonce: u64, bytes: usize) -> bool {
        let here = self.alternates.get(&(*addr, nonce)).map_or(0, Vec::len);
        let of_sender: usize = self
            .alternates
            .range((*addr, 0)..=(*addr, u64::MAX))
            .map(|(_, v)| v.len())
            .sum();
        here < ALTERNATES_PER_NONCE_MAX
            && of_sender < self.config.per_sender_max.div_ceil(4)
            && self.alt_ids.len() < self.config.capacity_max.div_ceil(8)
            && self.alt_bytes.saturating_add(bytes) <= self.config.bytes_max.div_ceil(8)
    }

    /// Adds an alternate (the caller checked [`Mempool::alternate_fits`]).
    fn insert_alternate(&mut self, addr: Address, e: Entry) {
        let key = (addr, e.tx.payload.nonce());
        self.alt_ids.insert(e.id, key);
        self.alt_bytes = self.alt_bytes.saturating_add(e.bytes);
        self.alternates.entry(key).or_default().push(e);
    }

    /// Removes the alternates of `addr` with a nonce in `nonces`, in nonce order.
    fn take_alternates(
        &mut self,
        addr: &Address,
        nonces: impl std::ops::RangeBounds<u64>,
    ) -> Vec<Entry> {
        let lo = match nonces.start_bound() {
            Bound::Included(n) => Bound::Included((*addr, *n)),
            Bound::Excluded(n) => Bound::Excluded((*addr, *n)),
            Bound::Unbounded => Bound::Included((*addr, 0)),
        };
        let hi = match nonces.end_bound() {
            Bound::Included(n) => Bound::Included((*addr, *n)),
            Bound::Excluded(n) => Bound::Excluded((*addr, *n)),
            Bound::Unbounded => Bound::Included((*addr, u64::MAX)),
        };
        let keys: Vec<(Address, u64)> = self.alternates.range((lo, hi)).map(|(k, _)| *k).collect();
        let mut out = Vec::new();
        for k in keys {
            for e in self.alternates.remove(&k).unwrap_or_default() {
                self.alt_ids.remove(&e.id);
                self.alt_bytes = self.alt_bytes.saturating_sub(e.bytes);
                out.push(e);
            }
        }
        out
    }

    /// Drops the alternates of `addr` with a nonce in `nonces`.
    fn drop_alternates(&mut self, addr: &Address, nonces: impl std::ops::RangeBounds<u64>) {
        self.take_alternates(addr, nonces);
    }

    /// Holds `e`, ahead of its sender's next nonce, if it keeps within the limits
    /// (module docs, "Held for a gap"); `account_nonce` is its sender's on the tip.
    fn hold(&mut self, e: Entry, account_nonce: u64) {
        let addr = e.tx.payload.from();
        let key = (addr, e.tx.payload.nonce());
        let per_sender = self.config.per_sender_max;
        let of_sender = self.held.range((addr, 0)..=(addr, u64::MAX)).count();
        let fits = key.1 < account_nonce.saturating_add(per_sender as u64)
            && !self.held.contains_key(&key)
            && of_sender < per_sender.div_ceil(4)
            && self.held.len() < self.config.capacity_max.div_ceil(8)
            && self.held_bytes.saturating_add(e.bytes) <= self.config.bytes_max.div_ceil(8);
        if fits {
            self.held_ids.insert(e.id, key);
            self.held_bytes = self.held_bytes.saturating_add(e.bytes);
            self.held.insert(key, e);
            bump(&mut self.counters.held_total, 1);
        }
    }

    /// Removes the held transaction at `key`, if any.
    fn remove_held(&mut self, key: &(Address, u64)) -> Option<Entry> {
        let e = self.held.remove(key)?;
        self.held_ids.remove(&e.id);
        self.held_bytes = self.held_bytes.saturating_sub(e.bytes);
        Some(e)
    }

    /// Drops `addr`'s held transactions below `nonce` (their nonce is used).
    fn drop_held(&mut self, addr: &Address, nonce: u64) {
        let keys: Vec<(Address, u64)> = self
            .held
            .range((*addr, 0)..(*addr, nonce))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.remove_held(&k);
        }
    }

    /// Admits `addr`'s held transactions that its next nonce has reached, in nonce
    /// order, until one is missing or refused (then dropped); each admitted one is
    /// queued for [`Mempool::take_ready`].
    fn admit_held<S: StateRead + ?Sized>(&mut self, addr: &Address, state: &S) {
        loop {
            let next = self.next_nonce(addr, state);
            // Below the next nonce: another transaction took it.
            self.drop_held(addr, next);
            let Some(e) = self.remove_held(&(*addr, next)) else {
                return;
            };
            let c = Candidate {
                tx: e.tx.clone(),
                seen_ms: e.admitted_ms,
                verify: false,
            };
            // Its age was checked when it was held; `purge_expired` ends it.
            if self.admit_inner(c, state, e.admitted_ms).is_err() {
                bump(&mut self.counters.orphan_sweep_total, 1);
                return;
            }
            bump(&mut self.counters.held_admitted_total, 1);
            if self.ready.len() >= self.config.capacity_max.div_ceil(8) {
                // Nobody takes them: relaying is best effort, the oldest goes.
                self.ready.remove(0);
            }
            self.ready.push(e.tx);
        }
    }

    /// Removes the alternate `id`, if it is one.
    fn remove_alternate(&mut self, id: &Id) -> Option<Entry> {
        let key = self.alt_ids.remove(id)?;
        let v = self.alternates.get_mut(&key)?;
        let i = v.iter().position(|e| e.id == *id)?;
        let e = v.remove(i);
        if v.is_empty() {
            self.alternates.remove(&key);
        }
        self.alt_bytes = self.alt_bytes.saturating_sub(e.bytes);
        Some(e)
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
mod tests;
