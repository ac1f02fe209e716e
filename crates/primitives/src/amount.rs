//! Token amounts: integer micro-units of the two tokens.

use borsh::{BorshDeserialize, BorshSerialize};
use std::fmt;

/// Micro-units per whole token.
pub const MICRO_PER_TOKEN: u64 = 1_000_000;

/// The two tokens of the dual-token ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Token {
    /// Everyday payments and fees.
    Consumer,
    /// Compute, staking and provider payouts.
    Industrial,
}

/// An amount of one token in micro-units. Arithmetic is checked: overflow is a
/// `None`, never a wrap.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    BorshSerialize,
    BorshDeserialize,
)]
pub struct Amount(pub u64);

impl Amount {
    pub const ZERO: Amount = Amount(0);

    pub const fn tokens(n: u64) -> Amount {
        Amount(n * MICRO_PER_TOKEN)
    }

    pub fn checked_add(self, o: Amount) -> Option<Amount> {
        self.0.checked_add(o.0).map(Amount)
    }

    pub fn checked_sub(self, o: Amount) -> Option<Amount> {
        self.0.checked_sub(o.0).map(Amount)
    }
}

impl fmt::Display for Amount {
    /// Whole tokens with six decimals, e.g. `12.000500`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}",
            self.0 / MICRO_PER_TOKEN,
            self.0 % MICRO_PER_TOKEN
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_checked() {
        assert_eq!(Amount(12_000_500).to_string(), "12.000500");
        assert_eq!(Amount(u64::MAX).checked_add(Amount(1)), None);
        assert_eq!(Amount(1).checked_sub(Amount(2)), None);
        assert_eq!(Amount::tokens(2), Amount(2_000_000));
    }
}
