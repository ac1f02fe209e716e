//! The typed results of the methods whose answers clients act on: accounts, admitted
//! transactions, handles, the chain's head, the blob store, and the admin methods. The
//! node builds them, the client reads them, and serde keeps the two in one shape
//! (`docs/spec/rpc.md`). The wider views (blocks, jobs, results, receipts, payouts) are
//! JSON objects documented there field by field; clients print them or read a few
//! fields.
//!
//! Every struct refuses a reply that lacks a field it needs; fields a newer node adds
//! are ignored, so an older client keeps working.

use crate::params::HexId;
use serde::{Deserialize, Serialize};

/// `balance`: an account as the tip and the mempool see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// `tb1…` text.
    pub address: String,
    /// Its registered `@handle`, if any.
    pub handle: Option<String>,
    /// Transactions of this account included so far.
    pub nonce: u64,
    /// The nonce its next transaction must carry (pending ones counted).
    pub next_nonce: u64,
    /// Consumer tokens, micro-units.
    pub consumer: u64,
    /// Industrial tokens, micro-units.
    pub industrial: u64,
    /// Its provider stake, micro-units, when it is a registered provider.
    pub stake: Option<u64>,
    /// The tip's height the answer was read at.
    pub height: u64,
}

/// `submit_tx`, `compute.submitJob`, `register_handle`: the admitted transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxAccepted {
    /// The transaction's id.
    pub id: HexId,
}

/// `resolve_handle`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandleOwner {
    /// The handle, with its `@`.
    pub handle: String,
    /// Its owner's `tb1…` address; `None` when nobody registered it.
    pub address: Option<String>,
}

/// `metrics`: the Prometheus exposition text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsText {
    /// `prometheus-text-0.0.4`.
    pub format: String,
    pub text: String,
}

/// `start_mining`, `stop_mining`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mining {
    /// Whether the miner runs now.
    pub mining: bool,
}

/// `admin.shutdown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopping {
    pub stopping: bool,
}

/// Micro-tokens per token, as decimal strings (they may pass 2^64).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    pub consumer: String,
    pub industrial: String,
}

/// `admin.auditSupply`: minted against accounted for, at `height`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplyAudit {
    pub height: u64,
    /// The tip's id (hex).
    pub tip: String,
    /// Σ coinbases of the canonical headers, genesis included.
    pub minted: Pair,
    /// Balances + stakes + unbonding + escrow + bonds + fund + burned.
    pub accounted: Pair,
    pub balances: Pair,
    /// Industrial only.
    pub stakes: String,
    pub unbonding: String,
    pub escrow: String,
    pub bonds: String,
    pub fund: Pair,
    pub burned: Pair,
    /// `minted == accounted` and the fund's running totals match the records.
    pub holds: bool,
    /// The first running total that differs from its records, if one does.
    pub running_totals: Option<String>,
}

/// `admin.addPeer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dialing {
    /// The multiaddr being dialled.
    pub dialing: String,
}

/// `chain.head` and each `newHeads` event: a block header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub id: HexId,
    pub height: u64,
    pub parent: HexId,
    pub timestamp_ms: u64,
    pub difficulty: u64,
    pub nonce: u64,
    pub tx_root: HexId,
    pub state_root: HexId,
    pub receipts_root: HexId,
    /// The block's coinbase, micro-units of each token.
    pub coinbase_consumer: u64,
    pub coinbase_industrial: u64,
    /// `tb1…` text.
    pub beneficiary: String,
    /// Transactions in the block.
    pub txs: u64,
}

/// `compute.hasBlob`: whether an object is in this node's blob store and on chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobPresence {
    pub sha256: HexId,
    /// In this node's blob store.
    pub stored: bool,
    /// Published on chain and not expired.
    pub published: bool,
    /// The height its publication expires at, when published.
    pub expires: Option<u64>,
}

/// `compute.uploadBlob`: what the blob store now holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobStored {
    pub sha256: HexId,
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_read_what_the_spec_shows_and_refuse_less() {
        let id = "ab".repeat(32);
        let a: Account = serde_json::from_value(json!({
            "address": "tb1x", "handle": null, "nonce": 1, "next_nonce": 2, "consumer": 3,
            "industrial": 4, "stake": null, "height": 5, "added_later": true
        }))
        .unwrap();
        assert_eq!((a.next_nonce, a.stake, a.height), (2, None, 5));
        let e = serde_json::from_value::<Account>(json!({"address": "tb1x"})).unwrap_err();
        assert!(e.to_string().contains("missing field"), "{e}");
        let t: TxAccepted = serde_json::from_value(json!({"id": id})).unwrap();
        assert_eq!(serde_json::to_value(t).unwrap(), json!({"id": id}));
        assert!(serde_json::from_value::<TxAccepted>(json!({"id": "zz"})).is_err());
        let p: BlobPresence = serde_json::from_value(
            json!({"sha256": id, "stored": true, "published": false, "expires": null}),
        )
        .unwrap();
        assert!(p.stored && !p.published && p.expires.is_none());
    }
}
