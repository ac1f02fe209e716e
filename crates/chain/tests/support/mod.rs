//! Test support: the in-memory chain driver (`tb_chain::devchain`), and example jobs
//! with honest and corrupted runs for the verification tests.
#![allow(dead_code, unused_imports)]

pub use tb_chain::devchain::{publish, sign, with_nonce, Chain};
use tb_chain::TxPayload;
use tb_primitives::{Address, SecretKey};

/// Providers on a fresh chain under `params`: keys `{prefix}0..={prefix}n` (n =
/// `stakes.len()`) hold 10,000 tokens of each kind; keys 0..n register with `caps` and
/// bond `stakes[i]` micro-tokens, built with `tb_chain::builders` (fees in Industrial
/// tokens) and included in one block; key n is no provider. Every test world that
/// needs staked providers starts here.
pub fn providers_world(
    params: tb_chain::ChainParams,
    prefix: &str,
    caps: tb_chain::tx::ProviderCaps,
    stakes: &[u64],
) -> (Chain, Vec<SecretKey>) {
    use tb_chain::builders::{register_provider, stake};
    use tb_chain::tx::FeeSelector::Industrial;
    let keys: Vec<SecretKey> = (0..=stakes.len())
        .map(|i| SecretKey::dev(&format!("{prefix}{i}")))
        .collect();
    let funded: Vec<_> = keys
        .iter()
        .map(|k| (k.address(), 10_000 * tb_primitives::MICRO_PER_TOKEN))
        .collect();
    let mut chain = Chain::new(params, &funded);
    let mut txs = Vec::new();
    for (k, s) in keys.iter().zip(stakes) {
        let a = k.address();
        txs.extend(chain.signed(
            k,
            vec![
                register_provider(a, caps.clone(), Industrial),
                stake(a, *s, Industrial),
            ],
        ));
    }
    assert_eq!(
        chain.step(&txs).len(),
        txs.len(),
        "every provider registered"
    );
    (chain, keys)
}

/// An example job with its honest run, as a test's requester and providers see it.
pub struct Example {
    pub name: &'static str,
    pub job: tb_job::Job,
    pub blob: Vec<u8>,
    pub shape: tb_job::JobShape,
    pub flops: u64,
    /// The honest trace leaves.
    pub honest: Vec<[u8; 32]>,
    /// Result objects by the output digest they give: the honest run's, and those of
    /// corrupted runs whose corruption reached an output.
    pub results: std::cell::RefCell<std::collections::BTreeMap<[u8; 32], Vec<u8>>>,
    /// The honest run's outputs.
    pub outputs: tb_job::ResultObject,
    /// The model a version 1 blob names (`Example::by_reference`).
    pub model: Option<Vec<u8>>,
}

impl Example {
    pub fn new(name: &'static str) -> Example {
        Example::of(
            name,
            tb_job::examples::build_example(name).expect("example"),
        )
    }

    /// The example as a version 1 blob naming its model (published separately).
    pub fn by_reference(name: &'static str) -> Example {
        let job = tb_job::examples::build_example(name)
            .expect("example")
            .with_form(tb_job::JobForm::ByReference);
        Example::of(name, job)
    }

    fn of(name: &'static str, job: tb_job::Job) -> Example {
        let blob = job.encode().expect("encodes");
        let plan = tb_job::validate(&job).expect("validates");
        let run = tb_job::replay(&job, blocktorch::cpu::default_fabric()).expect("runs");
        let outputs = tb_job::ResultObject::of_run(&run);
        let results = std::collections::BTreeMap::from([(
            run.output_digest,
            outputs.encode().expect("encodes"),
        )]);
        Example {
            name,
            shape: tb_job::JobShape::of(&job).expect("marketable"),
            flops: plan.total.flops as u64,
            honest: run.op_digests,
            results: std::cell::RefCell::new(results),
            outputs,
            model: (job.form == tb_job::JobForm::ByReference)
                .then(|| job.model_bytes().expect("encodes")),
            job,
            blob,
        }
    }

    /// The result object of a run with trace `leaves` (the honest run, or one
    /// [`Example::corrupted`] made).
    pub fn result_for(&self, leaves: &[[u8; 32]]) -> Vec<u8> {
        self.try_result_for(leaves)
            .expect("a result object for these leaves (honest, or made by `corrupted`)")
    }

    /// [`Example::result_for`], `None` for leaves no run gave (a guess).
    pub fn try_result_for(&self, leaves: &[[u8; 32]]) -> Option<Vec<u8>> {
        let d = self.shape.output_digest(leaves)?;
        self.results.borrow().get(&d).cloned()
    }

    pub fn spec(&self, redundancy: u32, deadline: u64) -> tb_chain::tx::JobSpec {
        tb_chain::tx::JobSpec {
            blob_sha256: tb_primitives::sha256_digest(&self.blob).0,
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
            model_object: self.model.as_ref().map(|m| tb_chain::tx::ModelSpec {
                sha256: tb_primitives::sha256_digest(m).0,
                bytes: m.len() as u64,
            }),
        }
    }

    /// A provider's signed receipt for `leaves` (honest or not) of task `t`.
    pub fn receipt(
        &self,
        key: &SecretKey,
        chain: &Chain,
        t: tb_primitives::Id,
        leaves: &[[u8; 32]],
    ) -> tb_job::SignedReceipt {
        tb_job::Receipt {
            task_id: t,
            kernel_variant_digest: [1; 32],
            benchmark_commit: "test".into(),
            tensor_profile_epoch: [0; 32],
            proof_latency_ms: 10,
            output_digest_sha256: self.shape.output_digest(leaves).expect("leaves"),
            input_descriptor_hash: self.job.descriptor_hash,
            artifact_hash: self.job.artifact_hash,
            trace_root: tb_job::trace_root(leaves),
            trace_sha256: tb_job::trace_sha256(t, key.address(), leaves),
            // A guess has no result object: such a receipt can never be accepted.
            result_sha256: self
                .try_result_for(leaves)
                .map_or([0; 32], |r| tb_primitives::sha256_digest(&r).0),
            n_ops: leaves.len() as u64,
            fabric: "cpu".into(),
            device_hash: [2; 32],
            provider: key.address(),
        }
        .sign(key, chain.params.chain_id)
        .expect("the provider's key")
    }

    /// The leaves of a run whose op `op` output had bit `bit` of its data flipped (the
    /// leaf of the corrupted tensor replaces the honest leaf); `None` when the flip
    /// does not change the leaf (a NaN payload bit). A derived op's leaf is fixed
    /// whatever its data, so there the liar's leaf is `DERIVED_LEAF` with bit `bit`
    /// (mod 256) flipped.
    pub fn corrupted(&self, op: usize, bit: usize) -> Option<Vec<[u8; 32]>> {
        let nc = self.job.program.consts.len();
        let plan = tb_job::validate(&self.job).expect("validates");
        let kinds = tb_job::leaves::TracePlan::of(&self.job.program, &plan).kinds;
        if kinds[op] == tb_job::leaves::LeafKind::Derived {
            let mut leaves = self.honest.clone();
            let at = bit % 256;
            leaves[op][at / 8] ^= 1 << (at % 8);
            return Some(leaves);
        }
        let (shape, data) = tb_job::replay_values(
            &self.job,
            blocktorch::cpu::default_fabric(),
            &[(nc + op) as u32],
        )
        .expect("replays")
        .remove(0);
        let mut bytes = data.to_le_bytes_canonical();
        if bytes.is_empty() {
            return None;
        }
        let at = bit % (bytes.len() * 8);
        bytes[at / 8] ^= 1 << (at % 8);
        let flipped = match data.dtype() {
            blocktorch::DType::F32 => blocktorch::HostData::F32(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            blocktorch::DType::U8 => blocktorch::HostData::U8(bytes),
            blocktorch::DType::I32 => blocktorch::HostData::I32(
                bytes
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            blocktorch::DType::U32 => blocktorch::HostData::U32(
                bytes
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
        };
        let leaf = tb_job::leaves::leaf_of_host(kinds[op], &shape, &flipped).expect("leaf");
        if leaf == self.honest[op] {
            return None;
        }
        let mut leaves = self.honest.clone();
        leaves[op] = leaf;
        // A corruption of an output op corrupts the result the liar publishes too.
        let mut outputs = self.outputs.clone();
        let mut changed = false;
        for (i, o) in self.shape.outputs.iter().enumerate() {
            if *o as usize == op {
                outputs.outputs[i].data = flipped.clone();
                changed = true;
            }
        }
        if changed {
            match outputs.encode() {
                Ok(b) => {
                    self.results
                        .borrow_mut()
                        .insert(self.shape.output_digest(&leaves).expect("leaves"), b);
                }
                // A flip to a non-canonical NaN cannot be published as a result.
                Err(_) => return None,
            }
        }
        Some(leaves)
    }
}

/// The payloads that publish provider `who`'s trace `leaves` of task `t`.
pub fn publish_trace(
    chain: &Chain,
    who: Address,
    t: tb_primitives::Id,
    leaves: &[[u8; 32]],
) -> Vec<TxPayload> {
    publish(chain, who, &tb_job::trace_blob(t, who, leaves))
}

/// The payloads that publish provider `who`'s answer `leaves` of task `t` of `ex`: its
/// trace and its result object.
pub fn publish_answer(
    chain: &Chain,
    who: Address,
    ex: &Example,
    t: tb_primitives::Id,
    leaves: &[[u8; 32]],
) -> Vec<TxPayload> {
    let mut p = publish_trace(chain, who, t, leaves);
    p.extend(publish(chain, who, &ex.result_for(leaves)));
    p
}

/// A one-output result object holding `seed` (u8 × 32), and the output digest it
/// gives: the answer of the synthetic one-op jobs of the market tests.
pub fn seeded_result(seed: [u8; 32]) -> (Vec<u8>, [u8; 32]) {
    let r = tb_job::ResultObject {
        outputs: vec![tb_job::ResultTensor {
            name: "out".into(),
            shape: vec![32],
            data: blocktorch::HostData::U8(seed.to_vec()),
        }],
    };
    (r.encode().expect("encodes"), r.output_digest())
}

/// `from`'s bonded challenge `c` of task `t` of example `ex` as payloads
/// (`tb_chain::devchain::challenge_payloads` with the example's blob).
pub fn challenge_payloads(
    chain: &Chain,
    from: Address,
    ex: &Example,
    t: tb_primitives::Id,
    c: &tb_job::Challenge,
    withhold: bool,
) -> Vec<TxPayload> {
    tb_chain::devchain::challenge_payloads(chain, from, &ex.blob, t, c, withhold)
}

/// The small, fast market the transaction-level tests run: 20-block epochs, 2-block
/// challenge windows, short leases, no retries or lease renewals, a 1-token minimum
/// stake, cheap units, no availability floor.
pub fn small_market_params() -> tb_chain::ChainParams {
    let mut p = tb_chain::ChainParams::devnet();
    let m = &mut p.market;
    m.epoch_blocks = 20;
    m.challenge_window_blocks = 2;
    m.lane_lease_blocks = vec![4, 8, 16];
    m.heartbeat_interval_blocks = 2;
    m.heartbeat_timeout_blocks = 8;
    m.lease_renewals_max = 0;
    m.retry_budget = 0;
    m.min_stake_micro = tb_primitives::MICRO_PER_TOKEN;
    m.unbonding_blocks = 5;
    m.jail_blocks = 100;
    m.flops_per_unit = 1_000_000;
    m.availability_floor_bps = 0;
    p
}
