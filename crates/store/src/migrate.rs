//! Schema checks on open, and the migration of a v3 store to the state on disk.

use crate::backend::DiskState;
use crate::schema::*;
use redb::{Database, ReadableTable};
use tb_chain::market::records::is_chunk_key;
use tb_chain::state::Commit;
use tb_chain::State;
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
        3 => migrate_v3(db),
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
    write_version(&w, SCHEMA_VERSION)?;
    w.commit()?;
    Ok(())
}
