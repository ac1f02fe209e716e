//! `the_block._native`: the Rust half of the `the_block` Python package.
//!
//! Everything here wraps the workspace's own crates — keys and addresses
//! (`tb_primitives`), transactions and the refusal table (`tb_chain`), the RPC's event
//! names and error codes (`tb_rpc_api`), programs, jobs,
//! runs, results and traces (`tb_job`, `blocktorch`), model import (`tb_models`) — so
//! Python signs, encodes and computes exactly what the node and `tb-cli` do. The
//! JSON-RPC client and the typed views are pure Python (`python/the_block/`).
//!
//! Errors: every failure is a Python exception of this module's hierarchy
//! ([`errors`]); a Rust panic becomes PyO3's `PanicException`, never an abort.
//! `unsafe`: none of ours; PyO3's macros generate the FFI glue.
#![forbid(unsafe_code)]

mod arrays;
mod errors;
mod job;
mod keys;
mod tx;

use pyo3::prelude::*;

/// Panics on purpose: the test that a Rust panic inside the extension reaches Python
/// as `pyo3_runtime.PanicException` (a `BaseException`) and the interpreter goes on.
#[pyfunction]
fn _panic_for_tests() {
    panic!("a panic raised on purpose by _panic_for_tests");
}

/// The module `the_block._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    keys::register(m)?;
    tx::register(m)?;
    job::register(m)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add("RUNTIME_VERSION", blocktorch::RUNTIME_VERSION)?;
    // The JSON-RPC interface's event names and error codes (`tb-rpc-api`), so the
    // Python client cannot drift from the node's.
    m.add("EVENTS", tb_rpc_api::EVENTS.to_vec())?;
    m.add("RPC_ERR_PARAMS", tb_rpc_api::ERR_PARAMS)?;
    m.add("RPC_ERR_TX_REJECTED", tb_rpc_api::ERR_TX_REJECTED)?;
    m.add("RPC_ERR_NOT_FOUND", tb_rpc_api::ERR_NOT_FOUND)?;
    m.add("RPC_ERR_UNAVAILABLE", tb_rpc_api::ERR_UNAVAILABLE)?;
    m.add("RPC_ERR_UNAUTHORIZED", tb_rpc_api::ERR_UNAUTHORIZED)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
