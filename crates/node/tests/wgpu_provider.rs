//! A provider on the wgpu fabric through the real binary: its answer to a job is the CPU
//! reference's, the node's verifier (which replays on the CPU) finds nothing to
//! challenge, and the result turns final. Needs a WebGPU adapter (CI: lavapipe, with
//! `TB_WGPU_REQUIRED=1`); elsewhere it prints SKIPPED.

mod support;

use serde_json::json;
use support::{wait_for, Node, Ws};
use tb_primitives::SecretKey;

#[test]
fn a_wgpu_provider_answers_with_the_cpu_bits_and_its_result_turns_final() {
    if let Err(why) = blocktorch_wgpu::probe() {
        assert!(
            std::env::var_os("TB_WGPU_REQUIRED").is_none(),
            "TB_WGPU_REQUIRED is set but no WebGPU adapter is usable: {why}"
        );
        eprintln!("SKIPPED a_wgpu_provider_answers_with_the_cpu_bits_and_its_result_turns_final: no WebGPU adapter ({why})");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let a = Node::devnet(&d.path().join("a"), &[], &[("TB_FABRIC", "wgpu")]);
    let mut ws = Ws::connect(a.rpc);
    for k in ["receiptAccepted", "challengeOpened", "providerSlashed"] {
        let r = ws.call(&format!("subscribe_{k}"), json!([]));
        assert!(r["result"].is_u64() || r["result"].is_string(), "{k}: {r}");
    }
    let alice = SecretKey::dev("devnet-alice");
    a.wait_funded(&alice, 50);
    let provider = a.wait_provider();
    let job = tb_job::examples::build_example("mlp").unwrap();
    let cpu = tb_job::replay(&job, &blocktorch::CpuFabric::reference()).unwrap();
    let honest = hex::encode(cpu.output_digest);

    let tx = a.submit_by_reference(&alice, "mlp", 400);
    let task = a.wait_job(&tx, &["Leased", "Proven"], 120)["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ev = ws.wait_event(120, "receiptAccepted", |v| v["task_id"] == task.as_str());
    assert_eq!(ev["provider"], provider.as_str());
    let r = wait_for(240, "the wgpu provider's result, final", || {
        let r = a.call("compute.getResult", json!([task])).ok()?;
        (r["status"] == "final").then_some(r)
    });
    assert_eq!(r["provider"], provider.as_str(), "{r}");
    assert_eq!(
        r["output_digest"],
        honest.as_str(),
        "the CPU reference's answer: {r}"
    );
    assert!(r["refuted"].as_array().unwrap().is_empty(), "{r}");
    // The verifier replayed it on the CPU and found nothing to dispute.
    let (challenged, slashed) = (ws.seen("challengeOpened"), ws.seen("providerSlashed"));
    assert!(
        challenged.is_empty() && slashed.is_empty(),
        "an honest wgpu provider was challenged {challenged:?} or slashed {slashed:?}"
    );
}
