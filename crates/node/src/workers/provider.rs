//! The provider worker. On start it registers the node's key as a provider (its fabric,
//! model class 0, `max_leases`) and bonds its stake, unless already registered. Then, on
//! every new tip:
//!
//! - each job leased to it that it has not answered: fetch the blob (the node's blob
//!   store, else the chain's published object, else a peer) and the model a version 1
//!   blob names (once: it stays in the blob store for every later job of that model),
//!   check it against the job's spec (`ReportMalformed` when it is not a valid job
//!   matching it), execute it on the configured fabric, and answer: a job with one
//!   replica gets its trace and result object published and its signed receipt
//!   submitted; a redundant job gets a seal (`SignedReceipt::seal`), and the reveal
//!   (trace, result and receipt) once every replica has sealed;
//! - each replica dispute that owes its evidence: the evidence bundle for the disputed op,
//!   proven with its own leaves, published and named (`SupplyEvidence`);
//! - a heartbeat every `heartbeat_interval_blocks`, sent by a thread of its own
//!   (`heartbeats`), so a long execution never delays one (a provider busy with jobs is
//!   available, and must not be slashed for `Availability`).
//!
//! Answers are written to `<data dir>/provider/<task>.answer` (the result object to the
//! blob store) before they are submitted, so a restarted node reveals exactly what it
//! sealed (a re-run would measure a different latency, and its receipt would not match
//! the seal).

use super::{publish_payloads, FEES};
use crate::blobs::{fetch as fetch_blob, job_model};
use crate::config::{FabricKind, ProviderConfig};
use crate::node::Node;
use blocktorch::fabric::Fabric;
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tb_chain::builders;
use tb_chain::market::dispute::disputes;
use tb_chain::market::query::live_index;
use tb_chain::market::records::{self as r, JobState, Owed};
use tb_chain::tx::{Heartbeat, ReportMalformed, SealReceipt, SubmitReceipt, SupplyEvidence};
use tb_chain::{StateRead, TxPayload};
use tb_primitives::{Address, Id, SecretKey};

/// Blocks before an unconfirmed registration or stake is sent again.
pub const RETRY_BLOCKS: u64 = 10;
/// Balance kept back from a stake for fees.
pub const FEE_MARGIN_MICRO: u64 = 100_000;
/// Largest answer file read back.
pub const ANSWER_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// What a provider answered for a task: its signed receipt and its trace's leaves.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct Answer {
    pub receipt: tb_job::SignedReceipt,
    pub leaves: Vec<[u8; 32]>,
}

struct Worker {
    node: Arc<Node>,
    key: SecretKey,
    me: Address,
    cfg: ProviderConfig,
    fabric: Box<dyn Fabric>,
    /// Prepared models (constants uploaded once), shared with the verifier.
    models: Arc<tb_job::ModelCache>,
    dir: PathBuf,
    /// Answers, reveals and evidence sent, with the height sent at: not sent again
    /// while the first may still land, re-sent after `RETRY_BLOCKS` if the chain does
    /// not show it (a refused or dropped transaction).
    sent: BTreeMap<(Id, u32, u8), u64>,
}

/// Opens the configured fabric.
pub fn open_fabric(kind: FabricKind) -> Result<Box<dyn Fabric>, String> {
    Ok(match kind {
        FabricKind::Cpu => {
            let cfg =
                blocktorch::cpu::CpuConfig::from_env().map_err(|e| format!("CPU fabric: {e}"))?;
            Box::new(blocktorch::cpu::CpuFabric::new(cfg).map_err(|e| format!("CPU fabric: {e}"))?)
        }
        FabricKind::Cuda => {
            let cfg =
                blocktorch_cuda::CudaConfig::from_env().map_err(|e| format!("CUDA fabric: {e}"))?;
            Box::new(
                blocktorch_cuda::CudaFabric::new(cfg)
                    .map_err(|e| format!("the CUDA fabric is not available here: {e}"))?,
            )
        }
        FabricKind::Wgpu => {
            let f = blocktorch_wgpu::WgpuFabric::new(blocktorch_wgpu::WgpuConfig::from_env())
                .map_err(|e| format!("the wgpu fabric is not available here: {e}"))?;
            // Every pipeline before the first lease: a driver's shader compiler must
            // not make a job miss its latency window.
            let t = std::time::Instant::now();
            let n = f
                .warm_up()
                .map_err(|e| format!("the wgpu fabric's pipelines: {e}"))?;
            tracing::info!(pipelines = n, ms = t.elapsed().as_millis() as u64, device = %f.device_description(), "wgpu fabric ready");
            Box::new(f)
        }
    })
}

/// Runs until the node stops.
pub fn run(
    node: Arc<Node>,
    key: SecretKey,
    cfg: ProviderConfig,
    data_dir: PathBuf,
    models: Arc<tb_job::ModelCache>,
) -> Result<(), String> {
    let fabric = open_fabric(cfg.fabric)?;
    let dir = data_dir.join("provider");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut w = Worker {
        me: key.address(),
        node,
        key,
        cfg,
        fabric,
        models,
        dir,
        sent: BTreeMap::new(),
    };
    let min_stake = {
        let c = w.node.core();
        c.effective_params(&w.node.params).market.min_stake_micro
    };
    if w.cfg
        .stake_tokens
        .saturating_mul(tb_primitives::MICRO_PER_TOKEN)
        < min_stake
    {
        tracing::warn!(
            stake = %tb_primitives::Amount(w.cfg.stake_tokens * tb_primitives::MICRO_PER_TOKEN),
            min_stake = %tb_primitives::Amount(min_stake),
            "the provider's stake is below the network's minimum: it will register but take no leases"
        );
    }
    let beats = {
        let (node, key) = (w.node.clone(), w.key.clone());
        std::thread::Builder::new()
            .name("provider-heartbeat".into())
            .spawn(move || heartbeats(&node, &key))
            .map_err(|e| format!("heartbeat thread: {e}"))?
    };
    let mut seen = 0;
    let mut registered_at_try = None;
    let mut first_pass_done = false;
    while !w.node.stopping() {
        let h = w.node.wait_head(seen, Duration::from_millis(500));
        if w.node.stopping() {
            break;
        }
        if h == seen && first_pass_done {
            continue;
        }
        first_pass_done = true;
        seen = h;
        if !w.ensure_registered(&mut registered_at_try, h) {
            continue;
        }
        if let Err(e) = w.step(h) {
            tracing::warn!(error = %e, "provider step failed");
        }
    }
    if beats.join().is_err() {
        tracing::error!("the heartbeat thread panicked");
    }
    Ok(())
}

/// The provider's heartbeats, apart from execution: one per aligned window of
/// `heartbeat_interval_blocks` (the chain counts availability per window) once the key
/// is a registered provider, sent as each new tip arrives so it lands in the window's
/// first block. Until the chain shows the window's heartbeat, one that left the
/// mempool without landing is sent again: the miner drops a sender's later
/// transactions with one that no longer executes (a receipt the chain now refuses),
/// and a heartbeat behind it would otherwise be lost with its window.
fn heartbeats(node: &Node, key: &SecretKey) {
    let me = key.address();
    let mut seen = 0;
    // The window last sent for, and the transaction sent.
    let mut sent: Option<(u64, tb_primitives::Id)> = None;
    while !node.stopping() {
        let h = node.wait_head(seen, Duration::from_millis(500));
        if h == seen {
            continue;
        }
        seen = h;
        let (registered, last, interval, pending) = {
            let c = node.core();
            let p = r::provider(c.db.state(), &me);
            let interval = c
                .effective_params(&node.params)
                .market
                .heartbeat_interval_blocks
                .max(1);
            let pending = sent.is_some_and(|(_, id)| c.pool.contains(&id));
            (
                p.is_some(),
                p.map_or(0, |p| p.last_heartbeat),
                interval,
                pending,
            )
        };
        let window = (h + 1) / interval;
        let landed = last / interval >= window;
        let waiting = sent.is_some_and(|(w, _)| w == window) && pending;
        if !registered || landed || waiting {
            continue;
        }
        if sent.is_some_and(|(w, _)| w == window) {
            tracing::info!(
                window,
                "heartbeat left the mempool without landing; sending it again"
            );
        }
        let beat = TxPayload::Heartbeat(Heartbeat {
            from: me,
            fee: 0,
            fee_selector: FEES.into(),
            nonce: 0,
        });
        match node.submit_signed(key, vec![beat]) {
            Ok(ids) => {
                sent = ids.first().map(|id| (window, *id));
                node.metrics.inc("provider_heartbeats_total", &[]);
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat refused"),
        }
    }
}

impl Worker {
    fn submit(&self, payloads: Vec<TxPayload>) -> Result<(), String> {
        self.node
            .submit_signed(&self.key, payloads)
            .map(|_| ())
            .map_err(|e| format!("transaction refused: {e}"))
    }

    /// Registers, then bonds the configured stake as the balance allows; true once the
    /// provider is registered with at least the minimum stake. A transaction that did
    /// not land is re-sent after `RETRY_BLOCKS`.
    fn ensure_registered(&mut self, tried: &mut Option<u64>, h: u64) -> bool {
        let (provider, balance, min_stake) = {
            let c = self.node.core();
            let s = c.db.state();
            (
                r::provider(s, &self.me),
                s.account(&self.me).industrial,
                c.effective_params(&self.node.params).market.min_stake_micro,
            )
        };
        let want = self
            .cfg
            .stake_tokens
            .saturating_mul(tb_primitives::MICRO_PER_TOKEN);
        let staked = provider.as_ref().map_or(0, |p| p.stake);
        let ready = provider.is_some() && staked >= min_stake.max(1);
        if staked >= want || tried.is_some_and(|t| h < t + RETRY_BLOCKS) {
            return ready;
        }
        let mut caps = builders::cpu_caps(self.cfg.max_leases);
        caps.fabrics = vec![self.cfg.fabric.name().to_string()];
        let mut p = vec![
            builders::register_provider(self.me, caps, FEES),
            builders::stake(self.me, want, FEES),
        ];
        if provider.is_some() {
            p.remove(0);
        }
        // Bond what the balance allows (a fee's margin kept), at least the minimum.
        let top_up = (want - staked).min(balance.saturating_sub(FEE_MARGIN_MICRO));
        if top_up < min_stake.saturating_sub(staked) || top_up == 0 {
            if provider.is_some() {
                return ready;
            }
            p.truncate(1);
        } else if let Some(TxPayload::Stake(st)) = p.last_mut() {
            st.amount = top_up;
        }
        *tried = Some(h);
        if let Err(e) = self.submit(p) {
            tracing::warn!(error = %e, "provider registration refused");
        }
        ready
    }

    fn answer_path(&self, t: &Id) -> PathBuf {
        self.dir.join(format!("{}.answer", t.to_hex()))
    }

    fn load_answer(&self, t: &Id) -> Option<Answer> {
        let p = self.answer_path(t);
        if std::fs::metadata(&p).ok()?.len() > ANSWER_FILE_BYTES_MAX {
            return None;
        }
        tb_primitives::decode(&std::fs::read(p).ok()?, ANSWER_FILE_BYTES_MAX as usize).ok()
    }

    fn save_answer(&self, t: &Id, a: &Answer) -> Result<(), String> {
        let p = self.answer_path(t);
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, tb_primitives::encode(a)).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &p).map_err(|e| e.to_string())
    }

    /// Whether `key` may be sent at `h` (never sent, or sent `RETRY_BLOCKS` ago
    /// without effect); marks it sent.
    fn due(&mut self, key: (Id, u32, u8), h: u64) -> bool {
        match self.sent.get(&key) {
            Some(at) if h < at + RETRY_BLOCKS => false,
            _ => {
                self.sent.insert(key, h);
                true
            }
        }
    }

    fn step(&mut self, h: u64) -> Result<(), String> {
        // Its live leases, the reveals due and the open disputes, from the chain's
        // indexes (bounded by what is live).
        let tasks: std::collections::BTreeSet<Id> = {
            let c = self.node.core();
            let s = c.db.state();
            let mut t: std::collections::BTreeSet<Id> = live_index(s, r::Kind::LeaseExpiry, h + 1)
                .into_iter()
                .filter(|(_, rest)| rest.as_slice() == self.me.0.as_slice())
                .map(|(t, _)| t)
                .collect();
            t.extend(
                live_index(s, r::Kind::Reveal, h)
                    .into_iter()
                    .map(|(t, _)| t),
            );
            t.extend(
                live_index(s, r::Kind::DisputeDeadline, h)
                    .into_iter()
                    .map(|(t, _)| t),
            );
            t
        };
        self.sent.retain(|(t, _, _), _| tasks.contains(t));
        for t in tasks {
            let job = match r::job(self.node.core().db.state(), &t) {
                Some(j) => j,
                None => continue,
            };
            let mine_live = job
                .leases
                .iter()
                .any(|l| l.provider == self.me && l.expiry > h);
            let sealed = job.seals.iter().any(|s| s.provider == self.me);
            let answered = job.receipts.iter().any(|x| x.provider == self.me);
            let result = if mine_live && !sealed && !answered && self.due((t, 0, 0), h) {
                self.answer(t, &job)
            } else if job.state == JobState::Revealing
                && sealed
                && !answered
                && self.due((t, 0, 1), h)
            {
                match self.load_answer(&t) {
                    Some(a) => self.reveal(t, a),
                    None => Err("sealed but no stored answer to reveal".into()),
                }
            } else if job.state == JobState::Disputed {
                self.supply_evidence(t, &job, h)
            } else {
                Ok(())
            };
            if let Err(e) = result {
                tracing::warn!(task = %t, error = %e, "provider task failed");
            }
        }
        Ok(())
    }

    /// Executes task `t` and answers it (or reports the blob malformed).
    fn answer(&mut self, t: Id, job: &r::Job) -> Result<(), String> {
        // An answer stored before a restart is the one to send again (re-running would
        // measure a different latency and no longer match a seal already sent).
        if let Some(a) = self.load_answer(&t) {
            return self.send_answer(t, job, a);
        }
        let blob = fetch_blob(&self.node, &job.spec.blob_sha256)?
            .ok_or("the job's blob is neither here nor published")?;
        let model = job_model(&self.node, job)?;
        let shape = job.spec.shape();
        let decoded = match tb_job::check_job_blob(&blob, model.as_deref(), &shape, job.spec.flops)
        {
            Ok(j) => j,
            Err(why) => {
                tracing::warn!(task = %t, why = %why, "job blob malformed; reporting it");
                return self.submit(vec![TxPayload::ReportMalformed(ReportMalformed {
                    from: self.me,
                    task_id: t,
                    fee: 0,
                    fee_selector: FEES.into(),
                    nonce: 0,
                })]);
            }
        };
        let fabric = self.cfg.fabric.name();
        let _span = tracing::info_span!("provider_job", task = %t, fabric).entered();
        let t0 = Instant::now();
        // A job whose descriptor names a profile epoch is run with the allocation
        // profiler, and its receipt commits to the epoch (zeros otherwise). The
        // profiler is process-wide: a verifier replaying at the same moment in this
        // process shows in it.
        let profile = !decoded.descriptor.profile_epoch.is_empty();
        let opts = tb_job::ExecOptions {
            replay: tb_job::ReplayMode::CrossFabric,
            profile,
        };
        let run = super::execute_cached(
            &self.node,
            &self.models,
            &decoded,
            self.fabric.as_ref(),
            opts,
        )
        .map_err(|e| format!("execution: {e}"))?;
        if let Some(ms) = self.cfg.test_exec_delay_ms {
            std::thread::sleep(Duration::from_millis(ms));
        }
        let secs = t0.elapsed().as_secs_f64();
        self.node
            .metrics
            .observe("provider_exec_seconds", &[fabric], secs);
        tracing::info!(
            ms = (secs * 1e3) as u64,
            ops = run.n_ops,
            output_digest = %hex::encode(run.output_digest),
            "job executed"
        );
        self.node
            .metrics
            .inc("provider_jobs_executed_total", &[fabric]);
        if profile {
            let p = blocktorch::tensor_profile_counters();
            self.node.metrics.set(
                "orchard_alloc_free_delta",
                &[],
                p.allocs as f64 - p.frees as f64,
            );
        }
        let mut run = run;
        if let Some(op) = self.cfg.test_corrupt_op {
            corrupt(&mut run, &decoded, op);
        }
        let leaves = run.op_digests.clone();
        let result = tb_job::ResultObject::of_run(&run)
            .encode()
            .map_err(|e| format!("result object: {e}"))?;
        self.node.blobs.put(&result).map_err(|e| e.to_string())?;
        let receipt = tb_job::Receipt::of_run_for(
            t,
            &decoded,
            &run,
            &crate::build_info::benchmark_commit(),
            self.me,
        )
        .map_err(|e| e.to_string())?;
        let signed = receipt
            .sign(&self.key, self.node.params.chain_id)
            .map_err(|e| e.to_string())?;
        let answer = Answer {
            receipt: signed,
            leaves,
        };
        self.save_answer(&t, &answer)?;
        self.send_answer(t, job, answer)
    }

    /// Seals (redundant jobs) or reveals `answer`.
    fn send_answer(&self, t: Id, job: &r::Job, answer: Answer) -> Result<(), String> {
        if job.spec.redundancy > 1 {
            // The reveal will publish the result object: its size sets the deadline.
            let result_bytes = self
                .node
                .blobs
                .get(&answer.receipt.receipt.result_sha256)
                .map_err(|e| e.to_string())?
                .ok_or("the answer's result object is not in the blob store")?
                .len() as u64;
            self.submit(vec![TxPayload::SealReceipt(SealReceipt {
                from: self.me,
                task_id: t,
                seal: answer.receipt.seal(),
                result_bytes,
                fee: 0,
                fee_selector: FEES.into(),
                nonce: 0,
            })])
        } else {
            self.reveal(t, answer)
        }
    }

    /// Publishes the trace and the result object and submits the receipt.
    fn reveal(&self, t: Id, a: Answer) -> Result<(), String> {
        let trace = tb_job::trace_blob(t, self.me, &a.leaves);
        self.node.blobs.put(&trace).map_err(|e| e.to_string())?;
        let result = self
            .node
            .blobs
            .get(&a.receipt.receipt.result_sha256)
            .map_err(|e| e.to_string())?
            .ok_or("the answer's result object is not in the blob store")?;
        let mut p = self.publish_payloads(&trace);
        p.extend(self.publish_payloads(&result));
        p.push(TxPayload::SubmitReceipt(Box::new(SubmitReceipt {
            from: self.me,
            task_id: t,
            receipt: a.receipt,
            fee: 0,
            fee_selector: FEES.into(),
            nonce: 0,
        })));
        self.submit(p)?;
        self.node
            .metrics
            .inc("provider_receipts_submitted_total", &[]);
        Ok(())
    }

    fn publish_payloads(&self, bytes: &[u8]) -> Vec<TxPayload> {
        publish_payloads(&self.node, self.me, bytes)
    }

    /// Supplies evidence to the replica disputes of `t` that owe it.
    fn supply_evidence(&mut self, t: Id, job: &r::Job, h: u64) -> Result<(), String> {
        let ds = disputes(self.node.core().db.state(), &t);
        for d in ds {
            let party = d.accused.providers.contains(&self.me)
                || d.other
                    .as_ref()
                    .is_some_and(|o| o.providers.contains(&self.me));
            if d.ruling.is_some() || d.owed != Owed::Parties || !party {
                continue;
            }
            if let Some((_, mine)) = d.bundles.iter().find(|(w, _)| *w == self.me) {
                // Named: until the chain shows the bundle, it is published again. Its
                // publication can be lost while the naming lands (a reorganisation
                // undid one and not the other, a pool dropped it), and a dispute whose
                // parties' evidence is missing at the deadline slashes them all.
                let missing = r::object(self.node.core().db.state(), mine).is_none();
                if missing && self.due((t, d.index, 3), h) {
                    if let Some(bundle) = self.node.blobs.get(mine).map_err(|e| e.to_string())? {
                        let p = self.publish_payloads(&bundle);
                        if !p.is_empty() {
                            self.submit(p)?;
                        }
                    }
                }
                continue;
            }
            if d.named_by.contains(&self.me) || !self.due((t, d.index, 2), h) {
                continue;
            }
            let Some(a) = self.load_answer(&t) else {
                continue;
            };
            let blob = fetch_blob(&self.node, &job.spec.blob_sha256)?.ok_or("job blob missing")?;
            let model = job_model(&self.node, job)?;
            let decoded =
                tb_job::Job::decode_resolved(&blob, model.as_deref()).map_err(|e| e.to_string())?;
            let c = tb_job::build_challenge(&decoded, t, &a.leaves, d.op as usize)
                .map_err(|e| format!("evidence for op {}: {e}", d.op))?;
            let bundle = c.bundle.encode().map_err(|e| e.to_string())?;
            self.node.blobs.put(&bundle).map_err(|e| e.to_string())?;
            let mut p = self.publish_payloads(&bundle);
            p.push(TxPayload::SupplyEvidence(SupplyEvidence {
                from: self.me,
                task_id: t,
                dispute: d.index,
                bundle: tb_primitives::sha256_digest(&bundle).0,
                bundle_bytes: bundle.len() as u64,
                fee: 0,
                fee_selector: FEES.into(),
                nonce: 0,
            }));
            self.submit(p)?;
        }
        Ok(())
    }
}

/// The test-only cheat (`--test-corrupt-op I`): op `op`'s output is reported wrong. When
/// the op is a declared output, its data has one bit flipped, so the result object, the
/// leaf and the output digest tell the same lie; otherwise only the leaf is wrong.
fn corrupt(run: &mut tb_job::ExecResult, job: &tb_job::Job, op: u32) {
    let Some(leaf) = run.op_digests.get(op as usize).copied() else {
        return;
    };
    let nc = job.program.consts.len();
    let mut wrong = leaf;
    wrong[0] ^= 0x01;
    for (o, decl) in run.outputs.iter_mut().zip(&job.program.outputs) {
        if decl.value as usize != nc + op as usize {
            continue;
        }
        match &mut o.data {
            blocktorch::HostData::F32(v) if !v.is_empty() => {
                v[0] = f32::from_bits(v[0].to_bits() ^ 1);
                if v[0].is_nan() {
                    v[0] = 1.0;
                }
            }
            blocktorch::HostData::U8(v) if !v.is_empty() => v[0] ^= 1,
            blocktorch::HostData::I32(v) if !v.is_empty() => v[0] ^= 1,
            blocktorch::HostData::U32(v) if !v.is_empty() => v[0] ^= 1,
            _ => continue,
        }
        if let Ok(d) = blocktorch::output_digest_sha256(&o.shape, &o.data) {
            o.digest = d;
            wrong = d;
        }
    }
    run.op_digests[op as usize] = wrong;
    run.trace_root = tb_job::trace_root(&run.op_digests);
    let ds: Vec<[u8; 32]> = run.outputs.iter().map(|o| o.digest).collect();
    // The outputs' digests as the trace tells them.
    run.output_digest = tb_job::exec::job_output_digest(&ds);
}
