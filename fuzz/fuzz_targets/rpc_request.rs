//! Any bytes as a JSON-RPC request body (an HTTP POST's or a WebSocket message's:
//! calls, notifications, batches, subscriptions) answered by the node's real RPC
//! module over an empty devnet store: never a panic, every answer a JSON-RPC
//! response. The body is `the_block::fuzzing::rpc_request`, which the node's
//! property tests run too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| the_block::fuzzing::rpc_request(data));
