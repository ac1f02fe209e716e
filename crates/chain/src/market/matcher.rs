//! The matcher, run in every block: queued jobs in priority order, each offered to the
//! eligible providers in a deterministic shuffle seeded by the parent block's hash,
//! under per-provider lease quotas and a per-block lease budget. Pure: the same
//! snapshot and seed give the same leases on every node.

use super::params::MarketParams;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use tb_primitives::{blake3_id, Address, Id};

/// A provider as the matcher sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderView {
    /// Its address.
    pub address: Address,
    /// Bonded stake, Industrial micro-tokens.
    pub stake: u64,
    /// Jailed while `height < jailed_until`.
    pub jailed_until: u64,
    /// Height of its last heartbeat.
    pub last_heartbeat: u64,
    /// Leases it holds now.
    pub active_leases: u32,
    /// Leases it declared it can hold.
    pub max_leases: u32,
    /// Kernel variant digests its fabrics run.
    pub kernel_digests: Vec<[u8; 32]>,
    /// Model classes it accepts.
    pub models: Vec<u16>,
    /// Its region tag.
    pub region: u16,
}

impl ProviderView {
    /// The view of the provider record `pr` of `address`.
    pub fn of(address: Address, pr: &super::records::Provider) -> ProviderView {
        ProviderView {
            address,
            stake: pr.stake,
            jailed_until: pr.jailed_until,
            last_heartbeat: pr.last_heartbeat,
            active_leases: pr.active_leases,
            max_leases: pr.caps.max_leases,
            kernel_digests: pr.caps.kernel_digests.clone(),
            models: pr.caps.models.clone(),
            region: pr.caps.region,
        }
    }
}

/// A queued job as the matcher sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobView {
    /// Its task id.
    pub task_id: Id,
    /// The kernel digest its blob declares (all zero: any fabric).
    pub kernel_digest: [u8; 32],
    /// Model class.
    pub model: u16,
    /// Lane (0 is the fastest, and the highest tier).
    pub lane: u8,
    /// Required region, if any.
    pub region: Option<u16>,
    /// Fee offered per milli-unit of work, micro-tokens × 10⁶ (its max price over its
    /// maximum units, scaled so small jobs still order).
    pub fee_per_unit: u64,
    /// Height it was submitted at.
    pub submitted_height: u64,
    /// Blob size in bytes.
    pub size: u64,
    /// Replicas still to lease.
    pub replicas_needed: u32,
    /// Providers that already hold (or held) a replica: never leased twice.
    pub excluded: Vec<Address>,
    /// Not before this height (retry backoff).
    pub eligible_from: u64,
}

/// Why a provider cannot take a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ineligible {
    /// The provider is jailed.
    Jailed,
    /// Its stake is below the minimum.
    StakeBelowMin,
    /// No heartbeat within `heartbeat_timeout_blocks`.
    Unhealthy,
    /// It holds as many leases as it may.
    NoCapacity,
    /// It runs no fabric with the job's kernel digest.
    KernelDigest,
    /// It does not accept the job's model class.
    Model,
    /// It is not in the job's region.
    Region,
    /// It already holds a replica of this job.
    AlreadyAssigned,
}

/// The provider's lease quota: its declared maximum, bounded by the parameter.
pub fn lease_quota(p: &MarketParams, v: &ProviderView) -> u32 {
    v.max_leases.min(p.max_leases_per_provider)
}

/// Whether `provider` may take `job` at `height`; the first failing rule in the order
/// of [`Ineligible`].
pub fn eligibility(
    p: &MarketParams,
    job: &JobView,
    v: &ProviderView,
    height: u64,
) -> Result<(), Ineligible> {
    if height < v.jailed_until {
        return Err(Ineligible::Jailed);
    }
    if v.stake < p.min_stake_micro {
        return Err(Ineligible::StakeBelowMin);
    }
    if height.saturating_sub(v.last_heartbeat) > p.heartbeat_timeout_blocks {
        return Err(Ineligible::Unhealthy);
    }
    if v.active_leases >= lease_quota(p, v) {
        return Err(Ineligible::NoCapacity);
    }
    if job.kernel_digest != [0; 32] && !v.kernel_digests.contains(&job.kernel_digest) {
        return Err(Ineligible::KernelDigest);
    }
    if !v.models.contains(&job.model) {
        return Err(Ineligible::Model);
    }
    if job.region.is_some_and(|r| r != v.region) {
        return Err(Ineligible::Region);
    }
    if job.excluded.contains(&v.address) {
        return Err(Ineligible::AlreadyAssigned);
    }
    Ok(())
}

/// The queue order: lane (tier) first, then higher fee per unit, then older, then
/// smaller, then task id. Jobs of one lane and fee are FIFO.
pub type PriorityKey = (u8, Reverse<u64>, u64, u64, Id);

/// A job's place in the queue.
pub fn priority_key(j: &JobView) -> PriorityKey {
    (
        j.lane,
        Reverse(j.fee_per_unit),
        j.submitted_height,
        j.size,
        j.task_id,
    )
}

/// The position of `provider` in the shuffle seeded by `seed`: BLAKE3 of the seed and
/// the address, under the market's domain.
pub fn shuffle_key(seed: &Id, provider: &Address) -> Id {
    let mut b = [0u8; 64];
    b[..32].copy_from_slice(&seed.0);
    b[32..].copy_from_slice(&provider.0);
    blake3_id(b"TB/market/shuffle/v1", &b)
}

/// A lease the matcher grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The job.
    pub task_id: Id,
    /// The provider.
    pub provider: Address,
}

/// Matches one block: `jobs` in [`priority_key`] order (the caller may pass them
/// unsorted), each offered its remaining replicas among the providers in shuffle order
/// (seeded by `seed`, the parent block's hash). Grants at most
/// `match_per_block_max` leases; `providers[i].active_leases` is raised for each.
pub fn match_block(
    p: &MarketParams,
    jobs: &[JobView],
    providers: &mut [ProviderView],
    seed: &Id,
    height: u64,
) -> Vec<Assignment> {
    let mut order: Vec<usize> = (0..providers.len()).collect();
    let keys: Vec<Id> = providers
        .iter()
        .map(|v| shuffle_key(seed, &v.address))
        .collect();
    order.sort_by(|a, b| {
        keys[*a]
            .cmp(&keys[*b])
            .then(providers[*a].address.cmp(&providers[*b].address))
    });
    // Candidates per model class, in shuffle order, restricted to providers that can
    // take a lease at all this block (stake, health, jail, capacity).
    let mut by_model: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    let mut free_slots: u64 = 0;
    for &i in &order {
        let v = &providers[i];
        let open = height >= v.jailed_until
            && v.stake >= p.min_stake_micro
            && height.saturating_sub(v.last_heartbeat) <= p.heartbeat_timeout_blocks
            && v.active_leases < lease_quota(p, v);
        if !open {
            continue;
        }
        free_slots += (lease_quota(p, v) - v.active_leases) as u64;
        for m in &v.models {
            let list = by_model.entry(*m).or_default();
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }
    let mut queue: Vec<&JobView> = jobs
        .iter()
        .filter(|j| j.replicas_needed > 0 && j.eligible_from <= height)
        .collect();
    queue.sort_by_key(|j| priority_key(j));
    let budget = p.match_per_block_max as usize;
    let mut out = Vec::new();
    for job in queue {
        if out.len() >= budget || free_slots == 0 {
            break;
        }
        let Some(cands) = by_model.get(&job.model) else {
            continue;
        };
        let mut need = job.replicas_needed;
        let mut taken: Vec<Address> = Vec::new();
        for &i in cands {
            if need == 0 || out.len() >= budget {
                break;
            }
            let v = &providers[i];
            if taken.contains(&v.address) || eligibility(p, job, v, height).is_err() {
                continue;
            }
            out.push(Assignment {
                task_id: job.task_id,
                provider: v.address,
            });
            taken.push(v.address);
            providers[i].active_leases += 1;
            free_slots -= 1;
            need -= 1;
        }
    }
    out
}
