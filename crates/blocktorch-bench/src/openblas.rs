//! OpenBLAS, loaded at run time with `libloading` so that the workspace builds
//! and tests on machines without it.
#![allow(unsafe_code)]

use std::os::raw::c_int;

/// `cblas_sgemm` (LP64 OpenBLAS: 32-bit integers).
type CblasSgemm = unsafe extern "C" fn(
    order: c_int,
    transa: c_int,
    transb: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: f32,
    a: *const f32,
    lda: c_int,
    b: *const f32,
    ldb: c_int,
    beta: f32,
    c: *mut f32,
    ldc: c_int,
);
/// `openblas_set_num_threads`.
type SetNumThreads = unsafe extern "C" fn(n: c_int);

const CBLAS_ROW_MAJOR: c_int = 101;
const CBLAS_NO_TRANS: c_int = 111;

/// The shared library name that is opened.
pub const LIB_NAME: &str = "libopenblas.so.0";

/// A loaded OpenBLAS.
pub struct OpenBlas {
    sgemm: CblasSgemm,
    set_num_threads: SetNumThreads,
    /// Keeps the library mapped while the function pointers above are used.
    _lib: libloading::Library,
}

impl OpenBlas {
    /// Opens [`LIB_NAME`] and resolves its symbols; `Err` says why not.
    pub fn load() -> Result<OpenBlas, String> {
        // SAFETY: loading runs the library's initialisers; libopenblas's only
        // set up its thread pool and CPU dispatch, with no preconditions on us.
        let lib = unsafe { libloading::Library::new(LIB_NAME) }
            .map_err(|e| format!("{LIB_NAME}: {e}"))?;
        // SAFETY: the types match the C prototypes in OpenBLAS's cblas.h
        // (LP64 build, `blasint == int`), and the pointers are only used while
        // `_lib` keeps the library loaded.
        let (sgemm, set_num_threads) = unsafe {
            let sgemm = *lib
                .get::<CblasSgemm>(b"cblas_sgemm\0")
                .map_err(|e| format!("cblas_sgemm: {e}"))?;
            let set = *lib
                .get::<SetNumThreads>(b"openblas_set_num_threads\0")
                .map_err(|e| format!("openblas_set_num_threads: {e}"))?;
            (sgemm, set)
        };
        Ok(OpenBlas {
            sgemm,
            set_num_threads,
            _lib: lib,
        })
    }

    /// Sets OpenBLAS's worker thread count.
    pub fn set_threads(&self, threads: usize) {
        let t = c_int::try_from(threads).expect("thread count fits in a C int");
        // SAFETY: a plain call with an integer argument into the loaded library.
        unsafe { (self.set_num_threads)(t) }
    }

    /// `C = A · B` with row-major contiguous `A` (m×k), `B` (k×n), `C` (m×n).
    pub fn sgemm(&self, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        assert_eq!(a.len(), m * k, "A must be m*k");
        assert_eq!(b.len(), k * n, "B must be k*n");
        assert_eq!(c.len(), m * n, "C must be m*n");
        let dim = |x: usize| c_int::try_from(x.max(1)).expect("dimension fits in a C int");
        let (mi, ni, ki) = (dim(m), dim(n), dim(k));
        if m == 0 || n == 0 {
            return;
        }
        // SAFETY: the slices hold exactly m*k, k*n and m*n elements (asserted
        // above), which is what a row-major no-transpose call with
        // lda = k, ldb = n, ldc = n reads and writes; `c` is borrowed mutably.
        unsafe {
            (self.sgemm)(
                CBLAS_ROW_MAJOR,
                CBLAS_NO_TRANS,
                CBLAS_NO_TRANS,
                mi,
                ni,
                c_int::try_from(k).expect("k fits in a C int"),
                1.0,
                a.as_ptr(),
                ki,
                b.as_ptr(),
                ni,
                0.0,
                c.as_mut_ptr(),
                ni,
            )
        }
    }
}
