//! The market's parties: a requester, providers (honest, corrupting, lazy,
//! withholding) and challengers (honest verifiers, liars, liars that withhold their
//! evidence). Each decides its next transactions from the state of the node it talks
//! to; the world signs and submits them there.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use tb_chain::devchain::{challenge_payloads_on, publish_on};
use tb_chain::market::dispute::disputes;
use tb_chain::market::records::{self as r, Job, JobState};
use tb_chain::state::StateRead;
use tb_chain::tx::{FeeSelector, SealReceipt, SubmitJob, SubmitReceipt, SupplyEvidence};
use tb_chain::{ChainParams, State, TxPayload};
use tb_primitives::{sha256_digest, Address, Id, SecretKey};

/// How a provider answers its leases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Provider {
    /// Runs the job and reveals what it sealed; defends itself in disputes.
    Honest,
    /// Answers with one intermediate op's leaf flipped (its outputs stay right).
    Corrupting,
    /// Computes nothing: alone on a job it answers a guess; on a redundant job it
    /// seals a guess and then tries to reveal a copy of another replica's answer.
    Lazy,
    /// Seals the right answer on redundant jobs and never reveals it; leaves the
    /// others to lapse.
    Withholding,
}

/// How a challenger disputes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Challenger {
    /// Replays every proven job and challenges the first differing op.
    Verifier,
    /// Disputes honest traces now and then.
    Liar,
    /// Disputes honest traces and never publishes the evidence bundle.
    Withholder,
}

/// What an actor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Requester,
    Provider(Provider),
    Challenger(Challenger),
}

impl Kind {
    /// Its name in reports.
    pub fn label(&self) -> &'static str {
        match self {
            Kind::Requester => "requester",
            Kind::Provider(Provider::Honest) => "honest provider",
            Kind::Provider(Provider::Corrupting) => "corrupting provider",
            Kind::Provider(Provider::Lazy) => "lazy provider",
            Kind::Provider(Provider::Withholding) => "withholding provider",
            Kind::Challenger(Challenger::Verifier) => "verifier",
            Kind::Challenger(Challenger::Liar) => "lying challenger",
            Kind::Challenger(Challenger::Withholder) => "withholding challenger",
        }
    }

    /// Whether this party is honest (never to be slashed, never to lose a bond).
    pub fn honest(&self) -> bool {
        matches!(
            self,
            Kind::Requester
                | Kind::Provider(Provider::Honest)
                | Kind::Challenger(Challenger::Verifier)
        )
    }
}

/// One party.
pub struct Actor {
    pub key: SecretKey,
    pub kind: Kind,
    /// The node it talks to first (it falls back to the next live one).
    pub home: usize,
    /// Its last batch in flight: (last nonce, sent at ms, the node it went to). It
    /// waits for the batch to be included (or to be given up) before deciding more.
    pub in_flight: Option<(u64, u64, usize)>,
}

/// An example job with its honest run: the blob, its market shape, honest leaves and
/// result object.
pub struct Example {
    pub job: tb_job::Job,
    pub blob: Vec<u8>,
    pub blob_sha256: [u8; 32],
    pub shape: tb_job::JobShape,
    pub flops: u64,
    pub honest: Vec<[u8; 32]>,
    pub result: Vec<u8>,
}

impl Example {
    /// The example `name` of `tb_job::examples`, run once on the CPU fabric.
    pub fn new(name: &str) -> Result<Example, String> {
        let job = tb_job::examples::build_example(name).map_err(|e| format!("{name}: {e}"))?;
        let blob = job.encode().map_err(|e| format!("{name}: {e}"))?;
        let plan = tb_job::validate(&job).map_err(|e| format!("{name}: {e}"))?;
        let run = tb_job::replay(&job, blocktorch::cpu::default_fabric())
            .map_err(|e| format!("{name}: {e}"))?;
        let result = tb_job::ResultObject::of_run(&run)
            .encode()
            .map_err(|e| format!("{name}: {e}"))?;
        Ok(Example {
            shape: tb_job::JobShape::of(&job).map_err(|e| format!("{name}: {e}"))?,
            flops: plan.total.flops as u64,
            honest: run.op_digests,
            blob_sha256: sha256_digest(&blob).0,
            blob,
            result,
            job,
        })
    }

    fn spec(&self, redundancy: u32, deadline: u64) -> tb_chain::tx::JobSpec {
        tb_chain::tx::JobSpec {
            blob_sha256: self.blob_sha256,
            blob_bytes: self.blob.len() as u64,
            flops: self.flops,
            kernel_digest: [0; 32],
            model: 0,
            lane: 0,
            region: None,
            max_price: 1_000_000,
            redundancy,
            deadline,
            n_ops: self.shape.n_ops,
            outputs: self.shape.outputs.clone(),
            model_object: None,
        }
    }

    /// The result object of `leaves`: the honest one when the outputs are honest.
    fn result_for(&self, leaves: &[[u8; 32]]) -> Option<&[u8]> {
        (self.shape.output_digest(leaves)? == self.shape.output_digest(&self.honest)?)
            .then_some(&self.result[..])
    }

    fn receipt(
        &self,
        key: &SecretKey,
        chain_id: u64,
        t: Id,
        leaves: &[[u8; 32]],
    ) -> Option<tb_job::SignedReceipt> {
        tb_job::Receipt {
            task_id: t,
            kernel_variant_digest: [1; 32],
            benchmark_commit: "sim".into(),
            tensor_profile_epoch: [0; 32],
            proof_latency_ms: 10,
            output_digest_sha256: self.shape.output_digest(leaves)?,
            input_descriptor_hash: self.job.descriptor_hash,
            artifact_hash: self.job.artifact_hash,
            trace_root: tb_job::trace_root(leaves),
            trace_sha256: tb_job::trace_sha256(t, key.address(), leaves),
            // A guess has no result object: such a receipt is never accepted.
            result_sha256: self
                .result_for(leaves)
                .map_or([0; 32], |r| sha256_digest(r).0),
            n_ops: leaves.len() as u64,
            fabric: "cpu".into(),
            device_hash: [2; 32],
            provider: key.address(),
        }
        .sign(key, chain_id)
        .ok()
    }
}

/// What actors know: the examples, and the chain's parameters.
pub struct Catalogue {
    pub params: ChainParams,
    pub examples: Vec<Example>,
}

impl Catalogue {
    /// The example a job runs (by its blob's digest).
    pub fn example_of(&self, job: &Job) -> Option<&Example> {
        self.examples
            .iter()
            .find(|e| e.blob_sha256 == job.spec.blob_sha256)
    }
}

fn trace_of(state: &State, sha: &[u8; 32]) -> Option<Vec<[u8; 32]>> {
    r::object_bytes(state, sha)
        .and_then(|b| tb_job::decode_trace(&b).ok())
        .map(|t| t.leaves)
}

fn fee() -> (u64, u8) {
    (10, FeeSelector::Industrial.into())
}

/// The answer a provider gives task `t`.
fn answer(ex: &Example, role: Provider, t: &Id, who: &Address) -> Vec<[u8; 32]> {
    let mut seed = [0u8; 32];
    for (i, b) in t.0.iter().zip(who.0.iter()).enumerate() {
        seed[i] = b.0 ^ b.1;
    }
    let mut rng = <ChaCha8Rng as rand::SeedableRng>::from_seed(seed);
    match role {
        Provider::Honest | Provider::Withholding => ex.honest.clone(),
        Provider::Corrupting => {
            let mut leaves = ex.honest.clone();
            let inner: Vec<usize> = (0..leaves.len())
                .filter(|i| !ex.shape.outputs.contains(&(*i as u32)))
                .collect();
            let op = if inner.is_empty() {
                rng.gen_range(0..leaves.len())
            } else {
                inner[rng.gen_range(0..inner.len())]
            };
            let bit = rng.gen_range(0..256);
            leaves[op][bit / 8] ^= 1 << (bit % 8);
            leaves
        }
        Provider::Lazy => (0..ex.honest.len()).map(|_| rng.gen()).collect(),
    }
}

fn reveal(me: Address, t: Id, receipt: tb_job::SignedReceipt) -> TxPayload {
    let (fee, fee_selector) = fee();
    TxPayload::SubmitReceipt(Box::new(SubmitReceipt {
        from: me,
        task_id: t,
        receipt,
        fee,
        fee_selector,
        nonce: 0,
    }))
}

/// A provider's transactions against `state` (the tip of its node), for block `h`.
pub fn provider_step(
    cat: &Catalogue,
    state: &State,
    key: &SecretKey,
    role: Provider,
    h: u64,
    jobs: &[(Id, Job)],
) -> Vec<TxPayload> {
    let me = key.address();
    let p = &cat.params;
    let mut out = Vec::new();
    let mut published = BTreeSet::new();
    let mut publish_once = |out: &mut Vec<TxPayload>, bytes: &[u8]| {
        if published.insert(sha256_digest(bytes).0) {
            out.extend(publish_on(state, p, me, bytes));
        }
    };
    let (fee, fee_selector) = fee();
    // A heartbeat once per window of `heartbeat_interval_blocks`, first in the batch:
    // the matcher leases to providers whose last one is recent.
    let interval = p.market.heartbeat_interval_blocks.max(1);
    let last = r::provider(state, &me).map_or(0, |x| x.last_heartbeat);
    if last / interval < h / interval || last == 0 {
        out.push(TxPayload::Heartbeat(tb_chain::tx::Heartbeat {
            from: me,
            fee,
            fee_selector,
            nonce: 0,
        }));
    }
    for (t, job) in jobs {
        let Some(ex) = cat.example_of(job) else {
            continue;
        };
        let leased = job.leases.iter().any(|l| l.provider == me && l.expiry >= h);
        let sealed = job.seals.iter().any(|s| s.provider == me);
        let revealed = job.receipts.iter().any(|x| x.provider == me);
        if leased && !sealed && !revealed {
            let leaves = answer(ex, role, t, &me);
            let Some(receipt) = ex.receipt(key, p.chain_id, *t, &leaves) else {
                continue;
            };
            if job.spec.redundancy > 1 {
                // Nothing is published before every replica has sealed.
                out.push(TxPayload::SealReceipt(SealReceipt {
                    from: me,
                    task_id: *t,
                    seal: receipt.seal(),
                    result_bytes: ex.result_for(&leaves).map_or(0, |r| r.len() as u64),
                    fee,
                    fee_selector,
                    nonce: 0,
                }));
            } else if role != Provider::Withholding {
                publish_once(&mut out, &tb_job::trace_blob(*t, me, &leaves));
                if let Some(res) = ex.result_for(&leaves) {
                    publish_once(&mut out, res);
                }
                out.push(reveal(me, *t, receipt));
            }
        }
        if job.state == JobState::Revealing && sealed && !revealed {
            match role {
                Provider::Withholding => {}
                Provider::Lazy => {
                    // A copy of another replica's answer as its own: not what it
                    // sealed, so refused.
                    if let Some(x) = job.receipts.first() {
                        if let Some(leaves) = trace_of(state, &x.trace_sha256) {
                            if let Some(copy) = ex.receipt(key, p.chain_id, *t, &leaves) {
                                out.push(reveal(me, *t, copy));
                            }
                        }
                    }
                }
                Provider::Honest | Provider::Corrupting => {
                    let leaves = answer(ex, role, t, &me);
                    publish_once(&mut out, &tb_job::trace_blob(*t, me, &leaves));
                    if let Some(res) = ex.result_for(&leaves) {
                        publish_once(&mut out, res);
                    }
                    if let Some(receipt) = ex.receipt(key, p.chain_id, *t, &leaves) {
                        out.push(reveal(me, *t, receipt));
                    }
                }
            }
        }
        // Honest providers defend themselves in replica disputes.
        if role == Provider::Honest && job.state == JobState::Disputed {
            for d in disputes(state, t) {
                let mine = d.accused.providers.contains(&me)
                    || d.other.as_ref().is_some_and(|o| o.providers.contains(&me));
                let named = d.bundles.iter().find(|(who, _)| *who == me).map(|x| x.1);
                if d.ruling.is_some() || !mine {
                    continue;
                }
                let Ok(c) = tb_job::build_challenge(&ex.job, *t, &ex.honest, d.op as usize) else {
                    continue;
                };
                let Ok(bundle) = c.bundle.encode() else {
                    continue;
                };
                if let Some(sha) = named {
                    // Named: published again until the chain shows it (as the node's
                    // provider does), since its publication can be lost on its own.
                    if r::object(state, &sha).is_none() {
                        publish_once(&mut out, &bundle);
                    }
                    continue;
                }
                publish_once(&mut out, &ex.blob);
                publish_once(&mut out, &bundle);
                out.push(TxPayload::SupplyEvidence(SupplyEvidence {
                    from: me,
                    task_id: *t,
                    dispute: d.index,
                    bundle: sha256_digest(&bundle).0,
                    bundle_bytes: bundle.len() as u64,
                    fee,
                    fee_selector,
                    nonce: 0,
                }));
            }
        }
    }
    out
}

/// A challenger's transactions against `state`, for block `h`: at most one challenge.
pub fn challenger_step(
    cat: &Catalogue,
    state: &State,
    key: &SecretKey,
    role: Challenger,
    h: u64,
    jobs: &[(Id, Job)],
    rng: &mut ChaCha8Rng,
) -> Vec<TxPayload> {
    let me = key.address();
    let open =
        |job: &Job| job.state == JobState::Proven && job.disputes_open == 0 && h <= job.window_end;
    for (t, job) in jobs {
        let Some(ex) = cat.example_of(job) else {
            continue;
        };
        if !open(job) {
            continue;
        }
        let theirs: Vec<Vec<[u8; 32]>> = job
            .receipts
            .iter()
            .filter(|x| !x.refuted)
            .filter_map(|x| trace_of(state, &x.trace_sha256))
            .collect();
        let Some(first) = theirs.first() else {
            continue;
        };
        let (leaves, op) = match role {
            Challenger::Verifier => match tb_job::first_divergence(&ex.honest, first) {
                Some(op) => (first.clone(), op),
                None => continue,
            },
            Challenger::Liar | Challenger::Withholder => {
                if !rng.gen_bool(0.3) || theirs.iter().any(|l| *l != ex.honest) {
                    continue;
                }
                (ex.honest.clone(), rng.gen_range(0..ex.honest.len()))
            }
        };
        let Ok(c) = tb_job::build_challenge(&ex.job, *t, &leaves, op) else {
            continue;
        };
        return challenge_payloads_on(
            state,
            &cat.params,
            me,
            &ex.blob,
            *t,
            &c,
            role == Challenger::Withholder,
        );
    }
    Vec::new()
}

/// The requester's next job: example, redundancy and deadline drawn from `rng`.
pub fn requester_step(
    cat: &Catalogue,
    state: &State,
    key: &SecretKey,
    h: u64,
    deadline_blocks: u64,
    rng: &mut ChaCha8Rng,
) -> Vec<TxPayload> {
    let me = key.address();
    let ex = &cat.examples[rng.gen_range(0..cat.examples.len())];
    let k = [1u32, 1, 2, 3][rng.gen_range(0..4)];
    let mut out = publish_on(state, &cat.params, me, &ex.blob);
    let (fee, fee_selector) = fee();
    out.push(TxPayload::SubmitJob(SubmitJob {
        from: me,
        spec: ex.spec(k, h + deadline_blocks),
        fee,
        fee_selector,
        nonce: 0,
    }));
    out
}

/// Whether `a`'s balance can pay: actors are funded generously, so this only
/// guards against a slashed actor spending what it lost.
pub fn funded(state: &State, a: &Address) -> bool {
    state.account(a).industrial > 1_000
}
