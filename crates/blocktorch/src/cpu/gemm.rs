//! Single-precision matrix multiply (SGEMM) of the CPU fabric.
//!
//! # Evaluation-order contract
//!
//! Every output element is **one sequential chain of fused multiply-adds**,
//! in increasing `k`, starting from `+0.0`:
//!
//! ```text
//! acc = +0.0
//! for k in 0..K { acc = fma(a[i, k], b[k, j], acc) }   // IEEE fusedMultiplyAdd
//! c[i, j] = acc
//! ```
//!
//! There is no split-K and no reassociation. The kernel blocks over `K` only by
//! storing the partial accumulator to `C` (storing an `f32` is exact) and
//! continuing the same chain, in `k` order, from the stored value; only the
//! `M`/`N` edges are padded (padded outputs are discarded), never `K`; threads
//! split `M`, `N` and the batch only. Hence the result is bit-identical for
//! every SIMD path ([`Simd`]), thread count and tile size ([`GemmConfig`]), and
//! equal to [`sgemm_reference`], NaN payloads aside (which NaN bit pattern an
//! operation returns is not specified by IEEE 754; callers that hash results
//! canonicalise NaNs).
//!
//! # Implementation
//!
//! BLIS/GotoBLAS style: `B` is packed into `kc × NR` micro-panels and `A`
//! into `MR × kc` micro-panels (this also absorbs arbitrary strides, transposed
//! and broadcast views), and a register-blocked `MR × NR = 6 × 16` micro-kernel
//! keeps twelve 8-lane accumulators in AVX2 registers. The AVX2/FMA code is
//! reached only after runtime detection ([`Simd::detect`]). C is cut into
//! disjoint `(batch, M-block, N-block)` work items; threads
//! (`std::thread::scope`) pull them from a queue, each thread with its own
//! packing buffers. Every item is computed whole by one thread in the fixed
//! order, so the assignment never changes a bit.
#![allow(unsafe_code)]

use std::sync::Mutex;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
};

/// Rows of the register block (micro-panel height of packed `A`).
const MR: usize = 6;
/// Columns of the register block (micro-panel width of packed `B`).
const NR: usize = 16;
/// Alignment, in `f32` elements, of the packing buffers (64 bytes: one line).
const ALIGN_ELEMS: usize = 16;

/// The instruction-set path of the kernel. All paths give bit-identical results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    /// Portable code without intrinsics: packing plus a scalar `f32::mul_add`
    /// micro-kernel; available everywhere. Where the CPU has FMA (detected at
    /// run time) the same source is compiled with the `fma` target feature,
    /// so `mul_add` is one instruction and the compiler may vectorise the
    /// independent chains; the chains themselves are unchanged.
    Scalar,
    /// x86-64 AVX2 + FMA3 register micro-kernel (`_mm256_fmadd_ps`).
    Avx2Fma,
}

impl Simd {
    /// The fastest path this CPU supports, detected at run time.
    pub fn detect() -> Simd {
        if Simd::Avx2Fma.available() {
            Simd::Avx2Fma
        } else {
            Simd::Scalar
        }
    }

    /// Whether this CPU can run the path (checked at run time).
    pub fn available(self) -> bool {
        match self {
            Simd::Scalar => true,
            Simd::Avx2Fma => has_avx2_fma(),
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx2_fma() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn has_fma() -> bool {
    std::arch::is_x86_feature_detected!("fma")
}

/// How to run a multiply: SIMD path, thread count and cache tile sizes.
///
/// None of these fields can change the result, only the speed.
#[derive(Clone, Copy, Debug)]
pub struct GemmConfig {
    /// Instruction-set path. A path the CPU lacks falls back to [`Simd::Scalar`]
    /// (same bits).
    pub simd: Simd,
    /// Worker threads, at least 1 (the calling thread is one of them).
    pub threads: usize,
    /// Rows of `A` packed per block (L2 tile), at least 1.
    pub mc: usize,
    /// Depth of one `K` block (L1 tile of packed `B`), at least 1.
    pub kc: usize,
    /// Columns of `B` packed per block (L3 tile), at least 1.
    pub nc: usize,
}

impl GemmConfig {
    /// A configuration with default tile sizes, tuned on AMD Zen 3 (32 KiB
    /// L1d, 512 KiB L2 per core): a `72 × 512` block of packed `A` (144 KiB)
    /// stays in L2, a `512 × 16` micro-panel of packed `B` (32 KiB) in L1, and
    /// `K` up to 512 is done in one pass over `C`.
    pub fn new(simd: Simd, threads: usize) -> Self {
        GemmConfig {
            simd,
            threads,
            mc: 72,
            kc: 512,
            nc: 4096,
        }
    }
}

/// A strided read-only matrix view: element `(r, c)` is
/// `data[offset + r * rs + c * cs]`.
///
/// Any strides are allowed: row-major (`cs == 1`), transposed (`rs == 1`) and
/// broadcast (stride 0) views.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    /// The backing storage.
    pub data: &'a [f32],
    /// Index of element `(0, 0)` in `data`.
    pub offset: usize,
    /// Row stride, in elements.
    pub rs: usize,
    /// Column stride, in elements.
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// Element `(r, c)`.
    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> f32 {
        self.data[self.offset + r * self.rs + c * self.cs]
    }

    /// The view shifted to start at element `(r, c)`.
    fn shifted(self, r: usize, c: usize) -> MatRef<'a> {
        MatRef {
            offset: self.offset + r * self.rs + c * self.cs,
            ..self
        }
    }

    /// Asserts that a `rows × cols` matrix fits in `data` (`what[index]` names
    /// the view in the panic message).
    fn assert_fits(&self, what: &str, index: usize, rows: usize, cols: usize) {
        if rows == 0 || cols == 0 {
            return;
        }
        let last = (rows - 1)
            .checked_mul(self.rs)
            .and_then(|r| {
                (cols - 1)
                    .checked_mul(self.cs)
                    .and_then(|c| r.checked_add(c))
            })
            .and_then(|rc| rc.checked_add(self.offset));
        match last {
            Some(last) if last < self.data.len() => {}
            _ => panic!(
                "sgemm: {what}[{index}] view out of bounds: {rows}x{cols} with offset {}, strides ({}, {}) \
                 does not fit in {} elements",
                self.offset,
                self.rs,
                self.cs,
                self.data.len()
            ),
        }
    }
}

/// `C = A · B` for one matrix: `A` is `m × k`, `B` is `k × n`, `C` is `m × n`
/// row-major and contiguous (`c.len() == m * n`).
///
/// See the module docs for the evaluation-order contract.
pub fn sgemm(cfg: &GemmConfig, m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32]) {
    sgemm_batched(cfg, m, n, k, &[a], &[b], c);
}

/// `C_b = A_b · B_b` for each batch entry `b`: `A_b` is `m × k`, `B_b` is
/// `k × n`, and `C` holds the `m × n` row-major results one after the other
/// (`c.len() == batch * m * n`, `batch == a.len() == b.len()`).
///
/// Views may alias each other (e.g. one `B` shared by every entry). See the
/// module docs for the evaluation-order contract.
pub fn sgemm_batched(
    cfg: &GemmConfig,
    m: usize,
    n: usize,
    k: usize,
    a: &[MatRef],
    b: &[MatRef],
    c: &mut [f32],
) {
    let kern = Kernel::select(cfg.simd);
    sgemm_batched_impl(cfg, m, n, k, a, b, c, MIN_WORK_PER_THREAD_LOG2, kern);
}

/// Below `2^MIN_WORK_PER_THREAD_LOG2` multiply-adds per thread, spawning a
/// thread costs more than it saves.
const MIN_WORK_PER_THREAD_LOG2: u32 = 20;

/// [`sgemm_batched`] with the minimum work per thread and the micro-kernel as
/// parameters (the unit tests set the former to 0 to exercise threading on
/// small shapes, and force every kernel the CPU can run).
#[allow(clippy::too_many_arguments)]
fn sgemm_batched_impl(
    cfg: &GemmConfig,
    m: usize,
    n: usize,
    k: usize,
    a: &[MatRef],
    b: &[MatRef],
    c: &mut [f32],
    min_work_log2: u32,
    kern: Kernel,
) {
    let batch = a.len();
    assert_eq!(
        b.len(),
        batch,
        "sgemm: {batch} A views but {} B views",
        b.len()
    );
    assert!(cfg.threads >= 1, "sgemm: threads must be >= 1");
    assert!(
        cfg.mc >= 1 && cfg.kc >= 1 && cfg.nc >= 1,
        "sgemm: tile sizes must be >= 1 (mc {}, kc {}, nc {})",
        cfg.mc,
        cfg.kc,
        cfg.nc
    );
    let per = m.checked_mul(n).expect("sgemm: m * n overflows");
    assert_eq!(
        Some(c.len()),
        per.checked_mul(batch),
        "sgemm: C has {} elements, expected batch {batch} x {m} x {n}",
        c.len()
    );
    for (i, (av, bv)) in a.iter().zip(b).enumerate() {
        av.assert_fits("A", i, m, k);
        bv.assert_fits("B", i, k, n);
    }
    if per == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let (tm, tn, threads) = plan(batch, m, n, k, cfg.threads, min_work_log2);
    // With several threads, cut finer items than threads and let the threads pull
    // them from a queue: a thread the OS places late (this VM can take a scheduler
    // tick to move a new thread to an idle vCPU) then just takes fewer items instead
    // of holding everyone up. Which thread computes an item never changes its bits.
    let (tm, tn) = if threads > 1 {
        let (ftm, ftn, _) = plan(batch, m, n, k, threads * ITEMS_PER_THREAD, 0);
        (ftm, ftn)
    } else {
        (tm, tn)
    };
    let m_cuts = cuts(m, tm, MR);
    let n_cuts = cuts(n, tn, NR);

    // Split C into disjoint work items: (batch entry, row range, column range),
    // each owning mutable slices of its rows.
    let mut items: Vec<Item> = Vec::with_capacity(batch * tm * tn);
    for (bi, cmat) in c.chunks_mut(per).enumerate() {
        let mut pieces: Vec<Vec<&mut [f32]>> = (0..tm * tn).map(|_| Vec::new()).collect();
        for (r, mut row) in cmat.chunks_mut(n).enumerate() {
            let mi = m_cuts.partition_point(|&cut| cut <= r) - 1;
            for ni in 0..tn {
                let width = n_cuts[ni + 1] - n_cuts[ni];
                let (piece, rest) = row.split_at_mut(width);
                row = rest;
                pieces[mi * tn + ni].push(piece);
            }
        }
        for (idx, rows) in pieces.into_iter().enumerate() {
            let (mi, ni) = (idx / tn, idx % tn);
            items.push(Item {
                a: a[bi].shifted(m_cuts[mi], 0),
                b: b[bi].shifted(0, n_cuts[ni]),
                n: n_cuts[ni + 1] - n_cuts[ni],
                rows,
            });
        }
    }

    let tiles = Tiles::new(cfg, k);
    let max_n = items.iter().map(|it| it.n).max().unwrap_or(0);
    let max_m = items.iter().map(|it| it.rows.len()).max().unwrap_or(0);
    if threads == 1 {
        let mut it = items.into_iter();
        run_items(kern, tiles, k, (max_m, max_n), || it.next());
        return;
    }
    let queue = Mutex::new(items.into_iter());
    let next = || queue.lock().unwrap_or_else(|p| p.into_inner()).next();
    // The caller and `threads − 1` of the configured count's persistent workers pull
    // items until the queue is empty.
    super::pool::run_shares(cfg.threads, threads, |_| {
        run_items(kern, tiles, k, (max_m, max_n), next)
    });
}

/// Work items per thread when several threads share a call (see `sgemm_batched_impl`).
const ITEMS_PER_THREAD: usize = 4;

/// The reference: the naive triple loop, one `f32::mul_add` chain per output.
pub fn sgemm_reference(m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32]) {
    assert_eq!(
        c.len(),
        m * n,
        "sgemm_reference: C has {} elements, expected {m} x {n}",
        c.len()
    );
    a.assert_fits("A", 0, m, k);
    b.assert_fits("B", 0, k, n);
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for p in 0..k {
                acc = a.at(i, p).mul_add(b.at(p, j), acc);
            }
            c[i * n + j] = acc;
        }
    }
}

/// Splits `len` into `parts` ranges whose inner boundaries are multiples of
/// `unit` (balanced in units). Returns the `parts + 1` boundaries.
fn cuts(len: usize, parts: usize, unit: usize) -> Vec<usize> {
    let units = len.div_ceil(unit);
    (0..=parts)
        .map(|p| (p * units / parts * unit).min(len))
        .collect()
}

/// Chooses the per-matrix thread grid `tm × tn` and the thread count.
fn plan(
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    threads: usize,
    min_work_log2: u32,
) -> (usize, usize, usize) {
    let work = (batch as u128) * (m as u128) * (n as u128) * (k as u128);
    let useful = (work >> min_work_log2).max(1);
    let threads = threads.min(useful.min(usize::MAX as u128) as usize).max(1);
    let gcd = {
        let (mut x, mut y) = (batch.max(1), threads);
        while y != 0 {
            (x, y) = (y, x % y);
        }
        x
    };
    // Split each matrix into `s` blocks so that batch * s is a multiple of threads.
    let s = threads / gcd;
    let (mu, nu) = (m.div_ceil(MR), n.div_ceil(NR));
    let mut best = (1, 1, f64::INFINITY);
    for tm in 1..=s {
        if !s.is_multiple_of(tm) {
            continue;
        }
        let tn = s / tm;
        if tm > mu || tn > nu {
            continue;
        }
        // Per-thread packing traffic: its rows of A plus its columns of B.
        let cost = (m as f64 / tm as f64) + (n as f64 / tn as f64);
        if cost < best.2 {
            best = (tm, tn, cost);
        }
    }
    if best.2.is_infinite() {
        // The matrix is too small to split that way: split it along its larger
        // side as far as it goes.
        if mu >= nu {
            best = (s.min(mu), 1, 0.0);
        } else {
            best = (1, s.min(nu), 0.0);
        }
    }
    let items = batch * best.0 * best.1;
    (best.0, best.1, threads.min(items).max(1))
}

/// One unit of work: a block of C and the matching views of A and B.
struct Item<'a, 'c> {
    /// `A` shifted to the block's first row.
    a: MatRef<'a>,
    /// `B` shifted to the block's first column.
    b: MatRef<'a>,
    /// Columns of the block.
    n: usize,
    /// The block's rows of C, each `n` long.
    rows: Vec<&'c mut [f32]>,
}

/// Effective tile sizes of one call.
#[derive(Clone, Copy)]
struct Tiles {
    mc: usize,
    kc: usize,
    nc: usize,
}

impl Tiles {
    fn new(cfg: &GemmConfig, k: usize) -> Tiles {
        Tiles {
            mc: cfg.mc,
            kc: cfg.kc.min(k),
            nc: cfg.nc,
        }
    }
}

/// Packing buffers kept between calls, so that a call does not pay for fresh
/// pages. Their contents never matter: packing writes every element it reads.
static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
/// At most this many buffers are kept in [`POOL`].
const POOL_MAX: usize = 8;

/// Takes a buffer from the pool, grown to at least `len + ALIGN_ELEMS`.
fn take_buf(len: usize) -> Vec<f32> {
    let mut v = POOL
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
        .unwrap_or_default();
    if v.len() < len + ALIGN_ELEMS {
        v.resize(len + ALIGN_ELEMS, 0.0);
    }
    v
}

/// Returns a buffer to the pool.
fn give_buf(v: Vec<f32>) {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < POOL_MAX {
        pool.push(v);
    }
}

/// The 64-byte aligned window of `len` elements in `v` (see [`take_buf`]).
fn aligned(v: &mut [f32], len: usize) -> &mut [f32] {
    let off = v.as_ptr().align_offset(ALIGN_ELEMS * 4).min(ALIGN_ELEMS);
    &mut v[off..off + len]
}

/// Runs work items from `next` until it is exhausted; `(max_m, max_n)` bound the
/// items' sizes (for the packing buffers).
fn run_items<'a, 'c>(
    kern: Kernel,
    t: Tiles,
    k: usize,
    (max_m, max_n): (usize, usize),
    mut next: impl FnMut() -> Option<Item<'a, 'c>>,
) {
    let Some(first) = next() else {
        return;
    };
    let nc = t.nc.min(max_n).div_ceil(NR) * NR;
    let mc = t.mc.min(max_m).div_ceil(MR) * MR;
    let (blen, alen) = (t.kc * nc, t.kc * mc);
    let mut bstore = take_buf(blen);
    let mut astore = take_buf(alen);
    let bbuf = aligned(&mut bstore, blen);
    let abuf = aligned(&mut astore, alen);
    let mut item = Some(first);
    while let Some(mut it) = item {
        gemm_block(kern, t, k, &mut it, bbuf, abuf);
        item = next();
    }
    give_buf(astore);
    give_buf(bstore);
}

/// GotoBLAS loop nest over one work item.
fn gemm_block(
    kern: Kernel,
    t: Tiles,
    k: usize,
    item: &mut Item,
    bbuf: &mut [f32],
    abuf: &mut [f32],
) {
    let m = item.rows.len();
    let n = item.n;
    for jc in (0..n).step_by(t.nc) {
        let ncb = t.nc.min(n - jc);
        for pc in (0..k).step_by(t.kc) {
            let kcb = t.kc.min(k - pc);
            let load = pc > 0;
            pack_b(item.b.shifted(pc, jc), kcb, ncb, bbuf);
            for ic in (0..m).step_by(t.mc) {
                let mcb = t.mc.min(m - ic);
                pack_a(item.a.shifted(ic, pc), mcb, kcb, abuf);
                let rows = &mut item.rows[ic..ic + mcb];
                for (jp, bpanel) in bbuf[..ncb.div_ceil(NR) * NR * kcb]
                    .chunks_exact(NR * kcb)
                    .enumerate()
                {
                    let col = jc + jp * NR;
                    let nr = NR.min(n - col);
                    for (ip, apanel) in abuf[..mcb.div_ceil(MR) * MR * kcb]
                        .chunks_exact(MR * kcb)
                        .enumerate()
                    {
                        let r0 = ip * MR;
                        let mr = MR.min(mcb - r0);
                        if load {
                            // The next tile's partial C: fetch it while this
                            // tile computes (the chain must start from it).
                            let next = rows.get(r0 + MR..).unwrap_or(&[]);
                            for row in next.iter().take(MR) {
                                prefetch(&row[col..col + nr]);
                            }
                        }
                        let crows = &mut rows[r0..r0 + mr];
                        if mr == MR && nr == NR {
                            kern.run(kcb, apanel, bpanel, crows, col, load);
                        } else {
                            edge_tile(kern, kcb, apanel, bpanel, crows, col, nr, load);
                        }
                    }
                }
            }
        }
    }
}

/// A partial tile at the `M`/`N` edge: computed in a padded `MR × NR` scratch
/// tile, of which only the real `rows.len() × nr` part is read and written back.
#[allow(clippy::too_many_arguments)]
fn edge_tile(
    kern: Kernel,
    kc: usize,
    apanel: &[f32],
    bpanel: &[f32],
    rows: &mut [&mut [f32]],
    col: usize,
    nr: usize,
    load: bool,
) {
    let mut tile = [[0.0f32; NR]; MR];
    if load {
        for (t, row) in tile.iter_mut().zip(rows.iter()) {
            t[..nr].copy_from_slice(&row[col..col + nr]);
        }
    }
    {
        let mut trows: [&mut [f32]; MR] = tile.each_mut().map(|r| r.as_mut_slice());
        kern.run(kc, apanel, bpanel, &mut trows, 0, load);
    }
    for (t, row) in tile.iter().zip(rows.iter_mut()) {
        row[col..col + nr].copy_from_slice(&t[..nr]);
    }
}

/// Hints the CPU to load the cache lines of `v` (first and last element).
#[inline(always)]
fn prefetch(v: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(first), Some(last)) = (v.first(), v.last()) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: prefetching is a hint that never faults nor changes memory;
        // the addresses come from live references anyway. SSE is part of the
        // x86-64 baseline.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>((first as *const f32).cast());
            _mm_prefetch::<_MM_HINT_T0>((last as *const f32).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// Packs the `kc × nc` block of `B` into `kc × NR` micro-panels (row `p` of a
/// panel is `NR` consecutive elements), zero-padding the last panel's columns.
fn pack_b(b: MatRef, kc: usize, nc: usize, out: &mut [f32]) {
    let panels = nc.div_ceil(NR);
    let out = &mut out[..panels * NR * kc];
    let full = nc / NR;
    if b.cs == 1 {
        // Row by row, so that B is read sequentially (row-major source).
        for p in 0..kc {
            let base = b.offset + p * b.rs;
            let src = &b.data[base..base + nc];
            for (jp, chunk) in src.chunks_exact(NR).enumerate() {
                let chunk: &[f32; NR] = chunk.try_into().expect("NR elements");
                let at = jp * NR * kc + p * NR;
                out[at..at + NR].copy_from_slice(chunk);
            }
            if full < panels {
                let w = nc - full * NR;
                let at = full * NR * kc + p * NR;
                let dst = &mut out[at..at + NR];
                dst[..w].copy_from_slice(&src[full * NR..]);
                dst[w..].fill(0.0);
            }
        }
        return;
    }
    for (jp, panel) in out.chunks_exact_mut(NR * kc).enumerate() {
        let j0 = jp * NR;
        let w = NR.min(nc - j0);
        if b.rs == 1 {
            if w < NR {
                panel.fill(0.0);
            }
            for j in 0..w {
                let base = b.offset + (j0 + j) * b.cs;
                let src = &b.data[base..base + kc];
                for (dst, &v) in panel.chunks_exact_mut(NR).zip(src) {
                    dst[j] = v;
                }
            }
        } else {
            for (p, dst) in panel.chunks_exact_mut(NR).enumerate() {
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = if j < w { b.at(p, j0 + j) } else { 0.0 };
                }
            }
        }
    }
}

/// Packs the `mc × kc` block of `A` into `MR × kc` micro-panels (column `p` of
/// a panel is `MR` consecutive elements), zero-padding the last panel's rows.
fn pack_a(a: MatRef, mc: usize, kc: usize, out: &mut [f32]) {
    let panels = mc.div_ceil(MR);
    let out = &mut out[..panels * MR * kc];
    for (ip, panel) in out.chunks_exact_mut(MR * kc).enumerate() {
        let i0 = ip * MR;
        let h = MR.min(mc - i0);
        if a.cs == 1 && h == MR {
            let rows: [&[f32]; MR] = std::array::from_fn(|i| {
                let base = a.offset + (i0 + i) * a.rs;
                &a.data[base..base + kc]
            });
            for (p, dst) in panel.chunks_exact_mut(MR).enumerate() {
                for (d, row) in dst.iter_mut().zip(rows.iter()) {
                    *d = row[p];
                }
            }
        } else if a.rs == 1 {
            for (p, dst) in panel.chunks_exact_mut(MR).enumerate() {
                let base = a.offset + i0 + p * a.cs;
                dst[..h].copy_from_slice(&a.data[base..base + h]);
                dst[h..].fill(0.0);
            }
        } else {
            for (p, dst) in panel.chunks_exact_mut(MR).enumerate() {
                for (i, d) in dst.iter_mut().enumerate() {
                    *d = if i < h { a.at(i0 + i, p) } else { 0.0 };
                }
            }
        }
    }
}

/// The micro-kernel chosen for a call (after runtime feature detection).
#[derive(Clone, Copy, Debug)]
enum Kernel {
    /// Portable scalar code compiled for the baseline target.
    Scalar,
    /// The same scalar code compiled with the `fma` target feature, so that
    /// `mul_add` is one instruction instead of a libm call. Chosen only after
    /// `fma` was detected at run time.
    #[cfg(target_arch = "x86_64")]
    ScalarFma,
    /// The AVX2/FMA intrinsics kernel. Chosen only after `avx2` and `fma`
    /// were detected at run time.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Kernel {
    fn select(simd: Simd) -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if simd == Simd::Avx2Fma && has_avx2_fma() {
                return Kernel::Avx2Fma;
            }
            if has_fma() {
                return Kernel::ScalarFma;
            }
        }
        let _ = simd;
        Kernel::Scalar
    }

    /// Runs the micro-kernel on one full `MR × NR` tile: `c[r][col..col + NR]`
    /// for `r < MR` (continuing from the stored values when `load`, else from
    /// `+0.0`), over `kc` packed steps of `a` and `b`.
    #[inline(always)]
    fn run(self, kc: usize, a: &[f32], b: &[f32], c: &mut [&mut [f32]], col: usize, load: bool) {
        match self {
            Kernel::Scalar => kernel_scalar(kc, a, b, c, col, load),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `ScalarFma` is selected only after `fma` was detected at
            // run time (see `Kernel::select`); the function has no other
            // precondition.
            Kernel::ScalarFma => unsafe { kernel_scalar_fma(kc, a, b, c, col, load) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Avx2Fma` is selected only after `avx2` and `fma` were
            // detected at run time (see `Kernel::select`); the function checks
            // its own bounds.
            Kernel::Avx2Fma => unsafe { kernel_avx2(kc, a, b, c, col, load) },
        }
    }
}

/// The scalar micro-kernel: `MR × NR` independent `mul_add` chains.
#[inline(always)]
fn kernel_scalar_body(
    kc: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [&mut [f32]],
    col: usize,
    load: bool,
) {
    let c = &mut c[..MR];
    let mut acc = [[0.0f32; NR]; MR];
    if load {
        for (acc_r, c_r) in acc.iter_mut().zip(c.iter()) {
            acc_r.copy_from_slice(&c_r[col..col + NR]);
        }
    }
    for (ak, bk) in a[..kc * MR]
        .chunks_exact(MR)
        .zip(b[..kc * NR].chunks_exact(NR))
    {
        for (acc_r, &ar) in acc.iter_mut().zip(ak) {
            for (x, &bv) in acc_r.iter_mut().zip(bk) {
                *x = ar.mul_add(bv, *x);
            }
        }
    }
    for (acc_r, c_r) in acc.iter().zip(c.iter_mut()) {
        c_r[col..col + NR].copy_from_slice(acc_r);
    }
}

fn kernel_scalar(kc: usize, a: &[f32], b: &[f32], c: &mut [&mut [f32]], col: usize, load: bool) {
    kernel_scalar_body(kc, a, b, c, col, load);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn kernel_scalar_fma(
    kc: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [&mut [f32]],
    col: usize,
    load: bool,
) {
    kernel_scalar_body(kc, a, b, c, col, load);
}

/// Software prefetch distances (elements) into the packed A and B streams.
#[cfg(target_arch = "x86_64")]
const PF_A: usize = 96;
#[cfg(target_arch = "x86_64")]
const PF_B: usize = 256;

/// Prefetch hint for an address that may lie past the end of a buffer
/// (prefetches never fault).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_ahead(p: *const f32) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: a prefetch is a hint: it never faults, even on an invalid
    // address, and does not change memory. SSE is x86-64 baseline.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
}

/// The AVX2/FMA micro-kernel: a `6 × 16` tile in twelve `ymm` accumulators.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn kernel_avx2(kc: usize, a: &[f32], b: &[f32], c: &mut [&mut [f32]], col: usize, load: bool) {
    let a = &a[..kc * MR];
    let b = &b[..kc * NR];
    let c = &mut c[..MR];
    let mut ptrs: [*mut f32; MR] = [std::ptr::null_mut(); MR];
    for (p, row) in ptrs.iter_mut().zip(c.iter_mut()) {
        *p = row[col..col + NR].as_mut_ptr();
    }
    let mut acc: [[__m256; 2]; MR] = [[_mm256_setzero_ps(); 2]; MR];
    if load {
        for (acc_r, &p) in acc.iter_mut().zip(ptrs.iter()) {
            // SAFETY: `p` points at `NR == 16` elements of one C row (the slice
            // `row[col..col + NR]` above was bounds-checked).
            unsafe {
                acc_r[0] = _mm256_loadu_ps(p);
                acc_r[1] = _mm256_loadu_ps(p.add(8));
            }
        }
    }
    // One k step: two 8-lane loads of B, MR broadcasts of A, 2*MR FMAs.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn step(acc: &mut [[__m256; 2]; MR], ak: &[f32], bk: &[f32]) {
        let (ak, bk) = (&ak[..MR], &bk[..NR]);
        // SAFETY: `bk` is exactly `NR == 16` elements long.
        let (b0, b1) = unsafe {
            (
                _mm256_loadu_ps(bk.as_ptr()),
                _mm256_loadu_ps(bk.as_ptr().add(8)),
            )
        };
        for (acc_r, &ar) in acc.iter_mut().zip(ak) {
            let av = _mm256_set1_ps(ar);
            acc_r[0] = _mm256_fmadd_ps(av, b0, acc_r[0]);
            acc_r[1] = _mm256_fmadd_ps(av, b1, acc_r[1]);
        }
    }
    const U: usize = 4;
    let (a4, a_rest) = a.split_at(kc / U * U * MR);
    let (b4, b_rest) = b.split_at(kc / U * U * NR);
    for (ak, bk) in a4.chunks_exact(MR * U).zip(b4.chunks_exact(NR * U)) {
        prefetch_ahead(ak.as_ptr().wrapping_add(PF_A));
        prefetch_ahead(bk.as_ptr().wrapping_add(PF_B));
        step(&mut acc, &ak[0..], &bk[0..]);
        step(&mut acc, &ak[MR..], &bk[NR..]);
        step(&mut acc, &ak[2 * MR..], &bk[2 * NR..]);
        step(&mut acc, &ak[3 * MR..], &bk[3 * NR..]);
    }
    for (ak, bk) in a_rest.chunks_exact(MR).zip(b_rest.chunks_exact(NR)) {
        step(&mut acc, ak, bk);
    }
    for (acc_r, &p) in acc.iter().zip(ptrs.iter()) {
        // SAFETY: `p` points at `NR == 16` writable elements of one C row,
        // borrowed mutably for this whole function.
        unsafe {
            _mm256_storeu_ps(p, acc_r[0]);
            _mm256_storeu_ps(p.add(8), acc_r[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(x: f32) -> u32 {
        if x.is_nan() {
            0x7fc0_0000
        } else {
            x.to_bits()
        }
    }

    /// Simple deterministic values in [-1, 1).
    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn cuts_are_balanced_and_aligned() {
        assert_eq!(cuts(10, 1, 6), vec![0, 10]);
        assert_eq!(cuts(10, 2, 6), vec![0, 6, 10]);
        assert_eq!(cuts(130, 3, 16), vec![0, 48, 96, 130]);
        assert_eq!(cuts(5, 3, 6), vec![0, 0, 0, 5]);
        assert_eq!(cuts(0, 2, 6), vec![0, 0, 0]);
    }

    #[test]
    fn plan_splits_every_thread() {
        // (batch, m, n, k, threads) -> every item count is a multiple of threads
        // when the matrix is large enough.
        for (batch, m, n, t) in [
            (1, 512, 512, 2),
            (1, 128, 1536, 2),
            (3, 64, 64, 2),
            (1, 600, 600, 7),
        ] {
            let (tm, tn, threads) = plan(batch, m, n, 64, t, 0);
            assert_eq!(threads, t);
            assert_eq!((batch * tm * tn) % t, 0, "{batch} {m} {n} {t}: {tm}x{tn}");
        }
        // Tiny work: one thread.
        assert_eq!(plan(1, 8, 8, 8, 4, 18).2, 1);
        // More threads than tiles: capped.
        let (tm, tn, threads) = plan(1, 1, 1, 1000, 7, 0);
        assert_eq!((tm, tn, threads), (1, 1, 1));
    }

    /// Every micro-kernel this CPU can run, including the portable scalar one
    /// that [`Kernel::select`] skips when FMA is present.
    fn kernels() -> Vec<Kernel> {
        #[allow(unused_mut)]
        let mut v = vec![Kernel::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if has_fma() {
                v.push(Kernel::ScalarFma);
            } else {
                println!("SKIPPED ScalarFma kernel: this CPU lacks FMA");
            }
            if has_avx2_fma() {
                v.push(Kernel::Avx2Fma);
            } else {
                println!("SKIPPED Avx2Fma kernel: this CPU lacks AVX2 and/or FMA");
            }
        }
        v
    }

    /// Every thread count on small shapes, with the work threshold off so that
    /// the partition code really runs (including more threads than tiles),
    /// for every kernel.
    #[test]
    fn threads_on_small_shapes_match_reference() {
        let sizes = [1usize, 2, 5, 6, 7, 16, 17, 33];
        let mut seed = 0;
        for &m in &sizes {
            for &n in &sizes {
                for k in [1usize, 3, 20] {
                    for batch in [1usize, 2, 3] {
                        seed += 1;
                        check_small(batch, m, n, k, seed);
                    }
                }
            }
        }
    }

    fn check_small(batch: usize, m: usize, n: usize, k: usize, seed: u32) {
        let a = values(batch * m * k, seed);
        let b = values(k * n, seed + 1000);
        let av: Vec<MatRef> = (0..batch)
            .map(|i| MatRef {
                data: &a,
                offset: i * m * k,
                rs: k,
                cs: 1,
            })
            .collect();
        let shared = MatRef {
            data: &b,
            offset: 0,
            rs: n,
            cs: 1,
        };
        let bv = vec![shared; batch];
        let mut want = vec![0.0f32; batch * m * n];
        for (i, w) in want.chunks_mut(m * n).enumerate() {
            sgemm_reference(m, n, k, av[i], bv[i], w);
        }
        for kern in kernels() {
            for threads in [1usize, 2, 3, 7] {
                for (mc, kc, nc) in [(72, 512, 4096), (7, 2, 5)] {
                    let cfg = GemmConfig {
                        simd: Simd::Scalar, // unused: `kern` decides
                        threads,
                        mc,
                        kc,
                        nc,
                    };
                    let mut got = vec![f32::NAN; batch * m * n];
                    sgemm_batched_impl(&cfg, m, n, k, &av, &bv, &mut got, 0, kern);
                    let same = got.iter().zip(&want).all(|(x, y)| canon(*x) == canon(*y));
                    assert!(same, "b{batch} m{m} n{n} k{k} {cfg:?} {kern:?}");
                }
            }
        }
    }
}
