//! Every JSON-RPC method, called with arbitrary positional parameters (JSON values of
//! every kind, plus well-formed addresses, ids and hex), answers a result or a
//! JSON-RPC error with one of the documented codes: never a panic.

use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::OnceLock;
use the_block::node::Node;
use the_block::rpc::{ERR_NOT_FOUND, ERR_PARAMS, ERR_TX_REJECTED, ERR_UNAVAILABLE, METHODS};

fn node() -> &'static std::sync::Arc<Node> {
    static NODE: OnceLock<(tempfile::TempDir, std::sync::Arc<Node>)> = OnceLock::new();
    &NODE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let n = Node::open(dir.path(), tb_chain::ChainParams::devnet(), None).unwrap();
            (dir, n)
        })
        .1
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
        m in 0..METHODS.len(),
        args in prop::collection::vec(value(), 0..4),
    ) {
        let (name, f) = METHODS[m];
        match f(node(), &args) {
            Ok(_) => {}
            Err(e) => prop_assert!(
                [ERR_PARAMS, ERR_TX_REJECTED, ERR_NOT_FOUND, ERR_UNAVAILABLE].contains(&e.code()),
                "{name}: unexpected code {} ({})", e.code(), e.message()
            ),
        }
    }
}
