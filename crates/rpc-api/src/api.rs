//! The JSON-RPC interface, one jsonrpsee trait per namespace (server and client). Parameters are taken by
//! position (`"params": [...]`) or by name (`"params": {...}`, the argument names below,
//! snake_case or lowerCamelCase); trailing `Option` parameters may be left out. Results
//! are the types of [`crate::results`] where clients act on them, JSON objects
//! elsewhere; all are documented in `docs/spec/rpc.md`, which a test checks against
//! these methods.

use crate::params::{BlockRef, EstimateJob, HexBytes, HexId};
use crate::results::{
    Account, BlobPresence, BlobStored, Dialing, HandleOwner, Header, MetricsText, Mining, Stopping,
    SupplyAudit, TxAccepted,
};
use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use serde_json::Value;

/// Accounts, transactions and handles (no namespace: the seeds' names).
#[rpc(server, client)]
pub trait Account {
    /// An account by address or @handle.
    #[method(name = "balance", blocking)]
    fn balance(&self, address: String) -> RpcResult<Account>;

    /// Admits a signed transaction (hex of its canonical encoding).
    #[method(name = "submit_tx", blocking)]
    fn submit_tx(&self, tx: HexBytes) -> RpcResult<TxAccepted>;

    /// Admits a signed `RegisterHandle` transaction. The seeds' unsigned form
    /// (`{"handle", "address"}`) is refused with a message: the node holds no keys.
    #[method(name = "register_handle", blocking)]
    fn register_handle(
        &self,
        tx: Option<HexBytes>,
        handle: Option<String>,
        address: Option<String>,
    ) -> RpcResult<TxAccepted>;

    /// The owner of a handle (with or without `@`).
    #[method(name = "resolve_handle", blocking)]
    fn resolve_handle(&self, handle: String) -> RpcResult<HandleOwner>;

    /// The Prometheus exposition text.
    #[method(name = "metrics", blocking)]
    fn metrics(&self) -> RpcResult<MetricsText>;
}

/// Operator methods: refused (-32013) without the admin token (`docs/spec/rpc.md`).
#[rpc(server, client)]
pub trait Admin {
    /// Starts the miner; `miner`, when given, must be the node's own address.
    #[method(name = "start_mining", blocking, with_extensions)]
    fn start_mining(&self, miner: Option<String>) -> RpcResult<Mining>;

    #[method(name = "stop_mining", blocking, with_extensions)]
    fn stop_mining(&self) -> RpcResult<Mining>;

    /// Stops the node as a signal would.
    #[method(name = "admin.shutdown", with_extensions)]
    fn shutdown(&self) -> RpcResult<Stopping>;

    /// Dials a peer (a multiaddr, `/ip4/…/tcp/…/p2p/…`).
    #[method(name = "admin.addPeer", blocking, with_extensions)]
    fn add_peer(&self, address: String) -> RpcResult<Dialing>;

    /// The supply audit at the tip: every micro-token minted (the coinbases of the
    /// canonical headers) against where the records put it. Reads every canonical
    /// header and every market record: O(height + state).
    #[method(name = "admin.auditSupply", blocking, with_extensions)]
    fn audit_supply(&self) -> RpcResult<SupplyAudit>;
}

#[rpc(server, client, namespace = "chain", namespace_separator = ".")]
pub trait Chain {
    #[method(name = "info", blocking)]
    fn info(&self) -> RpcResult<Value>;

    #[method(name = "head", blocking)]
    fn head(&self) -> RpcResult<Header>;

    #[method(name = "getBlock", blocking)]
    fn get_block(&self, block: BlockRef) -> RpcResult<Value>;

    #[method(name = "getTx", blocking)]
    fn get_tx(&self, id: HexId) -> RpcResult<Value>;
}

#[rpc(server, client, namespace = "compute", namespace_separator = ".")]
pub trait Compute {
    #[method(name = "uploadBlob", blocking)]
    fn upload_blob(&self, blob: HexBytes) -> RpcResult<BlobStored>;

    #[method(name = "getBlob", blocking)]
    fn get_blob(&self, sha256: HexId, offset: Option<u64>, length: Option<u64>)
        -> RpcResult<Value>;

    #[method(name = "hasBlob", blocking)]
    fn has_blob(&self, sha256: HexId) -> RpcResult<BlobPresence>;

    #[method(name = "blobStatus", blocking)]
    fn blob_status(&self, sha256: HexId, poster: Option<String>) -> RpcResult<Value>;

    #[method(name = "estimate", blocking)]
    fn estimate(&self, job: EstimateJob) -> RpcResult<Value>;

    #[method(name = "submitJob", blocking)]
    fn submit_job(&self, tx: HexBytes) -> RpcResult<TxAccepted>;

    #[method(name = "getResult", blocking)]
    fn get_result(&self, task: HexId) -> RpcResult<Value>;

    #[method(name = "getJob", blocking)]
    fn get_job(&self, task: HexId) -> RpcResult<Value>;

    #[method(name = "listJobs", blocking)]
    fn list_jobs(
        &self,
        state: Option<String>,
        limit: Option<u64>,
        offset: Option<u64>,
    ) -> RpcResult<Value>;

    #[method(name = "getReceipt", blocking)]
    fn get_receipt(&self, task: HexId) -> RpcResult<Value>;

    #[method(name = "stats", blocking)]
    fn stats(&self) -> RpcResult<Value>;
}

/// The AI Compute Fund and its providers.
#[rpc(server, client, namespace = "aicf", namespace_separator = ".")]
pub trait Aicf {
    #[method(name = "listProviders", blocking)]
    fn list_providers(&self) -> RpcResult<Value>;

    #[method(name = "getProvider", blocking)]
    fn get_provider(&self, address: String) -> RpcResult<Value>;

    #[method(name = "listJobs", blocking)]
    fn list_jobs(
        &self,
        state: Option<String>,
        limit: Option<u64>,
        offset: Option<u64>,
    ) -> RpcResult<Value>;

    #[method(name = "getJob", blocking)]
    fn get_job(&self, task: HexId) -> RpcResult<Value>;

    #[method(name = "getBalance", blocking)]
    fn get_balance(&self) -> RpcResult<Value>;

    #[method(name = "payouts", blocking)]
    fn payouts(&self, epoch: u64) -> RpcResult<Value>;

    #[method(name = "slashes", blocking)]
    fn slashes(&self, provider: Option<String>) -> RpcResult<Value>;
}

#[rpc(server, client, namespace = "governor", namespace_separator = ".")]
pub trait Governor {
    #[method(name = "status", blocking)]
    fn status(&self) -> RpcResult<Value>;

    #[method(name = "intents", blocking)]
    fn intents(&self) -> RpcResult<Value>;
}

#[rpc(server, client, namespace = "net", namespace_separator = ".")]
pub trait Net {
    #[method(name = "info", blocking)]
    fn info(&self) -> RpcResult<Value>;
}

/// Event subscriptions over WebSocket: `subscribe_X` answers a subscription id, then
/// each event arrives as an `X` notification; `unsubscribe_X` ends it.
#[rpc(server, client)]
pub trait Events {
    #[subscription(name = "subscribe_newHeads" => "newHeads", unsubscribe = "unsubscribe_newHeads", item = Header)]
    async fn new_heads(&self) -> SubscriptionResult;

    #[subscription(name = "subscribe_jobAssigned" => "jobAssigned", unsubscribe = "unsubscribe_jobAssigned", item = Value)]
    async fn job_assigned(&self) -> SubscriptionResult;

    #[subscription(name = "subscribe_receiptAccepted" => "receiptAccepted", unsubscribe = "unsubscribe_receiptAccepted", item = Value)]
    async fn receipt_accepted(&self) -> SubscriptionResult;

    #[subscription(name = "subscribe_challengeOpened" => "challengeOpened", unsubscribe = "unsubscribe_challengeOpened", item = Value)]
    async fn challenge_opened(&self) -> SubscriptionResult;

    #[subscription(name = "subscribe_challengeRuled" => "challengeRuled", unsubscribe = "unsubscribe_challengeRuled", item = Value)]
    async fn challenge_ruled(&self) -> SubscriptionResult;

    #[subscription(name = "subscribe_jobCompleted" => "jobCompleted", unsubscribe = "unsubscribe_jobCompleted", item = Value)]
    async fn job_completed(&self) -> SubscriptionResult;

    #[subscription(name = "subscribe_jobFailed" => "jobFailed", unsubscribe = "unsubscribe_jobFailed", item = Value)]
    async fn job_failed(&self) -> SubscriptionResult;

    #[subscription(name = "subscribe_providerSlashed" => "providerSlashed", unsubscribe = "unsubscribe_providerSlashed", item = Value)]
    async fn provider_slashed(&self) -> SubscriptionResult;

    #[subscription(name = "subscribe_epochSettled" => "epochSettled", unsubscribe = "unsubscribe_epochSettled", item = Value)]
    async fn epoch_settled(&self) -> SubscriptionResult;
}
