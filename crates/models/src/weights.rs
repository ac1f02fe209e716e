//! Weights from safetensors files, read through the `safetensors` crate (its header
//! parser and bounds checks). Tensors come out as f32 row-major; F16, BF16 and F64
//! weights are converted exactly or refused where they cannot be.

use crate::error::{read_capped, ModelError, Result};
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

/// Largest safetensors file read (the model object it becomes is at most
/// `tb_job::format::MODEL_BYTES_MAX`).
pub const SAFETENSORS_BYTES_MAX: u64 = 1 << 31;

/// A safetensors file held in memory.
pub struct Weights {
    bytes: Vec<u8>,
    file: String,
}

/// One weight as f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    /// Shape.
    pub shape: Vec<usize>,
    /// Elements, row-major.
    pub data: Vec<f32>,
}

fn malformed(e: impl std::fmt::Display) -> ModelError {
    ModelError::Malformed {
        what: "safetensors file",
        message: e.to_string(),
    }
}

impl Weights {
    /// Reads and checks a safetensors file (header, offsets, dtypes).
    pub fn open(path: &Path) -> Result<Weights> {
        let bytes = read_capped(path, "safetensors file bytes", SAFETENSORS_BYTES_MAX)?;
        Weights::from_bytes(bytes, &path.display().to_string())
    }

    /// Checks safetensors bytes; `file` names them in errors.
    pub fn from_bytes(bytes: Vec<u8>, file: &str) -> Result<Weights> {
        SafeTensors::deserialize(&bytes).map_err(malformed)?;
        Ok(Weights {
            bytes,
            file: file.to_string(),
        })
    }

    fn view(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes).map_err(malformed)
    }

    /// The tensors' names, sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut n: Vec<String> = self
            .view()?
            .names()
            .into_iter()
            .map(str::to_string)
            .collect();
        n.sort();
        Ok(n)
    }

    /// Whether a tensor is present.
    pub fn contains(&self, name: &str) -> Result<bool> {
        Ok(self.view()?.tensor(name).is_ok())
    }

    /// Tensor `name` as f32 (F32 as is; F16 and BF16 widened exactly; F64 refused).
    pub fn get(&self, name: &str) -> Result<Weight> {
        let st = self.view()?;
        let t = st.tensor(name).map_err(|_| ModelError::MissingTensor {
            name: name.to_string(),
            file: self.file.clone(),
        })?;
        let raw = t.data();
        let data: Vec<f32> = match t.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            other => {
                return Err(ModelError::BadTensor {
                    name: name.to_string(),
                    message: format!("dtype {other:?} is not supported (F32, F16, BF16 are)"),
                })
            }
        };
        Ok(Weight {
            shape: t.shape().to_vec(),
            data,
        })
    }

    /// Tensor `name`, refused unless its shape is `shape`.
    pub fn get_shaped(&self, name: &str, shape: &[usize]) -> Result<Weight> {
        let w = self.get(name)?;
        if w.shape != shape {
            return Err(ModelError::BadTensor {
                name: name.to_string(),
                message: format!("shape {:?}, the config implies {shape:?}", w.shape),
            });
        }
        Ok(w)
    }
}

/// IEEE binary16 → binary32, exact.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise.
            let shift = m.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | (((m << shift) & 0x3ff) << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_widen_exactly() {
        for (h, f) in [
            (0x3c00u16, 1.0f32),
            (0xc000, -2.0),
            (0x0001, 5.960_464_5e-8),
            (0x03ff, 6.097_555e-5),
            (0x7bff, 65504.0),
            (0x7c00, f32::INFINITY),
            (0x8000, -0.0),
        ] {
            assert_eq!(f16_to_f32(h).to_bits(), f.to_bits(), "{h:#06x}");
        }
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn a_truncated_file_is_one_clear_error() {
        let mut bytes = Vec::new();
        let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&1f32.to_le_bytes());
        bytes.extend_from_slice(&2f32.to_le_bytes());
        let w = Weights::from_bytes(bytes.clone(), "ok").unwrap();
        assert_eq!(w.get("w").unwrap().data, vec![1.0, 2.0]);
        assert!(matches!(w.get("v"), Err(ModelError::MissingTensor { .. })));
        bytes.truncate(bytes.len() - 3);
        let e = Weights::from_bytes(bytes, "cut").err().unwrap();
        assert!(
            e.to_string().starts_with("malformed safetensors file"),
            "{e}"
        );
    }
}
