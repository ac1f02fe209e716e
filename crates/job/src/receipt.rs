//! The compute receipt a provider signs (the chain reuses this type).

use crate::error::{JobError, Result};
use crate::exec::ExecResult;
use crate::format::Job;
use borsh::{BorshDeserialize, BorshSerialize};
use sha2::{Digest as _, Sha256};
use tb_primitives::{decode, encode, Address, Domain, Id, SecretKey, Signature};

/// Longest `benchmark_commit` and fabric name.
pub const RECEIPT_TEXT_BYTES_MAX: usize = 64;
/// Domain of a receipt's seal.
pub const SEAL_DOMAIN: &[u8] = b"TB/market/seal/v1";
/// Largest encoded signed receipt.
pub const SIGNED_RECEIPT_BYTES_MAX: usize = 1024;

/// What a provider commits to for one job run.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Receipt {
    /// The job's task id.
    pub task_id: Id,
    /// The kernel variant digest of the fabric that ran it.
    pub kernel_variant_digest: [u8; 32],
    /// The benchmark commit the provider's fabric was measured at (free-form, ≤ 64 bytes).
    pub benchmark_commit: String,
    /// The allocation profile epoch of the run (zero when not profiled).
    pub tensor_profile_epoch: [u8; 32],
    /// Wall time of the run in milliseconds, as the provider measured it.
    pub proof_latency_ms: u64,
    /// The job's output digest.
    pub output_digest_sha256: [u8; 32],
    /// SHA-256 of the input descriptor bytes.
    pub input_descriptor_hash: [u8; 32],
    /// SHA-256 of the artifact bytes.
    pub artifact_hash: [u8; 32],
    /// Merkle root over every op output's digest.
    pub trace_root: Id,
    /// SHA-256 of the published trace blob (`verify::trace_blob(task_id, provider,
    /// leaves)`).
    pub trace_sha256: [u8; 32],
    /// SHA-256 of the published result object (`result::ResultObject`: the declared
    /// outputs, whose digests give `output_digest_sha256`).
    pub result_sha256: [u8; 32],
    /// Ops in the trace.
    pub n_ops: u64,
    /// Fabric name (`cpu`, `cuda`).
    pub fabric: String,
    /// SHA-256 of the fabric's device description.
    pub device_hash: [u8; 32],
    /// The provider.
    pub provider: Address,
}

/// A receipt and the provider's signature over its canonical bytes.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// Ed25519 over `signing_bytes(Domain::Receipt, chain_id, encode(receipt))`.
    pub signature: Signature,
}

impl Receipt {
    /// The receipt of a run of `job` (from `blob`), for the content task id
    /// `Job::task_id(blob)`.
    pub fn of_run(
        blob: &[u8],
        job: &Job,
        run: &ExecResult,
        benchmark_commit: &str,
        provider: Address,
    ) -> Result<Receipt> {
        Receipt::of_run_for(Job::task_id(blob), job, run, benchmark_commit, provider)
    }

    /// The receipt of a run of `job` for task `task_id` (the chain's), naming the trace
    /// blob `verify::trace_blob(task_id, provider, leaves)` and the run's result object
    /// (`result::ResultObject::of_run`).
    pub fn of_run_for(
        task_id: Id,
        job: &Job,
        run: &ExecResult,
        benchmark_commit: &str,
        provider: Address,
    ) -> Result<Receipt> {
        if benchmark_commit.len() > RECEIPT_TEXT_BYTES_MAX
            || run.fabric.len() > RECEIPT_TEXT_BYTES_MAX
        {
            return Err(JobError::Receipt(
                "benchmark commit or fabric name above 64 bytes".into(),
            ));
        }
        let result = crate::result::ResultObject::of_run(run).encode()?;
        Ok(Receipt {
            task_id,
            kernel_variant_digest: run.kernel_variant_digest,
            benchmark_commit: benchmark_commit.to_string(),
            tensor_profile_epoch: run.profile_epoch.unwrap_or([0; 32]),
            proof_latency_ms: run.elapsed_us / 1000,
            output_digest_sha256: run.output_digest,
            input_descriptor_hash: job.descriptor_hash,
            artifact_hash: job.artifact_hash,
            trace_root: run.trace_root,
            trace_sha256: crate::trace::trace_sha256(task_id, provider, &run.op_digests),
            result_sha256: crate::result::ResultObject::sha256(&result),
            n_ops: run.n_ops as u64,
            fabric: run.fabric.clone(),
            device_hash: Sha256::digest(run.device.as_bytes()).into(),
            provider,
        })
    }

    /// Signs the receipt; `key` must be the provider's.
    pub fn sign(self, key: &SecretKey, chain_id: u64) -> Result<SignedReceipt> {
        if key.address() != self.provider {
            return Err(JobError::Receipt(
                "the key is not the receipt's provider".into(),
            ));
        }
        if self.benchmark_commit.len() > RECEIPT_TEXT_BYTES_MAX
            || self.fabric.len() > RECEIPT_TEXT_BYTES_MAX
        {
            return Err(JobError::Receipt(
                "benchmark commit or fabric name above 64 bytes".into(),
            ));
        }
        let signature = key.sign(Domain::Receipt, chain_id, &encode(&self));
        Ok(SignedReceipt {
            receipt: self,
            signature,
        })
    }
}

impl SignedReceipt {
    /// Checks the provider's signature.
    pub fn verify(&self, chain_id: u64) -> Result<()> {
        self.receipt
            .provider
            .verify(
                Domain::Receipt,
                chain_id,
                &encode(&self.receipt),
                &self.signature,
            )
            .map_err(|e| JobError::Receipt(format!("bad signature: {e}")))
    }

    /// The seal of a replica's receipt before reveal: `SHA-256("TB/market/seal/v1" ‖
    /// canonical bytes)`. It binds the provider (its address is inside), so one replica
    /// cannot seal another's answer.
    pub fn seal(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(SEAL_DOMAIN);
        h.update(self.to_bytes());
        h.finalize().into()
    }

    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes canonical bytes (size-capped, nothing trailing, text fields bounded).
    pub fn from_bytes(b: &[u8]) -> Result<SignedReceipt> {
        let r: SignedReceipt =
            decode(b, SIGNED_RECEIPT_BYTES_MAX).map_err(|e| JobError::Receipt(e.to_string()))?;
        if r.receipt.benchmark_commit.len() > RECEIPT_TEXT_BYTES_MAX
            || r.receipt.fabric.len() > RECEIPT_TEXT_BYTES_MAX
        {
            return Err(JobError::Receipt("a text field is above 64 bytes".into()));
        }
        Ok(r)
    }
}
