//! The node's content-addressed blob store: job blobs, traces and evidence bundles as
//! files named by their SHA-256 under `<data dir>/blobs/<2 hex>/<64 hex>`. A write goes
//! to a temporary file, is synced and renamed into place, so a crash never leaves a
//! partial blob under its name; a read checks the digest, so a damaged file is reported,
//! never served.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Largest blob stored (the job format's own cap on a job blob).
pub const BLOB_BYTES_MAX: u64 = tb_job::format::JOB_BLOB_BYTES_MAX as u64;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob of {0} bytes is over the {BLOB_BYTES_MAX}-byte limit")]
    TooLarge(u64),
    #[error("stored blob {0} is damaged (its digest differs); it was removed")]
    Damaged(String),
    #[error("blob store: {0}")]
    Io(#[from] std::io::Error),
}

/// A directory of blobs by SHA-256.
#[derive(Debug)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Opens (creating) the store at `root`; removes temporary files a crash left.
    pub fn open(root: impl AsRef<Path>) -> Result<BlobStore, BlobError> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(root.join("tmp"))?;
        for e in std::fs::read_dir(root.join("tmp"))? {
            let _ = std::fs::remove_file(e?.path());
        }
        Ok(BlobStore { root })
    }

    fn path(&self, id: &[u8; 32]) -> PathBuf {
        let h = hex::encode(id);
        self.root.join(&h[..2]).join(h)
    }

    /// Whether a blob is stored under `id` (its file exists; not re-hashed: `get`
    /// checks on reading).
    pub fn contains(&self, id: &[u8; 32]) -> bool {
        self.path(id).is_file()
    }

    /// Stores `bytes`; returns its SHA-256. Idempotent.
    pub fn put(&self, bytes: &[u8]) -> Result<[u8; 32], BlobError> {
        if bytes.len() as u64 > BLOB_BYTES_MAX {
            return Err(BlobError::TooLarge(bytes.len() as u64));
        }
        let id = tb_primitives::sha256_digest(bytes).0;
        let dest = self.path(&id);
        if dest.is_file() {
            return Ok(id);
        }
        let tmp =
            self.root
                .join("tmp")
                .join(format!("{}.{}", hex::encode(&id[..8]), std::process::id()));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::rename(&tmp, &dest)?;
        Ok(id)
    }

    /// The blob, checked against its name; `None` when absent.
    pub fn get(&self, id: &[u8; 32]) -> Result<Option<Vec<u8>>, BlobError> {
        let p = self.path(id);
        let meta = match std::fs::metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if meta.len() > BLOB_BYTES_MAX {
            let _ = std::fs::remove_file(&p);
            return Err(BlobError::Damaged(hex::encode(id)));
        }
        let bytes = std::fs::read(&p)?;
        if tb_primitives::sha256_digest(&bytes).0 != *id {
            let _ = std::fs::remove_file(&p);
            return Err(BlobError::Damaged(hex::encode(id)));
        }
        Ok(Some(bytes))
    }

    /// Up to `len` bytes at `offset` of a stored blob, with its total length (for the
    /// network's chunked blob exchange; the fetcher checks the whole blob's digest).
    /// `None` when absent or `offset` is past the end.
    pub fn read_range(
        &self,
        id: &[u8; 32],
        offset: u64,
        len: usize,
    ) -> Result<Option<(u64, Vec<u8>)>, BlobError> {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let mut f = match std::fs::File::open(self.path(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let total = f.metadata()?.len();
        if offset > total || total > BLOB_BYTES_MAX {
            return Ok(None);
        }
        f.seek(SeekFrom::Start(offset))?;
        let n = (total - offset).min(len as u64) as usize;
        let mut buf = vec![0u8; n];
        f.read_exact(&mut buf)?;
        Ok(Some((total, buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_damage_detection() {
        let d = tempfile::tempdir().unwrap();
        let s = BlobStore::open(d.path()).unwrap();
        let id = s.put(b"hello").unwrap();
        assert_eq!(id, tb_primitives::sha256_digest(b"hello").0);
        assert_eq!(s.put(b"hello").unwrap(), id);
        assert_eq!(s.get(&id).unwrap().unwrap(), b"hello");
        assert!(s.get(&[7; 32]).unwrap().is_none());
        std::fs::write(s.path(&id), b"jello").unwrap();
        assert!(matches!(s.get(&id), Err(BlobError::Damaged(_))));
        assert!(s.get(&id).unwrap().is_none(), "a damaged blob is removed");
        let id = s.put(b"0123456789").unwrap();
        assert_eq!(
            s.read_range(&id, 0, 4).unwrap().unwrap(),
            (10, b"0123".to_vec())
        );
        assert_eq!(
            s.read_range(&id, 8, 4).unwrap().unwrap(),
            (10, b"89".to_vec())
        );
        assert_eq!(s.read_range(&id, 10, 4).unwrap().unwrap(), (10, vec![]));
        assert!(s.read_range(&id, 11, 4).unwrap().is_none());
        assert!(s.read_range(&[8; 32], 0, 4).unwrap().is_none());
    }
}
