//! The verification protocol end to end through real blocks, with the real executor,
//! verifier library and referee: a provider that corrupts one op output (random op,
//! random bit) is caught and slashed in every trial; a lying challenger loses its bond
//! and the honest provider keeps its stake; parties that withhold owed data lose;
//! disagreeing replicas are settled by the referee. Conservation is checked after every
//! block.
//!
//! Longer than the house's 1,200 lines on purpose: every scenario drives the one `Net`
//! below (providers, a challenger, a requester on one chain) and reads top to bottom
//! against it; the randomised trials are `verification_sim.rs`.

mod support;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::{challenge_payloads, publish, publish_answer, publish_trace, Chain, Example};
use tb_chain::devchain::provider_payloads;
use tb_chain::market::audit::{check_running_totals, supply};
use tb_chain::market::dispute::disputes;
use tb_chain::market::exec::task_id;
use tb_chain::market::query;
use tb_chain::market::records::{self as r, FailReason, JobState, Outcome, Owed, SlashReason};
use tb_chain::state::StateRead;
use tb_chain::tx::FeeSelector;
use tb_chain::tx::{
    Challenge, ReportMalformed, SealReceipt, SubmitJob, SubmitReceipt, SupplyEvidence,
};
use tb_chain::{ChainParams, SignedTx, TxPayload};
use tb_primitives::{Address, Id, SecretKey, MICRO_PER_TOKEN};

fn params() -> ChainParams {
    let mut p = ChainParams::devnet();
    let m = &mut p.market;
    m.epoch_blocks = 1_000;
    m.challenge_window_blocks = 4;
    m.evidence_deadline_blocks = 4;
    m.reveal_blocks = 3;
    m.lane_lease_blocks = vec![6, 12, 24];
    m.retry_budget = 0;
    m.min_stake_micro = MICRO_PER_TOKEN;
    m.flops_per_unit = 1_000_000;
    m.availability_floor_bps = 0;
    m.challenge_bond_micro = 10 * MICRO_PER_TOKEN;
    m.validate().expect("test parameters are in range");
    p
}

/// Providers 0..n (registered, staked 100 tokens), a challenger and a requester.
struct Net {
    chain: Chain,
    providers: Vec<SecretKey>,
    challenger: SecretKey,
    requester: SecretKey,
}

/// `who`'s `SubmitReceipt` of `receipt` for task `t` (the nonce is the signer's to set).
fn receipt_payload(who: Address, t: Id, receipt: tb_job::SignedReceipt) -> TxPayload {
    TxPayload::SubmitReceipt(Box::new(SubmitReceipt {
        from: who,
        task_id: t,
        receipt,
        fee: 10,
        fee_selector: FeeSelector::Industrial.into(),
        nonce: 0,
    }))
}

/// `k`'s `SealReceipt` of `receipt` for task `t`, declaring a result object of
/// `result_bytes`.
fn seal_payload(
    k: &SecretKey,
    t: Id,
    receipt: &tb_job::SignedReceipt,
    result_bytes: u64,
) -> TxPayload {
    TxPayload::SealReceipt(SealReceipt {
        from: k.address(),
        task_id: t,
        seal: receipt.seal(),
        result_bytes,
        fee: 10,
        fee_selector: FeeSelector::Industrial.into(),
        nonce: 0,
    })
}

impl Net {
    fn new(n: usize) -> Net {
        let providers: Vec<SecretKey> = (0..n)
            .map(|i| SecretKey::dev(&format!("prov-{i}")))
            .collect();
        let challenger = SecretKey::dev("challenger");
        let requester = SecretKey::dev("requester");
        let funded: Vec<(Address, u64)> = providers
            .iter()
            .chain([&challenger, &requester])
            .map(|k| (k.address(), 10_000 * MICRO_PER_TOKEN))
            .collect();
        let mut net = Net {
            chain: Chain::new(params(), &funded),
            providers,
            challenger,
            requester,
        };
        let mut txs = Vec::new();
        for k in net.providers.clone() {
            txs.extend(
                net.chain
                    .signed(&k, provider_payloads(k.address(), 4, 100 * MICRO_PER_TOKEN)),
            );
        }
        assert_eq!(net.step(&txs), txs.len());
        net
    }

    /// One block; returns how many of `txs` it included. Checks conservation.
    fn step(&mut self, txs: &[SignedTx]) -> usize {
        let n = self.chain.step(txs).len();
        assert_eq!(
            supply(&self.chain.state).total(),
            self.chain.minted,
            "conservation at height {}",
            self.chain.height()
        );
        check_running_totals(&self.chain.state).unwrap();
        n
    }

    fn idle(&mut self, blocks: u64) {
        for _ in 0..blocks {
            self.step(&[]);
        }
    }

    /// The requester publishes the job blob and submits the job; returns its task id.
    fn submit(&mut self, ex: &Example, redundancy: u32) -> Id {
        let h = self.chain.height() + 1;
        self.submit_spec(&ex.blob, ex.spec(redundancy, h + 100))
    }

    /// The requester publishes `blob` and submits `spec` (which may not match it).
    fn submit_spec(&mut self, blob: &[u8], spec: tb_chain::tx::JobSpec) -> Id {
        let h = self.chain.height() + 1;
        let mut payloads = publish(&self.chain, self.requester.address(), blob);
        payloads.push(TxPayload::SubmitJob(SubmitJob {
            from: self.requester.address(),
            spec,
            fee: 10,
            fee_selector: FeeSelector::Industrial.into(),
            nonce: 0,
        }));
        let txs = self.chain.signed(&self.requester.clone(), payloads);
        let t = task_id(self.chain.params.chain_id, h, txs.last().unwrap());
        assert_eq!(self.step(&txs), txs.len());
        self.idle(1);
        t
    }

    fn leased(&self, t: &Id) -> Vec<usize> {
        let job = r::job(&self.chain.state, t).unwrap();
        job.leases
            .iter()
            .map(|l| {
                self.providers
                    .iter()
                    .position(|k| k.address() == l.provider)
                    .unwrap()
            })
            .collect()
    }

    /// Provider `i` publishes `leaves` as its trace and its result object, and submits
    /// its receipt (k = 1).
    fn deliver(&mut self, i: usize, ex: &Example, t: Id, leaves: &[[u8; 32]]) -> usize {
        let k = self.providers[i].clone();
        let receipt = ex.receipt(&k, &self.chain, t, leaves);
        let mut payloads = publish_answer(&self.chain, k.address(), ex, t, leaves);
        payloads.push(receipt_payload(k.address(), t, receipt));
        let txs = self.chain.signed(&k, payloads);
        self.step(&txs)
    }

    /// A verifier's challenge of the job's standing trace `theirs`: it replays, finds
    /// the first differing op (or is told `op` when lying), publishes the job blob and
    /// the evidence bundle (unless `withhold`), and posts the bonded challenge.
    fn challenge(
        &mut self,
        ex: &Example,
        t: Id,
        theirs: &[[u8; 32]],
        op: usize,
        withhold: bool,
    ) -> (usize, u64) {
        let c = tb_job::build_challenge(&ex.job, t, theirs, op).expect("challenge");
        let me = self.challenger.address();
        let payloads = challenge_payloads(&self.chain, me, ex, t, &c, withhold);
        let fees = payloads.iter().map(|p| p.fee()).sum();
        let txs = self.chain.signed(&self.challenger.clone(), payloads);
        (self.step(&txs), fees)
    }

    /// A replica's seal of `leaves` (nothing is published before the reveals).
    fn seal(
        &self,
        k: &SecretKey,
        ex: &Example,
        t: Id,
        leaves: &[[u8; 32]],
    ) -> (Vec<SignedTx>, tb_job::SignedReceipt) {
        let receipt = ex.receipt(k, &self.chain, t, leaves);
        let result_bytes = ex.try_result_for(leaves).map_or(0, |r| r.len() as u64);
        let txs = self
            .chain
            .signed(k, vec![seal_payload(k, t, &receipt, result_bytes)]);
        (txs, receipt)
    }

    /// A replica's reveal: its trace and result object, then the receipt it sealed.
    fn reveal(
        &self,
        k: &SecretKey,
        ex: &Example,
        t: Id,
        leaves: &[[u8; 32]],
        receipt: tb_job::SignedReceipt,
    ) -> Vec<SignedTx> {
        let mut payloads = publish_answer(&self.chain, k.address(), ex, t, leaves);
        payloads.push(receipt_payload(k.address(), t, receipt));
        self.chain.signed(k, payloads)
    }

    fn slashes_of(&self, i: usize) -> Vec<SlashReason> {
        query::slashes(&self.chain.state, Some(&self.providers[i].address()))
            .into_iter()
            .map(|s| s.reason)
            .collect()
    }

    fn industrial(&self, a: &Address) -> u64 {
        self.chain.state.account(a).industrial
    }
}

#[test]
fn a_corrupting_provider_is_caught_and_slashed_in_every_trial() {
    let examples: Vec<Example> = ["mlp", "transformer", "matmul-chain", "train-step"]
        .into_iter()
        .map(Example::new)
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(0x7b_10c4);
    let trials = 8;
    for trial in 0..trials {
        let ex = &examples[trial % examples.len()];
        // A random op and bit whose flip changes the op's digest.
        let (op, theirs) = loop {
            let op = rng.gen_range(0..ex.honest.len());
            let bit = rng.gen_range(0..usize::MAX);
            if let Some(l) = ex.corrupted(op, bit) {
                break (op, l);
            }
        };
        let mut net = Net::new(2);
        let t = net.submit(ex, 1);
        let liar = net.leased(&t)[0];
        assert_eq!(
            net.deliver(liar, ex, t, &theirs),
            3,
            "trace, result and receipt"
        );
        let job = r::job(&net.chain.state, &t).unwrap();
        assert_eq!(
            job.state,
            JobState::Proven,
            "trial {trial}: the lie passes the receipt checks"
        );
        // A verifier replays and compares.
        let receipt = ex.receipt(&net.providers[liar], &net.chain, t, &theirs);
        let found = match tb_job::compare(&ex.shape, &ex.honest, &receipt.receipt, &theirs) {
            tb_job::Verdict::Differs { op, .. } => op,
            v => panic!("trial {trial}: {v:?}"),
        };
        assert_eq!(
            found, op,
            "trial {trial}: the first differing op is the corrupted one"
        );
        let stake_before = r::provider(&net.chain.state, &net.providers[liar].address())
            .unwrap()
            .stake;
        let c = net.challenger.address();
        let bal = net.industrial(&c);
        let (included, fees) = net.challenge(ex, t, &theirs, op, false);
        assert!(included >= 2);
        let d = disputes(&net.chain.state, &t);
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].ruling,
            Some(Outcome::Referee(ex.honest[op])),
            "trial {trial} ({} op {op}): the referee gives the honest digest",
            ex.name
        );
        assert_eq!(
            net.slashes_of(liar),
            vec![SlashReason::LostDispute],
            "trial {trial}"
        );
        let pr = r::provider(&net.chain.state, &net.providers[liar].address()).unwrap();
        let slashed = stake_before - pr.stake;
        assert_eq!(slashed, stake_before / 2, "lost_dispute_bps 5000");
        // The challenger got its bond back and half the slash, less what it paid in
        // fees for its transactions.
        assert_eq!(
            net.industrial(&c),
            bal - fees + slashed * 2_000 / 10_000,
            "trial {trial}: challenge_reward_bps 2000"
        );
        // The job is not verified on a convicted receipt: with no retries left it fails
        // and the requester is refunded.
        let job = r::job(&net.chain.state, &t).unwrap();
        assert!(job.receipts.is_empty() || job.receipts.iter().all(|x| x.refuted));
        assert_eq!(job.state, JobState::Failed, "trial {trial}");
        assert_eq!(job.escrow, 0);
        assert_eq!(
            job.failure.map(|f| f.reason),
            Some(FailReason::Refuted),
            "trial {trial}: the failure names why"
        );
    }
}

#[test]
fn a_lying_challenger_loses_its_bond_and_the_honest_provider_keeps_its_stake() {
    let ex = Example::new("mlp");
    let mut net = Net::new(1);
    let t = net.submit(&ex, 1);
    assert_eq!(net.deliver(0, &ex, t, &ex.honest), 3);
    let p0 = net.providers[0].address();
    let before = net.industrial(&p0);
    let stake = r::provider(&net.chain.state, &p0).unwrap().stake;
    // The liar disputes the last op with honest evidence (all it can prove).
    let op = ex.honest.len() - 1;
    assert!(net.challenge(&ex, t, &ex.honest, op, false).0 >= 2);
    let d = disputes(&net.chain.state, &t);
    assert_eq!(d[0].ruling, Some(Outcome::Referee(ex.honest[op])));
    assert!(
        net.slashes_of(0).is_empty(),
        "the honest provider is not slashed"
    );
    assert_eq!(r::provider(&net.chain.state, &p0).unwrap().stake, stake);
    let bond = net.chain.params.market.challenge_bond_micro;
    assert_eq!(
        net.industrial(&p0),
        before + bond * 2_000 / 10_000,
        "challenge_reward_bps of the lost bond goes to the accused provider"
    );
    assert_eq!(r::fund(&net.chain.state).bonds, 0);
    // The job goes on to be verified after a fresh window.
    net.idle(net.chain.params.market.challenge_window_blocks + 1);
    assert_eq!(
        r::job(&net.chain.state, &t).unwrap().state,
        JobState::Verified
    );
}

#[test]
fn a_challenger_withholding_its_evidence_loses_at_the_deadline() {
    let ex = Example::new("train-step");
    let mut net = Net::new(1);
    let t = net.submit(&ex, 1);
    let (op, theirs) = (0..ex.honest.len())
        .rev()
        .find_map(|op| ex.corrupted(op, 3).map(|l| (op, l)))
        .unwrap();
    assert_eq!(net.deliver(0, &ex, t, &theirs), 3);
    let c = net.challenger.address();
    let before = net.industrial(&c);
    // Even a true accusation is lost if its evidence never appears.
    assert!(net.challenge(&ex, t, &theirs, op, true).0 >= 1);
    let deadline = disputes(&net.chain.state, &t)[0].deadline;
    while net.chain.height() < deadline - 1 {
        net.idle(1);
        assert!(disputes(&net.chain.state, &t)[0].ruling.is_none());
    }
    net.idle(1);
    let d = disputes(&net.chain.state, &t);
    assert_eq!(d[0].ruling, Some(Outcome::Withheld));
    assert!(net.slashes_of(0).is_empty());
    let bond = net.chain.params.market.challenge_bond_micro;
    assert!(net.industrial(&c) < before - bond + 1, "the bond is gone");
}

#[test]
fn a_bad_bundle_loses_for_its_challenger() {
    let ex = Example::new("mlp");
    let mut net = Net::new(1);
    let t = net.submit(&ex, 1);
    assert_eq!(net.deliver(0, &ex, t, &ex.honest), 3);
    // A challenge naming a bundle of the wrong task (published, so available, but bad).
    let op = ex.honest.len() - 1;
    let c = tb_job::build_challenge(&ex.job, Id([9; 32]), &ex.honest, op).unwrap();
    let me = net.challenger.address();
    let payloads = challenge_payloads(&net.chain, me, &ex, t, &c, false);
    let txs = net.chain.signed(&net.challenger.clone(), payloads);
    assert_eq!(net.step(&txs), txs.len());
    assert_eq!(
        disputes(&net.chain.state, &t)[0].ruling,
        Some(Outcome::Withheld)
    );
    assert!(net.slashes_of(0).is_empty());
}

#[test]
fn challenges_are_refused_outside_the_window_with_bad_proofs_or_small_bonds() {
    let ex = Example::new("train-step");
    let mut net = Net::new(1);
    let t = net.submit(&ex, 1);
    assert_eq!(net.deliver(0, &ex, t, &ex.honest), 3);
    let me = net.challenger.address();
    let c = tb_job::build_challenge(&ex.job, t, &ex.honest, 2).unwrap();
    let base = Challenge {
        from: me,
        task_id: t,
        op: c.op,
        leaf: c.leaf,
        proof: c.proof.clone(),
        bundle: [0; 32],
        bundle_bytes: 1_000,
        bond: net.chain.params.market.challenge_bond_micro,
        fee: 10,
        fee_selector: FeeSelector::Industrial.into(),
        nonce: 0,
    };
    let try_one = |net: &mut Net, c: Challenge| {
        let txs = net.chain.signed(
            &net.challenger.clone(),
            vec![TxPayload::Challenge(Box::new(c))],
        );
        net.step(&txs)
    };
    let mut bad = base.clone();
    bad.leaf[0] ^= 1;
    assert_eq!(try_one(&mut net, bad), 0, "a leaf not in the trace");
    let mut bad = base.clone();
    bad.op += 1;
    assert_eq!(try_one(&mut net, bad), 0, "a proof of another op");
    let mut bad = base.clone();
    bad.bond -= 1;
    assert_eq!(try_one(&mut net, bad), 0, "a bond below the minimum");
    let mut bad = base.clone();
    bad.op = ex.shape.n_ops;
    assert_eq!(try_one(&mut net, bad), 0, "an op past the program");
    net.idle(net.chain.params.market.challenge_window_blocks + 1);
    assert_eq!(
        r::job(&net.chain.state, &t).unwrap().state,
        JobState::Verified
    );
    assert_eq!(try_one(&mut net, base), 0, "after the window");
}

#[test]
fn receipts_whose_trace_is_missing_or_inconsistent_are_refused() {
    let ex = Example::new("mlp");
    let mut net = Net::new(1);
    let t = net.submit(&ex, 1);
    let k = net.providers[0].clone();
    let receipt = ex.receipt(&k, &net.chain, t, &ex.honest);
    let submit = |net: &Net, receipt: tb_job::SignedReceipt| {
        net.chain
            .signed(&k, vec![receipt_payload(k.address(), t, receipt)])
    };
    let before = tb_chain::telemetry::proof_verification_latency().count;
    // No trace published.
    let txs = submit(&net, receipt.clone());
    assert_eq!(net.step(&txs), 0);
    // A trace with one leaf changed under the receipt's root.
    let mut other = ex.honest.clone();
    other[1][0] ^= 1;
    let mut r2 = receipt.receipt.clone();
    r2.trace_sha256 = tb_job::trace_sha256(t, k.address(), &other);
    let r2 = r2.sign(&k, net.chain.params.chain_id).unwrap();
    let mut txs = net
        .chain
        .signed(&k, publish_trace(&net.chain, k.address(), t, &other));
    assert_eq!(net.step(&txs), 1);
    txs = submit(&net, r2);
    assert_eq!(net.step(&txs), 0, "the root does not match the trace");
    // A receipt declaring another op count than the job's.
    let mut short = ex.honest.clone();
    short.pop();
    let mut r3 = receipt.receipt.clone();
    r3.n_ops -= 1;
    r3.trace_root = tb_job::trace_root(&short);
    r3.trace_sha256 = tb_job::trace_sha256(t, k.address(), &short);
    let r3 = r3.sign(&k, net.chain.params.chain_id).unwrap();
    txs = net
        .chain
        .signed(&k, publish_trace(&net.chain, k.address(), t, &short));
    net.step(&txs);
    txs = submit(&net, r3);
    assert_eq!(net.step(&txs), 0, "n_ops is not the job's");
    // The honest one.
    assert_eq!(net.deliver(0, &ex, t, &ex.honest), 3);
    assert_eq!(
        r::job(&net.chain.state, &t).unwrap().state,
        JobState::Proven
    );
    assert!(
        tb_chain::telemetry::proof_verification_latency().count > before,
        "receipt checks are timed"
    );
}

/// A redundant job: the replicas seal, reveal, and disagree; an honest replica supplies
/// the evidence; the referee convicts the minority and the majority is paid.
#[test]
fn disagreeing_replicas_are_settled_by_the_referee() {
    let ex = Example::new("transformer");
    let mut net = Net::new(3);
    let t = net.submit(&ex, 3);
    let leased = net.leased(&t);
    assert_eq!(leased.len(), 3);
    let liar = leased[1];
    let op = ex.honest.len() / 2;
    let theirs = (0..64)
        .find_map(|b| ex.corrupted(op, b))
        .expect("a flip that changes the digest");
    let mut reveals = Vec::new();
    let mut seals = Vec::new();
    for &i in &leased {
        let k = net.providers[i].clone();
        let leaves = if i == liar { &theirs } else { &ex.honest };
        let (txs, receipt) = net.seal(&k, &ex, t, leaves);
        seals.extend(txs);
        reveals.push((k, leaves.clone(), receipt));
    }
    assert_eq!(net.step(&seals), seals.len());
    assert_eq!(
        r::job(&net.chain.state, &t).unwrap().state,
        JobState::Revealing
    );
    let txs: Vec<SignedTx> = reveals
        .into_iter()
        .flat_map(|(k, leaves, receipt)| net.reveal(&k, &ex, t, &leaves, receipt))
        .collect();
    assert_eq!(
        net.step(&txs),
        9,
        "three traces, three result objects (one a no-op) and three receipts"
    );
    let job = r::job(&net.chain.state, &t).unwrap();
    assert_eq!(job.state, JobState::Disputed);
    let d = disputes(&net.chain.state, &t);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].op as usize, op, "the first differing op");
    assert_eq!(d[0].owed, Owed::Parties);
    assert_eq!(d[0].accused.providers, vec![net.providers[liar].address()]);
    // An honest replica builds and supplies the evidence.
    let honest = net.providers[leased[0]].clone();
    let c = tb_job::build_challenge(&ex.job, t, &ex.honest, op).unwrap();
    let bundle = c.bundle.encode().unwrap();
    let mut payloads = publish(&net.chain, honest.address(), &bundle);
    payloads.push(TxPayload::SupplyEvidence(SupplyEvidence {
        from: honest.address(),
        task_id: t,
        dispute: 0,
        bundle: tb_primitives::sha256_digest(&bundle).0,
        bundle_bytes: bundle.len() as u64,
        fee: 10,
        fee_selector: FeeSelector::Industrial.into(),
        nonce: 0,
    }));
    // The bundle is available once its publication applies, so it can be named in the
    // same block; the job blob is already published; the referee rules at the block's
    // end.
    let txs = net.chain.signed(&honest, payloads);
    assert_eq!(net.step(&txs), txs.len());
    let d = disputes(&net.chain.state, &t);
    assert_eq!(d[0].ruling, Some(Outcome::Referee(ex.honest[op])));
    assert_eq!(net.slashes_of(liar), vec![SlashReason::LostDispute]);
    for &i in &leased {
        if i != liar {
            assert!(net.slashes_of(i).is_empty());
        }
    }
    let job = r::job(&net.chain.state, &t).unwrap();
    assert_eq!(job.state, JobState::Proven, "the majority stands");
    net.idle(net.chain.params.market.challenge_window_blocks + 1);
    let job = r::job(&net.chain.state, &t).unwrap();
    assert_eq!(job.state, JobState::Verified);
    assert_eq!(
        job.payouts_pending, 2,
        "only the two honest replicas are paid"
    );
}

#[test]
fn withheld_data_loses_a_silent_replica_and_an_undefended_dispute() {
    let ex = Example::new("train-step");
    // (a) A lazy replica: it seals a guess (it computed nothing), then, once the
    //     honest replica has revealed, tries to reveal a copy of that answer as its
    //     own. The copy is not what it sealed, so it is refused; at the reveal deadline
    //     it has withheld its answer.
    let mut net = Net::new(2);
    let t = net.submit(&ex, 2);
    let leased = net.leased(&t);
    let honest_key = net.providers[leased[0]].clone();
    let lazy = net.providers[leased[1]].clone();
    let receipt = ex.receipt(&honest_key, &net.chain, t, &ex.honest);
    let guess: Vec<[u8; 32]> = (0..ex.honest.len()).map(|i| [i as u8; 32]).collect();
    let (mut seals, _) = net.seal(&honest_key, &ex, t, &ex.honest);
    let (lazy_seal, _) = net.seal(&lazy, &ex, t, &guess);
    seals.extend(lazy_seal);
    assert_eq!(net.step(&seals), seals.len());
    let txs = net.reveal(&honest_key, &ex, t, &ex.honest, receipt.clone());
    assert_eq!(net.step(&txs), 3);
    let mut copy = receipt.receipt.clone();
    copy.provider = lazy.address();
    let copy = copy.sign(&lazy, net.chain.params.chain_id).unwrap();
    let txs = net.chain.signed(
        &lazy,
        vec![TxPayload::SubmitReceipt(Box::new(SubmitReceipt {
            from: lazy.address(),
            task_id: t,
            receipt: copy,
            fee: 10,
            fee_selector: FeeSelector::Industrial.into(),
            nonce: 0,
        }))],
    );
    assert_eq!(
        net.step(&txs),
        0,
        "a copy is not what the lazy replica sealed"
    );
    net.idle(net.chain.params.market.reveal_blocks);
    assert_eq!(net.slashes_of(leased[1]), vec![SlashReason::WithheldData]);
    assert!(net.slashes_of(leased[0]).is_empty());
    assert_eq!(
        r::job(&net.chain.state, &t).unwrap().state,
        JobState::Proven,
        "the revealed answer goes on alone"
    );

    // (b) Two replicas disagree and neither supplies evidence: both lose.
    let mut net = Net::new(2);
    let t = net.submit(&ex, 2);
    let leased = net.leased(&t);
    let op = 1;
    let theirs = (0..64).find_map(|b| ex.corrupted(op, b)).unwrap();
    let mut seals = Vec::new();
    let mut reveals = Vec::new();
    for (n, &i) in leased.iter().enumerate() {
        let k = net.providers[i].clone();
        let leaves = if n == 0 { &ex.honest } else { &theirs };
        let (txs, receipt) = net.seal(&k, &ex, t, leaves);
        seals.extend(txs);
        reveals.push((k, leaves.clone(), receipt));
    }
    assert_eq!(net.step(&seals), seals.len());
    let txs: Vec<SignedTx> = reveals
        .into_iter()
        .flat_map(|(k, leaves, receipt)| net.reveal(&k, &ex, t, &leaves, receipt))
        .collect();
    assert_eq!(net.step(&txs), 6);
    assert_eq!(disputes(&net.chain.state, &t)[0].op, op as u32);
    net.idle(net.chain.params.market.evidence_deadline_blocks + 1);
    assert_eq!(
        disputes(&net.chain.state, &t)[0].ruling,
        Some(Outcome::Withheld)
    );
    for &i in &leased {
        assert_eq!(net.slashes_of(i), vec![SlashReason::WithheldData]);
    }
    let job = r::job(&net.chain.state, &t).unwrap();
    assert_eq!((job.state, job.escrow), (JobState::Failed, 0), "refunded");
    assert_eq!(job.failure.map(|f| f.reason), Some(FailReason::Refuted));
}

#[test]
fn a_blob_that_is_not_its_spec_voids_the_job_without_slashing_anyone() {
    let ex = Example::new("mlp");
    // (a) The spec names a blob that is not a job at all; a provider answers anyway and
    //     is challenged: the referee finds no valid job, the job is void, nobody is
    //     slashed and the challenger's bond comes back.
    let mut net = Net::new(1);
    let garbage = vec![7u8; 5_000];
    let mut spec = ex.spec(1, net.chain.height() + 101);
    spec.blob_sha256 = tb_primitives::sha256_digest(&garbage).0;
    spec.blob_bytes = garbage.len() as u64;
    let t = net.submit_spec(&garbage, spec);
    assert_eq!(net.deliver(0, &ex, t, &ex.honest), 3);
    let c = net.challenger.address();
    let before = net.industrial(&c);
    let (_, fees) = net.challenge(&ex, t, &ex.honest, 3, false);
    assert_eq!(
        disputes(&net.chain.state, &t)[0].ruling,
        Some(Outcome::VoidJob)
    );
    assert!(net.slashes_of(0).is_empty());
    assert_eq!(net.industrial(&c), before - fees, "the bond came back");
    let job = r::job(&net.chain.state, &t).unwrap();
    assert_eq!((job.state, job.escrow), (JobState::Failed, 0));
    assert_eq!(job.failure.map(|f| f.reason), Some(FailReason::Void));

    // (b) The spec declares another shape than its blob's: the leased provider reports
    //     it and walks away unslashed; a report of a matching job is refused.
    let mut net = Net::new(1);
    let mut spec = ex.spec(1, net.chain.height() + 101);
    spec.outputs = vec![0];
    let t = net.submit_spec(&ex.blob, spec);
    let k = net.providers[0].clone();
    let report = |net: &Net, t: Id| {
        net.chain.signed(
            &k,
            vec![TxPayload::ReportMalformed(ReportMalformed {
                from: k.address(),
                task_id: t,
                fee: 10,
                fee_selector: FeeSelector::Industrial.into(),
                nonce: 0,
            })],
        )
    };
    let txs = report(&net, t);
    assert_eq!(net.step(&txs), 1);
    let job = r::job(&net.chain.state, &t).unwrap();
    assert_eq!((job.state, job.escrow), (JobState::Failed, 0));
    assert_eq!(job.failure.map(|f| f.reason), Some(FailReason::Malformed));
    net.idle(10);
    assert!(net.slashes_of(0).is_empty(), "no missed lease either");
    let good = net.submit(&ex, 1);
    let txs = report(&net, good);
    assert_eq!(net.step(&txs), 0, "the blob matches its spec");
}

#[test]
fn an_accused_provider_challenging_itself_earns_nothing() {
    let ex = Example::new("train-step");
    let mut net = Net::new(1);
    let t = net.submit(&ex, 1);
    let op = 2;
    let theirs = (0..64).find_map(|b| ex.corrupted(op, b)).unwrap();
    assert_eq!(net.deliver(0, &ex, t, &theirs), 3);
    // The cheater front-runs any verifier with a true challenge of itself.
    let k = net.providers[0].clone();
    let c = tb_job::build_challenge(&ex.job, t, &theirs, op).unwrap();
    let payloads = challenge_payloads(&net.chain, k.address(), &ex, t, &c, false);
    let fees: u64 = payloads.iter().map(|p| p.fee()).sum();
    let before = net.industrial(&k.address());
    let txs = net.chain.signed(&k, payloads);
    assert_eq!(net.step(&txs), txs.len());
    assert_eq!(net.slashes_of(0), vec![SlashReason::LostDispute]);
    assert_eq!(
        net.industrial(&k.address()),
        before - fees,
        "the bond back, no share of its own slash"
    );
}

#[test]
fn a_trace_published_early_by_anyone_does_not_hurt_its_provider() {
    // A trace is data bound to its task and provider: whoever posts it, and whenever,
    // the provider's reveal names it and stands. (What keeps a lazy replica from copying
    // is its seal, made before any reveal.)
    let ex = Example::new("train-step");
    let mut net = Net::new(2);
    let t = net.submit(&ex, 2);
    let leased = net.leased(&t);
    let (a, b) = (
        net.providers[leased[0]].clone(),
        net.providers[leased[1]].clone(),
    );
    // Someone else posts a's honest trace before anyone has sealed.
    let stranger = net.challenger.clone();
    let early = net.chain.signed(
        &stranger,
        publish(
            &net.chain,
            stranger.address(),
            &tb_job::trace_blob(t, a.address(), &ex.honest),
        ),
    );
    assert_eq!(net.step(&early), 1);
    let (mut seals, ra) = net.seal(&a, &ex, t, &ex.honest);
    let (sb, rb) = net.seal(&b, &ex, t, &ex.honest);
    seals.extend(sb);
    assert_eq!(net.step(&seals), 2);
    let mut txs = net.reveal(&a, &ex, t, &ex.honest, ra);
    assert_eq!(
        txs.len(),
        2,
        "a's trace is already available: its result and receipt"
    );
    txs.extend(net.reveal(&b, &ex, t, &ex.honest, rb));
    assert_eq!(
        net.step(&txs),
        5,
        "a: result, receipt; b: trace, result, receipt"
    );
    assert_eq!(
        r::job(&net.chain.state, &t).unwrap().state,
        JobState::Proven
    );
    assert!(net.slashes_of(leased[0]).is_empty() && net.slashes_of(leased[1]).is_empty());
}

#[test]
fn a_present_provider_that_cannot_deliver_is_not_slashed() {
    // No answer ever comes (as for a job that fails at run time): a provider that
    // heartbeats through its lease loses the lease and the pay, not its stake; an
    // absent one is slashed as before.
    let ex = Example::new("train-step");
    for present in [true, false] {
        let mut net = Net::new(1);
        let t = net.submit(&ex, 1);
        let k = net.providers[0].clone();
        for _ in 0..40 {
            let txs = if present {
                net.chain.signed(
                    &k,
                    vec![TxPayload::Heartbeat(tb_chain::tx::Heartbeat {
                        from: k.address(),
                        fee: 10,
                        fee_selector: FeeSelector::Industrial.into(),
                        nonce: 0,
                    })],
                )
            } else {
                vec![]
            };
            net.step(&txs);
            if r::job(&net.chain.state, &t).unwrap().state == JobState::Failed {
                break;
            }
        }
        let job = r::job(&net.chain.state, &t).unwrap();
        assert_eq!((job.state, job.escrow), (JobState::Failed, 0));
        assert_eq!(
            job.failure.map(|f| f.reason),
            Some(FailReason::LeasesLapsed)
        );
        if present {
            assert!(net.slashes_of(0).is_empty(), "present: not slashed");
        } else {
            assert_eq!(net.slashes_of(0), vec![SlashReason::MissedLease]);
        }
    }
}

#[test]
fn evidence_waiting_for_the_referee_is_never_ruled_withheld() {
    // One adjudication per block and deadlines one block out: three challenges with
    // their evidence in the same block are all ruled by the referee, in turn.
    let ex = Example::new("train-step");
    let mut net = Net::new(3);
    net.chain.params.market.adjudications_per_block_max = 1;
    net.chain.params.market.evidence_deadline_blocks = 1;
    net.chain.params.market.evidence_bytes_per_block = 1 << 30;
    net.chain.params.market.challenge_window_blocks = 20;
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let t = net.submit(&ex, 1);
        let i = net.leased(&t)[0];
        let theirs = (0..64).find_map(|b| ex.corrupted(1, b)).unwrap();
        // The first delivery publishes the (shared) result object; the others find it.
        let want = if jobs.is_empty() { 3 } else { 2 };
        assert_eq!(net.deliver(i, &ex, t, &theirs), want);
        jobs.push((t, i, theirs));
    }
    let me = net.challenger.address();
    let mut payloads = Vec::new();
    for (t, _, theirs) in &jobs {
        let c = tb_job::build_challenge(&ex.job, *t, theirs, 1).unwrap();
        payloads.extend(challenge_payloads(&net.chain, me, &ex, *t, &c, false));
    }
    let txs = net.chain.signed(&net.challenger.clone(), payloads);
    assert_eq!(net.step(&txs), txs.len());
    let ruled_now = jobs
        .iter()
        .filter(|(t, _, _)| disputes(&net.chain.state, t)[0].ruling.is_some())
        .count();
    assert_eq!(ruled_now, 1, "one adjudication per block");
    net.idle(3);
    for (t, i, _) in &jobs {
        let d = disputes(&net.chain.state, t);
        assert_eq!(d[0].ruling, Some(Outcome::Referee(ex.honest[1])));
        // One slash per job the provider answered (the matcher may give one provider
        // two of the three).
        let answered = jobs.iter().filter(|(_, j, _)| j == i).count();
        assert_eq!(net.slashes_of(*i), vec![SlashReason::LostDispute; answered]);
    }
}

#[test]
fn a_party_names_one_bundle_ever() {
    // A cheating party cannot keep a dispute busy by naming junk again and again: its
    // one bundle is examined, dropped as bad, and it may not name another; the honest
    // party's bundle then settles the dispute.
    let ex = Example::new("train-step");
    let mut net = Net::new(2);
    let t = net.submit(&ex, 2);
    let leased = net.leased(&t);
    let op = 1;
    let theirs = (0..64).find_map(|b| ex.corrupted(op, b)).unwrap();
    let (honest, cheat) = (
        net.providers[leased[0]].clone(),
        net.providers[leased[1]].clone(),
    );
    let (mut seals, rh) = net.seal(&honest, &ex, t, &ex.honest);
    let (sc, rc) = net.seal(&cheat, &ex, t, &theirs);
    seals.extend(sc);
    assert_eq!(net.step(&seals), 2);
    let mut txs = net.reveal(&honest, &ex, t, &ex.honest, rh);
    txs.extend(net.reveal(&cheat, &ex, t, &theirs, rc));
    assert_eq!(net.step(&txs), 6);
    let supply = |net: &Net, k: &SecretKey, bytes: &[u8]| {
        let mut p = publish(&net.chain, k.address(), bytes);
        p.push(TxPayload::SupplyEvidence(SupplyEvidence {
            from: k.address(),
            task_id: t,
            dispute: 0,
            bundle: tb_primitives::sha256_digest(bytes).0,
            bundle_bytes: bytes.len() as u64,
            fee: 10,
            fee_selector: FeeSelector::Industrial.into(),
            nonce: 0,
        }));
        net.chain.signed(k, p)
    };
    let txs = supply(&net, &cheat, b"junk, not a bundle");
    assert_eq!(net.step(&txs), 2);
    let d = &disputes(&net.chain.state, &t)[0];
    assert!(
        d.ruling.is_none() && d.bundles.is_empty(),
        "the junk was dropped"
    );
    let txs = supply(&net, &cheat, b"more junk");
    assert_eq!(
        net.step(&txs),
        1,
        "published, but not named: one bundle per party"
    );
    let c = tb_job::build_challenge(&ex.job, t, &ex.honest, op).unwrap();
    let txs = supply(&net, &honest, &c.bundle.encode().unwrap());
    assert_eq!(net.step(&txs), 2);
    assert_eq!(
        disputes(&net.chain.state, &t)[0].ruling,
        Some(Outcome::Referee(ex.honest[op]))
    );
    assert_eq!(net.slashes_of(leased[1]), vec![SlashReason::LostDispute]);
    assert!(net.slashes_of(leased[0]).is_empty());
}

#[test]
fn a_copied_challenge_shares_the_reward_instead_of_taking_it() {
    // A copier sees a verifier's challenge and posts the same claim first (a lower
    // index, examined first). The claim convicts; the reward is split between every
    // challenge that made it, and the later one is moot with its bond back.
    let ex = Example::new("train-step");
    let mut net = Net::new(1);
    let t = net.submit(&ex, 1);
    let op = 2;
    let theirs = (0..64).find_map(|b| ex.corrupted(op, b)).unwrap();
    assert_eq!(net.deliver(0, &ex, t, &theirs), 3);
    let c = tb_job::build_challenge(&ex.job, t, &theirs, op).unwrap();
    let (copier, verifier) = (net.requester.clone(), net.challenger.clone());
    let mut txs = net.chain.signed(
        &copier,
        challenge_payloads(&net.chain, copier.address(), &ex, t, &c, true),
    );
    txs.extend(net.chain.signed(
        &verifier,
        challenge_payloads(&net.chain, verifier.address(), &ex, t, &c, false),
    ));
    let fees: Vec<u64> = [&copier, &verifier]
        .iter()
        .map(|k| {
            txs.iter()
                .filter(|x| x.payload.from() == k.address())
                .map(|x| x.payload.fee())
                .sum()
        })
        .collect();
    let before = [
        net.industrial(&copier.address()),
        net.industrial(&verifier.address()),
    ];
    let stake = r::provider(&net.chain.state, &net.providers[0].address())
        .unwrap()
        .stake;
    assert_eq!(net.step(&txs), txs.len());
    let d = disputes(&net.chain.state, &t);
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].ruling, Some(Outcome::Referee(ex.honest[op])));
    assert_eq!(d[1].ruling, Some(Outcome::Moot));
    let reward = (stake / 2) * 2_000 / 10_000;
    // (The copier here is also the requester: the failed job's escrow comes back.)
    let escrow = ex.spec(1, 0).max_price;
    assert_eq!(
        net.industrial(&copier.address()),
        before[0] - fees[0] + reward - reward / 2 + escrow
    );
    assert_eq!(
        net.industrial(&verifier.address()),
        before[1] - fees[1] + reward / 2
    );
    assert_eq!(r::fund(&net.chain.state).bonds, 0);
}

// ---- models by reference and result objects ---------------------------------------

impl Net {
    /// The requester publishes `ex`'s model (a block of its own).
    fn publish_model(&mut self, ex: &Example) {
        let m = ex.model.clone().expect("a by-reference example");
        let p = publish(&self.chain, self.requester.address(), &m);
        let txs = self.chain.signed(&self.requester.clone(), p);
        assert_eq!(self.step(&txs), txs.len());
    }
}

#[test]
fn a_job_naming_a_model_needs_it_on_chain_and_keeps_it_pinned() {
    let ex = Example::by_reference("train-step");
    let model = ex.model.clone().unwrap();
    let model_sha = tb_primitives::sha256_digest(&model).0;
    let mut net = Net::new(1);
    // Before the model is published, the job is refused (the blob is published).
    let h = net.chain.height() + 1;
    let spec = ex.spec(1, h + 100);
    let mut payloads = publish(&net.chain, net.requester.address(), &ex.blob);
    payloads.push(TxPayload::SubmitJob(SubmitJob {
        from: net.requester.address(),
        spec: spec.clone(),
        fee: 10,
        fee_selector: FeeSelector::Industrial.into(),
        nonce: 0,
    }));
    let txs = net.chain.signed(&net.requester.clone(), payloads);
    assert_eq!(net.step(&txs), txs.len() - 1, "the SubmitJob is refused");
    // A spec that declares another size of the (published) model is refused too.
    net.publish_model(&ex);
    let mut wrong = ex.spec(1, net.chain.height() + 100);
    wrong.model_object.as_mut().unwrap().bytes += 1;
    let txs = net.chain.signed(
        &net.requester.clone(),
        vec![TxPayload::SubmitJob(SubmitJob {
            from: net.requester.address(),
            spec: wrong,
            fee: 10,
            fee_selector: FeeSelector::Industrial.into(),
            nonce: 0,
        })],
    );
    assert_eq!(net.step(&txs), 0);
    // Published: accepted, and the model is pinned past the job's deadline.
    let t = net.submit(&ex, 1);
    let job = r::job(&net.chain.state, &t).unwrap();
    let o = r::object(&net.chain.state, &model_sha).unwrap();
    assert!(
        o.expires >= job.spec.deadline + net.chain.params.market.reveal_blocks,
        "model expires at {}, the job's deadline is {}",
        o.expires,
        job.spec.deadline
    );
    // It runs and is proven like its inline twin: the same trace, the same result.
    assert_eq!(net.deliver(0, &ex, t, &ex.honest), 3);
    let job = r::job(&net.chain.state, &t).unwrap();
    assert_eq!(job.state, JobState::Proven);
    let inline = Example::new("train-step");
    assert_eq!(ex.honest, inline.honest);
    assert_eq!(
        job.receipts[0].output_digest,
        inline.outputs.output_digest()
    );
}

#[test]
fn a_corrupted_answer_to_a_job_naming_its_model_is_ruled_by_the_referee() {
    // The referee resolves the model from the chain: the dispute is ruled exactly as
    // for an inline job.
    let ex = Example::by_reference("mlp");
    let mut net = Net::new(1);
    net.publish_model(&ex);
    let t = net.submit(&ex, 1);
    let op = 5;
    let theirs = (0..64).find_map(|b| ex.corrupted(op, b)).unwrap();
    assert_eq!(net.deliver(0, &ex, t, &theirs), 3);
    net.challenge(&ex, t, &theirs, op, false);
    let d = disputes(&net.chain.state, &t);
    assert_eq!(d[0].ruling, Some(Outcome::Referee(ex.honest[op])));
    assert_eq!(net.slashes_of(0), vec![SlashReason::LostDispute]);
    let job = r::job(&net.chain.state, &t).unwrap();
    assert_eq!(job.failure.map(|f| f.reason), Some(FailReason::Refuted));
}

#[test]
fn a_blob_naming_another_model_than_its_spec_is_void_on_report() {
    let ex = Example::by_reference("mlp");
    let other = Example::by_reference("train-step");
    let mut net = Net::new(1);
    net.publish_model(&ex);
    net.publish_model(&other);
    // The spec names train-step's model; the blob names mlp's.
    let mut spec = ex.spec(1, net.chain.height() + 101);
    spec.model_object = other.spec(1, 0).model_object;
    let t = net.submit_spec(&ex.blob, spec);
    let k = net.providers[0].clone();
    let txs = net.chain.signed(
        &k,
        vec![TxPayload::ReportMalformed(ReportMalformed {
            from: k.address(),
            task_id: t,
            fee: 10,
            fee_selector: FeeSelector::Industrial.into(),
            nonce: 0,
        })],
    );
    assert_eq!(net.step(&txs), 1, "the report is upheld");
    let job = r::job(&net.chain.state, &t).unwrap();
    assert_eq!(job.failure.map(|f| f.reason), Some(FailReason::Malformed));
    assert!(net.slashes_of(0).is_empty());
}

#[test]
fn a_receipt_whose_result_is_missing_or_does_not_give_its_digest_is_refused() {
    let ex = Example::new("mlp");
    let mut net = Net::new(1);
    // The slow lane: a 24-block lease outlives the refused attempts below.
    let mut spec = ex.spec(1, net.chain.height() + 101);
    spec.lane = 2;
    let t = net.submit_spec(&ex.blob, spec);
    let k = net.providers[0].clone();
    let submit = |net: &Net, receipt: tb_job::SignedReceipt| {
        net.chain
            .signed(&k, vec![receipt_payload(k.address(), t, receipt)])
    };
    // The trace is published, the result is not.
    let txs = net
        .chain
        .signed(&k, publish_trace(&net.chain, k.address(), t, &ex.honest));
    assert_eq!(net.step(&txs), 1);
    let receipt = ex.receipt(&k, &net.chain, t, &ex.honest);
    assert_eq!(net.step(&submit(&net, receipt.clone())), 0, "no result");
    // A receipt naming an object that is not a result (its own trace).
    let mut r2 = receipt.receipt.clone();
    r2.result_sha256 = r2.trace_sha256;
    let r2 = r2.sign(&k, net.chain.params.chain_id).unwrap();
    assert_eq!(net.step(&submit(&net, r2)), 0, "not a result object");
    // A result object whose outputs give another digest.
    let (other, _) = support::seeded_result([3; 32]);
    let txs = net
        .chain
        .signed(&k, publish(&net.chain, k.address(), &other));
    assert_eq!(net.step(&txs), 1);
    let o = r::object(&net.chain.state, &tb_primitives::sha256_digest(&other).0).unwrap();
    assert_eq!(
        o.result.map(|x| x.outputs),
        Some(1),
        "a well-formed result object is recognised when it completes"
    );
    let mut r3 = receipt.receipt.clone();
    r3.result_sha256 = tb_primitives::sha256_digest(&other).0;
    let r3 = r3.sign(&k, net.chain.params.chain_id).unwrap();
    assert_eq!(net.step(&submit(&net, r3)), 0, "another answer's result");
    // The honest result: accepted, and pinned with the trace.
    let res = ex.result_for(&ex.honest);
    let txs = net.chain.signed(&k, publish(&net.chain, k.address(), &res));
    assert_eq!(net.step(&txs), 1);
    assert_eq!(net.step(&submit(&net, receipt)), 1);
    let job = r::job(&net.chain.state, &t).unwrap();
    assert_eq!(job.state, JobState::Proven);
    let sha = tb_primitives::sha256_digest(&res).0;
    assert_eq!(job.receipts[0].result_sha256, sha);
    let o = r::object(&net.chain.state, &sha).unwrap();
    assert_eq!(o.result.unwrap().output_digest, ex.outputs.output_digest());
    assert!(o.expires > job.window_end + net.chain.params.market.evidence_deadline_blocks);
}

#[test]
fn publishing_again_is_accepted_and_changes_nothing_but_the_fee() {
    // A client that re-sends a chunk (after an interruption) or two replicas publishing
    // the same result in one block: the repeat is accepted, so the sender's later
    // transactions in the block are not dropped with it.
    let ex = Example::new("mlp");
    let mut net = Net::new(1);
    let k = net.providers[0].clone();
    let res = ex.result_for(&ex.honest);
    let mut p = publish(&net.chain, k.address(), &res);
    p.extend(publish(&net.chain, k.address(), &res));
    p.push(TxPayload::Heartbeat(tb_chain::tx::Heartbeat {
        from: k.address(),
        fee: 10,
        fee_selector: FeeSelector::Industrial.into(),
        nonce: 0,
    }));
    let before = net.industrial(&k.address());
    let txs = net.chain.signed(&k, p);
    assert_eq!(net.step(&txs), 3, "publish, the repeat, and the heartbeat");
    let fees: u64 = txs.iter().map(|t| t.payload.fee()).sum();
    assert_eq!(net.industrial(&k.address()), before - fees);
    let sha = tb_primitives::sha256_digest(&res).0;
    assert!(r::object(&net.chain.state, &sha).is_some());
}

#[test]
fn keeping_a_model_past_its_paid_retention_is_rent_in_the_jobs_fee() {
    use tb_chain::market::pricing::model_rent_micro;
    let ex = Example::by_reference("train-step");
    let model = ex.model.clone().unwrap();
    let sha = tb_primitives::sha256_digest(&model).0;
    let mut net = Net::new(1);
    net.publish_model(&ex);
    let expires = r::object(&net.chain.state, &sha).unwrap().expires;
    let p = net.chain.params.market.clone();
    // Inside the paid retention: no rent.
    assert_eq!(
        model_rent_micro(&p, model.len() as u64, expires, expires),
        0
    );
    // 50 blocks past it: the publication fee's share for 50 of its 1000 blocks.
    let deadline = expires + 50;
    let rent = model_rent_micro(&p, model.len() as u64, expires, deadline);
    let fee = (model.len() as u64).div_ceil(1024) * p.blob_fee_per_kib_micro;
    assert_eq!(rent, (fee * 50).div_ceil(p.blob_retention_blocks));
    assert!(rent > 10);
    let blob = net.chain.signed(
        &net.requester.clone(),
        publish(&net.chain, net.requester.address(), &ex.blob),
    );
    assert_eq!(net.step(&blob), 1);
    let submit = |net: &Net, fee: u64| {
        net.chain.signed(
            &net.requester.clone(),
            vec![TxPayload::SubmitJob(SubmitJob {
                from: net.requester.address(),
                spec: ex.spec(1, deadline),
                fee,
                fee_selector: FeeSelector::Industrial.into(),
                nonce: 0,
            })],
        )
    };
    assert_eq!(net.step(&submit(&net, rent - 1)), 0, "a fee below the rent");
    assert_eq!(net.step(&submit(&net, rent)), 1, "the rent paid in the fee");
    assert_eq!(
        r::object(&net.chain.state, &sha).unwrap().expires,
        deadline,
        "the model is kept until the job's deadline"
    );
}

#[test]
fn the_reveal_deadline_leaves_time_to_publish_the_declared_results() {
    let ex = Example::new("train-step");
    let mut net = Net::new(2);
    let t = net.submit(&ex, 2);
    let leased = net.leased(&t);
    let seal = |net: &Net, i: usize, result_bytes: u64| {
        let k = net.providers[i].clone();
        let receipt = ex.receipt(&k, &net.chain, t, &ex.honest);
        net.chain
            .signed(&k, vec![seal_payload(&k, t, &receipt, result_bytes)])
    };
    // A declared result above the largest result object is refused.
    let too_big = tb_job::result::RESULT_BYTES_MAX as u64 + 1;
    assert_eq!(net.step(&seal(&net, leased[0], too_big)), 0);
    let mut txs = seal(&net, leased[0], 10 << 20);
    txs.extend(seal(&net, leased[1], 1_000));
    assert_eq!(net.step(&txs), 2);
    let job = r::job(&net.chain.state, &t).unwrap();
    assert_eq!(job.state, JobState::Revealing);
    let p = &net.chain.params.market;
    let traces = 2 * 32 * ex.honest.len() as u64;
    let publish = (traces + (10 << 20)).div_ceil(p.evidence_bytes_per_block);
    assert_eq!(
        job.reveal_deadline,
        net.chain.height() + p.reveal_blocks + publish,
        "reveal_blocks plus the blocks to publish the traces and the largest result"
    );
}
