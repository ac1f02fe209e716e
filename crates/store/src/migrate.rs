//! Schema checks on open, the migration of a v3 store to the state on disk and of a
//! v4 store to one with the job index.

use crate::backend::DiskState;
use crate::schema::*;
use redb::{Database, ReadableTable};
use tb_chain::market::exec::task_id;
use tb_chain::market::records::is_chunk_key;
use tb_chain::state::Commit;
use tb_chain::{State, TxPayload};
use tb_primitives::{decode, Id};

/// Refuses a schema this build cannot open and migrates one it can.
pub(crate) fn check_version(db: &Database, v: u32) -> Result<(), StoreError> {
    match v {
        v if v > SCHEMA_VERSION => Err(StoreError::SchemaTooNew {
            found: v,
            supported: SCHEMA_VERSION,
        }),
        v if v < SCHEMA_VERSION_MIN => Err(StoreError::Obsolete {
            found: v,
            min: SCHEMA_VERSION_MIN,
        }),
        3 => {
            migrate_v3(db)?;
            migrate_v4(db)
        }
        4 => migrate_v4(db),
        SCHEMA_VERSION => Ok(()),
        v => Err(StoreError::Corrupt(format!("unknown schema v{v}"))),
    }
}

/// v3 → v4, in one write transaction (a crash leaves the v3 store as it was):
/// builds the trie from the v3 entries (in memory once, as a v3 build did at every
/// start), checks its root against the tip, writes its nodes and root, moves each
/// published chunk's bytes to `chunks` (its entry keeps the value hash), and writes
/// the new version.
pub(crate) fn migrate_v3(db: &Database) -> Result<(), StoreError> {
    let w = db.begin_write()?;
    create_tables(&w)?;
    let (entries, tip_root, tip) = {
        let meta = w.open_table(META)?;
        let tip = meta
            .get(KEY_TIP)?
            .ok_or_else(|| StoreError::Corrupt("no tip".into()))?
            .value()
            .to_vec();
        let headers = w.open_table(HEADERS)?;
        let entry = headers
            .get(tip.as_slice())?
            .ok_or_else(|| StoreError::Corrupt("missing tip header".into()))?;
        let e: crate::HeaderEntry = decode(entry.value(), 1024)
            .map_err(|e| StoreError::Corrupt(format!("header entry: {e}")))?;
        let state = w.open_table(STATE)?;
        let mut entries = Vec::new();
        for e in state.iter()? {
            let (k, v) = e?;
            entries.push((k.value().to_vec(), v.value().to_vec()));
        }
        (entries, e.header.state_root, tip)
    };
    let mut s = State::from_entries(entries.iter().cloned());
    let root: Id = s.root();
    if root != tip_root {
        return Err(StoreError::Corrupt(format!(
            "v3 state root {root} differs from the tip's {tip_root}: not migrated"
        )));
    }
    let all = s.commit_batch();
    let chunks: Vec<_> = entries
        .into_iter()
        .filter(|(k, _)| is_chunk_key(k))
        .map(|(k, v)| (k, Some(v)))
        .collect();
    {
        let mut state = w.open_table(STATE)?;
        for (k, _) in &chunks {
            state.remove(k.as_slice())?;
        }
    }
    DiskState::write(
        &w,
        &Commit {
            entries: chunks,
            nodes: all.nodes,
            root: all.root,
        },
    )?;
    w.open_table(META)?.insert(KEY_STATE_TIP, tip.as_slice())?;
    write_version(&w, 4)?;
    w.commit()?;
    Ok(())
}

/// v4 → v5, in one write transaction (a crash leaves the v4 store as it was): builds
/// the job index from the `SubmitJob` transactions of the canonical chain's bodies,
/// and writes the new version.
pub(crate) fn migrate_v4(db: &Database) -> Result<(), StoreError> {
    let w = db.begin_write()?;
    create_tables(&w)?;
    {
        let meta = w.open_table(META)?;
        let chain_id = meta
            .get(KEY_CHAIN_ID)?
            .ok_or_else(|| StoreError::Corrupt("no chain id".into()))?
            .value()
            .try_into()
            .map(u64::from_le_bytes)
            .map_err(|_| StoreError::Corrupt("chain_id is not 8 bytes".into()))?;
        let canon = w.open_table(CANON)?;
        let bodies = w.open_table(BODIES)?;
        let mut jobs = w.open_table(JOB_INDEX)?;
        for e in canon.iter()? {
            let (h, id) = e?;
            let h = h.value();
            let body = bodies
                .get(id.value())?
                .ok_or_else(|| StoreError::Corrupt(format!("no body at height {h}")))?;
            let txs = decode_body(body.value())?;
            for (i, tx) in txs.iter().enumerate() {
                if matches!(tx.payload, TxPayload::SubmitJob(_)) {
                    let t = task_id(chain_id, h, tx);
                    jobs.insert(job_position(h, i as u32).as_slice(), t.0.as_slice())?;
                }
            }
        }
    }
    write_version(&w, SCHEMA_VERSION)?;
    w.commit()?;
    Ok(())
}
