//! Prometheus metrics for the node: the catalogue of every metric it exports,
//! an in-memory registry ([`Metrics`]), the text exposition format 0.0.4
//! ([`Metrics::render`]), a JSON snapshot for the JSON-RPC `metrics` method
//! ([`Metrics::snapshot_json`]), a manifest of the catalogue with its SHA-256
//! ([`manifest_json`], [`manifest_hash`]) and a minimal HTTP server for both
//! ([`serve`]).
//!
//! Only names in [`CATALOGUE`] can be recorded. A call with an unknown name,
//! the wrong kind of metric or the wrong number of label values is a
//! programming error: it fails a `debug_assert!` in debug builds and is
//! ignored in release builds. Nothing here panics on the values or label
//! values it is given, nor on anything a network client sends.

use sha2::{Digest, Sha256};
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The type of a metric, as named by the `# TYPE` line of the exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A count that only goes up (or resets to zero when the process restarts).
    Counter,
    /// A value that can go up and down.
    Gauge,
    /// Samples counted in the fixed buckets of [`BUCKETS_SECONDS`], with their sum.
    Histogram,
}

impl Kind {
    /// The name the exposition format and the manifest use: `counter`, `gauge`
    /// or `histogram`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The description of one metric in the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desc {
    /// The metric name; a counter's ends in `_total`.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// One sentence for the `# HELP` line.
    pub help: &'static str,
    /// The label names, in the order label values are passed and rendered.
    pub labels: &'static [&'static str],
}

const fn counter(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Desc {
    Desc {
        name,
        kind: Kind::Counter,
        help,
        labels,
    }
}

const fn gauge(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Desc {
    Desc {
        name,
        kind: Kind::Gauge,
        help,
        labels,
    }
}

const fn histogram(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> Desc {
    Desc {
        name,
        kind: Kind::Histogram,
        help,
        labels,
    }
}

/// Every metric the node exports, sorted by name. Changing it changes
/// [`manifest_hash`].
pub const CATALOGUE: &[Desc] = &[
    gauge(
        "block_difficulty",
        &[],
        "Difficulty of the block at the chain tip.",
    ),
    gauge("block_height", &[], "Height of the block at the chain tip."),
    histogram(
        "block_import_seconds",
        &[],
        "Time taken to validate and import one block, in seconds.",
    ),
    gauge(
        "block_time_seconds",
        &[],
        "Interval between the timestamps of the last two blocks, in seconds.",
    ),
    counter(
        "blocks_imported_total",
        &[],
        "Blocks this node imported into its store (mined here or received).",
    ),
    counter("blocks_mined_total", &[], "Blocks this node mined."),
    gauge(
        "bonds_micro",
        &[],
        "Micro-units held in open challenge bonds.",
    ),
    counter(
        "chain_reorgs_total",
        &[],
        "Reorganisations that switched this node's chain tip to another fork.",
    ),
    gauge("disputes_open", &[], "Disputes currently open (bonded challenges and replica disputes)."),
    gauge("escrow_micro", &[], "Micro-units held in job escrow."),
    counter(
        "events_published_total",
        &["kind"],
        "Events published to subscribers, by event kind.",
    ),
    gauge(
        "fund_balance_micro",
        &["token"],
        "Balance of the AI Compute Fund in micro-units, by token.",
    ),
    gauge("jobs", &["state"], "Compute jobs on chain, by job state."),
    gauge("leases_active", &[], "Job leases currently open."),
    gauge(
        "mempool_bytes",
        &[],
        "Encoded size in bytes of the transactions pending in the mempool.",
    ),
    gauge(
        "mempool_size",
        &[],
        "Transactions pending in the mempool.",
    ),
    gauge("mining", &[], "1 while this node is mining, 0 otherwise."),
    counter(
        "orphan_sweep_total",
        &[],
        "Mempool entries dropped as dependents of a dropped entry or refused on re-admission after a reorganisation.",
    ),
    counter(
        "p2p_blob_fetches_total",
        &["result"],
        "Blob fetches from peers by result (ok, not_found, too_large, timeout).",
    ),
    counter(
        "p2p_gossip_messages_total",
        &["topic", "result"],
        "Gossip messages received by topic and validation result (accept, ignore, orphan, reject, malformed, dropped).",
    ),
    gauge("p2p_peers", &[], "Peers connected now."),
    counter(
        "p2p_peers_banned_total",
        &[],
        "Peers banned for sending invalid data.",
    ),
    counter(
        "p2p_penalties_total",
        &["offence"],
        "Penalties charged to peers by offence.",
    ),
    counter(
        "p2p_published_total",
        &["topic"],
        "Gossip messages this node published by topic.",
    ),
    counter(
        "p2p_queue_full_total",
        &["queue"],
        "Work dropped because the network's bounded queue was full.",
    ),
    counter(
        "p2p_requests_busy_total",
        &[],
        "Inbound sync or blob requests answered busy (at the serving limit).",
    ),
    counter(
        "p2p_requests_served_total",
        &["protocol"],
        "Inbound sync and blob requests served.",
    ),
    counter(
        "p2p_sync_blocks_total",
        &[],
        "Blocks imported through the sync protocol.",
    ),
    counter(
        "payouts_paid_micro_total",
        &[],
        "Micro-units paid to providers by the epoch settlements this node imported since it started.",
    ),
    histogram(
        "proof_verification_latency_seconds",
        &[],
        "Time taken to check one receipt at submission, in seconds.",
    ),
    histogram(
        "provider_exec_seconds",
        &["fabric"],
        "Time this node took to execute one job as a provider, in seconds, by fabric.",
    ),
    counter(
        "provider_heartbeats_total",
        &[],
        "Heartbeats this node sent as a provider.",
    ),
    counter(
        "provider_jobs_executed_total",
        &["fabric"],
        "Jobs this node executed as a provider, by fabric.",
    ),
    counter(
        "provider_receipts_submitted_total",
        &[],
        "Receipts this node submitted as a provider.",
    ),
    gauge(
        "provider_stake_micro",
        &[],
        "Sum of the stakes bonded by all providers, in micro-units.",
    ),
    gauge("providers", &[], "Compute providers registered on chain."),
    gauge(
        "receipt_drain_depth",
        &[],
        "Receipts waiting in the settlement queue.",
    ),
    counter(
        "rpc_requests_total",
        &["method"],
        "JSON-RPC requests received, by method.",
    ),
    gauge(
        "sla_breach_count",
        &[],
        "Proof-latency SLA slashes on chain.",
    ),
    gauge("slashes", &[], "Slash records on chain."),
    gauge(
        "state_cache_bytes",
        &[],
        "Approximate bytes held by the state cache (bounded by state_cache_mb).",
    ),
    gauge(
        "state_cache_items",
        &["kind"],
        "Items held by the state cache, by kind (entry, node).",
    ),
    counter(
        "state_cache_lookups_total",
        &["result"],
        "State reads looked up in the cache, by result (hit, miss: read from disk).",
    ),
    counter(
        "ttl_drop_total",
        &[],
        "Mempool entries dropped because their time to live expired.",
    ),
    counter(
        "tx_admitted_total",
        &[],
        "Transactions admitted to the mempool.",
    ),
    counter(
        "tx_rejected_total",
        &["reason"],
        "Transactions the mempool refused, by reason.",
    ),
    counter(
        "verifier_challenges_total",
        &[],
        "Challenges this node's verifier submitted.",
    ),
    histogram(
        "verifier_replay_seconds",
        &[],
        "Time this node's verifier took to replay one receipt, in seconds.",
    ),
    counter(
        "verifier_replays_total",
        &[],
        "Receipts this node's verifier replayed.",
    ),
];

/// The upper bounds, in seconds, of every histogram's buckets (the `le` label),
/// in increasing order; a final `+Inf` bucket is implied.
pub const BUCKETS_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

const BUCKETS: usize = BUCKETS_SECONDS.len();

/// The most series (distinct label-value combinations) one metric keeps. A new
/// combination beyond it is dropped, so label values taken from network input
/// cannot grow memory without bound.
pub const SERIES_MAX: usize = 1024;

/// Why a recording call changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rejected {
    /// The name is not in the catalogue.
    UnknownName,
    /// The call is for another kind of metric.
    WrongKind,
    /// The number of label values differs from the number of label names.
    WrongLabelCount,
    /// Cumulative bucket counts of the wrong length or decreasing.
    BadHistogram,
    /// A histogram sample that is NaN, infinite or negative.
    BadSample,
    /// The metric already holds [`SERIES_MAX`] series.
    SeriesLimit,
}

impl Rejected {
    /// Whether the rejection can only come from a mistake in the calling code.
    fn is_misuse(self) -> bool {
        matches!(
            self,
            Rejected::UnknownName
                | Rejected::WrongKind
                | Rejected::WrongLabelCount
                | Rejected::BadHistogram
        )
    }
}

/// Fails a debug assertion when `result` reports a programming error.
fn check(name: &str, result: Result<(), Rejected>) {
    if let Err(e) = result {
        debug_assert!(!e.is_misuse(), "metrics: {e:?} recording {name:?}");
    }
}

#[derive(Clone, Debug)]
struct Hist {
    /// `cumulative[i]`: samples at most `BUCKETS_SECONDS[i]`.
    cumulative: [u64; BUCKETS],
    sum: f64,
    count: u64,
}

#[derive(Clone, Debug)]
enum Series {
    Counter(u64),
    Gauge(f64),
    Histogram(Hist),
}

impl Series {
    fn zero(kind: Kind) -> Series {
        match kind {
            Kind::Counter => Series::Counter(0),
            Kind::Gauge => Series::Gauge(0.0),
            Kind::Histogram => Series::Histogram(Hist {
                cumulative: [0; BUCKETS],
                sum: 0.0,
                count: 0,
            }),
        }
    }
}

/// One metric's series, keyed by label values (in label-name order).
type Family = BTreeMap<Vec<String>, Series>;

fn lock(family: &Mutex<Family>) -> MutexGuard<'_, Family> {
    family.lock().unwrap_or_else(PoisonError::into_inner)
}

fn lookup(name: &str) -> Option<(usize, &'static Desc)> {
    let i = CATALOGUE.binary_search_by(|d| d.name.cmp(name)).ok()?;
    CATALOGUE.get(i).map(|d| (i, d))
}

/// The node's metrics: one set of series per catalogue entry. Safe to share
/// between threads (each metric has its own lock).
pub struct Metrics {
    families: Vec<Mutex<Family>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics with no series recorded.
    pub fn new() -> Metrics {
        Metrics {
            families: CATALOGUE
                .iter()
                .map(|_| Mutex::new(Family::new()))
                .collect(),
        }
    }

    /// Sets the gauge `name` with label values `labels` to `value` (NaN and
    /// infinities included). A call for an unknown name, a metric that is not a
    /// gauge or the wrong number of label values changes nothing.
    pub fn set(&self, name: &str, labels: &[&str], value: f64) {
        check(name, self.try_set(name, labels, value));
    }

    /// Adds `by` to the counter `name` with label values `labels`, saturating
    /// at `u64::MAX`. A call for an unknown name, a metric that is not a counter
    /// or the wrong number of label values changes nothing.
    pub fn inc_by(&self, name: &str, labels: &[&str], by: u64) {
        check(name, self.try_inc_by(name, labels, by));
    }

    /// Adds 1 to the counter `name` with label values `labels`.
    pub fn inc(&self, name: &str, labels: &[&str]) {
        self.inc_by(name, labels, 1)
    }

    /// Sets the counter `name` with label values `labels` to `total`, a count
    /// kept elsewhere (such as the mempool's counters). A total below the
    /// current value is recorded as is, which Prometheus reads as a reset.
    pub fn set_counter(&self, name: &str, labels: &[&str], total: u64) {
        check(name, self.try_set_counter(name, labels, total));
    }

    /// Records one sample of `seconds` in the histogram `name` with label
    /// values `labels`. A NaN, infinite or negative sample is ignored (a
    /// duration is finite and not negative), as is a call for an unknown name,
    /// a metric that is not a histogram or the wrong number of label values.
    pub fn observe(&self, name: &str, labels: &[&str], seconds: f64) {
        check(name, self.try_observe(name, labels, seconds));
    }

    /// Replaces the histogram `name` with label values `labels` by one kept
    /// elsewhere: `cumulative[i]` is the number of samples at most
    /// `BUCKETS_SECONDS[i]` seconds, `sum_seconds` their sum and `count` their
    /// number. `cumulative` must have one entry per bound of [`BUCKETS_SECONDS`]
    /// and never decrease, or the call changes nothing. A `count` below the
    /// last cumulative count (a snapshot read while samples arrived) is raised
    /// to it.
    pub fn set_histogram(
        &self,
        name: &str,
        labels: &[&str],
        cumulative: &[u64],
        sum_seconds: f64,
        count: u64,
    ) {
        check(
            name,
            self.try_set_histogram(name, labels, cumulative, sum_seconds, count),
        );
    }

    /// The value of the counter or gauge `name` with label values `labels` (a
    /// counter above 2^53 is rounded to the nearest `f64`), or `None` when that series was never recorded, `name` is unknown or a
    /// histogram, or the number of label values is wrong.
    pub fn value(&self, name: &str, labels: &[&str]) -> Option<f64> {
        let (i, desc) = lookup(name)?;
        if desc.labels.len() != labels.len() {
            return None;
        }
        let family = lock(self.families.get(i)?);
        let key: Vec<String> = labels.iter().map(|s| (*s).to_owned()).collect();
        match family.get(&key)? {
            Series::Counter(c) => Some(*c as f64),
            Series::Gauge(g) => Some(*g),
            Series::Histogram(_) => None,
        }
    }

    /// The metrics in the Prometheus text exposition format 0.0.4: for every
    /// catalogue entry, in catalogue order, its `# HELP` and `# TYPE` lines and
    /// then its series in the order of their label values. A metric without
    /// labels that was never recorded is rendered with zero values; a metric
    /// with labels shows only the series recorded. A histogram series renders
    /// as `_bucket` lines (one per bound of [`BUCKETS_SECONDS`], then
    /// `le="+Inf"`), `_sum` and `_count`.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        for (desc, family) in CATALOGUE.iter().zip(&self.families) {
            let _ = writeln!(out, "# HELP {} {}", desc.name, escape_help(desc.help));
            let _ = writeln!(out, "# TYPE {} {}", desc.name, desc.kind.as_str());
            let family = lock(family);
            if family.is_empty() && desc.labels.is_empty() {
                render_series(&mut out, desc, &[], &Series::zero(desc.kind));
            }
            for (values, series) in family.iter() {
                render_series(&mut out, desc, values, series);
            }
        }
        out
    }

    /// A JSON object with one member per catalogue entry: a counter or gauge
    /// without labels maps to its value (0 when never recorded); one with
    /// labels maps to an object from `"label1=value1,label2=value2"` to the
    /// value of each series recorded; a histogram without labels maps to
    /// `{"count": n, "sum": seconds}`, one with labels to an object from the
    /// same label keys to such objects. Integral values are JSON integers;
    /// NaN and infinities, which JSON cannot represent, are `null`.
    pub fn snapshot_json(&self) -> serde_json::Value {
        let mut root = serde_json::Map::new();
        for (desc, family) in CATALOGUE.iter().zip(&self.families) {
            let family = lock(family);
            let value = if desc.labels.is_empty() {
                match family.get(&Vec::new()) {
                    Some(series) => series_json(series),
                    None => series_json(&Series::zero(desc.kind)),
                }
            } else {
                let mut object = serde_json::Map::new();
                for (values, series) in family.iter() {
                    let key = desc
                        .labels
                        .iter()
                        .zip(values)
                        .map(|(l, v)| format!("{l}={v}"))
                        .collect::<Vec<_>>()
                        .join(",");
                    object.insert(key, series_json(series));
                }
                serde_json::Value::Object(object)
            };
            root.insert(desc.name.to_owned(), value);
        }
        serde_json::Value::Object(root)
    }

    /// Applies `f` to the series `name{labels}` of kind `kind`, creating it
    /// with zero values first when it is new.
    fn update(
        &self,
        name: &str,
        labels: &[&str],
        kind: Kind,
        f: impl FnOnce(&mut Series),
    ) -> Result<(), Rejected> {
        let i = resolve(name, labels, kind)?;
        let mut family = lock(self.families.get(i).ok_or(Rejected::UnknownName)?);
        let full = family.len() >= SERIES_MAX;
        match family.entry(labels.iter().map(|s| (*s).to_owned()).collect()) {
            Entry::Occupied(mut e) => f(e.get_mut()),
            Entry::Vacant(_) if full => return Err(Rejected::SeriesLimit),
            Entry::Vacant(e) => f(e.insert(Series::zero(kind))),
        }
        Ok(())
    }

    fn try_set(&self, name: &str, labels: &[&str], value: f64) -> Result<(), Rejected> {
        self.update(name, labels, Kind::Gauge, |s| {
            if let Series::Gauge(g) = s {
                *g = value;
            }
        })
    }

    fn try_inc_by(&self, name: &str, labels: &[&str], by: u64) -> Result<(), Rejected> {
        self.update(name, labels, Kind::Counter, |s| {
            if let Series::Counter(c) = s {
                *c = c.saturating_add(by);
            }
        })
    }

    fn try_set_counter(&self, name: &str, labels: &[&str], total: u64) -> Result<(), Rejected> {
        self.update(name, labels, Kind::Counter, |s| {
            if let Series::Counter(c) = s {
                *c = total;
            }
        })
    }

    fn try_observe(&self, name: &str, labels: &[&str], seconds: f64) -> Result<(), Rejected> {
        resolve(name, labels, Kind::Histogram)?;
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(Rejected::BadSample);
        }
        self.update(name, labels, Kind::Histogram, |s| {
            if let Series::Histogram(h) = s {
                for (bound, c) in BUCKETS_SECONDS.iter().zip(h.cumulative.iter_mut()) {
                    if seconds <= *bound {
                        *c = c.saturating_add(1);
                    }
                }
                h.sum += seconds;
                h.count = h.count.saturating_add(1);
            }
        })
    }

    fn try_set_histogram(
        &self,
        name: &str,
        labels: &[&str],
        cumulative: &[u64],
        sum_seconds: f64,
        count: u64,
    ) -> Result<(), Rejected> {
        resolve(name, labels, Kind::Histogram)?;
        let mut buckets = [0u64; BUCKETS];
        if cumulative.len() != BUCKETS || cumulative.windows(2).any(|w| w[0] > w[1]) {
            return Err(Rejected::BadHistogram);
        }
        buckets.copy_from_slice(cumulative);
        let count = count.max(buckets[BUCKETS - 1]);
        self.update(name, labels, Kind::Histogram, |s| {
            if let Series::Histogram(h) = s {
                h.cumulative = buckets;
                h.sum = sum_seconds;
                h.count = count;
            }
        })
    }
}

/// The catalogue index of `name`, if it is a metric of kind `kind` with as
/// many label names as `labels` has values.
fn resolve(name: &str, labels: &[&str], kind: Kind) -> Result<usize, Rejected> {
    let (i, desc) = lookup(name).ok_or(Rejected::UnknownName)?;
    if desc.kind != kind {
        return Err(Rejected::WrongKind);
    }
    if desc.labels.len() != labels.len() {
        return Err(Rejected::WrongLabelCount);
    }
    Ok(i)
}

/// Appends the sample lines of one series.
fn render_series(out: &mut String, desc: &Desc, values: &[String], series: &Series) {
    let name = desc.name;
    match series {
        Series::Counter(c) => {
            let _ = writeln!(out, "{name}{} {c}", labels_text(desc.labels, values, None));
        }
        Series::Gauge(g) => {
            let _ = writeln!(
                out,
                "{name}{} {}",
                labels_text(desc.labels, values, None),
                format_f64(*g)
            );
        }
        Series::Histogram(h) => {
            for (bound, c) in BUCKETS_SECONDS.iter().zip(h.cumulative.iter()) {
                let le = format_f64(*bound);
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {c}",
                    labels_text(desc.labels, values, Some(&le))
                );
            }
            let labels = labels_text(desc.labels, values, None);
            let _ = writeln!(
                out,
                "{name}_bucket{} {}",
                labels_text(desc.labels, values, Some("+Inf")),
                h.count
            );
            let _ = writeln!(out, "{name}_sum{labels} {}", format_f64(h.sum));
            let _ = writeln!(out, "{name}_count{labels} {}", h.count);
        }
    }
}

/// `{name1="value1",...,le="bound"}`, or nothing when there are no labels.
fn labels_text(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape_label_value(v)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

/// A label value with backslash, double quote and line feed escaped as the
/// exposition format requires.
fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A help text with backslash and line feed escaped as the exposition format
/// requires.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as the exposition format writes it: integral values without a
/// decimal point, no exponent, `NaN`, `+Inf` and `-Inf`.
fn format_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        // Rust's `Display` for `f64` is the shortest decimal that reads back
        // exactly, with no exponent and no trailing `.0`.
        format!("{v}")
    }
}

/// A float as JSON: an integer when integral and exact, `null` when not finite.
fn json_f64(v: f64) -> serde_json::Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if v.is_finite() && v.fract() == 0.0 && v.abs() <= EXACT {
        serde_json::Value::from(v as i64)
    } else {
        serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

fn series_json(series: &Series) -> serde_json::Value {
    match series {
        Series::Counter(c) => serde_json::Value::from(*c),
        Series::Gauge(g) => json_f64(*g),
        Series::Histogram(h) => {
            let mut object = serde_json::Map::new();
            object.insert("count".to_owned(), serde_json::Value::from(h.count));
            object.insert("sum".to_owned(), json_f64(h.sum));
            serde_json::Value::Object(object)
        }
    }
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The canonical JSON of the manifest's `metrics` array: compact, one object
/// per catalogue entry in catalogue order, keys in the order `name`, `type`,
/// `help`, `labels`.
fn manifest_metrics_json() -> String {
    let mut out = String::from("[");
    for (i, d) in CATALOGUE.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let labels: Vec<String> = d.labels.iter().map(|l| json_string(l)).collect();
        let _ = write!(
            out,
            "{{\"name\":{},\"type\":{},\"help\":{},\"labels\":[{}]}}",
            json_string(d.name),
            json_string(d.kind.as_str()),
            json_string(d.help),
            labels.join(",")
        );
    }
    out.push(']');
    out
}

fn manifest() -> &'static (String, String) {
    static MANIFEST: OnceLock<(String, String)> = OnceLock::new();
    MANIFEST.get_or_init(|| {
        let metrics = manifest_metrics_json();
        let digest = Sha256::digest(metrics.as_bytes());
        let mut hash = String::with_capacity(64);
        for b in digest.iter() {
            let _ = write!(hash, "{b:02x}");
        }
        let json = format!("{{\"version\":1,\"metrics\":{metrics},\"hash\":\"{hash}\"}}");
        (json, hash)
    })
}

/// The manifest served at `/wrappers`:
/// `{"version":1,"metrics":[{"name":…,"type":…,"help":…,"labels":[…]},…],"hash":…}`,
/// compact and identical byte for byte on every call and build of the same
/// catalogue; `hash` is [`manifest_hash`].
pub fn manifest_json() -> String {
    manifest().0.clone()
}

/// The lowercase hex SHA-256 of the manifest's `metrics` array exactly as it
/// appears in [`manifest_json`].
pub fn manifest_hash() -> String {
    manifest().1.clone()
}

/// Limits of the HTTP server; [`serve`] uses [`SERVER`].
#[derive(Clone, Copy, Debug)]
struct ServerConfig {
    /// Connections handled at once; a further one is answered 503.
    max_connections: usize,
    /// Longest request line and headers, terminating blank line included.
    head_bytes_max: usize,
    /// Time allowed for the request line and headers to arrive.
    head_timeout: Duration,
    /// Time allowed for writing one response.
    write_timeout: Duration,
    /// Sleep between accept attempts when none is pending.
    poll: Duration,
    /// Time spent discarding input after a response before closing.
    linger: Duration,
    /// Most bytes discarded after a response.
    linger_bytes_max: usize,
}

const SERVER: ServerConfig = ServerConfig {
    max_connections: 64,
    head_bytes_max: 8 * 1024,
    head_timeout: Duration::from_secs(5),
    write_timeout: Duration::from_secs(5),
    poll: Duration::from_millis(25),
    linger: Duration::from_secs(1),
    linger_bytes_max: 64 * 1024,
};

/// Serves the metrics over HTTP/1.x on `listener` from a new thread, whose
/// handle is returned:
///
/// * `GET /metrics`: calls `refresh` (which updates gauges derived from the
///   chain), then answers 200 with [`Metrics::render`] as
///   `text/plain; version=0.0.4; charset=utf-8`; 500 if `refresh` panics.
/// * `GET /wrappers`: 200 with [`manifest_json`] as `application/json`.
///
/// A query string is ignored. Another path is answered 404 and another method
/// 405. A request line and headers longer than 8 KiB, or malformed, are
/// answered 400; if they have not arrived within 5 seconds, 408. Each
/// connection carries one request and is closed after the response, which has
/// `Connection: close` and `Content-Length`. Each connection is handled on its
/// own thread; while 64 are being handled, a further one is answered 503 and
/// closed.
///
/// The thread checks `stop` at least every 25 ms while idle and returns once
/// it is true, closing the listener; connections already accepted finish on
/// their own threads.
///
/// # Panics
///
/// Panics, like [`std::thread::spawn`], if the operating system cannot create
/// the server thread. Nothing a client sends causes a panic.
pub fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    refresh: Arc<dyn Fn() + Send + Sync>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    serve_with(listener, metrics, refresh, stop, SERVER)
}

fn serve_with(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    refresh: Arc<dyn Fn() + Send + Sync>,
    stop: Arc<AtomicBool>,
    cfg: ServerConfig,
) -> JoinHandle<()> {
    std::thread::spawn(move || accept_loop(&listener, &metrics, &refresh, &stop, cfg))
}

/// Decrements the count of connections being handled when dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop(
    listener: &TcpListener,
    metrics: &Arc<Metrics>,
    refresh: &Arc<dyn Fn() + Send + Sync>,
    stop: &AtomicBool,
    cfg: ServerConfig,
) {
    if let Err(e) = listener.set_nonblocking(true) {
        eprintln!("metrics server: cannot make the listener non-blocking: {e}");
        return;
    }
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => dispatch(stream, metrics, refresh, &active, cfg),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // `WouldBlock` when no connection is pending; anything else (such
            // as running out of file descriptors) is retried after the sleep.
            Err(_) => std::thread::sleep(cfg.poll),
        }
    }
}

fn dispatch(
    stream: TcpStream,
    metrics: &Arc<Metrics>,
    refresh: &Arc<dyn Fn() + Send + Sync>,
    active: &Arc<AtomicUsize>,
    cfg: ServerConfig,
) {
    // Accepted sockets inherit the listener's non-blocking mode on some systems.
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    if active.load(Ordering::Acquire) >= cfg.max_connections {
        reject_busy(stream);
        return;
    }
    // Only this thread increments, so the count cannot pass the limit.
    active.fetch_add(1, Ordering::AcqRel);
    let slot = Slot(Arc::clone(active));
    let metrics = Arc::clone(metrics);
    let refresh = Arc::clone(refresh);
    // If the thread cannot be created, the closure is dropped: the stream is
    // closed and the slot released.
    let _ = std::thread::Builder::new()
        .name("metrics-conn".to_owned())
        .spawn(move || {
            let _slot = slot;
            handle(stream, &metrics, refresh.as_ref(), cfg);
        });
}

/// Answers 503 without a thread of its own: the response is small enough for
/// the socket buffer, and input already received is discarded without waiting
/// so that closing does not reset the connection.
fn reject_busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(&text_response(503, "too many connections\n"));
    let _ = stream.shutdown(Shutdown::Write);
    if stream.set_nonblocking(true).is_ok() {
        let mut buf = [0u8; 4096];
        for _ in 0..4 {
            match stream.read(&mut buf) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    TooLarge,
    Timeout,
    /// The client closed the connection; `partial` if it had sent anything.
    Closed {
        partial: bool,
    },
    Io,
}

fn handle(
    mut stream: TcpStream,
    metrics: &Metrics,
    refresh: &(dyn Fn() + Send + Sync),
    cfg: ServerConfig,
) {
    let _ = stream.set_write_timeout(Some(cfg.write_timeout));
    let response = match read_head(&mut stream, cfg) {
        Ok(head) => Some(route(&head, metrics, refresh)),
        Err(HeadError::TooLarge) => Some(text_response(400, "request head too large\n")),
        Err(HeadError::Timeout) => Some(text_response(408, "request head timed out\n")),
        Err(HeadError::Closed { partial: true }) => {
            Some(text_response(400, "incomplete request\n"))
        }
        Err(HeadError::Closed { partial: false }) | Err(HeadError::Io) => None,
    };
    if let Some(response) = response {
        let _ = stream.write_all(&response);
        let _ = stream.flush();
    }
    linger_close(stream, cfg);
}

/// Reads up to and including the blank line that ends the request headers.
fn read_head(stream: &mut TcpStream, cfg: ServerConfig) -> Result<Vec<u8>, HeadError> {
    let deadline = Instant::now() + cfg.head_timeout;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = head_end(&head) {
            if end > cfg.head_bytes_max {
                return Err(HeadError::TooLarge);
            }
            head.truncate(end);
            return Ok(head);
        }
        if head.len() > cfg.head_bytes_max {
            return Err(HeadError::TooLarge);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(HeadError::Timeout);
        }
        if stream.set_read_timeout(Some(deadline - now)).is_err() {
            return Err(HeadError::Io);
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(HeadError::Closed {
                    partial: !head.is_empty(),
                })
            }
            Ok(n) => head.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(HeadError::Timeout)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(HeadError::Io),
        }
    }
}

/// The length of the request head (through `\r\n\r\n` or `\n\n`), if complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| {
        let rest = buf.get(i..)?;
        if rest.starts_with(b"\n\n") {
            Some(i + 2)
        } else if rest.starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else {
            None
        }
    })
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The response to a complete request head.
fn route(head: &[u8], metrics: &Metrics, refresh: &(dyn Fn() + Send + Sync)) -> Vec<u8> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(line) = std::str::from_utf8(line) else {
        return text_response(400, "malformed request line\n");
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return text_response(400, "malformed request line\n");
    };
    if method.is_empty()
        || !method.bytes().all(is_token_byte)
        || target.is_empty()
        || target
            .bytes()
            .any(|b| b.is_ascii_control() || !b.is_ascii())
        || !(version == "HTTP/1.1" || version == "HTTP/1.0")
    {
        return text_response(400, "malformed request line\n");
    }
    if method != "GET" {
        return response(
            405,
            "text/plain; charset=utf-8",
            "Allow: GET\r\n",
            b"method not allowed\n",
        );
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    match path {
        "/metrics" => match catch_unwind(AssertUnwindSafe(refresh)) {
            Ok(()) => response(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                "",
                metrics.render().as_bytes(),
            ),
            Err(_) => text_response(500, "metrics refresh failed\n"),
        },
        "/wrappers" => response(200, "application/json", "", manifest_json().as_bytes()),
        _ => text_response(404, "not found\n"),
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn text_response(status: u16, body: &str) -> Vec<u8> {
    response(status, "text/plain; charset=utf-8", "", body.as_bytes())
}

/// A complete response; `extra_headers` is empty or CRLF-terminated lines.
fn response(status: u16, content_type: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra_headers}Connection: close\r\n\r\n",
        reason_phrase(status),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Closes the connection after a response: the write side first, then input
/// is discarded until the client closes, for at most `cfg.linger` and
/// `cfg.linger_bytes_max`. Closing with unread input would make the kernel
/// reset the connection, which can destroy the response before the client
/// reads it.
fn linger_close(stream: TcpStream, cfg: ServerConfig) {
    let mut stream = stream;
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + cfg.linger;
    let mut discarded = 0usize;
    let mut chunk = [0u8; 4096];
    while discarded < cfg.linger_bytes_max {
        let now = Instant::now();
        if now >= deadline || stream.set_read_timeout(Some(deadline - now)).is_err() {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => discarded += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn valid_metric_name(s: &str) -> bool {
        let mut bytes = s.bytes();
        matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
    }

    fn valid_label_name(s: &str) -> bool {
        let mut bytes = s.bytes();
        matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !s.starts_with("__")
    }

    #[test]
    fn catalogue_is_sorted_unique_and_valid() {
        assert_eq!(CATALOGUE.len(), 49);
        for pair in CATALOGUE.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} must sort strictly before {}",
                pair[0].name,
                pair[1].name
            );
        }
        let mut exposed = std::collections::BTreeSet::new();
        for d in CATALOGUE {
            assert!(valid_metric_name(d.name), "{}", d.name);
            assert!(
                !d.name.contains(':'),
                "colons are for recording rules: {}",
                d.name
            );
            assert!(!d.help.is_empty() && d.help.ends_with('.'), "{}", d.name);
            assert!(
                !d.help.contains('\n') && !d.help.contains('\\'),
                "{}",
                d.name
            );
            match d.kind {
                Kind::Counter => assert!(d.name.ends_with("_total"), "{}", d.name),
                Kind::Gauge => assert!(!d.name.ends_with("_total"), "{}", d.name),
                Kind::Histogram => assert!(d.name.ends_with("_seconds"), "{}", d.name),
            }
            let mut labels = std::collections::BTreeSet::new();
            for l in d.labels {
                assert!(valid_label_name(l), "{}: {l}", d.name);
                assert_ne!(*l, "le", "{}", d.name);
                assert!(labels.insert(*l), "{}: duplicate label {l}", d.name);
            }
            let names: Vec<String> = match d.kind {
                Kind::Histogram => ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|s| format!("{}{s}", d.name))
                    .collect(),
                _ => vec![d.name.to_owned()],
            };
            for n in names {
                assert!(exposed.insert(n.clone()), "series name {n} collides");
            }
            assert_eq!(lookup(d.name).map(|(_, found)| found), Some(d));
        }
        assert!(lookup("peers").is_none());
        assert!(BUCKETS_SECONDS.windows(2).all(|w| w[0] < w[1]));
    }

    type Labels = Vec<(String, String)>;

    #[derive(Debug, Clone, PartialEq)]
    struct Sample {
        name: String,
        labels: Labels,
        value: f64,
    }

    fn take_name(s: &str, label: bool) -> (&str, &str) {
        let end = s
            .char_indices()
            .find(|&(i, c)| {
                !(c.is_ascii_alphabetic()
                    || c == '_'
                    || (c == ':' && !label)
                    || (i > 0 && c.is_ascii_digit()))
            })
            .map_or(s.len(), |(i, _)| i);
        s.split_at(end)
    }

    fn parse_value(s: &str) -> Result<f64, String> {
        match s {
            "NaN" => Ok(f64::NAN),
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            _ if !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
            {
                s.parse().map_err(|e| format!("value {s:?}: {e}"))
            }
            _ => Err(format!("value {s:?}")),
        }
    }

    /// Parses the label set starting just after `{`; returns it and the rest
    /// after `}`.
    fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
        let mut labels = Vec::new();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        loop {
            let (name, rest) = take_name(s, true);
            if name.is_empty() {
                return Err(format!("label name expected at {s:?}"));
            }
            let mut chars = rest
                .strip_prefix("=\"")
                .ok_or_else(|| format!("=\" expected at {rest:?}"))?
                .char_indices();
            let mut value = String::new();
            let end = loop {
                match chars.next() {
                    None => return Err("unterminated label value".into()),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some((_, '\n')) => return Err("raw newline in label value".into()),
                    Some((_, c)) => value.push(c),
                }
            };
            labels.push((name.to_owned(), value));
            let rest = &rest[2 + end + 1..];
            if let Some(rest) = rest.strip_prefix('}') {
                return Ok((labels, rest));
            }
            s = rest
                .strip_prefix(',')
                .ok_or_else(|| format!(", or }} expected at {rest:?}"))?;
        }
    }

    /// Checks `text` line by line against the text exposition format 0.0.4
    /// and returns its samples: every metric has HELP then TYPE once, before
    /// its samples, and every sample belongs to the metric last typed.
    fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
        if !text.ends_with('\n') {
            return Err("missing final line feed".into());
        }
        let mut samples = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut help: Option<String> = None;
        let mut typed: Option<(String, String)> = None;
        for (n, line) in text.lines().enumerate() {
            let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, text) = rest.split_once(' ').ok_or_else(|| err("no help".into()))?;
                if !valid_metric_name(name) || !seen.insert(name.to_owned()) {
                    return Err(err("bad or repeated name".into()));
                }
                let mut chars = text.chars();
                while let Some(c) = chars.next() {
                    if c == '\\' && !matches!(chars.next(), Some('\\') | Some('n')) {
                        return Err(err("bad escape in help".into()));
                    }
                }
                help = Some(name.to_owned());
                typed = None;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or_else(|| err("no type".into()))?;
                if help.as_deref() != Some(name) {
                    return Err(err("TYPE not after its HELP".into()));
                }
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(err("bad type".into()));
                }
                typed = Some((name.to_owned(), kind.to_owned()));
            } else if line.starts_with('#') {
                continue;
            } else {
                let (name, rest) = take_name(line, false);
                let (family, kind) = typed.as_ref().ok_or_else(|| err("untyped sample".into()))?;
                let belongs = if kind == "histogram" {
                    ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name == format!("{family}{s}"))
                } else {
                    name == family
                };
                if !belongs {
                    return Err(err(format!("sample outside family {family}")));
                }
                let (labels, rest) = match rest.strip_prefix('{') {
                    Some(rest) => parse_labels(rest).map_err(err)?,
                    None => (Vec::new(), rest),
                };
                if name.ends_with("_bucket") && !labels.iter().any(|(l, _)| l == "le") {
                    return Err(err("bucket without le".into()));
                }
                let rest = rest
                    .strip_prefix(' ')
                    .ok_or_else(|| err("space expected".into()))?;
                let mut fields = rest.split(' ');
                let value = parse_value(fields.next().unwrap_or_default()).map_err(err)?;
                if let Some(ts) = fields.next() {
                    ts.parse::<i64>()
                        .map_err(|e| err(format!("timestamp: {e}")))?;
                }
                if fields.next().is_some() {
                    return Err(err("trailing fields".into()));
                }
                samples.push(Sample {
                    name: name.to_owned(),
                    labels,
                    value,
                });
            }
        }
        Ok(samples)
    }

    fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
        samples.iter().find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && s.labels
                    .iter()
                    .zip(labels)
                    .all(|(a, b)| a.0 == b.0 && a.1 == b.1)
        })
    }

    #[test]
    fn fresh_render_is_valid_exposition() {
        let m = Metrics::new();
        let text = m.render();
        let samples = parse_exposition(&text).expect("valid exposition");
        for d in CATALOGUE {
            let head = format!(
                "# HELP {} {}\n# TYPE {} {}\n",
                d.name,
                d.help,
                d.name,
                d.kind.as_str()
            );
            assert!(text.contains(&head), "{}", d.name);
            let names: Vec<String> = match d.kind {
                Kind::Histogram => ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|s| format!("{}{s}", d.name))
                    .collect(),
                _ => vec![d.name.to_owned()],
            };
            let own: Vec<&Sample> = samples.iter().filter(|s| names.contains(&s.name)).collect();
            match (d.kind, d.labels.is_empty()) {
                (_, false) => assert!(own.is_empty(), "{}", d.name),
                (Kind::Histogram, true) => {
                    assert_eq!(own.len(), BUCKETS + 3, "{}", d.name);
                    assert!(own.iter().all(|s| s.value == 0.0));
                }
                (_, true) => {
                    assert_eq!(own.len(), 1, "{}", d.name);
                    assert_eq!(own[0].value, 0.0);
                }
            }
        }
        assert!(text.contains("\ntx_admitted_total 0\n"));
        assert!(!text.contains("# TYPE peers "));
    }

    #[test]
    fn counters_and_gauges_round_trip() {
        let m = Metrics::new();
        assert_eq!(m.value("tx_admitted_total", &[]), None);
        m.inc("tx_admitted_total", &[]);
        m.inc("tx_admitted_total", &[]);
        m.inc_by("tx_admitted_total", &[], 5);
        assert_eq!(m.value("tx_admitted_total", &[]), Some(7.0));
        m.inc_by("blocks_mined_total", &[], u64::MAX);
        m.inc("blocks_mined_total", &[]);
        assert_eq!(m.value("blocks_mined_total", &[]), Some(u64::MAX as f64));
        m.set_counter("ttl_drop_total", &[], 42);
        m.inc("tx_rejected_total", &["nonce_gap"]);
        m.inc_by("tx_rejected_total", &["fee_too_low"], 3);
        m.set("mempool_size", &[], 3.0);
        m.set("block_time_seconds", &[], 2.5);
        m.set("block_difficulty", &[], f64::NAN);
        m.set("escrow_micro", &[], f64::INFINITY);
        m.set("bonds_micro", &[], f64::NEG_INFINITY);
        m.set("jobs", &["queued"], 4.0);
        m.set("jobs", &["failed"], 1.0);
        m.set("jobs", &["queued"], 6.0);
        assert_eq!(m.value("jobs", &["queued"]), Some(6.0));
        assert_eq!(m.value("jobs", &["settled"]), None);
        assert_eq!(m.value("jobs", &[]), None);
        assert_eq!(m.value("no_such_metric", &[]), None);
        assert_eq!(m.value("block_import_seconds", &[]), None);

        let text = m.render();
        let samples = parse_exposition(&text).expect("valid exposition");
        for line in [
            "tx_admitted_total 7",
            "ttl_drop_total 42",
            &format!("blocks_mined_total {}", u64::MAX),
            "mempool_size 3",
            "block_time_seconds 2.5",
            "block_difficulty NaN",
            "escrow_micro +Inf",
            "bonds_micro -Inf",
            "jobs{state=\"failed\"} 1\njobs{state=\"queued\"} 6",
            "tx_rejected_total{reason=\"fee_too_low\"} 3\ntx_rejected_total{reason=\"nonce_gap\"} 1",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line:?} in\n{text}");
        }
        assert_eq!(
            find(&samples, "jobs", &[("state", "queued")]).map(|s| s.value),
            Some(6.0)
        );
        assert_eq!(
            find(&samples, "tx_rejected_total", &[("reason", "nonce_gap")]).map(|s| s.value),
            Some(1.0)
        );
        assert!(find(&samples, "block_difficulty", &[]).is_some_and(|s| s.value.is_nan()));
    }

    #[test]
    fn histograms_round_trip() {
        let m = Metrics::new();
        for s in [0.00005, 0.0003, 0.0003, 2.0, 100.0] {
            m.observe("block_import_seconds", &[], s);
        }
        m.observe("provider_exec_seconds", &["cpu"], 0.5);
        let text = m.render();
        let samples = parse_exposition(&text).expect("valid exposition");
        let bucket = |le: &str| {
            find(&samples, "block_import_seconds_bucket", &[("le", le)]).map(|s| s.value)
        };
        assert_eq!(bucket("0.0001"), Some(1.0));
        assert_eq!(bucket("0.00025"), Some(1.0));
        assert_eq!(bucket("0.0005"), Some(3.0));
        assert_eq!(bucket("1"), Some(3.0));
        assert_eq!(bucket("2.5"), Some(4.0));
        assert_eq!(bucket("60"), Some(4.0));
        assert_eq!(bucket("+Inf"), Some(5.0));
        assert_eq!(
            find(&samples, "block_import_seconds_count", &[]).map(|s| s.value),
            Some(5.0)
        );
        let sum = find(&samples, "block_import_seconds_sum", &[]).map_or(0.0, |s| s.value);
        assert!((sum - 102.00065).abs() < 1e-9, "{sum}");
        // Buckets come in increasing order and never decrease.
        let les: Vec<f64> = samples
            .iter()
            .filter(|s| s.name == "block_import_seconds_bucket")
            .map(|s| parse_value(&s.labels[0].1).unwrap_or(f64::NAN))
            .collect();
        assert_eq!(les.len(), BUCKETS + 1);
        assert!(les.windows(2).all(|w| w[0] < w[1]));
        assert!(text.contains("\nprovider_exec_seconds_bucket{fabric=\"cpu\",le=\"0.5\"} 1\n"));
        assert!(text.contains("\nprovider_exec_seconds_sum{fabric=\"cpu\"} 0.5\n"));
        assert!(text.contains("\nprovider_exec_seconds_count{fabric=\"cpu\"} 1\n"));

        // Mirroring a histogram kept elsewhere replaces the series.
        let mut cumulative = [0u64; BUCKETS];
        for (i, c) in cumulative.iter_mut().enumerate() {
            *c = i as u64;
        }
        m.set_histogram("block_import_seconds", &[], &cumulative, 12.5, 20);
        m.set_histogram("verifier_replay_seconds", &[], &cumulative, 1.0, 3);
        let samples = parse_exposition(&m.render()).expect("valid exposition");
        let get =
            |name: &str, labels: &[(&str, &str)]| find(&samples, name, labels).map(|s| s.value);
        assert_eq!(
            get("block_import_seconds_bucket", &[("le", "0.00025")]),
            Some(1.0)
        );
        assert_eq!(
            get("block_import_seconds_bucket", &[("le", "60")]),
            Some(17.0)
        );
        assert_eq!(
            get("block_import_seconds_bucket", &[("le", "+Inf")]),
            Some(20.0)
        );
        assert_eq!(get("block_import_seconds_sum", &[]), Some(12.5));
        // A count below the last bucket is raised to it.
        assert_eq!(get("verifier_replay_seconds_count", &[]), Some(17.0));
        assert_eq!(
            get("verifier_replay_seconds_bucket", &[("le", "+Inf")]),
            Some(17.0)
        );
    }

    #[test]
    fn misuse_and_bad_samples_change_nothing() {
        let m = Metrics::new();
        let before = m.render();
        assert_eq!(m.try_set("nope", &[], 1.0), Err(Rejected::UnknownName));
        assert_eq!(
            m.try_set("tx_admitted_total", &[], 1.0),
            Err(Rejected::WrongKind)
        );
        assert_eq!(
            m.try_inc_by("mempool_size", &[], 1),
            Err(Rejected::WrongKind)
        );
        assert_eq!(
            m.try_inc_by("tx_rejected_total", &[], 1),
            Err(Rejected::WrongLabelCount)
        );
        assert_eq!(
            m.try_inc_by("tx_admitted_total", &["x"], 1),
            Err(Rejected::WrongLabelCount)
        );
        assert_eq!(
            m.try_observe("mempool_size", &[], 1.0),
            Err(Rejected::WrongKind)
        );
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
            assert_eq!(
                m.try_observe("block_import_seconds", &[], bad),
                Err(Rejected::BadSample)
            );
            assert_eq!(
                m.try_observe("provider_exec_seconds", &["cpu"], bad),
                Err(Rejected::BadSample)
            );
        }
        assert_eq!(
            m.try_set_histogram("provider_exec_seconds", &["cpu"], &[0; 3], 1.0, 2),
            Err(Rejected::BadHistogram)
        );
        assert_eq!(
            m.try_set_histogram("block_import_seconds", &[], &[1, 2], 1.0, 2),
            Err(Rejected::BadHistogram)
        );
        let mut decreasing = [5u64; BUCKETS];
        decreasing[3] = 4;
        assert_eq!(
            m.try_set_histogram("block_import_seconds", &[], &decreasing, 1.0, 5),
            Err(Rejected::BadHistogram)
        );
        assert!(Rejected::UnknownName.is_misuse());
        assert!(!Rejected::BadSample.is_misuse() && !Rejected::SeriesLimit.is_misuse());
        assert_eq!(m.render(), before);
    }

    #[test]
    fn series_per_metric_are_capped() {
        let m = Metrics::new();
        for i in 0..SERIES_MAX + 10 {
            let method = format!("m{i}");
            let _ = m.try_inc_by("rpc_requests_total", &[&method], 1);
        }
        assert_eq!(
            m.try_inc_by("rpc_requests_total", &["another"], 1),
            Err(Rejected::SeriesLimit)
        );
        m.inc("rpc_requests_total", &["m0"]);
        assert_eq!(m.value("rpc_requests_total", &["m0"]), Some(2.0));
        assert_eq!(
            m.value("rpc_requests_total", &[&format!("m{SERIES_MAX}")]),
            None
        );
        let rendered = m.render();
        assert_eq!(
            rendered.matches("\nrpc_requests_total{").count(),
            SERIES_MAX
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        let nasty = "a\"b\\c\nd}e,f=g";
        m.set("fund_balance_micro", &[nasty], 9.0);
        m.inc("events_published_total", &[""]);
        let text = m.render();
        assert!(
            text.contains("\nfund_balance_micro{token=\"a\\\"b\\\\c\\nd}e,f=g\"} 9\n"),
            "{text}"
        );
        let samples = parse_exposition(&text).expect("valid exposition");
        assert_eq!(
            find(&samples, "fund_balance_micro", &[("token", nasty)]).map(|s| s.value),
            Some(9.0)
        );
        assert_eq!(
            find(&samples, "events_published_total", &[("kind", "")]).map(|s| s.value),
            Some(1.0)
        );
    }

    #[test]
    fn floats_format_as_the_exposition_format_requires() {
        assert_eq!(format_f64(3.0), "3");
        assert_eq!(format_f64(-2.0), "-2");
        assert_eq!(format_f64(0.5), "0.5");
        assert_eq!(format_f64(0.0001), "0.0001");
        assert_eq!(format_f64(1e21), "1000000000000000000000");
        assert_eq!(format_f64(f64::NAN), "NaN");
        assert_eq!(format_f64(f64::INFINITY), "+Inf");
        assert_eq!(format_f64(f64::NEG_INFINITY), "-Inf");
        for v in [0.1, 1.0 / 3.0, 123456.789, 5e-324, f64::MAX] {
            assert_eq!(parse_value(&format_f64(v)), Ok(v));
        }
    }

    #[test]
    fn snapshot_json_shapes() {
        let m = Metrics::new();
        m.inc_by("tx_admitted_total", &[], 4);
        m.set("block_time_seconds", &[], 1.5);
        m.set("mempool_bytes", &[], 2048.0);
        m.set("block_difficulty", &[], f64::NAN);
        m.inc("tx_rejected_total", &["fee_too_low"]);
        m.observe("block_import_seconds", &[], 0.25);
        m.observe("block_import_seconds", &[], 0.5);
        m.observe("provider_exec_seconds", &["cpu"], 0.001);
        let j = m.snapshot_json();
        assert_eq!(j["tx_admitted_total"], serde_json::json!(4));
        assert_eq!(j["blocks_mined_total"], serde_json::json!(0));
        assert_eq!(j["block_time_seconds"], serde_json::json!(1.5));
        assert_eq!(j["mempool_bytes"].to_string(), "2048");
        assert_eq!(j["block_difficulty"], serde_json::Value::Null);
        assert_eq!(
            j["tx_rejected_total"],
            serde_json::json!({"reason=fee_too_low": 1})
        );
        assert_eq!(j["jobs"], serde_json::json!({}));
        assert_eq!(
            j["block_import_seconds"],
            serde_json::json!({"count": 2, "sum": 0.75})
        );
        assert_eq!(
            j["verifier_replay_seconds"],
            serde_json::json!({"count": 0, "sum": 0})
        );
        assert_eq!(
            j["provider_exec_seconds"],
            serde_json::json!({"fabric=cpu": {"count": 1, "sum": 0.001}})
        );
        assert_eq!(j.as_object().map(|o| o.len()), Some(CATALOGUE.len()));
    }

    #[test]
    fn concurrent_updates_are_all_counted() {
        let m = Arc::new(Metrics::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        m.inc("rpc_requests_total", &["get_block"]);
                        m.observe("block_import_seconds", &[], 0.01);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("worker");
        }
        assert_eq!(m.value("rpc_requests_total", &["get_block"]), Some(4000.0));
        assert!(m.render().contains("\nblock_import_seconds_count 4000\n"));
    }

    /// Changing the catalogue (a name, kind, help text or label, or the
    /// order) changes this hash; update it deliberately, together with
    /// whatever consumes the manifest.
    const MANIFEST_HASH: &str = "cd23a4168c2a089a9a9dede648321a18b5ea341bd0262122767d2ba69cdc3a4f";

    #[test]
    fn manifest_snapshot() {
        assert_eq!(manifest_hash(), MANIFEST_HASH);
        let json = manifest_json();
        assert_eq!(json, manifest_json());
        let metrics = manifest_metrics_json();
        assert_eq!(
            json,
            format!("{{\"version\":1,\"metrics\":{metrics},\"hash\":\"{MANIFEST_HASH}\"}}")
        );
        let digest = Sha256::digest(metrics.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, MANIFEST_HASH);

        let parsed: serde_json::Value = serde_json::from_str(&json).expect("manifest is JSON");
        assert_eq!(parsed["version"], serde_json::json!(1));
        assert_eq!(parsed["hash"], serde_json::json!(MANIFEST_HASH));
        let entries = parsed["metrics"].as_array().expect("metrics array");
        assert_eq!(entries.len(), CATALOGUE.len());
        for (entry, d) in entries.iter().zip(CATALOGUE) {
            assert_eq!(
                *entry,
                serde_json::json!({
                    "name": d.name,
                    "type": d.kind.as_str(),
                    "help": d.help,
                    "labels": d.labels,
                })
            );
        }
        assert!(metrics.starts_with("[{\"name\":\"block_difficulty\",\"type\":\"gauge\",\"help\":"));
        assert!(metrics.contains(
            "{\"name\":\"jobs\",\"type\":\"gauge\",\"help\":\"Compute jobs on chain, by job state.\",\"labels\":[\"state\"]}"
        ));
    }

    struct Server {
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
        handle: JoinHandle<()>,
        refreshes: Arc<AtomicUsize>,
    }

    fn start(cfg: ServerConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let metrics = Arc::new(Metrics::new());
        let refreshes = Arc::new(AtomicUsize::new(0));
        let refresh: Arc<dyn Fn() + Send + Sync> = {
            let refreshes = Arc::clone(&refreshes);
            let metrics = Arc::clone(&metrics);
            Arc::new(move || {
                let n = refreshes.fetch_add(1, Ordering::SeqCst) + 1;
                metrics.set("block_height", &[], n as f64);
            })
        };
        let stop = Arc::new(AtomicBool::new(false));
        let handle = serve_with(listener, metrics, refresh, Arc::clone(&stop), cfg);
        Server {
            addr,
            stop,
            handle,
            refreshes,
        }
    }

    impl Server {
        fn shut_down(self) {
            self.stop.store(true, Ordering::Release);
            let deadline = Instant::now() + Duration::from_secs(1);
            while !self.handle.is_finished() {
                assert!(
                    Instant::now() < deadline,
                    "server did not stop within a second"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            self.handle.join().expect("server thread");
        }
    }

    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    fn exchange(stream: &mut TcpStream, request: &[u8]) -> Reply {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.write_all(request).expect("write request");
        read_reply(stream)
    }

    fn read_reply(stream: &mut TcpStream) -> Reply {
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read response");
        let raw = String::from_utf8(raw).expect("utf-8 response");
        let (head, body) = raw.split_once("\r\n\r\n").expect("complete head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status = status_line[9..12].parse().expect("status code");
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").expect("header line");
                (n.to_owned(), v.to_owned())
            })
            .collect();
        let reply = Reply {
            status,
            headers,
            body: body.to_owned(),
        };
        assert_eq!(reply.header("Connection"), Some("close"));
        assert_eq!(
            reply.header("Content-Length"),
            Some(reply.body.len().to_string().as_str())
        );
        reply
    }

    fn request(addr: SocketAddr, request: &[u8]) -> Reply {
        let mut stream = TcpStream::connect(addr).expect("connect");
        exchange(&mut stream, request)
    }

    #[test]
    fn serve_answers_metrics_and_wrappers() {
        let server = start(SERVER);
        let r = request(server.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Content-Type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        assert_eq!(server.refreshes.load(Ordering::SeqCst), 1);
        assert!(r.body.contains("\nblock_height 1\n"), "{}", r.body);
        parse_exposition(&r.body).expect("valid exposition");
        let r = request(server.addr, b"GET /metrics?x=1 HTTP/1.0\n\n");
        assert_eq!(r.status, 200);
        assert!(r.body.contains("\nblock_height 2\n"));

        let r = request(server.addr, b"GET /wrappers HTTP/1.1\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.body, manifest_json());

        assert_eq!(
            request(server.addr, b"GET /nope HTTP/1.1\r\n\r\n").status,
            404
        );
        let r = request(
            server.addr,
            b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        );
        assert_eq!(r.status, 405);
        assert_eq!(r.header("Allow"), Some("GET"));
        assert_eq!(request(server.addr, b"GET /metrics\r\n\r\n").status, 400);
        assert_eq!(
            request(server.addr, b"GET  /metrics HTTP/1.1\r\n\r\n").status,
            400
        );
        assert_eq!(
            request(server.addr, b"GET /metrics HTTP/2\r\n\r\n").status,
            400
        );
        assert_eq!(request(server.addr, b"\xff\xfe\r\n\r\n").status, 400);
        assert_eq!(server.refreshes.load(Ordering::SeqCst), 2);
        server.shut_down();
    }

    #[test]
    fn serve_survives_garbage() {
        let server = start(SERVER);
        let mut garbage = Vec::with_capacity(20 * 1024);
        let mut x: u32 = 12345;
        while garbage.len() < 20 * 1024 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let b = (x >> 16) as u8;
            // No line feeds, so no request head ever completes.
            garbage.push(if b == b'\n' { b'x' } else { b });
        }
        assert_eq!(request(server.addr, &garbage).status, 400);
        // A request line and headers just over the limit.
        let mut long = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
        long.resize(8 * 1024, b'a');
        long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(request(server.addr, &long).status, 400);
        // A client that closes without a request gets no response and no harm.
        drop(TcpStream::connect(server.addr).expect("connect"));
        let r = request(server.addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(r.status, 200);
        server.shut_down();
    }

    #[test]
    fn serve_times_out_slow_heads() {
        let cfg = ServerConfig {
            head_timeout: Duration::from_millis(200),
            ..SERVER
        };
        let server = start(cfg);
        let mut stream = TcpStream::connect(server.addr).expect("connect");
        let started = Instant::now();
        let r = exchange(&mut stream, b"GET /metrics HTTP/1.1\r\n");
        assert_eq!(r.status, 408);
        assert!(started.elapsed() < Duration::from_secs(5));
        server.shut_down();
    }

    #[test]
    fn serve_caps_concurrent_connections() {
        let server = start(SERVER);
        // Each idle connection holds a slot until it sends a request.
        let mut idle: Vec<TcpStream> = (0..SERVER.max_connections)
            .map(|_| TcpStream::connect(server.addr).expect("connect"))
            .collect();
        let mut extra = TcpStream::connect(server.addr).expect("connect");
        extra
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        assert_eq!(read_reply(&mut extra).status, 503);
        let first = idle.remove(0);
        drop(idle);
        let mut first = first;
        assert_eq!(
            exchange(&mut first, b"GET /wrappers HTTP/1.1\r\n\r\n").status,
            200
        );
        // Slots are released when connections end.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = request(server.addr, b"GET /wrappers HTTP/1.1\r\n\r\n");
            if r.status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "slots were not released");
            std::thread::sleep(Duration::from_millis(20));
        }
        server.shut_down();
    }

    #[test]
    fn serve_answers_500_when_refresh_panics() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let refresh: Arc<dyn Fn() + Send + Sync> = Arc::new(|| panic!("refresh failed on purpose"));
        let handle = serve(
            listener,
            Arc::new(Metrics::new()),
            refresh,
            Arc::clone(&stop),
        );
        assert_eq!(request(addr, b"GET /metrics HTTP/1.1\r\n\r\n").status, 500);
        assert_eq!(request(addr, b"GET /wrappers HTTP/1.1\r\n\r\n").status, 200);
        Server {
            addr,
            stop,
            handle,
            refreshes: Arc::new(AtomicUsize::new(0)),
        }
        .shut_down();
    }
}
