//! Governance of the market parameters through real blocks: proposals, votes, tallies,
//! shadow reports, activation and rollback (`docs/spec/governance.md`).

mod support;

use proptest::prelude::*;
use support::{sign, Chain};
use tb_chain::error::GovernanceRefusal;
use tb_chain::governance::{
    self as gov, effective_params, ProposalStatus, Rejection, ShadowReport,
};
use tb_chain::market::audit::{check_running_totals, supply};
use tb_chain::market::exec::task_id;
use tb_chain::market::query;
use tb_chain::market::records::{self as r, SlashReason};
use tb_chain::market::MarketParams;
use tb_chain::mempool::{Mempool, MempoolConfig};
use tb_chain::state::StateRead;
use tb_chain::tx::FeeSelector;
use tb_chain::tx::{
    JobSpec, ParamChange, ProposalBody, ProposalMode, Propose, ProviderCaps, RegisterProvider,
    StakeChange, SubmitJob, SubmitReceipt, Vote,
};
use tb_chain::{ChainParams, SignedTx, TxError, TxPayload};
use tb_primitives::{Address, Id, SecretKey, MICRO_PER_TOKEN};

const KERNEL: [u8; 32] = [0x5a; 32];
/// A governable parameter the proposal tests change (telemetry only: no rule reads it).
const BUDGET: &str = "proof_verification_budget_ms";
/// The latency SLA the shadow-report test governs.
const SLA: &str = "latency_sla_bps";

/// A provider's capabilities in these tests.
fn caps() -> ProviderCaps {
    ProviderCaps {
        kernel_digests: vec![KERNEL],
        ..tb_chain::builders::cpu_caps(2)
    }
}

fn params() -> ChainParams {
    let mut p = support::small_market_params();
    p.market.heartbeat_timeout_blocks = 10_000;
    // A two-block SLA window on the 4-block fast lane.
    p.market.latency_sla_bps = 5_000;
    let g = &mut p.governance;
    g.voting_blocks = 4;
    g.activation_delay_blocks_min = 2;
    g.activation_delay_blocks_max = 100;
    g.shadow_blocks = 200;
    p.validate().unwrap();
    p
}

struct World {
    chain: Chain,
    keys: Vec<SecretKey>,
}

impl World {
    /// Providers 0..n staked `stakes[i]` tokens, then one funded non-provider (index n).
    fn new(stakes: &[u64]) -> World {
        let micro: Vec<u64> = stakes.iter().map(|s| s * MICRO_PER_TOKEN).collect();
        let (chain, keys) = support::providers_world(params(), "g", caps(), &micro);
        let w = World { chain, keys };
        w.check_supply();
        w
    }

    fn addr(&self, i: usize) -> Address {
        self.keys[i].address()
    }

    fn h(&self) -> u64 {
        self.chain.height()
    }

    /// A transaction of `i` with its next on-chain nonce plus `offset`.
    fn tx_n(&self, i: usize, offset: u64, f: impl FnOnce(Address, u64) -> TxPayload) -> SignedTx {
        let nonce = self.chain.state.account(&self.addr(i)).nonce + offset;
        sign(f(self.addr(i), nonce), &self.keys[i], &self.chain)
    }

    fn tx(&self, i: usize, f: impl FnOnce(Address, u64) -> TxPayload) -> SignedTx {
        self.tx_n(i, 0, f)
    }

    /// Builds and executes a block; returns how many of `txs` it included. Checks
    /// conservation after every block.
    fn step(&mut self, txs: Vec<SignedTx>) -> usize {
        let n = self.chain.step(&txs).len();
        self.check_supply();
        n
    }

    /// Conservation and the fund's running totals.
    fn check_supply(&self) {
        assert_eq!(
            supply(&self.chain.state).total(),
            self.chain.minted,
            "conservation"
        );
        check_running_totals(&self.chain.state).unwrap();
    }

    fn idle_until(&mut self, h: u64) {
        while self.h() < h {
            self.step(vec![]);
        }
    }

    fn propose(&self, i: usize, changes: &[(&str, u64)], mode: ProposalMode) -> SignedTx {
        self.propose_n(i, 0, changes, mode)
    }

    fn propose_n(
        &self,
        i: usize,
        offset: u64,
        changes: &[(&str, u64)],
        mode: ProposalMode,
    ) -> SignedTx {
        let changes = changes
            .iter()
            .map(|(n, v)| ParamChange {
                name: n.to_string(),
                value: *v,
            })
            .collect();
        self.tx_n(i, offset, |from, nonce| {
            TxPayload::Propose(Propose {
                from,
                body: ProposalBody { changes, mode },
                fee: 1_000,
                fee_selector: FeeSelector::Industrial.into(),
                nonce,
            })
        })
    }

    /// Proposes in its own block; returns the id (None if refused).
    fn propose_ok(&mut self, i: usize, changes: &[(&str, u64)], mode: ProposalMode) -> Option<u64> {
        let next = self.next_id();
        let tx = self.propose(i, changes, mode);
        (self.step(vec![tx]) == 1).then_some(next)
    }

    fn next_id(&self) -> u64 {
        (0..)
            .find(|id| gov::proposal(&self.chain.state, *id).is_none())
            .unwrap()
    }

    fn vote(&self, i: usize, proposal: u64, approve: bool) -> SignedTx {
        self.tx(i, |from, nonce| {
            TxPayload::Vote(Vote {
                from,
                proposal,
                approve,
                fee: 1_000,
                fee_selector: FeeSelector::Industrial.into(),
                nonce,
            })
        })
    }

    /// Votes of `(voter, approve)` in one block; returns how many were included.
    fn votes(&mut self, id: u64, votes: &[(usize, bool)]) -> usize {
        let txs = votes.iter().map(|(i, a)| self.vote(*i, id, *a)).collect();
        self.step(txs)
    }

    fn proposal(&self, id: u64) -> gov::Proposal {
        gov::proposal(&self.chain.state, id).unwrap()
    }

    /// Proposes, gets every provider's yes, and runs to the end of the tally.
    fn pass(&mut self, changes: &[(&str, u64)], mode: ProposalMode) -> u64 {
        let id = self
            .propose_ok(0, changes, mode)
            .expect("proposal accepted");
        let voters: Vec<(usize, bool)> = (0..self.keys.len() - 1).map(|i| (i, true)).collect();
        assert_eq!(self.votes(id, &voters), voters.len());
        let end = self.proposal(id).voting_end;
        self.idle_until(end);
        id
    }

    fn budget(&self) -> u64 {
        effective_params(&self.chain.state, &self.chain.params)
            .market
            .proof_verification_budget_ms
    }

    fn sla(&self) -> u64 {
        effective_params(&self.chain.state, &self.chain.params)
            .market
            .latency_sla_bps
    }

    /// Submits `n` jobs (redundancy 1) from the requester in one block; returns their ids.
    fn submit(&mut self, n: usize) -> Vec<Id> {
        let req = self.keys.len() - 1;
        let h = self.h() + 1;
        let txs: Vec<SignedTx> = (0..n as u64)
            .map(|k| {
                self.tx_n(req, k, |from, nonce| {
                    TxPayload::SubmitJob(SubmitJob {
                        from,
                        spec: JobSpec {
                            blob_sha256: [k as u8; 32],
                            blob_bytes: 1_000,
                            flops: 4_000_000,
                            kernel_digest: KERNEL,
                            model: 0,
                            lane: 0,
                            region: None,
                            max_price: 1_000_000,
                            redundancy: 1,
                            deadline: h + 100,
                            n_ops: 1,
                            outputs: vec![0],
                            model_object: None,
                        },
                        fee: 10,
                        fee_selector: FeeSelector::Industrial.into(),
                        nonce,
                    })
                })
            })
            .collect();
        let ids = txs
            .iter()
            .map(|t| task_id(self.chain.params.chain_id, h, t))
            .collect();
        assert_eq!(self.step(txs), n);
        ids
    }

    fn leased_to(&self, t: &Id) -> usize {
        let job = r::job(&self.chain.state, t).unwrap();
        assert_eq!(job.leases.len(), 1, "leased");
        let a = job.leases[0].provider;
        self.keys.iter().position(|k| k.address() == a).unwrap()
    }

    /// The leased provider's one-leaf trace of `t`, its result object and its receipt
    /// (the three in one block: the latency the chain measures is from the lease to
    /// that block); `offset` is the number of that provider's transactions earlier in
    /// the same block.
    fn receipt(&self, t: Id, offset: u64) -> Vec<SignedTx> {
        let i = self.leased_to(&t);
        let key = self.keys[i].clone();
        let (result, out) = support::seeded_result([7; 32]);
        let receipt = tb_job::Receipt {
            task_id: t,
            kernel_variant_digest: KERNEL,
            benchmark_commit: String::new(),
            tensor_profile_epoch: [0; 32],
            proof_latency_ms: 1,
            output_digest_sha256: out,
            result_sha256: tb_primitives::sha256_digest(&result).0,
            input_descriptor_hash: [0; 32],
            artifact_hash: [0; 32],
            trace_root: tb_job::trace_root(&[out]),
            trace_sha256: tb_job::trace_sha256(t, key.address(), &[out]),
            n_ops: 1,
            fabric: "cpu".into(),
            device_hash: [0; 32],
            provider: key.address(),
        }
        .sign(&key, self.chain.params.chain_id)
        .unwrap();
        let trace = tb_job::trace_blob(t, key.address(), &[out]);
        let publish = |blob: Vec<u8>, n: u64| {
            self.tx_n(i, offset + n, |from, nonce| {
                TxPayload::PublishBlob(tb_chain::tx::PublishBlob {
                    from,
                    object: tb_primitives::sha256_digest(&blob).0,
                    total_bytes: blob.len() as u64,
                    index: 0,
                    bytes: blob.clone(),
                    fee: 1_000,
                    fee_selector: FeeSelector::Industrial.into(),
                    nonce,
                })
            })
        };
        // Publishing is idempotent: the same result object published again (by
        // another job's receipt) is accepted and changes nothing.
        let (p1, p2) = (publish(trace, 0), publish(result, 1));
        let submit = self.tx_n(i, offset + 2, |from, nonce| {
            TxPayload::SubmitReceipt(Box::new(SubmitReceipt {
                from,
                task_id: t,
                receipt,
                fee: 10,
                fee_selector: FeeSelector::Industrial.into(),
                nonce,
            }))
        });
        vec![p1, p2, submit]
    }

    /// Receipts for `jobs`, all in one block; returns how many were included.
    fn receipts(&mut self, jobs: &[Id]) -> usize {
        let mut per = vec![0u64; self.keys.len()];
        let txs: Vec<SignedTx> = jobs
            .iter()
            .flat_map(|t| {
                let i = self.leased_to(t);
                let txs = self.receipt(*t, per[i]);
                per[i] += 3;
                txs
            })
            .collect();
        self.step(txs) / 3
    }

    fn payable(&self, t: &Id) -> bool {
        r::job(&self.chain.state, t).unwrap().receipts[0].payable
    }

    /// Latency-SLA slashes, by task.
    fn latency_slashes(&self) -> Vec<Id> {
        query::slashes(&self.chain.state, None)
            .into_iter()
            .filter(|s| s.reason == SlashReason::LatencySla)
            .filter_map(|s| s.task_id)
            .collect()
    }
}

fn apply_at(activate_at: u64) -> ProposalMode {
    ProposalMode::Apply { activate_at }
}

/// The earliest activation a proposal made in the next block may ask for.
fn earliest(w: &World) -> u64 {
    let g = &w.chain.params.governance;
    w.h() + 1 + g.voting_blocks + g.activation_delay_blocks_min
}

#[test]
fn shadow_then_apply_then_rollback_of_the_latency_sla() {
    let mut w = World::new(&[50, 50, 50]);
    assert_eq!(w.sla(), 5_000);

    // 1. Shadow: halve the SLA window (2 blocks to 1), recorded, not applied.
    let shadow = w.pass(&[(SLA, 2_500)], ProposalMode::Shadow);
    let p = w.proposal(shadow);
    assert!(
        matches!(p.status, ProposalStatus::Shadowing { since, .. } if since == p.voting_end),
        "{:?}",
        p.status
    );
    assert_eq!(p.tally.unwrap().yes, 150 * MICRO_PER_TOKEN);
    assert_eq!(w.sla(), 5_000, "a shadow proposal changes nothing");

    // Three jobs leased in one block, answered 1, 2 and 3 blocks after their lease,
    // as the chain measures it.
    let jobs = w.submit(3);
    w.step(vec![]);
    assert_eq!(w.receipts(&jobs[..1]), 1);
    assert_eq!(w.receipts(&jobs[1..2]), 1);
    let second_at = w.h();
    assert_eq!(w.receipts(&jobs[2..]), 1);
    let latencies: Vec<u64> = jobs
        .iter()
        .map(|t| r::job(&w.chain.state, t).unwrap().receipts[0].latency_blocks)
        .collect();
    assert_eq!(latencies, vec![1, 2, 3]);
    let report: ShadowReport = gov::shadow_report(&w.chain.state, shadow).unwrap();
    assert_eq!(report.receipts_seen, 3);
    assert_eq!(report.would_violate, 1, "only the 2-block receipt");
    assert_eq!(report.would_violate_examples.len(), 1);
    let ex = &report.would_violate_examples[0];
    assert_eq!(
        (ex.task_id, ex.lane, ex.latency_blocks, ex.height),
        (jobs[1], 0, 2, second_at)
    );
    assert_eq!(ex.provider, w.addr(w.leased_to_any(&jobs[1])));
    assert_eq!(report.would_pass, 0, "3 blocks is violated either way");
    assert_eq!(report.diff, vec![(SLA.to_string(), 5_000, 2_500)]);
    // The active SLA still governs: 1 and 2 blocks are paid, only 3 is slashed.
    assert!(w.payable(&jobs[0]) && w.payable(&jobs[1]) && !w.payable(&jobs[2]));
    assert_eq!(w.latency_slashes(), vec![jobs[2]]);

    // 2. Apply the same change.
    let at = earliest(&w) + 5;
    let apply = w.pass(&[(SLA, 2_500)], apply_at(at));
    assert_eq!(w.proposal(apply).status, ProposalStatus::Scheduled { at });
    // Job a leased at the end of block at - 2, job b at the end of at - 1: a's
    // receipt in block `at` (2 blocks) is still judged under the old window, b's in
    // block at + 1 (2 blocks) under the new one.
    w.idle_until(at - 4);
    let a = w.submit(1)[0];
    let b = w.submit(1)[0];
    w.step(vec![]);
    assert_eq!(w.h(), at - 1);
    assert_eq!(w.sla(), 5_000);
    assert_eq!(w.receipts(&[a]), 1);
    assert_eq!(w.h(), at);
    assert!(w.payable(&a), "block `at` runs under the old value");
    assert_eq!(w.sla(), 2_500, "active from the block after activate_at");
    assert_eq!(
        w.proposal(apply).status,
        ProposalStatus::Active { since: at }
    );
    assert_eq!(
        w.proposal(apply).previous,
        vec![ParamChange {
            name: SLA.into(),
            value: 5_000
        }]
    );
    assert_eq!(
        w.proposal(shadow).status,
        ProposalStatus::ShadowClosed {
            at,
            by: Some(apply)
        }
    );
    assert_eq!(w.receipts(&[b]), 1);
    assert!(!w.payable(&b), "2 blocks is now past the window");
    assert!(w.latency_slashes().contains(&b));
    // The shadow counted the receipt of block `at` (it closed at that block's end),
    // and no later one.
    let report = gov::shadow_report(&w.chain.state, shadow).unwrap();
    assert_eq!((report.receipts_seen, report.would_violate), (4, 2));

    // 3. Roll it back.
    let at = earliest(&w);
    let rollback = w.pass(
        &[],
        ProposalMode::Rollback {
            proposal: apply,
            activate_at: at,
        },
    );
    w.idle_until(at);
    assert_eq!(w.sla(), 5_000);
    assert_eq!(
        w.proposal(apply).status,
        ProposalStatus::RolledBack { at, by: rollback }
    );
    assert_eq!(
        w.proposal(rollback).status,
        ProposalStatus::Active { since: at }
    );
    let st = gov::status(&w.chain.state, &w.chain.params);
    assert!(!st.differs_from_genesis(), "{:?}", st.changed);
    assert_eq!(
        st.active.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![rollback]
    );
    assert_eq!(
        st.history.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![rollback, apply, shadow]
    );
}

impl World {
    fn leased_to_any(&self, t: &Id) -> usize {
        let job = r::job(&self.chain.state, t).unwrap();
        let a = job.receipts[0].provider;
        self.keys.iter().position(|k| k.address() == a).unwrap()
    }
}

#[test]
fn quorum_and_threshold_failures() {
    // Stakes 60, 30, 10 (total 100): quorum 40, threshold 2/3 of the votes.
    let mut w = World::new(&[60, 30, 10]);
    let mk = |w: &mut World| {
        w.propose_ok(0, &[(BUDGET, 50)], ProposalMode::Shadow)
            .unwrap()
    };
    let check = |w: &mut World, votes: &[(usize, bool)], want: Option<Rejection>| {
        let id = mk(w);
        assert_eq!(w.votes(id, votes), votes.len());
        let end = w.proposal(id).voting_end;
        w.idle_until(end);
        let p = w.proposal(id);
        match want {
            Some(r) => assert_eq!(p.status, ProposalStatus::Rejected(r), "{votes:?}"),
            None => assert!(
                matches!(p.status, ProposalStatus::Shadowing { .. }),
                "{votes:?}: {:?}",
                p.status
            ),
        }
    };
    let t = MICRO_PER_TOKEN;
    // 30 + 10 = 40 of 100 voted: quorum met exactly; all yes.
    check(&mut w, &[(1, true), (2, true)], None);
    // 30 of 100 voted.
    check(
        &mut w,
        &[(1, true)],
        Some(Rejection::Quorum {
            voted: 30 * t,
            total: 100 * t,
        }),
    );
    // Nobody votes.
    check(
        &mut w,
        &[],
        Some(Rejection::Quorum {
            voted: 0,
            total: 100 * t,
        }),
    );
    // 60 yes of 100 voted (60 % < 66.67 %).
    check(
        &mut w,
        &[(0, true), (1, false), (2, false)],
        Some(Rejection::Threshold {
            yes: 60 * t,
            no: 40 * t,
        }),
    );
    // 60 yes, 30 no: 66.66… % < 66.67 %.
    check(
        &mut w,
        &[(0, true), (1, false)],
        Some(Rejection::Threshold {
            yes: 60 * t,
            no: 30 * t,
        }),
    );
    // 60 yes, 10 no: 85.7 %.
    check(&mut w, &[(0, true), (2, false)], None);
}

#[test]
fn weights_are_stakes_at_tally_time() {
    let mut w = World::new(&[50, 50, 50]);
    let id = w
        .propose_ok(0, &[(BUDGET, 50)], ProposalMode::Shadow)
        .unwrap();
    assert_eq!(w.votes(id, &[(0, true), (1, false)]), 2);
    // Provider 0 stakes 100 more after voting: a vote weighs the smaller of the stake at
    // the vote and at the tally, so it still counts 50 …
    let more = w.tx(0, |from, nonce| {
        TxPayload::Stake(StakeChange {
            from,
            amount: 100 * MICRO_PER_TOKEN,
            fee: 10,
            fee_selector: FeeSelector::Industrial.into(),
            nonce,
        })
    });
    assert_eq!(w.step(vec![more]), 1);
    let t = gov::tally(&w.chain.state, id);
    assert_eq!((t.yes, t.no), (50 * MICRO_PER_TOKEN, 50 * MICRO_PER_TOKEN));
    // … until it votes again: then 150 yes, 50 no of 250.
    assert_eq!(w.votes(id, &[(0, true)]), 1);
    let end = w.proposal(id).voting_end;
    w.idle_until(end);
    let p = w.proposal(id);
    let t = p.tally.unwrap();
    assert_eq!(
        (t.yes, t.no, t.total, t.voters),
        (
            150 * MICRO_PER_TOKEN,
            50 * MICRO_PER_TOKEN,
            250 * MICRO_PER_TOKEN,
            2
        )
    );
    assert!(matches!(p.status, ProposalStatus::Shadowing { .. }));
    assert!(
        gov::votes(&w.chain.state, id).is_empty(),
        "votes go at the tally"
    );
}

#[test]
fn votes_only_in_the_period_from_staked_providers_and_replaceable() {
    let mut w = World::new(&[50, 50, 50]);
    let stranger = 3;
    let id = w
        .propose_ok(0, &[(BUDGET, 50)], ProposalMode::Shadow)
        .unwrap();
    // A non-provider's vote: refused by the block and by the mempool (code 19,
    // not_a_provider).
    let tx = w.vote(stranger, id, true);
    let mut pool = Mempool::new(MempoolConfig::default(), w.chain.params.clone());
    let e = pool.admit(tx.clone(), &w.chain.state, 0).unwrap_err();
    assert_eq!(e.code(), 19, "{e}");
    // In the same block, a vote on a proposal that does not exist.
    let unknown = w.vote(1, id + 1, true);
    assert_eq!(w.step(vec![tx, unknown]), 0);
    // Replacement: 1 votes yes, then no; 2 votes yes.
    assert_eq!(w.votes(id, &[(1, true), (2, true)]), 2);
    assert_eq!(gov::tally(&w.chain.state, id).yes, 100 * MICRO_PER_TOKEN);
    assert_eq!(w.votes(id, &[(1, false)]), 1);
    let t = gov::tally(&w.chain.state, id);
    assert_eq!(
        (t.yes, t.no, t.voters),
        (50 * MICRO_PER_TOKEN, 50 * MICRO_PER_TOKEN, 2)
    );
    // The last block of the period still takes votes; the next one does not.
    let end = w.proposal(id).voting_end;
    w.idle_until(end - 1);
    assert_eq!(w.votes(id, &[(0, false)]), 1);
    assert_eq!(w.h(), end);
    assert_eq!(w.votes(id, &[(0, true)]), 0, "after the voting period");
    let p = w.proposal(id);
    assert_eq!(
        p.status,
        ProposalStatus::Rejected(Rejection::Threshold {
            yes: 50 * MICRO_PER_TOKEN,
            no: 100 * MICRO_PER_TOKEN
        })
    );
    // A provider whose whole stake is unbonding may not vote (nor propose).
    let id = w
        .propose_ok(0, &[(BUDGET, 50)], ProposalMode::Shadow)
        .unwrap();
    let out = w.tx(2, |from, nonce| {
        TxPayload::Unstake(StakeChange {
            from,
            amount: 50 * MICRO_PER_TOKEN,
            fee: 10,
            fee_selector: FeeSelector::Industrial.into(),
            nonce,
        })
    });
    assert_eq!(w.step(vec![out]), 1);
    assert_eq!(w.votes(id, &[(2, true)]), 0);
    assert_eq!(w.propose_ok(2, &[(BUDGET, 50)], ProposalMode::Shadow), None);
}

/// What `check_stateless` says about a proposal.
fn stateless(w: &World, changes: &[(&str, u64)], mode: ProposalMode) -> Result<(), TxError> {
    let tx = w.propose(0, changes, mode);
    tb_chain::execute::check_stateless(&tx, &w.chain.params)
}

#[test]
fn bad_proposals_are_refused() {
    let mut w = World::new(&[50, 50]);
    // Unknown name, vector parameter, no changes: stateless refusals (mempool 34,
    // invalid_proposal).
    for (changes, want) in [
        (vec![("no_such_param", 1)], "not a governable"),
        (vec![("lane_lease_blocks", 1)], "not a governable"),
        (vec![], "1..=8 changes"),
        (vec![(BUDGET, 1), (BUDGET, 2)], "twice"),
    ] {
        match stateless(&w, &changes, ProposalMode::Shadow) {
            Err(TxError::Governance(GovernanceRefusal::Proposal, m)) => {
                assert!(m.contains(want), "{m}")
            }
            other => panic!("{changes:?}: {other:?}"),
        }
        let tx = w.propose(0, &changes, ProposalMode::Shadow);
        let mut pool = Mempool::new(MempoolConfig::default(), w.chain.params.clone());
        assert_eq!(pool.admit(tx, &w.chain.state, 0).unwrap_err().code(), 34);
    }
    // A value that makes the parameter set invalid: the split would be 11 000 bps.
    assert!(stateless(&w, &[("provider_bps", 9_000)], ProposalMode::Shadow).is_ok());
    assert_eq!(
        w.propose_ok(0, &[("provider_bps", 9_000)], ProposalMode::Shadow),
        None
    );
    assert_eq!(
        w.propose_ok(0, &[(BUDGET, 0)], apply_at(earliest(&w))),
        None,
        "budget below its range"
    );
    // A balanced split is fine; a second proposal of the same proposer in its voting
    // period is not.
    assert!(w
        .propose_ok(
            1,
            &[("provider_bps", 7_500), ("miner_bps", 2_000)],
            ProposalMode::Shadow
        )
        .is_some());
    assert_eq!(w.propose_ok(1, &[(BUDGET, 60)], ProposalMode::Shadow), None);
    // Activation before the minimum delay, or past the maximum.
    let lo = earliest(&w);
    assert_eq!(w.propose_ok(0, &[(BUDGET, 50)], apply_at(lo - 1)), None);
    let hi = w.h() + 1 + 4 + 100;
    assert_eq!(w.propose_ok(0, &[(BUDGET, 50)], apply_at(hi + 1)), None);
    assert!(w.propose_ok(0, &[(BUDGET, 50)], apply_at(hi)).is_some());
    // A non-provider may not propose.
    assert_eq!(w.propose_ok(2, &[(BUDGET, 50)], ProposalMode::Shadow), None);
    // Rolling back something that was never applied.
    let at = earliest(&w);
    for target in [0, 99] {
        assert_eq!(
            w.propose_ok(
                0,
                &[],
                ProposalMode::Rollback {
                    proposal: target,
                    activate_at: at + 1
                }
            ),
            None,
            "target {target}"
        );
    }
}

#[test]
fn open_proposals_are_bounded() {
    let max = ChainParams::devnet().governance.proposals_open_max as u64;
    let mut w = World::new(&vec![50; max as usize + 1]);
    let txs = (0..=max)
        .map(|i| w.propose_n(i as usize, 0, &[(BUDGET, 50 + i)], ProposalMode::Shadow))
        .collect();
    assert_eq!(w.step(txs), max as usize, "one more than the bound");
    assert_eq!(w.next_id(), max);
}

#[test]
fn a_proposal_that_no_longer_validates_at_activation_fails() {
    // Both keep the split at 10 000 against genesis (8000/1500/500); once the first
    // activates (7500/2000/500), the second would make 7500/1000/1000 = 9500.
    let mut w = World::new(&[50, 50]);
    let at = earliest(&w) + 1;
    let first = w
        .propose_ok(
            0,
            &[("provider_bps", 7_500), ("miner_bps", 2_000)],
            apply_at(at),
        )
        .unwrap();
    let second = w
        .propose_ok(
            1,
            &[("miner_bps", 1_000), ("fund_bps", 1_000)],
            apply_at(at + 1),
        )
        .unwrap();
    assert_eq!(w.votes(first, &[(0, true), (1, true)]), 2);
    assert_eq!(w.votes(second, &[(0, true), (1, true)]), 2);
    w.idle_until(at + 1);
    assert_eq!(
        w.proposal(first).status,
        ProposalStatus::Active { since: at }
    );
    match w.proposal(second).status {
        ProposalStatus::Failed { at: f, reason } => {
            assert_eq!(f, at + 1);
            assert!(
                reason.contains("provider_bps + miner_bps + fund_bps"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    let m = effective_params(&w.chain.state, &w.chain.params).market;
    assert_eq!(
        (m.provider_bps, m.miner_bps, m.fund_bps),
        (7_500, 2_000, 500)
    );
    let st = gov::status(&w.chain.state, &w.chain.params);
    assert!(st.differs_from_genesis());
    assert_eq!(
        st.changed,
        vec![
            ("provider_bps".to_string(), 8_000, 7_500),
            ("miner_bps".to_string(), 1_500, 2_000)
        ]
    );
}

#[test]
fn rollbacks_of_proposals_no_longer_active_fail() {
    let mut w = World::new(&[50, 50]);
    let at = earliest(&w);
    let apply = w.pass(&[(BUDGET, 70)], apply_at(at));
    // Two rollbacks of the same proposal: the first restores, the second fails.
    let r_at = earliest(&w) + 1;
    let r1 = w
        .propose_ok(
            0,
            &[],
            ProposalMode::Rollback {
                proposal: apply,
                activate_at: r_at,
            },
        )
        .unwrap();
    let r2 = w
        .propose_ok(
            1,
            &[],
            ProposalMode::Rollback {
                proposal: apply,
                activate_at: r_at + 1,
            },
        )
        .unwrap();
    assert_eq!(w.votes(r1, &[(0, true), (1, true)]), 2);
    assert_eq!(w.votes(r2, &[(0, true), (1, true)]), 2);
    w.idle_until(r_at + 1);
    assert_eq!(w.budget(), 100);
    assert_eq!(
        w.proposal(apply).status,
        ProposalStatus::RolledBack { at: r_at, by: r1 }
    );
    match w.proposal(r2).status {
        ProposalStatus::Failed { reason, .. } => assert!(reason.contains("not active"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // A later apply of the same name supersedes an active one, which can then no
    // longer be rolled back either.
    let a = w.pass(&[(BUDGET, 80)], apply_at(earliest(&w)));
    let end = match w.proposal(a).status {
        ProposalStatus::Scheduled { at } => at,
        other => panic!("{other:?}"),
    };
    w.idle_until(end);
    let b = w.pass(&[(BUDGET, 90)], apply_at(earliest(&w)));
    let end = match w.proposal(b).status {
        ProposalStatus::Scheduled { at } => at,
        other => panic!("{other:?}"),
    };
    w.idle_until(end);
    assert_eq!(w.budget(), 90);
    assert_eq!(
        w.proposal(a).status,
        ProposalStatus::Superseded { at: end, by: b }
    );
    assert_eq!(
        w.propose_ok(
            0,
            &[],
            ProposalMode::Rollback {
                proposal: a,
                activate_at: earliest(&w)
            }
        ),
        None
    );
}

#[test]
fn status_lists_voting_scheduled_and_shadowing() {
    let mut w = World::new(&[50, 50]);
    let shadow = w.pass(&[(BUDGET, 40)], ProposalMode::Shadow);
    let at = earliest(&w) + 10;
    let sched = w.pass(&[("jail_blocks", 7)], apply_at(at));
    let voting = w
        .propose_ok(1, &[(BUDGET, 60)], ProposalMode::Shadow)
        .unwrap();
    assert_eq!(w.votes(voting, &[(1, true)]), 1);
    let st = gov::status(&w.chain.state, &w.chain.params);
    assert!(!st.differs_from_genesis());
    assert_eq!(st.voting.len(), 1);
    assert_eq!(st.voting[0].0.id, voting);
    assert_eq!(st.voting[0].1.yes, 50 * MICRO_PER_TOKEN);
    assert_eq!(
        st.scheduled
            .iter()
            .map(|p| (p.id, p.status.clone()))
            .collect::<Vec<_>>(),
        vec![(sched, ProposalStatus::Scheduled { at })]
    );
    assert_eq!(st.shadowing.len(), 1);
    assert_eq!(st.shadowing[0].0.id, shadow);
    assert_eq!(st.shadowing[0].1.diff, vec![(BUDGET.to_string(), 100, 40)]);
    assert!(st.history.is_empty());
    w.idle_until(at);
    let st = gov::status(&w.chain.state, &w.chain.params);
    assert_eq!(st.changed, vec![("jail_blocks".to_string(), 100, 7)]);
    assert_eq!(st.market.jail_blocks, 7);
    // The shadow of another name keeps shadowing, and the third passed meanwhile.
    assert_eq!(
        st.shadowing.iter().map(|(p, _)| p.id).collect::<Vec<_>>(),
        vec![shadow, voting]
    );
}

#[test]
fn shadows_run_out() {
    let mut w = World::new(&[50]);
    let shadow = w.pass(&[(BUDGET, 40)], ProposalMode::Shadow);
    let until = match w.proposal(shadow).status {
        ProposalStatus::Shadowing { until, .. } => until,
        other => panic!("{other:?}"),
    };
    assert_eq!(until, w.h() + w.chain.params.governance.shadow_blocks);
    w.idle_until(until);
    assert_eq!(
        w.proposal(shadow).status,
        ProposalStatus::ShadowClosed {
            at: until,
            by: None
        }
    );
}

proptest! {
    #[test]
    fn proposal_bodies_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(body) = tb_primitives::decode::<ProposalBody>(&bytes, 4096) {
            prop_assert_eq!(tb_primitives::encode(&body), bytes);
            let _ = gov::check_body(&body);
        }
    }

    #[test]
    fn set_then_get_round_trips(i in 0..MarketParams::GOVERNABLE.len(), v in any::<u64>()) {
        let name = MarketParams::GOVERNABLE[i];
        let mut p = MarketParams::mainnet();
        match p.set(name, v) {
            Ok(()) => prop_assert_eq!(p.get(name), Some(v)),
            Err(e) => {
                prop_assert!(v > u32::MAX as u64, "{}", e);
                prop_assert_eq!(p, MarketParams::mainnet());
            }
        }
    }
}

#[test]
fn blocks_follow_an_applied_limit_and_the_mempool_once_told() {
    let mut w = World::new(&[50, 50]);
    let at = earliest(&w);
    w.pass(&[("redundancy_max", 1)], apply_at(at));
    w.idle_until(at);
    let req = 2;
    let job = |w: &World| {
        let h = w.h() + 1;
        w.tx(req, |from, nonce| {
            TxPayload::SubmitJob(SubmitJob {
                from,
                spec: JobSpec {
                    blob_sha256: [1; 32],
                    blob_bytes: 1_000,
                    flops: 4_000_000,
                    kernel_digest: KERNEL,
                    model: 0,
                    lane: 0,
                    region: None,
                    max_price: 1_000_000,
                    redundancy: 2,
                    deadline: h + 100,
                    n_ops: 1,
                    outputs: vec![0],
                    model_object: None,
                },
                fee: 1_000,
                fee_selector: FeeSelector::Industrial.into(),
                nonce,
            })
        })
    };
    // The genesis limit (5) still admits it; the block's own parameters (1) do not.
    let mut pool = Mempool::new(MempoolConfig::default(), w.chain.params.clone());
    pool.admit(job(&w), &w.chain.state, 0)
        .expect("stale limits admit it");
    assert_eq!(
        w.step(vec![job(&w)]),
        0,
        "the block runs under redundancy_max 1"
    );
    // Once the node hands the pool the tip's effective parameters, it refuses too.
    let mut pool = Mempool::new(MempoolConfig::default(), w.chain.params.clone());
    pool.set_params(effective_params(&w.chain.state, &w.chain.params));
    let e = pool.admit(job(&w), &w.chain.state, 0).unwrap_err();
    assert_eq!(e.code(), 18, "{e}");
}

#[test]
fn providers_registered_after_a_proposal_cannot_vote_on_it() {
    // Stake bought for the vote does not count: a provider must be registered before
    // the proposal was made.
    let mut w = World::new(&[50, 50]);
    let id = w
        .propose_ok(0, &[(BUDGET, 50)], ProposalMode::Shadow)
        .unwrap();
    let late = 2; // the funded requester, registering now
    let reg = w.tx_n(late, 0, |from, nonce| {
        TxPayload::RegisterProvider(RegisterProvider {
            from,
            caps: ProviderCaps {
                fabrics: vec!["cpu".into()],
                kernel_digests: vec![KERNEL],
                models: vec![0],
                region: 0,
                max_leases: 2,
            },
            fee: 10,
            fee_selector: FeeSelector::Industrial.into(),
            nonce,
        })
    });
    let stake = w.tx_n(late, 1, |from, nonce| {
        TxPayload::Stake(StakeChange {
            from,
            amount: 5_000 * MICRO_PER_TOKEN,
            fee: 10,
            fee_selector: FeeSelector::Industrial.into(),
            nonce,
        })
    });
    assert_eq!(w.step(vec![reg, stake]), 2);
    assert_eq!(w.votes(id, &[(late, true)]), 0, "registered too late");
    assert_eq!(w.votes(id, &[(1, true)]), 1);
}
