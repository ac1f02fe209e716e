//! Transactions: the seeds' transfer payload and @handle registration inside a
//! closed transaction-kind enum that later issues extend (market, governance).

use crate::params::ChainParams;
use borsh::{BorshDeserialize, BorshSerialize};
use tb_primitives::{blake3_id, decode, encode, Address, DecodeError, Domain, Id, Signature};

/// How the fee is paid: `0` consumer, `1` industrial, `2` split evenly (the
/// odd micro-unit, if any, is paid in consumer tokens).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeeSelector {
    Consumer = 0,
    Industrial = 1,
    Split = 2,
}

impl FeeSelector {
    /// The byte a transaction carries (`fee_selector`).
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The selector a transaction's byte names, if any.
    pub fn from_u8(v: u8) -> Option<FeeSelector> {
        match v {
            0 => Some(FeeSelector::Consumer),
            1 => Some(FeeSelector::Industrial),
            2 => Some(FeeSelector::Split),
            _ => None,
        }
    }

    /// Every selector, in byte order.
    pub const ALL: [FeeSelector; 3] = [
        FeeSelector::Consumer,
        FeeSelector::Industrial,
        FeeSelector::Split,
    ];

    /// `(consumer part, industrial part)` of `fee`.
    pub fn split(self, fee: u64) -> (u64, u64) {
        match self {
            FeeSelector::Consumer => (fee, 0),
            FeeSelector::Industrial => (0, fee),
            FeeSelector::Split => (fee - fee / 2, fee / 2),
        }
    }
}

/// The byte written into a transaction (`fee_selector: FeeSelector::Consumer.into()`).
impl From<FeeSelector> for u8 {
    fn from(s: FeeSelector) -> u8 {
        s.as_u8()
    }
}

/// The seeds' transfer payload.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Transfer {
    pub from: Address,
    pub to: Address,
    pub amount_consumer: u64,
    pub amount_industrial: u64,
    pub fee: u64,
    /// A [`FeeSelector`]'s byte. Every transaction kind keeps the raw byte (the wire
    /// form) so that an unknown selector decodes and is refused at admission with its
    /// own code (`invalid_selector`, 2) rather than as a malformed transaction; code
    /// reads it through [`TxPayload::selector`].
    pub fee_selector: u8,
    pub nonce: u64,
    pub memo: Vec<u8>,
}

/// Claim an @handle for the sender (see `handle_is_valid` for the syntax).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RegisterHandle {
    pub from: Address,
    pub handle: String,
    pub fee: u64,
    pub fee_selector: u8,
    pub nonce: u64,
}

/// Most fabrics, kernel digests and model classes a provider may declare, and the
/// longest fabric name.
pub const PROVIDER_FABRICS_MAX: usize = 4;
/// See [`PROVIDER_FABRICS_MAX`].
pub const PROVIDER_DIGESTS_MAX: usize = 8;
/// See [`PROVIDER_FABRICS_MAX`].
pub const PROVIDER_MODELS_MAX: usize = 16;
/// See [`PROVIDER_FABRICS_MAX`].
pub const FABRIC_NAME_BYTES_MAX: usize = 16;

/// What a provider can run.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ProviderCaps {
    /// Fabric names (`cpu`, `cuda`).
    pub fabrics: Vec<String>,
    /// Kernel variant digests of those fabrics.
    pub kernel_digests: Vec<[u8; 32]>,
    /// Model classes it accepts.
    pub models: Vec<u16>,
    /// Region tag.
    pub region: u16,
    /// Leases it can hold at once.
    pub max_leases: u32,
}

/// Register as a compute provider (or update the capabilities).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RegisterProvider {
    pub from: Address,
    pub caps: ProviderCaps,
    pub fee: u64,
    pub fee_selector: u8,
    pub nonce: u64,
}

/// Bond (`Stake`) or start unbonding (`Unstake`) Industrial tokens.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StakeChange {
    pub from: Address,
    pub amount: u64,
    pub fee: u64,
    pub fee_selector: u8,
    pub nonce: u64,
}

/// A provider's liveness signal: renews its leases, counts toward availability.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Heartbeat {
    pub from: Address,
    pub fee: u64,
    pub fee_selector: u8,
    pub nonce: u64,
}

/// A published model a job runs (a version 1 job blob names it): the SHA-256 and size
/// of the model object (the artifact: the program and its weights).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ModelSpec {
    /// SHA-256 of the model object.
    pub sha256: [u8; 32],
    /// Its size in bytes.
    pub bytes: u64,
}

/// What a requester asks for. Everything here is re-derivable by anyone holding the
/// job blob (and the model it names): its SHA-256, size, FLOP cost, kernel digest,
/// shape and model.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct JobSpec {
    /// SHA-256 of the BlockTorchJobV0 blob.
    pub blob_sha256: [u8; 32],
    /// Its size in bytes.
    pub blob_bytes: u64,
    /// Its FLOP cost (`tb_job::validate(..).total.flops`).
    pub flops: u64,
    /// The kernel digest it declares (all zero: any fabric).
    pub kernel_digest: [u8; 32],
    /// Model class (an index into `model_weights_bps`).
    pub model: u16,
    /// Lane (latency window).
    pub lane: u8,
    /// Required region, if any.
    pub region: Option<u16>,
    /// Most the requester pays per replica, Industrial micro-tokens.
    pub max_price: u64,
    /// Replicas (redundancy k).
    pub redundancy: u32,
    /// Height by which it must be proven.
    pub deadline: u64,
    /// Ops in its program (= leaves of every honest trace).
    pub n_ops: u32,
    /// The op whose output each declared output is, in declaration order
    /// (`tb_job::JobShape`; 1..=16).
    pub outputs: Vec<u32>,
    /// The published model a version 1 blob names (`None`: the blob carries its
    /// program). It must be available when the job is submitted, and stays pinned while
    /// the job may need it.
    pub model_object: Option<ModelSpec>,
}

impl JobSpec {
    /// The spec of `job` (decoded from `blob`) for any fabric, model class 0, lane 0, any
    /// region: everything derived from the blob (digest, size, FLOPs, shape, and the
    /// model a version 1 blob names), the price, redundancy and deadline as given. `Err`
    /// when the job does not validate or has no trace shape the chain accepts.
    pub fn for_job(
        blob: &[u8],
        job: &tb_job::Job,
        max_price: u64,
        redundancy: u32,
        deadline: u64,
    ) -> Result<JobSpec, tb_job::JobError> {
        let plan = tb_job::validate(job)?;
        let shape = tb_job::JobShape::of(job)?;
        Ok(JobSpec {
            blob_sha256: tb_primitives::sha256_digest(blob).0,
            blob_bytes: blob.len() as u64,
            flops: u64::try_from(plan.total.flops).unwrap_or(u64::MAX),
            kernel_digest: [0; 32],
            model: 0,
            lane: 0,
            region: None,
            max_price,
            redundancy,
            deadline,
            n_ops: shape.n_ops,
            outputs: shape.outputs,
            model_object: (job.form == tb_job::JobForm::ByReference).then(|| {
                let m = job.model_ref();
                ModelSpec {
                    sha256: m.sha256,
                    bytes: m.bytes,
                }
            }),
        })
    }

    /// The program shape the chain checks receipts against.
    pub fn shape(&self) -> tb_job::JobShape {
        tb_job::JobShape {
            n_ops: self.n_ops,
            outputs: self.outputs.clone(),
        }
    }
}

/// Submit a job; `max_price × redundancy` is escrowed.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SubmitJob {
    pub from: Address,
    pub spec: JobSpec,
    pub fee: u64,
    pub fee_selector: u8,
    pub nonce: u64,
}

/// One chunk of a content-addressed object (a trace, an evidence bundle, a job blob):
/// `object` is the SHA-256 of the whole, `total_bytes` its size; chunk `index` covers
/// bytes `index·C .. min((index+1)·C, total)` with `C = blob_chunk_bytes`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PublishBlob {
    pub from: Address,
    pub object: [u8; 32],
    pub total_bytes: u64,
    pub index: u32,
    pub bytes: Vec<u8>,
    pub fee: u64,
    pub fee_selector: u8,
    pub nonce: u64,
}

/// A replica's sealed answer to a redundant job (`SignedReceipt::seal`): delivered
/// inside the lease, revealed once every replica has sealed. `result_bytes` declares
/// the size of the result object the reveal will publish: the reveal deadline leaves
/// time to publish the largest declared (at most `tb_job::result::RESULT_BYTES_MAX`).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SealReceipt {
    pub from: Address,
    pub task_id: Id,
    pub seal: [u8; 32],
    pub result_bytes: u64,
    pub fee: u64,
    pub fee_selector: u8,
    pub nonce: u64,
}

/// A bonded challenge of a proven job's trace at op `op`: the trace's leaf there with
/// its inclusion proof, and the SHA-256 of the evidence bundle (op `op`'s input
/// tensors) the challenger makes available by the evidence deadline, together with the
/// job blob.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Challenge {
    pub from: Address,
    pub task_id: Id,
    pub op: u32,
    pub leaf: [u8; 32],
    pub proof: tb_primitives::MerkleProof,
    pub bundle: [u8; 32],
    /// The bundle's size, which (with the job blob's, if it is not yet available) sets
    /// the evidence deadline.
    pub bundle_bytes: u64,
    pub bond: u64,
    pub fee: u64,
    pub fee_selector: u8,
    pub nonce: u64,
}

/// A party of an open replica dispute names its evidence bundle: published already, or
/// to be published, `bundle_bytes` long (which extends the dispute's deadline).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SupplyEvidence {
    pub from: Address,
    pub task_id: Id,
    pub dispute: u32,
    pub bundle: [u8; 32],
    pub bundle_bytes: u64,
    pub fee: u64,
    pub fee_selector: u8,
    pub nonce: u64,
}

/// A leased provider's report that the job's blob (published) is not a valid job
/// matching its spec: checked by every node; if so, the job is void.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ReportMalformed {
    pub from: Address,
    pub task_id: Id,
    pub fee: u64,
    pub fee_selector: u8,
    pub nonce: u64,
}

/// A leased provider's signed receipt for a job.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SubmitReceipt {
    pub from: Address,
    pub task_id: Id,
    pub receipt: tb_job::SignedReceipt,
    pub fee: u64,
    pub fee_selector: u8,
    pub nonce: u64,
}

/// Most parameter changes in one proposal.
pub const PROPOSAL_CHANGES_MAX: usize = 8;
pub use crate::market::params::PARAM_NAME_BYTES_MAX;

/// One market parameter set to a value (a name of `MarketParams::GOVERNABLE`).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ParamChange {
    pub name: String,
    pub value: u64,
}

/// What a passed proposal does (`docs/spec/governance.md`).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProposalMode {
    /// Recorded and reported against live receipts, never applied.
    Shadow,
    /// Applied at the end of block `activate_at`.
    Apply { activate_at: u64 },
    /// Restores the values an active proposal replaced, at the end of block
    /// `activate_at`. Carries no changes of its own.
    Rollback { proposal: u64, activate_at: u64 },
}

/// A governance proposal's content.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ProposalBody {
    /// `1..=PROPOSAL_CHANGES_MAX` changes (none for a rollback), distinct names.
    pub changes: Vec<ParamChange>,
    pub mode: ProposalMode,
}

/// Propose a change of the market parameters (a staked provider only).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Propose {
    pub from: Address,
    pub body: ProposalBody,
    pub fee: u64,
    pub fee_selector: u8,
    pub nonce: u64,
}

/// A staked provider's vote on a proposal in its voting period; a later vote of the
/// same voter on the same proposal replaces the earlier one.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    pub from: Address,
    pub proposal: u64,
    pub approve: bool,
    pub fee: u64,
    pub fee_selector: u8,
    pub nonce: u64,
}

/// Every kind of transaction. Closed: a new kind is a new variant, and every
/// `match` over it is exhaustive.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum TxPayload {
    Transfer(Transfer),
    RegisterHandle(RegisterHandle),
    RegisterProvider(RegisterProvider),
    Stake(StakeChange),
    Unstake(StakeChange),
    Heartbeat(Heartbeat),
    SubmitJob(SubmitJob),
    SubmitReceipt(Box<SubmitReceipt>),
    PublishBlob(PublishBlob),
    SealReceipt(SealReceipt),
    Challenge(Box<Challenge>),
    SupplyEvidence(SupplyEvidence),
    ReportMalformed(ReportMalformed),
    Propose(Propose),
    Vote(Vote),
}

/// `$p.$field` for every payload kind (they all carry the common fields).
macro_rules! common {
    ($self:expr, $field:ident) => {
        match $self {
            TxPayload::Transfer(t) => t.$field,
            TxPayload::RegisterHandle(t) => t.$field,
            TxPayload::RegisterProvider(t) => t.$field,
            TxPayload::Stake(t) | TxPayload::Unstake(t) => t.$field,
            TxPayload::Heartbeat(t) => t.$field,
            TxPayload::SubmitJob(t) => t.$field,
            TxPayload::SubmitReceipt(t) => t.$field,
            TxPayload::PublishBlob(t) => t.$field,
            TxPayload::SealReceipt(t) => t.$field,
            TxPayload::Challenge(t) => t.$field,
            TxPayload::SupplyEvidence(t) => t.$field,
            TxPayload::ReportMalformed(t) => t.$field,
            TxPayload::Propose(t) => t.$field,
            TxPayload::Vote(t) => t.$field,
        }
    };
}

macro_rules! common_mut {
    ($self:expr, $field:ident) => {
        match $self {
            TxPayload::Transfer(t) => &mut t.$field,
            TxPayload::RegisterHandle(t) => &mut t.$field,
            TxPayload::RegisterProvider(t) => &mut t.$field,
            TxPayload::Stake(t) | TxPayload::Unstake(t) => &mut t.$field,
            TxPayload::Heartbeat(t) => &mut t.$field,
            TxPayload::SubmitJob(t) => &mut t.$field,
            TxPayload::SubmitReceipt(t) => &mut t.$field,
            TxPayload::PublishBlob(t) => &mut t.$field,
            TxPayload::SealReceipt(t) => &mut t.$field,
            TxPayload::Challenge(t) => &mut t.$field,
            TxPayload::SupplyEvidence(t) => &mut t.$field,
            TxPayload::ReportMalformed(t) => &mut t.$field,
            TxPayload::Propose(t) => &mut t.$field,
            TxPayload::Vote(t) => &mut t.$field,
        }
    };
}

impl TxPayload {
    pub fn from(&self) -> Address {
        common!(self, from)
    }

    /// The sender field, to set (builders and tests).
    pub fn from_mut(&mut self) -> &mut Address {
        common_mut!(self, from)
    }

    pub fn nonce(&self) -> u64 {
        common!(self, nonce)
    }

    /// The nonce field, to set (builders, wallets).
    pub fn nonce_mut(&mut self) -> &mut u64 {
        common_mut!(self, nonce)
    }

    /// The fee field, to set (builders, wallets).
    pub fn fee_mut(&mut self) -> &mut u64 {
        common_mut!(self, fee)
    }

    pub fn fee(&self) -> u64 {
        common!(self, fee)
    }

    /// The kind's name (`Transfer`, `SubmitJob`, …), as RPC views and tools print it.
    pub fn kind(&self) -> &'static str {
        match self {
            TxPayload::Transfer(_) => "Transfer",
            TxPayload::RegisterHandle(_) => "RegisterHandle",
            TxPayload::RegisterProvider(_) => "RegisterProvider",
            TxPayload::Stake(_) => "Stake",
            TxPayload::Unstake(_) => "Unstake",
            TxPayload::Heartbeat(_) => "Heartbeat",
            TxPayload::SubmitJob(_) => "SubmitJob",
            TxPayload::SubmitReceipt(_) => "SubmitReceipt",
            TxPayload::PublishBlob(_) => "PublishBlob",
            TxPayload::SealReceipt(_) => "SealReceipt",
            TxPayload::Challenge(_) => "Challenge",
            TxPayload::SupplyEvidence(_) => "SupplyEvidence",
            TxPayload::ReportMalformed(_) => "ReportMalformed",
            TxPayload::Propose(_) => "Propose",
            TxPayload::Vote(_) => "Vote",
        }
    }

    /// The raw selector byte (see [`Transfer::fee_selector`]).
    pub fn fee_selector(&self) -> u8 {
        common!(self, fee_selector)
    }

    /// The fee selector, or `None` for a byte that names none.
    pub fn selector(&self) -> Option<FeeSelector> {
        FeeSelector::from_u8(self.fee_selector())
    }

    /// `(consumer, industrial)` the sender must hold for this transaction:
    /// amounts plus the fee split by its selector. `None` on an unknown
    /// selector or an overflow.
    pub fn spend(&self) -> Option<(u64, u64)> {
        let (fc, fi) = self.selector()?.split(self.fee());
        let (ac, ai) = match self {
            TxPayload::Transfer(t) => (t.amount_consumer, t.amount_industrial),
            TxPayload::Stake(s) => (0, s.amount),
            TxPayload::SubmitJob(j) => (0, j.spec.max_price.checked_mul(j.spec.redundancy as u64)?),
            TxPayload::Challenge(c) => (0, c.bond),
            TxPayload::RegisterHandle(_)
            | TxPayload::PublishBlob(_)
            | TxPayload::SealReceipt(_)
            | TxPayload::SupplyEvidence(_)
            | TxPayload::ReportMalformed(_)
            | TxPayload::RegisterProvider(_)
            | TxPayload::Unstake(_)
            | TxPayload::Heartbeat(_)
            | TxPayload::SubmitReceipt(_)
            | TxPayload::Propose(_)
            | TxPayload::Vote(_) => (0, 0),
        };
        Some((ac.checked_add(fc)?, ai.checked_add(fi)?))
    }
}

/// A payload with the sender's signature over
/// `signing_bytes(Domain::Transaction, chain_id, encode(payload))`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedTx {
    pub payload: TxPayload,
    pub signature: Signature,
}

impl SignedTx {
    /// Signs `payload` with its fee raised, where needed, to `floor_per_byte` times the
    /// signed transaction's encoded length (a mempool's fee floor; the encoded length
    /// does not depend on the fee's value).
    pub fn sign_paying_floor(
        mut payload: TxPayload,
        key: &tb_primitives::SecretKey,
        chain_id: u64,
        floor_per_byte: u64,
    ) -> SignedTx {
        let len = SignedTx::sign(payload.clone(), key, chain_id).encoded_len() as u64;
        let fee = payload.fee_mut();
        *fee = (*fee).max(len.saturating_mul(floor_per_byte));
        SignedTx::sign(payload, key, chain_id)
    }

    pub fn sign(payload: TxPayload, key: &tb_primitives::SecretKey, chain_id: u64) -> SignedTx {
        let signature = key.sign(Domain::Transaction, chain_id, &encode(&payload));
        SignedTx { payload, signature }
    }

    /// BLAKE3 of the canonical encoding (signature included).
    pub fn id(&self) -> Id {
        blake3_id(b"TB/tx-id/v1", &encode(self))
    }

    pub fn encoded_len(&self) -> usize {
        encode(self).len()
    }

    /// Strict signature check.
    pub fn verify_signature(&self, chain_id: u64) -> bool {
        self.payload
            .from()
            .verify(
                Domain::Transaction,
                chain_id,
                &encode(&self.payload),
                &self.signature,
            )
            .is_ok()
    }

    /// Decodes one signed transaction, refusing anything above
    /// [`ChainParams::tx_decode_bytes_max`] (a published chunk may exceed
    /// `tx_bytes_max`; `check_stateless` holds every other kind to it).
    pub fn decode(bytes: &[u8], params: &ChainParams) -> Result<SignedTx, DecodeError> {
        decode(bytes, params.tx_decode_bytes_max())
    }
}

/// Maximum handle length in bytes, `@` included.
pub const HANDLE_BYTES_MAX: usize = 32;
/// Minimum handle length in bytes, `@` included.
pub const HANDLE_BYTES_MIN: usize = 4;

/// Handle syntax: `@` then 3 to 31 characters from `a-z 0-9 _`, the first a
/// letter. Lower case only, so one handle has exactly one spelling.
pub fn handle_is_valid(h: &str) -> bool {
    let b = h.as_bytes();
    (HANDLE_BYTES_MIN..=HANDLE_BYTES_MAX).contains(&b.len())
        && b[0] == b'@'
        && b[1].is_ascii_lowercase()
        && b[2..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_syntax() {
        for ok in [
            "@bob",
            "@alice_01",
            "@a23",
            "@abcdefghijklmnopqrstuvwxyz01234",
        ] {
            assert!(handle_is_valid(ok), "{ok}");
        }
        for bad in [
            "bob",
            "@bo",
            "@Bob",
            "@1bob",
            "@bo b",
            "@bob!",
            "",
            "@",
            "@abcdefghijklmnopqrstuvwxyz012345",
            "@bøb",
        ] {
            assert!(!handle_is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn fee_split() {
        assert_eq!(FeeSelector::Split.split(7), (4, 3));
        assert_eq!(FeeSelector::Consumer.split(7), (7, 0));
        assert_eq!(FeeSelector::Industrial.split(7), (0, 7));
        assert_eq!(FeeSelector::from_u8(3), None);
    }
}
