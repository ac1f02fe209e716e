//! The compute market and the AI Compute Fund: the pure rules.
//!
//! This first slice holds the parts every later step builds on, each a plain function
//! of its inputs: the parameter set ([`params::MarketParams`], range-checked), the
//! pricing and epoch-settlement arithmetic ([`pricing`]: units, QoS multipliers,
//! price, the 80/15/5 split, the per-epoch cap with FIFO carry-over) and the matcher
//! ([`matcher`]: eligibility, queue order, the seeded shuffle, lease quotas). Wiring
//! them into transactions, state records and block execution is the next slice
//! (`docs/spec/market.md`, "Status").

pub mod audit;
pub mod dispute;
pub mod exec;
pub mod matcher;
pub mod params;
pub mod pricing;
pub mod query;
pub mod records;

pub use matcher::{
    eligibility, match_block, priority_key, Assignment, Ineligible, JobView, ProviderView,
};
pub use params::{MarketParams, ParamError};
pub use pricing::{quote, settle_epoch, split, EpochSettlement, PendingPayout, Quote, Split};
