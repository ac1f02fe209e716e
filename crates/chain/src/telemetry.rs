//! Node-local telemetry the state machine records but never reads: it does not affect
//! consensus. `proof_verification_latency` is the time this node spent checking each
//! receipt at submission (signature, lease or seal, trace shape, output leaf).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Power-of-two microsecond buckets: bucket `i` counts durations below `2^i` µs
/// (the last one everything longer).
pub const LATENCY_BUCKETS: usize = 32;

/// A lock-free latency histogram.
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS],
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// A snapshot of a histogram.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// Samples.
    pub count: u64,
    /// Their sum, µs.
    pub sum_us: u64,
    /// Bucket counts (`< 2^i` µs).
    pub buckets: Vec<u64>,
}

impl LatencySnapshot {
    /// Samples certainly at least `us` µs long: those in buckets whose lower bound
    /// (`2^(i-1)` µs) reaches it (a lower bound on the count; never an over-statement).
    pub fn count_at_least_us(&self, us: u64) -> u64 {
        self.buckets
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(i, _)| (1u64 << (i - 1)) >= us)
            .map(|(_, c)| c)
            .sum()
    }

    /// The upper bound (µs) of the bucket holding quantile `q` (0..=1); 0 when empty.
    pub fn quantile_upper_us(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let want = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= want {
                return 1u64 << i;
            }
        }
        1u64 << (LATENCY_BUCKETS - 1)
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub const fn new() -> LatencyHistogram {
        LatencyHistogram {
            buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS],
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let i = ((u64::BITS - us.leading_zeros()) as usize).min(LATENCY_BUCKETS - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            count: self.count.load(Ordering::Relaxed),
            sum_us: self.sum_us.load(Ordering::Relaxed),
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

static RECEIPT_CHECKS: LatencyHistogram = LatencyHistogram::new();

/// Most recent receipt checks kept one by one for [`receipt_checks_since`].
pub const RECENT_CHECKS_MAX: usize = 4096;

/// The last [`RECENT_CHECKS_MAX`] receipt checks (µs) and the sequence number of the
/// next one.
static RECENT: Mutex<(VecDeque<u64>, u64)> = Mutex::new((VecDeque::new(), 0));

/// A running receipt check's timer: the only clock the crate reads, and only for this
/// telemetry ([`ReceiptCheck::done`] records it; nothing reads it back into a rule).
pub struct ReceiptCheck(std::time::Instant);

impl ReceiptCheck {
    /// Starts timing a receipt check.
    pub fn start() -> ReceiptCheck {
        ReceiptCheck(std::time::Instant::now())
    }

    /// Records the check's duration.
    pub fn done(self) {
        record_receipt_check(self.0.elapsed());
    }
}

/// Records one receipt check.
pub fn record_receipt_check(d: Duration) {
    RECEIPT_CHECKS.record(d);
    let us = d.as_micros().min(u64::MAX as u128) as u64;
    let mut r = RECENT.lock().unwrap_or_else(PoisonError::into_inner);
    if r.0.len() == RECENT_CHECKS_MAX {
        r.0.pop_front();
    }
    r.0.push_back(us);
    r.1 += 1;
}

/// The receipt checks recorded from sequence number `seq` on, one by one, and the
/// sequence number to ask from next time; plus how many of them were no longer kept
/// (more than [`RECENT_CHECKS_MAX`] checks since `seq`). For a consumer that records
/// each sample into a histogram of its own (the node's metrics).
pub fn receipt_checks_since(seq: u64) -> (Vec<Duration>, u64, u64) {
    let r = RECENT.lock().unwrap_or_else(PoisonError::into_inner);
    let next = r.1;
    let first_kept = next - r.0.len() as u64;
    let from = seq.max(first_kept);
    let lost = from - seq.min(from);
    let skip = (from - first_kept) as usize;
    let samples =
        r.0.iter()
            .skip(skip)
            .map(|us| Duration::from_micros(*us))
            .collect();
    (samples, next, lost)
}

/// `proof_verification_latency`: every receipt check this process ran.
pub fn proof_verification_latency() -> LatencySnapshot {
    RECEIPT_CHECKS.snapshot()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_quantiles() {
        let h = LatencyHistogram::new();
        for us in [0u64, 1, 3, 900, 5_000] {
            h.record(Duration::from_micros(us));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 5);
        assert_eq!(s.sum_us, 5_904);
        assert_eq!(s.buckets[0], 1); // 0 µs
        assert_eq!(s.buckets[1], 1); // 1 µs
        assert_eq!(s.buckets[2], 1); // 3 µs
        assert_eq!(s.quantile_upper_us(0.5), 4);
        assert_eq!(s.quantile_upper_us(1.0), 8_192);
    }

    #[test]
    fn recent_checks_are_read_once_in_order() {
        let (_, start, _) = receipt_checks_since(u64::MAX);
        let (none, seq, lost) = receipt_checks_since(start);
        assert!(none.is_empty() || seq > start);
        assert_eq!(lost, 0);
        record_receipt_check(Duration::from_micros(7));
        let (got, next, lost) = receipt_checks_since(seq);
        assert_eq!(lost, 0);
        assert!(got.contains(&Duration::from_micros(7)), "{got:?}");
        assert!(next > seq);
        // Asking from far behind reports what was no longer kept.
        let (_, _, lost) = receipt_checks_since(0);
        assert_eq!(lost, next.saturating_sub(RECENT_CHECKS_MAX as u64));
    }
}
