//! Accounts, transactions, handles, metrics, and the admin methods.

use super::api::{AccountServer, AdminServer};
use super::params::HexBytes;
use super::{
    address_or_handle, admit, bad, decode_tx, err, require_admin, unavailable, with_at, Rpc,
    ERR_UNAVAILABLE,
};
use jsonrpsee::core::RpcResult;
use jsonrpsee::Extensions;
use std::sync::atomic::Ordering;
use tb_chain::market::records as r;
use tb_chain::{StateRead, TxPayload};
use tb_rpc_api::results::{
    Account, Dialing, HandleOwner, MetricsText, Mining, Pair, Stopping, SupplyAudit, TxAccepted,
};

impl AccountServer for Rpc {
    fn balance(&self, address: String) -> RpcResult<Account> {
        let node = &self.node;
        let addr = address_or_handle(node, &address)?;
        let c = node.core();
        let s = c.db.state();
        let acc = s.account(&addr);
        Ok(Account {
            address: addr.to_string(),
            handle: s.handle_of(&addr),
            nonce: acc.nonce,
            next_nonce: c.pool.next_nonce(&addr, s),
            consumer: acc.consumer,
            industrial: acc.industrial,
            stake: r::provider(s, &addr).map(|p| p.stake),
            height: c.db.tip().height,
        })
    }

    fn submit_tx(&self, tx: HexBytes) -> RpcResult<TxAccepted> {
        let node = &self.node;
        let tx = decode_tx(node, &tx.0)?;
        admit(node, tx)
    }

    fn register_handle(
        &self,
        tx: Option<HexBytes>,
        handle: Option<String>,
        address: Option<String>,
    ) -> RpcResult<TxAccepted> {
        let node = &self.node;
        let Some(tx) = tx else {
            let what = if handle.is_some() || address.is_some() {
                "the node holds no keys, so it cannot register a handle for an address: \
                 sign a RegisterHandle transaction (tb-cli handle register) and pass its hex \
                 as `tx`"
            } else {
                "missing parameter tx (a signed RegisterHandle transaction, hex)"
            };
            return Err(bad(what));
        };
        let tx = decode_tx(node, &tx.0)?;
        if !matches!(tx.payload, TxPayload::RegisterHandle(_)) {
            return Err(bad(
                "register_handle takes a signed RegisterHandle transaction",
            ));
        }
        admit(node, tx)
    }

    fn resolve_handle(&self, handle: String) -> RpcResult<HandleOwner> {
        let node = &self.node;
        let h = with_at(&handle);
        let c = node.core();
        let address = c.db.state().handle_owner(&h).map(|x| x.to_string());
        Ok(HandleOwner { handle: h, address })
    }

    fn metrics(&self) -> RpcResult<MetricsText> {
        let node = &self.node;
        node.refresh_metrics();
        Ok(MetricsText {
            format: "prometheus-text-0.0.4".into(),
            text: node.metrics.render(),
        })
    }
}

impl AdminServer for Rpc {
    fn start_mining(&self, ext: &Extensions, miner: Option<String>) -> RpcResult<Mining> {
        let node = &self.node;
        require_admin(ext)?;
        let Some(key) = &node.key else {
            return Err(err(
                ERR_UNAVAILABLE,
                "this node has no key (--key-file): it cannot mine",
            ));
        };
        if let Some(m) = miner {
            let want = address_or_handle(node, &m)?;
            if want != key.address() {
                return Err(bad(format!(
                    "this node mines to its own key {}; miner {m:?} is another address",
                    key.address()
                )));
            }
        }
        node.mining.store(true, Ordering::Relaxed);
        tracing::info!(target: "the_block::workers::miner", "mining started over RPC");
        Ok(Mining { mining: true })
    }

    fn stop_mining(&self, ext: &Extensions) -> RpcResult<Mining> {
        let node = &self.node;
        require_admin(ext)?;
        node.mining.store(false, Ordering::Relaxed);
        tracing::info!(target: "the_block::workers::miner", "mining stopped over RPC");
        Ok(Mining { mining: false })
    }

    fn shutdown(&self, ext: &Extensions) -> RpcResult<Stopping> {
        let node = &self.node;
        require_admin(ext)?;
        tracing::info!("shutdown asked over RPC");
        node.shutdown_requested.notify_one();
        Ok(Stopping { stopping: true })
    }

    fn add_peer(&self, ext: &Extensions, address: String) -> RpcResult<Dialing> {
        let node = &self.node;
        require_admin(ext)?;
        let a: tb_net::Multiaddr = address
            .parse()
            .map_err(|e| bad(format!("address {address:?} is not a multiaddr: {e}")))?;
        let n = node
            .net()
            .ok_or_else(|| err(ERR_UNAVAILABLE, "the peer-to-peer network is off"))?;
        n.dial(a);
        Ok(Dialing { dialing: address })
    }

    fn audit_supply(&self, ext: &Extensions) -> RpcResult<SupplyAudit> {
        require_admin(ext)?;
        let c = self.node.core();
        let tip = c.db.tip().height;
        let (mc, mi) = c.db.canonical_coinbases().map_err(unavailable)?;
        let s = tb_chain::market::audit::supply(c.db.state());
        let running = tb_chain::market::audit::check_running_totals(c.db.state()).err();
        let pair = |(a, b): (u128, u128)| Pair {
            consumer: a.to_string(),
            industrial: b.to_string(),
        };
        let accounted = s.total();
        Ok(SupplyAudit {
            height: tip,
            tip: c.db.tip_id().to_hex(),
            minted: pair((mc, mi)),
            accounted: pair(accounted),
            balances: pair(s.balances),
            stakes: s.stakes.to_string(),
            unbonding: s.unbonding.to_string(),
            escrow: s.escrow.to_string(),
            bonds: s.bonds.to_string(),
            fund: pair(s.fund),
            burned: pair(s.burned),
            holds: accounted == (mc, mi) && running.is_none(),
            running_totals: running,
        })
    }
}
