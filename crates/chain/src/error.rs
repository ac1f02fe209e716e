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
    #[error("market: {1}")]
    Market(MarketRefusal, String),
    #[error("governance: {1}")]
    Governance(GovernanceRefusal, String),
}

impl TxError {
    /// A market refusal of kind `k`, with what was wrong.
    pub fn market(k: MarketRefusal, msg: impl Into<String>) -> TxError {
        TxError::Market(k, msg.into())
    }

    /// A governance refusal of kind `k`, with what was wrong.
    pub fn governance(k: GovernanceRefusal, msg: impl Into<String>) -> TxError {
        TxError::Governance(k, msg.into())
    }
}

/// One table per family of refusals: each kind's stable admission code and snake_case
/// reason (`docs/spec/errors.md`), from which its `code`, `reason` and `ALL` are
/// generated. Codes continue the mempool's own (`mempool::REJECTION_REASONS` lists
/// them all); a new kind takes the next free code, a retired one is never reused.
macro_rules! refusals {
    ($(#[$meta:meta])* $name:ident { $($code:literal $reason:literal => $variant:ident: $doc:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $(#[doc = $doc] $variant,)*
        }

        impl $name {
            /// Every kind, in code order.
            pub const ALL: [$name; [$($code),*].len()] = [$($name::$variant),*];

            /// Every kind's `(code, reason)`, in code order.
            pub const REASONS: [(u16, &'static str); [$($code),*].len()] =
                [$(($code, $reason)),*];

            /// The stable admission code.
            pub const fn code(self) -> u16 {
                match self {
                    $($name::$variant => $code,)*
                }
            }

            /// The stable snake_case reason.
            pub const fn reason(self) -> &'static str {
                match self {
                    $($name::$variant => $reason,)*
                }
            }
        }
    };
}

refusals! {
    /// Why the market refuses a transaction (`docs/spec/market.md`,
    /// `docs/spec/verification.md`).
    MarketRefusal {
        18 "invalid_market_tx" => Fields: "A field breaks a stateless limit (capabilities, job spec, object or chunk size, bundle size, amounts).",
        19 "not_a_provider" => NotProvider: "The sender is not a registered provider.",
        20 "stake_refused" => Stake: "An unstake the provider's stake, leases or unbonding entries do not allow.",
        21 "job_refused" => Job: "A job the market cannot take now: its deadline, a full queue, a task id that exists.",
        22 "model_unavailable" => Model: "The model a job names is not published as the spec says, or the fee does not pay its rent to the deadline.",
        23 "unknown_task" => UnknownTask: "No job has this task id.",
        24 "receipt_mismatch" => Receipt: "The receipt is not the sender's, is for another task, is not signed, or is not the one the sender sealed.",
        25 "no_lease" => NoLease: "The sender holds no (live) lease of the job.",
        26 "wrong_stage" => Stage: "The job is not at the stage this transaction belongs to (closed, not in its challenge window, replicas not all sealed).",
        27 "duplicate" => Duplicate: "Already done: sealed, revealed, challenged or named before.",
        28 "object_unpublished" => Unpublished: "An object the transaction relies on (trace, result, job blob, model) is not published.",
        29 "trace_mismatch" => TraceMismatch: "The published trace or result does not match the receipt.",
        30 "chunk_refused" => Chunk: "A chunk that does not fit its object's declared size or chunk count.",
        31 "challenge_refused" => Challenge: "A challenge the job or its bond does not allow (too many open, bond, op, no standing receipt, the leaf's proof).",
        32 "dispute_refused" => Dispute: "Evidence for a dispute that does not exist, is ruled, or is not the sender's to name.",
        33 "report_refused" => Report: "A malformed-job report of a job whose blob matches its spec.",
    }
}

refusals! {
    /// Why governance refuses a transaction (`docs/spec/governance.md`).
    GovernanceRefusal {
        34 "invalid_proposal" => Proposal: "A proposal's changes, names, values or activation height break a rule.",
        35 "not_eligible" => NotEligible: "The sender may not propose or vote (not staked enough, or registered after the proposal).",
        36 "proposal_slots_full" => Slots: "The sender already has a proposal in its voting period, or every slot is taken.",
        37 "unknown_proposal" => UnknownProposal: "No proposal has this id.",
        38 "proposal_state" => ProposalState: "The proposal is not in the state this needs (voting, scheduled or active, not a shadow).",
    }
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
