//! Little-endian byte reading and writing with absolute offsets, for the blob and the
//! artifact. Every read names its field, so an error says what and where.

use crate::error::{JobError, Result};
use blocktorch::{DType, HostData, RANK_MAX};

/// A cursor over bytes that reports offsets relative to the start of the blob.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    /// Reads `bytes`, which start at `base` in the blob.
    pub(crate) fn new(bytes: &'a [u8], base: usize) -> Reader<'a> {
        Reader {
            bytes,
            pos: 0,
            base,
        }
    }

    /// The absolute offset of the next byte.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Bytes left.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(JobError::Truncated {
                field,
                offset: self.offset(),
                needed: n,
                available: self.remaining(),
            });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8> {
        Ok(self.take(field, 1)?[0])
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32> {
        let b = self.take(field, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn f32(&mut self, field: &'static str) -> Result<f32> {
        Ok(f32::from_bits(self.u32(field)?))
    }

    pub(crate) fn array32(&mut self, field: &'static str) -> Result<[u8; 32]> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(field, 32)?);
        Ok(a)
    }

    /// A u8 flag that must be 0 or 1.
    pub(crate) fn flag(&mut self, field: &'static str) -> Result<bool> {
        let at = self.offset();
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            t => Err(JobError::UnknownTag {
                field,
                offset: at,
                tag: t as u64,
            }),
        }
    }

    /// A u8-length-prefixed UTF-8 string of at most `max` bytes.
    pub(crate) fn string(&mut self, field: &'static str, max: usize) -> Result<String> {
        let at = self.offset();
        let n = self.u8(field)? as usize;
        crate::error::at_most(field, at, n as u64, max as u64)?;
        let b = self.take(field, n)?;
        String::from_utf8(b.to_vec()).map_err(|_| JobError::Invalid {
            field,
            offset: at + 1,
            message: "not UTF-8".into(),
        })
    }

    /// A dtype tag.
    pub(crate) fn dtype(&mut self, field: &'static str) -> Result<DType> {
        let at = self.offset();
        let t = self.u8(field)?;
        DType::from_tag(t).ok_or(JobError::UnknownTag {
            field,
            offset: at,
            tag: t as u64,
        })
    }

    /// A rank byte (≤ [`RANK_MAX`]) then that many u32 dims; returns the shape and its
    /// element count (checked against `blocktorch::ELEMENTS_MAX`).
    pub(crate) fn shape(&mut self, field: &'static str) -> Result<(Vec<usize>, usize)> {
        let at = self.offset();
        let rank = self.u8(field)? as usize;
        crate::error::at_most(field, at, rank as u64, RANK_MAX as u64)?;
        let mut shape = Vec::with_capacity(rank);
        let mut n: usize = 1;
        for _ in 0..rank {
            let d = self.u32(field)? as usize;
            n = n
                .checked_mul(d)
                .ok_or(JobError::Overflow { field, offset: at })?;
            shape.push(d);
        }
        crate::error::at_most(field, at, n as u64, blocktorch::ELEMENTS_MAX as u64)?;
        Ok((shape, n))
    }

    /// `n` elements of `dtype`, little-endian.
    pub(crate) fn data(&mut self, field: &'static str, dtype: DType, n: usize) -> Result<HostData> {
        let at = self.offset();
        let bytes = n
            .checked_mul(dtype.size_bytes())
            .ok_or(JobError::Overflow { field, offset: at })?;
        let b = self.take(field, bytes)?;
        Ok(host_from_le(dtype, b))
    }

    /// Fails unless every byte was read.
    pub(crate) fn finish(&self) -> Result<()> {
        if self.remaining() != 0 {
            return Err(JobError::TrailingBytes {
                offset: self.offset(),
                count: self.remaining(),
            });
        }
        Ok(())
    }
}

/// Elements of `dtype` from little-endian bytes (`b.len()` a multiple of the size).
pub(crate) fn host_from_le(dtype: DType, b: &[u8]) -> HostData {
    match dtype {
        DType::F32 => HostData::F32(
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        DType::U8 => HostData::U8(b.to_vec()),
        DType::I32 => HostData::I32(
            b.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        DType::U32 => HostData::U32(
            b.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
    }
}

/// Appends little-endian fields.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) bytes: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn f32(&mut self, v: f32) {
        self.u32(v.to_bits());
    }
    pub(crate) fn raw(&mut self, b: &[u8]) {
        self.bytes.extend_from_slice(b);
    }
    /// Caller guarantees `s.len() <= 255`.
    pub(crate) fn string(&mut self, s: &str) {
        self.u8(s.len() as u8);
        self.raw(s.as_bytes());
    }
    /// Caller guarantees rank ≤ 8 and dims ≤ u32::MAX.
    pub(crate) fn shape(&mut self, shape: &[usize]) {
        self.u8(shape.len() as u8);
        for d in shape {
            self.u32(*d as u32);
        }
    }
    pub(crate) fn data(&mut self, d: &HostData) {
        match d {
            HostData::F32(v) => v.iter().for_each(|x| self.f32(*x)),
            HostData::U8(v) => self.raw(v),
            HostData::I32(v) => v.iter().for_each(|x| self.raw(&x.to_le_bytes())),
            HostData::U32(v) => v.iter().for_each(|x| self.u32(*x)),
        }
    }
}
