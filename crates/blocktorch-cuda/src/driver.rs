//! Every call into the CUDA driver and NVRTC libraries that Rust cannot check: loading
//! them, the memory pool's attributes, kernel launches and the kernel parameter layout.
//! The crate's only `unsafe` code; each block says why it is sound.
#![allow(unsafe_code)]

use super::*;

/// Whether this machine can run the CUDA fabric; `Err` says why not (no driver library,
/// no NVRTC library, no device). Never panics.
pub fn probe() -> std::result::Result<(), String> {
    // SAFETY: `is_culib_present` only tries `dlopen` on the candidate library names and
    // drops the handles; it calls no function of the library.
    let (driver, nvrtc) = unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::nvrtc::sys::is_culib_present(),
        )
    };
    if !driver {
        return Err("the CUDA driver library (libcuda.so) is not installed".into());
    }
    if !nvrtc {
        return Err("the NVRTC library (libnvrtc.so) is not installed".into());
    }
    match CudaContext::device_count() {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err("the CUDA driver reports no device".into()),
        Err(e) => Err(format!("the CUDA driver could not count devices: {e}")),
    }
}

/// Whether the NVRTC library can be loaded (all [`compile_kernels`] needs; no GPU).
pub fn nvrtc_available() -> bool {
    // SAFETY: `is_culib_present` only tries `dlopen` on the candidate library names and
    // drops the handles; it calls no function of the library.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Freed device memory the pool keeps for reuse, at most (8 GiB); beyond it, freed
/// memory goes back to the driver at the next synchronisation.
pub const CUDA_POOL_KEEP_BYTES: u64 = 8 << 30;

/// Makes the device's default memory pool (behind the stream-ordered allocator) keep
/// up to [`CUDA_POOL_KEEP_BYTES`] of freed memory instead of returning it to the driver
/// at every synchronisation (its release threshold is 0 by default), as a caching
/// allocator does: a program that allocates each op's output then maps pages once, not
/// once per op. Dropping the fabric trims the pool back.
pub(crate) fn keep_freed_memory(ctx: &Arc<CudaContext>) -> Result<()> {
    use cudarc::driver::sys;
    if !ctx.has_async_alloc() {
        return Ok(());
    }
    ctx.bind_to_thread()
        .map_err(|e| driver_err("bind context", e))?;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let mut threshold: u64 = CUDA_POOL_KEEP_BYTES;
    // SAFETY: the context is current on this thread; `pool` receives the device's
    // default pool handle, then the attribute call reads one u64 through the pointer
    // to `threshold`, which outlives the call.
    let r = unsafe {
        let r = sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device());
        if r != sys::cudaError_enum::CUDA_SUCCESS {
            r
        } else {
            sys::cuMemPoolSetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&mut threshold as *mut u64).cast(),
            )
        }
    };
    if r != sys::cudaError_enum::CUDA_SUCCESS {
        return Err(fabric_err(format!("memory pool release threshold: {r:?}")));
    }
    Ok(())
}

/// Returns the default pool's unused memory to the driver.
pub(crate) fn trim_pool(ctx: &Arc<CudaContext>) {
    use cudarc::driver::sys;
    if !ctx.has_async_alloc() || ctx.bind_to_thread().is_err() {
        return;
    }
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    // SAFETY: the context is current on this thread; `pool` receives the default pool
    // handle, which `cuMemPoolTrimTo` then takes by value. Errors are ignored: trimming
    // only returns memory early.
    unsafe {
        if sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device())
            == sys::cudaError_enum::CUDA_SUCCESS
        {
            let _ = sys::cuMemPoolTrimTo(pool, 0);
        }
    }
}

/// Launches a kernel with `args` (see the SAFETY note).
pub(crate) fn launch(
    args: &mut LaunchArgs<'_>,
    cfg: LaunchConfig,
) -> std::result::Result<(), cudarc::driver::DriverError> {
    // SAFETY: every launch in this crate passes exactly the parameters its kernel
    // declares, in order and with matching types (`Walk` by value, i32/u32/f32
    // scalars, device pointers of live buffers); every index a kernel forms was
    // bounds-checked on the host (layouts are checked against their buffer by
    // `FabricTensor::new`, gather/index_add indices before launch).
    unsafe { args.launch(cfg) }.map(|_| ())
}

// SAFETY: `Walk` is `#[repr(C)]` with only `u32` fields and arrays (no padding), the
// same layout as the CUDA `struct Walk`; it is passed by value as a kernel parameter.
unsafe impl DeviceRepr for crate::walk::Walk {}
