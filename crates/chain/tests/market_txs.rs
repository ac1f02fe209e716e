//! Each market transaction and each slash reason, one small scenario at a time,
//! through real blocks.

mod support;

use support::{sign, Chain};
use tb_chain::market::audit::{check_running_totals, supply};
use tb_chain::market::exec::task_id;
use tb_chain::market::query;
use tb_chain::market::records::{self as r, JobState, SlashReason};
use tb_chain::state::StateRead;
use tb_chain::tx::FeeSelector;
use tb_chain::tx::{
    Heartbeat, JobSpec, ProviderCaps, PublishBlob, RegisterProvider, SealReceipt, StakeChange,
    SubmitJob, SubmitReceipt,
};
use tb_chain::{ChainParams, SignedTx, TxPayload};
use tb_primitives::{Id, SecretKey, MICRO_PER_TOKEN};

const KERNEL: [u8; 32] = [0x5a; 32];

fn params() -> ChainParams {
    support::small_market_params()
}

struct World {
    chain: Chain,
    keys: Vec<SecretKey>,
    nonces: Vec<u64>,
}

impl World {
    /// Providers 0..n (registered and staked), then one requester (index n).
    fn new(n: usize) -> World {
        World::with(n, |_| {})
    }

    /// As `new`, with the test parameters changed by `f`.
    fn with(n: usize, f: impl FnOnce(&mut ChainParams)) -> World {
        let mut params = params();
        f(&mut params);
        let caps = ProviderCaps {
            kernel_digests: vec![KERNEL],
            ..tb_chain::builders::cpu_caps(2)
        };
        let stakes = vec![50 * MICRO_PER_TOKEN; n];
        let (chain, keys) = support::providers_world(params, "w", caps, &stakes);
        let mut w = World {
            chain,
            keys,
            nonces: vec![0; n + 1],
        };
        w.sync();
        w
    }

    fn tx(&mut self, i: usize, f: impl FnOnce(tb_primitives::Address) -> TxPayload) -> SignedTx {
        let mut p = f(self.keys[i].address());
        set_nonce(&mut p, self.nonces[i]);
        self.nonces[i] += 1;
        sign(p, &self.keys[i], &self.chain)
    }

    /// Builds and executes a block; returns how many of `txs` it included.
    fn step(&mut self, txs: Vec<SignedTx>) -> usize {
        let n = self.chain.step(&txs).len();
        self.sync();
        n
    }

    /// Nonces from the chain; conservation and the fund's running totals checked.
    fn sync(&mut self) {
        for (i, k) in self.keys.iter().enumerate() {
            self.nonces[i] = self.chain.state.account(&k.address()).nonce;
        }
        assert_eq!(
            supply(&self.chain.state).total(),
            self.chain.minted,
            "conservation"
        );
        check_running_totals(&self.chain.state).unwrap();
    }

    /// Provider `i`'s heartbeat.
    fn heartbeat(&mut self, i: usize) -> SignedTx {
        self.tx(i, |from| {
            TxPayload::Heartbeat(Heartbeat {
                from,
                fee: 10,
                fee_selector: FeeSelector::Industrial.into(),
                nonce: 0,
            })
        })
    }

    fn idle(&mut self, blocks: u64) {
        for _ in 0..blocks {
            self.step(vec![]);
        }
    }

    fn submit(&mut self, redundancy: u32) -> Id {
        let req = self.keys.len() - 1;
        let h = self.chain.height() + 1;
        let spec = spec(redundancy, h + 100);
        let tx = self.tx(req, |from| {
            TxPayload::SubmitJob(SubmitJob {
                from,
                spec,
                fee: 10,
                fee_selector: FeeSelector::Industrial.into(),
                nonce: 0,
            })
        });
        let t = task_id(self.chain.params.chain_id, h, &tx);
        assert_eq!(self.step(vec![tx]), 1);
        t
    }

    /// Publishes provider `i`'s answer `out` of `t` in a block of its own: the result
    /// object `support::seeded_result(out)` and the one-leaf trace of its digest.
    fn publish_trace(&mut self, i: usize, t: Id, out: [u8; 32]) {
        let a = self.keys[i].address();
        let (result, d) = support::seeded_result(out);
        let mut txs = Vec::new();
        for blob in [tb_job::trace_blob(t, a, &[d]), result] {
            let id = tb_primitives::sha256_digest(&blob).0;
            if r::object(&self.chain.state, &id).is_some() {
                continue;
            }
            txs.push(self.tx(i, |from| {
                TxPayload::PublishBlob(PublishBlob {
                    from,
                    object: id,
                    total_bytes: blob.len() as u64,
                    index: 0,
                    bytes: blob.clone(),
                    fee: 1_000,
                    fee_selector: FeeSelector::Industrial.into(),
                    nonce: 0,
                })
            }));
        }
        let n = txs.len();
        assert_eq!(self.step(txs), n, "the trace and result are published");
    }

    /// A redundant job's replica: its seal, and the receipt it will reveal.
    fn sealed(
        &mut self,
        i: usize,
        t: Id,
        out: [u8; 32],
        latency_ms: u64,
    ) -> (SignedTx, tb_job::SignedReceipt) {
        let signed = self.signed(i, t, out, latency_ms);
        let seal = self.tx(i, |from| {
            TxPayload::SealReceipt(SealReceipt {
                from,
                task_id: t,
                seal: signed.seal(),
                result_bytes: 50,
                fee: 10,
                fee_selector: FeeSelector::Industrial.into(),
                nonce: 0,
            })
        });
        (seal, signed)
    }

    /// A sealed replica's reveal: its trace is published (a block of its own), then the
    /// receipt.
    fn reveal(
        &mut self,
        i: usize,
        t: Id,
        out: [u8; 32],
        receipt: tb_job::SignedReceipt,
    ) -> SignedTx {
        self.publish_trace(i, t, out);
        self.tx(i, |from| {
            TxPayload::SubmitReceipt(Box::new(SubmitReceipt {
                from,
                task_id: t,
                receipt,
                fee: 10,
                fee_selector: FeeSelector::Industrial.into(),
                nonce: 0,
            }))
        })
    }

    /// Provider `i`'s receipt of `t` (its trace published first, in a block of its own).
    fn receipt(&mut self, i: usize, t: Id, out: [u8; 32], latency_ms: u64) -> SignedTx {
        self.publish_trace(i, t, out);
        let receipt = self.signed(i, t, out, latency_ms);
        self.submit_receipt(i, t, receipt)
    }

    /// Provider `i`'s `SubmitReceipt` of `receipt` for `t`.
    fn submit_receipt(&mut self, i: usize, t: Id, receipt: tb_job::SignedReceipt) -> SignedTx {
        self.tx(i, |from| {
            TxPayload::SubmitReceipt(Box::new(SubmitReceipt {
                from,
                task_id: t,
                receipt,
                fee: 10,
                fee_selector: FeeSelector::Industrial.into(),
                nonce: 0,
            }))
        })
    }

    /// Provider `i`'s signed receipt of `t` answering `out` (the output digest of
    /// `support::seeded_result(out)`).
    fn signed(&self, i: usize, t: Id, out: [u8; 32], latency_ms: u64) -> tb_job::SignedReceipt {
        let (result, d) = support::seeded_result(out);
        self.signed_answer(i, t, d, &result, latency_ms)
    }

    /// Provider `i`'s signed receipt of `t` (a one-op job) whose output digest is `d`
    /// and whose result object is `result`.
    fn signed_answer(
        &self,
        i: usize,
        t: Id,
        d: [u8; 32],
        result: &[u8],
        latency_ms: u64,
    ) -> tb_job::SignedReceipt {
        let key = self.keys[i].clone();
        tb_job::Receipt {
            task_id: t,
            kernel_variant_digest: KERNEL,
            benchmark_commit: String::new(),
            tensor_profile_epoch: [0; 32],
            proof_latency_ms: latency_ms,
            output_digest_sha256: d,
            result_sha256: tb_primitives::sha256_digest(result).0,
            input_descriptor_hash: [0; 32],
            artifact_hash: [0; 32],
            trace_root: tb_job::trace_root(&[d]),
            trace_sha256: tb_job::trace_sha256(t, key.address(), &[d]),
            n_ops: 1,
            fabric: "cpu".into(),
            device_hash: [0; 32],
            provider: key.address(),
        }
        .sign(&key, self.chain.params.chain_id)
        .unwrap()
    }

    fn leased_to(&self, t: &Id) -> Vec<usize> {
        let job = r::job(&self.chain.state, t).unwrap();
        job.leases
            .iter()
            .map(|l| {
                self.keys
                    .iter()
                    .position(|k| k.address() == l.provider)
                    .unwrap()
            })
            .collect()
    }
}

/// The tests' job: one op, its output that op, 4 MFLOP, a 1-token max price.
fn spec(redundancy: u32, deadline: u64) -> JobSpec {
    JobSpec {
        blob_sha256: [9; 32],
        blob_bytes: 1_000,
        flops: 4_000_000,
        kernel_digest: KERNEL,
        model: 0,
        lane: 0,
        region: None,
        max_price: 1_000_000,
        redundancy,
        deadline,
        n_ops: 1,
        outputs: vec![0],
        model_object: None,
    }
}

fn stake(from: tb_primitives::Address, amount: u64) -> TxPayload {
    TxPayload::Stake(StakeChange {
        from,
        amount,
        fee: 10,
        fee_selector: FeeSelector::Industrial.into(),
        nonce: 0,
    })
}

fn set_nonce(p: &mut TxPayload, n: u64) {
    match p {
        TxPayload::RegisterProvider(x) => x.nonce = n,
        TxPayload::Stake(x) | TxPayload::Unstake(x) => x.nonce = n,
        TxPayload::Heartbeat(x) => x.nonce = n,
        TxPayload::SubmitJob(x) => x.nonce = n,
        TxPayload::SubmitReceipt(x) => x.nonce = n,
        TxPayload::Transfer(x) => x.nonce = n,
        TxPayload::RegisterHandle(x) => x.nonce = n,
        TxPayload::PublishBlob(x) => x.nonce = n,
        TxPayload::SealReceipt(x) => x.nonce = n,
        TxPayload::Challenge(x) => x.nonce = n,
        TxPayload::SupplyEvidence(x) => x.nonce = n,
        TxPayload::ReportMalformed(x) => x.nonce = n,
        TxPayload::Propose(x) => x.nonce = n,
        TxPayload::Vote(x) => x.nonce = n,
    }
}

#[test]
fn a_job_is_leased_proven_verified_and_settled() {
    let mut w = World::new(3);
    let req = w.keys[3].address();
    let before = w.chain.state.account(&req).industrial;
    let t = w.submit(2);
    let job = r::job(&w.chain.state, &t).unwrap();
    assert_eq!(job.escrow, 2_000_000, "max_price x redundancy is escrowed");
    w.idle(1);
    let leased = w.leased_to(&t);
    assert_eq!(leased.len(), 2, "two distinct providers");
    let (seals, receipts): (Vec<SignedTx>, Vec<tb_job::SignedReceipt>) =
        leased.iter().map(|i| w.sealed(*i, t, [7; 32], 10)).unzip();
    assert_eq!(w.step(seals), 2);
    assert_eq!(
        r::job(&w.chain.state, &t).unwrap().state,
        JobState::Revealing
    );
    let reveals: Vec<SignedTx> = leased
        .iter()
        .zip(receipts)
        .map(|(i, rc)| w.reveal(*i, t, [7; 32], rc))
        .collect();
    assert_eq!(w.step(reveals), 2);
    assert_eq!(r::job(&w.chain.state, &t).unwrap().state, JobState::Proven);
    w.idle(2);
    assert_eq!(
        r::job(&w.chain.state, &t).unwrap().state,
        JobState::Verified
    );
    // Settle at the epoch's end.
    while !w.chain.height().is_multiple_of(20) {
        w.idle(1);
    }
    let job = r::job(&w.chain.state, &t).unwrap();
    assert_eq!(job.state, JobState::Settled);
    assert_eq!(job.escrow, 0);
    let paid = query::payouts(&w.chain.state, w.chain.height() / 20);
    assert_eq!(paid.len(), 2);
    let price: u64 = paid.iter().map(|p| p.item.price_micro).sum();
    // 4 units of work, llama3-8b (x1.0), a 1-block delay (x1.15), the provider's
    // measured availability through its multiplier; the requester paid the prices and
    // the fee and got the rest of the escrow back.
    for p in &paid {
        let avail_mult = if p.item.availability >= 9_990 {
            11_000
        } else if p.item.availability >= 9_900 {
            10_000
        } else {
            9_000
        };
        assert_eq!(p.item.availability_bps, avail_mult);
        assert_eq!(
            p.item.units_milli,
            4_000 * 11_500 / 10_000 * avail_mult / 10_000
        );
        assert_eq!(p.item.price_micro, p.item.units_milli * 15_000 / 1_000);
    }
    assert_eq!(w.chain.state.account(&req).industrial, before - price - 10);
}

#[test]
fn stake_unstake_and_unbonding_release() {
    let mut w = World::new(1);
    let a = w.keys[0].address();
    let bal = w.chain.state.account(&a).industrial;
    let tx = w.tx(0, |from| {
        TxPayload::Unstake(StakeChange {
            from,
            amount: 20 * MICRO_PER_TOKEN,
            fee: 10,
            fee_selector: FeeSelector::Industrial.into(),
            nonce: 0,
        })
    });
    assert_eq!(w.step(vec![tx]), 1);
    let p = r::provider(&w.chain.state, &a).unwrap();
    assert_eq!(
        (p.stake, p.unbonding),
        (30 * MICRO_PER_TOKEN, 20 * MICRO_PER_TOKEN)
    );
    // Unstaking more than the stake is refused (the block skips it).
    let tx = w.tx(0, |from| {
        TxPayload::Unstake(StakeChange {
            from,
            amount: 31 * MICRO_PER_TOKEN,
            fee: 10,
            fee_selector: FeeSelector::Industrial.into(),
            nonce: 0,
        })
    });
    assert_eq!(w.step(vec![tx]), 0);
    w.idle(5);
    let p = r::provider(&w.chain.state, &a).unwrap();
    assert_eq!(p.unbonding, 0, "released after unbonding_blocks");
    assert_eq!(
        w.chain.state.account(&a).industrial,
        bal - 10 + 20 * MICRO_PER_TOKEN
    );
    // Staking without registering is refused.
    let mut w2 = World::new(0);
    let tx = w2.tx(0, |from| stake(from, 1));
    assert_eq!(w2.step(vec![tx]), 0);
}

#[test]
fn each_slash_reason() {
    // Missed lease (retry budget 0): the lease expires with no receipt.
    let mut w = World::new(2);
    let t = w.submit(1);
    w.idle(1);
    let who = w.leased_to(&t)[0];
    w.idle(5);
    let s = query::slashes(&w.chain.state, Some(&w.keys[who].address()));
    assert_eq!(
        s.iter().map(|x| x.reason.clone()).collect::<Vec<_>>(),
        vec![SlashReason::MissedLease]
    );
    assert_eq!(s[0].amount, 50 * MICRO_PER_TOKEN * 500 / 10_000);
    let job = r::job(&w.chain.state, &t).unwrap();
    assert_eq!(
        (job.state, job.escrow),
        (JobState::Failed, 0),
        "failed and refunded"
    );

    // Once the job has failed, a late answer is refused, not punished again.
    let late = w.receipt(who, t, [1; 32], 10);
    assert_eq!(w.step(vec![late]), 0);

    // Receipt outside the lease: with one retry, the job is requeued when the lease
    // lapses and goes to another provider; the first then answers late.
    let mut w = World::with(3, |p| p.market.retry_budget = 1);
    let t = w.submit(1);
    w.idle(1);
    let who = w.leased_to(&t)[0];
    w.idle(5);
    assert!(
        query::slashes(&w.chain.state, None).is_empty(),
        "the first loss is forgiven"
    );
    let late = w.receipt(who, t, [1; 32], 10);
    assert_eq!(w.step(vec![late]), 1, "accepted as evidence");
    let s = query::slashes(&w.chain.state, Some(&w.keys[who].address()));
    assert_eq!(s.last().unwrap().reason, SlashReason::ReceiptOutsideLease);
    assert_eq!(
        s.last().unwrap().output_digest,
        Some(support::seeded_result([1; 32]).1)
    );

    // Delivered past the latency SLA's window, as the chain measures it (lease height
    // to receipt height): slashed, not paid. With a quarter of the 4-block lease term,
    // the window is one block; the receipt lands two blocks after the lease (its
    // trace is published in the block between). A huge reported `proof_latency_ms`
    // changes nothing: the provider's own figure is telemetry.
    let mut w = World::with(2, |p| p.market.latency_sla_bps = 2_500);
    let t = w.submit(1);
    w.idle(1);
    let who = w.leased_to(&t)[0];
    let slow = w.receipt(who, t, [2; 32], 1);
    assert_eq!(w.step(vec![slow]), 1);
    let s = query::slashes(&w.chain.state, Some(&w.keys[who].address()));
    assert_eq!(s[0].reason, SlashReason::LatencySla);
    let job = r::job(&w.chain.state, &t).unwrap();
    assert!(!job.receipts[0].payable);
    assert_eq!(job.receipts[0].latency_blocks, 2);
    assert_eq!(
        job.receipts[0].latency_ms, 2_000,
        "block timestamps (devchain: 1 s apart)"
    );
    w.idle(3);
    assert_eq!(
        r::job(&w.chain.state, &t).unwrap().state,
        JobState::Settled,
        "verified with nothing payable"
    );

    // Availability: no heartbeats over an epoch with a floor.
    let mut p = params();
    p.market.availability_floor_bps = 5_000;
    let key = SecretKey::dev("lonely");
    let mut c = Chain::new(p, &[(key.address(), 1_000 * MICRO_PER_TOKEN)]);
    let caps = ProviderCaps {
        fabrics: vec!["cpu".into()],
        kernel_digests: vec![],
        models: vec![0],
        region: 0,
        max_leases: 1,
    };
    let reg = sign(
        TxPayload::RegisterProvider(RegisterProvider {
            from: key.address(),
            caps,
            fee: 10,
            fee_selector: FeeSelector::Industrial.into(),
            nonce: 0,
        }),
        &key,
        &c,
    );
    let st = sign(
        stake(key.address(), MICRO_PER_TOKEN).with_nonce(1),
        &key,
        &c,
    );
    c.step(&[reg, st]);
    while !c.height().is_multiple_of(20) {
        c.step(&[]);
    }
    let s = query::slashes(&c.state, None);
    assert_eq!(
        s.iter().map(|x| x.reason.clone()).collect::<Vec<_>>(),
        vec![SlashReason::Availability]
    );
    // A heartbeating provider is not (same floor).
    let mut w = World::with(1, |p| p.market.availability_floor_bps = 5_000);
    for _ in 0..25 {
        let hb = w.tx(0, |from| {
            TxPayload::Heartbeat(Heartbeat {
                from,
                fee: 10,
                fee_selector: FeeSelector::Industrial.into(),
                nonce: 0,
            })
        });
        w.step(vec![hb]);
    }
    assert!(query::slashes(&w.chain.state, None).is_empty());
}

/// Heartbeats landing in block `land(window)` of each window, for `epochs` epochs,
/// under a floor of 100 %: the provider's Availability slashes.
fn availability_slashes(epochs: u64, land: impl Fn(u64, u64) -> Option<u64>) -> usize {
    let mut w = World::with(1, |p| p.market.availability_floor_bps = 10_000);
    let (epoch, interval) = (
        w.chain.params.market.epoch_blocks,
        w.chain.params.market.heartbeat_interval_blocks,
    );
    let end = (w.chain.height() / epoch + epochs + 1) * epoch + 1;
    while w.chain.height() < end {
        let b = w.chain.height() + 1;
        let window = b / interval;
        let mut txs = Vec::new();
        if land(window, epoch) == Some(b) {
            txs.push(w.tx(0, |from| {
                TxPayload::Heartbeat(Heartbeat {
                    from,
                    fee: 10,
                    fee_selector: FeeSelector::Industrial.into(),
                    nonce: 0,
                })
            }));
        }
        w.step(txs);
    }
    query::slashes(&w.chain.state, None)
        .iter()
        .filter(|s| s.reason == SlashReason::Availability)
        .count()
}

#[test]
fn availability_counts_the_windows_inside_an_epoch_wherever_a_heartbeat_lands() {
    let interval = params().market.heartbeat_interval_blocks;
    // One heartbeat per window, in its first block — but one block late, every other
    // epoch, in the window that starts at the epoch's last block (a template built
    // before it arrived), so that epoch's first window had its heartbeat in the
    // previous epoch and its last has it in the next. The windows cut by an epoch's
    // start or end are not expected of anyone: no slash. (Counting blocks elapsed
    // over the interval instead expected one more window than an epoch holds whole,
    // and slashed this honest provider every other epoch.)
    let late_at_the_boundary = |window: u64, epoch: u64| {
        let first = window * interval;
        let late = first.is_multiple_of(epoch) && (first / epoch).is_multiple_of(2);
        Some(if late { first + 1 } else { first })
    };
    assert_eq!(availability_slashes(4, late_at_the_boundary), 0);
    // Every heartbeat in the window's last block: no slash either.
    assert_eq!(
        availability_slashes(4, |w, _| Some(w * interval + interval - 1)),
        0
    );
    // A window with no heartbeat in each epoch (the third of it): slashed every epoch
    // under a 100 % floor.
    let skip_one = |window: u64, epoch: u64| {
        let per = epoch / interval;
        (window % per != 3).then_some(window * interval)
    };
    assert!(availability_slashes(4, skip_one) >= 4);
}

#[test]
fn disagreeing_replicas_are_held_for_a_dispute() {
    let mut w = World::new(2);
    let t = w.submit(2);
    w.idle(1);
    let leased = w.leased_to(&t);
    let (sa, ra) = w.sealed(leased[0], t, [1; 32], 10);
    let (sb, rb) = w.sealed(leased[1], t, [2; 32], 10);
    assert_eq!(w.step(vec![sa, sb]), 2);
    let ra = w.reveal(leased[0], t, [1; 32], ra);
    let rb = w.reveal(leased[1], t, [2; 32], rb);
    assert_eq!(w.step(vec![ra, rb]), 2);
    let job = r::job(&w.chain.state, &t).unwrap();
    assert_eq!(job.state, JobState::Disputed);
    assert_eq!(job.escrow, 2_000_000, "escrow held for the dispute game");
    let d = tb_chain::market::dispute::disputes(&w.chain.state, &t);
    assert_eq!(d.len(), 1, "one dispute between the two answers");
    assert_eq!(d[0].op, 0);
    assert_eq!(d[0].owed, r::Owed::Parties);
}

#[test]
fn bad_market_transactions_are_refused() {
    let mut w = World::new(1);
    let h = w.chain.height() + 1;
    let bad_spec = JobSpec {
        blob_sha256: [0; 32],
        blob_bytes: 1,
        flops: 1,
        kernel_digest: KERNEL,
        model: 9,
        lane: 0,
        region: None,
        max_price: 1,
        redundancy: 1,
        deadline: h + 10,
        n_ops: 1,
        outputs: vec![0],
        model_object: None,
    };
    let params = w.chain.params.clone();
    let cases: Vec<(JobSpec, &str)> = vec![
        (bad_spec.clone(), "unknown model class"),
        (
            JobSpec {
                model: 0,
                lane: 7,
                ..bad_spec.clone()
            },
            "lane",
        ),
        (
            JobSpec {
                model: 0,
                redundancy: 0,
                ..bad_spec.clone()
            },
            "redundancy",
        ),
        (
            JobSpec {
                model: 0,
                redundancy: 99,
                ..bad_spec.clone()
            },
            "redundancy",
        ),
        (
            JobSpec {
                model: 0,
                flops: 0,
                ..bad_spec.clone()
            },
            "flops",
        ),
        (
            JobSpec {
                model: 0,
                max_price: 0,
                ..bad_spec.clone()
            },
            "max_price",
        ),
    ];
    for (spec, want) in cases {
        let tx = w.tx(1, |from| {
            TxPayload::SubmitJob(SubmitJob {
                from,
                spec,
                fee: 10,
                fee_selector: FeeSelector::Industrial.into(),
                nonce: 0,
            })
        });
        match tb_chain::execute::check_stateless(&tx, &params) {
            Err(tb_chain::TxError::Market(tb_chain::error::MarketRefusal::Fields, m)) => {
                assert!(m.contains(want), "{m} should mention {want}")
            }
            other => panic!("expected a market error about {want}, got {other:?}"),
        }
        w.nonces[1] -= 1;
    }
    // A receipt whose provider signature does not cover its contents.
    let t = w.submit(1);
    w.idle(1);
    let mut tx = w.receipt(0, t, [1; 32], 1);
    if let TxPayload::SubmitReceipt(sr) = &mut tx.payload {
        sr.receipt.receipt.n_ops = 2; // the provider's signature no longer covers it
    }
    let tx = sign(tx.payload, &w.keys[0], &w.chain);
    assert_eq!(
        w.step(vec![tx]),
        0,
        "a receipt whose signature fails is refused"
    );
}

trait WithNonce {
    fn with_nonce(self, n: u64) -> Self;
}

impl WithNonce for TxPayload {
    fn with_nonce(mut self, n: u64) -> Self {
        set_nonce(&mut self, n);
        self
    }
}

#[test]
fn a_replica_released_by_a_failed_job_is_not_slashed() {
    // Redundancy 2, no retries: one replica's lease lapses and fails the job; the
    // other, whose lease was still live, answers in time and is refused, not slashed.
    let mut w = World::with(2, |p| p.market.lane_lease_blocks = vec![4, 8, 16]);
    let t = w.submit(2);
    w.idle(1);
    let leased = w.leased_to(&t);
    // Neither answers; both leases lapse in the same block, failing the job once.
    w.idle(5);
    assert_eq!(r::job(&w.chain.state, &t).unwrap().state, JobState::Failed);
    let honest_late = w.receipt(leased[1], t, [3; 32], 10);
    assert_eq!(w.step(vec![honest_late]), 0);
    let slashed: Vec<_> = query::slashes(&w.chain.state, None)
        .into_iter()
        .map(|s| s.reason)
        .collect();
    assert_eq!(
        slashed,
        vec![SlashReason::MissedLease],
        "only the lease that failed the job"
    );
}

#[test]
fn unstaking_neither_escapes_slashing_nor_abandons_leases() {
    let mut w = World::with(1, |p| {
        p.market.slash.missed_lease_bps = 5_000;
        p.market.unbonding_blocks = 100;
    });
    let a = w.keys[0].address();
    // Unstake 40 of 50 while holding nothing: allowed.
    let tx = w.tx(0, |from| {
        TxPayload::Unstake(StakeChange {
            from,
            amount: 40 * MICRO_PER_TOKEN,
            fee: 10,
            fee_selector: FeeSelector::Industrial.into(),
            nonce: 0,
        })
    });
    assert_eq!(w.step(vec![tx]), 1);
    let t = w.submit(1);
    w.idle(1);
    assert_eq!(w.leased_to(&t), vec![0]);
    // Unstaking while holding a lease is refused.
    let tx = w.tx(0, |from| {
        TxPayload::Unstake(StakeChange {
            from,
            amount: MICRO_PER_TOKEN,
            fee: 10,
            fee_selector: FeeSelector::Industrial.into(),
            nonce: 0,
        })
    });
    assert_eq!(w.step(vec![tx]), 0);
    // The lease lapses: half of everything bonded (10 staked + 40 unbonding) goes.
    w.idle(4);
    let s = query::slashes(&w.chain.state, Some(&a));
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].amount, 25 * MICRO_PER_TOKEN);
    let p = r::provider(&w.chain.state, &a).unwrap();
    assert_eq!((p.stake, p.unbonding), (0, 25 * MICRO_PER_TOKEN));
}

#[test]
fn deadlines_must_fit_a_lease_and_stay_bounded() {
    let mut w = World::new(1);
    let req = w.keys.len() - 1;
    let lease = w.chain.params.market.lane_lease_blocks[0];
    let max = w.chain.params.market.deadline_blocks_max;
    for (offset, ok) in [
        (lease, false),
        (lease + 1, true),
        (max, true),
        (max + 1, false),
    ] {
        let h = w.chain.height() + 1;
        let deadline = h + offset;
        let spec = JobSpec {
            blob_sha256: [1; 32],
            blob_bytes: 1,
            flops: 1_000_000,
            kernel_digest: KERNEL,
            model: 0,
            lane: 0,
            region: None,
            max_price: 1,
            redundancy: 1,
            deadline,
            n_ops: 1,
            outputs: vec![0],
            model_object: None,
        };
        let tx = w.tx(req, |from| {
            TxPayload::SubmitJob(SubmitJob {
                from,
                spec,
                fee: 10,
                fee_selector: FeeSelector::Industrial.into(),
                nonce: 0,
            })
        });
        assert_eq!(
            w.step(vec![tx]) == 1,
            ok,
            "deadline {deadline} at height {h}"
        );
    }
}

#[test]
fn the_mempool_refuses_provider_transactions_from_non_providers() {
    let w = World::new(1);
    // The requester is funded but no provider.
    let stranger = w.keys[1].clone();
    let mut pool = tb_chain::mempool::Mempool::new(
        tb_chain::mempool::MempoolConfig::default(),
        w.chain.params.clone(),
    );
    let hb = sign(
        TxPayload::Heartbeat(Heartbeat {
            from: stranger.address(),
            fee: 1_000_000,
            fee_selector: FeeSelector::Consumer.into(),
            nonce: w.nonces[1],
        }),
        &stranger,
        &w.chain,
    );
    match pool.admit(hb, &w.chain.state, 0) {
        Err(e) => assert_eq!(e.code(), 19, "{e}"),
        Ok(_) => panic!("a heartbeat from a non-provider was admitted"),
    }
    // A registered provider's heartbeat is admitted.
    let k = w.keys[0].clone();
    let hb = sign(
        TxPayload::Heartbeat(Heartbeat {
            from: k.address(),
            fee: 1_000_000,
            fee_selector: FeeSelector::Consumer.into(),
            nonce: w.nonces[0],
        }),
        &k,
        &w.chain,
    );
    pool.admit(hb, &w.chain.state, 0).expect("admitted");
}

#[test]
fn every_failed_job_records_why() {
    use tb_chain::market::records::FailReason;
    let reason = |w: &World, t: &Id| r::job(&w.chain.state, t).unwrap().failure.map(|f| f.reason);
    // Leases that lapse past the retry budget.
    let mut w = World::new(1);
    let t = w.submit(1);
    w.idle(6);
    assert_eq!(reason(&w, &t), Some(FailReason::LeasesLapsed));
    let f = r::job(&w.chain.state, &t).unwrap().failure.unwrap();
    assert_eq!(
        f.height,
        w.chain.height() - 1,
        "the block the lease lapsed in"
    );
    // More replicas than providers: it waits in the queue (one replica leased) and
    // fails `unserved` at its deadline.
    let mut w = World::with(1, |p| {
        p.market.lane_lease_blocks = vec![50, 60, 70];
        p.market.lease_renewals_max = 2;
    });
    let t = w.submit(3);
    let deadline = r::job(&w.chain.state, &t).unwrap().spec.deadline;
    w.idle(2);
    assert_eq!(w.leased_to(&t).len(), 1);
    assert_eq!(r::job(&w.chain.state, &t).unwrap().state, JobState::Queued);
    while w.chain.height() <= deadline {
        let hb = w.heartbeat(0);
        w.step(vec![hb]);
    }
    assert_eq!(reason(&w, &t), Some(FailReason::Unserved));
    // Every replica leased (and renewed by heartbeats) but no answer by the deadline.
    let mut w = World::with(1, |p| {
        p.market.lease_renewals_max = 1_000;
        p.market.lane_lease_blocks = vec![90, 100, 200];
    });
    let t = w.submit(1);
    let deadline = r::job(&w.chain.state, &t).unwrap().spec.deadline;
    w.idle(1);
    assert_eq!(r::job(&w.chain.state, &t).unwrap().state, JobState::Leased);
    while w.chain.height() <= deadline {
        let hb = w.heartbeat(0);
        w.step(vec![hb]);
    }
    assert_eq!(reason(&w, &t), Some(FailReason::Expired));
    assert!(FailReason::Expired
        .describe()
        .contains("every replica leased"));
}

#[test]
fn an_epochs_summary_counts_every_slash_of_the_epoch() {
    // A missed lease (not an availability slash) in epoch 1: its summary counts it, the
    // next epoch's starts from zero.
    let mut w = World::new(2);
    let t = w.submit(1);
    w.idle(1);
    let who = w.leased_to(&t)[0];
    w.idle(5);
    assert_eq!(query::slashes(&w.chain.state, None).len(), 1);
    let epoch_blocks = w.chain.params.market.epoch_blocks;
    while w.chain.height() < 2 * epoch_blocks {
        w.step(vec![]);
    }
    let e1 = query::epoch_summary(&w.chain.state, 1).unwrap();
    assert_eq!(e1.slashes, 1, "{e1:?}");
    let e2 = query::epoch_summary(&w.chain.state, 2).unwrap();
    assert_eq!(e2.slashes, 0, "{e2:?}");
    let _ = who;
}

#[test]
fn the_estimate_names_who_could_serve_a_job_and_when() {
    use tb_chain::market::matcher::Ineligible;
    let mut w = World::new(2);
    let h = w.chain.height();
    let spec = spec(2, h + 100);
    let p = &w.chain.params.market.clone();
    let e = query::estimate(&w.chain.state, p, &spec, h);
    assert_eq!(
        (e.capable.len(), e.eligible_now.len(), e.shortfall),
        (2, 2, 0)
    );
    assert_eq!(e.expected_lease_height, Some(h + 2));
    assert_eq!(e.escrow_micro, 2_000_000);
    assert!(e.price_best_micro >= e.price_worst_micro && e.price_best_micro > 0);
    // Three replicas: one short, never leased.
    let three = JobSpec {
        redundancy: 3,
        ..spec.clone()
    };
    let e = query::estimate(&w.chain.state, p, &three, h);
    assert_eq!(e.shortfall, 1);
    assert_eq!(e.expected_lease_height, None);
    // Another kernel digest: nobody could serve it, and each says why.
    let other = JobSpec {
        kernel_digest: [1; 32],
        ..spec.clone()
    };
    let e = query::estimate(&w.chain.state, p, &other, h);
    assert_eq!(e.shortfall, 2);
    assert!(e
        .ineligible
        .iter()
        .all(|(_, why)| *why == Ineligible::KernelDigest));
    // A provider whose capacity is taken is still capable, not free now; the job
    // waits for capacity.
    let t = w.submit(2);
    w.idle(1);
    assert_eq!(w.leased_to(&t).len(), 2);
    let t2 = w.submit(2);
    w.idle(1);
    assert_eq!(w.leased_to(&t2).len(), 2);
    let h = w.chain.height();
    let e = query::estimate(&w.chain.state, p, &spec, h);
    assert_eq!(e.capable.len(), 2);
    assert!(e.eligible_now.is_empty(), "{e:?}");
    assert_eq!(e.shortfall, 0);
    assert_eq!(e.expected_lease_height, None);
    assert!(e
        .ineligible
        .iter()
        .all(|(_, why)| *why == Ineligible::NoCapacity));
}

#[test]
fn publishing_a_large_result_does_not_count_against_the_latency_sla() {
    // The SLA window is one block (a quarter of the 4-block lease). A receipt two
    // blocks after its lease, whose 5 MiB result took a block to publish, is within
    // the window plus the whole blocks allowed for publishing (⌊5 MiB / 2 MiB⌋ = 2).
    let mut w = World::with(2, |p| p.market.latency_sla_bps = 2_500);
    let t = w.submit(1);
    w.idle(1);
    let who = w.leased_to(&t)[0];
    let big = tb_job::ResultObject {
        outputs: vec![tb_job::ResultTensor {
            name: "out".into(),
            shape: vec![5 << 20],
            data: blocktorch::HostData::U8(vec![7; 5 << 20]),
        }],
    };
    let bytes = big.encode().unwrap();
    let d = big.output_digest();
    let key = w.keys[who].clone();
    let trace = tb_job::trace_blob(t, key.address(), &[d]);
    let mut p = support::publish(&w.chain, key.address(), &bytes);
    p.extend(support::publish(&w.chain, key.address(), &trace));
    let txs: Vec<SignedTx> = p.into_iter().map(|x| w.tx(who, |_| x)).collect();
    let n = txs.len();
    assert_eq!(w.step(txs), n, "the result (6 chunks) and the trace");
    let receipt = w.signed_answer(who, t, d, &bytes, 1);
    let tx = w.submit_receipt(who, t, receipt);
    assert_eq!(w.step(vec![tx]), 1);
    let job = r::job(&w.chain.state, &t).unwrap();
    assert_eq!(job.receipts[0].latency_blocks, 2);
    assert!(
        job.receipts[0].payable,
        "paid: the publication time is allowed"
    );
    assert!(query::slashes(&w.chain.state, None).is_empty());
}
