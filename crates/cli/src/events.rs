//! `tb-cli events`: follows the node's event streams over WebSocket with the generated
//! subscription client (`EventsClient`), one line per event as it arrives.

use crate::args::{Args, Spec};
use crate::{CliError, Global, Outcome};
use futures::StreamExt as _;
use serde_json::{json, Value};
use std::io::Write as _;
use std::time::Duration;
use tb_rpc_api::EVENTS;

/// Most events one `tb-cli events` prints before it stops (`--count`'s ceiling).
pub const EVENTS_COUNT_MAX: u64 = 1_000_000_000;

pub(crate) const SPECS: &[&Spec] = &[&EVENTS_CMD];

const EVENTS_CMD: Spec = Spec {
    command: "events",
    usage: "\
usage: tb-cli events [--event NAME]... [--count N] [--for SECS] [--json]

Follows the node's events over WebSocket (an http:// --rpc URL is reached as ws:// on the
same port) and prints each as it arrives: its name and its data as JSON, or with --json
one object {\"event\", \"data\"} per line. NAME is one of newHeads, jobAssigned,
receiptAccepted, challengeOpened, challengeRuled, jobCompleted, jobFailed,
providerSlashed, epochSettled (repeat --event for several; all of them without it).
Stops after N events with --count, after SECS seconds with --for (exit 0 either way),
and fails (exit 1) if the node closes the stream.",
    flags: &["--json"],
    options: &[("--event", None), ("--count", None), ("--for", None)],
    positionals: &[],
};

/// Runs `tb-cli events ARGS...`.
pub fn dispatch(g: &Global, args: &[String]) -> Result<Outcome, CliError> {
    crate::with_spec(g, &EVENTS_CMD, args, follow)
}

fn follow(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let mut names: Vec<&'static str> = Vec::new();
    for n in a.values("--event") {
        let Some(known) = EVENTS.iter().find(|e| **e == n) else {
            return Err(CliError::usage(format!(
                "--event {n:?}: expected one of {}",
                EVENTS.join(", ")
            )));
        };
        if !names.contains(known) {
            names.push(known);
        }
    }
    if names.is_empty() {
        names = EVENTS.to_vec();
    }
    let count: Option<u64> = a.parsed("--count", "a number")?;
    if count.is_some_and(|c| c == 0 || c > EVENTS_COUNT_MAX) {
        return Err(CliError::usage(format!(
            "--count: expected 1 to {EVENTS_COUNT_MAX}"
        )));
    }
    let secs: Option<u64> = a.parsed("--for", "a number of seconds")?;
    let json_lines = g.json(a);
    let client = g.client()?;
    let ws = client.websocket()?;
    let mut streams = Vec::with_capacity(names.len());
    for name in &names {
        let sub = client.subscribe(&ws, name)?;
        streams.push(sub.map(move |item| (*name, item)).boxed());
    }
    let mut all = futures::stream::select_all(streams);
    let deadline = secs.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut seen = 0u64;
    let stdout = std::io::stdout();
    loop {
        if count.is_some_and(|c| seen >= c) {
            break;
        }
        let next = client.block_on(async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, all.next()).await.ok(),
                None => Some(all.next().await),
            }
        });
        let (name, item) = match next {
            None => break,
            Some(Some(e)) => e,
            Some(None) => {
                return Err(CliError::fail(format!(
                    "the node at {} closed the event stream after {seen} event(s)",
                    client.url()
                )))
            }
        };
        let data: Value = item.map_err(|e| {
            CliError::fail(format!(
                "the node sent a {name} event that is not JSON ({e})"
            ))
        })?;
        let line = if json_lines {
            json!({"event": name, "data": data}).to_string()
        } else {
            format!("{name}  {data}")
        };
        let mut out = stdout.lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            // The reader went away (`| head`): nothing more to do.
            break;
        }
        seen += 1;
    }
    Ok(Outcome::ok(String::new()))
}
