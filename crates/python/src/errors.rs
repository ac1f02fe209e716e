//! The exception hierarchy the native module raises. `TheBlockError` is the root of
//! everything the package raises on purpose; the Python side (`the_block.errors`)
//! adds the RPC errors and one class per mempool refusal code beneath it.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    the_block,
    TheBlockError,
    PyException,
    "The root of every error The Block's package raises on purpose."
);
create_exception!(
    the_block,
    DecodeError,
    TheBlockError,
    "Bytes that are not a valid encoding of what was asked for (a transaction, a payload, a job blob, a result, a trace)."
);
create_exception!(
    the_block,
    KeyFormatError,
    TheBlockError,
    "A key or address that cannot be read: bad hex, a wrong length, a checksum mismatch, a PEM document that is not an Ed25519 PKCS#8 key."
);
create_exception!(
    the_block,
    JobError,
    TheBlockError,
    "A program or job that does not build, validate or run (shapes, dtypes, limits, the fabric)."
);
create_exception!(
    the_block,
    ModelError,
    TheBlockError,
    "A model that cannot be imported (an unsupported ONNX op, a missing weight, a bad tokenizer)."
);

/// `DecodeError(what: e)`.
pub fn decode(what: &str, e: impl std::fmt::Display) -> PyErr {
    DecodeError::new_err(format!("{what}: {e}"))
}

/// `KeyFormatError(e)`.
pub fn key(e: impl std::fmt::Display) -> PyErr {
    KeyFormatError::new_err(e.to_string())
}

/// `JobError(what: e)`.
pub fn job(what: &str, e: impl std::fmt::Display) -> PyErr {
    JobError::new_err(format!("{what}: {e}"))
}

/// `ModelError(what: e)`.
pub fn model(what: &str, e: impl std::fmt::Display) -> PyErr {
    ModelError::new_err(format!("{what}: {e}"))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("TheBlockError", py.get_type::<TheBlockError>())?;
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add("KeyFormatError", py.get_type::<KeyFormatError>())?;
    m.add("JobError", py.get_type::<JobError>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    Ok(())
}
