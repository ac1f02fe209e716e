//! Every way a job can be refused, as one typed error. Decoding errors name the field
//! and the byte offset (from the start of the blob) where it went wrong.

use blocktorch::TensorError;
use thiserror::Error;

/// A refused job blob, program, execution or referee call.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum JobError {
    /// The bytes end inside a field.
    #[error("truncated {field} at byte {offset}: needs {needed} bytes, {available} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Where it starts.
        offset: usize,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// A magic number is wrong.
    #[error("bad {field} at byte {offset}: expected {expected:?}, found {found:?}")]
    BadMagic {
        /// Which magic.
        field: &'static str,
        /// Where.
        offset: usize,
        /// The expected bytes.
        expected: [u8; 4],
        /// The bytes found.
        found: [u8; 4],
    },
    /// An enum tag (version, dtype, opcode, flag…) has no meaning.
    #[error("unknown {field} {tag} at byte {offset}")]
    UnknownTag {
        /// The field.
        field: &'static str,
        /// Where.
        offset: usize,
        /// The tag read.
        tag: u64,
    },
    /// A count or size is above its named limit.
    #[error("{field} at byte {offset} is {value}, above the limit of {max}")]
    TooLarge {
        /// The field.
        field: &'static str,
        /// Where.
        offset: usize,
        /// The value read.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// Sizes overflow when multiplied out.
    #[error("{field} at byte {offset} overflows")]
    Overflow {
        /// The field.
        field: &'static str,
        /// Where.
        offset: usize,
    },
    /// A declared length disagrees with what the rest of the blob implies.
    #[error("{field} at byte {offset} declares {declared}, but the data gives {actual}")]
    LengthMismatch {
        /// The field.
        field: &'static str,
        /// Where.
        offset: usize,
        /// Declared value.
        declared: u64,
        /// Actual value.
        actual: u64,
    },
    /// Bytes left over after the last field.
    #[error("{count} trailing bytes at byte {offset}")]
    TrailingBytes {
        /// Where they start.
        offset: usize,
        /// How many.
        count: usize,
    },
    /// A field's value is malformed (bad UTF-8, a mask value that is not 0 or 1…).
    #[error("invalid {field} at byte {offset}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Where.
        offset: usize,
        /// What is wrong.
        message: String,
    },
    /// A version 1 blob names a model that was not supplied.
    #[error("the job names model {sha256} ({bytes} bytes), which is not available: publish it (`tb-cli model publish`) or supply it")]
    ModelMissing {
        /// Hex SHA-256 of the model.
        sha256: String,
        /// Its declared size.
        bytes: u64,
    },
    /// The model supplied for a version 1 blob is not the one it names.
    #[error("the model supplied for {sha256} is not it: {message}")]
    ModelMismatch {
        /// Hex SHA-256 the blob names.
        sha256: String,
        /// What differs.
        message: String,
    },
    /// The model (artifact) of a version 1 blob does not decode; offsets are from the
    /// model's first byte.
    #[error("model: {source}")]
    InModel {
        /// The artifact's decoding error.
        source: Box<JobError>,
    },
    /// The program declares a runtime this build does not implement.
    #[error("the program declares runtime {declared:?}; this build runs {supported:?}")]
    UnsupportedRuntime {
        /// Declared.
        declared: String,
        /// Supported.
        supported: &'static str,
    },
    /// An op refers to a value that is not defined before it.
    #[error("op {op} argument {arg} refers to value {value}, but only {defined} values are defined before it")]
    BadReference {
        /// Op index.
        op: usize,
        /// Argument index.
        arg: usize,
        /// The value id.
        value: u64,
        /// Values defined before the op.
        defined: u64,
    },
    /// An op's operands do not fit it (shapes, dtypes, arity, a missing input slot).
    #[error("op {op} ({name}): {source}")]
    Op {
        /// Op index.
        op: usize,
        /// Op name.
        name: String,
        /// The runtime's refusal.
        source: TensorError,
    },
    /// A declared output refers to a value the program does not define.
    #[error("output {output} ({name:?}) refers to value {value}, but the program defines only {defined} values")]
    BadOutput {
        /// Output index.
        output: usize,
        /// Its name.
        name: String,
        /// The value id.
        value: u64,
        /// Values defined.
        defined: u64,
    },
    /// The program declares no output.
    #[error("a program declares at least one output")]
    NoOutputs,
    /// A value cannot be written in the format (building or encoding a job).
    #[error("cannot encode {field}: {message}")]
    Unencodable {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// A cost bound is exceeded.
    #[error("program {what} is {value}, above the limit of {max}")]
    CostExceeded {
        /// FLOPs or bytes.
        what: &'static str,
        /// The program's cost.
        value: u128,
        /// The limit.
        max: u128,
    },
    /// The job was built for other kernels than the fabric's.
    #[error("the job declares kernel digest {job}, the fabric's is {fabric}; run in cross-fabric replay mode to replay it anyway")]
    KernelDigestMismatch {
        /// Hex of the job's digest.
        job: String,
        /// Hex of the fabric's digest.
        fabric: String,
    },
    /// A fabric failed while executing an op.
    #[error("op {op} ({name}) failed on the fabric: {source}")]
    Execution {
        /// Op index.
        op: usize,
        /// Op name.
        name: String,
        /// The fabric's error.
        source: TensorError,
    },
    /// Prepared constants ([`crate::PreparedModel`]) were given for another model or
    /// another fabric than the run's.
    #[error("prepared constants do not fit the run: {message}")]
    PreparedMismatch {
        /// What differs.
        message: String,
    },
    /// A referee call was malformed or its evidence did not check out.
    #[error("referee: {0}")]
    Referee(String),
    /// A receipt failed to decode or verify.
    #[error("receipt: {0}")]
    Receipt(String),
    /// A trace, shape, evidence bundle or verification step was refused.
    #[error("verify: {0}")]
    Verify(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, JobError>;

/// `Ok` when `value` is at most `max`, else [`JobError::TooLarge`] for `field` at `offset`
/// (every decoder's limit check).
pub(crate) fn at_most(field: &'static str, offset: usize, value: u64, max: u64) -> Result<()> {
    if value > max {
        return Err(JobError::TooLarge {
            field,
            offset,
            value,
            max,
        });
    }
    Ok(())
}
