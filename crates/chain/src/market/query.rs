//! Read-only queries over the market's records, for the node to expose (RPC
//! `aicf.listProviders`, `aicf.getJob`, …). All results are in key order.

use super::records::{
    self as r, EpochSummary, Fund, Job, JobState, Kind, PayoutRecord, Provider, ReceiptRecord,
    SlashRecord,
};
use crate::state::StateRead;
use tb_primitives::{Address, Id};

fn id_from(k: &[u8]) -> [u8; 32] {
    let mut a = [0u8; 32];
    a.copy_from_slice(&k[2..34]);
    a
}

/// The task ids in the height-ordered market index `kind` (keys `height ‖ task id ‖
/// rest`: lease expiries, reveals, dispute deadlines, challenge windows) at heights
/// `from` and above, in key order, each with the bytes after its task id (a lease
/// expiry's provider). Bounded by what is live, not by every job ever: the workers'
/// view of their leases, reveals, disputes and challenge windows.
pub fn live_index<S: StateRead + ?Sized>(s: &S, kind: Kind, from: u64) -> Vec<(Id, Vec<u8>)> {
    /// Prefix and kind, then the height.
    const TASK_AT: usize = 2 + 8;
    let lo = r::key(kind, &[&from.to_be_bytes()]);
    let hi = vec![r::MARKET_PREFIX, kind as u8 + 1];
    s.scan_range(&lo, &hi)
        .into_iter()
        .filter_map(|(k, _)| {
            let t: [u8; 32] = k.get(TASK_AT..TASK_AT + 32)?.try_into().ok()?;
            Some((Id(t), k[TASK_AT + 32..].to_vec()))
        })
        .collect()
}

/// Every registered provider.
pub fn providers<S: StateRead + ?Sized>(s: &S) -> Vec<(Address, Provider)> {
    s.scan_prefix(&r::prefix(Kind::Provider))
        .into_iter()
        .filter_map(|(k, _)| r::get::<Provider, _>(s, &k).map(|p| (Address(id_from(&k)), p)))
        .collect()
}

/// Every job in `state` (all states when `None`).
pub fn jobs<S: StateRead + ?Sized>(s: &S, state: Option<JobState>) -> Vec<(Id, Job)> {
    s.scan_prefix(&r::prefix(Kind::Job))
        .into_iter()
        .filter_map(|(k, _)| r::get::<Job, _>(s, &k).map(|j| (Id(id_from(&k)), j)))
        .filter(|(_, j)| state.is_none_or(|st| j.state == st))
        .collect()
}

/// The receipts accepted for a job.
pub fn receipts<S: StateRead + ?Sized>(s: &S, task: &Id) -> Vec<ReceiptRecord> {
    r::job(s, task).map(|j| j.receipts).unwrap_or_default()
}

/// The payouts of an epoch, in settlement order.
pub fn payouts<S: StateRead + ?Sized>(s: &S, epoch: u64) -> Vec<PayoutRecord> {
    s.scan_prefix(&r::key(Kind::Payout, &[&epoch.to_be_bytes()]))
        .into_iter()
        .filter_map(|(k, _)| r::get(s, &k))
        .collect()
}

/// An epoch's summary, once settled.
pub fn epoch_summary<S: StateRead + ?Sized>(s: &S, epoch: u64) -> Option<EpochSummary> {
    r::get(s, &r::key(Kind::Epoch, &[&epoch.to_be_bytes()]))
}

/// Every slash (the SLA history), oldest first; `provider` filters.
pub fn slashes<S: StateRead + ?Sized>(s: &S, provider: Option<&Address>) -> Vec<SlashRecord> {
    s.scan_prefix(&r::prefix(Kind::Slash))
        .into_iter()
        .filter_map(|(k, _)| r::get::<SlashRecord, _>(s, &k))
        .filter(|x| provider.is_none_or(|p| x.provider == *p))
        .collect()
}

/// The fund and the market's running totals.
pub fn fund<S: StateRead + ?Sized>(s: &S) -> Fund {
    r::fund(s)
}

/// Queued jobs counted ahead of an estimated job, at most (the count saturates here).
pub const ESTIMATE_QUEUE_SCAN_MAX: usize = 10_000;

/// What submitting a job would meet, computed from the tip's state without submitting
/// it (RPC `compute.estimate`, `tb-cli compute submit`): who could serve it, who could
/// take it in the next block, what one replica would be paid, and when it would be
/// leased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Estimate {
    /// Providers that could ever serve it: registered, staked at least the minimum, and
    /// declaring its kernel digest (unless any), model class and region — whatever their
    /// load, health or jail right now.
    pub capable: Vec<Address>,
    /// Those of them the matcher would consider in the next block (healthy, not
    /// jailed, with free capacity).
    pub eligible_now: Vec<Address>,
    /// Every other registered provider, with the first rule it fails now.
    pub ineligible: Vec<(Address, super::matcher::Ineligible)>,
    /// `redundancy − capable` when positive: replicas no provider could ever take.
    pub shortfall: u32,
    /// The price of one replica at the best multipliers (fastest delivery, full
    /// availability) and at the worst, both capped by `max_price`, micro-tokens.
    pub price_best_micro: u64,
    /// See `price_best_micro`.
    pub price_worst_micro: u64,
    /// What is escrowed: `max_price × redundancy`.
    pub escrow_micro: u64,
    /// Queued jobs of its lane that the matcher serves first (saturates at
    /// [`ESTIMATE_QUEUE_SCAN_MAX`]).
    pub queue_ahead: u64,
    /// The height of its first lease if submitted now (included in the next block,
    /// leased in the one after), when the providers eligible now have the free leases
    /// for it and the jobs ahead; `None` when it must wait for capacity or can never
    /// be served.
    pub expected_lease_height: Option<u64>,
}

/// Estimates `spec` submitted at tip height `height` under parameters `p`.
pub fn estimate<S: StateRead + ?Sized>(
    s: &S,
    p: &super::MarketParams,
    spec: &crate::tx::JobSpec,
    height: u64,
) -> Estimate {
    use super::matcher::{eligibility, lease_quota, Ineligible, JobView, ProviderView};
    let next = height + 1;
    let job = JobView {
        task_id: Id([0xff; 32]),
        kernel_digest: spec.kernel_digest,
        model: spec.model,
        lane: spec.lane,
        region: spec.region,
        fee_per_unit: super::keys::fee_per_unit(p, spec),
        submitted_height: next,
        size: spec.blob_bytes,
        replicas_needed: spec.redundancy,
        excluded: vec![],
        eligible_from: next + 1,
    };
    let mut capable = Vec::new();
    let mut eligible_now = Vec::new();
    let mut ineligible = Vec::new();
    let mut free: u64 = 0;
    for (a, pr) in providers(s) {
        let v = ProviderView::of(a, &pr);
        match eligibility(p, &job, &v, next + 1) {
            Ok(()) => {
                capable.push(a);
                eligible_now.push(a);
                free += lease_quota(p, &v).saturating_sub(v.active_leases) as u64;
            }
            Err(e @ (Ineligible::Jailed | Ineligible::Unhealthy | Ineligible::NoCapacity)) => {
                // Transient: it could serve the job once free, healthy or out of jail,
                // if the rules after these hold.
                let mut probe = v.clone();
                probe.jailed_until = 0;
                probe.last_heartbeat = next + 1;
                probe.active_leases = 0;
                if eligibility(p, &job, &probe, next + 1).is_ok() {
                    capable.push(a);
                }
                ineligible.push((a, e));
            }
            Err(e) => ineligible.push((a, e)),
        }
    }
    // The queue ahead: its lane's queued jobs whose key sorts before this job's.
    let mine = super::keys::queue_key(p, spec, next, &job.task_id);
    let lane_prefix = r::key(Kind::Queue, &[&[spec.lane]]);
    let mut queue_ahead = 0u64;
    let mut replicas_ahead = 0u64;
    for (k, _) in s.scan_range(&lane_prefix, &mine) {
        if queue_ahead as usize >= ESTIMATE_QUEUE_SCAN_MAX {
            break;
        }
        queue_ahead += 1;
        let t = Id(k[k.len() - 32..]
            .try_into()
            .expect("a queue key ends in a task id"));
        replicas_ahead += r::job(s, &t).map_or(1, |j| {
            j.spec
                .redundancy
                .saturating_sub(j.leases.len() as u32 + j.seals.len() as u32) as u64
        });
    }
    let shortfall = spec.redundancy.saturating_sub(capable.len() as u32);
    let price = |latency_blocks: u64, avail: u64| {
        super::pricing::quote(
            p,
            spec.flops,
            spec.model,
            latency_blocks,
            avail,
            spec.max_price,
        )
        .map_or(0, |q| q.price_micro)
    };
    let room = eligible_now.len() as u64 >= spec.redundancy as u64
        && free >= replicas_ahead + spec.redundancy as u64;
    Estimate {
        price_best_micro: price(0, super::params::BPS),
        price_worst_micro: price(u64::MAX, 0),
        escrow_micro: spec.max_price.saturating_mul(spec.redundancy as u64),
        expected_lease_height: (shortfall == 0 && room).then_some(next + 1),
        capable,
        eligible_now,
        ineligible,
        shortfall,
        queue_ahead,
    }
}

/// A poster's copy of an object being assembled, and the chunk indexes of it already on
/// chain (what a client resuming a publication skips).
pub fn partial<S: StateRead + ?Sized>(
    s: &S,
    object: &[u8; 32],
    poster: &Address,
) -> Option<(r::Partial, Vec<u32>)> {
    let part: r::Partial = r::get(s, &r::key(Kind::Partial, &[object, &poster.0]))?;
    let prefix = r::key(Kind::Chunk, &[object, &poster.0]);
    let received = s
        .scan_prefix(&prefix)
        .into_iter()
        .filter_map(|(k, _)| Some(u32::from_be_bytes(k.get(prefix.len()..)?.try_into().ok()?)))
        .collect();
    Some((part, received))
}
