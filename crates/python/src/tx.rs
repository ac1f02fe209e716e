//! Transactions: payloads of each kind, their canonical encoding, signing and
//! verification, and the mempool's refusal table.

use crate::errors;
use crate::keys::{AddressArg, PyAddress, PySecretKey};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use tb_chain::market::params::MarketParams;
use tb_chain::tx::{PublishBlob, RegisterHandle, StakeChange, SubmitJob, Transfer};
use tb_chain::{ChainParams, SignedTx, TxPayload};
use tb_primitives::{decode, encode};

/// The devnet's chain id: the default of `sign_tx` and `verify_signed_tx`.
const DEVNET_CHAIN_ID: u64 = 1337;

/// The longest payload `decode_payload` reads: a published chunk's transaction is the
/// largest a chain accepts.
fn payload_bytes_max() -> usize {
    ChainParams::devnet().tx_decode_bytes_max()
}

/// One transaction's payload (any kind). Build it with the static constructors
/// (`TxPayload.transfer`, …) or `decode_payload`; sign it with `sign_tx`. The
/// `fee_selector` byte is kept as given: one other than 0, 1 or 2 is the node's to
/// refuse (`ErrInvalidSelector`, code 2), as from any other client.
#[pyclass(name = "TxPayload", module = "the_block", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct PyTxPayload(pub TxPayload);

#[pymethods]
impl PyTxPayload {
    /// The seeds' transfer: `amount_consumer` and `amount_industrial` micro-tokens
    /// from `from_` to `to`; `fee_selector` 0 pays the fee in consumer tokens, 1 in
    /// industrial, 2 half each.
    #[staticmethod]
    #[pyo3(signature = (*, from_, to, amount_consumer=0, amount_industrial=0, fee=0, fee_selector=0, nonce=0, memo=Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn transfer(
        from_: AddressArg,
        to: AddressArg,
        amount_consumer: u64,
        amount_industrial: u64,
        fee: u64,
        fee_selector: u8,
        nonce: u64,
        memo: Vec<u8>,
    ) -> PyResult<PyTxPayload> {
        Ok(PyTxPayload(TxPayload::Transfer(Transfer {
            from: from_.0,
            to: to.0,
            amount_consumer,
            amount_industrial,
            fee,
            fee_selector,
            nonce,
            memo,
        })))
    }

    /// Claim the @handle `handle` for `from_`.
    #[staticmethod]
    #[pyo3(signature = (*, from_, handle, fee=0, fee_selector=0, nonce=0))]
    fn register_handle(
        from_: AddressArg,
        handle: String,
        fee: u64,
        fee_selector: u8,
        nonce: u64,
    ) -> PyResult<PyTxPayload> {
        Ok(PyTxPayload(TxPayload::RegisterHandle(RegisterHandle {
            from: from_.0,
            handle,
            fee,
            fee_selector,
            nonce,
        })))
    }

    /// Bond `amount` industrial micro-tokens as a provider's stake.
    #[staticmethod]
    #[pyo3(signature = (*, from_, amount, fee=0, fee_selector=1, nonce=0))]
    fn stake(
        from_: AddressArg,
        amount: u64,
        fee: u64,
        fee_selector: u8,
        nonce: u64,
    ) -> PyTxPayload {
        PyTxPayload(TxPayload::Stake(stake_change(
            from_,
            amount,
            fee,
            fee_selector,
            nonce,
        )))
    }

    /// Start unbonding `amount` industrial micro-tokens of stake.
    #[staticmethod]
    #[pyo3(signature = (*, from_, amount, fee=0, fee_selector=1, nonce=0))]
    fn unstake(
        from_: AddressArg,
        amount: u64,
        fee: u64,
        fee_selector: u8,
        nonce: u64,
    ) -> PyTxPayload {
        PyTxPayload(TxPayload::Unstake(stake_change(
            from_,
            amount,
            fee,
            fee_selector,
            nonce,
        )))
    }

    /// Submit `job` (encoded as `blob`) at `max_price` micro-tokens per replica,
    /// `redundancy` replicas, by height `deadline`, in `lane`: the spec the chain
    /// records, derived from the blob exactly as `tb-cli compute submit` derives it.
    /// `fee` pays the rent of keeping a named model available (`model_rent_micro`).
    #[staticmethod]
    #[pyo3(signature = (*, from_, blob, job, max_price, redundancy=1, deadline, lane=0, fee=0, fee_selector=1, nonce=0))]
    #[allow(clippy::too_many_arguments)]
    fn submit_job(
        from_: AddressArg,
        blob: &[u8],
        job: &crate::job::PyJob,
        max_price: u64,
        redundancy: u32,
        deadline: u64,
        lane: u8,
        fee: u64,
        fee_selector: u8,
        nonce: u64,
    ) -> PyResult<PyTxPayload> {
        let mut spec =
            tb_chain::tx::JobSpec::for_job(blob, &job.0, max_price, redundancy, deadline)
                .map_err(|e| errors::job("the job's spec", e))?;
        spec.lane = lane;
        Ok(PyTxPayload(TxPayload::SubmitJob(SubmitJob {
            from: from_.0,
            spec,
            fee,
            fee_selector,
            nonce,
        })))
    }

    /// Chunk `index` of publishing `object` on chain in chunks of `chunk_bytes`, with
    /// the minimum blob fee at `blob_fee_per_kib_micro` (both from `chain.info`'s
    /// `market`).
    #[staticmethod]
    #[pyo3(signature = (*, from_, object, index, chunk_bytes, blob_fee_per_kib_micro, fee_selector=1, nonce=0))]
    #[allow(clippy::too_many_arguments)]
    fn publish_chunk(
        from_: AddressArg,
        object: &[u8],
        index: u32,
        chunk_bytes: u64,
        blob_fee_per_kib_micro: u64,
        fee_selector: u8,
        nonce: u64,
    ) -> PyResult<PyTxPayload> {
        if chunk_bytes == 0 {
            return Err(errors::job("publish_chunk", "chunk_bytes must be positive"));
        }
        let start = (index as u64).saturating_mul(chunk_bytes);
        if start >= object.len() as u64 {
            return Err(errors::job(
                "publish_chunk",
                format!(
                    "chunk {index} starts past the object's {} bytes",
                    object.len()
                ),
            ));
        }
        let end = (start + chunk_bytes).min(object.len() as u64) as usize;
        let bytes = object[start as usize..end].to_vec();
        let market = market(blob_fee_per_kib_micro, 1);
        Ok(PyTxPayload(TxPayload::PublishBlob(PublishBlob {
            from: from_.0,
            object: tb_primitives::sha256_digest(object).0,
            total_bytes: object.len() as u64,
            index,
            fee: tb_chain::market::objects::blob_fee_min(&market, bytes.len()),
            bytes,
            fee_selector,
            nonce,
        })))
    }

    /// The kind's name: `Transfer`, `RegisterHandle`, `SubmitJob`, …
    #[getter]
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    /// The sender.
    #[getter]
    fn from_(&self) -> PyAddress {
        PyAddress(self.0.from())
    }

    #[getter]
    fn nonce(&self) -> u64 {
        self.0.nonce()
    }

    #[getter]
    fn fee(&self) -> u64 {
        self.0.fee()
    }

    #[getter]
    fn fee_selector(&self) -> u8 {
        self.0.fee_selector()
    }

    /// The same payload with another nonce.
    fn with_nonce(&self, nonce: u64) -> PyTxPayload {
        let mut p = self.0.clone();
        *p.nonce_mut() = nonce;
        PyTxPayload(p)
    }

    /// The same payload with another fee.
    fn with_fee(&self, fee: u64) -> PyTxPayload {
        let mut p = self.0.clone();
        *p.fee_mut() = fee;
        PyTxPayload(p)
    }

    /// The same payload from another sender.
    fn with_from(&self, from_: AddressArg) -> PyTxPayload {
        let mut p = self.0.clone();
        *p.from_mut() = from_.0;
        PyTxPayload(p)
    }

    /// The kind's own fields (beyond `from_`, `fee`, `fee_selector`, `nonce`).
    fn fields<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        match &self.0 {
            TxPayload::Transfer(t) => {
                d.set_item("to", PyAddress(t.to))?;
                d.set_item("amount_consumer", t.amount_consumer)?;
                d.set_item("amount_industrial", t.amount_industrial)?;
                d.set_item("memo", PyBytes::new(py, &t.memo))?;
            }
            TxPayload::RegisterHandle(h) => d.set_item("handle", &h.handle)?,
            TxPayload::Stake(s) | TxPayload::Unstake(s) => d.set_item("amount", s.amount)?,
            TxPayload::SubmitJob(j) => {
                let s = &j.spec;
                d.set_item("blob_sha256", hex::encode(s.blob_sha256))?;
                d.set_item("blob_bytes", s.blob_bytes)?;
                d.set_item("flops", s.flops)?;
                d.set_item("max_price", s.max_price)?;
                d.set_item("redundancy", s.redundancy)?;
                d.set_item("deadline", s.deadline)?;
                d.set_item("lane", s.lane)?;
                d.set_item("n_ops", s.n_ops)?;
                d.set_item(
                    "model_sha256",
                    s.model_object.map(|m| hex::encode(m.sha256)),
                )?;
            }
            TxPayload::PublishBlob(b) => {
                d.set_item("object", hex::encode(b.object))?;
                d.set_item("total_bytes", b.total_bytes)?;
                d.set_item("index", b.index)?;
                d.set_item("bytes", b.bytes.len())?;
            }
            _ => {}
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "TxPayload(kind={}, from_={}, nonce={}, fee={}, fee_selector={})",
            self.0.kind(),
            self.0.from(),
            self.0.nonce(),
            self.0.fee(),
            self.0.fee_selector()
        )
    }
}

fn stake_change(
    from_: AddressArg,
    amount: u64,
    fee: u64,
    fee_selector: u8,
    nonce: u64,
) -> StakeChange {
    StakeChange {
        from: from_.0,
        amount,
        fee,
        fee_selector,
        nonce,
    }
}

/// A signed transaction.
#[pyclass(name = "SignedTx", module = "the_block", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct PySignedTx(pub SignedTx);

#[pymethods]
impl PySignedTx {
    /// A signed transaction from its canonical bytes (what `submit_tx` takes).
    #[staticmethod]
    fn from_bytes(b: &[u8]) -> PyResult<PySignedTx> {
        SignedTx::decode(b, &ChainParams::devnet())
            .map(PySignedTx)
            .map_err(|e| errors::decode("signed transaction", e))
    }

    #[getter]
    fn payload(&self) -> PyTxPayload {
        PyTxPayload(self.0.payload.clone())
    }

    /// The 64-byte Ed25519 signature.
    #[getter]
    fn signature<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.signature.0)
    }

    /// The transaction id (hex): what the node answers `submit_tx` with.
    #[getter]
    fn id(&self) -> String {
        self.0.id().to_hex()
    }

    /// The canonical bytes.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &encode(&self.0))
    }

    /// The canonical bytes in hex (what `submit_tx` takes).
    fn hex(&self) -> String {
        hex::encode(encode(&self.0))
    }

    fn __len__(&self) -> usize {
        self.0.encoded_len()
    }

    fn __repr__(&self) -> String {
        format!(
            "SignedTx(id={}, kind={})",
            self.0.id().to_hex(),
            self.0.payload.kind()
        )
    }
}

/// The canonical bytes of a payload (what is signed, after the domain tag and chain
/// id).
#[pyfunction]
fn canonical_payload<'py>(py: Python<'py>, payload: &PyTxPayload) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &encode(&payload.0))
}

/// The payload whose canonical bytes are `b`; `DecodeError` for anything else.
#[pyfunction]
fn decode_payload(b: &[u8]) -> PyResult<PyTxPayload> {
    decode::<TxPayload>(b, payload_bytes_max())
        .map(PyTxPayload)
        .map_err(|e| errors::decode("transaction payload", e))
}

/// Signs `payload` with `key` for chain `chain_id`. The sender is set to the key's
/// address; the fee is raised to `fee_floor_per_byte` × the signed size when that is
/// more (the node's floor: `chain.info`'s `fee_floor_per_byte`).
#[pyfunction]
#[pyo3(signature = (key, payload, chain_id=DEVNET_CHAIN_ID, fee_floor_per_byte=0))]
fn sign_tx(
    key: &PySecretKey,
    payload: &PyTxPayload,
    chain_id: u64,
    fee_floor_per_byte: u64,
) -> PySignedTx {
    let mut p = payload.0.clone();
    *p.from_mut() = key.0.address();
    PySignedTx(SignedTx::sign_paying_floor(
        p,
        &key.0,
        chain_id,
        fee_floor_per_byte,
    ))
}

/// Whether `tx`'s signature verifies (strictly, as consensus does) for `chain_id`.
#[pyfunction]
#[pyo3(signature = (tx, chain_id=DEVNET_CHAIN_ID))]
fn verify_signed_tx(tx: &PySignedTx, chain_id: u64) -> bool {
    tx.0.verify_signature(chain_id)
}

/// Market parameters for the fee arithmetic (the devnet's, with the given fee and
/// retention).
fn market(blob_fee_per_kib_micro: u64, blob_retention_blocks: u64) -> MarketParams {
    let mut m = ChainParams::devnet().market;
    m.blob_fee_per_kib_micro = blob_fee_per_kib_micro;
    m.blob_retention_blocks = blob_retention_blocks.max(1);
    m
}

/// The minimum fee of publishing a chunk of `length` bytes.
#[pyfunction]
fn blob_fee_min(length: usize, blob_fee_per_kib_micro: u64) -> u64 {
    tb_chain::market::objects::blob_fee_min(&market(blob_fee_per_kib_micro, 1), length)
}

/// The rent (micro-tokens) of keeping a published model of `size` bytes, available
/// until height `expires`, available until `until` (a job's deadline): what that job's
/// `SubmitJob` fee must at least pay.
#[pyfunction]
fn model_rent_micro(
    size: u64,
    expires: u64,
    until: u64,
    blob_fee_per_kib_micro: u64,
    blob_retention_blocks: u64,
) -> u64 {
    let m = market(blob_fee_per_kib_micro, blob_retention_blocks);
    tb_chain::market::pricing::model_rent_micro(&m, size, expires, until)
}

/// Every mempool refusal as `(code, reason)`, in code order (`docs/spec/errors.md`).
#[pyfunction]
fn rejection_reasons() -> Vec<(u16, &'static str)> {
    tb_chain::mempool::REJECTION_REASONS.to_vec()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTxPayload>()?;
    m.add_class::<PySignedTx>()?;
    m.add_function(wrap_pyfunction!(canonical_payload, m)?)?;
    m.add_function(wrap_pyfunction!(decode_payload, m)?)?;
    m.add_function(wrap_pyfunction!(sign_tx, m)?)?;
    m.add_function(wrap_pyfunction!(verify_signed_tx, m)?)?;
    m.add_function(wrap_pyfunction!(blob_fee_min, m)?)?;
    m.add_function(wrap_pyfunction!(model_rent_micro, m)?)?;
    m.add_function(wrap_pyfunction!(rejection_reasons, m)?)?;
    m.add("DEVNET_CHAIN_ID", DEVNET_CHAIN_ID)?;
    Ok(())
}
