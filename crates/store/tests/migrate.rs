//! Opening a schema-v3 store (made by the v3 release, commit 15aae59, with
//! `tests/data/make_v3_store.rs`) migrates it to the state on disk: the same tip, root
//! and entries, published bytes moved to `chunks` once per distinct value, and a
//! store that refuses a v3 state whose root does not match its tip, leaving it as it
//! was.

mod common;

use common::schema_of;

use flate2::read::GzDecoder;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::{Path, PathBuf};
use tb_chain::market::objects::publish_payloads;
use tb_chain::market::records;
use tb_chain::state::{account_key, handle_key};
use tb_chain::{ChainParams, StateRead};
use tb_primitives::SecretKey;
use tb_store::{ChainDb, StoreError, SCHEMA_VERSION};

const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
const CHUNKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("chunks");
const CHUNK_REFS: TableDefinition<&[u8], u64> = TableDefinition::new("chunk_refs");

/// What `make_v3_store` printed when it made the fixture.
const V3_HEIGHT: u64 = 7;
const V3_ROOT: &str = "e71c72eba72b21629d7f771f184292d28a6de40640de942281c665caf69961e8";
const V3_ENTRIES: usize = 17;

fn params() -> ChainParams {
    let mut p = ChainParams::devnet();
    p.market.blob_chunk_bytes = 1024;
    p
}

fn object(n: usize, salt: u8) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8 ^ salt).collect()
}

/// The fixture, unpacked into `dir`.
fn unpack(dir: &Path) -> PathBuf {
    let gz = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v3_store.redb.gz");
    let mut raw = Vec::new();
    std::io::Read::read_to_end(
        &mut GzDecoder::new(std::fs::File::open(gz).unwrap()),
        &mut raw,
    )
    .unwrap();
    let path = dir.join("chain.redb");
    std::fs::write(&path, raw).unwrap();
    path
}

#[test]
fn a_v3_store_opens_migrated_with_the_same_tip_root_and_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = unpack(dir.path());
    assert_eq!(schema_of(&path), 3);
    let a = SecretKey::dev("v3-a");
    let b = SecretKey::dev("v3-b");
    let x = publish_payloads(&params().market, a.address(), &object(3000, 0));
    let y = publish_payloads(&params().market, a.address(), &object(2000, 0x5A));
    let before = {
        let db = ChainDb::open(&path, params()).unwrap();
        assert_eq!(db.tip().height, V3_HEIGHT);
        assert_eq!(db.tip().state_root.to_string(), V3_ROOT);
        assert_eq!(db.state().len(), V3_ENTRIES);
        let s = db.state();
        assert_eq!(s.account(&a.address()).nonce, 6);
        assert_eq!(s.account(&b.address()).nonce, 1);
        assert!(s.get_raw(&handle_key("@v3_alice")).is_some());
        // The complete object reads back whole, and both partial chunks too.
        assert_eq!(
            records::object_bytes(s, &x[0].object).unwrap(),
            object(3000, 0)
        );
        assert_eq!(
            records::chunk(s, &x[0].object, &b.address(), 0).unwrap(),
            object(3000, 0)[..1024]
        );
        assert_eq!(
            records::chunk(s, &y[0].object, &a.address(), 0).unwrap(),
            object(2000, 0x5A)[..1024]
        );
        (db.tip().clone(), sorted(db.state().entries()))
    };
    assert_eq!(schema_of(&path), SCHEMA_VERSION);
    {
        // Five chunk entries, four distinct values: X's first chunk is held by
        // both posters and stored once, counted twice.
        let db = redb::Database::open(&path).unwrap();
        let r = db.begin_read().unwrap();
        assert_eq!(r.open_table(CHUNKS).unwrap().len().unwrap(), 4);
        let refs = r.open_table(CHUNK_REFS).unwrap();
        let mut counts: Vec<u64> = refs.iter().unwrap().map(|e| e.unwrap().1.value()).collect();
        counts.sort();
        assert_eq!(counts, [1, 1, 1, 2]);
        // A chunk's entry in `state` holds only its value hash.
        let state = r.open_table(STATE).unwrap();
        let k = records::key(
            records::Kind::Chunk,
            &[&x[0].object, &a.address().0, &0u32.to_be_bytes()],
        );
        assert_eq!(state.get(k.as_slice()).unwrap().unwrap().value().len(), 32);
    }
    // Reopened (no second migration), it goes on growing.
    let mut db = ChainDb::open(&path, params()).unwrap();
    assert_eq!(db.tip(), &before.0);
    assert_eq!(sorted(db.state().entries()), before.1);
    let pay = common::transfer(&db, &a, b.address(), 5, 0, 0);
    common::mine_on_tip(&mut db, &[pay], a.address());
    assert_eq!(db.tip().height, V3_HEIGHT + 1);
    let tip = db.tip().clone();
    drop(db);
    let db = ChainDb::open(&path, params()).unwrap();
    assert_eq!(db.tip(), &tip);
    assert_eq!(db.state().account(&a.address()).nonce, 7);
}

#[test]
fn a_v3_store_whose_state_does_not_match_its_tip_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = unpack(dir.path());
    let a = SecretKey::dev("v3-a");
    {
        // One balance changed behind the chain's back.
        let db = redb::Database::open(&path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut t = w.open_table(STATE).unwrap();
            let k = account_key(&a.address());
            let mut v = t.get(k.as_slice()).unwrap().unwrap().value().to_vec();
            let last = v.len() - 1;
            v[last] ^= 1;
            t.insert(k.as_slice(), v.as_slice()).unwrap();
        }
        w.commit().unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    let err = ChainDb::open(&path, params()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("not migrated")),
        "{err}"
    );
    assert_eq!(schema_of(&path), 3);
    assert_eq!(std::fs::read(&path).unwrap().len(), bytes.len());
}

fn sorted(mut v: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    v.sort();
    v
}
