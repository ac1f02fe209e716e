//! The market's state records and their keys. Every record lives in the chain's
//! key-value state under the prefix `M` and is authenticated by the state root like
//! accounts are. Index records (queue, lease expiries, challenge windows, unbonding
//! releases, the settlement queue) have big-endian keys so a prefix scan walks them in
//! order.

use crate::state::StateRead;
use borsh::{BorshDeserialize, BorshSerialize};
use tb_primitives::{decode, Address, Id};

/// Key prefix of every market record.
pub const MARKET_PREFIX: u8 = b'M';

/// A record kind: the second key byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `Mp ‖ address` → [`Provider`].
    Provider = b'p' as isize,
    /// `Mj ‖ task id` → [`Job`].
    Job = b'j' as isize,
    /// `Mq ‖ lane ‖ !fee_per_unit ‖ height ‖ size ‖ task id` → `()`: the queue.
    Queue = b'q' as isize,
    /// `Ml ‖ expiry ‖ task id ‖ provider` → `()`: lease expiries.
    LeaseExpiry = b'l' as isize,
    /// `Md ‖ deadline ‖ task id` → `()`: job deadlines.
    Deadline = b'd' as isize,
    /// `Mc ‖ height ‖ task id` → `()`: challenge windows ending.
    Challenge = b'c' as isize,
    /// `Mu ‖ height ‖ address` → `u64`: unbonding releases.
    Unbonding = b'u' as isize,
    /// `Ms ‖ sequence` → [`PendingRecord`]: the FIFO settlement queue.
    Settlement = b's' as isize,
    /// `My ‖ epoch ‖ sequence` → [`PayoutRecord`].
    Payout = b'y' as isize,
    /// `Mx ‖ height ‖ sequence` → [`SlashRecord`] (`ComputeSlashReceipt`).
    Slash = b'x' as isize,
    /// `Me ‖ epoch` → [`EpochSummary`].
    Epoch = b'e' as isize,
    /// `Mf` → [`Fund`].
    Fund = b'f' as isize,
    /// `Mo ‖ object` → [`Object`]: a complete published object.
    Object = b'o' as isize,
    /// `Mn ‖ object ‖ poster` → [`Partial`]: a poster's copy being assembled.
    Partial = b'n' as isize,
    /// `Mb ‖ object ‖ poster ‖ index` → the chunk's bytes.
    Chunk = b'b' as isize,
    /// `Mr ‖ expiry ‖ object ‖ poster` → `()`: objects and partial copies to prune
    /// (the poster of a complete object's entry is all zero).
    ObjectExpiry = b'r' as isize,
    /// `Mz ‖ task id ‖ dispute index` → [`Dispute`].
    Dispute = b'z' as isize,
    /// `Mw ‖ deadline ‖ task id ‖ dispute index` → `()`: evidence deadlines.
    DisputeDeadline = b'w' as isize,
    /// `Mv ‖ deadline ‖ task id` → `()`: reveal deadlines of sealed replicas.
    Reveal = b'v' as isize,
}

/// A key: prefix, kind, then the parts.
pub fn key(kind: Kind, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = vec![MARKET_PREFIX, kind as u8];
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// Whether a state key names a chunk of a published object (`Mb ‖ …`): the one
/// kind of value that may be large. The store keeps these bytes apart from the other
/// records, content-addressed by their value hash.
pub fn is_chunk_key(k: &[u8]) -> bool {
    k.len() >= 2 && k[0] == MARKET_PREFIX && k[1] == Kind::Chunk as u8
}

/// The prefix of every record of a kind.
pub fn prefix(kind: Kind) -> Vec<u8> {
    key(kind, &[])
}

/// What a provider declared and what it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Provider {
    /// Declared capabilities.
    pub caps: crate::tx::ProviderCaps,
    /// Bonded stake, Industrial micro-tokens.
    pub stake: u64,
    /// Unbonding, not yet released, Industrial micro-tokens.
    pub unbonding: u64,
    /// Unbonding entries pending (at most `UNBONDING_ENTRIES_MAX`).
    pub unbonding_entries: u32,
    /// Jailed while `height < jailed_until`.
    pub jailed_until: u64,
    /// Height of the last heartbeat (registration counts as one).
    pub last_heartbeat: u64,
    /// Heartbeats in the current epoch.
    pub heartbeats_epoch: u64,
    /// First height of the current epoch it was registered for (availability base).
    pub epoch_since: u64,
    /// Its availability over the previous epoch, bps (used until the current epoch has
    /// run one heartbeat interval).
    pub availability_prev_bps: u64,
    /// Leases held now.
    pub active_leases: u32,
    /// Leases missed, ever.
    pub missed_leases: u64,
    /// Receipts accepted, ever.
    pub receipts: u64,
    /// Stake slashed, ever.
    pub slashed: u64,
    /// Height it registered at.
    pub registered_at: u64,
}

/// Most pending unbonding entries of one provider.
pub const UNBONDING_ENTRIES_MAX: u32 = 16;

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum JobState {
    /// Waiting for (more) leases.
    Queued,
    /// Every replica leased, receipts outstanding.
    Leased,
    /// All receipts in; the challenge window runs.
    Proven,
    /// Verified; its receipts wait in the settlement queue.
    Verified,
    /// Paid and refunded.
    Settled,
    /// Failed (retry budget spent or deadline passed); escrow refunded.
    Failed,
    /// Disputes are open on its receipts; escrow held until they are ruled.
    Disputed,
    /// Every replica has sealed its answer; the reveals are due.
    Revealing,
}

impl JobState {
    /// Every state, in declaration order.
    pub const ALL: [JobState; 8] = [
        JobState::Queued,
        JobState::Leased,
        JobState::Proven,
        JobState::Verified,
        JobState::Settled,
        JobState::Failed,
        JobState::Disputed,
        JobState::Revealing,
    ];

    /// Whether a job in this state is finished (nothing more happens to it).
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Settled | JobState::Failed)
    }
}

/// A lease of one replica.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Lease {
    /// The provider.
    pub provider: Address,
    /// Height granted.
    pub start: u64,
    /// Timestamp of the block that granted it, ms.
    pub start_ms: u64,
    /// Height it expires at (renewed by heartbeats).
    pub expiry: u64,
    /// Renewals so far (at most `lease_renewals_max`).
    pub renewals: u32,
}

/// A receipt the chain accepted.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ReceiptRecord {
    /// The provider.
    pub provider: Address,
    /// SHA-256 of the signed receipt's canonical bytes.
    pub receipt_hash: [u8; 32],
    /// The receipt's output digest.
    pub output_digest: [u8; 32],
    /// The receipt's trace root.
    pub trace_root: Id,
    /// Lease-to-delivery delay as the chain saw it, blocks (the SLA's measure).
    pub latency_blocks: u64,
    /// The same delay in block timestamps, ms (telemetry).
    pub latency_ms: u64,
    /// Height accepted.
    pub height: u64,
    /// Whether it is paid (false when its latency SLA was violated).
    pub payable: bool,
    /// SHA-256 of its published trace.
    pub trace_sha256: [u8; 32],
    /// SHA-256 of its published result object.
    pub result_sha256: [u8; 32],
    /// Convicted by the referee or undefended in a dispute: never paid.
    pub refuted: bool,
}

/// A replica's sealed answer (redundant jobs).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SealRecord {
    /// The provider.
    pub provider: Address,
    /// `SignedReceipt::seal` of the receipt it will reveal.
    pub seal: [u8; 32],
    /// The height its lease started (latency is measured to the seal).
    pub lease_start: u64,
    /// The timestamp of the block its lease started in, ms.
    pub lease_start_ms: u64,
    /// The timestamp of the block it sealed in, ms.
    pub sealed_ms: u64,
    /// The size of the result object it declared it will publish with its reveal.
    pub result_bytes: u64,
    /// Height sealed.
    pub height: u64,
}

/// A job.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Job {
    /// Who submitted and pays.
    pub requester: Address,
    /// What was asked.
    pub spec: crate::tx::JobSpec,
    /// Escrow left, Industrial micro-tokens.
    pub escrow: u64,
    /// Where it is.
    pub state: JobState,
    /// Height submitted.
    pub submitted: u64,
    /// Leases lost so far.
    pub retries: u32,
    /// Not leased again before this height.
    pub eligible_from: u64,
    /// Current leases.
    pub leases: Vec<Lease>,
    /// Providers that ever held a lease (never leased twice).
    pub tried: Vec<Address>,
    /// Receipts accepted.
    pub receipts: Vec<ReceiptRecord>,
    /// Its queue key while queued.
    pub queue_key: Vec<u8>,
    /// Payouts still owed from the settlement queue.
    pub payouts_pending: u32,
    /// Sealed answers of a redundant job's replicas.
    pub seals: Vec<SealRecord>,
    /// Height the reveals are due by (redundant jobs, once all replicas sealed).
    pub reveal_deadline: u64,
    /// Height its current challenge window ends at.
    pub window_end: u64,
    /// Disputes opened so far (the next dispute's index).
    pub disputes: u32,
    /// Disputes still open.
    pub disputes_open: u32,
    /// Why and when it failed (`state == Failed`).
    pub failure: Option<Failure>,
}

impl Job {
    /// A job as `SubmitJob` queues it at `height`: eligible for a lease from the next
    /// block, under `queue_key`, nothing leased, sealed or paid yet.
    pub fn queued(
        requester: Address,
        spec: crate::tx::JobSpec,
        escrow: u64,
        height: u64,
        queue_key: Vec<u8>,
    ) -> Job {
        Job {
            requester,
            spec,
            escrow,
            state: JobState::Queued,
            submitted: height,
            retries: 0,
            eligible_from: height + 1,
            leases: vec![],
            tried: vec![],
            receipts: vec![],
            queue_key,
            payouts_pending: 0,
            seals: vec![],
            reveal_deadline: 0,
            window_end: 0,
            disputes: 0,
            disputes_open: 0,
            failure: None,
        }
    }
}

/// Why a job failed: every `Failed` job records one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum FailReason {
    /// Its deadline passed while it waited in the queue for replicas (none, or not all
    /// of them, leased): no provider set could (or would) serve it in time.
    Unserved,
    /// Its deadline passed with every replica leased but no answer proven in time.
    Expired,
    /// Its retry budget was spent on leases that lapsed without an answer.
    LeasesLapsed,
    /// Every answer was refuted (its providers slashed) and no round was left.
    Refuted,
    /// A leased provider reported its blob malformed, and every node agreed.
    Malformed,
    /// The referee found its blob not a valid job matching its spec during a dispute.
    Void,
}

/// A job's failure record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Failure {
    /// Why.
    pub reason: FailReason,
    /// The height it failed at.
    pub height: u64,
}

impl FailReason {
    /// The stable name RPC and `tb-cli` show (`unserved`, `expired`, …).
    pub fn name(self) -> &'static str {
        match self {
            FailReason::Unserved => "unserved",
            FailReason::Expired => "expired",
            FailReason::LeasesLapsed => "leases_lapsed",
            FailReason::Refuted => "refuted",
            FailReason::Malformed => "malformed",
            FailReason::Void => "void",
        }
    }

    /// A sentence for a person.
    pub fn describe(self) -> &'static str {
        match self {
            FailReason::Unserved => {
                "its deadline passed while it waited for providers to lease its replicas"
            }
            FailReason::Expired => {
                "its deadline passed with every replica leased but no answer proven"
            }
            FailReason::LeasesLapsed => {
                "its retry budget was spent on leases that lapsed without an answer"
            }
            FailReason::Refuted => "every answer was refuted and its providers slashed",
            FailReason::Malformed => {
                "a provider reported its blob malformed, and every node agreed"
            }
            FailReason::Void => "the referee found its blob not a valid job matching its spec",
        }
    }
}

/// A complete published object.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Object {
    /// Size.
    pub total_bytes: u64,
    /// Chunks.
    pub chunks: u32,
    /// Whose chunks hold it.
    pub poster: Address,
    /// Height completed.
    pub height: u64,
    /// Pruned after this height.
    pub expires: u64,
    /// When the object is a well-formed trace blob, what receipt checks need of it,
    /// computed once at publication so that they do not rehash the trace.
    pub trace: Option<TraceInfo>,
    /// When the object is a well-formed result object (`BTRS`), its output count and
    /// the output digest it gives, computed once at publication.
    pub result: Option<ResultInfo>,
}

/// A published result object's output count and output digest.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ResultInfo {
    /// Outputs.
    pub outputs: u32,
    /// The output digest they give (`tb_job::ResultObject::output_digest`).
    pub output_digest: [u8; 32],
}

/// A published trace blob's header and Merkle root.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TraceInfo {
    /// The task it is a trace of.
    pub task_id: Id,
    /// The provider whose trace it is.
    pub provider: Address,
    /// Leaves.
    pub leaves: u32,
    /// The Merkle root of the leaves under the trace domain.
    pub root: Id,
}

/// A poster's copy of an object being assembled.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Partial {
    /// Declared size.
    pub total_bytes: u64,
    /// Chunk size when the copy was started.
    pub chunk_bytes: u64,
    /// Chunks it takes.
    pub chunks: u32,
    /// Chunks received.
    pub received: u32,
    /// Pruned after this height.
    pub expires: u64,
}

/// Who must make a dispute's evidence available.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Owed {
    /// The challenger (a bonded challenge).
    Challenger,
    /// Every provider on either side (a replica dispute).
    Parties,
}

/// One side of a dispute: providers that claim `leaf` at the op.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Side {
    /// The providers.
    pub providers: Vec<Address>,
    /// Their leaf at the disputed op.
    pub leaf: [u8; 32],
    /// Their trace root.
    pub trace_root: Id,
}

/// An open dispute over one op of a job.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Dispute {
    /// The job.
    pub task_id: Id,
    /// Its index within the job.
    pub index: u32,
    /// The disputed op.
    pub op: u32,
    /// The accused receipts' side.
    pub accused: Side,
    /// The other replicas' side (replica disputes); `None` for a challenge.
    pub other: Option<Side>,
    /// The challenger and its bond (challenges).
    pub challenger: Option<(Address, u64)>,
    /// Who owes the evidence.
    pub owed: Owed,
    /// Evidence bundles named so far and by whom (a challenge: its challenger's; a
    /// replica dispute: at most one per party), examined in order.
    pub bundles: Vec<(Address, [u8; 32])>,
    /// Every party that ever named a bundle (one each, dropped or not).
    pub named_by: Vec<Address>,
    /// Height opened.
    pub opened: u64,
    /// Evidence due by this height (inclusive).
    pub deadline: u64,
    /// How it ended; `None` while open.
    pub ruling: Option<Outcome>,
    /// The height it was ruled at (0 while open).
    pub ruled_at: u64,
}

/// How a dispute ended (kept in its `Ruled` record for queries).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Outcome {
    /// The referee's digest; sides whose leaf differs lost.
    Referee([u8; 32]),
    /// No honest leaf exists for the op; every side lost.
    NoHonestLeaf,
    /// The evidence was not supplied (or was bad) by the deadline; the owing party
    /// lost.
    Withheld,
    /// The job blob is not a valid job matching its spec: the job is void, nobody's leaf
    /// is judged, bonds go back.
    VoidJob,
    /// The accused receipts were refuted by another dispute first; the bond goes back.
    Moot,
}

/// A verified receipt waiting for settlement.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PendingRecord {
    /// Its place in the settlement queue (FIFO).
    pub seq: u64,
    /// Height it was verified at.
    pub verified_at: u64,
    /// The job.
    pub task_id: Id,
    /// Who earns it.
    pub provider: Address,
    /// The receipt's hash.
    pub receipt_hash: [u8; 32],
    /// Pricing inputs frozen at verification.
    pub work_milli: u64,
    /// Model weight, bps.
    pub model_bps: u64,
    /// Latency multiplier, bps.
    pub latency_bps: u64,
    /// The provider's measured availability over the epoch at verification, bps.
    pub availability: u64,
    /// Availability multiplier, bps.
    pub availability_bps: u64,
    /// Milli-units.
    pub units_milli: u64,
    /// Price, Industrial micro-tokens.
    pub price_micro: u64,
}

/// A payout: who was paid what for which receipt, under which parameters.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PayoutRecord {
    /// The pending record it settled.
    pub item: PendingRecord,
    /// Provider share.
    pub provider_micro: u64,
    /// Miner share (to the settling block's beneficiary).
    pub miner_micro: u64,
    /// Fund share.
    pub fund_micro: u64,
    /// The miner paid.
    pub miner: Address,
    /// The base rate applied.
    pub base_rate_micro_per_unit: u64,
    /// The epoch.
    pub epoch: u64,
}

/// Why a provider was slashed.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum SlashReason {
    /// It let a lease expire after the job's retry budget was spent.
    MissedLease,
    /// It submitted a receipt without a live lease.
    ReceiptOutsideLease,
    /// `SlaOutcome::Violated { reason: "latency" }`: it delivered later than the lane's
    /// SLA window (`latency_sla_bps` of the lane's lease term), as the chain measures it
    /// (lease height to delivery height).
    LatencySla,
    /// Its availability over an epoch was below the floor.
    Availability,
    /// The referee convicted its leaf in a dispute.
    LostDispute,
    /// It did not supply data it owed by the deadline (a reveal, a dispute's evidence).
    WithheldData,
}

/// The `ComputeSlashReceipt`: one slash.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SlashRecord {
    /// The provider.
    pub provider: Address,
    /// Why.
    pub reason: SlashReason,
    /// The job, when one is involved.
    pub task_id: Option<Id>,
    /// The output digest of the receipt involved, when one is.
    pub output_digest: Option<[u8; 32]>,
    /// Stake taken (to the fund).
    pub amount: u64,
    /// Height.
    pub height: u64,
}

/// One settled epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct EpochSummary {
    /// Receipts paid.
    pub paid: u64,
    /// Milli-units paid (never above the cap).
    pub units_milli: u64,
    /// Total price paid.
    pub price_micro: u64,
    /// Receipts carried over.
    pub carried: u64,
    /// Slashes in the epoch.
    pub slashes: u64,
}

/// The fund and the market's running totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Fund {
    /// The AI Compute Fund's consumer balance.
    pub consumer: u64,
    /// The AI Compute Fund's industrial balance.
    pub industrial: u64,
    /// Σ provider stakes.
    pub stakes: u64,
    /// Σ unbonding amounts.
    pub unbonding: u64,
    /// Σ job escrows.
    pub escrow: u64,
    /// Queued jobs.
    pub queued: u64,
    /// Settlement queue: next sequence to assign, and the head.
    pub settle_next: u64,
    /// First sequence not yet paid.
    pub settle_head: u64,
    /// Payout records written (sequence within epochs).
    pub payouts: u64,
    /// Slash records written.
    pub slashes: u64,
    /// `slashes` when the current epoch started (an epoch's summary counts the
    /// difference).
    pub slashes_epoch_start: u64,
    /// Σ challenge bonds held by open disputes.
    pub bonds: u64,
}

/// Largest encoded market record (a job with its leases and receipts is the largest);
/// object chunks are read with [`chunk`].
pub const MARKET_RECORD_BYTES_MAX: usize = 16 * 1024;

/// Reads a record (the state holds only records this module wrote).
pub fn get<T: BorshDeserialize + borsh::BorshSerialize, S: StateRead + ?Sized>(
    s: &S,
    k: &[u8],
) -> Option<T> {
    s.get_raw(k)
        .map(|b| decode(&b, MARKET_RECORD_BYTES_MAX).expect("the state holds valid market records"))
}

/// The fund record.
pub fn fund<S: StateRead + ?Sized>(s: &S) -> Fund {
    get(s, &key(Kind::Fund, &[])).unwrap_or_default()
}

/// A provider record.
pub fn provider<S: StateRead + ?Sized>(s: &S, a: &Address) -> Option<Provider> {
    get(s, &key(Kind::Provider, &[&a.0]))
}

/// A job record.
pub fn job<S: StateRead + ?Sized>(s: &S, t: &Id) -> Option<Job> {
    get(s, &key(Kind::Job, &[&t.0]))
}

/// Most providers a job's record lists as having held a lease of it, whatever the
/// parameters become after it was submitted (the record must stay under its cap).
pub const TRIED_MAX: usize = 64;

/// Whether a job may be leased for another round of its replicas without listing more
/// than [`TRIED_MAX`] providers.
pub fn room_for_another_round(job: &Job) -> bool {
    job.tried.len() + job.spec.redundancy as usize <= TRIED_MAX
}

/// Most challenges open at once on one job.
pub const CHALLENGES_PER_JOB_MAX: u32 = 8;

/// A chunk of a poster's copy of an object.
pub fn chunk<S: StateRead + ?Sized>(
    s: &S,
    object: &[u8; 32],
    poster: &Address,
    index: u32,
) -> Option<Vec<u8>> {
    s.get_raw(&key(
        Kind::Chunk,
        &[object, &poster.0, &index.to_be_bytes()],
    ))
    .map(|b| decode(&b, usize::MAX).expect("the state holds valid chunks"))
}

/// A complete object's record.
pub fn object<S: StateRead + ?Sized>(s: &S, object: &[u8; 32]) -> Option<Object> {
    get(s, &key(Kind::Object, &[object]))
}

/// `len` bytes of a complete object from `offset`, read from the chunks that hold
/// them (no copy of the whole object). `None` when unavailable or out of range.
pub fn object_range<S: StateRead + ?Sized>(
    s: &S,
    id: &[u8; 32],
    offset: u64,
    len: u64,
) -> Option<Vec<u8>> {
    let o = object(s, id)?;
    if offset.checked_add(len)? > o.total_bytes {
        return None;
    }
    let mut out = Vec::with_capacity(len as usize);
    // Every chunk but the last is full, so the first one's length is the chunk size.
    let size = chunk_raw(s, id, &o.poster, 0)?.len() as u64;
    let mut at = offset;
    while at < offset + len {
        let i = at / size;
        let c = chunk_raw(s, id, &o.poster, u32::try_from(i).ok()?)?;
        let from = (at - i * size) as usize;
        let take = ((offset + len - at) as usize).min(c.len().checked_sub(from)?);
        if take == 0 {
            return None;
        }
        out.extend_from_slice(&c[from..from + take]);
        at += take as u64;
    }
    Some(out)
}

/// A chunk's bytes as stored (a borsh `Vec<u8>`: a u32 length, then the bytes):
/// borrowed from a state in memory, read from the store otherwise.
fn chunk_raw<'a, S: StateRead + ?Sized>(
    s: &'a S,
    object: &[u8; 32],
    poster: &Address,
    index: u32,
) -> Option<std::borrow::Cow<'a, [u8]>> {
    use std::borrow::Cow;
    let raw = s.get_raw(&key(
        Kind::Chunk,
        &[object, &poster.0, &index.to_be_bytes()],
    ))?;
    let n = u32::from_le_bytes(raw.get(..4)?.try_into().ok()?) as usize;
    raw.get(4..4 + n)?;
    Some(match raw {
        Cow::Borrowed(b) => Cow::Borrowed(&b[4..4 + n]),
        Cow::Owned(mut v) => {
            v.truncate(4 + n);
            v.drain(..4);
            Cow::Owned(v)
        }
    })
}

/// A complete object's bytes.
pub fn object_bytes<S: StateRead + ?Sized>(s: &S, id: &[u8; 32]) -> Option<Vec<u8>> {
    let o = object(s, id)?;
    let mut out = Vec::with_capacity(o.total_bytes as usize);
    for i in 0..o.chunks {
        out.extend_from_slice(&chunk(s, id, &o.poster, i)?);
    }
    Some(out)
}
