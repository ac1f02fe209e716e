//! Supply audit: where every minted micro-token is, recomputed from the state's
//! records (not from running totals), so conservation can be checked after any block:
//! minted = Σ balances + Σ stakes + Σ unbonding + Σ escrow + Σ challenge bonds + fund +
//! burned.

use super::records::{self as r, Dispute, Job, Kind, Provider};
use crate::state::{State, StateRead};

/// Where the supply is, per token `(consumer, industrial)` where both apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Supply {
    /// Σ account balances.
    pub balances: (u128, u128),
    /// Σ provider stakes (Industrial).
    pub stakes: u128,
    /// Σ unbonding amounts (Industrial).
    pub unbonding: u128,
    /// Σ job escrows (Industrial).
    pub escrow: u128,
    /// Σ bonds of open challenges (Industrial).
    pub bonds: u128,
    /// The AI Compute Fund.
    pub fund: (u128, u128),
    /// Burned fees.
    pub burned: (u128, u128),
}

impl Supply {
    /// Everything accounted for, per token.
    pub fn total(&self) -> (u128, u128) {
        (
            self.balances.0 + self.fund.0 + self.burned.0,
            self.balances.1
                + self.stakes
                + self.unbonding
                + self.escrow
                + self.bonds
                + self.fund.1
                + self.burned.1,
        )
    }
}

/// Recomputes the supply from the records.
pub fn supply(state: &State) -> Supply {
    let mut s = Supply {
        balances: state.balance_sums(),
        ..Supply::default()
    };
    for (k, _) in state.scan_prefix(&r::prefix(Kind::Provider)) {
        if let Some(p) = r::get::<Provider, _>(state, &k) {
            s.stakes += p.stake as u128;
            s.unbonding += p.unbonding as u128;
        }
    }
    for (k, _) in state.scan_prefix(&r::prefix(Kind::Job)) {
        if let Some(j) = r::get::<Job, _>(state, &k) {
            s.escrow += j.escrow as u128;
        }
    }
    for (k, _) in state.scan_prefix(&r::prefix(Kind::Dispute)) {
        if let Some(d) = r::get::<Dispute, _>(state, &k) {
            if d.ruling.is_none() {
                s.bonds += d.challenger.map(|c| c.1).unwrap_or(0) as u128;
            }
        }
    }
    let f = r::fund(state);
    s.fund = (f.consumer as u128, f.industrial as u128);
    let t = state.totals();
    s.burned = (t.burned_consumer as u128, t.burned_industrial as u128);
    s
}

/// Checks the fund's running totals against the records. `Err` names the first that
/// differs.
pub fn check_running_totals(state: &State) -> Result<(), String> {
    let s = supply(state);
    let f = r::fund(state);
    for (name, total, recomputed) in [
        ("stakes", f.stakes as u128, s.stakes),
        ("unbonding", f.unbonding as u128, s.unbonding),
        ("escrow", f.escrow as u128, s.escrow),
        ("bonds", f.bonds as u128, s.bonds),
    ] {
        if total != recomputed {
            return Err(format!(
                "fund.{name} is {total}, the records sum to {recomputed}"
            ));
        }
    }
    Ok(())
}
