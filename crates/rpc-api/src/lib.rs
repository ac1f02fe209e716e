//! The JSON-RPC interface of The Block, in one place for both ends: the traits of
//! [`api`] (one per namespace) from which jsonrpsee generates the node's server traits
//! (`ChainServer`, ...) and the client traits (`ChainClient`, ...) that `tb-cli` calls
//! over HTTP or WebSocket; the typed parameters of [`params`] and results of
//! [`results`]; and the node's own error codes. `docs/spec/rpc.md` documents every method, and a test in the node checks that
//! the document and the served methods agree.

#![forbid(unsafe_code)]

pub mod api;
pub mod params;
pub mod results;

/// Invalid parameters (JSON-RPC's own code).
pub const ERR_PARAMS: i32 = -32602;
/// The mempool refused the transaction; `data` has its `code` and `reason`
/// (`docs/spec/errors.md`).
pub const ERR_TX_REJECTED: i32 = -32010;
/// What was asked for does not exist.
pub const ERR_NOT_FOUND: i32 = -32011;
/// The node cannot do it (no miner, a store error).
pub const ERR_UNAVAILABLE: i32 = -32012;
/// An admin method without the admin token.
pub const ERR_UNAUTHORIZED: i32 = -32013;

/// The methods that need the admin token.
pub const ADMIN_METHODS: &[&str] = &[
    "start_mining",
    "stop_mining",
    "admin.shutdown",
    "admin.addPeer",
    "admin.auditSupply",
];

/// The event streams of [`api::EventsClient`] / `subscribe_X` (WebSocket only).
pub const EVENTS: &[&str] = &[
    "newHeads",
    "jobAssigned",
    "receiptAccepted",
    "challengeOpened",
    "challengeRuled",
    "jobCompleted",
    "jobFailed",
    "providerSlashed",
    "epochSettled",
];
