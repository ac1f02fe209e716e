//! Text in: a model's `tokenizer.json`, read by the Hugging Face `tokenizers` crate,
//! turns sentences into the job's input — token ids (`i32 [batch, seq]`, special tokens
//! added, truncated and padded to `seq`) and the attention mask (`u8`, 1 for a real
//! token). `seq` is the tokenizer's own fixed padding or truncation length unless given.

use crate::bert::{text_descriptor, BertShape};
use crate::error::{read_capped, ModelError, Result};
use blocktorch::HostData;
use std::path::Path;
use tb_job::format::SideTensor;
use tb_job::InputTensorDescriptor;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Largest `tokenizer.json` read.
pub const TOKENIZER_BYTES_MAX: u64 = 64 << 20;
/// Most texts in one job.
pub const TEXTS_MAX: usize = 1024;
/// Longest text, in bytes.
pub const TEXT_BYTES_MAX: usize = 64 * 1024;
/// Longest sequence, in tokens.
pub const SEQ_MAX: usize = 8192;

/// A tokenizer fixed to one sequence length.
pub struct TextEncoder {
    tokenizer: Tokenizer,
    /// Tokens per sequence.
    pub seq: usize,
    /// The padding token's id.
    pub pad_id: u32,
}

/// Tokenised texts, ready for a job.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    /// The batch and sequence length.
    pub shape: BertShape,
    /// Token ids, row-major `[batch, seq]`.
    pub ids: Vec<i32>,
    /// Attention mask, row-major `[batch, seq]`.
    pub mask: Vec<u8>,
    /// Real tokens of each text (before padding; after truncation).
    pub lengths: Vec<usize>,
}

fn tok_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

impl TextEncoder {
    /// Reads `tokenizer.json`; `seq` overrides the tokenizer's own fixed length.
    pub fn open(path: &Path, seq: Option<usize>) -> Result<TextEncoder> {
        let bytes = read_capped(path, "tokenizer.json bytes", TOKENIZER_BYTES_MAX)?;
        TextEncoder::from_bytes(&bytes, seq)
    }

    /// A tokenizer from `tokenizer.json` bytes.
    pub fn from_bytes(bytes: &[u8], seq: Option<usize>) -> Result<TextEncoder> {
        let mut tokenizer = Tokenizer::from_bytes(bytes).map_err(tok_err)?;
        let own = tokenizer
            .get_padding()
            .and_then(|p| match p.strategy {
                PaddingStrategy::Fixed(n) => Some(n),
                PaddingStrategy::BatchLongest => None,
            })
            .or_else(|| tokenizer.get_truncation().map(|t| t.max_length));
        let seq = seq.or(own).ok_or_else(|| {
            tok_err("the tokenizer fixes no sequence length: give one (--seq-len N)")
        })?;
        if seq == 0 || seq > SEQ_MAX {
            return Err(tok_err(format!(
                "sequence length {seq} is outside 1..={SEQ_MAX}"
            )));
        }
        let (pad_id, pad_token) = match tokenizer.get_padding() {
            Some(p) => (p.pad_id, p.pad_token.clone()),
            None => {
                let id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
                (id, "[PAD]".to_string())
            }
        };
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(seq),
            pad_id,
            pad_token,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: seq,
                ..TruncationParams::default()
            }))
            .map_err(tok_err)?;
        Ok(TextEncoder {
            tokenizer,
            seq,
            pad_id,
        })
    }

    /// Tokenises `texts` (special tokens added, truncated, padded).
    pub fn encode(&self, texts: &[String]) -> Result<Encoded> {
        if texts.is_empty() || texts.len() > TEXTS_MAX {
            return Err(tok_err(format!(
                "give 1..={TEXTS_MAX} texts, not {}",
                texts.len()
            )));
        }
        if let Some(t) = texts.iter().find(|t| t.len() > TEXT_BYTES_MAX) {
            return Err(tok_err(format!(
                "a text of {} bytes is above {TEXT_BYTES_MAX}",
                t.len()
            )));
        }
        let mut ids = Vec::with_capacity(texts.len() * self.seq);
        let mut mask = Vec::with_capacity(texts.len() * self.seq);
        let mut lengths = Vec::with_capacity(texts.len());
        for t in texts {
            let e = self.tokenizer.encode(t.as_str(), true).map_err(tok_err)?;
            if e.get_ids().len() != self.seq {
                return Err(tok_err(format!(
                    "{} tokens after padding, expected {}",
                    e.get_ids().len(),
                    self.seq
                )));
            }
            for &id in e.get_ids() {
                ids.push(
                    i32::try_from(id).map_err(|_| tok_err(format!("token id {id} above i32")))?,
                );
            }
            mask.extend(e.get_attention_mask().iter().map(|&m| (m != 0) as u8));
            lengths.push(e.get_attention_mask().iter().filter(|&&m| m != 0).count());
        }
        Ok(Encoded {
            shape: BertShape {
                batch: texts.len(),
                seq: self.seq,
            },
            ids,
            mask,
            lengths,
        })
    }

    /// The tokens of ids (for printing generated text).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, true).map_err(tok_err)
    }
}

impl Encoded {
    /// The job's descriptor and main input.
    pub fn job_input(&self) -> (InputTensorDescriptor, HostData) {
        let mut d = text_descriptor(self.shape);
        d.attention_mask = Some(SideTensor {
            shape: vec![self.shape.batch, self.shape.seq],
            data: HostData::U8(self.mask.clone()),
        });
        (d, HostData::I32(self.ids.clone()))
    }
}
