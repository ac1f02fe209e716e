//! Every way importing or running a model can fail, typed, each with a one-line message.

use thiserror::Error;

/// A model import, weights, config or tokenizer error.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A file could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// Bytes that are not what they claim to be (a protobuf that does not decode, a
    /// safetensors header that does not parse, …).
    #[error("malformed {what}: {message}")]
    Malformed {
        /// What was being read (`ONNX model`, `safetensors file`, …).
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Above a named limit.
    #[error("{what} is {got}, above the limit of {max}")]
    TooLarge {
        /// What was counted.
        what: &'static str,
        /// Its value.
        got: u64,
        /// The limit.
        max: u64,
    },
    /// An opset outside the supported range.
    #[error(
        "opset {version} of domain {domain:?} is not supported (supported: ai.onnx {min} to {max})"
    )]
    UnsupportedOpset {
        /// The domain.
        domain: String,
        /// Its version.
        version: i64,
        /// Lowest supported.
        min: i64,
        /// Highest supported.
        max: i64,
    },
    /// A node the importer cannot lower: an unknown op, attribute, dtype or form.
    #[error("node {node:?} ({op_type}, opset {opset}): {message}")]
    Unsupported {
        /// The node's name (or `#index` when it has none).
        node: String,
        /// Its op type (with its domain when not ai.onnx).
        op_type: String,
        /// The graph's ai.onnx opset.
        opset: i64,
        /// What is not supported.
        message: String,
    },
    /// A graph input the job cannot supply.
    #[error("input {name:?}: {message}")]
    Input {
        /// The ONNX input's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A tensor folded at import is malformed (shapes that do not fit, an index out of
    /// range, an integer overflow).
    #[error("{op}: {message}")]
    Fold {
        /// The operation.
        op: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A model config (`config.json`) that is missing a field or names a tensor the
    /// weights do not hold.
    #[error("config: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// A weight the builder needs is absent from the weights file.
    #[error("{file}: no tensor {name:?} (the config asks for it)")]
    MissingTensor {
        /// The tensor's name.
        name: String,
        /// The weights file.
        file: String,
    },
    /// A weight of the wrong shape or dtype.
    #[error("tensor {name:?}: {message}")]
    BadTensor {
        /// The tensor's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The tokenizer could not be loaded or refused a text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A runtime refusal while building the program.
    #[error("{0}")]
    Tensor(#[from] blocktorch::TensorError),
    /// A job-level refusal (encoding, validation).
    #[error("{0}")]
    Job(#[from] tb_job::JobError),
}

/// This crate's result.
pub type Result<T> = std::result::Result<T, ModelError>;

/// Reads a file whole, refusing one above `max` bytes.
pub fn read_capped(path: &std::path::Path, what: &'static str, max: u64) -> Result<Vec<u8>> {
    let io = |e: std::io::Error| ModelError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > max {
        return Err(ModelError::TooLarge {
            what,
            got: len,
            max,
        });
    }
    std::fs::read(path).map_err(io)
}
