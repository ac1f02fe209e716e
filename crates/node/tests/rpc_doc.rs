//! `docs/spec/rpc.md` and the server agree: every method and subscription the document
//! lists is served, and every one served is documented.

use std::collections::BTreeSet;

/// The backticked names in the first cell of each table row of `section` (the text
/// between its heading and the next `## ` heading).
fn first_cells(doc: &str, section: &str) -> Vec<String> {
    let start = doc.find(section).unwrap_or_else(|| panic!("no {section}"));
    let body = &doc[start + section.len()..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    let mut names = Vec::new();
    for line in body.lines() {
        let Some(cell) = line.strip_prefix("| ").and_then(|l| l.split(" |").next()) else {
            continue;
        };
        for part in cell.split('`').skip(1).step_by(2) {
            names.push(part.to_string());
        }
    }
    names
}

#[test]
fn the_document_lists_exactly_the_served_methods() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/spec/rpc.md"
    ))
    .unwrap();
    let mut documented: BTreeSet<String> = first_cells(&doc, "## Methods").into_iter().collect();
    for x in first_cells(&doc, "## Subscriptions") {
        documented.insert(format!("subscribe_{x}"));
        documented.insert(format!("unsubscribe_{x}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let node =
        the_block::node::Node::open(dir.path(), tb_chain::ChainParams::devnet(), None).unwrap();
    let served: BTreeSet<String> = the_block::rpc::method_names(node).into_iter().collect();
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "served but not in docs/spec/rpc.md: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "in docs/spec/rpc.md but not served: {extra:?}"
    );
    assert!(served.len() > 40, "{served:?}");
}
