//! The CPU reference fabric: every primitive of `crate::ops::Prim` on host memory,
//! with a scalar path and an AVX2/FMA path chosen at run time, multi-threaded over
//! independent outputs. Results are bitwise independent of the SIMD path, the thread
//! count and the GEMM tile sizes (tested by the conformance suite).

pub mod gemm;
pub mod kernels;
mod leaf;
mod pool;

use crate::dtype::DType;
use crate::error::{Result, TensorError};
use crate::fabric::{kernel_variant_digest, Fabric, FabricBuffer, FabricTensor};
use crate::layout::Layout;
use crate::ops::{Prim, ReduceOp};
use crate::scalar::{self, Scalar};
use crate::storage::{alloc_f32_zeroed, HostData, Storage, DEVICE_CPU};
use crate::RUNTIME_VERSION;
use gemm::{GemmConfig, MatRef, Simd};
use std::borrow::Cow;
use std::sync::{Arc, Mutex, OnceLock};

/// Largest thread count a CPU fabric accepts.
pub const CPU_THREADS_MAX: usize = 256;
/// Environment variable choosing the SIMD path of the default fabric (`scalar`, `avx2`).
pub const SIMD_ENV: &str = "TB_BLOCKTORCH_SIMD";
/// Environment variable choosing the thread count of the default fabric.
pub const THREADS_ENV: &str = "TB_BLOCKTORCH_THREADS";
/// Elements a unary kernel copies and transforms at a time (fits in L1).
const UNARY_BLOCK: usize = 2048;
/// Elementwise work below this many elements runs on one thread.
const PARALLEL_ELEMENTS_MIN: usize = 1 << 15;

/// The kernel sources of the CPU fabric, embedded at build time; they define
/// [`CpuFabric::kernel_variant_digest`].
pub const KERNEL_SOURCES: [(&str, &str); 9] = [
    ("cpu/mod.rs", include_str!("mod.rs")),
    ("cpu/kernels.rs", include_str!("kernels.rs")),
    ("cpu/gemm.rs", include_str!("gemm.rs")),
    ("math.rs", include_str!("../math.rs")),
    ("scalar.rs", include_str!("../scalar.rs")),
    ("ops.rs", include_str!("../ops.rs")),
    ("compose.rs", include_str!("../compose.rs")),
    ("autograd.rs", include_str!("../autograd.rs")),
    ("layout.rs", include_str!("../layout.rs")),
];

/// How a CPU fabric runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuConfig {
    /// The SIMD path.
    pub simd: Simd,
    /// Worker threads (1..=[`CPU_THREADS_MAX`]).
    pub threads: usize,
    /// GEMM tile sizes (do not change results).
    pub mc: usize,
    /// GEMM K block.
    pub kc: usize,
    /// GEMM N block.
    pub nc: usize,
}

impl CpuConfig {
    /// `simd` on `threads` threads with the default tiles.
    pub fn new(simd: Simd, threads: usize) -> CpuConfig {
        let g = GemmConfig::new(simd, threads.max(1));
        CpuConfig {
            simd,
            threads,
            mc: g.mc,
            kc: g.kc,
            nc: g.nc,
        }
    }

    /// The reference configuration: scalar, one thread.
    pub fn reference() -> CpuConfig {
        CpuConfig::new(Simd::Scalar, 1)
    }

    /// Best SIMD path and every available core, overridden by `TB_BLOCKTORCH_SIMD`
    /// (`scalar` or `avx2`) and `TB_BLOCKTORCH_THREADS`.
    pub fn from_env() -> Result<CpuConfig> {
        let bad = |message: String| TensorError::InvalidArgument {
            op: "cpu config",
            message,
        };
        let simd = match std::env::var(SIMD_ENV).ok().as_deref() {
            None | Some("") | Some("auto") => Simd::detect(),
            Some("scalar") => Simd::Scalar,
            Some("avx2") => Simd::Avx2Fma,
            Some(other) => {
                return Err(bad(format!(
                    "{SIMD_ENV}={other:?}: expected auto, scalar or avx2"
                )))
            }
        };
        let threads = match std::env::var(THREADS_ENV).ok().as_deref() {
            None | Some("") => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            Some(s) => s
                .parse()
                .map_err(|_| bad(format!("{THREADS_ENV}={s:?}: expected a positive integer")))?,
        };
        let cfg = CpuConfig::new(simd, threads);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Refuses unavailable SIMD paths, zero or too many threads, and zero tiles.
    pub fn validate(&self) -> Result<()> {
        let bad = |message: String| TensorError::InvalidArgument {
            op: "cpu config",
            message,
        };
        if !self.simd.available() {
            return Err(bad(format!(
                "SIMD path {:?} is not available on this CPU",
                self.simd
            )));
        }
        if self.threads == 0 || self.threads > CPU_THREADS_MAX {
            return Err(bad(format!(
                "threads must be in 1..={CPU_THREADS_MAX}, got {}",
                self.threads
            )));
        }
        if self.mc == 0 || self.kc == 0 || self.nc == 0 {
            return Err(bad("GEMM tile sizes must be positive".into()));
        }
        Ok(())
    }
}

/// The CPU fabric.
#[derive(Debug, Clone)]
pub struct CpuFabric {
    config: CpuConfig,
}

impl FabricBuffer for Storage {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn device(&self) -> &str {
        DEVICE_CPU
    }
    fn len(&self) -> usize {
        self.data().len()
    }
    fn dtype(&self) -> DType {
        self.data().dtype()
    }
}

/// The process-wide CPU fabric used by [`crate::Tensor`] (configured from the
/// environment at first use; falls back to the reference configuration if the
/// environment is invalid).
pub fn default_fabric() -> &'static CpuFabric {
    static FABRIC: OnceLock<CpuFabric> = OnceLock::new();
    FABRIC.get_or_init(|| {
        CpuFabric::new(CpuConfig::from_env().unwrap_or_else(|_| CpuConfig::reference()))
            .unwrap_or_else(|_| CpuFabric::reference())
    })
}

/// Wraps host data as a contiguous CPU tensor.
pub fn host_tensor(data: HostData, shape: &[usize], label: &'static str) -> Result<FabricTensor> {
    let layout = Layout::contiguous(shape)?;
    if layout.numel() != data.len() {
        return Err(TensorError::LengthMismatch {
            shape: shape.to_vec(),
            expected: layout.numel(),
            got: data.len(),
        });
    }
    FabricTensor::new(data.dtype(), layout, Arc::new(Storage::new(data, label)))
}

fn storage_of(t: &FabricTensor) -> Result<&Storage> {
    t.buffer()
        .as_any()
        .downcast_ref::<Storage>()
        .ok_or_else(|| TensorError::Fabric {
            fabric: "cpu".into(),
            message: format!("tensor lives on device {}, not cpu", t.buffer().device()),
        })
}

/// Splits `out` into chunks of whole rows and runs `f(first_row, chunk)` on up to
/// `threads` threads (the caller and the persistent workers of `threads`, `pool.rs`).
/// Each output element is written by exactly one call, so the partition does not
/// affect results.
fn par_rows<T: Send>(
    threads: usize,
    out: &mut [T],
    row_len: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let rows = out.len().checked_div(row_len).unwrap_or(0);
    let parts = if out.len() < PARALLEL_ELEMENTS_MIN {
        1
    } else {
        threads.min(rows).max(1)
    };
    if parts <= 1 {
        f(0, out);
        return;
    }
    let rows_per = rows.div_ceil(parts);
    // Share i takes chunk i (each is taken once).
    let chunks: Vec<Mutex<Option<&mut [T]>>> = out
        .chunks_mut(rows_per * row_len)
        .map(|c| Mutex::new(Some(c)))
        .collect();
    pool::run_shares(threads, chunks.len(), |i| {
        let chunk = chunks[i].lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(chunk) = chunk {
            f(i * rows_per, chunk);
        }
    });
}

fn f32_data<'a>(t: &'a FabricTensor, op: &'static str) -> Result<&'a [f32]> {
    storage_of(t)?.as_f32().ok_or(TensorError::DTypeMismatch {
        op,
        expected: DType::F32,
        got: t.dtype(),
    })
}

/// The elements of a f32 view in row-major order, borrowed when contiguous.
fn contiguous_f32<'a>(t: &'a FabricTensor, op: &'static str) -> Result<Cow<'a, [f32]>> {
    let data = f32_data(t, op)?;
    let l = t.layout();
    if l.numel() == 0 {
        return Ok(Cow::Borrowed(&[]));
    }
    if l.is_contiguous() {
        let start = l.offset();
        return Ok(Cow::Borrowed(&data[start..start + l.numel()]));
    }
    Ok(Cow::Owned(l.gather_slice(data)))
}

/// One strided matrix view per entry of the (broadcast) batch: `t` broadcast to
/// `batch ++ [rows, cols]`, each entry starting at its batch offset.
fn batch_views<'a>(
    t: &FabricTensor,
    data: &'a [f32],
    batch: &[usize],
    rows: usize,
    cols: usize,
) -> Result<Vec<MatRef<'a>>> {
    let mut shape = batch.to_vec();
    shape.extend_from_slice(&[rows, cols]);
    let l = t.layout().broadcast_to(&shape)?;
    let r = shape.len();
    let (rs, cs) = (l.strides()[r - 2], l.strides()[r - 1]);
    let entries = Layout::from_parts(batch.to_vec(), l.strides()[..r - 2].to_vec(), l.offset())?;
    Ok(entries
        .offsets()
        .map(|offset| MatRef {
            data,
            offset,
            rs,
            cs,
        })
        .collect())
}

fn index_values(t: &FabricTensor, op: &'static str, size: usize) -> Result<Vec<usize>> {
    let s = storage_of(t)?;
    let l = t.layout();
    let check = |v: i64| -> Result<usize> {
        if v < 0 || v as u64 >= size as u64 {
            return Err(TensorError::IndexOutOfRange { op, index: v, size });
        }
        Ok(v as usize)
    };
    match s.data() {
        HostData::I32(v) => l.offsets().map(|o| check(v[o] as i64)).collect(),
        HostData::U32(v) => l.offsets().map(|o| check(v[o] as i64)).collect(),
        HostData::F32(_) | HostData::U8(_) => Err(TensorError::DTypeMismatch {
            op,
            expected: DType::I32,
            got: t.dtype(),
        }),
    }
}

impl CpuFabric {
    /// A fabric with `config` (validated).
    pub fn new(config: CpuConfig) -> Result<CpuFabric> {
        config.validate()?;
        Ok(CpuFabric { config })
    }

    /// The reference fabric: scalar, one thread.
    pub fn reference() -> CpuFabric {
        CpuFabric {
            config: CpuConfig::reference(),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> CpuConfig {
        self.config
    }

    fn gemm_config(&self) -> GemmConfig {
        GemmConfig {
            simd: self.config.simd,
            threads: self.config.threads,
            mc: self.config.mc,
            kc: self.config.kc,
            nc: self.config.nc,
        }
    }

    fn out(&self, data: HostData, shape: &[usize], label: &'static str) -> Result<FabricTensor> {
        host_tensor(data, shape, label)
    }

    // The kernel is passed as three closures (output allocation, contiguous rows, one
    // element) so binary ops and comparisons share the broadcast walk.
    #[allow(clippy::too_many_arguments)]
    fn binary_like<T: Copy + Send>(
        &self,
        a: &FabricTensor,
        b: &FabricTensor,
        shape: &[usize],
        op: &'static str,
        alloc: impl Fn(usize) -> Vec<T>,
        slices: impl Fn(&[f32], &[f32], &mut [T]) + Sync,
        one: impl Fn(f32, f32) -> T + Sync,
    ) -> Result<Vec<T>> {
        let (da, db) = (f32_data(a, op)?, f32_data(b, op)?);
        let la = a.layout().broadcast_to(shape)?;
        let lb = b.layout().broadcast_to(shape)?;
        let n: usize = shape.iter().product();
        let mut out = alloc(n);
        if n == 0 {
            return Ok(out);
        }
        if la.is_contiguous() && lb.is_contiguous() {
            let (sa, sb) = (
                &da[la.offset()..la.offset() + n],
                &db[lb.offset()..lb.offset() + n],
            );
            par_rows(self.config.threads, &mut out, 1, |first, chunk| {
                let len = chunk.len();
                slices(&sa[first..first + len], &sb[first..first + len], chunk)
            });
            return Ok(out);
        }
        let (row_len, ia) = la.inner();
        let (_, ib) = lb.inner();
        par_rows(self.config.threads, &mut out, row_len, |first, chunk| {
            // An operand broadcast along the row (stride 0: `x − mean`, `e ÷ sum`)
            // is spread over a row buffer, so the row still takes the vector kernel;
            // each element is the same one operation either way.
            let mut spread = Vec::new();
            for (i, row) in chunk.chunks_mut(row_len).enumerate() {
                let (oa, ob) = (la.row_offset(first + i), lb.row_offset(first + i));
                match (ia, ib) {
                    (1, 1) => slices(&da[oa..oa + row_len], &db[ob..ob + row_len], row),
                    (1, 0) if row_len > 1 => {
                        spread.clear();
                        spread.resize(row_len, db[ob]);
                        slices(&da[oa..oa + row_len], &spread, row)
                    }
                    (0, 1) if row_len > 1 => {
                        spread.clear();
                        spread.resize(row_len, da[oa]);
                        slices(&spread, &db[ob..ob + row_len], row)
                    }
                    _ => {
                        for (j, o) in row.iter_mut().enumerate() {
                            *o = one(da[oa + j * ia], db[ob + j * ib]);
                        }
                    }
                }
            }
        });
        Ok(out)
    }

    fn reduce(&self, op: ReduceOp, x: &FabricTensor, out_shape: &[usize]) -> Result<FabricTensor> {
        let data = f32_data(x, "reduce")?;
        let l = x.layout();
        let (n, stride) = l.inner();
        let rows: usize = out_shape.iter().product();
        let simd = self.config.simd;
        let row_data = |r: usize| -> Cow<'_, [f32]> {
            if n == 0 {
                return Cow::Borrowed(&[]);
            }
            let off = l.row_offset(r);
            if stride == 1 || n == 1 {
                Cow::Borrowed(&data[off..off + n])
            } else {
                Cow::Owned((0..n).map(|j| data[off + j * stride]).collect())
            }
        };
        // Parallel over rows when the input is large; one output per row.
        let par_threads = if rows * n < PARALLEL_ELEMENTS_MIN {
            1
        } else {
            self.config.threads
        };
        match op {
            ReduceOp::Sum | ReduceOp::Max => {
                let mut out = alloc_f32_zeroed(rows);
                par_rows(par_threads.min(rows.max(1)), &mut out, 1, |first, chunk| {
                    for (i, o) in chunk.iter_mut().enumerate() {
                        let row = row_data(first + i);
                        *o = if op == ReduceOp::Sum {
                            kernels::sum_row(simd, &row)
                        } else {
                            kernels::max_row(simd, &row)
                        };
                    }
                });
                self.out(HostData::F32(out), out_shape, "cpu::reduce")
            }
            ReduceOp::ArgMax => {
                let mut out = vec![0i32; rows];
                par_rows(par_threads.min(rows.max(1)), &mut out, 1, |first, chunk| {
                    for (i, o) in chunk.iter_mut().enumerate() {
                        *o = kernels::argmax_row(&row_data(first + i));
                    }
                });
                self.out(HostData::I32(out), out_shape, "cpu::reduce")
            }
        }
    }

    fn matmul(&self, a: &FabricTensor, b: &FabricTensor, shape: &[usize]) -> Result<FabricTensor> {
        let (da, db) = (f32_data(a, "matmul")?, f32_data(b, "matmul")?);
        let r = shape.len();
        let (m, n) = (shape[r - 2], shape[r - 1]);
        let k = a.shape()[a.shape().len() - 1];
        let batch = &shape[..r - 2];
        let mats_a = batch_views(a, da, batch, m, k)?;
        let mats_b = batch_views(b, db, batch, k, n)?;
        let mut out = alloc_f32_zeroed(shape.iter().product());
        if !out.is_empty() {
            gemm::sgemm_batched(&self.gemm_config(), m, n, k, &mats_a, &mats_b, &mut out);
        }
        self.out(HostData::F32(out), shape, "cpu::matmul")
    }

    fn concat(
        &self,
        inputs: &[&FabricTensor],
        axis: usize,
        dtype: DType,
        shape: &[usize],
    ) -> Result<FabricTensor> {
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let datas: Vec<HostData> = inputs
            .iter()
            .map(|t| Ok(storage_of(t)?.data().gather_layout(t.layout())))
            .collect::<Result<_>>()?;
        let mut out = HostData::zeros(dtype, shape.iter().product());
        let mut pos = 0usize;
        for o in 0..outer {
            for (t, d) in inputs.iter().zip(&datas) {
                let chunk = t.shape()[axis] * inner;
                let src = o * chunk;
                match (&mut out, d) {
                    (HostData::F32(dst), HostData::F32(s)) => {
                        dst[pos..pos + chunk].copy_from_slice(&s[src..src + chunk])
                    }
                    (HostData::U8(dst), HostData::U8(s)) => {
                        dst[pos..pos + chunk].copy_from_slice(&s[src..src + chunk])
                    }
                    (HostData::I32(dst), HostData::I32(s)) => {
                        dst[pos..pos + chunk].copy_from_slice(&s[src..src + chunk])
                    }
                    (HostData::U32(dst), HostData::U32(s)) => {
                        dst[pos..pos + chunk].copy_from_slice(&s[src..src + chunk])
                    }
                    _ => {
                        return Err(TensorError::DTypeMismatch {
                            op: "concat",
                            expected: dtype,
                            got: d.dtype(),
                        });
                    }
                }
                pos += chunk;
            }
        }
        self.out(out, shape, "cpu::concat")
    }
}

fn cast_data(data: &HostData, offsets: impl Iterator<Item = usize>, to: DType) -> HostData {
    let get = |o: usize| match data {
        HostData::F32(v) => Scalar::F32(v[o]),
        HostData::U8(v) => Scalar::U8(v[o]),
        HostData::I32(v) => Scalar::I32(v[o]),
        HostData::U32(v) => Scalar::U32(v[o]),
    };
    let vals = offsets.map(|o| scalar::cast(get(o), to));
    match to {
        DType::F32 => HostData::F32(
            vals.map(|s| if let Scalar::F32(v) = s { v } else { 0.0 })
                .collect(),
        ),
        DType::U8 => HostData::U8(
            vals.map(|s| if let Scalar::U8(v) = s { v } else { 0 })
                .collect(),
        ),
        DType::I32 => HostData::I32(
            vals.map(|s| if let Scalar::I32(v) = s { v } else { 0 })
                .collect(),
        ),
        DType::U32 => HostData::U32(
            vals.map(|s| if let Scalar::U32(v) = s { v } else { 0 })
                .collect(),
        ),
    }
}

impl Fabric for CpuFabric {
    fn name(&self) -> &str {
        "cpu"
    }

    fn device_description(&self) -> String {
        let simd = match self.config.simd {
            Simd::Scalar => "scalar",
            Simd::Avx2Fma => "avx2+fma",
        };
        format!("host CPU ({simd}, {} threads)", self.config.threads)
    }

    fn kernel_variant_digest(&self) -> [u8; 32] {
        // Hashing the sources costs ~0.2 ms; every job run asks.
        static DIGEST: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
        *DIGEST.get_or_init(|| kernel_variant_digest(&KERNEL_SOURCES, RUNTIME_VERSION))
    }

    fn upload(&self, data: &HostData, shape: &[usize]) -> Result<FabricTensor> {
        host_tensor(data.clone(), shape, "Tensor::from_data")
    }

    fn upload_owned(&self, data: HostData, shape: &[usize]) -> Result<FabricTensor> {
        host_tensor(data, shape, "Tensor::from_data")
    }

    fn download(&self, t: &FabricTensor) -> Result<HostData> {
        Ok(storage_of(t)?.data().gather_layout(t.layout()))
    }

    fn digest(&self, t: &FabricTensor) -> Result<[u8; 32]> {
        crate::digest::digest_view(t.shape(), storage_of(t)?.data(), t.layout())
    }

    fn hashes_on_its_workers(&self) -> bool {
        true
    }

    fn trace_leaf(&self, t: &FabricTensor) -> Result<[u8; 32]> {
        let (data, l) = (storage_of(t)?.data(), t.layout());
        if l.is_contiguous() && l.max_offset().is_none_or(|m| m < data.len()) {
            let threads = self.config.threads;
            if let Some(leaf) =
                leaf::trace_leaf_contiguous(threads, t.shape(), data, l.offset(), l.numel())?
            {
                return Ok(leaf);
            }
        }
        crate::digest::trace_leaf_view(t.shape(), data, l)
    }

    fn trace_leaf_deferred(&self, t: &FabricTensor) -> crate::PendingLeaf {
        match leaf::defer(self.config.threads, t) {
            Ok(Some(pending)) => pending,
            Ok(None) => crate::PendingLeaf::ready(self.trace_leaf(t)),
            Err(e) => crate::PendingLeaf::ready(Err(e)),
        }
    }

    fn execute(&self, prim: &Prim, inputs: &[&FabricTensor]) -> Result<FabricTensor> {
        let specs: Vec<(DType, &[usize])> = inputs.iter().map(|t| (t.dtype(), t.shape())).collect();
        let (dtype, shape) = prim.output_spec(&specs)?;
        let simd = self.config.simd;
        match prim {
            Prim::Unary(op) => {
                // One pass: each thread copies a cache-sized block of its chunk and
                // transforms it in place while it is hot.
                let src = contiguous_f32(inputs[0], "unary")?;
                let mut data = alloc_f32_zeroed(src.len());
                par_rows(self.config.threads, &mut data, 1, |first, chunk| {
                    for (i, block) in chunk.chunks_mut(UNARY_BLOCK).enumerate() {
                        let start = first + i * UNARY_BLOCK;
                        block.copy_from_slice(&src[start..start + block.len()]);
                        kernels::unary_inplace(simd, *op, block);
                    }
                });
                self.out(HostData::F32(data), &shape, "cpu::unary")
            }
            Prim::Binary(op) => {
                let out = self.binary_like(
                    inputs[0],
                    inputs[1],
                    &shape,
                    "binary",
                    alloc_f32_zeroed,
                    |a, b, o| kernels::binary_slices(simd, *op, a, b, o),
                    |a, b| scalar::binary(*op, a, b),
                )?;
                self.out(HostData::F32(out), &shape, "cpu::binary")
            }
            Prim::Compare(op) => {
                let out = self.binary_like(
                    inputs[0],
                    inputs[1],
                    &shape,
                    "compare",
                    |n| vec![0u8; n],
                    |a, b, o: &mut [u8]| {
                        for ((o, x), y) in o.iter_mut().zip(a).zip(b) {
                            *o = scalar::compare(*op, *x, *y);
                        }
                    },
                    |a, b| scalar::compare(*op, a, b),
                )?;
                self.out(HostData::U8(out), &shape, "cpu::compare")
            }
            Prim::Select => {
                let HostData::U8(cond) = storage_of(inputs[0])?.data() else {
                    return Err(TensorError::DTypeMismatch {
                        op: "select",
                        expected: DType::U8,
                        got: inputs[0].dtype(),
                    });
                };
                let (da, db) = (
                    f32_data(inputs[1], "select")?,
                    f32_data(inputs[2], "select")?,
                );
                let lc = inputs[0].layout().broadcast_to(&shape)?;
                let la = inputs[1].layout().broadcast_to(&shape)?;
                let lb = inputs[2].layout().broadcast_to(&shape)?;
                // A row (innermost run) at a time, rows split across the threads:
                // each output element is one pick, so the split changes nothing.
                let n: usize = shape.iter().product();
                let mut out = alloc_f32_zeroed(n);
                if n > 0 {
                    let ((len, ic), (_, ia), (_, ib)) = (lc.inner(), la.inner(), lb.inner());
                    par_rows(self.config.threads, &mut out, len, |first, chunk| {
                        for (i, row) in chunk.chunks_mut(len).enumerate() {
                            let r = first + i;
                            let (oc, oa, ob) =
                                (lc.row_offset(r), la.row_offset(r), lb.row_offset(r));
                            for (j, o) in row.iter_mut().enumerate() {
                                *o = if cond[oc + j * ic] != 0 {
                                    da[oa + j * ia]
                                } else {
                                    db[ob + j * ib]
                                };
                            }
                        }
                    });
                }
                self.out(HostData::F32(out), &shape, "cpu::select")
            }
            Prim::Reduce(op) => self.reduce(*op, inputs[0], &shape),
            Prim::Matmul => self.matmul(inputs[0], inputs[1], &shape),
            Prim::Gather => {
                let table = inputs[0];
                let v = table.shape()[0];
                let row: usize = table.shape()[1..].iter().product();
                let idx = index_values(inputs[1], "gather", v)?;
                let t = contiguous_f32(table, "gather")?;
                let mut out = Vec::with_capacity(idx.len() * row);
                for i in idx {
                    out.extend_from_slice(&t[i * row..(i + 1) * row]);
                }
                self.out(HostData::F32(out), &shape, "cpu::gather")
            }
            Prim::IndexAdd { rows } => {
                let idx = index_values(inputs[0], "index_add", *rows)?;
                let src = contiguous_f32(inputs[1], "index_add")?;
                let row: usize = shape[1..].iter().product();
                let mut out = alloc_f32_zeroed(shape.iter().product());
                for (p, &i) in idx.iter().enumerate() {
                    for (o, s) in out[i * row..(i + 1) * row]
                        .iter_mut()
                        .zip(&src[p * row..(p + 1) * row])
                    {
                        *o += *s;
                    }
                }
                self.out(HostData::F32(out), &shape, "cpu::index_add")
            }
            Prim::Concat { axis } => self.concat(inputs, *axis, dtype, &shape),
            Prim::Cast(to) => {
                let x = inputs[0];
                let data = cast_data(storage_of(x)?.data(), x.layout().offsets(), *to);
                self.out(data, &shape, "cpu::cast")
            }
            Prim::Copy => {
                let x = inputs[0];
                let data = storage_of(x)?.data().gather_layout(x.layout());
                self.out(data, &shape, "cpu::copy")
            }
        }
    }
}
