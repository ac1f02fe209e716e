//! The CUDA fabric of BlockTorch: every primitive of [`blocktorch::Prim`] on an NVIDIA
//! GPU, bit-identical with the CPU reference.
//!
//! - The driver and NVRTC are loaded at run time through `cudarc` (`dynamic-loading`):
//!   this crate builds, and its tests run, on machines with no CUDA at all; there
//!   [`CudaFabric::new`] returns a typed error and [`probe`] says why.
//! - The kernels are CUDA C in `kernels/*.cu`, embedded at build time, compiled by NVRTC
//!   at start for the device's architecture with [`NVRTC_OPTIONS`] (no fma contraction,
//!   no flush-to-zero, IEEE division and square root). The sources, the options and the
//!   shared BlockTorch semantics sources define [`Fabric::kernel_variant_digest`].
//! - Every kernel follows `docs/spec/blocktorch-semantics.md`: matmul is one sequential
//!   fma chain per output from +0.0 (tiles split m and n only), reductions use the
//!   canonical 32-lane order (one warp per row), transcendentals are the same
//!   polynomials as `blocktorch::math`, max/min/casts follow `blocktorch::scalar`.
//! - Device buffers are recorded by BlockTorch's allocation profiler exactly like CPU
//!   storage (`alloc`/`free` records with the device name `cuda:N`).
//!
//! `blocktorch::conformance::run_conformance` and
//! `blocktorch::programs::run_random_programs` prove the fabric against the CPU
//! reference (`tests/cuda.rs`, run on a GPU machine; skipped with a message elsewhere).
#![deny(unsafe_code)]

use blocktorch::cpu::KERNEL_SOURCES as SHARED_SOURCES;
use blocktorch::layout::Layout;
use blocktorch::profile::{record, RecordKind};
use blocktorch::{
    kernel_variant_digest, DType, Fabric, FabricTensor, HostData, Prim, ReduceOp, Result,
    TensorError, UnaryOp, RANK_MAX, RUNTIME_VERSION,
};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchArgs, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};

mod driver;
mod kernels;
mod tile;
mod walk;

use driver::{keep_freed_memory, trim_pool};
pub use driver::{nvrtc_available, probe, CUDA_POOL_KEEP_BYTES};
use kernels::unary_code;
pub use kernels::{
    compile_kernels, cuda_kernel_variant_digest, program_source, KERNEL_FILES, NVRTC_OPTIONS,
};
pub use tile::{choose_tile, MatmulTile, MATMUL_TILE_ENV};
use walk::{to_u32, Walk, DST_VIEW};

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// Threads per block of the elementwise, reduction and index kernels.
const BLOCK_THREADS: u32 = 256;
/// Blocks per multiprocessor an elementwise grid is capped at (the kernels loop).
const BLOCKS_PER_SM: u32 = 32;
fn fabric_err(message: impl Into<String>) -> TensorError {
    TensorError::Fabric {
        fabric: "cuda".into(),
        message: message.into(),
    }
}

fn driver_err(what: &str, e: impl fmt::Display) -> TensorError {
    fabric_err(format!("{what}: {e}"))
}

/// How a CUDA fabric runs (default: device 0, the tile chosen per problem).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CudaConfig {
    /// Device ordinal.
    pub ordinal: usize,
    /// Force one matmul tile; `None` picks by problem size.
    pub matmul_tile: Option<MatmulTile>,
}

impl CudaConfig {
    /// Device 0, the matmul tile from [`MATMUL_TILE_ENV`] if set.
    pub fn from_env() -> Result<CudaConfig> {
        let matmul_tile = match std::env::var(MATMUL_TILE_ENV).ok().as_deref() {
            None | Some("") | Some("auto") => None,
            Some(s) => Some(
                MatmulTile::parse(s).ok_or_else(|| TensorError::InvalidArgument {
                    op: "cuda config",
                    message: format!(
                        "{MATMUL_TILE_ENV}={s:?}: expected auto or one of {}",
                        MatmulTile::ALL.map(|t| t.name()).join(", ")
                    ),
                })?,
            ),
        };
        Ok(CudaConfig {
            ordinal: 0,
            matmul_tile,
        })
    }
}

/// Device memory of one dtype.
enum DevData {
    F32(CudaSlice<f32>),
    U8(CudaSlice<u8>),
    I32(CudaSlice<i32>),
    U32(CudaSlice<u32>),
}

/// A buffer in GPU memory, recorded by the allocation profiler.
pub struct CudaBuffer {
    data: DevData,
    len: usize,
    dtype: DType,
    label: &'static str,
    device: String,
}

impl fmt::Debug for CudaBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CudaBuffer")
            .field("device", &self.device)
            .field("dtype", &self.dtype)
            .field("len", &self.len)
            .field("label", &self.label)
            .finish()
    }
}

impl CudaBuffer {
    fn bytes(&self) -> usize {
        self.len * self.dtype.size_bytes()
    }
}

impl Drop for CudaBuffer {
    fn drop(&mut self) {
        record(RecordKind::Free, self.label, self.bytes(), &self.device);
    }
}

impl blocktorch::fabric::FabricBuffer for CudaBuffer {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn device(&self) -> &str {
        &self.device
    }
    fn len(&self) -> usize {
        self.len
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
}

trait PushData<'a> {
    fn data(&mut self, d: &'a DevData) -> &mut Self;
}

impl<'a> PushData<'a> for LaunchArgs<'a> {
    fn data(&mut self, d: &'a DevData) -> &mut Self {
        match d {
            DevData::F32(s) => self.arg(s),
            DevData::U8(s) => self.arg(s),
            DevData::I32(s) => self.arg(s),
            DevData::U32(s) => self.arg(s),
        }
    }
}

struct Kernels {
    unary: CudaFunction,
    binary: CudaFunction,
    compare: CudaFunction,
    select: CudaFunction,
    cast: CudaFunction,
    copy32: CudaFunction,
    copy8: CudaFunction,
    reduce: CudaFunction,
    argmax: CudaFunction,
    gather: CudaFunction,
    index_add: CudaFunction,
    /// Per [`MatmulTile::ALL`]: (vectorised loads, scalar loads, resident blocks per SM).
    matmul: Vec<(CudaFunction, CudaFunction, u32)>,
}

/// The CUDA fabric.
pub struct CudaFabric {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    kernels: Kernels,
    config: CudaConfig,
    device: String,
    description: String,
    sms: u32,
}

impl fmt::Debug for CudaFabric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CudaFabric")
            .field("device", &self.device)
            .field("description", &self.description)
            .finish()
    }
}

impl Drop for CudaFabric {
    fn drop(&mut self) {
        let _ = self.stream.synchronize();
        trim_pool(&self.ctx);
    }
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl CudaFabric {
    /// Opens device `config.ordinal`, compiles the kernels for its architecture and
    /// loads them. A machine without CUDA gets a typed error (see [`probe`]).
    pub fn new(config: CudaConfig) -> Result<CudaFabric> {
        probe().map_err(fabric_err)?;
        let ctx = CudaContext::new(config.ordinal).map_err(|e| driver_err("open device", e))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| driver_err("compute capability", e))?;
        let name = ctx.name().map_err(|e| driver_err("device name", e))?;
        let sms = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map_err(|e| driver_err("multiprocessor count", e))?;
        let ptx = compile_kernels(major, minor)?;
        let module = ctx
            .load_module(ptx)
            .map_err(|e| driver_err("load module", e))?;
        let f = |name: &str| {
            module
                .load_function(name)
                .map_err(|e| driver_err(&format!("load kernel {name}"), e))
        };
        let mut matmul = Vec::new();
        for t in MatmulTile::ALL {
            let (v, sc) = (
                f(&format!("bt_matmul_{}_v", t.name()))?,
                f(&format!("bt_matmul_{}_s", t.name()))?,
            );
            for k in [&v, &sc] {
                k.set_attribute(
                    cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    t.shared_bytes() as i32,
                )
                .map_err(|e| driver_err("shared memory limit", e))?;
            }
            let occupancy = v
                .occupancy_max_active_blocks_per_multiprocessor(
                    t.dims().3,
                    t.shared_bytes() as usize,
                    None,
                )
                .map_err(|e| driver_err("occupancy", e))?;
            matmul.push((v, sc, occupancy.max(1)));
        }
        let kernels = Kernels {
            unary: f("bt_unary")?,
            binary: f("bt_binary")?,
            compare: f("bt_compare")?,
            select: f("bt_select")?,
            cast: f("bt_cast")?,
            copy32: f("bt_copy32")?,
            copy8: f("bt_copy8")?,
            reduce: f("bt_reduce")?,
            argmax: f("bt_argmax")?,
            gather: f("bt_gather")?,
            index_add: f("bt_index_add")?,
            matmul,
        };
        keep_freed_memory(&ctx)?;
        let stream = ctx.default_stream();
        Ok(CudaFabric {
            device: format!("cuda:{}", config.ordinal),
            description: format!(
                "{name} (sm_{major}{minor}, {sms} SMs; kernels compiled by NVRTC for compute_{major}{minor})"
            ),
            sms: sms.max(1) as u32,
            ctx,
            stream,
            kernels,
            config,
        })
    }

    /// Its configuration.
    pub fn config(&self) -> CudaConfig {
        self.config
    }

    /// The CUDA context (for benchmarks that compare against cuBLAS on the same stream).
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The stream every kernel of this fabric runs on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits for every queued kernel (surfacing asynchronous launch errors).
    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| driver_err("synchronize", e))
    }

    fn alloc(&self, dtype: DType, len: usize, label: &'static str) -> Result<Arc<CudaBuffer>> {
        // Zero-length buffers hold one element so every buffer has a device address.
        let cap = len.max(1);
        let s = &self.stream;
        let e = |e| driver_err("allocate device memory", e);
        let data = match dtype {
            DType::F32 => DevData::F32(s.alloc_zeros::<f32>(cap).map_err(e)?),
            DType::U8 => DevData::U8(s.alloc_zeros::<u8>(cap).map_err(e)?),
            DType::I32 => DevData::I32(s.alloc_zeros::<i32>(cap).map_err(e)?),
            DType::U32 => DevData::U32(s.alloc_zeros::<u32>(cap).map_err(e)?),
        };
        Ok(self.wrap(data, dtype, len, label))
    }

    fn wrap(
        &self,
        data: DevData,
        dtype: DType,
        len: usize,
        label: &'static str,
    ) -> Arc<CudaBuffer> {
        let buf = CudaBuffer {
            data,
            len,
            dtype,
            label,
            device: self.device.clone(),
        };
        record(RecordKind::Alloc, label, buf.bytes(), &self.device);
        Arc::new(buf)
    }

    fn upload_u32(&self, v: &[u32], label: &'static str) -> Result<Arc<CudaBuffer>> {
        let data = if v.is_empty() { &[0u32][..] } else { v };
        let s = self
            .stream
            .clone_htod(data)
            .map_err(|e| driver_err("upload", e))?;
        Ok(self.wrap(DevData::U32(s), DType::U32, v.len(), label))
    }

    fn tensor(&self, buf: Arc<CudaBuffer>, shape: &[usize]) -> Result<FabricTensor> {
        FabricTensor::new(buf.dtype, Layout::contiguous(shape)?, buf)
    }

    fn grid(&self, n: usize) -> LaunchConfig {
        let blocks = (n.div_ceil(BLOCK_THREADS as usize) as u32)
            .clamp(1, self.sms.saturating_mul(BLOCKS_PER_SM));
        LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (BLOCK_THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    fn launch(&self, args: &mut LaunchArgs<'_>, cfg: LaunchConfig, what: &str) -> Result<()> {
        driver::launch(args, cfg).map_err(|e| driver_err(what, e))
    }

    /// `t` in logical order, contiguous, in a fresh buffer (`t` itself when it already
    /// is contiguous from offset 0 over its whole buffer).
    fn contiguous(&self, t: &FabricTensor, label: &'static str) -> Result<FabricTensor> {
        let b = self.buffer_of(t)?;
        let n = numel(t.shape());
        if t.layout().is_contiguous() && t.layout().offset() == 0 && b.len == n {
            return Ok(t.clone());
        }
        let out = self.alloc(t.dtype(), n, label)?;
        if n > 0 {
            let w = Walk::new(t.shape())?
                .view(0, t.layout())?
                .contiguous_view(DST_VIEW);
            self.copy_walk(&w, b, &out)?;
        }
        self.tensor(out, t.shape())
    }

    fn copy_walk(&self, w: &Walk, src: &CudaBuffer, dst: &CudaBuffer) -> Result<()> {
        let k = if src.dtype == DType::U8 {
            &self.kernels.copy8
        } else {
            &self.kernels.copy32
        };
        let mut a = self.stream.launch_builder(k);
        a.arg(w).data(&src.data).data(&dst.data);
        self.launch(&mut a, self.grid(w.n as usize), "copy")
    }

    /// Downloads an index tensor and checks every index against `size`, in logical
    /// order, exactly as the CPU fabric does.
    fn checked_indices(&self, t: &FabricTensor, op: &'static str, size: usize) -> Result<Vec<u32>> {
        blocktorch::fabric::checked_rows(self.download(t)?, op, size)
    }

    fn elementwise(
        &self,
        kernel: &CudaFunction,
        op: Option<(i32, Option<f32>)>,
        inputs: &[&FabricTensor],
        shape: &[usize],
        out_dtype: DType,
        label: &'static str,
    ) -> Result<FabricTensor> {
        let n = numel(shape);
        let out = self.alloc(out_dtype, n, label)?;
        if n > 0 {
            let mut w = Walk::new(shape)?;
            for (v, t) in inputs.iter().enumerate() {
                w = w.view(v, &t.layout().broadcast_to(shape)?)?;
            }
            let bufs: Vec<&CudaBuffer> = inputs
                .iter()
                .map(|t| self.buffer_of(t))
                .collect::<Result<_>>()?;
            let mut a = self.stream.launch_builder(kernel);
            a.arg(&w);
            if let Some((code, param)) = op.as_ref() {
                a.arg(code);
                if let Some(p) = param.as_ref() {
                    a.arg(p);
                }
            }
            for b in &bufs {
                a.data(&b.data);
            }
            a.data(&out.data);
            self.launch(&mut a, self.grid(n), label)?;
        }
        self.tensor(out, shape)
    }

    fn reduce(&self, op: ReduceOp, x: &FabricTensor, shape: &[usize]) -> Result<FabricTensor> {
        let l = x.layout();
        let r = l.rank();
        let len = l.shape()[r - 1];
        let istride = if len <= 1 { 0 } else { l.strides()[r - 1] };
        let rows = numel(shape);
        let (dtype, label) = match op {
            ReduceOp::ArgMax => (DType::I32, "cuda::argmax"),
            _ => (DType::F32, "cuda::reduce"),
        };
        let out = self.alloc(dtype, rows, label)?;
        // An empty row (only Sum accepts one) gives +0: the buffer is zeroed and the
        // input, which has no elements, is never described to a kernel.
        if rows > 0 && len > 0 {
            let w = Walk::new(shape)?.view_parts(0, &l.strides()[..r - 1], l.offset())?;
            let (len, istride) = (to_u32(len, "row length")?, to_u32(istride, "stride")?);
            let xb = self.buffer_of(x)?;
            let warps_per_block = (BLOCK_THREADS / 32) as usize;
            let cfg = self.grid(rows.saturating_mul(32).max(warps_per_block * 32));
            let mut a = match op {
                ReduceOp::ArgMax => self.stream.launch_builder(&self.kernels.argmax),
                _ => self.stream.launch_builder(&self.kernels.reduce),
            };
            let code: i32 = if op == ReduceOp::Sum { 0 } else { 1 };
            a.arg(&w);
            if op != ReduceOp::ArgMax {
                a.arg(&code);
            }
            a.arg(&len).arg(&istride).data(&xb.data).data(&out.data);
            self.launch(&mut a, cfg, label)?;
        }
        self.tensor(out, shape)
    }

    /// A matmul operand usable by the kernel (unit column stride), materialised
    /// contiguous when it is not, with its layout broadcast to `batch ++ [rows, cols]`.
    fn matmul_operand(
        &self,
        t: &FabricTensor,
        batch: &[usize],
        rows: usize,
        cols: usize,
    ) -> Result<(FabricTensor, Layout)> {
        let mut full = batch.to_vec();
        full.extend_from_slice(&[rows, cols]);
        let l = t.layout().broadcast_to(&full)?;
        if cols <= 1 || l.strides()[full.len() - 1] == 1 {
            return Ok((t.clone(), l));
        }
        let c = self.contiguous(t, "cuda::matmul_operand")?;
        let l = c.layout().broadcast_to(&full)?;
        Ok((c, l))
    }

    /// The tile this fabric uses for an `m × k · k × n` product over `batch` entries:
    /// the configured one, else [`choose_tile`] with this device's multiprocessor count
    /// and each kernel's occupancy.
    pub fn pick_tile(&self, m: usize, n: usize, k: usize, batch: usize) -> MatmulTile {
        if let Some(t) = self.config.matmul_tile {
            return t;
        }
        let occupancy: Vec<u32> = self.kernels.matmul.iter().map(|(_, _, o)| *o).collect();
        choose_tile(self.sms, &occupancy, m, n, k, batch)
    }

    /// Resident blocks per multiprocessor of each tile's kernel, as the driver reports.
    pub fn matmul_occupancy(&self) -> Vec<(MatmulTile, u32)> {
        MatmulTile::ALL
            .iter()
            .zip(&self.kernels.matmul)
            .map(|(t, (_, _, o))| (*t, *o))
            .collect()
    }

    fn matmul(&self, a: &FabricTensor, b: &FabricTensor, shape: &[usize]) -> Result<FabricTensor> {
        let r = shape.len();
        let (m, n) = (shape[r - 2], shape[r - 1]);
        let k = a.shape()[a.shape().len() - 1];
        let batch = &shape[..r - 2];
        let count = numel(batch);
        let out = self.alloc(DType::F32, numel(shape), "cuda::matmul")?;
        // No outputs, or k = 0 (every output is the empty chain, +0, and the zeroed
        // buffer already holds it): the operands are never described to a kernel.
        if numel(shape) == 0 || k == 0 {
            return self.tensor(out, shape);
        }
        let (at, la) = self.matmul_operand(a, batch, m, k)?;
        let (bt, lb) = self.matmul_operand(b, batch, k, n)?;
        let lda = if m <= 1 { k } else { la.strides()[r - 2] };
        let ldb = if k <= 1 { n } else { lb.strides()[r - 2] };
        let w = Walk::new(batch)?
            .view_parts(0, &la.strides()[..r - 2], la.offset())?
            .view_parts(1, &lb.strides()[..r - 2], lb.offset())?;
        let aligned = |w: &Walk, v: usize, ld: usize| {
            ld.is_multiple_of(4)
                && w.off[v].is_multiple_of(4)
                && (0..w.rank as usize).all(|d| w.stride[v][d].is_multiple_of(4))
        };
        let vec = aligned(&w, 0, lda) && aligned(&w, 1, ldb);
        let tile = self.pick_tile(m, n, k, count);
        let (bm, bn, _, threads) = tile.dims();
        let blocks = m.div_ceil(bm as usize) * n.div_ceil(bn as usize) * count;
        let blocks = u32::try_from(blocks)
            .ok()
            .filter(|b| *b <= i32::MAX as u32)
            .ok_or_else(|| fabric_err(format!("matmul grid of {blocks} blocks is too large")))?;
        let idx = MatmulTile::ALL.iter().position(|t| *t == tile).unwrap_or(0);
        let (kv, ks, _) = &self.kernels.matmul[idx];
        let (ab, bb) = (self.buffer_of(&at)?, self.buffer_of(&bt)?);
        let (m32, n32, k32) = (to_u32(m, "m")?, to_u32(n, "n")?, to_u32(k, "k")?);
        let (lda, ldb) = (to_u32(lda, "lda")?, to_u32(ldb, "ldb")?);
        let mut args = self.stream.launch_builder(if vec { kv } else { ks });
        args.arg(&w)
            .data(&ab.data)
            .data(&bb.data)
            .data(&out.data)
            .arg(&m32)
            .arg(&n32)
            .arg(&k32)
            .arg(&lda)
            .arg(&ldb);
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: tile.shared_bytes(),
        };
        self.launch(&mut args, cfg, "matmul")?;
        self.tensor(out, shape)
    }

    fn gather(
        &self,
        table: &FabricTensor,
        idx: &FabricTensor,
        shape: &[usize],
    ) -> Result<FabricTensor> {
        let v = table.shape()[0];
        let row: usize = table.shape()[1..].iter().product();
        let rows = self.checked_indices(idx, "gather", v)?;
        let t = self.contiguous_f32_view(table)?;
        let n = numel(shape);
        let out = self.alloc(DType::F32, n, "cuda::gather")?;
        if n > 0 {
            let rb = self.upload_u32(&rows, "cuda::gather_rows")?;
            let tb = self.buffer_of(&t)?;
            let (n32, row32, toff) = (
                to_u32(n, "elements")?,
                to_u32(row, "row")?,
                to_u32(t.layout().offset(), "offset")?,
            );
            let mut a = self.stream.launch_builder(&self.kernels.gather);
            a.arg(&n32)
                .arg(&row32)
                .data(&rb.data)
                .data(&tb.data)
                .arg(&toff)
                .data(&out.data);
            self.launch(&mut a, self.grid(n), "gather")?;
        }
        self.tensor(out, shape)
    }

    /// `t` if it is contiguous from some offset, else a contiguous copy.
    fn contiguous_f32_view(&self, t: &FabricTensor) -> Result<FabricTensor> {
        if t.layout().is_contiguous() {
            Ok(t.clone())
        } else {
            self.contiguous(t, "cuda::contiguous")
        }
    }

    fn index_add(
        &self,
        idx: &FabricTensor,
        src: &FabricTensor,
        rows: usize,
        shape: &[usize],
    ) -> Result<FabricTensor> {
        let positions_of = self.checked_indices(idx, "index_add", rows)?;
        let s = self.contiguous_f32_view(src)?;
        let row: usize = shape[1..].iter().product();
        let n = numel(shape);
        let out = self.alloc(DType::F32, n, "cuda::index_add")?;
        if n > 0 {
            // CSR by target row, positions in increasing order.
            let (start, positions) = blocktorch::fabric::index_add_csr(&positions_of, rows);
            let sb = self.upload_u32(&start, "cuda::index_add_rows")?;
            let pb = self.upload_u32(&positions, "cuda::index_add_positions")?;
            let srcb = self.buffer_of(&s)?;
            let (n32, row32, soff) = (
                to_u32(n, "elements")?,
                to_u32(row, "row")?,
                to_u32(s.layout().offset(), "offset")?,
            );
            let mut a = self.stream.launch_builder(&self.kernels.index_add);
            a.arg(&n32)
                .arg(&row32)
                .data(&sb.data)
                .data(&pb.data)
                .data(&srcb.data)
                .arg(&soff)
                .data(&out.data);
            self.launch(&mut a, self.grid(n), "index_add")?;
        }
        self.tensor(out, shape)
    }

    fn concat(
        &self,
        inputs: &[&FabricTensor],
        axis: usize,
        dtype: DType,
        shape: &[usize],
    ) -> Result<FabricTensor> {
        let out = self.alloc(dtype, numel(shape), "cuda::concat")?;
        let out_strides = Layout::contiguous(shape)?.strides().to_vec();
        let inner: usize = shape[axis + 1..].iter().product();
        let mut pos = 0usize;
        for t in inputs {
            let n = numel(t.shape());
            if n > 0 {
                let w = Walk::new(t.shape())?.view(0, t.layout())?.view_parts(
                    DST_VIEW,
                    &out_strides,
                    pos * inner,
                )?;
                self.copy_walk(&w, self.buffer_of(t)?, &out)?;
            }
            pos += t.shape()[axis];
        }
        self.tensor(out, shape)
    }

    fn cast(&self, x: &FabricTensor, to: DType, shape: &[usize]) -> Result<FabricTensor> {
        let n = numel(shape);
        let out = self.alloc(to, n, "cuda::cast")?;
        if n > 0 {
            let w = Walk::new(shape)?.view(0, x.layout())?;
            let (from, to) = (x.dtype().tag() as i32, to.tag() as i32);
            let xb = self.buffer_of(x)?;
            let mut a = self.stream.launch_builder(&self.kernels.cast);
            a.arg(&w).arg(&from).arg(&to).data(&xb.data).data(&out.data);
            self.launch(&mut a, self.grid(n), "cast")?;
        }
        self.tensor(out, shape)
    }
}

impl CudaFabric {
    /// The CUDA buffer behind `t`, refused unless it lives on this fabric's device (a
    /// pointer from another device or from the host must never reach a kernel).
    fn buffer_of<'t>(&self, t: &'t FabricTensor) -> Result<&'t CudaBuffer> {
        let b = t
            .buffer()
            .as_any()
            .downcast_ref::<CudaBuffer>()
            .ok_or_else(|| {
                fabric_err(format!(
                    "tensor lives on device {}, not on a CUDA device",
                    t.buffer().device()
                ))
            })?;
        if b.device != self.device {
            return Err(fabric_err(format!(
                "tensor lives on {}, this fabric runs on {}",
                b.device, self.device
            )));
        }
        Ok(b)
    }
}

impl Fabric for CudaFabric {
    fn name(&self) -> &str {
        "cuda"
    }

    fn device_description(&self) -> String {
        self.description.clone()
    }

    fn kernel_variant_digest(&self) -> [u8; 32] {
        cuda_kernel_variant_digest()
    }

    fn upload(&self, data: &HostData, shape: &[usize]) -> Result<FabricTensor> {
        let layout = data.layout_as(shape)?;
        let s = &self.stream;
        let e = |e| driver_err("upload", e);
        let len = data.len();
        let dev = match data {
            HostData::F32(v) => DevData::F32(
                s.clone_htod(if v.is_empty() { &[0.0][..] } else { v })
                    .map_err(e)?,
            ),
            HostData::U8(v) => DevData::U8(
                s.clone_htod(if v.is_empty() { &[0][..] } else { v })
                    .map_err(e)?,
            ),
            HostData::I32(v) => DevData::I32(
                s.clone_htod(if v.is_empty() { &[0][..] } else { v })
                    .map_err(e)?,
            ),
            HostData::U32(v) => DevData::U32(
                s.clone_htod(if v.is_empty() { &[0][..] } else { v })
                    .map_err(e)?,
            ),
        };
        let buf = self.wrap(dev, data.dtype(), len, "Tensor::from_data");
        FabricTensor::new(data.dtype(), layout, buf)
    }

    fn download(&self, t: &FabricTensor) -> Result<HostData> {
        let n = numel(t.shape());
        if n == 0 {
            return Ok(HostData::zeros(t.dtype(), 0));
        }
        let c = if t.layout().is_contiguous() {
            t.clone()
        } else {
            self.contiguous(t, "cuda::download")?
        };
        let b = self.buffer_of(&c)?;
        let off = c.layout().offset();
        let s = &self.stream;
        let e = |e| driver_err("download", e);
        Ok(match &b.data {
            DevData::F32(d) => HostData::F32(s.clone_dtoh(&d.slice(off..off + n)).map_err(e)?),
            DevData::U8(d) => HostData::U8(s.clone_dtoh(&d.slice(off..off + n)).map_err(e)?),
            DevData::I32(d) => HostData::I32(s.clone_dtoh(&d.slice(off..off + n)).map_err(e)?),
            DevData::U32(d) => HostData::U32(s.clone_dtoh(&d.slice(off..off + n)).map_err(e)?),
        })
    }

    fn execute(&self, prim: &Prim, inputs: &[&FabricTensor]) -> Result<FabricTensor> {
        let specs: Vec<(DType, &[usize])> = inputs.iter().map(|t| (t.dtype(), t.shape())).collect();
        let (dtype, shape) = prim.output_spec(&specs)?;
        for t in inputs {
            self.buffer_of(t)?;
        }
        let k = &self.kernels;
        match prim {
            Prim::Unary(op) => {
                let (code, p) = unary_code(*op);
                self.elementwise(
                    &k.unary,
                    Some((code, Some(p))),
                    inputs,
                    &shape,
                    dtype,
                    "cuda::unary",
                )
            }
            Prim::Binary(op) => {
                let code = blocktorch::BinaryOp::ALL
                    .iter()
                    .position(|o| o == op)
                    .unwrap_or(0) as i32;
                self.elementwise(
                    &k.binary,
                    Some((code, None)),
                    inputs,
                    &shape,
                    dtype,
                    "cuda::binary",
                )
            }
            Prim::Compare(op) => {
                let code = blocktorch::CompareOp::ALL
                    .iter()
                    .position(|o| o == op)
                    .unwrap_or(0) as i32;
                self.elementwise(
                    &k.compare,
                    Some((code, None)),
                    inputs,
                    &shape,
                    dtype,
                    "cuda::compare",
                )
            }
            Prim::Select => {
                self.elementwise(&k.select, None, inputs, &shape, dtype, "cuda::select")
            }
            Prim::Reduce(op) => self.reduce(*op, inputs[0], &shape),
            Prim::Matmul => self.matmul(inputs[0], inputs[1], &shape),
            Prim::Gather => self.gather(inputs[0], inputs[1], &shape),
            Prim::IndexAdd { rows } => self.index_add(inputs[0], inputs[1], *rows, &shape),
            Prim::Concat { axis } => self.concat(inputs, *axis, dtype, &shape),
            Prim::Cast(to) => self.cast(inputs[0], *to, &shape),
            Prim::Copy => {
                let x = inputs[0];
                let n = numel(&shape);
                let out = self.alloc(dtype, n, "cuda::copy")?;
                if n > 0 {
                    let w = Walk::new(&shape)?
                        .view(0, x.layout())?
                        .contiguous_view(DST_VIEW);
                    self.copy_walk(&w, self.buffer_of(x)?, &out)?;
                }
                self.tensor(out, &shape)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The H100 of BENCHMARKS.md: 132 SMs; one block of each large tile fits, six of
    /// the small one.
    const H100: (u32, [u32; 3]) = (132, [1, 1, 6]);

    #[test]
    fn tile_choice_follows_the_measured_h100_sweep() {
        let pick = |m, n, k, b| choose_tile(H100.0, &H100.1, m, n, k, b);
        // Large squares: the widest tile was fastest (BENCHMARKS.md, issue 9 sweep).
        assert_eq!(pick(8192, 8192, 8192, 1), MatmulTile::T128x256x16);
        assert_eq!(pick(4096, 4096, 4096, 1), MatmulTile::T128x256x16);
        assert_eq!(pick(2048, 2048, 2048, 1), MatmulTile::T128x256x16);
        assert_eq!(pick(4096, 3072, 768, 1), MatmulTile::T128x256x16);
        // Few large tiles (wave quantisation) or short k: the small tile.
        assert_eq!(pick(1024, 1024, 1024, 1), MatmulTile::T64x64x8);
        assert_eq!(pick(4096, 768, 3072, 1), MatmulTile::T64x64x8);
        assert_eq!(pick(512, 64, 512, 96), MatmulTile::T64x64x8);
        assert_eq!(pick(1, 1, 1, 1), MatmulTile::T64x64x8);
    }

    #[test]
    fn walk_marks_contiguous_views_and_zeroes_unit_dims() {
        let w = Walk::new(&[2, 1, 3])
            .and_then(|w| w.view_parts(0, &[3, 99, 1], 5))
            .and_then(|w| w.view_parts(1, &[1, 0, 2], 0))
            .expect("walk");
        assert_eq!(w.n, 6);
        assert_eq!(w.contig & 1, 1, "row-major strides are contiguous");
        assert_eq!(w.contig & 2, 0, "a transposed view is not");
        assert_eq!(
            w.stride[0],
            [3, 0, 1, 0, 0, 0, 0, 0],
            "size-1 dims get stride 0"
        );
        assert_eq!(w.off[0], 5);
        assert!(
            Walk::new(&[1usize << 33]).is_err(),
            "past 32-bit indices is refused"
        );
    }
}
