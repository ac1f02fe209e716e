//! tb-models: bring your own model.
//!
//! - [`onnx`]: an ONNX graph (opsets 13 to 23) lowered to a BlockTorch program with its
//!   initializers as weights; shape subgraphs folded at import; every unsupported op,
//!   attribute or dtype a typed error naming the node.
//! - [`weights`]: safetensors files read through the `safetensors` crate.
//! - [`bert`]: a BERT-family encoder built from `config.json` and `model.safetensors`
//!   (candle's model-file style), with sentence-transformers pooling (mean over the
//!   attention mask, L2 normalisation).
//! - [`text`]: text in, through the Hugging Face `tokenizers` crate: ids and attention
//!   mask for the job's descriptor.
//!
//! Every model becomes an ordinary `tb_job::Program`: it runs, traces, is refereed and
//! is published exactly as a hand-built one. This crate reads files only where a
//! function takes a path; it never touches the network.
#![forbid(unsafe_code)]

pub mod bert;
pub mod error;
pub mod fuzzing;
pub mod onnx;
pub mod text;
pub mod weights;

pub use error::{ModelError, Result};
