//! What a rule applying a transaction is told about where it runs.

use crate::params::ChainParams;

/// Where a transaction is applied: the parameters, the height and the timestamp of
/// the block (its header's; the chain reads no clock).
#[derive(Clone, Copy, Debug)]
pub struct TxCtx<'a> {
    pub params: &'a ChainParams,
    pub height: u64,
    pub timestamp_ms: u64,
}
