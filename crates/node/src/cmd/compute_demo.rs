//! The demo's compute loop, Publish → Submit → Execute → Receipt → Result → Verify →
//! Settle/Slash, on a fresh in-memory devnet (`tb_chain::devchain`) with funded
//! accounts: a requester publishes an example model once and submits two jobs that
//! name it and carry only their input; two staked providers run them on the CPU fabric
//! with the real executor — one honestly, one reporting a wrong digest for one op —
//! and publish their traces and result objects; the requester reads a provisional
//! result at once; a verifier replays every proven job, finds the first differing op
//! and challenges it; every node's referee re-executes that op; the liar is slashed,
//! the honest receipt is settled at the epoch's end and its result is final, and
//! conservation is checked after every block.

use tb_chain::devchain::{challenge_payloads, provider_payloads, publish, Chain};
use tb_chain::market::audit::{check_running_totals, supply};
use tb_chain::market::exec::task_id;
use tb_chain::market::query;
use tb_chain::market::records::{self as r, JobState, Outcome};
use tb_chain::tx::FeeSelector;
use tb_chain::tx::{JobSpec, SubmitJob, SubmitReceipt};
use tb_chain::{ChainParams, SignedTx, StateRead, TxPayload};
use tb_primitives::{Address, Amount, Id, SecretKey, MICRO_PER_TOKEN};

type R<T> = Result<T, String>;

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn short(b: &[u8]) -> String {
    b.iter().take(6).map(|x| format!("{x:02x}")).collect()
}

/// One block; checks conservation and the market's running totals.
fn step(chain: &mut Chain, txs: &[SignedTx]) -> R<usize> {
    let n = chain.step(txs).len();
    if supply(&chain.state).total() != chain.minted {
        return Err(format!("conservation broke at height {}", chain.height()));
    }
    check_running_totals(&chain.state)?;
    Ok(n)
}

/// Runs the compute loop; prints each step.
pub fn run() -> R<()> {
    let mut params = ChainParams::devnet();
    params.market.epoch_blocks = 20;
    params.market.challenge_window_blocks = 3;
    params.market.flops_per_unit = 1_000_000;
    params.market.validate().map_err(s)?;
    let requester = SecretKey::dev("demo-requester");
    let honest = SecretKey::dev("demo-provider-honest");
    let liar = SecretKey::dev("demo-provider-liar");
    let verifier = SecretKey::dev("demo-verifier");
    let names = [
        (honest.address(), "honest provider"),
        (liar.address(), "lying provider"),
    ];
    let name = |a: &Address| {
        names
            .iter()
            .find(|(x, _)| x == a)
            .map(|(_, n)| *n)
            .unwrap_or("?")
    };
    let funded: Vec<(Address, u64)> = [&requester, &honest, &liar, &verifier]
        .iter()
        .map(|k| (k.address(), 1_000 * MICRO_PER_TOKEN))
        .collect();
    let mut chain = Chain::new(params, &funded);
    let mut txs = Vec::new();
    for k in [&honest, &liar] {
        txs.extend(chain.signed(k, provider_payloads(k.address(), 1, 100 * MICRO_PER_TOKEN)));
    }
    step(&mut chain, &txs)?;
    println!("    two providers registered, 100 tokens staked each");

    // Publish: the requester publishes the model (program and weights) once.
    let job = tb_job::examples::build_example("mlp")
        .map_err(s)?
        .with_form(tb_job::JobForm::ByReference);
    let model = job.model_bytes().map_err(s)?;
    let model_tx = chain.signed(&requester, publish(&chain, requester.address(), &model));
    step(&mut chain, &model_tx)?;
    println!(
        "    Publish: the mlp model ({} bytes of program and weights) published once, as object {}…",
        model.len(),
        short(&job.artifact_hash)
    );
    // Submit: two jobs name it and carry only their input.
    let blob = job.encode().map_err(s)?;
    let plan = tb_job::validate(&job).map_err(s)?;
    let shape = tb_job::JobShape::of(&job).map_err(s)?;
    let h = chain.height() + 1;
    let spec = JobSpec::for_job(&blob, &job, 2_000_000, 1, h + 100).map_err(s)?;
    let mut payloads = publish(&chain, requester.address(), &blob);
    let chunks = payloads.len();
    for _ in 0..2 {
        payloads.push(TxPayload::SubmitJob(SubmitJob {
            from: requester.address(),
            spec: spec.clone(),
            fee: 10,
            fee_selector: FeeSelector::Industrial.into(),
            nonce: 0,
        }));
    }
    let signed = chain.signed(&requester, payloads);
    let tasks: Vec<Id> = signed[chunks..]
        .iter()
        .map(|tx| task_id(chain.params.chain_id, h, tx))
        .collect();
    step(&mut chain, &signed)?;
    println!(
        "    Submit: a job blob naming the model ({} bytes: the input and its descriptor; {} ops, {:.1} MFLOP) published; 2 jobs submitted, {} escrowed",
        blob.len(),
        shape.n_ops,
        plan.total.flops as f64 / 1e6,
        Amount(2 * spec.max_price)
    );
    step(&mut chain, &[])?;

    // Execute and Receipt: each provider runs the job leased to it.
    let mut txs = Vec::new();
    for t in &tasks {
        let j = r::job(&chain.state, t).ok_or("job missing")?;
        let lease = j.leases.first().ok_or("the job was not leased")?;
        let key = if lease.provider == honest.address() {
            &honest
        } else {
            &liar
        };
        txs.extend(answer(
            &chain,
            &job,
            &shape,
            *t,
            key,
            key.address() == liar.address(),
            &name,
        )?);
    }
    let n = step(&mut chain, &txs)?;
    let checks = tb_chain::telemetry::proof_verification_latency();
    println!(
        "    Receipt: {n} transactions (traces, result objects and signed receipts) in block {}; both receipts passed the checks (node-local check time p50 ≤ {} µs)",
        chain.height(),
        checks.quantile_upper_us(0.5)
    );
    for t in &tasks {
        println!("    Result: {}", read_result(&chain, t)?);
    }

    // Verify: the verifier replays every proven job and challenges a divergence.
    let mut txs = Vec::new();
    for t in &tasks {
        let j = r::job(&chain.state, t).ok_or("job missing")?;
        if j.state != JobState::Proven {
            return Err(format!("task {} is {:?}, not proven", short(&t.0), j.state));
        }
        let rc = &j.receipts[0];
        let bytes = r::object_bytes(&chain.state, &rc.trace_sha256).ok_or("trace missing")?;
        let theirs = tb_job::decode_trace(&bytes).map_err(s)?.leaves;
        let replay = tb_job::replay(&job, blocktorch::cpu::default_fabric()).map_err(s)?;
        match tb_job::first_divergence(&replay.op_digests, &theirs) {
            None => println!(
                "    Verify: replay of task {}… ({}) agrees with its trace",
                short(&t.0),
                name(&rc.provider)
            ),
            Some(op) => {
                let c = tb_job::build_challenge(&job, *t, &theirs, op).map_err(s)?;
                let bundle = c.bundle.encode().map_err(s)?;
                println!(
                    "    Verify: replay of task {}… ({}) first differs at op {op} ({}); challenge with a {}-byte evidence bundle and a {} bond",
                    short(&t.0),
                    name(&rc.provider),
                    tb_job::program::node_name(&job.program.ops[op].node),
                    bundle.len(),
                    Amount(chain.params.market.challenge_bond_micro)
                );
                let p = challenge_payloads(&chain, verifier.address(), &blob, *t, &c, false);
                txs.extend(chain.signed(&verifier, p));
            }
        }
    }
    let before = chain.state.account(&verifier.address()).industrial;
    step(&mut chain, &txs)?;
    for t in &tasks {
        for d in tb_chain::market::dispute::disputes(&chain.state, t) {
            match d.ruling {
                Some(Outcome::Referee(x)) => println!(
                    "    Slash: every node's referee re-executed op {} alone: digest {}… ≠ the leaf {}… claimed",
                    d.op,
                    short(&x),
                    short(&d.accused.leaf)
                ),
                other => return Err(format!("the dispute ended {other:?}")),
            }
        }
    }
    for sl in query::slashes(&chain.state, None) {
        println!(
            "    Slash: the {} lost {} of its stake ({:?}); the verifier earned {} over its fees",
            name(&sl.provider),
            Amount(sl.amount),
            sl.reason,
            Amount(
                chain
                    .state
                    .account(&verifier.address())
                    .industrial
                    .saturating_sub(before)
            )
        );
    }

    // The convicted job is requeued; the honest provider takes and answers it. Then
    // the windows end and the epoch pays.
    for _ in 0..200 {
        let done = tasks
            .iter()
            .all(|t| r::job(&chain.state, t).is_some_and(|j| j.state == JobState::Settled));
        if done {
            break;
        }
        let mut txs = Vec::new();
        let h = chain.height() + 1;
        for t in &tasks {
            let j = r::job(&chain.state, t).ok_or("job missing")?;
            if j.leases
                .iter()
                .any(|l| l.provider == honest.address() && l.expiry >= h)
            {
                println!(
                    "    Requeue: task {}… leased again, to the honest provider",
                    short(&t.0)
                );
                txs.extend(answer(&chain, &job, &shape, *t, &honest, false, &name)?);
            }
        }
        step(&mut chain, &txs)?;
    }
    let epoch = chain.height() / chain.params.market.epoch_blocks;
    for p in (1..=epoch).flat_map(|e| query::payouts(&chain.state, e)) {
        println!(
            "    Settle: epoch {} paid the {} {} for task {}… ({} milli-units; miner {}, fund {})",
            p.epoch,
            name(&p.item.provider),
            Amount(p.provider_micro),
            short(&p.item.task_id.0),
            p.item.units_milli,
            Amount(p.miner_micro),
            Amount(p.fund_micro)
        );
    }
    let states: Vec<String> = tasks
        .iter()
        .filter_map(|t| r::job(&chain.state, t).map(|j| format!("{:?}", j.state)))
        .collect();
    if states != ["Settled", "Settled"] {
        return Err(format!("unexpected job states {states:?}"));
    }
    for t in &tasks {
        println!("    Result: {}", read_result(&chain, t)?);
    }
    let f = query::fund(&chain.state);
    println!(
        "    both jobs settled; the fund holds {} (slash, fund shares, treasury); conservation held after each of {} blocks",
        Amount(f.industrial),
        chain.height()
    );
    Ok(())
}

/// What the requester reads of task `t`'s answer: the standing receipt's result object
/// from the chain, checked against the receipt (every output digest recomputed), with
/// its status (provisional while challengeable, final once verified).
fn read_result(chain: &Chain, t: &Id) -> R<String> {
    let j = r::job(&chain.state, t).ok_or("job missing")?;
    let rc = j
        .receipts
        .iter()
        .find(|x| !x.refuted)
        .ok_or("no standing receipt")?;
    let bytes = r::object_bytes(&chain.state, &rc.result_sha256).ok_or("result missing")?;
    let res = tb_job::ResultObject::decode(&bytes).map_err(s)?;
    if res.output_digest() != rc.output_digest {
        return Err("the result does not match its receipt".into());
    }
    let status = match j.state {
        JobState::Verified | JobState::Settled => "final",
        _ => "provisional",
    };
    let o = &res.outputs[0];
    let preview = match &o.data {
        blocktorch::HostData::F32(v) => format!("{:?}", &v[..v.len().min(3)]),
        other => format!("{} {:?} elements", other.len(), other.dtype()),
    };
    Ok(format!(
        "task {}… reads {status}: output {:?} {:?} = {preview}…, digests match the receipt ({}…)",
        short(&t.0),
        o.name,
        o.shape,
        short(&rc.output_digest)
    ))
}

/// `key`'s answer to task `t`: it runs the job on the CPU fabric, (when `lie`) reports a
/// wrong digest for op 5, publishes its trace and result object, and submits its signed
/// receipt.
fn answer(
    chain: &Chain,
    job: &tb_job::Job,
    shape: &tb_job::JobShape,
    t: Id,
    key: &SecretKey,
    lie: bool,
    name: &dyn Fn(&Address) -> &'static str,
) -> R<Vec<SignedTx>> {
    let cpu = blocktorch::cpu::default_fabric();
    let run = tb_job::execute(job, cpu, tb_job::ExecOptions::default()).map_err(s)?;
    let mut leaves = run.op_digests.clone();
    let mut receipt =
        tb_job::Receipt::of_run_for(t, job, &run, "demo", key.address()).map_err(s)?;
    receipt.proof_latency_ms = receipt.proof_latency_ms.min(50);
    if lie {
        // The lie: a wrong digest for op 5, everything else as computed.
        leaves[5][0] ^= 0x01;
        receipt.trace_root = tb_job::trace_root(&leaves);
        receipt.trace_sha256 = tb_job::trace_sha256(t, key.address(), &leaves);
        receipt.output_digest_sha256 = shape.output_digest(&leaves).ok_or("leaves")?;
    }
    println!(
        "    Execute: the {} ran task {}… on {} — output {}…, trace root {}…",
        name(&key.address()),
        short(&t.0),
        run.device,
        short(&receipt.output_digest_sha256),
        short(&receipt.trace_root.0)
    );
    let signed = receipt.sign(key, chain.params.chain_id).map_err(s)?;
    let mut p = publish(
        chain,
        key.address(),
        &tb_job::trace_blob(t, key.address(), &leaves),
    );
    let result = tb_job::ResultObject::of_run(&run).encode().map_err(s)?;
    p.extend(publish(chain, key.address(), &result));
    p.push(TxPayload::SubmitReceipt(Box::new(SubmitReceipt {
        from: key.address(),
        task_id: t,
        receipt: signed,
        fee: 10,
        fee_selector: FeeSelector::Industrial.into(),
        nonce: 0,
    })));
    Ok(chain.signed(key, p))
}
