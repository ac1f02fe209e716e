//! Why a transaction or a block is refused: the errors every rule returns. Apart from
//! the rules (`execute.rs`, `market/`, `governance/`) so that they all name them
//! without naming each other.

use crate::block::BLOCK_VERSION;
use tb_primitives::{Id, Token};
use thiserror::Error;

/// Why a transaction cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TxError {
    #[error("signature does not verify")]
    BadSignature,
    #[error("fee selector {0} is not 0, 1 or 2")]
    InvalidSelector(u8),
    #[error("memo is {len} bytes, above the limit of {max}")]
    MemoTooLarge { len: usize, max: usize },
    #[error("transaction is {len} bytes, above the limit of {max}")]
    TxTooLarge { len: usize, max: usize },
    #[error("nonce {got} but the account expects {expected}")]
    BadNonce { expected: u64, got: u64 },
    #[error(
        "insufficient {token:?} balance: need {} tokens, have {}",
        tb_primitives::Amount(*need),
        tb_primitives::Amount(*have)
    )]
    InsufficientBalance { token: Token, need: u64, have: u64 },
    #[error("a balance would overflow")]
    BalanceOverflow,
    #[error("handle {0:?} does not follow the handle syntax")]
    InvalidHandle(String),
    #[error("handle {0:?} is already registered")]
    HandleTaken(String),
    #[error("the sender already holds a handle")]
    AddressHasHandle,
    #[error("market: {0}")]
    Market(String),
}

/// Why a block is invalid. Every variant names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlockError {
    #[error("header version {0} is not supported (expected {BLOCK_VERSION})")]
    BadVersion(u32),
    #[error("height {got} does not follow parent height {parent}")]
    BadHeight { parent: u64, got: u64 },
    #[error("parent {0} is unknown")]
    UnknownParent(Id),
    #[error("timestamp {got} ms is not after the median of past blocks ({median} ms)")]
    TimestampTooOld { median: u64, got: u64 },
    #[error("timestamp {got} ms is more than the allowed drift ahead of local time {now} ms")]
    TimestampInFuture { now: u64, got: u64 },
    #[error("difficulty {got} but the retarget requires {expected}")]
    BadDifficulty { expected: u64, got: u64 },
    #[error("header hash does not meet its difficulty")]
    InsufficientWork,
    #[error("{token:?} coinbase {got} but the emission schedule gives {expected}")]
    BadCoinbase {
        token: Token,
        expected: u64,
        got: u64,
    },
    #[error("{got} transactions, above the limit of {max}")]
    TooManyTxs { got: usize, max: usize },
    #[error("transactions take {got} bytes, above the limit of {max}")]
    TooLarge { got: usize, max: usize },
    #[error("transaction root does not match the transactions")]
    BadTxRoot,
    #[error("receipts root does not match the receipts")]
    BadReceiptsRoot,
    #[error("state root {got} after execution differs from the header's {expected}")]
    BadStateRoot { expected: Id, got: Id },
    #[error("transaction {index} is invalid: {error}")]
    Tx { index: usize, error: TxError },
    #[error("the beneficiary's balance would overflow")]
    CoinbaseOverflow,
}
