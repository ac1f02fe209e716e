//! The compute market and the AI Compute Fund: the pure rules (`docs/spec/market.md`).
//!
//! The parameter set ([`params::MarketParams`], range-checked); the pricing and
//! epoch-settlement arithmetic ([`pricing`]: units, QoS multipliers, price, the 80/15/5
//! split, the per-epoch cap with FIFO carry-over); the matcher ([`matcher`]:
//! eligibility, queue order, the seeded shuffle, lease quotas); the state records and
//! their keys ([`records`], [`keys`]); block execution ([`exec`]: market transactions
//! and the end-of-block step), published objects ([`objects`]) and verification
//! ([`dispute`]); every token move outside
//! a transfer ([`ledger`]), audited by [`audit`]; read-only queries for the node
//! ([`query`]). Files depend one way: `exec` → `dispute` → `objects`, `ledger` →
//! `keys` → `records`.

pub mod audit;
pub mod dispute;
pub mod exec;
pub mod keys;
pub mod ledger;
pub mod matcher;
pub mod objects;
pub mod params;
pub mod pricing;
pub mod query;
pub mod records;

pub use matcher::{
    eligibility, match_block, priority_key, Assignment, Ineligible, JobView, ProviderView,
};
pub use params::{MarketParams, ParamError};
pub use pricing::{quote, settle_epoch, split, EpochSettlement, PendingPayout, Quote, Split};
