//! Logging through `tracing`: text or JSON lines on stderr, filtered by `--log-level`
//! (else `RUST_LOG`, else `info`). Events carry their fields as key-value pairs; in JSON
//! they are members of the line's object beside `timestamp`, `level`, `target` and
//! `message` (a mempool refusal: `"op":"reject","reason":"nonce_gap","code":3`).

use crate::cli::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the process's subscriber. A second call (tests) changes nothing.
pub fn init(level: Option<&str>, format: LogFormat) -> Result<(), String> {
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| format!("--log-level {l:?}: {e}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => b.with_ansi(false).try_init(),
        LogFormat::Json => b
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    Ok(())
}
