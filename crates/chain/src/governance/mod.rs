//! On-chain governance of the market parameters (`docs/spec/governance.md`).
//!
//! Staked providers propose changes to the governable scalars of
//! [`MarketParams`](crate::market::MarketParams) (`MarketParams::GOVERNABLE`) and vote
//! with their bonded stake. A passed proposal either **shadows** (recorded, never
//! applied: every accepted receipt is also judged under the proposed values and the
//! differences are reported), **applies** at an activation height, or **rolls back** an
//! applied one. The active parameter set is stored under `Ga` once something has
//! changed it; until then it is the genesis `ChainParams.market`.
//! [`effective_params`] is what block execution uses.
//!
//! Governance moves no tokens: a proposal or a vote pays its fee like any transaction,
//! and that is all. Pure like the rest of the crate: heights come in as arguments.

use crate::error::TxError;
use crate::market::params::{MarketParams, BPS};
use crate::market::records as mr;
use crate::params::ChainParams;
use crate::state::{Account, Overlay, StateRead};
use crate::tx::{SignedTx, TxPayload, PARAM_NAME_BYTES_MAX, PROPOSAL_CHANGES_MAX};
use borsh::{BorshDeserialize, BorshSerialize};
use tb_primitives::{decode, Address, Id};

pub mod params;

pub use crate::tx::{ParamChange, ProposalBody, ProposalMode, Propose, Vote};

pub use params::{GovernanceParams, SHADOW_EXAMPLES_MAX};

/// Most finished proposals [`status`] lists.
pub const STATUS_HISTORY_MAX: usize = 32;
/// Largest encoded governance record (a shadow report with its examples).
pub const GOVERNANCE_RECORD_BYTES_MAX: usize = 16 * 1024;

/// Key prefix of every governance record.
pub const GOVERNANCE_PREFIX: u8 = b'G';

/// A record kind: the second key byte. Heights and ids in keys are big-endian, so a
/// prefix scan walks them in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `Gn` → `u64`: the next proposal id.
    Counter = b'n' as isize,
    /// `Gp ‖ id` → [`Proposal`].
    Proposal = b'p' as isize,
    /// `Gv ‖ id ‖ voter` → `bool` (approve): votes of a proposal in voting, deleted
    /// at its tally.
    Vote = b'v' as isize,
    /// `Ga` → [`MarketParams`]: the active market parameters, once changed.
    Active = b'a' as isize,
    /// `Gt ‖ voting end ‖ id` → `()`: tallies due.
    Tally = b't' as isize,
    /// `Gs ‖ activate_at ‖ id` → `()`: the activation schedule.
    Schedule = b's' as isize,
    /// `Gw ‖ until ‖ id` → `()`: proposals shadowing.
    Shadowing = b'w' as isize,
    /// `Gr ‖ id` → [`ShadowReport`].
    Report = b'r' as isize,
    /// `Gz ‖ id` → `()`: applied proposals whose values are in force (not superseded,
    /// not rolled back).
    Applied = b'z' as isize,
}

/// A key: prefix, kind, then the parts.
pub fn key(kind: Kind, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = vec![GOVERNANCE_PREFIX, kind as u8];
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn prefix(kind: Kind) -> Vec<u8> {
    key(kind, &[])
}

fn be(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

fn u64_at(k: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&k[at..at + 8]);
    u64::from_be_bytes(b)
}

/// Why a proposal was rejected at its tally.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Rejection {
    /// `(yes + no) · 10⁴ < quorum_bps · total`.
    Quorum { voted: u64, total: u64 },
    /// `yes · 10⁴ < threshold_bps · (yes + no)`, or no yes vote at all.
    Threshold { yes: u64, no: u64 },
}

/// Where a proposal is. Heights are of the block whose end made the change.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProposalStatus {
    /// Open for votes until the end of block `voting_end`.
    Voting,
    /// Failed its tally.
    Rejected(Rejection),
    /// A passed Shadow proposal: reported against live receipts until `until`.
    Shadowing { since: u64, until: u64 },
    /// No longer shadowing: closed by the activation of proposal `by` (which touched
    /// one of its names), or, with `by: None`, its `shadow_blocks` ran out.
    ShadowClosed { at: u64, by: Option<u64> },
    /// A passed Apply or Rollback, to activate at the end of block `at`.
    Scheduled { at: u64 },
    /// Applied at the end of block `since`; in force from the next block.
    Active { since: u64 },
    /// Was active; a later activation (`by`) set one of its names.
    Superseded { at: u64, by: u64 },
    /// Was active; rollback proposal `by` restored its previous values.
    RolledBack { at: u64, by: u64 },
    /// Passed, but could not be applied at its activation (the reason says why).
    Failed { at: u64, reason: String },
}

impl ProposalStatus {
    /// In voting, scheduled or shadowing: holds one of `proposals_open_max` slots.
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            ProposalStatus::Voting
                | ProposalStatus::Scheduled { .. }
                | ProposalStatus::Shadowing { .. }
        )
    }
}

/// A tally: stake-weighted votes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Tally {
    /// Σ stake of the voters approving.
    pub yes: u64,
    /// Σ stake of the voters refusing.
    pub no: u64,
    /// Σ stakes of all providers (`Fund.stakes`).
    pub total: u64,
    /// Voters counted (a voter without stake at tally time counts with weight 0).
    pub voters: u32,
}

/// A proposal.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    /// Its id (from 0, in order of acceptance).
    pub id: u64,
    /// Who proposed it.
    pub proposer: Address,
    /// What it proposes.
    pub body: ProposalBody,
    /// Height of the block that accepted it.
    pub created: u64,
    /// Last height that takes votes; tallied at the end of that block.
    pub voting_end: u64,
    /// Where it is.
    pub status: ProposalStatus,
    /// The final tally, once tallied.
    pub tally: Option<Tally>,
    /// Once applied (Apply or Rollback): the values of its names just before, which a
    /// rollback of it restores.
    pub previous: Vec<ParamChange>,
}

/// A receipt judged differently under a shadow proposal's values.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ShadowExample {
    pub task_id: Id,
    pub provider: Address,
    /// The job's lane (its SLA window is the lane's).
    pub lane: u8,
    /// Lease-to-delivery delay as the chain saw it, blocks.
    pub latency_blocks: u64,
    /// Height the receipt was accepted at.
    pub height: u64,
}

/// What a shadowing proposal would have changed, over the receipts accepted while it
/// shadowed.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ShadowReport {
    /// The proposal.
    pub proposal: u64,
    /// Height it started shadowing at.
    pub since: u64,
    /// Examples kept per direction (`shadow_examples_max` when it started).
    pub examples_max: u32,
    /// Receipts judged (accepted inside a live lease).
    pub receipts_seen: u64,
    /// Receipts payable under the active values that the shadow values would violate.
    pub would_violate: u64,
    /// The first `examples_max` of them.
    pub would_violate_examples: Vec<ShadowExample>,
    /// Receipts violated under the active values that the shadow values would pay.
    pub would_pass: u64,
    /// The first `examples_max` of them.
    pub would_pass_examples: Vec<ShadowExample>,
    /// `(name, active value, shadow value)` for each proposed change, as of the last
    /// receipt (or the start).
    pub diff: Vec<(String, u64, u64)>,
}

fn get<T: BorshDeserialize + BorshSerialize, S: StateRead + ?Sized>(s: &S, k: &[u8]) -> Option<T> {
    s.get_raw(k).map(|b| {
        decode(&b, GOVERNANCE_RECORD_BYTES_MAX).expect("the state holds valid governance records")
    })
}

use crate::error::GovernanceRefusal as K;

fn refuse(k: K, msg: impl Into<String>) -> TxError {
    TxError::governance(k, msg)
}

/// A proposal record.
pub fn proposal<S: StateRead + ?Sized>(s: &S, id: u64) -> Option<Proposal> {
    get(s, &key(Kind::Proposal, &[&be(id)]))
}

/// The shadow report of a proposal that shadowed (or shadows).
pub fn shadow_report<S: StateRead + ?Sized>(s: &S, id: u64) -> Option<ShadowReport> {
    get(s, &key(Kind::Report, &[&be(id)]))
}

/// The votes of a proposal still in voting, by voter (tallied votes are deleted).
pub fn votes<S: StateRead + ?Sized>(s: &S, id: u64) -> Vec<(Address, bool)> {
    vote_records(s, id)
        .into_iter()
        .map(|(a, approve, _)| (a, approve))
        .collect()
}

/// Votes with the voter's stake when it voted.
fn vote_records<S: StateRead + ?Sized>(s: &S, id: u64) -> Vec<(Address, bool, u64)> {
    s.scan_prefix(&key(Kind::Vote, &[&be(id)]))
        .into_iter()
        .map(|(k, v)| {
            let mut a = [0u8; 32];
            a.copy_from_slice(&k[10..42]);
            let (approve, stake): (bool, u64) =
                decode(&v, GOVERNANCE_RECORD_BYTES_MAX).expect("the state holds valid votes");
            (Address(a), approve, stake)
        })
        .collect()
}

/// The tally of a proposal's votes: each voter weighs the smaller of its stake when it
/// voted and its stake now (stake added after voting does not count; stake removed
/// does not either).
pub fn tally<S: StateRead + ?Sized>(s: &S, id: u64) -> Tally {
    let mut t = Tally {
        total: mr::fund(s).stakes,
        ..Tally::default()
    };
    for (voter, approve, at_vote) in vote_records(s, id) {
        let w = mr::provider(s, &voter)
            .map(|p| p.stake)
            .unwrap_or(0)
            .min(at_vote);
        // Σ stakes is a u64 (`Fund.stakes`), so neither side overflows.
        if approve {
            t.yes = t.yes.saturating_add(w);
        } else {
            t.no = t.no.saturating_add(w);
        }
        t.voters += 1;
    }
    t
}

/// `None` if the tally passes, else why not.
pub fn judge(g: &GovernanceParams, t: &Tally) -> Option<Rejection> {
    let voted = t.yes as u128 + t.no as u128;
    if voted * (BPS as u128) < g.quorum_bps as u128 * t.total as u128 {
        return Some(Rejection::Quorum {
            voted: voted as u64,
            total: t.total,
        });
    }
    if t.yes == 0 || (t.yes as u128) * (BPS as u128) < g.threshold_bps as u128 * voted {
        return Some(Rejection::Threshold {
            yes: t.yes,
            no: t.no,
        });
    }
    None
}

/// The active market parameters: the `Ga` record, or `genesis` while none exists.
pub fn active_market<S: StateRead + ?Sized>(s: &S, genesis: &MarketParams) -> MarketParams {
    get(s, &key(Kind::Active, &[])).unwrap_or_else(|| genesis.clone())
}

/// `base` with its market parameters replaced by the active ones. Block execution
/// computes this from the parent state and uses it for the whole block.
pub fn effective_params<S: StateRead + ?Sized>(state: &S, base: &ChainParams) -> ChainParams {
    match get::<MarketParams, _>(state, &key(Kind::Active, &[])) {
        Some(market) => ChainParams {
            market,
            ..base.clone()
        },
        None => base.clone(),
    }
}

/// Stateless checks of a proposal: change count (`1..=PROPOSAL_CHANGES_MAX`, none
/// for a rollback), name length, known names, no name twice, values that fit the
/// field's type.
pub fn check_body(body: &ProposalBody) -> Result<(), TxError> {
    let n = body.changes.len();
    match body.mode {
        ProposalMode::Rollback { .. } if n != 0 => {
            return Err(refuse(K::Proposal, "a rollback carries no changes"))
        }
        ProposalMode::Rollback { .. } => {}
        ProposalMode::Shadow | ProposalMode::Apply { .. } => {
            if n == 0 || n > PROPOSAL_CHANGES_MAX {
                return Err(refuse(
                    K::Proposal,
                    format!("a proposal makes 1..={PROPOSAL_CHANGES_MAX} changes"),
                ));
            }
        }
    }
    let mut scratch = MarketParams::mainnet();
    for (i, c) in body.changes.iter().enumerate() {
        if c.name.len() > PARAM_NAME_BYTES_MAX {
            return Err(refuse(
                K::Proposal,
                format!("parameter names are at most {PARAM_NAME_BYTES_MAX} bytes"),
            ));
        }
        if !MarketParams::GOVERNABLE.contains(&c.name.as_str()) {
            return Err(refuse(
                K::Proposal,
                format!("{:?} is not a governable parameter", c.name),
            ));
        }
        if body.changes[..i].iter().any(|d| d.name == c.name) {
            return Err(refuse(K::Proposal, format!("{} is changed twice", c.name)));
        }
        scratch
            .set(&c.name, c.value)
            .map_err(|e| refuse(K::Proposal, e.to_string()))?;
    }
    Ok(())
}

/// `base` with `changes` set; the result must pass `MarketParams::validate`.
fn with_changes(base: &MarketParams, changes: &[ParamChange]) -> Result<MarketParams, String> {
    let mut p = base.clone();
    for c in changes {
        p.set(&c.name, c.value).map_err(|e| e.to_string())?;
    }
    p.validate().map_err(|e| e.to_string())?;
    Ok(p)
}

/// The proposers of proposals in their voting period.
fn open_proposers<S: StateRead + ?Sized>(s: &S) -> Vec<Address> {
    s.scan_prefix(&prefix(Kind::Tally))
        .into_iter()
        .filter_map(|(k, _)| {
            let id = u64::from_be_bytes(k[k.len() - 8..].try_into().ok()?);
            proposal(s, id).map(|p| p.proposer)
        })
        .collect()
}

/// Proposals holding an open slot (in voting, scheduled, shadowing).
fn open_count<S: StateRead + ?Sized>(s: &S) -> usize {
    [Kind::Tally, Kind::Schedule, Kind::Shadowing]
        .iter()
        .map(|k| s.scan_prefix(&prefix(*k)).len())
        .sum()
}

fn staked_provider<S: StateRead + ?Sized>(s: &S, a: &Address, what: &str) -> Result<(), TxError> {
    match mr::provider(s, a) {
        Some(p) if p.stake > 0 => Ok(()),
        _ => Err(refuse(
            K::NotEligible,
            format!("only a staked provider may {what}"),
        )),
    }
}

/// Applies a `Propose` or `Vote` after the common checks took its fee from `acc`,
/// the sender's account, which it writes back. On error the overlay is unchanged.
pub fn apply_tx(
    ov: &mut Overlay<'_>,
    params: &ChainParams,
    height: u64,
    tx: &SignedTx,
    acc: Account,
) -> Result<(), TxError> {
    let g = &params.governance;
    let from = tx.payload.from();
    match &tx.payload {
        TxPayload::Propose(p) => {
            check_body(&p.body)?;
            staked_provider(ov, &from, "propose")?;
            if mr::provider(ov, &from).map(|x| x.stake).unwrap_or(0) < params.market.min_stake_micro
            {
                return Err(refuse(
                    K::NotEligible,
                    format!(
                        "a proposer stakes at least min_stake_micro ({})",
                        params.market.min_stake_micro
                    ),
                ));
            }
            if open_proposers(ov).contains(&from) {
                return Err(refuse(
                    K::Slots,
                    "the sender already has a proposal in its voting period",
                ));
            }
            if open_count(ov) >= g.proposals_open_max as usize {
                return Err(refuse(
                    K::Slots,
                    format!("{} proposals are open already", g.proposals_open_max),
                ));
            }
            let voting_end = height + g.voting_blocks;
            let check_activation = |at: u64| {
                let lo = voting_end + g.activation_delay_blocks_min;
                let hi = voting_end + g.activation_delay_blocks_max;
                if at < lo || at > hi {
                    return Err(refuse(
                        K::Proposal,
                        format!(
                            "activate_at {at} is outside {lo}..={hi} (voting ends at {voting_end})"
                        ),
                    ));
                }
                Ok(())
            };
            match &p.body.mode {
                ProposalMode::Shadow => {}
                ProposalMode::Apply { activate_at } => check_activation(*activate_at)?,
                ProposalMode::Rollback {
                    proposal: target,
                    activate_at,
                } => {
                    check_activation(*activate_at)?;
                    let t = proposal(ov, *target).ok_or_else(|| {
                        refuse(K::UnknownProposal, format!("no proposal {target}"))
                    })?;
                    if matches!(t.body.mode, ProposalMode::Shadow) {
                        return Err(refuse(
                            K::ProposalState,
                            format!("proposal {target} is a shadow proposal: nothing to roll back"),
                        ));
                    }
                    if !matches!(
                        t.status,
                        ProposalStatus::Scheduled { .. } | ProposalStatus::Active { .. }
                    ) {
                        return Err(refuse(
                            K::ProposalState,
                            format!(
                                "proposal {target} is neither scheduled nor active ({:?})",
                                t.status
                            ),
                        ));
                    }
                }
            }
            if !p.body.changes.is_empty() {
                with_changes(&params.market, &p.body.changes)
                    .map_err(|e| refuse(K::Proposal, e))?;
            }
            let id: u64 = get(ov, &key(Kind::Counter, &[])).unwrap_or(0);
            let rec = Proposal {
                id,
                proposer: from,
                body: p.body.clone(),
                created: height,
                voting_end,
                status: ProposalStatus::Voting,
                tally: None,
                previous: vec![],
            };
            ov.put(key(Kind::Counter, &[]), &(id + 1));
            ov.put(key(Kind::Proposal, &[&be(id)]), &rec);
            ov.put(key(Kind::Tally, &[&be(voting_end), &be(id)]), &());
        }
        TxPayload::Vote(v) => {
            let p = proposal(ov, v.proposal)
                .ok_or_else(|| refuse(K::UnknownProposal, format!("no proposal {}", v.proposal)))?;
            if p.status != ProposalStatus::Voting || height > p.voting_end {
                return Err(refuse(
                    K::ProposalState,
                    format!(
                        "proposal {} is not in its voting period (heights {}..={})",
                        p.id, p.created, p.voting_end
                    ),
                ));
            }
            staked_provider(ov, &from, "vote")?;
            let pr = mr::provider(ov, &from).expect("checked: a staked provider");
            if pr.registered_at >= p.created {
                return Err(refuse(
                    K::NotEligible,
                    "only providers registered before the proposal was made may vote on it",
                ));
            }
            ov.put(
                key(Kind::Vote, &[&be(p.id), &from.0]),
                &(v.approve, pr.stake),
            );
        }
        TxPayload::Transfer(_)
        | TxPayload::RegisterHandle(_)
        | TxPayload::RegisterProvider(_)
        | TxPayload::Stake(_)
        | TxPayload::Unstake(_)
        | TxPayload::Heartbeat(_)
        | TxPayload::SubmitJob(_)
        | TxPayload::SubmitReceipt(_)
        | TxPayload::PublishBlob(_)
        | TxPayload::SealReceipt(_)
        | TxPayload::Challenge(_)
        | TxPayload::SupplyEvidence(_)
        | TxPayload::ReportMalformed(_) => {
            return Err(refuse(K::Proposal, "not a governance transaction"))
        }
    }
    ov.set_account(&from, &acc);
    Ok(())
}

/// Keys of an index kind whose height (bytes 2..10) is at most `h`.
fn due(ov: &Overlay<'_>, kind: Kind, h: u64) -> Vec<Vec<u8>> {
    ov.scan_prefix(&prefix(kind))
        .into_iter()
        .map(|(k, _)| k)
        .take_while(|k| u64_at(k, 2) <= h)
        .collect()
}

fn put_proposal(ov: &mut Overlay<'_>, p: &Proposal) {
    ov.put(key(Kind::Proposal, &[&be(p.id)]), p);
}

fn load(ov: &Overlay<'_>, id: u64) -> Proposal {
    proposal(ov, id).expect("an indexed proposal exists")
}

fn touches(p: &Proposal, names: &[&str]) -> bool {
    p.body
        .changes
        .iter()
        .any(|c| names.contains(&c.name.as_str()))
}

/// The end-of-block step, before the market's: tallies that are due, activations
/// that are due, shadows that run out. `params` are the block's effective ones.
pub fn end_block(ov: &mut Overlay<'_>, params: &ChainParams, h: u64) {
    let g = &params.governance;
    // 1. Tallies: weights are the stakes now, at the end of the voting period.
    for k in due(ov, Kind::Tally, h) {
        let id = u64_at(&k, 10);
        ov.delete(k);
        let mut p = load(ov, id);
        let t = tally(ov, id);
        for (voter, _) in votes(ov, id) {
            ov.delete(key(Kind::Vote, &[&be(id), &voter.0]));
        }
        p.tally = Some(t);
        p.status = match (judge(g, &t), &p.body.mode) {
            (Some(r), _) => ProposalStatus::Rejected(r),
            (None, ProposalMode::Shadow) => {
                let until = h + g.shadow_blocks;
                ov.put(key(Kind::Shadowing, &[&be(until), &be(id)]), &());
                let report = ShadowReport {
                    proposal: id,
                    since: h,
                    examples_max: g.shadow_examples_max,
                    diff: diff(&params.market, &p.body.changes),
                    ..ShadowReport::default()
                };
                ov.put(key(Kind::Report, &[&be(id)]), &report);
                ProposalStatus::Shadowing { since: h, until }
            }
            (None, ProposalMode::Apply { activate_at })
            | (None, ProposalMode::Rollback { activate_at, .. }) => {
                ov.put(key(Kind::Schedule, &[&be(*activate_at), &be(id)]), &());
                ProposalStatus::Scheduled { at: *activate_at }
            }
        };
        put_proposal(ov, &p);
    }
    // 2. Activations, in (height, id) order.
    for k in due(ov, Kind::Schedule, h) {
        let id = u64_at(&k, 10);
        ov.delete(k);
        activate(ov, params, h, id);
    }
    // 3. Shadows that ran out.
    for k in due(ov, Kind::Shadowing, h) {
        let id = u64_at(&k, 10);
        ov.delete(k);
        let mut p = load(ov, id);
        p.status = ProposalStatus::ShadowClosed { at: h, by: None };
        put_proposal(ov, &p);
    }
}

fn diff(active: &MarketParams, changes: &[ParamChange]) -> Vec<(String, u64, u64)> {
    changes
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                active.get(&c.name).unwrap_or_default(),
                c.value,
            )
        })
        .collect()
}

/// Activates proposal `id` at the end of block `h`, or marks it failed.
fn activate(ov: &mut Overlay<'_>, params: &ChainParams, h: u64, id: u64) {
    let mut p = load(ov, id);
    let current = active_market(ov, &params.market);
    // What to set, and the rollback target if any.
    let (changes, target) = match &p.body.mode {
        ProposalMode::Apply { .. } => (p.body.changes.clone(), None),
        ProposalMode::Rollback {
            proposal: target, ..
        } => match proposal(ov, *target) {
            Some(t) if matches!(t.status, ProposalStatus::Active { .. }) => {
                (t.previous.clone(), Some(t))
            }
            other => {
                // A fixed-form reason: a target's own reason is never nested in it.
                p.status = ProposalStatus::Failed {
                    at: h,
                    reason: format!(
                        "rollback target {target} is {}",
                        if other.is_some() {
                            "not active"
                        } else {
                            "missing"
                        }
                    ),
                };
                put_proposal(ov, &p);
                return;
            }
        },
        ProposalMode::Shadow => unreachable!("shadow proposals are never scheduled"),
    };
    let next = match with_changes(&current, &changes) {
        Ok(next) => next,
        Err(reason) => {
            p.status = ProposalStatus::Failed {
                at: h,
                reason: format!("the result no longer validates: {reason}"),
            };
            put_proposal(ov, &p);
            return;
        }
    };
    p.previous = changes
        .iter()
        .map(|c| ParamChange {
            name: c.name.clone(),
            value: current.get(&c.name).unwrap_or_default(),
        })
        .collect();
    ov.put(key(Kind::Active, &[]), &next);
    if let Some(mut t) = target {
        t.status = ProposalStatus::RolledBack { at: h, by: id };
        ov.delete(key(Kind::Applied, &[&be(t.id)]));
        put_proposal(ov, &t);
    }
    let names: Vec<&str> = changes.iter().map(|c| c.name.as_str()).collect();
    // At most one applied proposal is in force per name: the newest.
    for (k, _) in ov.scan_prefix(&prefix(Kind::Applied)) {
        let mut other = load(ov, u64_at(&k, 2));
        if touches(&other, &names) || touches_previous(&other, &names) {
            other.status = ProposalStatus::Superseded { at: h, by: id };
            ov.delete(k);
            put_proposal(ov, &other);
        }
    }
    // Shadows of the names just set measured against values that are gone.
    for (k, _) in ov.scan_prefix(&prefix(Kind::Shadowing)) {
        let mut s = load(ov, u64_at(&k, 10));
        if touches(&s, &names) {
            s.status = ProposalStatus::ShadowClosed {
                at: h,
                by: Some(id),
            };
            ov.delete(k);
            put_proposal(ov, &s);
        }
    }
    p.status = ProposalStatus::Active { since: h };
    ov.put(key(Kind::Applied, &[&be(id)]), &());
    put_proposal(ov, &p);
}

/// A rollback's names are those of its `previous` (it carries no changes).
fn touches_previous(p: &Proposal, names: &[&str]) -> bool {
    p.previous.iter().any(|c| names.contains(&c.name.as_str()))
}

/// The shadow hook of receipt acceptance: called for every receipt accepted inside a
/// live lease, with the active parameters it was judged under. Each shadowing
/// proposal's report counts it, and records it when the proposal's values would judge
/// its latency SLA (`example.latency_blocks` against the lane's SLA window) differently.
/// At most `proposals_open_max` proposals shadow.
pub fn shadow_receipt(ov: &mut Overlay<'_>, active: &MarketParams, example: ShadowExample) {
    for (k, _) in ov.scan_prefix(&prefix(Kind::Shadowing)) {
        let id = u64_at(&k, 10);
        let p = load(ov, id);
        let rk = key(Kind::Report, &[&be(id)]);
        let mut report: ShadowReport = get(ov, &rk).expect("a shadowing proposal has a report");
        let mut shadow = active.clone();
        for c in &p.body.changes {
            // Names and value types were checked when it was proposed.
            let _ = shadow.set(&c.name, c.value);
        }
        report.receipts_seen += 1;
        let example = example.clone();
        let pays_now = example.latency_blocks <= active.sla_window_blocks(example.lane);
        let pays_shadow = example.latency_blocks <= shadow.sla_window_blocks(example.lane);
        let max = report.examples_max as usize;
        match (pays_now, pays_shadow) {
            (true, false) => {
                report.would_violate += 1;
                if report.would_violate_examples.len() < max {
                    report.would_violate_examples.push(example);
                }
            }
            (false, true) => {
                report.would_pass += 1;
                if report.would_pass_examples.len() < max {
                    report.would_pass_examples.push(example);
                }
            }
            (true, true) | (false, false) => {}
        }
        report.diff = diff(active, &p.body.changes);
        ov.put(rk, &report);
    }
}

/// The data behind `governor status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GovernorStatus {
    /// The market parameters in force for the next block.
    pub market: MarketParams,
    /// `(name, genesis value, active value)` for every governable name that differs.
    pub changed: Vec<(String, u64, u64)>,
    /// Proposals in voting, with their tallies at current stakes.
    pub voting: Vec<(Proposal, Tally)>,
    /// Scheduled activations, earliest first (`status` is `Scheduled { at }`).
    pub scheduled: Vec<Proposal>,
    /// Proposals shadowing, with their reports.
    pub shadowing: Vec<(Proposal, ShadowReport)>,
    /// Applied proposals still in force.
    pub active: Vec<Proposal>,
    /// The latest finished proposals (not open), newest first, at most
    /// `STATUS_HISTORY_MAX`.
    pub history: Vec<Proposal>,
}

impl GovernorStatus {
    /// Whether the active market parameters differ from genesis.
    pub fn differs_from_genesis(&self) -> bool {
        !self.changed.is_empty()
    }
}

/// What `governor status` shows. `base` is the genesis parameters.
pub fn status<S: StateRead + ?Sized>(state: &S, base: &ChainParams) -> GovernorStatus {
    let market = active_market(state, &base.market);
    let changed = MarketParams::GOVERNABLE
        .iter()
        .filter_map(|n| {
            let (a, b) = (base.market.get(n)?, market.get(n)?);
            (a != b).then(|| (n.to_string(), a, b))
        })
        .collect();
    let ids = |kind: Kind, at: usize| -> Vec<u64> {
        state
            .scan_prefix(&prefix(kind))
            .into_iter()
            .map(|(k, _)| u64_at(&k, at))
            .collect()
    };
    let load = |id: u64| proposal(state, id).expect("an indexed proposal exists");
    let voting = ids(Kind::Tally, 10)
        .into_iter()
        .map(|id| (load(id), tally(state, id)))
        .collect();
    let scheduled = ids(Kind::Schedule, 10).into_iter().map(load).collect();
    let shadowing = ids(Kind::Shadowing, 10)
        .into_iter()
        .map(|id| {
            let r = shadow_report(state, id).unwrap_or_default();
            (load(id), r)
        })
        .collect();
    let active = ids(Kind::Applied, 2).into_iter().map(load).collect();
    let next: u64 = get(state, &key(Kind::Counter, &[])).unwrap_or(0);
    let mut history = Vec::new();
    let walk = STATUS_HISTORY_MAX as u64 + base.governance.proposals_open_max as u64;
    for id in (next.saturating_sub(walk)..next).rev() {
        if history.len() == STATUS_HISTORY_MAX {
            break;
        }
        if let Some(p) = proposal(state, id) {
            if !p.status.is_open() {
                history.push(p);
            }
        }
    }
    GovernorStatus {
        market,
        changed,
        voting,
        scheduled,
        shadowing,
        active,
        history,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        GovernanceParams::mainnet().validate().unwrap();
        GovernanceParams::devnet().validate().unwrap();
        let mut g = GovernanceParams::mainnet();
        g.activation_delay_blocks_min = 0;
        assert!(g
            .validate()
            .unwrap_err()
            .contains("activation_delay_blocks_min"));
        let mut g = GovernanceParams::mainnet();
        g.threshold_bps = 4_000;
        assert!(g.validate().unwrap_err().contains("threshold_bps"));
    }

    #[test]
    fn quorum_and_threshold() {
        let g = GovernanceParams::mainnet();
        let t = |yes, no, total| Tally {
            yes,
            no,
            total,
            voters: 0,
        };
        // 40 % of 1000 must vote; 66.67 % of the votes must be yes.
        assert_eq!(judge(&g, &t(300, 100, 1_000)), None);
        assert_eq!(
            judge(&g, &t(300, 99, 1_000)),
            Some(Rejection::Quorum {
                voted: 399,
                total: 1_000
            })
        );
        assert_eq!(
            judge(&g, &t(266, 134, 1_000)),
            Some(Rejection::Threshold { yes: 266, no: 134 })
        );
        assert_eq!(judge(&g, &t(6_667, 3_333, 10_000)), None);
        assert_eq!(
            judge(&g, &t(0, 0, 0)),
            Some(Rejection::Threshold { yes: 0, no: 0 })
        );
    }

    #[test]
    fn bodies() {
        let ch = |name: &str, value| ParamChange {
            name: name.into(),
            value,
        };
        let body = |changes, mode| ProposalBody { changes, mode };
        let ok = body(
            vec![ch("proof_verification_budget_ms", 40)],
            ProposalMode::Shadow,
        );
        check_body(&ok).unwrap();
        for (b, want) in [
            (body(vec![], ProposalMode::Shadow), "1..=8 changes"),
            (
                body(
                    (0..9).map(|i| ch(MarketParams::GOVERNABLE[i], 1)).collect(),
                    ProposalMode::Shadow,
                ),
                "1..=8 changes",
            ),
            (
                body(vec![ch("lane_lease_blocks", 1)], ProposalMode::Shadow),
                "not a governable",
            ),
            (
                body(vec![ch(&"x".repeat(49), 1)], ProposalMode::Shadow),
                "48 bytes",
            ),
            (
                body(
                    vec![ch("miner_bps", 1), ch("miner_bps", 2)],
                    ProposalMode::Shadow,
                ),
                "twice",
            ),
            (
                body(
                    vec![ch("retry_budget", u32::MAX as u64 + 1)],
                    ProposalMode::Shadow,
                ),
                "u32::MAX",
            ),
            (
                body(
                    vec![ch("miner_bps", 1)],
                    ProposalMode::Rollback {
                        proposal: 0,
                        activate_at: 9,
                    },
                ),
                "no changes",
            ),
        ] {
            match check_body(&b) {
                Err(TxError::Governance(_, m)) => assert!(m.contains(want), "{m} vs {want}"),
                other => panic!("{b:?}: {other:?}"),
            }
        }
    }
}
