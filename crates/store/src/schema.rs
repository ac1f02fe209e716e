//! Tables, the schema version and migrations.

use redb::{Database, TableDefinition};
use thiserror::Error;

/// The schema version this code writes. History:
/// * v1 — headers, bodies, canonical index, state, undo journal.
/// * v2 — adds the transaction index (`tx_index`) (a v1 store was migrated by
///   rebuilding it from the canonical chain, until v3).
/// * v3 — the same tables; the consensus encodings of the compute market changed
///   (jobs naming a published model, result objects named by receipts, job failure
///   reasons, the chain-measured latency SLA), so blocks and state written by a v1 or
///   v2 build do not decode here: such a store is refused ([`StoreError::Obsolete`]).
/// * v4 — the state on disk: the trie's inner nodes in `trie` (position → node) and
///   its root reference in `meta` (`trie_root`), so opening reads no entry and
///   rebuilds nothing; a published chunk's entry in `state` holds its value hash
///   and its bytes live once in `chunks` (value hash → bytes), counted in
///   `chunk_refs`; `meta.state_tip` names the block the state tables are at (up to
///   `FLUSH_BLOCKS_MAX` canonical blocks behind the tip, re-executed on open). A v3
///   store is migrated when opened (`migrate_v3`).
/// * v5 — adds the job index (`job_index`: the canonical chain's jobs in submission
///   order, for `compute.listJobs`). A v4 store is migrated when opened by building it
///   from the canonical chain's bodies (`migrate_v4`).
pub const SCHEMA_VERSION: u32 = 5;
/// The oldest schema this build opens.
pub const SCHEMA_VERSION_MIN: u32 = 3;

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// block id → encoded `HeaderEntry`
pub(crate) const HEADERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("headers");
/// block id → encoded `Vec<SignedTx>`
pub(crate) const BODIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bodies");
/// height → canonical block id
pub(crate) const CANON: TableDefinition<u64, &[u8]> = TableDefinition::new("canon");
/// state key → state value (a published chunk's entry: its value hash)
pub(crate) const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
/// trie node position (34 bytes) → encoded inner node (134 bytes)
pub(crate) const TRIE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("trie");
/// value hash → a published chunk's entry value (its bytes, as the state commits to them)
pub(crate) const CHUNKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("chunks");
/// value hash → how many state entries name those bytes
pub(crate) const CHUNK_REFS: TableDefinition<&[u8], u64> = TableDefinition::new("chunk_refs");
/// canonical block id → encoded undo `Changes`
pub(crate) const UNDO: TableDefinition<&[u8], &[u8]> = TableDefinition::new("undo");
/// tx id → encoded `TxLocation` (canonical chain only)
pub(crate) const TX_INDEX: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tx_index");
/// height (8 bytes, big-endian) ‖ index in the block (4 bytes, big-endian) → the task id
/// of the job its `SubmitJob` transaction created (canonical chain only)
pub(crate) const JOB_INDEX: TableDefinition<&[u8], &[u8]> = TableDefinition::new("job_index");

/// A job's key in `job_index`: its `SubmitJob`'s height and index in the block, both
/// big-endian, so key order is submission order.
pub(crate) fn job_position(height: u64, index: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&height.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

/// A stored block body.
pub(crate) fn decode_body(b: &[u8]) -> Result<Vec<tb_chain::SignedTx>, StoreError> {
    tb_primitives::decode(b, usize::MAX).map_err(|e| StoreError::Corrupt(format!("body: {e}")))
}

pub(crate) const KEY_SCHEMA: &str = "schema_version";
pub(crate) const KEY_TIP: &str = "tip";
pub(crate) const KEY_CHAIN_ID: &str = "chain_id";
pub(crate) const KEY_TRIE_ROOT: &str = "trie_root";
/// The block whose state the state tables hold (the tip, or an ancestor of it on
/// the best chain whose descendants' state changes were not yet flushed).
pub(crate) const KEY_STATE_TIP: &str = "state_tip";

/// Storage failures. IO and corruption are reported, never panicked on.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store schema is newer than this build: found v{found}, supports up to v{supported}")]
    SchemaTooNew { found: u32, supported: u32 },
    #[error("store schema v{found} was written under earlier consensus rules this build cannot read (it opens v{min} and later); remove the data directory to start a fresh chain (a devnet is recreated on start)")]
    Obsolete { found: u32, min: u32 },
    #[error("store belongs to chain id {found}, not {expected}")]
    WrongChain { found: u64, expected: u64 },
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(String),
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.to_string())
            }
        }
    )*};
}
db_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Reads the stored schema version (`None` for a brand-new file).
pub(crate) fn stored_version(db: &Database) -> Result<Option<u32>, StoreError> {
    let r = db.begin_read()?;
    let t = match r.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let v = t.get(KEY_SCHEMA)?;
    match v {
        None => Ok(None),
        Some(g) => {
            let b: [u8; 4] = g
                .value()
                .try_into()
                .map_err(|_| StoreError::Corrupt("schema_version is not 4 bytes".into()))?;
            Ok(Some(u32::from_le_bytes(b)))
        }
    }
}

/// Creates every table (idempotent) inside a write transaction.
pub(crate) fn create_tables(w: &redb::WriteTransaction) -> Result<(), StoreError> {
    w.open_table(META)?;
    w.open_table(HEADERS)?;
    w.open_table(BODIES)?;
    w.open_table(CANON)?;
    w.open_table(STATE)?;
    w.open_table(UNDO)?;
    w.open_table(TX_INDEX)?;
    w.open_table(JOB_INDEX)?;
    w.open_table(TRIE)?;
    w.open_table(CHUNKS)?;
    w.open_table(CHUNK_REFS)?;
    Ok(())
}

pub(crate) fn write_version(w: &redb::WriteTransaction, v: u32) -> Result<(), StoreError> {
    w.open_table(META)?
        .insert(KEY_SCHEMA, v.to_le_bytes().as_slice())?;
    Ok(())
}
