//! Bugs planted on purpose, behind the `planted-bugs` feature and a runtime switch
//! that is off unless a test turns it on: they show that the seeded simulation
//! (`tb-sim`) catches what they break. Nothing outside such a test sets them.

use std::sync::atomic::{AtomicBool, Ordering};
use tb_chain::market::records::MARKET_PREFIX;
use tb_chain::state::Changes;

/// When set, a reorg forgets to undo the first market record (`M…` key) a block
/// changed: the state after the reorg differs from the chain's.
pub static SKIP_MARKET_UNDO: AtomicBool = AtomicBool::new(false);

/// `undo` without its first market record's entry while [`SKIP_MARKET_UNDO`] is set.
pub(crate) fn skip_market_undo(mut undo: Changes) -> Changes {
    if SKIP_MARKET_UNDO.load(Ordering::Relaxed) {
        if let Some(i) = undo
            .iter()
            .position(|(k, _)| k.first() == Some(&MARKET_PREFIX))
        {
            undo.remove(i);
        }
    }
    undo
}
