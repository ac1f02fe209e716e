//! Matmul tiles: the configurations the fabric chooses from per problem. Tiles change
//! only speed, never results.

/// Environment variable forcing one matmul tile (`auto` or a [`MatmulTile::name`]).
pub const MATMUL_TILE_ENV: &str = "TB_CUDA_MATMUL_TILE";

/// A matmul tile configuration: `bm × bn` outputs per block, k walked in tiles of `bk`.
/// Tiles change only speed, never results (every output is the same sequential fma
/// chain whatever the tile). These three are what survived a sweep of eight on an
/// H100 (BENCHMARKS.md): the others were never the fastest by more than a few percent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulTile {
    /// 128 × 256 outputs per block, k tiles of 16, 256 threads of 8 × 16 outputs.
    T128x256x16,
    /// 128 × 128 outputs per block, k tiles of 32, 256 threads of 8 × 8 outputs.
    T128x128x32,
    /// 64 × 64 outputs per block, k tiles of 8, 64 threads of 8 × 8 outputs (problems
    /// of only a few hundred large tiles, short k).
    T64x64x8,
}

impl MatmulTile {
    /// Every tile.
    pub const ALL: [MatmulTile; 3] = [
        MatmulTile::T128x256x16,
        MatmulTile::T128x128x32,
        MatmulTile::T64x64x8,
    ];
    /// `(bm, bn, bk, threads)`.
    pub(crate) fn dims(self) -> (u32, u32, u32, u32) {
        match self {
            MatmulTile::T128x256x16 => (128, 256, 16, 256),
            MatmulTile::T128x128x32 => (128, 128, 32, 256),
            MatmulTile::T64x64x8 => (64, 64, 8, 64),
        }
    }
    /// Dynamic shared memory of one block: two buffers of the k-major A tile (rows
    /// padded by 4) and of the B tile.
    pub(crate) fn shared_bytes(self) -> u32 {
        let (bm, bn, bk, _) = self.dims();
        4 * (2 * bk * (bm + 4) + 2 * bk * bn)
    }
    /// Device throughput (TFLOP/s) of this tile on 8192³ with the device full, measured
    /// on an H100 (`tb-cuda-bench matmul`, BENCHMARKS.md). Only the tile choice uses
    /// it; results never depend on it.
    pub(crate) fn speed(self) -> f64 {
        match self {
            MatmulTile::T128x256x16 => 44.7,
            MatmulTile::T128x128x32 => 41.7,
            MatmulTile::T64x64x8 => 36.8,
        }
    }
    /// The name used by [`MATMUL_TILE_ENV`] and the benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            MatmulTile::T128x256x16 => "128x256x16",
            MatmulTile::T128x128x32 => "128x128x32",
            MatmulTile::T64x64x8 => "64x64x8",
        }
    }
    /// Parses [`MatmulTile::name`].
    pub fn parse(s: &str) -> Option<MatmulTile> {
        MatmulTile::ALL.into_iter().find(|t| t.name() == s)
    }
}

/// The tile with the least modelled time for an `m × k · k × n` product over `batch`
/// entries on a device of `sms` multiprocessors, where `occupancy[i]` blocks of tile
/// `MatmulTile::ALL[i]` fit on one. Blocks spread evenly, so the busiest
/// multiprocessor runs `ceil(blocks / sms)` of them at the tile's measured speed (this
/// captures wave quantisation, which makes the small tile win on problems of a few
/// hundred large tiles); a short k cannot hide the pipeline's fill and drain, modelled
/// as `PIPELINE_K / occupancy` extra k steps. The choice never changes results.
pub fn choose_tile(
    sms: u32,
    occupancy: &[u32],
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
) -> MatmulTile {
    /// k steps of latency one resident block exposes per tile (fitted on the H100).
    const PIPELINE_K: f64 = 128.0;
    let mut best = (f64::INFINITY, MatmulTile::T64x64x8);
    for (i, t) in MatmulTile::ALL.iter().enumerate() {
        let occ = occupancy.get(i).copied().unwrap_or(1).max(1) as f64;
        let (bm, bn, _, _) = t.dims();
        let blocks = m
            .div_ceil(bm as usize)
            .saturating_mul(n.div_ceil(bn as usize))
            .saturating_mul(batch);
        let per_sm = blocks.div_ceil(sms.max(1) as usize) as f64;
        let kf = k.max(1) as f64;
        let cost = per_sm * (bm * bn) as f64 / t.speed() * (kf + PIPELINE_K / occ) / kf;
        if cost < best.0 {
            best = (cost, *t);
        }
    }
    best.1
}
