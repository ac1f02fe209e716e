//! The consensus state machine of The Block.
//!
//! Accounts and @handles, transactions, blocks, proof of work, difficulty,
//! emission, the mempool and fork choice. **Pure**: no IO, no clock, no
//! randomness. Time (`now_ms`), thread counts and heights come in as
//! arguments, so every rule is a plain function that tests can replay. (The
//! exceptions: node-local telemetry — [`telemetry`] — which the rules write and never
//! read, and the signature cache — [`sigcache`] — which saves checks and never
//! changes an answer.)
//! Persistence lives in `tb-store`; networking and RPC in later crates.
#![forbid(unsafe_code)]

pub mod block;
pub mod builders;
pub mod consensus;
pub mod context;
pub mod devchain;
pub mod error;
pub mod execute;
pub mod forks;
pub mod fuzzing;
pub mod governance;
pub mod market;
pub mod mempool;
pub mod params;
pub mod sigcache;
pub mod state;
pub mod telemetry;
pub mod trie;
pub mod tx;

pub use block::{genesis_block, genesis_header, Block, BlockHeader};
pub use execute::{
    build_block, build_block_with, execute_block, execute_block_with, mine, validate_header,
    BlockEffects, BlockError, TxError,
};
pub use params::ChainParams;
pub use sigcache::SigCache;
pub use state::{Account, State, StateRead};
pub use tx::{RegisterHandle, SignedTx, Transfer, TxPayload};
