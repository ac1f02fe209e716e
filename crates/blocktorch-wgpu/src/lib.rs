//! The WebGPU fabric of BlockTorch: every primitive of [`blocktorch::Prim`] in WGSL
//! through `wgpu` (Vulkan, Metal, DirectX 12), bit-identical with the CPU reference.
//!
//! - WGSL allows an implementation to flush subnormals, contract `a * b + c`, divide
//!   and take square roots to a few ULP and assume no infinity or NaN occurs. The
//!   reference allows none of it. So the kernels never execute a floating-point
//!   instruction: an f32 travels as its bits in a `u32`, and every IEEE operation the
//!   spec names is computed from integer operations, which WGSL defines exactly
//!   (`kernels/soft.wgsl`). The transcendentals are the reference's polynomials on those
//!   operations (`kernels/math.wgsl`). No driver, vendor or compiler flag can change a
//!   bit; `docs/wgpu-fabric.md` says how each rule of the semantics is kept.
//! - The kernels need no optional feature, only storage buffers in compute shaders.
//!   An adapter whose limits cannot run them (fewer than five storage buffers per
//!   stage, workgroups under 64 invocations) is refused at start with a typed error,
//!   and so is one that fails the start-up self-check ([`WgpuFabric::new`]).
//! - Every tensor is an array of 32-bit words on the device (a `u8` widened to one
//!   word); buffers are recorded by the allocation profiler with the device `wgpu:0`.
//!
//! `blocktorch::conformance::run_conformance` and
//! `blocktorch::programs::run_random_programs` prove the fabric against the CPU
//! reference (`tests/wgpu.rs`; on Mesa's software Vulkan driver, lavapipe, in CI).
#![forbid(unsafe_code)]

use blocktorch::cpu::KERNEL_SOURCES as SHARED_SOURCES;
use blocktorch::layout::{contiguous_strides, Layout};
use blocktorch::profile::{record, RecordKind};
use blocktorch::scalar::POW_INT_MAX;
use blocktorch::{
    kernel_variant_digest, BinaryOp, CompareOp, DType, Fabric, FabricTensor, HostData, Prim,
    ReduceOp, Result, TensorError, UnaryOp, RUNTIME_VERSION,
};
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt as _;

mod params;

use params::{to_u32, Params, DST_VIEW};

/// The WGSL sources, in the order they are concatenated into one shader module. With
/// the host code and the shared semantics sources they define the kernel variant
/// digest.
pub const KERNEL_FILES: [(&str, &str); 7] = [
    ("kernels/soft.wgsl", include_str!("../kernels/soft.wgsl")),
    ("kernels/math.wgsl", include_str!("../kernels/math.wgsl")),
    (
        "kernels/common.wgsl",
        include_str!("../kernels/common.wgsl"),
    ),
    (
        "kernels/elementwise.wgsl",
        include_str!("../kernels/elementwise.wgsl"),
    ),
    (
        "kernels/reduce.wgsl",
        include_str!("../kernels/reduce.wgsl"),
    ),
    ("kernels/index.wgsl", include_str!("../kernels/index.wgsl")),
    (
        "kernels/matmul.wgsl",
        include_str!("../kernels/matmul.wgsl"),
    ),
];

/// The environment variable that picks an adapter by a part of its name
/// (case-insensitive), e.g. `llvmpipe` or `nvidia`.
pub const ADAPTER_ENV: &str = "TB_WGPU_ADAPTER";

/// Invocations per workgroup of the elementwise, index and matmul kernels.
const WORKGROUP: usize = 64;
/// Storage buffers one kernel binds (parameters, three inputs, the output).
const BINDINGS: u32 = 5;

fn fabric_err(message: impl Into<String>) -> TensorError {
    TensorError::Fabric {
        fabric: "wgpu".into(),
        message: message.into(),
    }
}

/// The whole shader module: the kernel files concatenated in order.
pub fn program_source() -> String {
    blocktorch::fabric::concat_sources(&KERNEL_FILES)
}

/// The kernel variant digest of the wgpu fabric: its WGSL sources, its host code and the
/// shared BlockTorch semantics sources (everything the CPU fabric's digest covers except
/// the CPU kernels), with the runtime version stamp. It does not depend on the adapter:
/// the kernels compute the same bits on every one.
pub fn wgpu_kernel_variant_digest() -> [u8; 32] {
    let mut sources: Vec<(&str, &str)> = KERNEL_FILES.to_vec();
    sources.push(("blocktorch-wgpu/lib.rs", include_str!("lib.rs")));
    sources.push(("blocktorch-wgpu/params.rs", include_str!("params.rs")));
    sources.extend(
        SHARED_SOURCES
            .iter()
            .filter(|(name, _)| !name.starts_with("cpu/"))
            .copied(),
    );
    kernel_variant_digest(&sources, RUNTIME_VERSION)
}

/// Which adapter a wgpu fabric runs on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WgpuConfig {
    /// A part of the adapter's name (case-insensitive); `None` takes the first
    /// discrete GPU, else integrated, virtual, then a CPU (software) adapter.
    pub adapter: Option<String>,
}

impl WgpuConfig {
    /// The adapter from [`ADAPTER_ENV`] if set.
    pub fn from_env() -> WgpuConfig {
        WgpuConfig {
            adapter: std::env::var(ADAPTER_ENV)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        }
    }
}

fn adapter_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12,
        flags: wgpu::InstanceFlags::empty(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    })
}

fn pick_adapter(instance: &wgpu::Instance, config: &WgpuConfig) -> Result<wgpu::Adapter> {
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    if adapters.is_empty() {
        return Err(fabric_err(
            "no WebGPU adapter (no Vulkan, Metal or DirectX 12 driver; on Linux without a GPU install Mesa's lavapipe, Debian package mesa-vulkan-drivers)",
        ));
    }
    let names: Vec<String> = adapters
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!("{} ({:?})", i.name, i.backend)
        })
        .collect();
    let chosen = match &config.adapter {
        Some(want) => {
            let want = want.to_lowercase();
            adapters
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&want))
                .ok_or_else(|| {
                    fabric_err(format!(
                        "no adapter's name contains {want:?}; adapters: {}",
                        names.join(", ")
                    ))
                })?
        }
        None => adapters
            .into_iter()
            .min_by_key(|a| adapter_rank(a.get_info().device_type))
            .ok_or_else(|| fabric_err("no WebGPU adapter"))?,
    };
    Ok(chosen)
}

/// Turns off Mesa's implicit Vulkan device-select layer for this process unless the
/// user set `NODEVICE_SELECT` themselves. The layer orders devices by connecting to a
/// Wayland or X11 display, and on a headless machine it prints
/// `error: XDG_RUNTIME_DIR is invalid…` to stderr at every instance; the fabric picks
/// its adapter itself ([`WgpuConfig`]), so the layer adds nothing. It changes the
/// process environment, so a binary calls it first thing in `main`, before any thread
/// starts (`tb-cli`, `the-block` and `tb-bench` do).
pub fn quiet_device_select_layer() {
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

/// Whether a wgpu fabric can start here: the adapter it would use, or why not. Cheap
/// enough for a test to decide whether to skip (it compiles no kernel).
pub fn probe() -> std::result::Result<String, String> {
    let instance = instance();
    let adapter = pick_adapter(&instance, &WgpuConfig::from_env()).map_err(|e| e.to_string())?;
    check_limits(&adapter).map_err(|e| e.to_string())?;
    let info = adapter.get_info();
    Ok(format!("{} ({:?})", info.name, info.backend))
}

fn check_limits(adapter: &wgpu::Adapter) -> Result<()> {
    let l = adapter.limits();
    let name = adapter.get_info().name;
    let mut missing = Vec::new();
    if l.max_storage_buffers_per_shader_stage < BINDINGS {
        missing.push(format!(
            "{BINDINGS} storage buffers per stage (has {})",
            l.max_storage_buffers_per_shader_stage
        ));
    }
    if l.max_compute_invocations_per_workgroup < WORKGROUP as u32
        || l.max_compute_workgroup_size_x < WORKGROUP as u32
    {
        missing.push(format!(
            "workgroups of {WORKGROUP} invocations (has {})",
            l.max_compute_invocations_per_workgroup
        ));
    }
    if l.max_compute_workgroups_per_dimension == 0 {
        missing.push("compute dispatches".into());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(fabric_err(format!(
            "adapter {name} cannot run the BlockTorch kernels: it lacks {}",
            missing.join(", ")
        )))
    }
}

/// A buffer in device memory (one 32-bit word per element), recorded by the allocation
/// profiler.
pub struct WgpuBuffer {
    buffer: wgpu::Buffer,
    len: usize,
    dtype: DType,
    label: &'static str,
    device: String,
}

impl fmt::Debug for WgpuBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WgpuBuffer")
            .field("device", &self.device)
            .field("dtype", &self.dtype)
            .field("len", &self.len)
            .field("label", &self.label)
            .finish()
    }
}

impl WgpuBuffer {
    fn bytes(&self) -> usize {
        self.len * self.dtype.size_bytes()
    }
}

impl Drop for WgpuBuffer {
    fn drop(&mut self) {
        record(RecordKind::Free, self.label, self.bytes(), &self.device);
    }
}

impl blocktorch::fabric::FabricBuffer for WgpuBuffer {
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

/// The wgpu fabric.
pub struct WgpuFabric {
    device: wgpu::Device,
    queue: wgpu::Queue,
    module: wgpu::ShaderModule,
    bind_layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    pipelines: Mutex<HashMap<(&'static str, u32), wgpu::ComputePipeline>>,
    /// Bound to the input slots a kernel does not read.
    unused: wgpu::Buffer,
    /// The first error the device reported outside an error scope.
    error: Arc<Mutex<Option<String>>>,
    limits: wgpu::Limits,
    device_name: String,
    description: String,
}

impl fmt::Debug for WgpuFabric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WgpuFabric")
            .field("device", &self.device_name)
            .field("description", &self.description)
            .finish()
    }
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The kernel's code for a unary op and its `pow_scalar` arguments (mode, |n|, negative,
/// exponent bits), decided on the host exactly as `blocktorch::scalar::pow_scalar`
/// decides its case.
fn unary_code(op: UnaryOp) -> (u32, [u32; 4]) {
    let code = match op {
        UnaryOp::Neg => 0,
        UnaryOp::Abs => 1,
        UnaryOp::Exp => 2,
        UnaryOp::Log => 3,
        UnaryOp::Sqrt => 4,
        UnaryOp::Rsqrt => 5,
        UnaryOp::Recip => 6,
        UnaryOp::Tanh => 7,
        UnaryOp::Sigmoid => 8,
        UnaryOp::Relu => 9,
        UnaryOp::GeluTanh => 10,
        UnaryOp::GeluErf => 11,
        UnaryOp::Erf => 12,
        UnaryOp::Sign => 13,
        UnaryOp::PowScalar(p) => {
            let args = if p == 0.0 {
                [0, 0, 0, 0]
            } else if p == 1.0 {
                [1, 0, 0, 0]
            } else if p == 2.0 {
                [2, 0, 0, 0]
            } else if p == 0.5 {
                [3, 0, 0, 0]
            } else if p == -1.0 {
                [4, 0, 0, 0]
            } else if p.abs() <= POW_INT_MAX && p == (p as i32) as f32 {
                [5, p.abs() as u32, (p < 0.0) as u32, 0]
            } else {
                [6, 0, 0, p.to_bits()]
            };
            return (14, args);
        }
    };
    (code, [0; 4])
}

impl WgpuFabric {
    /// Opens the adapter `config` names (or the best one), compiles nothing yet
    /// (pipelines are built on first use and cached) and runs the self-check: a few
    /// hundred edge-case operands through add, mul, div, sqrt and exp against the CPU
    /// reference. An adapter that gets one bit wrong is refused.
    pub fn new(config: WgpuConfig) -> Result<WgpuFabric> {
        let instance = instance();
        let adapter = pick_adapter(&instance, &config)?;
        check_limits(&adapter)?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("blocktorch"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..wgpu::DeviceDescriptor::default()
        }))
        .map_err(|e| fabric_err(format!("open adapter {}: {e}", info.name)))?;
        let error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let slot = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut s) = slot.lock() {
                s.get_or_insert_with(|| e.to_string());
            }
        }));
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("blocktorch kernels"),
            source: wgpu::ShaderSource::Wgsl(program_source().into()),
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(fabric_err(format!("the WGSL kernels do not compile: {e}")));
        }
        let entry = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let bind_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("blocktorch bindings"),
            entries: &[
                entry(0, true),
                entry(1, true),
                entry(2, true),
                entry(3, true),
                entry(4, false),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("blocktorch"),
            bind_group_layouts: &[Some(&bind_layout)],
            immediate_size: 0,
        });
        let unused = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("unused binding"),
            size: 4,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let fabric = WgpuFabric {
            description: format!(
                "{} ({:?} {:?}, driver {} {}); IEEE binary32 emulated in integer WGSL",
                info.name, info.backend, info.device_type, info.driver, info.driver_info
            )
            .replace(",  ", ", ")
            .replace("driver  ", "driver "),
            device_name: "wgpu:0".into(),
            device,
            queue,
            module,
            bind_layout,
            pipeline_layout,
            pipelines: Mutex::new(HashMap::new()),
            unused,
            error,
            limits,
        };
        fabric.self_check()?;
        Ok(fabric)
    }

    /// Runs edge-case operands (zeros, subnormals, the extremes, infinities, NaN, and
    /// values around 1) through the IEEE cores and compares with the CPU reference.
    fn self_check(&self) -> Result<()> {
        let mut bits: Vec<u32> = vec![
            0x0000_0000,
            0x8000_0000,
            0x0000_0001,
            0x8000_0001,
            0x007f_ffff,
            0x0080_0000,
            0x0080_0001,
            0x3f7f_ffff,
            0x3f80_0000,
            0x3f80_0001,
            0x4000_0000,
            0x7f7f_ffff,
            0xff7f_ffff,
            0x7f80_0000,
            0xff80_0000,
            0x7fc0_0000,
            0x3eaa_aaab,
            0x4049_0fdb,
            0x42b1_7218,
            0xc2ce_8ed0,
            0x3400_0000,
            0x4b80_0000,
        ];
        let n = bits.len();
        let mut rotated = bits.clone();
        rotated.rotate_left(7);
        bits.extend_from_slice(&rotated);
        let a: Vec<f32> = bits[..n].iter().map(|b| f32::from_bits(*b)).collect();
        let b: Vec<f32> = bits[n..].iter().map(|b| f32::from_bits(*b)).collect();
        // Every pair: a as rows, b as columns, broadcast.
        let cpu = blocktorch::CpuFabric::reference();
        let run =
            |f: &dyn Fabric, prim: &Prim, inputs: &[(&[f32], &[usize])]| -> Result<HostData> {
                let ts: Vec<FabricTensor> = inputs
                    .iter()
                    .map(|(v, s)| f.upload(&HostData::F32(v.to_vec()), s))
                    .collect::<Result<_>>()?;
                let refs: Vec<&FabricTensor> = ts.iter().collect();
                f.download(&f.execute(prim, &refs)?)
            };
        // The binary ops take every pair (a column against a row). The matmul
        // [n, 2] x [2, n] runs, per output, fma(a_i, b_j, +0) then fma(b_i, a_j, that):
        // an fma with every kind of addend.
        let pairs: Vec<f32> = a.iter().zip(&b).flat_map(|(x, y)| [*x, *y]).collect();
        let rows: Vec<f32> = b.iter().chain(&a).copied().collect();
        let (column, row, flat, two_cols, two_rows) = ([n, 1], [1, n], [n], [n, 2], [2, n]);
        let checks = [
            Prim::Binary(BinaryOp::Add),
            Prim::Binary(BinaryOp::Mul),
            Prim::Binary(BinaryOp::Div),
            Prim::Matmul,
            Prim::Unary(UnaryOp::Sqrt),
            Prim::Unary(UnaryOp::Exp),
        ];
        for prim in checks {
            let inputs: Vec<(&[f32], &[usize])> = match prim {
                Prim::Binary(_) => vec![(&a[..], &column[..]), (&b[..], &row[..])],
                Prim::Matmul => vec![(&pairs[..], &two_cols[..]), (&rows[..], &two_rows[..])],
                _ => vec![(&a[..], &flat[..])],
            };
            let want = run(&cpu, &prim, &inputs)?;
            let got = run(self, &prim, &inputs)?;
            let canon = |h: &HostData| -> Vec<u32> {
                match h {
                    HostData::F32(v) => v
                        .iter()
                        .map(|x| blocktorch::canonical_f32_bits(*x))
                        .collect(),
                    _ => Vec::new(),
                }
            };
            if canon(&want) != canon(&got) {
                return Err(fabric_err(format!(
                    "adapter {} failed the self-check on {prim:?}: its results differ from the CPU reference, so it is refused",
                    self.description
                )));
            }
        }
        Ok(())
    }

    /// Every (kernel, operation) pipeline the primitives can ask for.
    pub fn pipeline_keys() -> Vec<(&'static str, u32)> {
        let mut keys: Vec<(&'static str, u32)> = Vec::new();
        keys.extend((0..=14).map(|op| ("k_unary", op)));
        keys.extend((0..BinaryOp::ALL.len() as u32).map(|op| ("k_binary", op)));
        keys.extend((0..CompareOp::ALL.len() as u32).map(|op| ("k_compare", op)));
        for from in DType::ALL {
            for to in DType::ALL {
                keys.push(("k_cast", u32::from(from.tag()) * 8 + u32::from(to.tag())));
            }
        }
        keys.extend([
            ("k_select", 0),
            ("k_copy", 0),
            ("k_reduce", 0),
            ("k_reduce", 1),
            ("k_argmax", 0),
            ("k_matmul", 0),
            ("k_gather", 0),
            ("k_index_add", 0),
        ]);
        keys
    }

    /// Builds every pipeline now, so that no job pays for a driver's shader compiler
    /// (lavapipe takes a noticeable time per pipeline, and a provider's first job must
    /// not miss its latency window for it). Returns how many were built.
    /// The pipelines are built on as many threads as the machine has cores.
    pub fn warm_up(&self) -> Result<usize> {
        let keys = Self::pipeline_keys();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let share = keys.len().div_ceil(threads.max(1));
        std::thread::scope(|s| {
            let workers: Vec<_> = keys
                .chunks(share.max(1))
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .try_for_each(|(entry, op)| self.pipeline(entry, *op).map(|_| ()))
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|w| {
                w.join()
                    .map_err(|_| fabric_err("a pipeline-building thread panicked"))?
            })
        })?;
        Ok(keys.len())
    }

    /// The adapter's limits the fabric runs under.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Waits until every submitted dispatch has finished.
    pub fn synchronize(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| fabric_err(format!("wait for the device: {e}")))?;
        self.check_error()
    }

    fn check_error(&self) -> Result<()> {
        let taken = self.error.lock().ok().and_then(|mut s| s.take());
        match taken {
            Some(e) => Err(fabric_err(e)),
            None => Ok(()),
        }
    }

    fn pipeline(&self, entry: &'static str, op: u32) -> Result<wgpu::ComputePipeline> {
        let cache = || {
            self.pipelines
                .lock()
                .map_err(|_| fabric_err("pipeline cache poisoned"))
        };
        if let Some(p) = cache()?.get(&(entry, op)) {
            return Ok(p.clone());
        }
        // Built outside the lock, so that threads compile different pipelines at once;
        // two threads that build the same one keep the first.
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let constants = [("OP", f64::from(op))];
        let p = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&self.pipeline_layout),
                module: &self.module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constants,
                    zero_initialize_workgroup_memory: true,
                },
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(fabric_err(format!("pipeline {entry} (op {op}): {e}")));
        }
        Ok(cache()?.entry((entry, op)).or_insert(p).clone())
    }

    fn alloc(&self, dtype: DType, len: usize, label: &'static str) -> Result<Arc<WgpuBuffer>> {
        // Zero-length buffers hold one word so every binding has a size.
        let bytes = (len.max(1) as u64).saturating_mul(4);
        let cap = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        if bytes > cap {
            return Err(fabric_err(format!(
                "a tensor of {len} elements needs {bytes} bytes; the adapter binds at most {cap} bytes per buffer"
            )));
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(fabric_err(format!("allocate {bytes} bytes: {e}")));
        }
        Ok(self.wrap(buffer, dtype, len, label))
    }

    fn wrap(
        &self,
        buffer: wgpu::Buffer,
        dtype: DType,
        len: usize,
        label: &'static str,
    ) -> Arc<WgpuBuffer> {
        let buf = WgpuBuffer {
            buffer,
            len,
            dtype,
            label,
            device: self.device_name.clone(),
        };
        record(RecordKind::Alloc, label, buf.bytes(), &self.device_name);
        Arc::new(buf)
    }

    fn upload_words(
        &self,
        words: &[u32],
        dtype: DType,
        len: usize,
        label: &'static str,
    ) -> Result<Arc<WgpuBuffer>> {
        let out = self.alloc(dtype, len, label)?;
        if !words.is_empty() {
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            self.queue.write_buffer(&out.buffer, 0, &bytes);
        }
        Ok(out)
    }

    fn tensor(&self, buf: Arc<WgpuBuffer>, shape: &[usize]) -> Result<FabricTensor> {
        FabricTensor::new(buf.dtype, Layout::contiguous(shape)?, buf)
    }

    fn groups(&self, invocations: usize, per_group: usize) -> u32 {
        let max = self.limits.max_compute_workgroups_per_dimension.max(1) as usize;
        invocations.div_ceil(per_group).clamp(1, max) as u32
    }

    /// Records and submits one dispatch of `entry` (operation `op`) over `groups`
    /// workgroups.
    fn dispatch(
        &self,
        entry: &'static str,
        op: u32,
        params: &Params,
        inputs: [Option<&WgpuBuffer>; 3],
        out: &WgpuBuffer,
        groups: u32,
    ) -> Result<()> {
        let pipeline = self.pipeline(entry, op)?;
        let p = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: &params.bytes(),
                usage: wgpu::BufferUsages::STORAGE,
            });
        fn binding<'a>(
            b: Option<&'a WgpuBuffer>,
            unused: &'a wgpu::Buffer,
        ) -> wgpu::BindingResource<'a> {
            match b {
                Some(b) => b.buffer.as_entire_binding(),
                None => unused.as_entire_binding(),
            }
        }
        let slot = |b| binding(b, &self.unused);
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &self.bind_layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: p.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: slot(inputs[0]),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: slot(inputs[1]),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: slot(inputs[2]),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: out.buffer.as_entire_binding(),
                },
            ],
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(entry) });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(entry),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(groups, 1, 1);
        }
        self.queue.submit([encoder.finish()]);
        self.check_error()
    }

    fn buffer_of<'t>(&self, t: &'t FabricTensor) -> Result<&'t WgpuBuffer> {
        let b = t
            .buffer()
            .as_any()
            .downcast_ref::<WgpuBuffer>()
            .ok_or_else(|| {
                fabric_err(format!(
                    "tensor lives on device {}, not on a wgpu device",
                    t.buffer().device()
                ))
            })?;
        if b.device != self.device_name {
            return Err(fabric_err(format!(
                "tensor lives on {}, this fabric runs on {}",
                b.device, self.device_name
            )));
        }
        Ok(b)
    }

    fn copy_into(
        &self,
        params: &Params,
        n: usize,
        src: &WgpuBuffer,
        dst: &WgpuBuffer,
    ) -> Result<()> {
        self.dispatch(
            "k_copy",
            0,
            params,
            [Some(src), None, None],
            dst,
            self.groups(n, WORKGROUP),
        )
    }

    fn contiguous(&self, t: &FabricTensor, label: &'static str) -> Result<FabricTensor> {
        let b = self.buffer_of(t)?;
        let n = numel(t.shape());
        if t.layout().is_contiguous() && t.layout().offset() == 0 && b.len == n {
            return Ok(t.clone());
        }
        let out = self.alloc(t.dtype(), n, label)?;
        if n > 0 {
            let p = Params::new(n, t.shape())?
                .view(0, t.layout())?
                .contiguous_view(DST_VIEW, 0)?;
            self.copy_into(&p, n, b, &out)?;
        }
        self.tensor(out, t.shape())
    }

    /// A contiguous view (any offset) of `t`, copying only when it is strided.
    fn dense(&self, t: &FabricTensor) -> Result<FabricTensor> {
        if t.layout().is_contiguous() {
            Ok(t.clone())
        } else {
            self.contiguous(t, "wgpu::contiguous")
        }
    }

    fn checked_indices(&self, t: &FabricTensor, op: &'static str, size: usize) -> Result<Vec<u32>> {
        blocktorch::fabric::checked_rows(self.download(t)?, op, size)
    }

    fn elementwise(
        &self,
        entry: &'static str,
        (op, aux): (u32, [u32; 4]),
        inputs: &[&FabricTensor],
        shape: &[usize],
        out_dtype: DType,
        label: &'static str,
    ) -> Result<FabricTensor> {
        let n = numel(shape);
        let out = self.alloc(out_dtype, n, label)?;
        if n > 0 {
            let mut p = Params::new(n, shape)?;
            for (k, v) in aux.iter().enumerate() {
                p = p.aux(k, *v);
            }
            let mut bufs: [Option<&WgpuBuffer>; 3] = [None; 3];
            for (v, t) in inputs.iter().enumerate() {
                p = p.view(v, &t.layout().broadcast_to(shape)?)?;
                bufs[v] = Some(self.buffer_of(t)?);
            }
            self.dispatch(entry, op, &p, bufs, &out, self.groups(n, WORKGROUP))?;
        }
        self.tensor(out, shape)
    }

    fn reduce(&self, op: ReduceOp, x: &FabricTensor, shape: &[usize]) -> Result<FabricTensor> {
        let l = x.layout();
        let r = l.rank();
        let len = l.shape()[r - 1];
        let stride = if len <= 1 { 0 } else { l.strides()[r - 1] };
        let rows = numel(shape);
        let (dtype, label, entry, code) = match op {
            ReduceOp::ArgMax => (DType::I32, "wgpu::argmax", "k_argmax", 0),
            ReduceOp::Sum => (DType::F32, "wgpu::reduce", "k_reduce", 0),
            ReduceOp::Max => (DType::F32, "wgpu::reduce", "k_reduce", 1),
        };
        let out = self.alloc(dtype, rows, label)?;
        // An empty row (only Sum accepts one) gives +0: the new buffer is zeroed.
        if rows > 0 && len > 0 {
            let p = Params::new(rows, shape)?
                .view_parts(0, &l.strides()[..r - 1], l.offset())?
                .aux(0, to_u32(len, "row length")?)
                .aux(1, to_u32(stride, "stride")?);
            let groups = self.groups(rows, 1);
            self.dispatch(
                entry,
                code,
                &p,
                [Some(self.buffer_of(x)?), None, None],
                &out,
                groups,
            )?;
        }
        self.tensor(out, shape)
    }

    fn matmul(&self, a: &FabricTensor, b: &FabricTensor, shape: &[usize]) -> Result<FabricTensor> {
        let r = shape.len();
        let (m, n) = (shape[r - 2], shape[r - 1]);
        let k = a.shape()[a.shape().len() - 1];
        let batch = &shape[..r - 2];
        let total = numel(shape);
        let out = self.alloc(DType::F32, total, "wgpu::matmul")?;
        // No outputs, or k = 0 (every output is the empty chain, +0, already there).
        if total == 0 || k == 0 {
            return self.tensor(out, shape);
        }
        let full = |rows: usize, cols: usize| {
            let mut s = batch.to_vec();
            s.extend_from_slice(&[rows, cols]);
            s
        };
        let la = a.layout().broadcast_to(&full(m, k))?;
        let lb = b.layout().broadcast_to(&full(k, n))?;
        let unit = |l: &Layout, d: usize, size: usize| if size <= 1 { 0 } else { l.strides()[d] };
        let p = Params::new(total, batch)?
            .view_parts(0, &la.strides()[..r - 2], la.offset())?
            .view_parts(1, &lb.strides()[..r - 2], lb.offset())?
            .aux(0, to_u32(m, "m")?)
            .aux(1, to_u32(n, "n")?)
            .aux(2, to_u32(k, "k")?)
            .aux(3, to_u32(unit(&la, r - 2, m), "stride")?)
            .aux(4, to_u32(unit(&la, r - 1, k), "stride")?)
            .aux(5, to_u32(unit(&lb, r - 2, k), "stride")?)
            .aux(6, to_u32(unit(&lb, r - 1, n), "stride")?);
        let (ab, bb) = (self.buffer_of(a)?, self.buffer_of(b)?);
        self.dispatch(
            "k_matmul",
            0,
            &p,
            [Some(ab), Some(bb), None],
            &out,
            self.groups(total, WORKGROUP),
        )?;
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
        let t = self.dense(table)?;
        let n = numel(shape);
        let out = self.alloc(DType::F32, n, "wgpu::gather")?;
        if n > 0 {
            let rb = self.upload_words(&rows, DType::U32, rows.len(), "wgpu::gather_rows")?;
            let p = Params::new(n, &[])?
                .aux(0, to_u32(row, "row")?)
                .aux(1, to_u32(t.layout().offset(), "offset")?);
            let tb = self.buffer_of(&t)?;
            self.dispatch(
                "k_gather",
                0,
                &p,
                [Some(&rb), Some(tb), None],
                &out,
                self.groups(n, WORKGROUP),
            )?;
        }
        self.tensor(out, shape)
    }

    fn index_add(
        &self,
        idx: &FabricTensor,
        src: &FabricTensor,
        rows: usize,
        shape: &[usize],
    ) -> Result<FabricTensor> {
        let targets = self.checked_indices(idx, "index_add", rows)?;
        let s = self.dense(src)?;
        let row: usize = shape[1..].iter().product();
        let n = numel(shape);
        let out = self.alloc(DType::F32, n, "wgpu::index_add")?;
        if n > 0 {
            // CSR by target row, positions in increasing order.
            let (start, positions) = blocktorch::fabric::index_add_csr(&targets, rows);
            let sb = self.upload_words(&start, DType::U32, start.len(), "wgpu::index_add_rows")?;
            let pb = self.upload_words(
                &positions,
                DType::U32,
                positions.len(),
                "wgpu::index_add_positions",
            )?;
            let p = Params::new(n, &[])?
                .aux(0, to_u32(row, "row")?)
                .aux(1, to_u32(s.layout().offset(), "offset")?);
            self.dispatch(
                "k_index_add",
                0,
                &p,
                [Some(&sb), Some(&pb), Some(self.buffer_of(&s)?)],
                &out,
                self.groups(n, WORKGROUP),
            )?;
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
        let out = self.alloc(dtype, numel(shape), "wgpu::concat")?;
        let out_strides = contiguous_strides(shape);
        let inner: usize = shape[axis + 1..].iter().product();
        let mut pos = 0usize;
        for t in inputs {
            let n = numel(t.shape());
            if n > 0 {
                let p = Params::new(n, t.shape())?.view(0, t.layout())?.view_parts(
                    DST_VIEW,
                    &out_strides,
                    pos * inner,
                )?;
                self.copy_into(&p, n, self.buffer_of(t)?, &out)?;
            }
            pos += t.shape()[axis];
        }
        self.tensor(out, shape)
    }
}

fn words_of(data: &HostData) -> Vec<u32> {
    match data {
        HostData::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
        HostData::U8(v) => v.iter().map(|x| u32::from(*x)).collect(),
        HostData::I32(v) => v.iter().map(|x| *x as u32).collect(),
        HostData::U32(v) => v.clone(),
    }
}

impl Fabric for WgpuFabric {
    fn name(&self) -> &str {
        "wgpu"
    }

    fn device_description(&self) -> String {
        self.description.clone()
    }

    fn kernel_variant_digest(&self) -> [u8; 32] {
        wgpu_kernel_variant_digest()
    }

    fn upload(&self, data: &HostData, shape: &[usize]) -> Result<FabricTensor> {
        let layout = data.layout_as(shape)?;
        let buf = self.upload_words(
            &words_of(data),
            data.dtype(),
            data.len(),
            "Tensor::from_data",
        )?;
        FabricTensor::new(data.dtype(), layout, buf)
    }

    fn download(&self, t: &FabricTensor) -> Result<HostData> {
        let n = numel(t.shape());
        if n == 0 {
            return Ok(HostData::zeros(t.dtype(), 0));
        }
        let c = self.dense(t)?;
        let b = self.buffer_of(&c)?;
        let bytes = (n as u64) * 4;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("download"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("download"),
            });
        encoder.copy_buffer_to_buffer(
            &b.buffer,
            (c.layout().offset() as u64) * 4,
            &staging,
            0,
            bytes,
        );
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.synchronize()?;
        rx.recv()
            .map_err(|_| fabric_err("the device dropped a download"))?
            .map_err(|e| fabric_err(format!("map the download: {e}")))?;
        let words: Vec<u32> = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| fabric_err(format!("read the download: {e}")))?;
            view.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        staging.unmap();
        Ok(match t.dtype() {
            DType::F32 => HostData::F32(words.into_iter().map(f32::from_bits).collect()),
            DType::U8 => HostData::U8(words.into_iter().map(|w| w as u8).collect()),
            DType::I32 => HostData::I32(words.into_iter().map(|w| w as i32).collect()),
            DType::U32 => HostData::U32(words),
        })
    }

    fn execute(&self, prim: &Prim, inputs: &[&FabricTensor]) -> Result<FabricTensor> {
        let specs: Vec<(DType, &[usize])> = inputs.iter().map(|t| (t.dtype(), t.shape())).collect();
        let (dtype, shape) = prim.output_spec(&specs)?;
        for t in inputs {
            self.buffer_of(t)?;
        }
        match prim {
            Prim::Unary(op) => {
                let (code, aux) = unary_code(*op);
                self.elementwise("k_unary", (code, aux), inputs, &shape, dtype, "wgpu::unary")
            }
            Prim::Binary(op) => {
                let code = BinaryOp::ALL.iter().position(|o| o == op).unwrap_or(0) as u32;
                self.elementwise(
                    "k_binary",
                    (code, [0; 4]),
                    inputs,
                    &shape,
                    dtype,
                    "wgpu::binary",
                )
            }
            Prim::Compare(op) => {
                let code = CompareOp::ALL.iter().position(|o| o == op).unwrap_or(0) as u32;
                self.elementwise(
                    "k_compare",
                    (code, [0; 4]),
                    inputs,
                    &shape,
                    dtype,
                    "wgpu::compare",
                )
            }
            Prim::Select => self.elementwise(
                "k_select",
                (0, [0; 4]),
                inputs,
                &shape,
                dtype,
                "wgpu::select",
            ),
            Prim::Reduce(op) => self.reduce(*op, inputs[0], &shape),
            Prim::Matmul => self.matmul(inputs[0], inputs[1], &shape),
            Prim::Gather => self.gather(inputs[0], inputs[1], &shape),
            Prim::IndexAdd { rows } => self.index_add(inputs[0], inputs[1], *rows, &shape),
            Prim::Concat { axis } => self.concat(inputs, *axis, dtype, &shape),
            Prim::Cast(to) => {
                let code = u32::from(inputs[0].dtype().tag()) * 8 + u32::from(to.tag());
                self.elementwise(
                    "k_cast",
                    (code, [0; 4]),
                    inputs,
                    &shape,
                    dtype,
                    "wgpu::cast",
                )
            }
            Prim::Copy => {
                let x = inputs[0];
                let n = numel(&shape);
                let out = self.alloc(dtype, n, "wgpu::copy")?;
                if n > 0 {
                    let p = Params::new(n, &shape)?
                        .view(0, x.layout())?
                        .contiguous_view(DST_VIEW, 0)?;
                    self.copy_into(&p, n, self.buffer_of(x)?, &out)?;
                }
                self.tensor(out, &shape)
            }
        }
    }
}
