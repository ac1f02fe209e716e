//! Verification costs (issue 6): the receipt checks a node runs when a receipt is
//! submitted (signature, lease, published trace decoded and checked against the receipt
//! and the job's shape), p50/p99 per trace size; and the one-op referee as a
//! validating node runs it at adjudication (blob decode, validation, the op), per op of
//! the example jobs, with the largest op of each.

use crate::median;
use blocktorch::Fabric as _;
use std::time::Instant;
use tb_chain::devchain::Chain;
use tb_chain::execute::{apply_tx, Fees, TxCtx};
use tb_chain::market::exec::task_id;
use tb_chain::market::objects::publish_payloads;
use tb_chain::market::records as r;
use tb_chain::state::Overlay;
use tb_chain::tx::FeeSelector;
use tb_chain::tx::{JobSpec, SubmitJob, SubmitReceipt};
use tb_chain::{ChainParams, TxPayload};
use tb_primitives::{Id, SecretKey, MICRO_PER_TOKEN};

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Receipt checks for traces of `n_ops` leaves: a provider holds a lease of a job
/// declaring that many ops, its trace is published; the receipt transaction is applied
/// `samples` times, each on a fresh overlay of the same state.
pub fn bench_receipt_checks(sizes: &[u32], samples: usize) -> Result<(), String> {
    for &n_ops in sizes {
        let mut params = ChainParams::devnet();
        params.market.flops_per_unit = 1_000_000;
        let prov = SecretKey::dev("bench-provider");
        let req = SecretKey::dev("bench-requester");
        let mut chain = Chain::new(
            params,
            &[
                (prov.address(), 1_000_000 * MICRO_PER_TOKEN),
                (req.address(), 1_000_000 * MICRO_PER_TOKEN),
            ],
        );
        let setup = chain.signed(
            &prov,
            tb_chain::devchain::provider_payloads(prov.address(), 4, 100 * MICRO_PER_TOKEN),
        );
        chain.step(&setup);
        // The output op's leaf is the digest of a small published result object.
        let result = tb_job::ResultObject {
            outputs: vec![tb_job::ResultTensor {
                name: "out".into(),
                shape: vec![32],
                data: blocktorch::HostData::U8(vec![7; 32]),
            }],
        };
        let result_bytes = result.encode().map_err(|e| e.to_string())?;
        let mut leaves: Vec<[u8; 32]> = (0..n_ops)
            .map(|i| tb_primitives::sha256_digest(&i.to_le_bytes()).0)
            .collect();
        leaves[n_ops as usize - 1] = result.output_digest();
        let h = chain.height() + 1;
        let spec = JobSpec {
            blob_sha256: [7; 32],
            blob_bytes: 1_000,
            flops: 1_000_000,
            kernel_digest: [0; 32],
            model: 0,
            lane: 2,
            region: None,
            max_price: 1_000_000,
            redundancy: 1,
            deadline: h + 5_000,
            n_ops,
            outputs: vec![n_ops - 1],
            model_object: None,
        };
        // The job, then the provider's trace of it (the trace names the task).
        let mut txs = chain.signed(
            &req,
            vec![TxPayload::SubmitJob(SubmitJob {
                from: req.address(),
                spec,
                fee: 10,
                fee_selector: FeeSelector::Industrial.into(),
                nonce: 0,
            })],
        );
        let t: Id = task_id(chain.params.chain_id, h, &txs[0]);
        let trace = tb_job::trace_blob(t, prov.address(), &leaves);
        let pubs: Vec<TxPayload> = publish_payloads(&chain.params.market, prov.address(), &trace)
            .into_iter()
            .chain(publish_payloads(
                &chain.params.market,
                prov.address(),
                &result_bytes,
            ))
            .map(TxPayload::PublishBlob)
            .collect();
        txs.extend(chain.signed(&prov, pubs));
        let included = chain.step(&txs).len();
        chain.step(&[]);
        if included != txs.len() || r::job(&chain.state, &t).map(|j| j.leases.len()) != Some(1) {
            return Err(format!("{n_ops} ops: the job was not leased"));
        }
        let receipt = tb_job::Receipt {
            task_id: t,
            kernel_variant_digest: [1; 32],
            benchmark_commit: "bench".into(),
            tensor_profile_epoch: [0; 32],
            proof_latency_ms: 10,
            output_digest_sha256: leaves[n_ops as usize - 1],
            input_descriptor_hash: [2; 32],
            artifact_hash: [3; 32],
            trace_root: tb_job::trace_root(&leaves),
            trace_sha256: tb_job::trace_sha256(t, prov.address(), &leaves),
            result_sha256: tb_primitives::sha256_digest(&result_bytes).0,
            n_ops: n_ops as u64,
            fabric: "cpu".into(),
            device_hash: [4; 32],
            provider: prov.address(),
        }
        .sign(&prov, chain.params.chain_id)
        .map_err(|e| e.to_string())?;
        let tx = chain.signed(
            &prov,
            vec![TxPayload::SubmitReceipt(Box::new(SubmitReceipt {
                from: prov.address(),
                task_id: t,
                receipt,
                fee: 10,
                fee_selector: FeeSelector::Industrial.into(),
                nonce: 0,
            }))],
        );
        let ctx = TxCtx {
            params: &chain.params,
            height: chain.height() + 1,
            timestamp_ms: 0,
        };
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let mut ov = Overlay::new(&chain.state);
            let mut fees = Fees::default();
            let start = Instant::now();
            apply_tx(&mut ov, &tx[0], &mut fees, &ctx).map_err(|e| e.to_string())?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "{{\"bench\":\"receipt_check\",\"n_ops\":{n_ops},\"samples\":{samples},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
            quantile(times.clone(), 0.5),
            quantile(times.clone(), 0.99),
            quantile(times, 1.0)
        );
    }
    Ok(())
}

/// The referee as adjudication runs it (`tb_job::adjudicate`: blob decode, validation,
/// the op on the CPU reference, evidence checked) for every op of `example`; prints
/// the slowest op and the distribution.
pub fn bench_referee_ops(example: &str, runs: usize) -> Result<(), String> {
    let job = match example {
        "transformer-768" => tb_job::examples::transformer_job(2, 128, 768, 12, 3072),
        name => tb_job::examples::build_example(name),
    }
    .map_err(|e| e.to_string())?;
    let blob = job.encode().map_err(|e| e.to_string())?;
    let shape = tb_job::JobShape::of(&job).map_err(|e| e.to_string())?;
    let plan = tb_job::validate(&job).map_err(|e| e.to_string())?;
    let run = tb_job::replay(&job, blocktorch::cpu::default_fabric()).map_err(|e| e.to_string())?;
    let mut per_op: Vec<(f64, f64, usize, u128)> = Vec::new();
    for op in 0..run.n_ops {
        let c = tb_job::build_challenge(&job, Id([0; 32]), &run.op_digests, op)
            .map_err(|e| e.to_string())?;
        let mut whole = Vec::new();
        let mut alone = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let ruling =
                tb_job::adjudicate(&blob, None, &shape, &run.trace_root, op as u32, &c.bundle)
                    .map_err(|e| e.to_string())?;
            whole.push(t.elapsed().as_secs_f64() * 1e3);
            if ruling != tb_job::Ruling::Leaf(run.op_digests[op]) {
                return Err(format!("op {op}: the referee disagrees with an honest run"));
            }
            let t = Instant::now();
            tb_job::referee(&job, &run.trace_root, op, &c.bundle.inputs)
                .map_err(|e| e.to_string())?;
            alone.push(t.elapsed().as_secs_f64() * 1e3);
        }
        per_op.push((
            median(whole),
            median(alone),
            op,
            plan.costs.get(op).map(|c| c.flops).unwrap_or(0),
        ));
    }
    let largest = per_op
        .iter()
        .copied()
        .max_by_key(|x| x.3)
        .ok_or("the job has no ops")?;
    per_op.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (ms, op_ms, op, flops) = per_op[0];
    let all: Vec<f64> = per_op.iter().map(|x| x.0).collect();
    println!(
        "{{\"bench\":\"referee_ops\",\"job\":\"{example}\",\"ops\":{},\"blob_bytes\":{},\"runs\":{runs},\"slowest_op\":{op},\"slowest_op_flops\":{flops},\"slowest_adjudicate_ms\":{ms:.2},\"slowest_referee_only_ms\":{op_ms:.2},\"largest_op\":{},\"largest_op_flops\":{},\"largest_adjudicate_ms\":{:.2},\"largest_referee_only_ms\":{:.2},\"p50_adjudicate_ms\":{:.2},\"fabric\":\"{}\"}}",
        run.n_ops,
        blob.len(),
        largest.2,
        largest.3,
        largest.0,
        largest.1,
        quantile(all, 0.5),
        blocktorch::cpu::default_fabric().device_description()
    );
    Ok(())
}
