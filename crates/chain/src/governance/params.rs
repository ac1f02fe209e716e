//! The rules of governance itself (`GovernanceParams`): voting period, quorum,
//! threshold, activation delays, open slots, shadow reports. Part of `ChainParams`;
//! not governable.

use crate::market::params::BPS;

/// The rules of governance itself. Part of `ChainParams`; **not** governable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GovernanceParams {
    /// Blocks a proposal is open for votes after the block that made it (mainnet
    /// 1000, devnet 20).
    pub voting_blocks: u64,
    /// Share of the total stake that must vote, yes or no, bps (4000).
    pub quorum_bps: u64,
    /// Share of the votes cast that must be yes, bps (6667).
    pub threshold_bps: u64,
    /// An Apply's or Rollback's `activate_at` is at least the voting end plus this
    /// (mainnet 100, devnet 5; at least 1, so activation never shares a block with
    /// the tally).
    pub activation_delay_blocks_min: u64,
    /// ... and at most the voting end plus this (mainnet 1 000 000, devnet 10 000): a
    /// scheduled proposal holds an open slot until it activates.
    pub activation_delay_blocks_max: u64,
    /// Most proposals open at once: in voting, scheduled or shadowing (16).
    pub proposals_open_max: u32,
    /// Most example receipts a shadow report keeps per direction (32).
    pub shadow_examples_max: u32,
    /// Blocks a passed shadow proposal keeps shadowing, unless an activation closes
    /// it earlier (mainnet 100 000, devnet 1000): it holds an open slot meanwhile.
    pub shadow_blocks: u64,
}

impl GovernanceParams {
    /// Main-network defaults.
    pub fn mainnet() -> GovernanceParams {
        GovernanceParams {
            voting_blocks: 1_000,
            quorum_bps: 4_000,
            threshold_bps: 6_667,
            activation_delay_blocks_min: 100,
            activation_delay_blocks_max: 1_000_000,
            proposals_open_max: 16,
            shadow_examples_max: 32,
            shadow_blocks: 100_000,
        }
    }

    /// Development-network defaults: short periods so a devnet governs in minutes.
    pub fn devnet() -> GovernanceParams {
        GovernanceParams {
            voting_blocks: 20,
            activation_delay_blocks_min: 5,
            activation_delay_blocks_max: 10_000,
            shadow_blocks: 1_000,
            ..GovernanceParams::mainnet()
        }
    }

    /// Checks every parameter against its range; `Err` names the first outside.
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(&str, u64, u64, u64); 8] = [
            ("voting_blocks", self.voting_blocks, 1, 10_000_000),
            ("quorum_bps", self.quorum_bps, 0, BPS),
            ("threshold_bps", self.threshold_bps, BPS / 2, BPS),
            (
                "activation_delay_blocks_min",
                self.activation_delay_blocks_min,
                1,
                self.activation_delay_blocks_max,
            ),
            (
                "activation_delay_blocks_max",
                self.activation_delay_blocks_max,
                1,
                100_000_000,
            ),
            ("proposals_open_max", self.proposals_open_max as u64, 1, 256),
            (
                "shadow_examples_max",
                self.shadow_examples_max as u64,
                0,
                SHADOW_EXAMPLES_MAX as u64,
            ),
            ("shadow_blocks", self.shadow_blocks, 1, 100_000_000),
        ];
        for (name, v, lo, hi) in checks {
            if v < lo || v > hi {
                return Err(format!(
                    "governance parameter {name} = {v} is outside {lo}..={hi}"
                ));
            }
        }
        Ok(())
    }
}

/// The hard ceiling of `shadow_examples_max` (keeps a report record bounded).
pub const SHADOW_EXAMPLES_MAX: u32 = 64;
