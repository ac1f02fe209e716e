//! Allocation profiling: every storage allocation and free is recorded with a label
//! (`Tensor::from_data`, `cpu::matmul`, …), its bytes and its device.
//!
//! - Counters (allocs, frees, live bytes, peak bytes) are always kept.
//! - When `ORCHARD_TENSOR_PROFILE=<path>` is set (or [`tensor_profile_set_log`] names a
//!   file), each record is appended to that log as one tab-separated line:
//!   `seq kind label bytes device`. This is the crate's only IO.
//! - [`tensor_profile_epoch`] is the SHA-256 of the records since the last
//!   [`tensor_profile_reset`]: two runs of the same program on the same fabric give the
//!   same epoch, so a receipt can commit to it.
//!
//! The profiler is process-global; tests that assert on it must not run concurrently
//! with other tensor work in the same process.

use sha2::{Digest as _, Sha256};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Name of the environment variable that turns the profile log on.
pub const PROFILE_ENV: &str = "ORCHARD_TENSOR_PROFILE";

/// Whether a record is an allocation or a free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// Storage was allocated.
    Alloc,
    /// Storage was freed.
    Free,
}

impl RecordKind {
    fn name(self) -> &'static str {
        match self {
            RecordKind::Alloc => "alloc",
            RecordKind::Free => "free",
        }
    }
}

/// Counters since the last [`tensor_profile_reset`] (live bytes are absolute).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProfileCounters {
    /// Allocations since the reset.
    pub allocs: u64,
    /// Frees since the reset.
    pub frees: u64,
    /// Bytes held by live storages now.
    pub live_bytes: u64,
    /// Largest `live_bytes` seen since the reset.
    pub peak_bytes: u64,
    /// Records that could not be written to the log.
    pub log_errors: u64,
}

struct State {
    counters: ProfileCounters,
    seq: u64,
    hasher: Sha256,
    log_path: Option<PathBuf>,
    log: Option<File>,
    env_read: bool,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<State>> {
    // A panic while holding the lock leaves plain counters behind; keep going.
    STATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut guard = lock();
    let state = guard.get_or_insert_with(|| State {
        counters: ProfileCounters::default(),
        seq: 0,
        hasher: Sha256::new(),
        log_path: None,
        log: None,
        env_read: false,
    });
    if !state.env_read {
        state.env_read = true;
        state.log_path = std::env::var_os(PROFILE_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
    }
    f(state)
}

/// Records one allocation or free of `bytes` under `label` on `device`. CPU storage
/// records itself; another fabric calls this for each of its device buffers, so the
/// profile covers every fabric with the same records.
pub fn record(kind: RecordKind, label: &'static str, bytes: usize, device: &str) {
    with_state(|s| {
        let bytes = bytes as u64;
        match kind {
            RecordKind::Alloc => {
                s.counters.allocs += 1;
                s.counters.live_bytes += bytes;
                s.counters.peak_bytes = s.counters.peak_bytes.max(s.counters.live_bytes);
            }
            RecordKind::Free => {
                s.counters.frees += 1;
                s.counters.live_bytes = s.counters.live_bytes.saturating_sub(bytes);
            }
        }
        // The line `seq kind label bytes device\n`, hashed as it is written: no `String`
        // unless a log wants one (this runs for every storage; `format!` was ~5 % of a
        // small job's time).
        let (mut seq_buf, mut bytes_buf) = ([0u8; 20], [0u8; 20]);
        let parts: [&[u8]; 9] = [
            decimal(s.seq, &mut seq_buf),
            b"\t",
            kind.name().as_bytes(),
            b"\t",
            label.as_bytes(),
            b"\t",
            decimal(bytes, &mut bytes_buf),
            b"\t",
            device.as_bytes(),
        ];
        s.seq += 1;
        for part in parts {
            s.hasher.update(part);
        }
        s.hasher.update(b"\n");
        if let Some(path) = s.log_path.clone() {
            if s.log.is_none() {
                s.log = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .ok();
            }
            let mut line = parts.concat();
            line.push(b'\n');
            let ok = match s.log.as_mut() {
                Some(f) => f.write_all(&line).is_ok(),
                None => false,
            };
            if !ok {
                s.counters.log_errors += 1;
            }
        }
    })
}

/// `n` in decimal ASCII, written at the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The counters now.
pub fn tensor_profile_counters() -> ProfileCounters {
    with_state(|s| s.counters)
}

/// Starts a new profile epoch: alloc/free counts and the sequence number go to zero,
/// the peak restarts at the current live bytes, and the epoch digest restarts.
pub fn tensor_profile_reset() {
    with_state(|s| {
        s.counters.allocs = 0;
        s.counters.frees = 0;
        s.counters.peak_bytes = s.counters.live_bytes;
        s.counters.log_errors = 0;
        s.seq = 0;
        s.hasher = Sha256::new();
    })
}

/// SHA-256 over the record lines since the last reset (the `tensor_profile_epoch` a
/// receipt commits to).
pub fn tensor_profile_epoch() -> [u8; 32] {
    with_state(|s| s.hasher.clone().finalize().into())
}

/// Sends records to `path` from now on (`None` turns the log off), overriding
/// `ORCHARD_TENSOR_PROFILE`.
pub fn tensor_profile_set_log(path: Option<&Path>) {
    with_state(|s| {
        s.log_path = path.map(Path::to_path_buf);
        s.log = None;
    })
}

/// The log file in use, if any.
pub fn tensor_profile_log_path() -> Option<PathBuf> {
    with_state(|s| s.log_path.clone())
}

/// Truncates the log file (if one is configured) to zero length.
pub fn tensor_profile_clear_log() -> std::io::Result<()> {
    with_state(|s| {
        s.log = None;
        match &s.log_path {
            Some(path) => File::create(path).map(|_| ()),
            None => Ok(()),
        }
    })
}
