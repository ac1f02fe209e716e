//! Every JSON-RPC method, called through the server's module with arbitrary parameters
//! by position or by name (JSON values of every kind, plus well-formed addresses, ids
//! and hex), answers a result or a JSON-RPC error with one of the documented codes:
//! never a panic.

use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::OnceLock;
use the_block::node::Node;
use the_block::rpc::{
    ERR_NOT_FOUND, ERR_PARAMS, ERR_TX_REJECTED, ERR_UNAUTHORIZED, ERR_UNAVAILABLE,
};

struct Fixture {
    _dir: tempfile::TempDir,
    module: jsonrpsee::RpcModule<()>,
    methods: Vec<String>,
    rt: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let n = Node::open(dir.path(), tb_chain::ChainParams::devnet(), None).unwrap();
        let methods = the_block::rpc::method_names(n.clone())
            .into_iter()
            .filter(|m| !m.contains("subscribe"))
            .collect();
        Fixture {
            _dir: dir,
            module: the_block::rpc::module(n),
            methods,
            rt: tokio::runtime::Runtime::new().unwrap(),
        }
    })
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::from),
        "[0-9a-f]{64}".prop_map(Value::from),
        "[0-9a-f]{0,300}".prop_map(Value::from),
        Just(Value::from(
            tb_primitives::SecretKey::dev("x").address().to_string()
        )),
        prop::sample::select(vec!["Queued", "Settled", "@alice", "alice", "0x00"])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,5}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn every_method_answers_arbitrary_params_without_panicking(
        m in 0..64usize,
        args in prop::collection::vec(value(), 0..4),
        names in prop::collection::vec(
            prop::sample::select(vec!["address", "tx", "task", "sha256", "block", "id",
                                      "state", "limit", "epoch", "job", "offset", "length",
                                      "handle", "provider", "poster", "miner", "x"]),
            0..4),
        by_name in any::<bool>(),
    ) {
        let f = fixture();
        let name = &f.methods[m % f.methods.len()];
        let params = if by_name {
            Value::Object(names.into_iter().map(String::from).zip(args).collect())
        } else {
            Value::Array(args)
        };
        let req = json!({"jsonrpc": "2.0", "id": 1, "method": name, "params": params});
        let (resp, _) = f
            .rt
            .block_on(f.module.raw_json_request(&req.to_string(), 1))
            .unwrap();
        let v: Value = serde_json::from_str(resp.get()).unwrap();
        if let Some(e) = v.get("error") {
            let code = e["code"].as_i64().unwrap() as i32;
            prop_assert!(
                [ERR_PARAMS, ERR_TX_REJECTED, ERR_NOT_FOUND, ERR_UNAVAILABLE, ERR_UNAUTHORIZED]
                    .contains(&code),
                "{name}: unexpected error {e}"
            );
        } else {
            prop_assert!(v.get("result").is_some(), "{name}: {v}");
        }
    }
}
