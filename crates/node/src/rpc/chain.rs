//! The chain, the governor and the network.

use super::api::{ChainServer, GovernorServer, NetServer};
use super::params::{BlockRef, HexId};
use super::{err, unavailable, Rpc, ERR_NOT_FOUND, ERR_UNAVAILABLE};
use crate::json;
use jsonrpsee::core::RpcResult;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use tb_chain::market::exec::task_id;
use tb_chain::TxPayload;
use tb_rpc_api::results::Header;

impl ChainServer for Rpc {
    fn info(&self) -> RpcResult<Value> {
        let node = &self.node;
        let c = node.core();
        let p = c.effective_params(&node.params);
        Ok(json!({
            "chain_id": p.chain_id,
            "height": c.db.tip().height,
            "tip": c.db.tip_id().to_hex(),
            "genesis": node.genesis.to_hex(),
            "total_work": c.db.tip_total_work().to_string(),
            "state_root": c.db.tip().state_root.to_hex(),
            "fee_floor_per_byte": c.pool.config().fee_floor_per_byte,
            "block_time_target_ms": p.block_time_target_ms,
            "mining": node.mining.load(Ordering::Relaxed),
            "mempool": {"transactions": c.pool.len(), "bytes": c.pool.bytes()},
            "market": {
                "epoch_blocks": p.market.epoch_blocks,
                "challenge_window_blocks": p.market.challenge_window_blocks,
                "min_stake_micro": p.market.min_stake_micro,
                "challenge_bond_micro": p.market.challenge_bond_micro,
                "blob_chunk_bytes": p.market.blob_chunk_bytes,
                "blob_fee_per_kib_micro": p.market.blob_fee_per_kib_micro,
                "blob_retention_blocks": p.market.blob_retention_blocks,
                "flops_per_unit": p.market.flops_per_unit,
                "heartbeat_interval_blocks": p.market.heartbeat_interval_blocks,
            },
        }))
    }

    fn head(&self) -> RpcResult<Header> {
        let node = &self.node;
        let c = node.core();
        let h = c.db.tip().clone();
        let n =
            c.db.block(&c.db.tip_id())
                .ok()
                .flatten()
                .map_or(0, |b| b.txs.len());
        Ok(json::head(&h, n))
    }

    fn get_block(&self, block: BlockRef) -> RpcResult<Value> {
        let node = &self.node;
        let c = node.core();
        let b = match block {
            BlockRef::Height(h) => c.db.block_at(h),
            BlockRef::Id(id) => c.db.block(&id),
        }
        .map_err(unavailable)?
        .ok_or_else(|| err(ERR_NOT_FOUND, "no such block"))?;
        let mut v = json::header(&b.header, b.txs.len());
        v["transactions"] = b.txs.iter().map(json::tx).collect();
        Ok(v)
    }

    fn get_tx(&self, id: HexId) -> RpcResult<Value> {
        let node = &self.node;
        let t = id.0;
        let c = node.core();
        if let Some(tx) = c.pool.get(&t) {
            return Ok(json!({"status": "pending", "tx": json::tx(tx)}));
        }
        let loc = c.db.tx_location(&t).map_err(unavailable)?.ok_or_else(|| {
            err(
                ERR_NOT_FOUND,
                "no such transaction (neither pending nor canonical)",
            )
        })?;
        let b =
            c.db.block(&loc.block)
                .map_err(unavailable)?
                .ok_or_else(|| err(ERR_UNAVAILABLE, "indexed block missing"))?;
        let tx = b
            .txs
            .get(loc.index as usize)
            .ok_or_else(|| err(ERR_UNAVAILABLE, "indexed transaction missing"))?;
        let mut v = json!({
            "status": "included",
            "block": loc.block.to_hex(),
            "height": loc.height,
            "index": loc.index,
            "tx": json::tx(tx),
        });
        if let TxPayload::SubmitJob(_) = tx.payload {
            v["task_id"] = json!(task_id(node.params.chain_id, loc.height, tx).to_hex());
        }
        Ok(v)
    }
}

impl GovernorServer for Rpc {
    fn status(&self) -> RpcResult<Value> {
        let node = &self.node;
        let c = node.core();
        Ok(json::governor(&tb_chain::governance::status(
            c.db.state(),
            &node.params,
        )))
    }

    fn intents(&self) -> RpcResult<Value> {
        let node = &self.node;
        let c = node.core();
        let s = tb_chain::governance::status(c.db.state(), &node.params);
        let v = json::governor(&s);
        Ok(json!({"voting": v["voting"], "scheduled": v["scheduled"], "shadowing": v["shadowing"]}))
    }
}

impl NetServer for Rpc {
    /// This node's peer id and addresses, its peers (address, last status, penalty
    /// points, agent), the banned peers, and whom it syncs from.
    fn info(&self) -> RpcResult<Value> {
        let node = &self.node;
        let Some(n) = node.net() else {
            return Ok(json!({"enabled": false}));
        };
        let v = n.view();
        let peers: Vec<Value> = v
            .peers
            .iter()
            .map(|p| {
                json!({
                    "peer_id": p.peer_id.to_string(),
                    "addr": p.addr.as_ref().map(|a| a.to_string()),
                    "height": p.status.as_ref().map(|s| s.height),
                    "tip": p.status.as_ref().map(|s| s.tip.to_hex()),
                    "total_work": p.status.as_ref().map(|s| s.total_work.to_string()),
                    "points": p.points,
                    "agent": p.agent,
                })
            })
            .collect();
        Ok(json!({
            "enabled": true,
            "peer_id": n.peer_id.to_string(),
            "listen": v.listen.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "peers": peers,
            "banned": v.banned.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "syncing_from": v.syncing_from.map(|p| p.to_string()),
        }))
    }
}
