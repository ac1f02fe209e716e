//! Any bytes as a stored trie record (`InnerNode`, `Child`): never a panic, accepted
//! bytes are canonical. The body is `tb_chain::fuzzing::decode_trie_node`, which the
//! stable property tests run too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tb_chain::fuzzing::decode_trie_node(data));
