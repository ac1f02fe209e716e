//! NumPy arrays to and from the runtime's host data. Outgoing arrays take ownership of
//! the Rust vector (no copy); incoming ones are read in C order, whatever their strides.

use crate::errors;
use blocktorch::{DType, HostData};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

/// The NumPy dtype name of a runtime dtype.
pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "float32",
        DType::U8 => "uint8",
        DType::I32 => "int32",
        DType::U32 => "uint32",
    }
}

/// The runtime dtype named `s` (`float32`/`f32`, `uint8`/`u8`, `int32`/`i32`,
/// `uint32`/`u32`).
pub fn dtype_of(s: &str) -> PyResult<DType> {
    Ok(match s {
        "float32" | "f32" => DType::F32,
        "uint8" | "u8" => DType::U8,
        "int32" | "i32" => DType::I32,
        "uint32" | "u32" => DType::U32,
        other => {
            return Err(errors::JobError::new_err(format!(
                "dtype {other:?}: expected float32, uint8, int32 or uint32"
            )))
        }
    })
}

/// An array of `shape` owning `data`.
pub fn to_numpy<'py>(
    py: Python<'py>,
    data: HostData,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    fn shaped<'py, T: numpy::Element>(
        py: Python<'py>,
        v: Vec<T>,
        shape: &[usize],
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(v.into_pyarray(py).reshape(shape.to_vec())?.into_any())
    }
    match data {
        HostData::F32(v) => shaped(py, v, shape),
        HostData::U8(v) => shaped(py, v, shape),
        HostData::I32(v) => shaped(py, v, shape),
        HostData::U32(v) => shaped(py, v, shape),
    }
}

/// The elements and shape of a NumPy array of one of the runtime's dtypes (float32,
/// uint8, int32, uint32; a float64 array is refused rather than silently rounded).
pub fn from_numpy(a: &Bound<'_, PyAny>) -> PyResult<(HostData, Vec<usize>)> {
    fn read<T: numpy::Element + Copy>(a: &Bound<'_, PyArrayDyn<T>>) -> (Vec<T>, Vec<usize>) {
        let r = a.readonly();
        let view = r.as_array();
        (view.iter().copied().collect(), a.shape().to_vec())
    }
    if let Ok(x) = a.cast::<PyArrayDyn<f32>>() {
        let (v, s) = read(x);
        return Ok((HostData::F32(v), s));
    }
    if let Ok(x) = a.cast::<PyArrayDyn<u8>>() {
        let (v, s) = read(x);
        return Ok((HostData::U8(v), s));
    }
    if let Ok(x) = a.cast::<PyArrayDyn<i32>>() {
        let (v, s) = read(x);
        return Ok((HostData::I32(v), s));
    }
    if let Ok(x) = a.cast::<PyArrayDyn<u32>>() {
        let (v, s) = read(x);
        return Ok((HostData::U32(v), s));
    }
    let what = a
        .getattr("dtype")
        .map(|d| d.to_string())
        .unwrap_or_else(|_| a.get_type().to_string());
    Err(errors::JobError::new_err(format!(
        "expected a numpy array of float32, uint8, int32 or uint32, got {what} \
         (convert with .astype(numpy.float32))"
    )))
}
