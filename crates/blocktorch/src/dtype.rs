//! Element types a tensor can hold.

use std::fmt;

/// The element type of a tensor. Closed: a fabric supports exactly these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// IEEE-754 binary32. The only type arithmetic and autograd work on.
    F32,
    /// Unsigned bytes: raw inputs (pixels, bytes) and boolean masks (0 or 1).
    U8,
    /// Signed 32-bit integers: token ids, indices, argmax results.
    I32,
    /// Unsigned 32-bit integers: token ids and indices.
    U32,
}

impl DType {
    /// Every dtype, in tag order.
    pub const ALL: [DType; 4] = [DType::F32, DType::U8, DType::I32, DType::U32];

    /// Bytes per element.
    pub const fn size_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::U8 => 1,
        }
    }

    /// The one-byte tag used in digests and encodings (`docs/spec/blocktorch-semantics.md`).
    pub const fn tag(self) -> u8 {
        match self {
            DType::F32 => 1,
            DType::U8 => 2,
            DType::I32 => 3,
            DType::U32 => 4,
        }
    }

    /// The dtype for a tag, if the tag is known.
    pub const fn from_tag(tag: u8) -> Option<DType> {
        match tag {
            1 => Some(DType::F32),
            2 => Some(DType::U8),
            3 => Some(DType::I32),
            4 => Some(DType::U32),
            _ => None,
        }
    }

    /// Lower-case name (`f32`, `u8`, `i32`, `u32`).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::U8 => "u8",
            DType::I32 => "i32",
            DType::U32 => "u32",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
