//! redb persistence for The Block, and the chain database that ties storage,
//! state and fork choice together.
//!
//! [`ChainDb`] imports blocks: it validates headers, stores side chains,
//! executes bodies, switches to the chain with the most work (undoing and
//! re-applying blocks through the undo journal), and writes **each import in
//! one atomic redb transaction**, so a crash leaves the store at a whole block.
//!
//! The store refuses a database written by a newer schema and migrates older
//! ones (see [`SCHEMA_VERSION`] and `docs/spec/storage.md`). This crate is one
//! of the three allowed to touch the disk; it speaks no JSON and opens no socket.
#![forbid(unsafe_code)]

mod backend;
mod chaindb;
mod migrate;
#[cfg(feature = "planted-bugs")]
pub mod planted;
mod schema;

pub use backend::{
    CacheUsage, StoreConfig, CACHE_BYTES_DEFAULT, CACHE_BYTES_MIN, FLUSH_BLOCKS_MAX,
};
pub use chaindb::{
    ChainDb, HeaderEntry, ImportError, ImportOutcome, TxLocation, STATUS_HEADER_ONLY,
    STATUS_INVALID, STATUS_VALID,
};
pub use schema::{StoreError, SCHEMA_VERSION};
