//! Persistent workers for the CPU kernels: a call on `t` threads runs one share of its
//! work on the calling thread and the other `t − 1` on a pool of `t − 1` workers that
//! lives for the process (rayon), instead of threads spawned per call.
//!
//! Why: this VM (and any host that packs vCPUs) places a newly spawned or woken thread
//! on the caller's vCPU and moves it to an idle one only a scheduler tick (~4 ms)
//! later, so per-call threads only helped calls longer than that. Pool workers stay
//! awake for [`WORKER_WARM`] after a call and take the next call's share at once.
//!
//! The pool never changes a bit: how work is cut into shares, and what each share
//! computes, is decided by the caller exactly as before (`gemm.rs`: items from a queue,
//! each output one chain; `par_rows`: disjoint row ranges); only who runs a share
//! changes. This file is therefore not a kernel source (`KERNEL_SOURCES`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a pool's workers stay awake after the last call that used them: they keep
/// taking shares from its queue and otherwise spin, instead of parking and waking a
/// scheduler tick late. Chosen: 2 ms, longer than the gap between two kernels of a
/// job, short enough that an idle node does not spin.
///
/// They spin rather than yield: under the kernel's EEVDF scheduler a yield hands the
/// core to any runnable task for a whole slice (~3 ms), even a `nice 19` one, so with
/// two `nice 19` busy loops beside it a MiniLM run took 6–9× as long as on a quiet
/// machine with yielding waits and 1.5× with spinning ones (`BENCHMARKS.md`). A CPU
/// run's trace leaves are hashed by these same workers, as background tasks
/// ([`Workers::defer`]) in the time they would spin, so no thread of ours beside them
/// competes with a spinning one.
pub const WORKER_WARM: Duration = Duration::from_millis(2);

/// How long a caller spins for the workers' shares of its call before it yields
/// between checks (a share longer than this has long outlived a scheduler slice).
pub const CALLER_SPIN: Duration = Duration::from_millis(1);

/// Background work: a task no kernel waits for (a piece of a trace leaf's hash).
pub(crate) type Task = Box<dyn FnOnce() + Send>;

/// A pool and the state of its keep-warm loops.
pub(crate) struct Workers {
    pool: rayon::ThreadPool,
    /// Workers now in their keep-warm loop.
    warm: AtomicUsize,
    /// Nanoseconds since [`epoch`] until which the loops keep going.
    until_ns: AtomicU64,
    /// Background tasks, first in first out: run by a worker that finds no share of a
    /// kernel to take, and by a thread waiting (for its workers' shares or for a
    /// background result), so they fill the time those threads would spin.
    background: Mutex<VecDeque<Task>>,
    /// How many tasks `background` holds (read without the lock by the loops).
    queued: AtomicUsize,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl Workers {
    /// Keeps the workers awake for [`WORKER_WARM`] from now: extends the deadline and,
    /// when no worker is in its loop, starts one loop on each.
    fn keep_warm(&'static self) {
        let until = now_ns().saturating_add(WORKER_WARM.as_nanos() as u64);
        self.until_ns.fetch_max(until, Ordering::Relaxed);
        let n = self.pool.current_num_threads();
        if self
            .warm
            .compare_exchange(0, n, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.pool.spawn_broadcast(move |_| self.warm_loop());
        }
    }

    /// Extends the deadline of workers already in their loop; wakes none. Background
    /// work never wakes a worker (the next kernel call does): with two fuzzers beside
    /// it, waking one for every leaf made the tiny transformer job's executor 1.3–2.3×
    /// as slow as hashing on the op thread, and not waking 0.8–1.0× (`BENCHMARKS.md`).
    fn extend_if_warm(&self) {
        if self.warm.load(Ordering::Acquire) > 0 {
            let until = now_ns().saturating_add(WORKER_WARM.as_nanos() as u64);
            self.until_ns.fetch_max(until, Ordering::Relaxed);
        }
    }

    /// One worker's loop: run whatever shares are queued, else a background task, else
    /// spin, until the deadline passes and no background task is left. (A call that
    /// extends the deadline just as the last loop leaves finds its shares run by woken
    /// workers: slower, never wrong.)
    fn warm_loop(&self) {
        loop {
            if let Some(rayon::Yield::Executed) = rayon::yield_now() {
                continue;
            }
            if self.run_one_background() {
                continue;
            }
            if now_ns() > self.until_ns.load(Ordering::Relaxed) {
                self.warm.fetch_sub(1, Ordering::AcqRel);
                return;
            }
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
    }

    /// Queues background tasks for the workers that are awake (the next kernel call
    /// wakes the others), and for threads that wait.
    pub(crate) fn defer(&self, tasks: Vec<Task>) {
        let n = tasks.len();
        self.background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(tasks);
        self.queued.fetch_add(n, Ordering::AcqRel);
        self.extend_if_warm();
    }

    /// Runs the oldest background task, if there is one; whether it did.
    pub(crate) fn run_one_background(&self) -> bool {
        if self.queued.load(Ordering::Acquire) == 0 {
            return false;
        }
        let task = self
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        match task {
            Some(task) => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                task();
                true
            }
            None => false,
        }
    }

    /// Waits until `done()` holds, running background tasks meanwhile; spins between
    /// checks for [`CALLER_SPIN`], then yields.
    pub(crate) fn wait_until(&self, done: impl Fn() -> bool) {
        self.extend_if_warm();
        let start = Instant::now();
        while !done() {
            if !self.run_one_background() {
                if start.elapsed() < CALLER_SPIN {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
    }
}

/// The workers shared by every call on `threads` threads (`threads − 1` of them):
/// made at the first such call and kept (one pool per thread count in use, at most
/// `CPU_THREADS_MAX`). `None` for one thread, or when the system would not start the
/// workers: the caller then runs every share itself, with the same result.
pub(crate) fn workers(threads: usize) -> Option<&'static Workers> {
    type Pools = Mutex<BTreeMap<usize, Option<&'static Workers>>>;
    static POOLS: OnceLock<Pools> = OnceLock::new();
    if threads <= 1 {
        return None;
    }
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    *pools.entry(threads).or_insert_with(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads - 1)
            .thread_name(move |i| format!("blocktorch-{threads}-{i}"))
            .build()
            .ok()
            .map(|pool| {
                &*Box::leak(Box::new(Workers {
                    pool,
                    warm: AtomicUsize::new(0),
                    until_ns: AtomicU64::new(0),
                    background: Mutex::new(VecDeque::new()),
                    queued: AtomicUsize::new(0),
                }))
            })
    })
}

/// Runs `share(0)` on the calling thread and `share(1..shares)` on the workers of
/// `threads`; returns when every share has. The caller waits for the workers' shares
/// by running background tasks ([`Workers::defer`]) or spinning for [`CALLER_SPIN`],
/// then by yielding, never by sleeping: a thread
/// woken from sleep is placed on its waker's vCPU by this VM and shares it until the
/// next scheduler tick, so the calls after would run two shares on one core.
pub(crate) fn run_shares(threads: usize, shares: usize, share: impl Fn(usize) + Sync) {
    let w = match workers(threads) {
        Some(w) if shares > 1 => w,
        _ => return (0..shares).for_each(share),
    };
    w.keep_warm();
    let done = AtomicUsize::new(0);
    w.pool.in_place_scope(|s| {
        let (share, done) = (&share, &done);
        for i in 1..shares {
            s.spawn(move |_| {
                share(i);
                done.fetch_add(1, Ordering::Release);
            });
        }
        share(0);
        // Rayon's own wait, when the scope ends, then finds its latch set (but for
        // the instant between a share's end and its job's). A caller that is itself a
        // worker (a kernel called from a share) runs pending shares while it waits,
        // so its own are never stranded.
        let start = Instant::now();
        while done.load(Ordering::Acquire) < shares - 1 {
            if rayon::yield_now() != Some(rayon::Yield::Executed) && !w.run_one_background() {
                if start.elapsed() < CALLER_SPIN {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_share_runs_once_and_the_pool_is_kept() {
        for threads in [1, 2, 3, 7] {
            let hits: Vec<AtomicUsize> = (0..10).map(|_| AtomicUsize::new(0)).collect();
            run_shares(threads, 10, |i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
        let a = workers(3).expect("a pool") as *const Workers;
        let b = workers(3).expect("a pool") as *const Workers;
        assert_eq!(a, b, "one pool per thread count, kept");
        assert!(workers(1).is_none());
    }

    #[test]
    fn background_tasks_all_run_beside_kernel_calls() {
        use std::sync::Arc;
        for threads in [2, 3] {
            let w = workers(threads).expect("a pool");
            let ran = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<Task> = (0..200)
                .map(|_| {
                    let ran = ran.clone();
                    Box::new(move || {
                        // A piece of work a few microseconds long.
                        let mut x = 0u64;
                        for i in 0..2_000u64 {
                            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
                        }
                        std::hint::black_box(x);
                        ran.fetch_add(1, Ordering::AcqRel);
                    }) as Task
                })
                .collect();
            w.defer(tasks);
            // Kernel calls go on while the queue is long, and every share runs once.
            for _ in 0..20 {
                let hits: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
                run_shares(threads, threads, |i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
            // Waiting helps: it returns once every task has run, none twice.
            w.wait_until(|| ran.load(Ordering::Acquire) == 200);
            assert_eq!(ran.load(Ordering::Acquire), 200);
        }
    }

    #[test]
    fn a_share_that_itself_splits_work_does_not_strand_it() {
        let total = AtomicUsize::new(0);
        run_shares(2, 4, |_| {
            run_shares(2, 3, |_| {
                total.fetch_add(1, Ordering::Relaxed);
            })
        });
        assert_eq!(total.load(Ordering::Relaxed), 12);
    }
}
