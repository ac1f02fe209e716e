//! The typed error every fallible tensor operation returns.

use crate::dtype::DType;

/// Why a tensor operation was refused. Produced for bad input (shapes, axes, indices,
/// dtypes, limits), never by a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    /// More dimensions than [`crate::RANK_MAX`].
    #[error("rank {rank} exceeds the maximum rank {max}")]
    RankTooLarge { rank: usize, max: usize },
    /// More elements than [`crate::ELEMENTS_MAX`], or a dimension above `u32::MAX`.
    #[error("shape {shape:?} has too many elements (maximum {max})")]
    TooManyElements { shape: Vec<usize>, max: usize },
    /// The data length does not match the shape.
    #[error("data has {got} elements but shape {shape:?} needs {expected}")]
    LengthMismatch {
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },
    /// An operation got a dtype it does not accept.
    #[error("{op}: expected dtype {expected}, got {got}")]
    DTypeMismatch {
        op: &'static str,
        expected: DType,
        got: DType,
    },
    /// Two shapes that had to agree do not.
    #[error("{op}: shapes {lhs:?} and {rhs:?} are incompatible")]
    ShapeMismatch {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
    },
    /// An axis or dimension index outside the tensor's rank.
    #[error("{op}: axis {axis} is out of range for rank {rank}")]
    AxisOutOfRange {
        op: &'static str,
        axis: isize,
        rank: usize,
    },
    /// A permutation that is not a permutation of `0..rank`.
    #[error("permute: {perm:?} is not a permutation of 0..{rank}")]
    InvalidPermutation { perm: Vec<usize>, rank: usize },
    /// A slice whose bounds or step are invalid.
    #[error(
        "slice of axis {axis} (size {size}): start {start}, end {end}, step {step} is invalid"
    )]
    InvalidSlice {
        axis: usize,
        size: usize,
        start: usize,
        end: usize,
        step: usize,
    },
    /// A reshape to a shape with a different element count.
    #[error("reshape: cannot view {from:?} as {to:?}")]
    InvalidReshape { from: Vec<usize>, to: Vec<usize> },
    /// A broadcast that the broadcasting rules refuse.
    #[error("cannot broadcast {from:?} to {to:?}")]
    NotBroadcastable { from: Vec<usize>, to: Vec<usize> },
    /// A gather index outside the table.
    #[error("{op}: index {index} is out of range for size {size}")]
    IndexOutOfRange {
        op: &'static str,
        index: i64,
        size: usize,
    },
    /// A reduction or statistic over an empty axis.
    #[error("{op}: cannot reduce an empty axis")]
    EmptyReduction { op: &'static str },
    /// Any other invalid argument, with a message.
    #[error("{op}: {message}")]
    InvalidArgument { op: &'static str, message: String },
    /// `backward` on a tensor that does not require grad or is not a scalar.
    #[error("backward: {0}")]
    Backward(String),
    /// A fabric failed (device error, unsupported primitive, out of memory).
    #[error("fabric {fabric}: {message}")]
    Fabric { fabric: String, message: String },
}

/// Result with [`TensorError`].
pub type Result<T, E = TensorError> = std::result::Result<T, E>;
