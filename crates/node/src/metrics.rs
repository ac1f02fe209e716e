//! Prometheus metrics for the node, through the `metrics` crate and its Prometheus
//! exporter (`metrics-exporter-prometheus`, text format 0.0.4): the catalogue of every
//! metric the node exports ([`CATALOGUE`], each name prefixed with [`PREFIX`]), one
//! recorder per node ([`Metrics`]), the process metrics of `metrics-process`, and the
//! manifest of the catalogue with its SHA-256 ([`manifest_json`], [`manifest_hash`]).
//! The HTTP endpoints that serve them are in [`crate::http`].
//!
//! Only names in [`CATALOGUE`] are recorded. A call with an unknown name, the wrong kind
//! of metric or the wrong number of label values is a programming error: it fails a
//! `debug_assert!` in debug builds and is ignored in release builds. Label values come
//! from fixed sets in the code (method names, refusal reasons, topics, fabrics), or are
//! provider addresses bounded by [`PROVIDER_SERIES_MAX`]; never from network input.

use metrics::{Key, KeyName, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::{Mutex, OnceLock, PoisonError};

/// Every metric name the node exports starts with this.
pub const PREFIX: &str = "tb_";

/// The type of a metric, as named by the `# TYPE` line of the exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A count that only goes up (or resets to zero when the process restarts).
    Counter,
    /// A value that can go up and down.
    Gauge,
    /// Samples counted in the fixed buckets of [`BUCKETS_SECONDS`], with their sum.
    Histogram,
}

/// The description of one metric in the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Desc {
    /// The metric name without [`PREFIX`]; a counter's ends in `_total`.
    #[serde(skip)]
    pub name: &'static str,
    /// The exported name: [`PREFIX`] and `name`.
    #[serde(rename = "name")]
    pub full: &'static str,
    /// Counter, gauge or histogram.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// One sentence for the `# HELP` line.
    pub help: &'static str,
    /// The label names, in the order label values are passed.
    pub labels: &'static [&'static str],
}

macro_rules! desc {
    ($kind:ident, $name:literal, $labels:expr, $help:literal) => {
        Desc {
            name: $name,
            full: concat!("tb_", $name),
            kind: Kind::$kind,
            help: $help,
            labels: $labels,
        }
    };
}

/// Every metric the node exports, sorted by name. Changing it changes
/// [`manifest_hash`]. Amounts of tokens are in tokens (a gauge, a float) except
/// `payouts_paid_micro_total`, a counter of the chain's integer micro-tokens.
pub const CATALOGUE: &[Desc] = &[
    desc!(Gauge, "block_difficulty", &[], "Difficulty of the block at the chain tip."),
    desc!(Gauge, "block_height", &[], "Height of the block at the chain tip."),
    desc!(Histogram, "block_import_seconds", &[], "Time taken to validate and import one block, in seconds."),
    desc!(Gauge, "block_time_seconds", &[], "Interval between the timestamps of the last two blocks, in seconds."),
    desc!(Gauge, "block_time_target_seconds", &[], "The block time the difficulty adjustment aims at, in seconds (as governed at the tip)."),
    desc!(Gauge, "block_timestamp_seconds", &[], "Timestamp of the block at the chain tip, in seconds since the Unix epoch."),
    desc!(Counter, "blocks_imported_total", &[], "Blocks this node imported into its store (mined here or received)."),
    desc!(Counter, "blocks_mined_total", &[], "Blocks this node mined."),
    desc!(Gauge, "bonds_tokens", &[], "Tokens held in open challenge bonds."),
    desc!(Gauge, "build_info", &["version", "commit", "runtime", "kernel_digest"], "Always 1; the labels name the build (crate version, git commit, BlockTorch runtime version stamp, CPU kernel variant digest)."),
    desc!(Counter, "chain_reorgs_total", &[], "Reorganisations that switched this node's chain tip to another fork."),
    desc!(Gauge, "disk_available_bytes", &[], "Bytes available to the node on the file system of its data directory."),
    desc!(Gauge, "disk_size_bytes", &[], "Size in bytes of the file system of the node's data directory."),
    desc!(Gauge, "disputes_open", &[], "Disputes currently open (bonded challenges and replica disputes)."),
    desc!(Gauge, "escrow_tokens", &[], "Tokens held in job escrow."),
    desc!(Counter, "events_published_total", &["kind"], "Events published to subscribers, by event kind."),
    desc!(Gauge, "fund_balance_tokens", &["token"], "Balance of the AI Compute Fund in tokens, by token (consumer, industrial)."),
    desc!(Gauge, "jobs", &["state"], "Compute jobs on chain, by job state."),
    desc!(Gauge, "leases_active", &[], "Job leases currently open."),
    desc!(Histogram, "market_match_latency_seconds", &["lane"], "Chain time from the block that included a job's submission to the block of its first lease, in seconds, by lane (0 fast, 1 domain, 2 macro)."),
    desc!(Gauge, "mempool_bytes", &[], "Encoded size in bytes of the transactions pending in the mempool."),
    desc!(Counter, "mempool_evictions_total", &[], "Mempool entries evicted to make room for a better-paying transaction."),
    desc!(Gauge, "mempool_transactions", &[], "Transactions pending in the mempool."),
    desc!(Gauge, "mining", &[], "1 while this node is mining, 0 otherwise."),
    desc!(Gauge, "model_cache_bytes", &[], "Bytes of model constants the provider and verifier keep uploaded to their fabrics (bounded by model_cache_mb)."),
    desc!(Counter, "model_cache_lookups_total", &["result"], "Jobs the provider or verifier ran, by how their model's constants were found (hit: kept uploaded; miss: uploaded and kept; too_large: uploaded, over the whole bound; profiled: uploaded, a profiled run)."),
    desc!(Gauge, "orchard_alloc_free_delta", &[], "Allocations minus frees of the last job this node ran with allocation profiling (its descriptor named a profile epoch); 0 when nothing leaked."),
    desc!(Counter, "orphan_sweep_total", &[], "Mempool entries dropped as dependents of a dropped entry, refused on re-admission after a reorganisation, skipped by a block template, or no longer executable on the new tip."),
    desc!(Counter, "p2p_blob_fetches_total", &["result"], "Blob fetches from peers by result (ok, not_found, too_large, timeout)."),
    desc!(Counter, "p2p_gossip_messages_total", &["topic", "result"], "Gossip messages received by topic and validation result (accept, ignore, orphan, reject, malformed, dropped)."),
    desc!(Counter, "p2p_inbound_refused_total", &["reason"], "Inbound connections refused or dropped before they became peers, by reason (pending_per_ip, pending_unknown, pending_all, inbound_per_ip, limits, handshake)."),
    desc!(Gauge, "p2p_peers", &[], "Peers connected now."),
    desc!(Counter, "p2p_peers_banned_total", &[], "Peers banned for sending invalid data."),
    desc!(Counter, "p2p_penalties_total", &["offence"], "Penalties charged to peers by offence."),
    desc!(Counter, "p2p_published_total", &["topic"], "Gossip messages this node published by topic."),
    desc!(Counter, "p2p_queue_full_total", &["queue"], "Work dropped because the network's bounded queue was full."),
    desc!(Counter, "p2p_requests_busy_total", &[], "Inbound sync or blob requests answered busy (at the serving limit)."),
    desc!(Counter, "p2p_requests_served_total", &["protocol"], "Inbound sync and blob requests served."),
    desc!(Counter, "p2p_sync_blocks_total", &[], "Blocks imported through the sync protocol."),
    desc!(Counter, "payouts_paid_micro_total", &[], "Micro-tokens paid to providers by the epoch settlements this node imported since it started."),
    desc!(Histogram, "proof_verification_latency_seconds", &[], "Time taken to check one receipt at submission, in seconds."),
    desc!(Counter, "proof_verification_unrecorded_total", &[], "Receipt checks missing from the latency histogram (more than 4096 between two scrapes)."),
    desc!(Gauge, "provider_availability_ratio", &["provider"], "A provider's heartbeat availability in the current epoch (0 to 1), as the market prices it."),
    desc!(Histogram, "provider_exec_seconds", &["fabric"], "Time this node took to execute one job as a provider, in seconds, by fabric."),
    desc!(Counter, "provider_heartbeats_total", &[], "Heartbeats this node sent as a provider."),
    desc!(Counter, "provider_jobs_executed_total", &["fabric"], "Jobs this node executed as a provider, by fabric."),
    desc!(Counter, "provider_receipts_submitted_total", &[], "Receipts this node submitted as a provider."),
    desc!(Gauge, "provider_stake_tokens", &[], "Sum of the stakes bonded by all providers, in tokens."),
    desc!(Gauge, "provider_success_ratio", &["provider"], "A provider's accepted receipts over its receipts and missed leases, ever (0 to 1; 1 before its first lease)."),
    desc!(Gauge, "providers", &[], "Compute providers registered on chain."),
    desc!(Gauge, "receipt_drain_depth", &[], "Receipts waiting in the settlement queue."),
    desc!(Counter, "rpc_connections_closed_idle_total", &[], "RPC connections closed for idleness (no subscription, no request for rpc_idle_secs)."),
    desc!(Counter, "rpc_connections_refused_total", &[], "RPC connections refused with 429: over the address's share or the port's total."),
    desc!(Counter, "rpc_requests_total", &["method"], "JSON-RPC requests received, by method."),
    desc!(Gauge, "sla_breaches", &[], "Proof-latency SLA slashes on chain."),
    desc!(Gauge, "slashes", &[], "Slash records on chain."),
    desc!(Gauge, "state_cache_bytes", &[], "Approximate bytes held by the state cache (bounded by state_cache_mb)."),
    desc!(Gauge, "state_cache_items", &["kind"], "Items held by the state cache, by kind (entry, node)."),
    desc!(Counter, "state_cache_lookups_total", &["result"], "State reads looked up in the cache, by result (hit, miss: read from disk)."),
    desc!(Counter, "ttl_drop_total", &[], "Mempool entries dropped because their time to live expired."),
    desc!(Counter, "tx_admitted_total", &[], "Transactions admitted to the mempool."),
    desc!(Counter, "tx_rejected_total", &["reason"], "Transactions the mempool refused, by reason."),
    desc!(Counter, "verifier_challenges_total", &[], "Challenges this node's verifier submitted."),
    desc!(Histogram, "verifier_replay_seconds", &[], "Time this node's verifier took to replay one receipt, in seconds."),
    desc!(Counter, "verifier_replays_total", &[], "Receipts this node's verifier replayed."),
];

/// The upper bounds, in seconds, of every histogram's buckets (the `le` label), in
/// increasing order; a final `+Inf` bucket is implied.
pub const BUCKETS_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Most providers with their own `provider_*_ratio` series.
pub const PROVIDER_SERIES_MAX: usize = 256;

static META: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

fn lookup(name: &str) -> Option<&'static Desc> {
    CATALOGUE
        .binary_search_by(|d| d.name.cmp(name))
        .ok()
        .map(|i| &CATALOGUE[i])
}

/// The catalogue entry of `name` if it is a metric of kind `kind` with as many label
/// names as `labels` has values; a misuse fails a debug assertion.
fn resolve(name: &str, labels: &[&str], kind: Kind) -> Option<&'static Desc> {
    let d = lookup(name).filter(|d| d.kind == kind && d.labels.len() == labels.len());
    debug_assert!(
        d.is_some(),
        "metric {name}: not a {kind:?} with {} labels in the catalogue",
        labels.len()
    );
    d
}

fn key(d: &'static Desc, labels: &[&str]) -> Key {
    let labels: Vec<Label> = d
        .labels
        .iter()
        .zip(labels)
        .map(|(k, v)| Label::new(*k, (*v).to_owned()))
        .collect();
    Key::from_parts(d.full, labels)
}

/// One node's metrics: a Prometheus recorder of its own (several nodes may share a
/// process, as the tests and benchmarks run them), the process collector, and what
/// [`Metrics::record_receipt_checks`] has read so far.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    process: metrics_process::Collector,
    receipt_checks_seen: Mutex<Option<u64>>,
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
    /// Metrics with every catalogue entry described, the series without labels at
    /// zero, and `build_info` set.
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS_SECONDS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        for d in CATALOGUE {
            let name = KeyName::from(d.full);
            let help = SharedString::from(d.help);
            match d.kind {
                Kind::Counter => recorder.describe_counter(name, None, help),
                Kind::Gauge => recorder.describe_gauge(name, None, help),
                Kind::Histogram => recorder.describe_histogram(name, None, help),
            }
            if d.labels.is_empty() {
                // Registering creates the series at zero, so a scrape shows it.
                let k = Key::from_static_name(d.full);
                match d.kind {
                    Kind::Counter => drop(recorder.register_counter(&k, &META)),
                    Kind::Gauge => drop(recorder.register_gauge(&k, &META)),
                    Kind::Histogram => drop(recorder.register_histogram(&k, &META)),
                }
            }
        }
        let process = metrics_process::Collector::default();
        metrics::with_local_recorder(&recorder, || process.describe());
        let m = Metrics {
            recorder,
            handle,
            process,
            receipt_checks_seen: Mutex::new(None),
        };
        let digest = crate::build_info::cpu_kernel_digest();
        m.set(
            "build_info",
            &[
                crate::build_info::VERSION,
                crate::build_info::GIT_COMMIT,
                crate::build_info::RUNTIME_VERSION,
                &digest,
            ],
            1.0,
        );
        m.zero_known_series();
        m
    }

    /// Creates at zero every labelled series whose label values are known in
    /// advance, so that a dashboard or an alert sees 0 for what has not happened yet
    /// rather than no data (Prometheus's advice). Series labelled by provider come
    /// with the providers; `rpc_requests_total`'s come with the server
    /// ([`Metrics::zero_series`]).
    fn zero_known_series(&self) {
        use tb_net::{peers::Offence, wire::Topic};
        let one = |name: &str, values: &[&str]| {
            for v in values {
                self.zero_series(name, &[v]);
            }
        };
        one(
            "p2p_blob_fetches_total",
            &["ok", "not_found", "too_large", "timeout"],
        );
        one("p2p_queue_full_total", &["sync", "publish"]);
        one(
            "p2p_inbound_refused_total",
            &[
                "pending_per_ip",
                "pending_unknown",
                "pending_all",
                "inbound_per_ip",
                "limits",
                "handshake",
            ],
        );
        one("p2p_requests_served_total", &["sync", "blob"]);
        one(
            "model_cache_lookups_total",
            &["hit", "miss", "too_large", "profiled"],
        );
        for f in <crate::config::FabricKind as clap::ValueEnum>::value_variants() {
            self.zero_series("provider_exec_seconds", &[f.name()]);
            self.zero_series("provider_jobs_executed_total", &[f.name()]);
        }
        one("market_match_latency_seconds", &["0", "1", "2"]);
        one("events_published_total", tb_rpc_api::EVENTS);
        for o in Offence::ALL {
            self.zero_series("p2p_penalties_total", &[o.label()]);
        }
        for t in Topic::ALL {
            self.zero_series("p2p_published_total", &[t.label()]);
            for r in [
                "accept",
                "ignore",
                "orphan",
                "reject",
                "malformed",
                "dropped",
            ] {
                self.zero_series("p2p_gossip_messages_total", &[t.label(), r]);
            }
        }
        for (_, reason) in tb_chain::mempool::REJECTION_REASONS {
            self.zero_series("tx_rejected_total", &[reason]);
        }
    }

    /// Creates the counter or histogram `name{labels}` at zero (registering makes the
    /// series; nothing is added).
    pub fn zero_series(&self, name: &str, labels: &[&str]) {
        let Some(kind) = lookup(name).map(|d| d.kind) else {
            debug_assert!(false, "{name}: not in the catalogue");
            return;
        };
        if let Some(d) = resolve(name, labels, kind) {
            let k = key(d, labels);
            match kind {
                Kind::Counter => drop(self.recorder.register_counter(&k, &META)),
                Kind::Histogram => drop(self.recorder.register_histogram(&k, &META)),
                Kind::Gauge => debug_assert!(false, "{name}: a gauge is set, not zeroed"),
            }
        }
    }

    /// Sets the gauge `name` with label values `labels` to `value`.
    pub fn set(&self, name: &str, labels: &[&str], value: f64) {
        if let Some(d) = resolve(name, labels, Kind::Gauge) {
            self.recorder
                .register_gauge(&key(d, labels), &META)
                .set(value);
        }
    }

    /// Adds `by` to the counter `name` with label values `labels`.
    pub fn inc_by(&self, name: &str, labels: &[&str], by: u64) {
        if let Some(d) = resolve(name, labels, Kind::Counter) {
            self.recorder
                .register_counter(&key(d, labels), &META)
                .increment(by);
        }
    }

    /// Adds 1 to the counter `name` with label values `labels`.
    pub fn inc(&self, name: &str, labels: &[&str]) {
        self.inc_by(name, labels, 1)
    }

    /// Sets the counter `name` with label values `labels` to `total`, a count kept
    /// elsewhere (such as the mempool's counters); a total below the current value is
    /// ignored (a counter never goes down).
    pub fn set_counter(&self, name: &str, labels: &[&str], total: u64) {
        if let Some(d) = resolve(name, labels, Kind::Counter) {
            self.recorder
                .register_counter(&key(d, labels), &META)
                .absolute(total);
        }
    }

    /// Records one sample of `seconds` in the histogram `name` with label values
    /// `labels`. A NaN, infinite or negative sample is ignored.
    pub fn observe(&self, name: &str, labels: &[&str], seconds: f64) {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return;
        }
        if let Some(d) = resolve(name, labels, Kind::Histogram) {
            self.recorder
                .register_histogram(&key(d, labels), &META)
                .record(seconds);
        }
    }

    /// Records the receipt checks this process ran since the last call into
    /// `proof_verification_latency_seconds` (the chain measures them; see
    /// `tb_chain::telemetry`). The first call takes every check still kept.
    pub fn record_receipt_checks(&self) {
        let mut seen = self
            .receipt_checks_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let from = seen.unwrap_or(0);
        let (samples, next, lost) = tb_chain::telemetry::receipt_checks_since(from);
        // Checks from before this node's first call that are no longer kept were never
        // this node's to record.
        if seen.is_some() {
            self.inc_by("proof_verification_unrecorded_total", &[], lost);
        }
        for s in samples {
            self.observe("proof_verification_latency_seconds", &[], s.as_secs_f64());
        }
        *seen = Some(next);
    }

    /// The exposition text (format 0.0.4) of every series, the process metrics
    /// (`process_*`, collected now) included.
    pub fn render(&self) -> String {
        metrics::with_local_recorder(&self.recorder, || self.process.collect());
        self.handle.render()
    }
}

impl Metrics {
    /// The value of one rendered series, named exactly as the text names it
    /// (`tb_jobs{state="queued"}`); for tests and tools.
    pub fn sample(&self, series: &str) -> Option<f64> {
        value(&self.handle.render(), series)
    }
}

/// The value of the series `series` in exposition text.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[derive(Serialize)]
struct Manifest<'a> {
    version: u32,
    metrics: &'a [Desc],
    hash: &'a str,
}

fn manifest() -> &'static (String, String) {
    static MANIFEST: OnceLock<(String, String)> = OnceLock::new();
    MANIFEST.get_or_init(|| {
        let metrics = serde_json::to_string(CATALOGUE).expect("the catalogue serialises");
        let hash = hex::encode(Sha256::digest(metrics.as_bytes()));
        let json = serde_json::to_string(&Manifest {
            version: 2,
            metrics: CATALOGUE,
            hash: &hash,
        })
        .expect("the manifest serialises");
        (json, hash)
    })
}

/// The manifest served at `/wrappers`:
/// `{"version":2,"metrics":[{"name":…,"type":…,"help":…,"labels":[…]},…],"hash":…}`,
/// compact and identical byte for byte on every call and build of the same catalogue;
/// `hash` is [`manifest_hash`].
pub fn manifest_json() -> String {
    manifest().0.clone()
}

/// The lowercase hex SHA-256 of the manifest's `metrics` array exactly as it appears in
/// [`manifest_json`].
pub fn manifest_hash() -> String {
    manifest().1.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_sorted_unique_and_valid() {
        assert_eq!(CATALOGUE.len(), 65);
        for pair in CATALOGUE.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        for d in CATALOGUE {
            assert_eq!(d.full, format!("{PREFIX}{}", d.name));
            assert!(d
                .full
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            assert!(!d.help.is_empty() && d.help.ends_with('.'), "{}", d.name);
            match d.kind {
                Kind::Counter => assert!(d.name.ends_with("_total"), "{}", d.name),
                Kind::Gauge => assert!(!d.name.ends_with("_total"), "{}", d.name),
                Kind::Histogram => assert!(d.name.ends_with("_seconds"), "{}", d.name),
            }
            for suffix in ["_count", "_sum", "_bucket"] {
                assert!(!d.name.ends_with(suffix), "{}", d.name);
            }
            assert!(!d.labels.contains(&"le"), "{}", d.name);
            assert_eq!(lookup(d.name), Some(d));
        }
        assert!(lookup("peers").is_none());
        assert!(BUCKETS_SECONDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_fresh_render_has_every_unlabelled_series_and_build_info() {
        let m = Metrics::new();
        let text = m.render();
        for d in CATALOGUE {
            assert!(
                text.contains(&format!("# HELP {} ", d.full)) || !d.labels.is_empty(),
                "{}",
                d.full
            );
            if d.labels.is_empty() && d.kind != Kind::Histogram {
                assert_eq!(value(&text, d.full), Some(0.0), "{}", d.full);
            }
        }
        let build = text
            .lines()
            .find(|l| l.starts_with("tb_build_info{"))
            .expect("build_info");
        assert!(
            build.contains(&format!("commit=\"{}\"", crate::build_info::GIT_COMMIT)),
            "{build}"
        );
        assert!(build.ends_with(" 1"), "{build}");
        // The process metrics (Linux: from /proc).
        if cfg!(target_os = "linux") {
            assert!(
                value(&text, "process_resident_memory_bytes").unwrap() > 0.0,
                "{text}"
            );
        }
    }

    #[test]
    fn counters_gauges_and_histograms_record() {
        let m = Metrics::new();
        m.inc("tx_rejected_total", &["nonce_gap"]);
        m.inc_by("tx_rejected_total", &["nonce_gap"], 2);
        m.set("jobs", &["queued"], 4.5);
        m.set_counter("state_cache_lookups_total", &["hit"], 10);
        m.set_counter("state_cache_lookups_total", &["hit"], 7);
        m.observe("block_import_seconds", &[], 0.003);
        m.observe("block_import_seconds", &[], 2.0);
        m.observe("block_import_seconds", &[], f64::NAN);
        m.observe("block_import_seconds", &[], -1.0);
        let t = m.render();
        assert_eq!(
            value(&t, "tb_tx_rejected_total{reason=\"nonce_gap\"}"),
            Some(3.0)
        );
        assert_eq!(value(&t, "tb_jobs{state=\"queued\"}"), Some(4.5));
        assert_eq!(
            value(&t, "tb_state_cache_lookups_total{result=\"hit\"}"),
            Some(10.0)
        );
        assert_eq!(value(&t, "tb_block_import_seconds_count"), Some(2.0));
        assert_eq!(value(&t, "tb_block_import_seconds_sum"), Some(2.003));
        assert_eq!(
            value(&t, "tb_block_import_seconds_bucket{le=\"0.0025\"}"),
            Some(0.0)
        );
        assert_eq!(
            value(&t, "tb_block_import_seconds_bucket{le=\"0.005\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(&t, "tb_block_import_seconds_bucket{le=\"+Inf\"}"),
            Some(2.0)
        );
    }

    #[test]
    fn receipt_checks_are_recorded_once() {
        let m = Metrics::new();
        m.record_receipt_checks();
        let before = value(&m.render(), "tb_proof_verification_latency_seconds_count").unwrap();
        tb_chain::telemetry::record_receipt_check(std::time::Duration::from_micros(300));
        m.record_receipt_checks();
        m.record_receipt_checks();
        let t = m.render();
        // Other tests of this process may record checks too: at least this one, once.
        let after = value(&t, "tb_proof_verification_latency_seconds_count").unwrap();
        assert!(after >= before + 1.0, "{before} -> {after}");
        assert_eq!(
            value(&t, "tb_proof_verification_unrecorded_total"),
            Some(0.0)
        );
    }

    #[test]
    fn concurrent_updates_are_all_counted() {
        let m = std::sync::Arc::new(Metrics::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        m.inc("rpc_requests_total", &["balance"]);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let t = m.render();
        assert_eq!(
            value(&t, "tb_rpc_requests_total{method=\"balance\"}"),
            Some(4000.0)
        );
    }

    /// The manifest is a public interface (dashboards, alerts and the docs' catalogue
    /// follow it): a change to the catalogue changes this hash, on purpose.
    #[test]
    fn manifest_snapshot() {
        let m: serde_json::Value = serde_json::from_str(&manifest_json()).unwrap();
        assert_eq!(m["metrics"].as_array().unwrap().len(), CATALOGUE.len());
        assert_eq!(m["metrics"][0]["name"], "tb_block_difficulty");
        assert_eq!(m["metrics"][0]["type"], "gauge");
        assert_eq!(m["hash"], manifest_hash());
        assert_eq!(
            manifest_hash(),
            "f87c9112b623d4b5daaeeb67500764d49243131ca198558b4b1c0da2a59bb83a"
        );
    }
}
