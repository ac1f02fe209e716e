//! A seeded simulation of the verification protocol through real blocks, with the real
//! executor, verifier library and referee. Honest providers, corrupting providers (one
//! random op output, one random bit), lazy providers (they compute nothing: alone on a
//! job they answer a guess; on a redundant job they seal a guess, wait for another
//! replica's reveal and try to reveal a copy of it as their own), an honest
//! verifier that replays every proven job and challenges the first differing op, and
//! lying challengers (they dispute honest traces, or never publish their evidence).
//!
//! Checked: conservation after every block; no honest provider is ever slashed and the
//! honest verifier never loses a bond; every answer a cheating provider got accepted is
//! slashed (`LostDispute` or `WithheldData`) on that job; every lying challenge loses
//! its bond. `TB_VERIFY_SEED` picks one seed; a failing run prints its seed.

mod support;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use support::{publish, Chain, Example};
use tb_chain::market::audit::{check_running_totals, supply};
use tb_chain::market::dispute::disputes;
use tb_chain::market::exec::task_id;
use tb_chain::market::records::{
    self as r, Job, JobState, Kind, Outcome, SlashReason, SlashRecord,
};
use tb_chain::state::StateRead;
use tb_chain::tx::FeeSelector;
use tb_chain::tx::{SealReceipt, SubmitJob, SubmitReceipt, SupplyEvidence};
use tb_chain::{ChainParams, SignedTx, TxPayload};
use tb_primitives::{Address, Id, SecretKey, MICRO_PER_TOKEN};

fn params() -> ChainParams {
    let mut p = ChainParams::devnet();
    let m = &mut p.market;
    m.epoch_blocks = 100;
    m.challenge_window_blocks = 4;
    m.evidence_deadline_blocks = 4;
    m.reveal_blocks = 3;
    m.lane_lease_blocks = vec![6, 12, 24];
    m.retry_budget = 1;
    m.backoff_blocks = 1;
    m.min_stake_micro = MICRO_PER_TOKEN;
    m.jail_blocks = 10;
    m.flops_per_unit = 1_000_000;
    m.availability_floor_bps = 0;
    m.challenge_bond_micro = 10 * MICRO_PER_TOKEN;
    m.validate().expect("test parameters are in range");
    p
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Honest,
    Corrupting,
    Lazy,
}

struct Actor {
    key: SecretKey,
    role: Role,
}

/// What every actor knows of a job: its example.
struct World {
    chain: Chain,
    examples: Vec<Example>,
    job_example: BTreeMap<Id, usize>,
}

impl World {
    fn example_of(&self, t: &Id) -> &Example {
        &self.examples[self.job_example[t]]
    }

    fn trace(&self, sha: &[u8; 32]) -> Option<Vec<[u8; 32]>> {
        r::object_bytes(&self.chain.state, sha)
            .and_then(|b| tb_job::decode_trace(&b).ok())
            .map(|t| t.leaves)
    }
}

/// The trace a provider answers a job with.
fn answer(w: &World, a: &Actor, t: &Id, rng_seed: u64) -> Vec<[u8; 32]> {
    let ex = w.example_of(t);
    let mut rng =
        ChaCha8Rng::seed_from_u64(rng_seed ^ u64::from_le_bytes(t.0[..8].try_into().unwrap()));
    match a.role {
        Role::Honest => ex.honest.clone(),
        Role::Corrupting => loop {
            let op = rng.gen_range(0..ex.honest.len());
            if let Some(l) = ex.corrupted(op, rng.gen_range(0..usize::MAX)) {
                break l;
            }
        },
        Role::Lazy => (0..ex.honest.len()).map(|_| rng.gen()).collect(),
    }
}

fn reveal_payload(a: &Actor, t: Id, receipt: tb_job::SignedReceipt) -> TxPayload {
    TxPayload::SubmitReceipt(Box::new(SubmitReceipt {
        from: a.key.address(),
        task_id: t,
        receipt,
        fee: 10,
        fee_selector: FeeSelector::Industrial.into(),
        nonce: 0,
    }))
}

/// One provider's transactions for the next block, from the parent state.
fn provider_step(w: &World, a: &Actor, idx: usize, jobs: &[(Id, Job)]) -> Vec<TxPayload> {
    let me = a.key.address();
    let h = w.chain.height() + 1;
    let mut out = Vec::new();
    let mut published = BTreeSet::new();
    let mut publish_once = |out: &mut Vec<TxPayload>, bytes: &[u8]| {
        let id = tb_primitives::sha256_digest(bytes).0;
        if published.insert(id) {
            out.extend(publish(&w.chain, me, bytes));
        }
    };
    for (t, job) in jobs {
        let ex = w.example_of(t);
        // Leases: answer at once (sealed when the job is redundant).
        if job.leases.iter().any(|l| l.provider == me && l.expiry >= h) {
            let leaves = answer(w, a, t, idx as u64);
            let receipt = ex.receipt(&a.key, &w.chain, *t, &leaves);
            if job.spec.redundancy > 1 {
                // Nothing is published before every replica has sealed.
                out.push(TxPayload::SealReceipt(SealReceipt {
                    from: me,
                    task_id: *t,
                    seal: receipt.seal(),
                    result_bytes: ex.try_result_for(&leaves).map_or(0, |r| r.len() as u64),
                    fee: 10,
                    fee_selector: FeeSelector::Industrial.into(),
                    nonce: 0,
                }));
            } else {
                publish_once(&mut out, &tb_job::trace_blob(*t, me, &leaves));
                if let Some(res) = ex.try_result_for(&leaves) {
                    publish_once(&mut out, &res);
                }
                out.push(reveal_payload(a, *t, receipt));
            }
        }
        // Reveals.
        if job.state == JobState::Revealing
            && job.seals.iter().any(|s| s.provider == me)
            && !job.receipts.iter().any(|x| x.provider == me)
        {
            match a.role {
                Role::Lazy => {
                    // It waits for another replica's answer and reveals a copy as its
                    // own: not what it sealed, so refused.
                    if let Some(x) = job.receipts.first() {
                        if let Some(leaves) = w.trace(&x.trace_sha256) {
                            let copy = ex.receipt(&a.key, &w.chain, *t, &leaves);
                            out.push(reveal_payload(a, *t, copy));
                        }
                    }
                }
                _ => {
                    let leaves = answer(w, a, t, idx as u64);
                    publish_once(&mut out, &tb_job::trace_blob(*t, me, &leaves));
                    if let Some(res) = ex.try_result_for(&leaves) {
                        publish_once(&mut out, &res);
                    }
                    let receipt = ex.receipt(&a.key, &w.chain, *t, &leaves);
                    out.push(reveal_payload(a, *t, receipt));
                }
            }
        }
        // Honest parties defend themselves in replica disputes.
        if a.role == Role::Honest && job.state == JobState::Disputed {
            for d in disputes(&w.chain.state, t) {
                let mine = d.accused.providers.contains(&me)
                    || d.other.as_ref().is_some_and(|o| o.providers.contains(&me));
                let named = d.bundles.iter().any(|(who, _)| *who == me);
                if d.ruling.is_none() && !named && mine {
                    let c = tb_job::build_challenge(&ex.job, *t, &ex.honest, d.op as usize)
                        .expect("evidence");
                    let bundle = c.bundle.encode().expect("bundle");
                    publish_once(&mut out, &ex.blob);
                    publish_once(&mut out, &bundle);
                    out.push(TxPayload::SupplyEvidence(SupplyEvidence {
                        from: me,
                        task_id: *t,
                        dispute: d.index,
                        bundle: tb_primitives::sha256_digest(&bundle).0,
                        bundle_bytes: bundle.len() as u64,
                        fee: 10,
                        fee_selector: FeeSelector::Industrial.into(),
                        nonce: 0,
                    }));
                }
            }
        }
    }
    out
}

fn challenge_payloads(
    w: &World,
    me: Address,
    t: Id,
    theirs: &[[u8; 32]],
    op: usize,
    withhold: bool,
) -> Vec<TxPayload> {
    let ex = w.example_of(&t);
    let c = tb_job::build_challenge(&ex.job, t, theirs, op).expect("challenge");
    support::challenge_payloads(&w.chain, me, ex, t, &c, withhold)
}

fn run(seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let examples: Vec<Example> = ["train-step", "mlp", "matmul-chain"]
        .into_iter()
        .map(Example::new)
        .collect();
    let roles: Vec<Role> = (0..15)
        .map(|i| match i % 5 {
            1 => Role::Corrupting,
            3 => Role::Lazy,
            _ => Role::Honest,
        })
        .collect();
    let actors: Vec<Actor> = roles
        .iter()
        .enumerate()
        .map(|(i, role)| Actor {
            key: SecretKey::dev(&format!("sim-{seed}-{i}")),
            role: *role,
        })
        .collect();
    let verifier = SecretKey::dev(&format!("verifier-{seed}"));
    let liars: Vec<SecretKey> = (0..2)
        .map(|i| SecretKey::dev(&format!("liar-{seed}-{i}")))
        .collect();
    let requester = SecretKey::dev(&format!("requester-{seed}"));
    let funded: Vec<(Address, u64)> = actors
        .iter()
        .map(|a| &a.key)
        .chain([&verifier, &requester])
        .chain(liars.iter())
        .map(|k| (k.address(), 100_000 * MICRO_PER_TOKEN))
        .collect();
    let mut w = World {
        chain: Chain::new(params(), &funded),
        examples,
        job_example: BTreeMap::new(),
    };
    let mut txs = Vec::new();
    for a in &actors {
        txs.extend(w.chain.signed(
            &a.key,
            tb_chain::devchain::provider_payloads(a.key.address(), 4, 1_000 * MICRO_PER_TOKEN),
        ));
    }
    assert_eq!(w.chain.step(&txs).len(), txs.len());

    // Cheaters' answers the chain accepted: (task, provider).
    let mut cheats: BTreeSet<(Id, Address)> = BTreeSet::new();
    let mut lying: BTreeSet<(Id, u32)> = BTreeSet::new();
    let mut verifier_disputes: BTreeSet<(Id, u32)> = BTreeSet::new();
    let role_of = |a: &Address| {
        actors
            .iter()
            .find(|x| x.key.address() == *a)
            .map(|x| x.role)
    };
    let blocks = 300u64;
    let mut submitted = 0;
    for _ in 0..blocks {
        let h = w.chain.height() + 1;
        let jobs: Vec<(Id, Job)> = tb_chain::market::query::jobs(&w.chain.state, None);
        let mut txs: Vec<SignedTx> = Vec::new();
        // The requester: one job a block for the first 150 blocks.
        if h < 150 {
            let e = rng.gen_range(0..w.examples.len());
            let k = *[1u32, 1, 2, 3].get(rng.gen_range(0..4)).unwrap();
            let mut payloads = publish(&w.chain, requester.address(), &w.examples[e].blob);
            payloads.push(TxPayload::SubmitJob(SubmitJob {
                from: requester.address(),
                spec: w.examples[e].spec(k, h + 80),
                fee: 10,
                fee_selector: FeeSelector::Industrial.into(),
                nonce: 0,
            }));
            let signed = w.chain.signed(&requester, payloads);
            let t = task_id(w.chain.params.chain_id, h, signed.last().unwrap());
            w.job_example.insert(t, e);
            txs.extend(signed);
            submitted += 1;
        }
        for (i, a) in actors.iter().enumerate() {
            let p = provider_step(&w, a, i, &jobs);
            txs.extend(w.chain.signed(&a.key, p));
        }
        // The honest verifier replays every proven job and challenges a divergence.
        let mut vp = Vec::new();
        for (t, job) in &jobs {
            if job.state != JobState::Proven || job.disputes_open > 0 || h > job.window_end {
                continue;
            }
            let Some(x) = job.receipts.iter().find(|x| !x.refuted) else {
                continue;
            };
            let Some(theirs) = w.trace(&x.trace_sha256) else {
                continue;
            };
            let ex = w.example_of(t);
            if let Some(op) = tb_job::first_divergence(&ex.honest, &theirs) {
                vp.extend(challenge_payloads(
                    &w,
                    verifier.address(),
                    *t,
                    &theirs,
                    op,
                    false,
                ));
                break; // one challenge per block keeps its nonces simple
            }
        }
        txs.extend(w.chain.signed(&verifier, vp));
        // Liars dispute honest proven traces now and then.
        for (li, liar) in liars.iter().enumerate() {
            if !rng.gen_bool(0.3) {
                continue;
            }
            let target = jobs.iter().find(|(t, job)| {
                job.state == JobState::Proven
                    && job.disputes_open == 0
                    && h <= job.window_end
                    && job.receipts.iter().filter(|x| !x.refuted).all(|x| {
                        w.trace(&x.trace_sha256).as_deref() == Some(&w.example_of(t).honest[..])
                    })
            });
            if let Some((t, _)) = target {
                let ex = w.example_of(t);
                let op = rng.gen_range(0..ex.honest.len());
                let p = challenge_payloads(&w, liar.address(), *t, &ex.honest, op, li == 1);
                txs.extend(w.chain.signed(liar, p));
            }
        }
        w.chain.step(&txs);
        let s = supply(&w.chain.state);
        assert_eq!(
            s.total(),
            w.chain.minted,
            "seed {seed}: conservation at height {}",
            w.chain.height()
        );
        check_running_totals(&w.chain.state).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        // Record what cheaters got accepted, and who opened which dispute. A seal is a
        // cheat once every replica has sealed (reveals are then due); a seal left alone
        // when the other leases lapse is never revealed, so nothing can be proven of it.
        for (t, job) in tb_chain::market::query::jobs(&w.chain.state, None) {
            let all_sealed = job.seals.len() as u64 >= u64::from(job.spec.redundancy);
            for a in job
                .receipts
                .iter()
                .map(|x| x.provider)
                .chain(job.seals.iter().filter(|_| all_sealed).map(|s| s.provider))
            {
                if role_of(&a).is_some_and(|r| r != Role::Honest) {
                    cheats.insert((t, a));
                }
            }
            for d in disputes(&w.chain.state, &t) {
                if let Some((c, _)) = d.challenger {
                    if c == verifier.address() {
                        verifier_disputes.insert((t, d.index));
                    } else if liars.iter().any(|l| l.address() == c) {
                        lying.insert((t, d.index));
                    }
                }
            }
        }
    }
    assert!(submitted >= 140, "seed {seed}: jobs were submitted");

    let slashes: Vec<SlashRecord> = w
        .chain
        .state
        .scan_prefix(&r::prefix(Kind::Slash))
        .into_iter()
        .filter_map(|(k, _)| r::get(&w.chain.state, &k))
        .collect();
    for s in &slashes {
        assert_ne!(
            role_of(&s.provider),
            Some(Role::Honest),
            "seed {seed}: an honest provider was slashed: {s:?}"
        );
    }
    // Every accepted cheat was slashed on its job, for a verification reason.
    let mut caught: BTreeMap<String, usize> = BTreeMap::new();
    for (t, a) in &cheats {
        let s = slashes
            .iter()
            .find(|s| s.provider == *a && s.task_id == Some(*t))
            .unwrap_or_else(|| {
                panic!(
                    "seed {seed}: {:?} {a:?} cheated on {t:?} and was not slashed (job {:?})",
                    role_of(a),
                    r::job(&w.chain.state, t).map(|j| j.state)
                )
            });
        assert!(
            matches!(
                s.reason,
                SlashReason::LostDispute | SlashReason::WithheldData
            ),
            "seed {seed}: {s:?}"
        );
        *caught
            .entry(format!("{:?}/{:?}", role_of(a).unwrap(), s.reason))
            .or_default() += 1;
    }
    // Every lying challenge lost its bond; every verifier challenge convicted.
    for (t, i) in &lying {
        let d = tb_chain::market::dispute::dispute(&w.chain.state, t, *i).unwrap();
        match d.ruling {
            Some(Outcome::Withheld) => {}
            Some(Outcome::Referee(x)) => assert_eq!(x, d.accused.leaf, "seed {seed}: {d:?}"),
            other => panic!("seed {seed}: a lying challenge ended {other:?}"),
        }
    }
    for (t, i) in &verifier_disputes {
        let d = tb_chain::market::dispute::dispute(&w.chain.state, t, *i).unwrap();
        match d.ruling {
            Some(Outcome::Referee(x)) => assert_ne!(x, d.accused.leaf, "seed {seed}: {d:?}"),
            Some(Outcome::NoHonestLeaf) => {}
            other => panic!("seed {seed}: a verifier challenge ended {other:?}"),
        }
    }
    // Every kind of cheater was present and caught (how a lazy one is caught depends on
    // the jobs it drew: alone, its guess is challenged; replicated, its copy is refused
    // and its seal goes unrevealed).
    assert!(
        caught.contains_key("Corrupting/LostDispute"),
        "seed {seed}: no corrupting provider convicted: {caught:?}"
    );
    assert!(
        caught.keys().any(|k| k.starts_with("Lazy/")),
        "seed {seed}: no lazy provider caught: {caught:?}"
    );
    assert!(!lying.is_empty(), "seed {seed}: the liars challenged");
    eprintln!(
        "seed {seed}: {submitted} jobs, caught {caught:?}, {} lying challenges lost, {} verifier challenges won",
        lying.len(),
        verifier_disputes.len()
    );
}

#[test]
fn cheaters_are_slashed_and_honest_parties_never_are() {
    let seeds: Vec<u64> = match std::env::var("TB_VERIFY_SEED") {
        Ok(s) => vec![s.parse().expect("TB_VERIFY_SEED is a u64")],
        Err(_) => vec![1, 2, 3],
    };
    for seed in seeds {
        run(seed);
    }
}
