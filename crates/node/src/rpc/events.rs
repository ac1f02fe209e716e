//! Event subscriptions: each forwards the node's events of one kind to a WebSocket
//! subscriber until it unsubscribes or disconnects.

use super::api::EventsServer;
use super::Rpc;
use jsonrpsee::core::{async_trait, SubscriptionResult};
use jsonrpsee::PendingSubscriptionSink;
use tokio::sync::broadcast::error::RecvError;

impl Rpc {
    async fn forward(
        &self,
        kind: &'static str,
        pending: PendingSubscriptionSink,
    ) -> SubscriptionResult {
        let mut rx = self.node.events.subscribe();
        let sink = pending.accept().await?;
        loop {
            tokio::select! {
                _ = sink.closed() => break,
                ev = rx.recv() => match ev {
                    Ok(e) if e.kind == kind => {
                        let msg = serde_json::value::to_raw_value(&e.data)?;
                        sink.send(msg).await?;
                    }
                    Ok(_) => {}
                    // A slow subscriber misses events; it keeps its subscription.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl EventsServer for Rpc {
    async fn new_heads(&self, p: PendingSubscriptionSink) -> SubscriptionResult {
        self.forward("newHeads", p).await
    }
    async fn job_assigned(&self, p: PendingSubscriptionSink) -> SubscriptionResult {
        self.forward("jobAssigned", p).await
    }
    async fn receipt_accepted(&self, p: PendingSubscriptionSink) -> SubscriptionResult {
        self.forward("receiptAccepted", p).await
    }
    async fn challenge_opened(&self, p: PendingSubscriptionSink) -> SubscriptionResult {
        self.forward("challengeOpened", p).await
    }
    async fn challenge_ruled(&self, p: PendingSubscriptionSink) -> SubscriptionResult {
        self.forward("challengeRuled", p).await
    }
    async fn job_completed(&self, p: PendingSubscriptionSink) -> SubscriptionResult {
        self.forward("jobCompleted", p).await
    }
    async fn job_failed(&self, p: PendingSubscriptionSink) -> SubscriptionResult {
        self.forward("jobFailed", p).await
    }
    async fn provider_slashed(&self, p: PendingSubscriptionSink) -> SubscriptionResult {
        self.forward("providerSlashed", p).await
    }
    async fn epoch_settled(&self, p: PendingSubscriptionSink) -> SubscriptionResult {
        self.forward("epochSettled", p).await
    }
}
