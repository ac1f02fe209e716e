//! Bodies of the node's fuzz targets (fuzz/), run on stable by the `fuzz_seeds` and
//! property tests too:
//!
//! - `rpc_request`: any bytes as a JSON-RPC request body — the same text an HTTP POST
//!   or a WebSocket message carries, calls, notifications, batches and `subscribe_X`
//!   alike — answered by the node's real RPC module over a real (empty devnet) store:
//!   never a panic, and every answer is a JSON-RPC response object or batch.
//! - `read_config`: any bytes as the node's TOML configuration file: parsed, checked
//!   and written back; never a panic, and what parses and passes the check writes back
//!   to a file that parses to the same configuration.

use crate::config::{to_toml, NodeConfig, CONFIG_FILE_BYTES_MAX};
use std::sync::{Arc, OnceLock};

/// Largest request body the target sends (the default `rpc_max_request_bytes`).
const RPC_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;

struct Served {
    rt: tokio::runtime::Runtime,
    module: jsonrpsee::RpcModule<()>,
    _node: Arc<crate::node::Node>,
    _dir: tempfile::TempDir,
}

fn served() -> &'static Served {
    static S: OnceLock<Served> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let node = crate::node::Node::open(dir.path(), tb_chain::ChainParams::devnet(), None)
            .expect("a node on an empty store");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        Served {
            module: crate::rpc::module(node.clone()),
            rt,
            _node: node,
            _dir: dir,
        }
    })
}

/// Entries of a batch the target answers (the server's batch limit is higher; each
/// entry goes through the same method code).
const BATCH_ENTRIES_MAX: usize = 16;

/// One request through the RPC module; the answer, or `None` when it is not one
/// JSON-RPC request object.
pub fn rpc_answer(body: &str) -> Option<String> {
    let s = served();
    let r = s.rt.block_on(s.module.raw_json_request(body, 64));
    r.ok()
        .map(|(answer, _subscription)| answer.get().to_string())
}

/// The answers to a request body: one for a request, one per entry (the first
/// [`BATCH_ENTRIES_MAX`]) for a batch.
pub fn rpc_answers(body: &str) -> Vec<String> {
    if let Ok(serde_json::Value::Array(entries)) = serde_json::from_str(body) {
        return entries
            .iter()
            .take(BATCH_ENTRIES_MAX)
            .filter_map(|e| rpc_answer(&e.to_string()))
            .collect();
    }
    rpc_answer(body).into_iter().collect()
}

/// Any bytes as a request body.
pub fn rpc_request(data: &[u8]) {
    if data.len() > RPC_BODY_BYTES_MAX {
        return;
    }
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    for answer in rpc_answers(body) {
        let v: serde_json::Value = serde_json::from_str(&answer).expect("every answer is JSON");
        assert_eq!(v["jsonrpc"], "2.0", "{answer}");
        assert!(
            v.get("result").is_some() != v.get("error").is_some(),
            "a result or an error: {answer}"
        );
    }
}

/// Any bytes as the configuration file.
pub fn read_config(data: &[u8]) {
    if data.len() as u64 > CONFIG_FILE_BYTES_MAX {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(c) = toml::from_str::<NodeConfig>(text) else {
        return;
    };
    if c.check().is_ok() {
        let again: NodeConfig =
            toml::from_str(&to_toml(&c)).expect("a checked configuration writes back");
        assert_eq!(to_toml(&again), to_toml(&c), "and reads back the same");
        again.check().expect("and passes again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seeds_rpc() -> Vec<Vec<u8>> {
        [
            r#"{"jsonrpc":"2.0","id":1,"method":"chain.head","params":[]}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"chain.getBlock","params":[0]}"#,
            r#"{"jsonrpc":"2.0","id":"x","method":"chain.getBlock","params":{"block":"00"}}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"balance","params":["tb1qqqq"]}"#,
            r#"{"jsonrpc":"2.0","id":4,"method":"submit_tx","params":["00ff"]}"#,
            r#"{"jsonrpc":"2.0","id":5,"method":"compute.estimate","params":[{"flops":1000,"max_price":5}]}"#,
            r#"{"jsonrpc":"2.0","id":6,"method":"compute.getJob","params":["0000000000000000000000000000000000000000000000000000000000000000"]}"#,
            r#"{"jsonrpc":"2.0","id":7,"method":"subscribe_newHeads","params":[]}"#,
            r#"{"jsonrpc":"2.0","id":8,"method":"unsubscribe_newHeads","params":[1]}"#,
            r#"[{"jsonrpc":"2.0","id":9,"method":"chain.info"},{"jsonrpc":"2.0","method":"net.info"}]"#,
            r#"{"jsonrpc":"2.0","id":10,"method":"stop_mining","params":[]}"#,
            r#"{"jsonrpc":"2.0","id":11,"method":"resolve_handle","params":["@alice"]}"#,
        ]
        .map(|s| s.as_bytes().to_vec())
        .to_vec()
    }

    fn seeds_config() -> Vec<Vec<u8>> {
        let example = include_str!("../../../etc/node.example.toml");
        [
            example,
            "",
            "rpc_addr = \"127.0.0.1:4000\"\n[miner]\nblock_interval_ms = 300\n",
            "rpc_connections_per_ip = 4\nrpc_idle_secs = 30\nrpc_request_memory_mb = 64\n[p2p]\ninbound_per_ip = 2\nbootnodes = []\n",
        ]
        .map(|s| s.as_bytes().to_vec())
        .to_vec()
    }

    /// The seed corpora of `rpc_request` and `read_config` (`docs/fuzzing.md`).
    #[test]
    fn fuzz_seeds() {
        let dir = env!("CARGO_MANIFEST_DIR");
        tb_primitives::seeds::check_seeds(dir, "rpc_request", &seeds_rpc(), |b| {
            rpc_request(b);
            std::str::from_utf8(b).is_ok_and(|t| !rpc_answers(t).is_empty())
        });
        tb_primitives::seeds::check_seeds(dir, "read_config", &seeds_config(), |b| {
            read_config(b);
            toml::from_str::<NodeConfig>(std::str::from_utf8(b).unwrap()).is_ok()
        });
    }

    #[test]
    fn answers_name_what_is_wrong() {
        let a = rpc_answer(r#"{"jsonrpc":"2.0","id":1,"method":"chain.getBlock","params":["zz"]}"#)
            .unwrap();
        assert!(a.contains("-32602"), "{a}");
        let a = rpc_answer(r#"{"jsonrpc":"2.0","id":1,"method":"nope","params":[]}"#).unwrap();
        assert!(a.contains("-32601"), "{a}");
        let a =
            rpc_answer(r#"{"jsonrpc":"2.0","id":1,"method":"stop_mining","params":[]}"#).unwrap();
        assert!(a.contains("-32013"), "admin methods need the token: {a}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_request_gets_a_json_rpc_answer(
            method in proptest::sample::select(vec![
                "chain.head", "chain.getBlock", "chain.getTx", "balance", "submit_tx",
                "compute.getJob", "compute.getResult", "compute.getBlob", "compute.estimate",
                "aicf.getProvider", "subscribe_newHeads", "unsubscribe_newHeads", "nope",
            ]),
            params in proptest::prop_oneof![
                Just("[]".to_string()),
                "\\[[0-9a-z\",{}:\\[\\] -]{0,40}\\]",
                "\\{[0-9a-z\",{}:\\[\\] -]{0,40}\\}",
                Just("null".to_string()),
            ],
            mutate in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        ) {
            let mut body = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#
            )
            .into_bytes();
            for (i, b) in mutate {
                let n = body.len();
                body[i % n] = b;
            }
            rpc_request(&body);
        }

        #[test]
        fn any_config_text_is_an_error_or_a_config(
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    "[a-z_]{1,24} = [0-9]{1,12}",
                    "[a-z_]{1,24} = \"[ -~]{0,20}\"",
                    "\\[(miner|provider|verifier|p2p|mempool)\\]",
                    proptest::sample::select(vec![
                        "rpc_connections_per_ip = 0".to_string(),
                        "rpc_idle_secs = 99999999".to_string(),
                        "rpc_request_memory_mb = 1".to_string(),
                        "inbound_per_ip = 49".to_string(),
                        "rpc_max_connections = 3".to_string(),
                    ]),
                ],
                0..8,
            ),
        ) {
            read_config(lines.join("\n").as_bytes());
        }
    }
}
