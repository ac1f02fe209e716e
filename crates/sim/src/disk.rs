//! The simulated disk: a redb [`StorageBackend`] in memory that keeps what was synced
//! and can crash at any write.
//!
//! Every mutation (a write, a length change) is applied to the *current* image and
//! remembered as pending; `sync_data` makes the pending mutations durable. A crash is
//! armed with a count of mutations still allowed ([`SimDisk::arm_crash`]); the next
//! one after the count fails, and so does every later call, as if the process had
//! died there. [`SimDisk::restart`] then gives the disk a restarted process sees: the
//! durable image plus a prefix, drawn by the caller, of the mutations pending at the
//! crash — a write-back cache that had flushed some of them, in order. redb's commit
//! is built to survive exactly this (a checksummed one-phase commit).

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Clone, Debug)]
enum Op {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

impl Op {
    fn apply(&self, image: &mut Vec<u8>) {
        match self {
            Op::Write { offset, data } => {
                let start = *offset as usize;
                let end = start + data.len();
                if image.len() < end {
                    image.resize(end, 0);
                }
                image[start..end].copy_from_slice(data);
            }
            Op::SetLen(len) => image.resize(*len as usize, 0),
        }
    }
}

#[derive(Debug, Default)]
struct Image {
    /// What survives a crash: the image as of the last sync.
    durable: Vec<u8>,
    /// What the running process reads.
    current: Vec<u8>,
    /// Mutations since the last sync, in order.
    pending: Vec<Op>,
    /// Mutations allowed before the crash, when one is armed.
    crash_after: Option<u64>,
    crashed: bool,
    /// Mutations and syncs so far (statistics).
    writes: u64,
    syncs: u64,
}

/// A disk in memory shared by one node's store; cloned handles see the same image.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    image: Arc<Mutex<Image>>,
}

fn dead() -> io::Error {
    io::Error::other("simulated crash: the process is dead")
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    fn lock(&self) -> MutexGuard<'_, Image> {
        self.image.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Crashes after `mutations` more writes or length changes (0: at the next one).
    pub fn arm_crash(&self, mutations: u64) {
        self.lock().crash_after = Some(mutations);
    }

    /// Cancels an armed crash that has not fired.
    pub fn disarm(&self) {
        self.lock().crash_after = None;
    }

    /// Crashes now: every later call fails.
    pub fn crash_now(&self) {
        self.lock().crashed = true;
    }

    /// Whether the disk has crashed (the node on it must be restarted).
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Mutations pending since the last sync.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// The disk a restarted process finds: the durable image with the first `kept`
    /// pending mutations applied (`kept` is clamped to how many there are). This handle
    /// stays dead; the returned one is a new disk.
    pub fn restart(&self, kept: usize) -> SimDisk {
        let img = self.lock();
        let mut durable = img.durable.clone();
        for op in img.pending.iter().take(kept) {
            op.apply(&mut durable);
        }
        SimDisk {
            image: Arc::new(Mutex::new(Image {
                current: durable.clone(),
                durable,
                ..Image::default()
            })),
        }
    }

    /// (mutations, syncs) so far.
    pub fn counts(&self) -> (u64, u64) {
        let img = self.lock();
        (img.writes, img.syncs)
    }

    fn mutate(&self, op: Op) -> io::Result<()> {
        let mut img = self.lock();
        if img.crashed {
            return Err(dead());
        }
        if let Some(n) = img.crash_after {
            if n == 0 {
                img.crashed = true;
                return Err(dead());
            }
            img.crash_after = Some(n - 1);
        }
        img.writes += 1;
        op.apply(&mut img.current);
        img.pending.push(op);
        Ok(())
    }
}

impl redb::StorageBackend for SimDisk {
    fn len(&self) -> io::Result<u64> {
        let img = self.lock();
        if img.crashed {
            return Err(dead());
        }
        Ok(img.current.len() as u64)
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let img = self.lock();
        if img.crashed {
            return Err(dead());
        }
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = start
            .checked_add(len)
            .filter(|e| *e <= img.current.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        Ok(img.current[start..end].to_vec())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.mutate(Op::SetLen(len))
    }

    fn sync_data(&self, _eventual: bool) -> io::Result<()> {
        let mut img = self.lock();
        if img.crashed {
            return Err(dead());
        }
        let pending = std::mem::take(&mut img.pending);
        for op in &pending {
            op.apply(&mut img.durable);
        }
        img.syncs += 1;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.mutate(Op::Write {
            offset,
            data: data.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::StorageBackend;

    #[test]
    fn a_restart_keeps_what_was_synced_and_the_prefix_it_is_given() {
        let d = SimDisk::new();
        d.write(0, b"abcd").unwrap();
        d.sync_data(false).unwrap();
        d.write(0, b"x").unwrap();
        d.write(1, b"y").unwrap();
        d.arm_crash(0);
        assert!(d.write(2, b"z").is_err(), "the armed crash fires");
        assert!(d.read(0, 1).is_err(), "a dead process reads nothing");
        assert_eq!(d.restart(0).read(0, 4).unwrap(), b"abcd");
        assert_eq!(d.restart(1).read(0, 4).unwrap(), b"xbcd");
        assert_eq!(d.restart(9).read(0, 4).unwrap(), b"xycd");
        assert!(d.read(0, 1).is_err(), "the old handle stays dead");
    }

    #[test]
    fn redb_reopens_after_a_crash_at_every_write_of_a_commit() {
        const T: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("t");
        // Count the writes of a second commit, then crash at each of them.
        let base = SimDisk::new();
        {
            let db = redb::Builder::new()
                .create_with_backend(base.clone())
                .unwrap();
            let w = db.begin_write().unwrap();
            w.open_table(T).unwrap().insert(1, 1).unwrap();
            w.commit().unwrap();
        }
        let (w0, _) = base.counts();
        let probe = base.restart(usize::MAX);
        {
            let db = redb::Builder::new()
                .create_with_backend(probe.clone())
                .unwrap();
            let w = db.begin_write().unwrap();
            w.open_table(T).unwrap().insert(2, 2).unwrap();
            w.commit().unwrap();
        }
        let writes = probe.counts().0;
        assert!(writes > 0 && w0 > 0);
        for at in 0..writes {
            for kept in [0, usize::MAX] {
                let d = base.restart(usize::MAX);
                {
                    let db = redb::Builder::new().create_with_backend(d.clone()).unwrap();
                    d.arm_crash(at);
                    if let Ok(w) = db.begin_write() {
                        if let Ok(mut t) = w.open_table(T) {
                            let _ = t.insert(2, 2);
                        }
                        let _ = w.commit();
                    }
                }
                let db = redb::Builder::new()
                    .create_with_backend(d.restart(kept))
                    .unwrap_or_else(|e| panic!("crash at write {at}, {kept} kept: {e}"));
                let r = db.begin_read().unwrap();
                let t = r.open_table(T).unwrap();
                assert_eq!(t.get(1).unwrap().unwrap().value(), 1, "the first commit");
                if let Some(v) = t.get(2).unwrap() {
                    assert_eq!(v.value(), 2);
                }
            }
        }
    }
}
