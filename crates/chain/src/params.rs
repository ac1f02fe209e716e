//! Consensus parameters and named limits.
//!
//! Every limit the chain enforces has a name here, a documented default and is
//! checked at the boundary where outside data enters (see `docs/spec/chain.md`).

use tb_primitives::MICRO_PER_TOKEN;

/// Per-token emission schedule: a reward that decays by `decay_bps` every
/// `epoch_blocks` blocks, never minting more than `cap_micro` in total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmissionParams {
    /// Reward per block in the first emission epoch, micro-units.
    pub initial_reward_micro: u64,
    /// Blocks per emission epoch.
    pub epoch_blocks: u64,
    /// Reward reduction per epoch in basis points: `r(e+1) = r(e) - r(e)*decay_bps/10_000`.
    pub decay_bps: u64,
    /// Total issuance cap, micro-units.
    pub cap_micro: u64,
}

/// The parameters every node of one network must share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainParams {
    /// Network identifier mixed into every signature.
    pub chain_id: u64,
    /// Target time between blocks.
    pub block_time_target_ms: u64,
    /// Number of past block intervals the difficulty retarget averages over.
    pub retarget_window: u64,
    /// The retarget never moves difficulty by more than this factor per block.
    pub retarget_clamp: u64,
    /// Difficulty of genesis's children until a window exists; also the floor.
    pub difficulty_initial: u64,
    pub difficulty_min: u64,
    /// A block's timestamp must exceed the median of this many ancestors.
    pub median_time_window: usize,
    /// A block's timestamp may be at most this far ahead of the local clock.
    pub future_drift_ms_max: u64,
    /// Canonical encoded size of a block's transactions, summed.
    pub block_bytes_max: usize,
    pub block_tx_count_max: usize,
    /// Canonical encoded size of one signed transaction.
    pub tx_bytes_max: usize,
    pub memo_bytes_max: usize,
    /// Share of every fee that is burned (basis points); the rest goes to the miner.
    pub fee_burn_bps: u64,
    pub emission_consumer: EmissionParams,
    pub emission_industrial: EmissionParams,
    /// The compute market and the AI Compute Fund: the genesis values. Governance
    /// may change the governable ones on chain (`governance::effective_params`).
    pub market: crate::market::params::MarketParams,
    /// The rules of market-parameter governance (not governable themselves).
    pub governance: crate::governance::params::GovernanceParams,
}

/// Room for a `PublishBlob`'s other fields and signature above its chunk.
pub const BLOB_TX_OVERHEAD_BYTES: usize = 512;

/// The hard cap on each token: 20,000,000 whole tokens.
pub const SUPPLY_CAP_MICRO: u64 = 20_000_000 * MICRO_PER_TOKEN;

impl ChainParams {
    /// Largest encoded signed transaction accepted by the decoder: `tx_bytes_max`, or
    /// a published chunk with its fields (`blob_chunk_bytes` + 512) if larger.
    pub fn tx_decode_bytes_max(&self) -> usize {
        self.tx_bytes_max
            .max(self.market.blob_chunk_bytes as usize + BLOB_TX_OVERHEAD_BYTES)
    }

    /// Main-network defaults.
    pub fn mainnet() -> ChainParams {
        let emission = EmissionParams {
            // 0.2 tokens per block, 1% less every ~11.6 days of 1 s blocks:
            // the geometric sum approaches 20M tokens over decades.
            initial_reward_micro: 200_000,
            epoch_blocks: 1_000_000,
            decay_bps: 100,
            cap_micro: SUPPLY_CAP_MICRO,
        };
        ChainParams {
            chain_id: 1,
            block_time_target_ms: 1_000,
            retarget_window: 120,
            retarget_clamp: 4,
            difficulty_initial: 1 << 20,
            difficulty_min: 1,
            median_time_window: 11,
            future_drift_ms_max: 15_000,
            block_bytes_max: 8 * 1024 * 1024,
            block_tx_count_max: 20_000,
            tx_bytes_max: 4 * 1024,
            memo_bytes_max: 256,
            fee_burn_bps: 1_000,
            emission_consumer: emission.clone(),
            emission_industrial: emission,
            market: crate::market::params::MarketParams::mainnet(),
            governance: crate::governance::params::GovernanceParams::mainnet(),
        }
    }

    /// A development network: trivial PoW so tests and the demo mine instantly,
    /// a larger early reward so dev accounts have something to spend.
    pub fn devnet() -> ChainParams {
        let mut p = ChainParams::mainnet();
        p.chain_id = 1337;
        p.difficulty_initial = 1;
        p.difficulty_min = 1;
        p.emission_consumer.initial_reward_micro = 50 * MICRO_PER_TOKEN;
        p.emission_industrial.initial_reward_micro = 50 * MICRO_PER_TOKEN;
        p.emission_consumer.epoch_blocks = 10_000;
        p.emission_industrial.epoch_blocks = 10_000;
        p.market = crate::market::params::MarketParams::devnet();
        p.governance = crate::governance::params::GovernanceParams::devnet();
        p
    }

    /// Checks the parameter sets that have ranges (market and governance); `Err`
    /// names the first parameter outside its range.
    pub fn validate(&self) -> Result<(), String> {
        self.market.validate().map_err(|e| e.to_string())?;
        self.governance.validate()
    }
}
