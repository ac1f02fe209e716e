//! The binary's commands, apart from the node core: `run` (one node and its
//! services), `devnet` (one node with every role and the dev keys, or several as child
//! processes), and `demo` (the whole loop in one process, narrated), whose market part
//! is `compute_demo`.

pub mod compute_demo;
pub mod demo;
pub mod devnet;
pub mod run;
