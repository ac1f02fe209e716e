//! Node-local telemetry the state machine records but never reads: it does not affect
//! consensus. `proof_verification_latency` is the time this node spent checking each
//! receipt at submission (signature, lease or seal, trace shape, output leaf).

use std::sync::atomic::{AtomicU64, Ordering};
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

/// Records one receipt check.
pub fn record_receipt_check(d: Duration) {
    RECEIPT_CHECKS.record(d);
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
}
