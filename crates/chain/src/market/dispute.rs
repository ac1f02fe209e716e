//! Verification in the chain (`docs/spec/verification.md`): receipt checks against
//! the published trace and result (the objects themselves: [`super::objects`]), sealed answers of redundant jobs and their reveal,
//! bonded challenges, replica disputes, the one-op referee in block execution, and the
//! data-availability deadlines.

use super::keys::{be, id_at, queue_key, scan_until};
use super::ledger::{credit, fail, slash};
use super::objects::{pin, pin_span, prune_objects};
use super::params::BPS;
use super::records::{
    self as r, Dispute, FailReason, Job, JobState, Kind, Outcome, Owed, ReceiptRecord, SealRecord,
    Side, SlashReason,
};
use crate::context::TxCtx;
use crate::error::TxError;
use crate::params::ChainParams;
use crate::state::{Overlay, StateRead};
use crate::tx::{Challenge, SealReceipt, SupplyEvidence};
use tb_primitives::{Address, Id};

use crate::error::MarketRefusal as K;

fn refuse(k: K, msg: impl Into<String>) -> TxError {
    TxError::market(k, msg)
}

/// The receipt checks against its published data: the trace object named by the
/// receipt is available and is a trace blob, and it matches the receipt and the job's
/// recorded shape (op count, leaf count, root — computed at publication — and the
/// output digest from the output ops' leaves); the result object it names is available,
/// is a result object with the job's output count, and gives the receipt's output
/// digest (computed at publication). O(outputs) whatever the trace's or result's size.
///
/// The trace blob names its job and provider, which must be the receipt's (whoever
/// posted it: a trace is data, and posting an honest provider's trace early harms
/// nobody — what stops a lazy replica copying is its seal, made before any reveal). A
/// result object is the answer itself, the same for every replica that agrees, so it is
/// bound to the receipt by its output digest alone.
pub fn check_receipt_data<S: StateRead + ?Sized>(
    s: &S,
    job: &Job,
    rc: &tb_job::Receipt,
) -> Result<(), TxError> {
    let o = r::object(s, &rc.result_sha256).ok_or(refuse(
        K::Unpublished,
        "the receipt's result object is not published",
    ))?;
    let res = o.result.ok_or(refuse(
        K::TraceMismatch,
        "the receipt's result object is not a result object",
    ))?;
    if res.outputs as usize != job.spec.outputs.len() {
        return Err(refuse(
            K::TraceMismatch,
            format!(
                "the result holds {} outputs, the job declares {}",
                res.outputs,
                job.spec.outputs.len()
            ),
        ));
    }
    if res.output_digest != rc.output_digest_sha256 {
        return Err(refuse(
            K::TraceMismatch,
            "the result's outputs do not give the receipt's output digest",
        ));
    }
    let o = r::object(s, &rc.trace_sha256).ok_or(refuse(
        K::Unpublished,
        "the receipt's trace is not published",
    ))?;
    let info = o.trace.ok_or(refuse(
        K::TraceMismatch,
        "the receipt's trace is not a trace blob",
    ))?;
    if info.task_id != rc.task_id || info.provider != rc.provider {
        return Err(refuse(
            K::TraceMismatch,
            "the trace is not the receipt's provider's trace of this job",
        ));
    }
    let shape = job.spec.shape();
    let mut outputs = Vec::with_capacity(shape.outputs.len());
    for op in &shape.outputs {
        let at = tb_job::verify::TRACE_HEADER_BYTES as u64 + *op as u64 * 32;
        let leaf = r::object_range(s, &rc.trace_sha256, at, 32).ok_or(refuse(
            K::TraceMismatch,
            format!("trace: the output op {op} has no leaf"),
        ))?;
        outputs.push(<[u8; 32]>::try_from(leaf.as_slice()).expect("32 bytes"));
    }
    tb_job::check_trace_parts(rc, &shape, info.leaves as u64, &info.root, &outputs)
        .map_err(|e| refuse(K::TraceMismatch, format!("trace: {e}")))
}

/// A published trace's leaves, if it is available.
fn trace_leaves<S: StateRead + ?Sized>(s: &S, sha: &[u8; 32]) -> Option<Vec<[u8; 32]>> {
    r::object_bytes(s, sha)
        .and_then(|b| tb_job::decode_trace(&b).ok())
        .map(|t| t.leaves)
}

/// Pins the published data a job's receipts and disputes rely on: its receipts'
/// traces and results, its blob and its model.
pub fn pin_job(ov: &mut Overlay<'_>, p: &super::MarketParams, job: &Job, h: u64) {
    let until = h + pin_span(p);
    for x in &job.receipts {
        pin(ov, &x.trace_sha256, until);
        pin(ov, &x.result_sha256, until);
    }
    pin(ov, &job.spec.blob_sha256, until);
    if let Some(m) = &job.spec.model_object {
        pin(ov, &m.sha256, until);
    }
}

/// The bytes of the model a job names: `Ok(None)` when its blob carries its program,
/// `Err(())` when the model is not available.
fn model_bytes<S: StateRead + ?Sized>(s: &S, job: &Job) -> Result<Option<Vec<u8>>, ()> {
    match &job.spec.model_object {
        None => Ok(None),
        Some(m) => r::object_bytes(s, &m.sha256).map(Some).ok_or(()),
    }
}

/// A replica's seal (redundant jobs): delivered inside its lease, which it closes.
pub fn apply_seal(ov: &mut Overlay<'_>, ctx: &TxCtx<'_>, sr: &SealReceipt) -> Result<(), TxError> {
    let (params, h) = (ctx.params, ctx.height);
    let p = &params.market;
    let mut job = r::job(ov, &sr.task_id).ok_or(refuse(K::UnknownTask, "unknown task"))?;
    if job.spec.redundancy < 2 {
        return Err(refuse(
            K::Stage,
            "a job without redundancy takes its receipt directly",
        ));
    }
    if job.seals.iter().any(|s| s.provider == sr.from) {
        return Err(refuse(K::Duplicate, "already sealed"));
    }
    if sr.result_bytes > tb_job::result::RESULT_BYTES_MAX as u64 {
        return Err(refuse(
            K::Fields,
            format!(
                "a result object is at most {} bytes",
                tb_job::result::RESULT_BYTES_MAX
            ),
        ));
    }
    let li = job
        .leases
        .iter()
        .position(|l| l.provider == sr.from && l.expiry >= h)
        .ok_or(refuse(
            K::NoLease,
            "the sender holds no live lease of this job",
        ))?;
    let mut pr =
        r::provider(ov, &sr.from).ok_or(refuse(K::NotProvider, "not a registered provider"))?;
    let lease = job.leases.remove(li);
    ov.delete(r::key(
        Kind::LeaseExpiry,
        &[&be(lease.expiry), &sr.task_id.0, &sr.from.0],
    ));
    pr.active_leases = pr.active_leases.saturating_sub(1);
    job.seals.push(SealRecord {
        provider: sr.from,
        seal: sr.seal,
        lease_start: lease.start,
        lease_start_ms: lease.start_ms,
        sealed_ms: ctx.timestamp_ms,
        result_bytes: sr.result_bytes,
        height: h,
    });
    if job.seals.len() as u32 >= job.spec.redundancy {
        job.state = JobState::Revealing;
        // Time to publish every trace and the largest declared result object.
        let traces = 32 * job.spec.n_ops as u64 * job.seals.len() as u64;
        let largest = job.seals.iter().map(|s| s.result_bytes).max().unwrap_or(0);
        job.reveal_deadline = h + p.reveal_blocks + publish_blocks(p, traces + largest);
        ov.put(
            r::key(Kind::Reveal, &[&be(job.reveal_deadline), &sr.task_id.0]),
            &(),
        );
        ov.delete(r::key(
            Kind::Deadline,
            &[&be(job.spec.deadline), &sr.task_id.0],
        ));
    }
    ov.put(r::key(Kind::Provider, &[&sr.from.0]), &pr);
    ov.put(r::key(Kind::Job, &[&sr.task_id.0]), &job);
    Ok(())
}

/// After the last receipt of a job arrived, a reveal deadline passed, or its last open
/// dispute was ruled: standing receipts that agree make it `Proven` (a challenge window
/// starts); disagreeing ones open replica disputes; none requeues it (or fails it past
/// its retry budget or deadline). A standing receipt whose trace is no longer available
/// or whose result is no longer available (its provider let it lapse) is its
/// provider's withheld data.
pub fn evaluate(ov: &mut Overlay<'_>, params: &ChainParams, h: u64, t: &Id, job: &mut Job) {
    let p = &params.market;
    let lapsed: Vec<Address> = job
        .receipts
        .iter()
        .filter(|x| {
            !x.refuted
                && (r::object(ov, &x.trace_sha256).is_none()
                    || r::object(ov, &x.result_sha256).is_none())
        })
        .map(|x| x.provider)
        .collect();
    for a in lapsed {
        refute(ov, params, h, t, job, &a, SlashReason::WithheldData);
    }
    let standing: Vec<ReceiptRecord> = job
        .receipts
        .iter()
        .filter(|x| !x.refuted)
        .cloned()
        .collect();
    if standing.is_empty() {
        requeue_or_fail(ov, params, h, t, job);
        return;
    }
    // Groups of agreeing receipts, in order of first appearance.
    let mut groups: Vec<Vec<&ReceiptRecord>> = Vec::new();
    for x in &standing {
        match groups
            .iter_mut()
            .find(|g| g[0].output_digest == x.output_digest && g[0].trace_root == x.trace_root)
        {
            Some(g) => g.push(x),
            None => groups.push(vec![x]),
        }
    }
    pin_job(ov, p, job, h);
    if groups.len() == 1 {
        job.state = JobState::Proven;
        job.window_end = h + p.challenge_window_blocks;
        ov.put(r::key(Kind::Challenge, &[&be(job.window_end), &t.0]), &());
        return;
    }
    // The reference group: the largest, the earliest on a tie.
    let mut ri = 0;
    for (i, g) in groups.iter().enumerate() {
        if g.len() > groups[ri].len() {
            ri = i;
        }
    }
    let traces: Vec<Vec<[u8; 32]>> = groups
        .iter()
        .map(|g| trace_leaves(ov, &g[0].trace_sha256).unwrap_or_default())
        .collect();
    let side = |g: &Vec<&ReceiptRecord>, leaves: &[[u8; 32]], op: usize| Side {
        providers: g.iter().map(|x| x.provider).collect(),
        leaf: leaves.get(op).copied().unwrap_or([0; 32]),
        trace_root: g[0].trace_root,
    };
    let owed = owed_bytes(ov, job, job.spec.blob_bytes);
    let mut opened = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        if gi == ri {
            continue;
        }
        let (reference, theirs) = (&traces[ri], &traces[gi]);
        // Receipts passed the trace checks, so both traces have `n_ops` leaves and
        // differ somewhere (their roots or output digests differ).
        let op = tb_job::first_divergence(reference, theirs)
            .unwrap_or(0)
            .min(reference.len().min(theirs.len()).saturating_sub(1));
        opened.push(Dispute {
            task_id: *t,
            index: 0,
            op: op as u32,
            accused: side(g, theirs, op),
            other: Some(side(&groups[ri], reference, op)),
            challenger: None,
            owed: Owed::Parties,
            bundles: vec![],
            named_by: vec![],
            opened: h,
            deadline: h + evidence_deadline(p, owed),
            ruling: None,
            ruled_at: 0,
        });
    }
    job.state = JobState::Disputed;
    let until = opened.iter().map(|d| d.deadline).max().unwrap_or(h);
    for mut d in opened {
        open(ov, job, &mut d);
    }
    pin_job(ov, p, job, until);
}

/// Bytes still owed for a dispute of `job`: an evidence bundle of `bundle_bytes`, and
/// the job blob unless it is available.
fn owed_bytes<S: StateRead + ?Sized>(s: &S, job: &Job, bundle_bytes: u64) -> u64 {
    let blob = if r::object(s, &job.spec.blob_sha256).is_some() {
        0
    } else {
        job.spec.blob_bytes
    };
    blob.saturating_add(bundle_bytes)
}

/// Blocks the chain allows for publishing `bytes`: `⌈bytes / evidence_bytes_per_block⌉`.
pub fn publish_blocks(p: &super::MarketParams, bytes: u64) -> u64 {
    bytes.div_ceil(p.evidence_bytes_per_block.max(1))
}

/// The evidence deadline, in blocks from now, for `owed` bytes:
/// `evidence_deadline_blocks + ⌈owed / evidence_bytes_per_block⌉`.
pub fn evidence_deadline(p: &super::MarketParams, owed: u64) -> u64 {
    p.evidence_deadline_blocks + owed.div_ceil(p.evidence_bytes_per_block.max(1))
}

/// Slashes `who` for `reason` and refutes its receipt of `job` (task `t`).
fn refute(
    ov: &mut Overlay<'_>,
    params: &ChainParams,
    h: u64,
    t: &Id,
    job: &mut Job,
    who: &Address,
    reason: SlashReason,
) -> u64 {
    let mut amount = 0;
    if let Some(mut pr) = r::provider(ov, who) {
        let digest = job
            .receipts
            .iter()
            .find(|x| &x.provider == who)
            .map(|x| x.output_digest);
        amount = slash(ov, params, h, who, &mut pr, reason, Some(*t), digest);
        ov.put(r::key(Kind::Provider, &[&who.0]), &pr);
    }
    for x in job.receipts.iter_mut().filter(|x| &x.provider == who) {
        x.refuted = true;
    }
    amount
}

fn dispute_key(t: &Id, index: u32) -> Vec<u8> {
    r::key(Kind::Dispute, &[&t.0, &index.to_be_bytes()])
}

fn deadline_key(d: &Dispute) -> Vec<u8> {
    r::key(
        Kind::DisputeDeadline,
        &[&be(d.deadline), &d.task_id.0, &d.index.to_be_bytes()],
    )
}

fn open(ov: &mut Overlay<'_>, job: &mut Job, d: &mut Dispute) {
    d.index = job.disputes;
    job.disputes += 1;
    job.disputes_open += 1;
    ov.put(deadline_key(d), &());
    ov.put(dispute_key(&d.task_id, d.index), d);
}

fn requeue_or_fail(ov: &mut Overlay<'_>, params: &ChainParams, h: u64, t: &Id, job: &mut Job) {
    let p = &params.market;
    job.receipts.clear();
    job.seals.clear();
    job.retries += 1;
    let lease = p.lane_lease_blocks[job.spec.lane as usize];
    if job.retries > p.retry_budget
        || job.spec.deadline <= h + lease
        || !r::room_for_another_round(job)
    {
        fail(ov, t, job, FailReason::Refuted, h);
        return;
    }
    job.state = JobState::Queued;
    job.eligible_from = h + 1;
    if job.queue_key.is_empty() {
        job.queue_key = queue_key(p, &job.spec, job.submitted, t);
        ov.put(job.queue_key.clone(), &());
        let mut f = r::fund(ov);
        f.queued += 1;
        ov.put(r::key(Kind::Fund, &[]), &f);
    }
    ov.put(r::key(Kind::Deadline, &[&be(job.spec.deadline), &t.0]), &());
}

/// A bonded challenge of a proven job.
pub fn apply_challenge(
    ov: &mut Overlay<'_>,
    params: &ChainParams,
    h: u64,
    c: &Challenge,
) -> Result<(), TxError> {
    let p = &params.market;
    let mut job = r::job(ov, &c.task_id).ok_or(refuse(K::UnknownTask, "unknown task"))?;
    if job.state != JobState::Proven || h > job.window_end {
        return Err(refuse(K::Stage, "the job is not in its challenge window"));
    }
    let open_now: Vec<Dispute> = disputes(ov, &c.task_id)
        .into_iter()
        .filter(|d| d.ruling.is_none())
        .collect();
    if open_now.len() as u32 >= r::CHALLENGES_PER_JOB_MAX {
        return Err(refuse(
            K::Challenge,
            format!(
                "{} challenges of this job are open",
                r::CHALLENGES_PER_JOB_MAX
            ),
        ));
    }
    if open_now
        .iter()
        .any(|d| d.challenger.is_some_and(|(a, _)| a == c.from))
    {
        return Err(refuse(
            K::Duplicate,
            "the sender already has an open challenge of this job",
        ));
    }
    if c.bond < p.challenge_bond_micro {
        return Err(refuse(
            K::Challenge,
            format!("the bond is at least {}", p.challenge_bond_micro),
        ));
    }
    if c.bundle_bytes == 0 || c.bundle_bytes > tb_job::verify::BUNDLE_BYTES_MAX as u64 {
        return Err(refuse(
            K::Fields,
            format!("a bundle is 1..={} bytes", tb_job::verify::BUNDLE_BYTES_MAX),
        ));
    }
    if c.op >= job.spec.n_ops {
        return Err(refuse(
            K::Challenge,
            format!("op {} is past the job's {} ops", c.op, job.spec.n_ops),
        ));
    }
    let standing: Vec<&ReceiptRecord> = job.receipts.iter().filter(|x| !x.refuted).collect();
    let Some(first) = standing.first() else {
        return Err(refuse(K::Challenge, "the job has no standing receipt"));
    };
    let root = first.trace_root;
    if c.proof.index != c.op as u64
        || c.proof.leaf_count != job.spec.n_ops as u64
        || !tb_job::verify_trace_proof(&root, &c.leaf, &c.proof)
    {
        return Err(refuse(
            K::Challenge,
            "the leaf's proof does not verify under the trace root",
        ));
    }
    let mut d = Dispute {
        task_id: c.task_id,
        index: 0,
        op: c.op,
        accused: Side {
            providers: standing.iter().map(|x| x.provider).collect(),
            leaf: c.leaf,
            trace_root: root,
        },
        other: None,
        challenger: Some((c.from, c.bond)),
        owed: Owed::Challenger,
        bundles: vec![(c.from, c.bundle)],
        named_by: vec![c.from],
        opened: h,
        deadline: h + evidence_deadline(p, owed_bytes(ov, &job, c.bundle_bytes)),
        ruling: None,
        ruled_at: 0,
    };
    let mut f = r::fund(ov);
    f.bonds = f
        .bonds
        .checked_add(c.bond)
        .ok_or(TxError::BalanceOverflow)?;
    ov.put(r::key(Kind::Fund, &[]), &f);
    open(ov, &mut job, &mut d);
    pin_job(ov, p, &job, d.deadline);
    pin(ov, &c.bundle, d.deadline + pin_span(p));
    ov.put(r::key(Kind::Job, &[&c.task_id.0]), &job);
    Ok(())
}

/// A party of an open replica dispute names its (published) evidence bundle. Each
/// party may name one; all named bundles are examined in order.
pub fn apply_supply(
    ov: &mut Overlay<'_>,
    params: &ChainParams,
    h: u64,
    e: &SupplyEvidence,
) -> Result<(), TxError> {
    let k = dispute_key(&e.task_id, e.dispute);
    let mut d: Dispute = r::get(ov, &k).ok_or(refuse(K::Dispute, "no such dispute"))?;
    if d.ruling.is_some() {
        return Err(refuse(K::Dispute, "the dispute is ruled"));
    }
    if d.owed != Owed::Parties {
        return Err(refuse(
            K::Dispute,
            "a challenge's evidence is the one its challenger named",
        ));
    }
    let party = d.accused.providers.contains(&e.from)
        || d.other
            .as_ref()
            .is_some_and(|o| o.providers.contains(&e.from));
    if !party {
        return Err(refuse(
            K::Dispute,
            "only a party to the dispute names its evidence",
        ));
    }
    if d.named_by.contains(&e.from) {
        return Err(refuse(
            K::Duplicate,
            "the sender already named its bundle for this dispute",
        ));
    }
    if d.bundles.iter().any(|(_, b)| *b == e.bundle) {
        return Err(refuse(
            K::Duplicate,
            "this bundle is already named for this dispute (it will be examined)",
        ));
    }
    if e.bundle_bytes == 0 || e.bundle_bytes > tb_job::verify::BUNDLE_BYTES_MAX as u64 {
        return Err(refuse(
            K::Fields,
            format!("a bundle is 1..={} bytes", tb_job::verify::BUNDLE_BYTES_MAX),
        ));
    }
    let p = &params.market;
    d.bundles.push((e.from, e.bundle));
    d.named_by.push(e.from);
    // A bundle still to be published extends the deadline by what it takes to publish.
    if r::object(ov, &e.bundle).is_none() {
        let job = r::job(ov, &e.task_id).ok_or(refuse(K::UnknownTask, "unknown task"))?;
        let deadline = h + evidence_deadline(p, owed_bytes(ov, &job, e.bundle_bytes));
        if deadline > d.deadline {
            ov.delete(deadline_key(&d));
            d.deadline = deadline;
            ov.put(deadline_key(&d), &());
        }
    }
    pin(ov, &e.bundle, d.deadline + pin_span(p));
    if let Some(job) = r::job(ov, &e.task_id) {
        pin_job(ov, p, &job, d.deadline);
    }
    ov.put(k, &d);
    Ok(())
}

/// A leased provider reports that the job's (published) blob is not a valid job
/// matching its spec. Every node checks; if so the job is void: its leases are
/// released unslashed, its escrow refunded.
pub fn apply_report(
    ov: &mut Overlay<'_>,
    _params: &ChainParams,
    h: u64,
    m: &crate::tx::ReportMalformed,
) -> Result<(), TxError> {
    let mut job = r::job(ov, &m.task_id).ok_or(refuse(K::UnknownTask, "unknown task"))?;
    if !job
        .leases
        .iter()
        .any(|l| l.provider == m.from && l.expiry >= h)
    {
        return Err(refuse(
            K::NoLease,
            "the sender holds no live lease of this job",
        ));
    }
    let blob = r::object_bytes(ov, &job.spec.blob_sha256).ok_or(refuse(
        K::Unpublished,
        "publish the job blob before reporting it",
    ))?;
    let model = model_bytes(ov, &job).map_err(|()| {
        refuse(
            K::Unpublished,
            "the job's model is not available (it is pinned while the job runs)",
        )
    })?;
    let matches = blob.len() as u64 == job.spec.blob_bytes
        && tb_job::check_job_blob(&blob, model.as_deref(), &job.spec.shape(), job.spec.flops)
            .is_ok();
    if matches {
        return Err(refuse(K::Report, "the job blob matches its spec"));
    }
    fail(ov, &m.task_id, &mut job, FailReason::Malformed, h);
    ov.put(r::key(Kind::Job, &[&m.task_id.0]), &job);
    Ok(())
}

/// What the evidence of a dispute gives.
enum Evidence {
    /// No named bundle (or the job blob) is available.
    Missing,
    /// Every available named bundle is bad; they were dropped.
    Bad,
    /// The ruling.
    Ruled(Outcome),
}

/// Whether the job blob, its model (if it names one) and at least one named bundle are
/// available (record lookups only).
fn available(ov: &Overlay<'_>, job: &Job, d: &Dispute) -> bool {
    r::object(ov, &job.spec.blob_sha256).is_some()
        && job
            .spec
            .model_object
            .is_none_or(|m| r::object(ov, &m.sha256).is_some())
        && d.bundles.iter().any(|(_, b)| r::object(ov, b).is_some())
}

/// Blob checks done in this block's end-of-block step, by blob SHA-256, declared
/// shape and declared model.
type BlobChecks = std::collections::BTreeMap<
    ([u8; 32], u32, Vec<u32>, Option<[u8; 32]>),
    Option<std::rc::Rc<(tb_job::Job, tb_job::Plan, tb_job::leaves::TracePlan)>>,
>;

/// FLOPs of referee work one unit of `adjudications_per_block_max` buys (2³²): an op
/// costs ⌈flops / 2³²⌉ units, at least one, at most a whole block's budget.
pub const REFEREE_UNIT_FLOPS: u128 = 1 << 32;

/// Examines the available named bundles in order, at most `*budget` of them (each
/// costs one, as does a void job); drops the bad ones from `d`. Each blob is read and
/// checked at most once per block.
fn examine(
    ov: &Overlay<'_>,
    job: &Job,
    d: &mut Dispute,
    budget: &mut u32,
    full: u32,
    checks: &mut BlobChecks,
) -> Evidence {
    // The check depends on the blob and on the shape the spec declares.
    let key = (
        job.spec.blob_sha256,
        job.spec.n_ops,
        job.spec.outputs.clone(),
        job.spec.model_object.map(|m| m.sha256),
    );
    let decoded = match checks.entry(key) {
        std::collections::btree_map::Entry::Occupied(e) => e.get().clone(),
        std::collections::btree_map::Entry::Vacant(e) => {
            let Some(blob) = r::object_bytes(ov, &job.spec.blob_sha256) else {
                return Evidence::Missing;
            };
            let Ok(model) = model_bytes(ov, job) else {
                return Evidence::Missing;
            };
            let checked = tb_job::checked_job_plan(&blob, model.as_deref(), &job.spec.shape())
                .ok()
                .map(std::rc::Rc::new);
            e.insert(checked).clone()
        }
    };
    let Some(decoded) = decoded else {
        // A void job costs a unit of the budget like an examined bundle (its blob was
        // checked in this block, once).
        *budget = budget.saturating_sub(1);
        return Evidence::Ruled(Outcome::VoidJob);
    };
    let (decoded, trace) = (&decoded.0, &decoded.2);
    // The referee's cost in budget units: the FLOPs of the op's segment (the op and
    // the derived ops it recomputes; a derived op's dispute runs nothing). An op dearer
    // than a whole block's budget runs alone in a block, when the budget is untouched.
    let flops = trace.dispute_flops(d.op as usize);
    let units = flops
        .div_ceil(REFEREE_UNIT_FLOPS)
        .clamp(1, full.max(1) as u128) as u32;
    let mut kept = Vec::new();
    let mut outcome = None;
    for (who, id) in std::mem::take(&mut d.bundles) {
        if outcome.is_some() || *budget < units {
            kept.push((who, id));
            continue;
        }
        let Some(bytes) = r::object_bytes(ov, &id) else {
            kept.push((who, id));
            continue;
        };
        *budget -= units;
        let Ok(bundle) = tb_job::EvidenceBundle::decode(&bytes) else {
            continue;
        };
        if bundle.task_id != d.task_id {
            continue;
        }
        // The inputs are agreed by both sides of a replica dispute, so they may be
        // proven under either trace root.
        let roots =
            std::iter::once(d.accused.trace_root).chain(d.other.as_ref().map(|o| o.trace_root));
        for root in roots {
            match tb_job::adjudicate_decoded(decoded, &root, d.op, &bundle) {
                Ok(tb_job::Ruling::Leaf(x)) => outcome = Some(Outcome::Referee(x)),
                Ok(tb_job::Ruling::NoHonestLeaf(_)) => outcome = Some(Outcome::NoHonestLeaf),
                Ok(tb_job::Ruling::VoidJob(_)) => outcome = Some(Outcome::VoidJob),
                Err(_) => continue,
            }
            break;
        }
    }
    d.bundles = kept;
    match outcome {
        Some(o) => Evidence::Ruled(o),
        None if d.bundles.iter().any(|(_, b)| r::object(ov, b).is_some()) => Evidence::Missing,
        None => Evidence::Bad,
    }
}

/// Rules a dispute: slashes the losers, settles the bond, closes other disputes of the
/// job that it made moot, and re-evaluates the job once its last dispute is closed.
fn rule(ov: &mut Overlay<'_>, params: &ChainParams, h: u64, mut d: Dispute, outcome: Outcome) {
    let p = &params.market;
    let Some(mut job) = r::job(ov, &d.task_id) else {
        return;
    };
    pin_job(ov, p, &job, h);
    // Receipts refuted meanwhile (by another dispute): nothing left to judge.
    let outcome = if outcome != Outcome::VoidJob
        && d.accused
            .providers
            .iter()
            .all(|a| job.receipts.iter().any(|x| &x.provider == a && x.refuted))
    {
        Outcome::Moot
    } else {
        outcome
    };
    let sides: Vec<&Side> = std::iter::once(&d.accused)
        .chain(d.other.as_ref())
        .collect();
    let (losers, reason): (Vec<Address>, SlashReason) = match &outcome {
        Outcome::Referee(x) => (
            sides
                .iter()
                .filter(|s| &s.leaf != x)
                .flat_map(|s| s.providers.clone())
                .collect(),
            SlashReason::LostDispute,
        ),
        Outcome::NoHonestLeaf => (
            sides.iter().flat_map(|s| s.providers.clone()).collect(),
            SlashReason::LostDispute,
        ),
        Outcome::Withheld => match d.owed {
            Owed::Challenger => (vec![], SlashReason::WithheldData),
            Owed::Parties => (
                sides.iter().flat_map(|s| s.providers.clone()).collect(),
                SlashReason::WithheldData,
            ),
        },
        Outcome::VoidJob | Outcome::Moot => (vec![], SlashReason::LostDispute),
    };
    let losers: Vec<Address> = losers
        .into_iter()
        .filter(|a| job.receipts.iter().any(|x| &x.provider == a && !x.refuted))
        .collect();
    let mut slashed_total: u64 = 0;
    for a in &losers {
        slashed_total += refute(ov, params, h, &d.task_id, &mut job, a, reason.clone());
    }
    if let Some((challenger, bond)) = d.challenger {
        let mut f = r::fund(ov);
        f.bonds -= bond;
        let self_challenge = d.accused.providers.contains(&challenger);
        let accused_lost = losers.iter().any(|a| d.accused.providers.contains(a));
        if matches!(outcome, Outcome::VoidJob | Outcome::Moot) {
            ov.put(r::key(Kind::Fund, &[]), &f);
            credit(ov, &challenger, bond);
        } else if accused_lost {
            // The bond back, and a share of the slash (which went to the fund) — not
            // for an accused provider challenging itself. Other open challenges that
            // made the same claim (same op, same leaf) share the reward equally, so
            // copying a verifier's challenge into an earlier one does not take it all.
            let reward = if self_challenge {
                0
            } else {
                ((slashed_total as u128 * p.challenge_reward_bps as u128 / BPS as u128) as u64)
                    .min(f.industrial)
            };
            f.industrial -= reward;
            ov.put(r::key(Kind::Fund, &[]), &f);
            let mut sharers: Vec<Address> = vec![challenger];
            for other in disputes(ov, &d.task_id) {
                if let (None, Some((c2, _))) = (&other.ruling, other.challenger) {
                    if other.index != d.index
                        && other.op == d.op
                        && other.accused.leaf == d.accused.leaf
                        && !other.accused.providers.contains(&c2)
                        && !sharers.contains(&c2)
                    {
                        sharers.push(c2);
                    }
                }
            }
            let each = reward / sharers.len() as u64;
            credit(
                ov,
                &challenger,
                bond + reward - each * (sharers.len() as u64 - 1),
            );
            for c2 in &sharers[1..] {
                credit(ov, c2, each);
            }
        } else {
            // The bond is lost: a share to the providers it accused (none when it
            // accused itself), the rest to the fund.
            let share = if self_challenge {
                0
            } else {
                (bond as u128 * p.challenge_reward_bps as u128 / BPS as u128) as u64
            };
            let n = d.accused.providers.len().max(1) as u64;
            let each = share / n;
            f.industrial += bond - each * d.accused.providers.len() as u64;
            ov.put(r::key(Kind::Fund, &[]), &f);
            for a in &d.accused.providers {
                credit(ov, a, each);
            }
        }
    }
    ov.delete(deadline_key(&d));
    d.ruling = Some(outcome.clone());
    d.ruled_at = h;
    ov.put(dispute_key(&d.task_id, d.index), &d);
    job.disputes_open = job.disputes_open.saturating_sub(1);
    let t = d.task_id;
    if outcome == Outcome::VoidJob {
        // The job itself is void: every other open dispute of it closes with its
        // bond back, and the requester is refunded.
        for mut other in disputes(ov, &t).into_iter().filter(|x| x.ruling.is_none()) {
            if let Some((c, bond)) = other.challenger {
                let mut f = r::fund(ov);
                f.bonds -= bond;
                ov.put(r::key(Kind::Fund, &[]), &f);
                credit(ov, &c, bond);
            }
            ov.delete(deadline_key(&other));
            other.ruling = Some(Outcome::VoidJob);
            other.ruled_at = h;
            ov.put(dispute_key(&t, other.index), &other);
        }
        job.disputes_open = 0;
        fail(ov, &t, &mut job, FailReason::Void, h);
        ov.put(r::key(Kind::Job, &[&t.0]), &job);
        return;
    }
    if job.disputes_open == 0 {
        evaluate(ov, params, h, &t, &mut job);
    }
    ov.put(r::key(Kind::Job, &[&t.0]), &job);
}

/// The verification part of the end-of-block step: reveal deadlines, disputes
/// (adjudicated when their evidence is available, at most `adjudications_per_block_max`
/// per block; ruled against the owing party at their deadline — but never while named
/// evidence is available and waiting for its turn), then object pruning.
pub fn end_block(ov: &mut Overlay<'_>, params: &ChainParams, h: u64) {
    let p = &params.market;
    // Reveal deadlines: a replica that sealed and did not reveal withheld its answer.
    for k in scan_until(ov, Kind::Reveal, h) {
        let t = id_at(&k, 10);
        ov.delete(k);
        let Some(mut job) = r::job(ov, &t) else {
            continue;
        };
        if job.state != JobState::Revealing || job.reveal_deadline > h {
            continue;
        }
        let silent: Vec<Address> = job
            .seals
            .iter()
            .map(|s| s.provider)
            .filter(|a| !job.receipts.iter().any(|x| &x.provider == a))
            .collect();
        for a in silent {
            if let Some(mut pr) = r::provider(ov, &a) {
                slash(
                    ov,
                    params,
                    h,
                    &a,
                    &mut pr,
                    SlashReason::WithheldData,
                    Some(t),
                    None,
                );
                ov.put(r::key(Kind::Provider, &[&a.0]), &pr);
            }
        }
        evaluate(ov, params, h, &t, &mut job);
        ov.put(r::key(Kind::Job, &[&t.0]), &job);
    }
    // Open disputes, oldest first (the order they were opened in, so a declared size
    // cannot buy priority).
    let mut open_now: Vec<(u64, Id, u32, u64)> = Vec::new();
    for (k, _) in ov.scan_prefix(&r::prefix(Kind::DisputeDeadline)) {
        let deadline = u64::from_be_bytes(k[2..10].try_into().unwrap_or([0xff; 8]));
        let t = id_at(&k, 10);
        let index = u32::from_be_bytes(k[42..46].try_into().unwrap_or([0xff; 4]));
        match r::get::<Dispute, _>(ov, &dispute_key(&t, index)) {
            Some(d) if d.ruling.is_none() && d.deadline == deadline => {
                open_now.push((d.opened, t, index, deadline))
            }
            _ => ov.delete(k),
        }
    }
    open_now.sort();
    let mut budget = p.adjudications_per_block_max;
    let mut checks = BlobChecks::new();
    for (_, t, index, deadline) in open_now {
        let Some(mut d) = r::get::<Dispute, _>(ov, &dispute_key(&t, index)) else {
            continue;
        };
        if d.ruling.is_some() {
            continue;
        }
        let Some(job) = r::job(ov, &t) else {
            continue;
        };
        if available(ov, &job, &d) {
            if budget == 0 {
                // Its turn comes in a later block, whatever the deadline; its data
                // stays pinned while it waits.
                wait_pinned(ov, p, &job, &d, h);
                continue;
            }
            match examine(
                ov,
                &job,
                &mut d,
                &mut budget,
                p.adjudications_per_block_max,
                &mut checks,
            ) {
                Evidence::Ruled(o) => {
                    rule(ov, params, h, d, o);
                    continue;
                }
                Evidence::Bad if d.owed == Owed::Challenger => {
                    rule(ov, params, h, d, Outcome::Withheld);
                    continue;
                }
                Evidence::Missing => {
                    // Available bundles left unexamined this block: they wait.
                    wait_pinned(ov, p, &job, &d, h);
                    ov.put(dispute_key(&t, index), &d);
                    continue;
                }
                Evidence::Bad => {
                    ov.put(dispute_key(&t, index), &d);
                }
            }
        }
        if deadline <= h {
            rule(ov, params, h, d, Outcome::Withheld);
        }
    }
    prune_objects(ov, h);
}

/// Keeps a waiting dispute's data (the job's traces and blob, its named bundles)
/// available while it waits for the referee.
fn wait_pinned(ov: &mut Overlay<'_>, p: &super::MarketParams, job: &Job, d: &Dispute, h: u64) {
    let from = h.max(d.deadline);
    pin_job(ov, p, job, from);
    for (_, b) in &d.bundles {
        pin(ov, b, from + pin_span(p));
    }
}

/// `from`'s `Challenge` of task `t` at the op of `c` (`tb_job::build_challenge`),
/// naming the encoded evidence bundle `bundle` and bonding `bond`; fee and nonce are the
/// signer's to set.
pub fn challenge_tx(
    from: Address,
    t: Id,
    c: &tb_job::Challenge,
    bundle: &[u8],
    bond: u64,
    fees: crate::tx::FeeSelector,
) -> crate::tx::Challenge {
    crate::tx::Challenge {
        from,
        task_id: t,
        op: c.op,
        leaf: c.leaf,
        proof: c.proof.clone(),
        bundle: tb_primitives::sha256_digest(bundle).0,
        bundle_bytes: bundle.len() as u64,
        bond,
        fee: 0,
        fee_selector: fees.into(),
        nonce: 0,
    }
}

/// A dispute record.
pub fn dispute<S: StateRead + ?Sized>(s: &S, t: &Id, index: u32) -> Option<Dispute> {
    r::get(s, &dispute_key(t, index))
}

/// Every dispute of a job, open and ruled.
pub fn disputes<S: StateRead + ?Sized>(s: &S, t: &Id) -> Vec<Dispute> {
    s.scan_prefix(&r::key(Kind::Dispute, &[&t.0]))
        .into_iter()
        .filter_map(|(k, _)| r::get(s, &k))
        .collect()
}

/// Checks a sealed replica's reveal: the sender sealed, has not revealed, and the
/// receipt is the one it sealed. Returns the seal.
pub fn check_reveal(job: &Job, sr: &crate::tx::SubmitReceipt) -> Result<SealRecord, TxError> {
    if job.state != JobState::Revealing {
        return Err(refuse(K::Stage, "the job's replicas have not all sealed"));
    }
    let s = job
        .seals
        .iter()
        .find(|s| s.provider == sr.from)
        .ok_or(refuse(K::Stage, "the sender sealed no answer to this job"))?;
    if job.receipts.iter().any(|x| x.provider == sr.from) {
        return Err(refuse(K::Duplicate, "already revealed"));
    }
    if sr.receipt.seal() != s.seal {
        return Err(refuse(
            K::Receipt,
            "the receipt is not the one the sender sealed",
        ));
    }
    Ok(s.clone())
}
