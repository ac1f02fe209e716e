//! Unsigned transactions that production code builds: the node's provider and
//! verifier, tb-cli, and the test driver (`devchain`) alike. Each sets the fee fields
//! and leaves `nonce` at 0 for the signer to fill in (`SignedTx::sign_paying_floor`
//! raises the fee to the node's floor).

use crate::market::params::MarketParams;
use crate::tx::{FeeSelector, ProviderCaps, RegisterProvider, StakeChange, TxPayload};
use tb_primitives::Address;

/// The fee written into a built transaction before the signer raises it to the floor.
pub const BUILT_FEE_MICRO: u64 = 10;

/// A CPU provider's capabilities: fabric `cpu`, model class 0, region 0.
pub fn cpu_caps(max_leases: u32) -> ProviderCaps {
    ProviderCaps {
        fabrics: vec!["cpu".into()],
        kernel_digests: vec![],
        models: vec![0],
        region: 0,
        max_leases,
    }
}

/// `RegisterProvider` with `caps`, fees paid as `fees` says.
pub fn register_provider(from: Address, caps: ProviderCaps, fees: FeeSelector) -> TxPayload {
    TxPayload::RegisterProvider(RegisterProvider {
        from,
        caps,
        fee: BUILT_FEE_MICRO,
        fee_selector: fees.as_u8(),
        nonce: 0,
    })
}

/// `Stake` of `amount` micro-tokens.
pub fn stake(from: Address, amount: u64, fees: FeeSelector) -> TxPayload {
    TxPayload::Stake(StakeChange {
        from,
        amount,
        fee: BUILT_FEE_MICRO,
        fee_selector: fees.as_u8(),
        nonce: 0,
    })
}

/// The `PublishBlob` payloads that publish `bytes` from `from` in the market's chunks,
/// fees paid as `fees` says (whether the chain already has the object is the caller's
/// question).
pub fn publish_blob(
    market: &MarketParams,
    from: Address,
    bytes: &[u8],
    fees: FeeSelector,
) -> Vec<TxPayload> {
    crate::market::objects::publish_payloads(market, from, bytes)
        .into_iter()
        .map(|mut b| {
            b.fee_selector = fees.as_u8();
            TxPayload::PublishBlob(b)
        })
        .collect()
}
