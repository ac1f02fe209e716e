//! The market's parameter set: every knob of the compute market and the AI Compute
//! Fund in one typed, range-checked record. Defaults follow the AICF seed where it gives
//! a value; the others are this project's choices, marked "chosen" below.

use borsh::{BorshDeserialize, BorshSerialize};
use thiserror::Error;

/// Longest governed parameter name, bytes (a `Propose` names parameters by it).
pub const PARAM_NAME_BYTES_MAX: usize = 48;

/// Basis points in one whole.
pub const BPS: u64 = 10_000;

/// A parameter outside its range.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("market parameter {name} = {value} is outside {range}")]
pub struct ParamError {
    /// The parameter.
    pub name: &'static str,
    /// Its value.
    pub value: u64,
    /// The allowed range, in words.
    pub range: &'static str,
}

/// A latency bucket: receipts whose lease-to-receipt delay is at most `blocks` get
/// `multiplier_bps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct LatencyBucket {
    /// Upper bound, in blocks, inclusive.
    pub blocks: u64,
    /// QoS multiplier in basis points.
    pub multiplier_bps: u64,
}

/// An availability bucket: providers whose heartbeat availability over the epoch is at
/// least `min_bps` get `multiplier_bps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AvailabilityBucket {
    /// Lower bound, basis points of expected heartbeats, inclusive.
    pub min_bps: u64,
    /// QoS multiplier in basis points.
    pub multiplier_bps: u64,
}

/// Stake fractions slashed per reason, in basis points of the provider's stake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SlashFractions {
    /// A lease missed after the job's retry budget is spent.
    pub missed_lease_bps: u64,
    /// A receipt submitted outside the provider's lease.
    pub receipt_outside_lease_bps: u64,
    /// A delivery later than the lane's SLA window (`latency_sla_bps`), as the chain
    /// measured it.
    pub latency_sla_bps: u64,
    /// Availability below `availability_floor_bps` over an epoch.
    pub availability_bps: u64,
    /// A lost dispute: the referee convicted its leaf.
    pub lost_dispute_bps: u64,
    /// Data it owed (a seal's reveal, a dispute's evidence) not supplied by its
    /// deadline.
    pub withheld_data_bps: u64,
}

/// Every market and fund parameter.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct MarketParams {
    /// Share of each block's issuance minted into the fund (seed: 150).
    pub block_mint_bps: u64,
    /// Share of each block's fees paid into the fund (seed: 200).
    pub fee_share_bps: u64,
    /// Provider share of a job's price (seed: 8000).
    pub provider_bps: u64,
    /// Miner share (seed: 1500).
    pub miner_bps: u64,
    /// Fund share (seed: 500). The three shares sum to 10 000.
    pub fund_bps: u64,
    /// Blocks per settlement epoch (seed: daily, 86 400 one-second blocks).
    pub epoch_blocks: u64,
    /// Units paid at most per epoch; the rest carries over FIFO (seed: 1 000 000).
    pub gamma_cap_units: u64,
    /// Industrial micro-tokens per unit (seed: 15 000).
    pub base_rate_micro_per_unit: u64,
    /// FLOPs of work per unit of `work` (chosen: 10⁹; the seed prices seconds).
    pub flops_per_unit: u64,
    /// Model-class weights in basis points, indexed by model class (seed: llama3-8b
    /// 1.0, llama3-70b 6.5, clip-vit-b 0.3).
    pub model_weights_bps: Vec<u64>,
    /// Latency buckets, increasing `blocks` (seed, in ms: ≤300 → 1.15, ≤800 → 1.00;
    /// chosen block bounds 3 and 10 for ~1 s blocks).
    pub latency_buckets: Vec<LatencyBucket>,
    /// Multiplier past the last latency bucket (seed: 0.80).
    pub latency_else_bps: u64,
    /// Availability buckets, decreasing `min_bps` (seed: ≥99.9 % → 1.10, ≥99.0 % → 1.00).
    pub availability_buckets: Vec<AvailabilityBucket>,
    /// Multiplier below the last availability bucket (seed: 0.90).
    pub availability_else_bps: u64,
    /// Lease length per lane, in blocks; the lane count is its length (chosen: 10, 100,
    /// 1000 — fast, domain and macro lanes).
    pub lane_lease_blocks: Vec<u64>,
    /// Blocks between expected heartbeats (chosen: 10).
    pub heartbeat_interval_blocks: u64,
    /// A provider whose last heartbeat is older than this is unhealthy (chosen: 30).
    pub heartbeat_timeout_blocks: u64,
    /// Times a heartbeat may renew one lease (chosen: 2): a provider that keeps
    /// heartbeating but never delivers still loses the lease.
    pub lease_renewals_max: u32,
    /// Leases a job may lose before it fails (chosen: 3).
    pub retry_budget: u32,
    /// Blocks a requeued job waits, per retry so far (chosen: 5).
    pub backoff_blocks: u64,
    /// Minimum stake, Industrial micro-tokens (chosen: 100 tokens).
    pub min_stake_micro: u64,
    /// Blocks an unstaked amount stays bonded (chosen: 1000).
    pub unbonding_blocks: u64,
    /// Blocks a slashed provider is jailed (chosen: 1000).
    pub jail_blocks: u64,
    /// Blocks between a receipt and the job counting as verified (chosen: 20).
    pub challenge_window_blocks: u64,
    /// The budget of a node's own receipt checks (the proof verification), ms (DESIGN:
    /// 100). Telemetry only: nodes count checks over it; no rule reads it, and a
    /// provider's own `proof_latency_ms` is never judged against it.
    pub proof_verification_budget_ms: u64,
    /// The latency SLA: a delivery (receipt or seal) more than `lane_lease_blocks[lane] ×
    /// latency_sla_bps / 10⁴` blocks after its lease started — as the chain sees it,
    /// lease height to delivery height — is recorded, not paid, and slashed
    /// `slash.latency_sla_bps` (chosen: 10 000, the lease term: a delivery inside a
    /// heartbeat renewal is late).
    pub latency_sla_bps: u64,
    /// Availability below this over an epoch is a chronic failure (chosen: 9000).
    pub availability_floor_bps: u64,
    /// Slash fractions per reason (chosen).
    pub slash: SlashFractions,
    /// Most concurrent leases of one provider, whatever it declares (chosen: 16).
    pub max_leases_per_provider: u32,
    /// Largest redundancy `k` a job may ask for (chosen: 5).
    pub redundancy_max: u32,
    /// Furthest a job's deadline may be from its submission, in blocks (chosen:
    /// 100 000): a queued job holds its escrow and a queue slot at most this long.
    pub deadline_blocks_max: u64,
    /// Most jobs waiting in the queue (chosen: 100 000).
    pub queue_max: u32,
    /// Most leases the matcher grants per block (chosen: 250, so the whole market step
    /// of a block stays under 10 ms with 10 000 queued jobs and 1 000 providers;
    /// BENCHMARKS.md).
    pub match_per_block_max: u32,
    /// Largest FLOP cost of one job (tb-job's `PROGRAM_FLOPS_MAX`, 10¹⁴).
    pub job_flops_max: u64,
    /// Largest job blob (tb-job's `JOB_BLOB_BYTES_MAX`, 512 MiB).
    pub job_blob_bytes_max: u64,
    /// Chunk size of published objects, bytes; one `PublishBlob` carries one chunk
    /// (chosen: 1 MiB, an eighth of a block).
    pub blob_chunk_bytes: u64,
    /// Blocks a published object (or a partial copy) is kept unless a job pins it
    /// longer (chosen: 1000).
    pub blob_retention_blocks: u64,
    /// Least fee per started KiB of a published chunk, micro-tokens (chosen: 1000,
    /// one token per MiB).
    pub blob_fee_per_kib_micro: u64,
    /// Bond a challenger posts, Industrial micro-tokens (chosen: 50 tokens).
    pub challenge_bond_micro: u64,
    /// Blocks the owing party has to make a dispute's evidence available (chosen: 20).
    pub evidence_deadline_blocks: u64,
    /// Blocks the replicas of a redundant job have to reveal their sealed receipts
    /// once all are sealed (chosen: 10).
    pub reveal_blocks: u64,
    /// Share of a convicted provider's slash paid to the challenger, and of a lost
    /// bond paid to the providers it accused (chosen: 2000, so that a cheater who
    /// challenges itself through another account still loses 80 % of the slash).
    pub challenge_reward_bps: u64,
    /// Disputes adjudicated per block at most; the rest wait a block (chosen: 4,
    /// bounding the referee's share of a block). A dispute whose evidence is available
    /// is never ruled against its owing party while it waits.
    pub adjudications_per_block_max: u32,
    /// Bytes of owed data (bundle, job blob) the evidence deadline allows per block on
    /// top of `evidence_deadline_blocks` (chosen: 2 MiB, a quarter of a block).
    pub evidence_bytes_per_block: u64,
}

/// `Err` naming `name` unless `lo <= value <= hi` (`range` says the range in words).
fn check(
    name: &'static str,
    value: u64,
    lo: u64,
    hi: u64,
    range: &'static str,
) -> Result<(), ParamError> {
    if value < lo || value > hi {
        return Err(ParamError { name, value, range });
    }
    Ok(())
}

impl MarketParams {
    /// The latency SLA's window for `lane`, in blocks from the lease's start:
    /// `⌊lane_lease_blocks[lane] × latency_sla_bps / 10⁴⌋` (a lane past the table: 0).
    pub fn sla_window_blocks(&self, lane: u8) -> u64 {
        let lease = self
            .lane_lease_blocks
            .get(lane as usize)
            .copied()
            .unwrap_or(0);
        (lease as u128 * self.latency_sla_bps as u128 / BPS as u128) as u64
    }

    /// Main-network defaults.
    pub fn mainnet() -> MarketParams {
        MarketParams {
            block_mint_bps: 150,
            fee_share_bps: 200,
            provider_bps: 8_000,
            miner_bps: 1_500,
            fund_bps: 500,
            epoch_blocks: 86_400,
            gamma_cap_units: 1_000_000,
            base_rate_micro_per_unit: 15_000,
            flops_per_unit: 1_000_000_000,
            model_weights_bps: vec![10_000, 65_000, 3_000],
            latency_buckets: vec![
                LatencyBucket {
                    blocks: 3,
                    multiplier_bps: 11_500,
                },
                LatencyBucket {
                    blocks: 10,
                    multiplier_bps: 10_000,
                },
            ],
            latency_else_bps: 8_000,
            availability_buckets: vec![
                AvailabilityBucket {
                    min_bps: 9_990,
                    multiplier_bps: 11_000,
                },
                AvailabilityBucket {
                    min_bps: 9_900,
                    multiplier_bps: 10_000,
                },
            ],
            availability_else_bps: 9_000,
            lane_lease_blocks: vec![10, 100, 1_000],
            heartbeat_interval_blocks: 10,
            heartbeat_timeout_blocks: 30,
            lease_renewals_max: 2,
            retry_budget: 3,
            backoff_blocks: 5,
            min_stake_micro: 100 * tb_primitives::MICRO_PER_TOKEN,
            unbonding_blocks: 1_000,
            jail_blocks: 1_000,
            challenge_window_blocks: 20,
            proof_verification_budget_ms: 100,
            latency_sla_bps: 10_000,
            availability_floor_bps: 9_000,
            slash: SlashFractions {
                missed_lease_bps: 500,
                receipt_outside_lease_bps: 1_000,
                latency_sla_bps: 200,
                availability_bps: 300,
                lost_dispute_bps: 5_000,
                withheld_data_bps: 1_000,
            },
            max_leases_per_provider: 16,
            redundancy_max: 5,
            deadline_blocks_max: 100_000,
            queue_max: 100_000,
            match_per_block_max: 250,
            job_flops_max: 100_000_000_000_000,
            job_blob_bytes_max: 512 << 20,
            blob_chunk_bytes: 1 << 20,
            blob_retention_blocks: 1_000,
            blob_fee_per_kib_micro: 1_000,
            challenge_bond_micro: 50 * tb_primitives::MICRO_PER_TOKEN,
            evidence_deadline_blocks: 20,
            reveal_blocks: 10,
            challenge_reward_bps: 2_000,
            adjudications_per_block_max: 4,
            evidence_bytes_per_block: 2 << 20,
        }
    }

    /// Development-network defaults: short epochs and windows so a devnet settles in
    /// minutes.
    pub fn devnet() -> MarketParams {
        MarketParams {
            epoch_blocks: 50,
            unbonding_blocks: 20,
            jail_blocks: 20,
            challenge_window_blocks: 5,
            min_stake_micro: tb_primitives::MICRO_PER_TOKEN,
            challenge_bond_micro: 10 * tb_primitives::MICRO_PER_TOKEN,
            evidence_deadline_blocks: 10,
            reveal_blocks: 5,
            ..MarketParams::mainnet()
        }
    }

    /// Checks every parameter against its range; `Err` names the first outside.
    pub fn validate(&self) -> Result<(), ParamError> {
        self.validate_economics()?;
        self.validate_multipliers()?;
        self.validate_leases()?;
        self.validate_slashes()?;
        self.validate_capacity()?;
        Ok(())
    }

    /// The reward split, the epoch and the pricing units.
    fn validate_economics(&self) -> Result<(), ParamError> {
        check("block_mint_bps", self.block_mint_bps, 0, BPS, "0..=10000")?;
        check("fee_share_bps", self.fee_share_bps, 0, BPS, "0..=10000")?;
        check("provider_bps", self.provider_bps, 0, BPS, "0..=10000")?;
        check("miner_bps", self.miner_bps, 0, BPS, "0..=10000")?;
        check("fund_bps", self.fund_bps, 0, BPS, "0..=10000")?;
        let split = self.provider_bps + self.miner_bps + self.fund_bps;
        check(
            "provider_bps + miner_bps + fund_bps",
            split,
            BPS,
            BPS,
            "exactly 10000",
        )?;
        check("epoch_blocks", self.epoch_blocks, 1, 10_000_000, "1..=10^7")?;
        check("gamma_cap_units", self.gamma_cap_units, 1, u64::MAX, "≥ 1")?;
        check(
            "base_rate_micro_per_unit",
            self.base_rate_micro_per_unit,
            1,
            1 << 40,
            "1..=2^40",
        )?;
        check("flops_per_unit", self.flops_per_unit, 1, u64::MAX, "≥ 1")?;
        check(
            "model_weights_bps (count)",
            self.model_weights_bps.len() as u64,
            1,
            256,
            "1..=256 classes",
        )?;
        for w in &self.model_weights_bps {
            check("model_weights_bps", *w, 1, 100 * BPS, "1..=1000000")?;
        }
        Ok(())
    }

    /// The latency and availability multiplier tables.
    fn validate_multipliers(&self) -> Result<(), ParamError> {
        check(
            "latency_buckets (count)",
            self.latency_buckets.len() as u64,
            0,
            8,
            "0..=8",
        )?;
        let mut last = 0;
        for b in &self.latency_buckets {
            check(
                "latency_buckets.blocks",
                b.blocks,
                last + 1,
                u64::MAX,
                "strictly increasing, ≥ 1",
            )?;
            check(
                "latency_buckets.multiplier_bps",
                b.multiplier_bps,
                0,
                10 * BPS,
                "0..=100000",
            )?;
            last = b.blocks;
        }
        check(
            "latency_else_bps",
            self.latency_else_bps,
            0,
            10 * BPS,
            "0..=100000",
        )?;
        check(
            "availability_buckets (count)",
            self.availability_buckets.len() as u64,
            0,
            8,
            "0..=8",
        )?;
        let mut prev = BPS + 1;
        for b in &self.availability_buckets {
            check(
                "availability_buckets.min_bps",
                b.min_bps,
                0,
                prev - 1,
                "strictly decreasing, ≤ 10000",
            )?;
            check(
                "availability_buckets.multiplier_bps",
                b.multiplier_bps,
                0,
                10 * BPS,
                "0..=100000",
            )?;
            prev = b.min_bps;
        }
        check(
            "availability_else_bps",
            self.availability_else_bps,
            0,
            10 * BPS,
            "0..=100000",
        )?;
        Ok(())
    }

    /// Lanes, heartbeats, leases, retries, stake, unbonding, jail and the SLA.
    fn validate_leases(&self) -> Result<(), ParamError> {
        check(
            "lane_lease_blocks (count)",
            self.lane_lease_blocks.len() as u64,
            1,
            8,
            "1..=8 lanes",
        )?;
        for l in &self.lane_lease_blocks {
            check("lane_lease_blocks", *l, 1, 1_000_000, "1..=10^6")?;
        }
        check(
            "heartbeat_interval_blocks",
            self.heartbeat_interval_blocks,
            1,
            1_000_000,
            "1..=10^6",
        )?;
        check(
            "heartbeat_timeout_blocks",
            self.heartbeat_timeout_blocks,
            self.heartbeat_interval_blocks,
            10_000_000,
            "heartbeat_interval_blocks..=10^7",
        )?;
        check(
            "lease_renewals_max",
            self.lease_renewals_max as u64,
            0,
            100,
            "0..=100",
        )?;
        check("retry_budget", self.retry_budget as u64, 0, 100, "0..=100")?;
        check(
            "backoff_blocks",
            self.backoff_blocks,
            0,
            1_000_000,
            "0..=10^6",
        )?;
        check("min_stake_micro", self.min_stake_micro, 1, u64::MAX, "≥ 1")?;
        check(
            "unbonding_blocks",
            self.unbonding_blocks,
            0,
            10_000_000,
            "0..=10^7",
        )?;
        check("jail_blocks", self.jail_blocks, 0, 10_000_000, "0..=10^7")?;
        check(
            "challenge_window_blocks",
            self.challenge_window_blocks,
            0,
            1_000_000,
            "0..=10^6",
        )?;
        check(
            "proof_verification_budget_ms",
            self.proof_verification_budget_ms,
            1,
            3_600_000,
            "1..=3600000",
        )?;
        check(
            "latency_sla_bps",
            self.latency_sla_bps,
            1,
            100_000,
            "1..=100000",
        )?;
        check(
            "availability_floor_bps",
            self.availability_floor_bps,
            0,
            BPS,
            "0..=10000",
        )?;
        Ok(())
    }

    /// The slash fractions.
    fn validate_slashes(&self) -> Result<(), ParamError> {
        let s = &self.slash;
        for (name, v) in [
            ("slash.missed_lease_bps", s.missed_lease_bps),
            (
                "slash.receipt_outside_lease_bps",
                s.receipt_outside_lease_bps,
            ),
            ("slash.latency_sla_bps", s.latency_sla_bps),
            ("slash.availability_bps", s.availability_bps),
            ("slash.lost_dispute_bps", s.lost_dispute_bps),
            ("slash.withheld_data_bps", s.withheld_data_bps),
        ] {
            check(name, v, 0, BPS, "0..=10000")?;
        }
        Ok(())
    }

    /// Per-job, per-block and per-object limits; objects, bonds, challenges.
    fn validate_capacity(&self) -> Result<(), ParamError> {
        check(
            "max_leases_per_provider",
            self.max_leases_per_provider as u64,
            1,
            10_000,
            "1..=10000",
        )?;
        check(
            "redundancy_max",
            self.redundancy_max as u64,
            1,
            32,
            "1..=32 (a job record holds every replica's lease, seal and receipt)",
        )?;
        check(
            "deadline_blocks_max",
            self.deadline_blocks_max,
            1,
            100_000_000,
            "1..=10^8",
        )?;
        check(
            "queue_max",
            self.queue_max as u64,
            1,
            10_000_000,
            "1..=10^7",
        )?;
        check(
            "match_per_block_max",
            self.match_per_block_max as u64,
            1,
            1_000_000,
            "1..=10^6",
        )?;
        check("job_flops_max", self.job_flops_max, 1, u64::MAX, "≥ 1")?;
        check(
            "job_blob_bytes_max",
            self.job_blob_bytes_max,
            1,
            tb_job::format::JOB_BLOB_BYTES_MAX as u64,
            "1..=512 MiB (tb-job's JOB_BLOB_BYTES_MAX)",
        )?;
        check(
            "blob_chunk_bytes",
            self.blob_chunk_bytes,
            1024,
            4 << 20,
            "1 KiB..=4 MiB",
        )?;
        check(
            "blob_retention_blocks",
            self.blob_retention_blocks,
            1,
            10_000_000,
            "1..=10^7",
        )?;
        check(
            "blob_fee_per_kib_micro",
            self.blob_fee_per_kib_micro,
            0,
            1 << 40,
            "0..=2^40",
        )?;
        check(
            "challenge_bond_micro",
            self.challenge_bond_micro,
            1,
            1 << 50,
            "1..=2^50",
        )?;
        check(
            "evidence_deadline_blocks",
            self.evidence_deadline_blocks,
            1,
            1_000_000,
            "1..=10^6",
        )?;
        check(
            "reveal_blocks",
            self.reveal_blocks,
            1,
            1_000_000,
            "1..=10^6",
        )?;
        check(
            "challenge_reward_bps",
            self.challenge_reward_bps,
            0,
            BPS,
            "0..=10000",
        )?;
        check(
            "adjudications_per_block_max",
            self.adjudications_per_block_max as u64,
            1,
            64,
            "1..=64 (each may run a referee op inside the block)",
        )?;
        check(
            "(retry_budget + 1) × redundancy_max",
            (self.retry_budget as u64 + 1) * self.redundancy_max as u64,
            1,
            64,
            "≤ 64 (a job record lists every provider that ever held a lease)",
        )?;
        check(
            "evidence_bytes_per_block",
            self.evidence_bytes_per_block,
            64 * 1024,
            1 << 30,
            "64 KiB..=1 GiB",
        )?;
        Ok(())
    }

    /// Lanes.
    pub fn lanes(&self) -> usize {
        self.lane_lease_blocks.len()
    }
}

/// The governable parameters: every scalar field, by name (`slash.*` for the slash
/// fractions), with its type. Vectors (model weights, latency and availability buckets,
/// lane lease lengths) are not governable in v0: a change of their length would change
/// the meaning of lanes and model classes already in jobs.
macro_rules! governable {
    ($($name:literal => $($field:ident).+ : $ty:ty,)*) => {
        impl MarketParams {
            /// The names governance may change, in declaration order.
            pub const GOVERNABLE: &'static [&'static str] = &[$($name),*];

            /// The value of a governable parameter; `None` for any other name.
            pub fn get(&self, name: &str) -> Option<u64> {
                match name {
                    $($name => Some(u64::from(self.$($field).+)),)*
                    _ => None,
                }
            }

            /// Sets a governable parameter. Refuses an unknown name and, for a `u32`
            /// field, a value above `u32::MAX`. Ranges are `validate`'s business.
            pub fn set(&mut self, name: &str, value: u64) -> Result<(), ParamError> {
                match name {
                    $($name => {
                        self.$($field).+ = <$ty>::try_from(value).map_err(|_| ParamError {
                            name: $name,
                            value,
                            range: "0..=u32::MAX",
                        })?;
                        Ok(())
                    })*
                    _ => Err(ParamError {
                        name: "(not a governable name)",
                        value,
                        range: "MarketParams::GOVERNABLE",
                    }),
                }
            }
        }
    };
}

governable! {
    "block_mint_bps" => block_mint_bps: u64,
    "fee_share_bps" => fee_share_bps: u64,
    "provider_bps" => provider_bps: u64,
    "miner_bps" => miner_bps: u64,
    "fund_bps" => fund_bps: u64,
    "epoch_blocks" => epoch_blocks: u64,
    "gamma_cap_units" => gamma_cap_units: u64,
    "base_rate_micro_per_unit" => base_rate_micro_per_unit: u64,
    "flops_per_unit" => flops_per_unit: u64,
    "latency_else_bps" => latency_else_bps: u64,
    "availability_else_bps" => availability_else_bps: u64,
    "heartbeat_interval_blocks" => heartbeat_interval_blocks: u64,
    "heartbeat_timeout_blocks" => heartbeat_timeout_blocks: u64,
    "lease_renewals_max" => lease_renewals_max: u32,
    "retry_budget" => retry_budget: u32,
    "backoff_blocks" => backoff_blocks: u64,
    "min_stake_micro" => min_stake_micro: u64,
    "unbonding_blocks" => unbonding_blocks: u64,
    "jail_blocks" => jail_blocks: u64,
    "challenge_window_blocks" => challenge_window_blocks: u64,
    "proof_verification_budget_ms" => proof_verification_budget_ms: u64,
    "availability_floor_bps" => availability_floor_bps: u64,
    "slash.missed_lease_bps" => slash.missed_lease_bps: u64,
    "slash.receipt_outside_lease_bps" => slash.receipt_outside_lease_bps: u64,
    "slash.latency_sla_bps" => slash.latency_sla_bps: u64,
    "slash.availability_bps" => slash.availability_bps: u64,
    "slash.lost_dispute_bps" => slash.lost_dispute_bps: u64,
    "max_leases_per_provider" => max_leases_per_provider: u32,
    "redundancy_max" => redundancy_max: u32,
    "deadline_blocks_max" => deadline_blocks_max: u64,
    "queue_max" => queue_max: u32,
    "match_per_block_max" => match_per_block_max: u32,
    "job_flops_max" => job_flops_max: u64,
    "job_blob_bytes_max" => job_blob_bytes_max: u64,
    "slash.withheld_data_bps" => slash.withheld_data_bps: u64,
    "blob_retention_blocks" => blob_retention_blocks: u64,
    "blob_fee_per_kib_micro" => blob_fee_per_kib_micro: u64,
    "challenge_bond_micro" => challenge_bond_micro: u64,
    "evidence_deadline_blocks" => evidence_deadline_blocks: u64,
    "reveal_blocks" => reveal_blocks: u64,
    "challenge_reward_bps" => challenge_reward_bps: u64,
    "adjudications_per_block_max" => adjudications_per_block_max: u32,
    "evidence_bytes_per_block" => evidence_bytes_per_block: u64,
    "latency_sla_bps" => latency_sla_bps: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_governable_name_round_trips() {
        let base = MarketParams::mainnet();
        assert_eq!(MarketParams::GOVERNABLE.len(), 44);
        for (i, name) in MarketParams::GOVERNABLE.iter().enumerate() {
            assert!(name.len() <= PARAM_NAME_BYTES_MAX, "{name}");
            let v = base.get(name).expect("a governable name reads");
            let mut p = base.clone();
            let new = v + 1 + i as u64;
            p.set(name, new).expect("a governable name writes");
            assert_eq!(p.get(name), Some(new), "{name}");
            // Exactly that field changed.
            for other in MarketParams::GOVERNABLE.iter().filter(|o| *o != name) {
                assert_eq!(p.get(other), base.get(other), "{name} touched {other}");
            }
            p.set(name, v).unwrap();
            assert_eq!(p, base, "{name} restores");
        }
        assert_eq!(base.get("model_weights_bps"), None);
        assert!(base.clone().set("lane_lease_blocks", 1).is_err());
        assert!(base
            .clone()
            .set("retry_budget", u32::MAX as u64 + 1)
            .is_err());
        assert!(base.clone().set("retry_budget", u32::MAX as u64).is_ok());
    }
}
