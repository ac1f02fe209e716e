//! A BERT-family encoder (BERT, MiniLM, all-MiniLM-L6-v2 and other sentence-transformers
//! built on `BertModel`) from a Hugging Face `config.json` and `model.safetensors`, in
//! the style of candle's model files: the config names the sizes, the weights are read
//! by name, and the forward pass is written once with `blocktorch::compose`.
//!
//! The job's input is the token ids (`i32 [batch, seq]`, the main input) and the
//! attention mask (`u8 [batch, seq]`, the descriptor's mask); token type ids are all 0,
//! as sentence-transformers passes them. Outputs: `embedding` `[batch, hidden]`
//! (sentence-transformers pooling: mean over the attention mask, then L2
//! normalisation), or `last_hidden_state` `[batch, seq, hidden]` with
//! [`Pooling::None`]. The evaluation order, op by op, is in `docs/models.md`.

use crate::error::{read_capped, ModelError, Result};
use crate::weights::Weights;
use blocktorch::compose::{self as c, AttentionOptions, Backend, View};
use blocktorch::{BinaryOp, DType, HostData, Prim, UnaryOp};
use serde_json::Value;
use std::path::Path;
use tb_job::format::SideTensor;
use tb_job::{InputSlot, InputTensorDescriptor, Normalisation, Program, ProgramBuilder, Val};

/// Largest `config.json` read.
pub const CONFIG_BYTES_MAX: u64 = 1 << 20;
/// Most encoder layers.
pub const LAYERS_MAX: usize = 64;
/// Largest hidden size.
pub const HIDDEN_MAX: usize = 8192;

/// The activation of the feed-forward block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `gelu` (erf form).
    GeluErf,
    /// `gelu_new`, `gelu_pytorch_tanh` (tanh form).
    GeluTanh,
    /// `relu`.
    Relu,
}

/// What a BERT config says.
#[derive(Clone, Debug, PartialEq)]
pub struct BertConfig {
    /// `vocab_size`.
    pub vocab_size: usize,
    /// `hidden_size`.
    pub hidden_size: usize,
    /// `num_hidden_layers`.
    pub num_hidden_layers: usize,
    /// `num_attention_heads`.
    pub num_attention_heads: usize,
    /// `intermediate_size`.
    pub intermediate_size: usize,
    /// `max_position_embeddings`.
    pub max_position_embeddings: usize,
    /// `type_vocab_size`.
    pub type_vocab_size: usize,
    /// `layer_norm_eps` (as f32).
    pub layer_norm_eps: f32,
    /// `hidden_act`.
    pub hidden_act: Activation,
}

fn cfg_err(message: String) -> ModelError {
    ModelError::Config { message }
}

impl BertConfig {
    /// Parses a `config.json`.
    pub fn parse(json: &[u8]) -> Result<BertConfig> {
        let v: Value =
            serde_json::from_slice(json).map_err(|e| cfg_err(format!("not JSON: {e}")))?;
        let size = |k: &str, max: usize| -> Result<usize> {
            let n = v
                .get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| cfg_err(format!("{k} is missing or not a positive integer")))?;
            if n == 0 || n > max as u64 {
                return Err(cfg_err(format!("{k} = {n} is outside 1..={max}")));
            }
            Ok(n as usize)
        };
        match v.get("model_type").and_then(Value::as_str) {
            Some("bert") | None => {}
            Some(other) => {
                return Err(cfg_err(format!(
                    "model_type {other:?}: only \"bert\" encoders are built from safetensors (import other models from ONNX)"
                )))
            }
        }
        if let Some(p) = v.get("position_embedding_type").and_then(Value::as_str) {
            if p != "absolute" {
                return Err(cfg_err(format!(
                    "position_embedding_type {p:?} is not supported"
                )));
            }
        }
        let hidden_act = match v
            .get("hidden_act")
            .and_then(Value::as_str)
            .unwrap_or("gelu")
        {
            "gelu" => Activation::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => return Err(cfg_err(format!("hidden_act {other:?} is not supported"))),
        };
        let cfg = BertConfig {
            vocab_size: size("vocab_size", 1 << 22)?,
            hidden_size: size("hidden_size", HIDDEN_MAX)?,
            num_hidden_layers: size("num_hidden_layers", LAYERS_MAX)?,
            num_attention_heads: size("num_attention_heads", HIDDEN_MAX)?,
            intermediate_size: size("intermediate_size", 4 * HIDDEN_MAX)?,
            max_position_embeddings: size("max_position_embeddings", 1 << 16)?,
            type_vocab_size: size("type_vocab_size", 1 << 10)?,
            layer_norm_eps: v
                .get("layer_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-12) as f32,
            hidden_act,
        };
        if !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) {
            return Err(cfg_err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                cfg.hidden_size, cfg.num_attention_heads
            )));
        }
        Ok(cfg)
    }
}

/// How token states become the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over the attention mask, then L2 normalisation (sentence-transformers'
    /// `Pooling(mean)` + `Normalize`): output `embedding`.
    MeanNormalized,
    /// Mean over the attention mask, not normalised: output `embedding`.
    Mean,
    /// No pooling: output `last_hidden_state`.
    None,
}

/// The shape of the jobs a built model takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BertShape {
    /// Sequences per job.
    pub batch: usize,
    /// Tokens per sequence (padded).
    pub seq: usize,
}

/// The descriptor of a text job: ids `i32 [batch, seq]`, mask `u8 [batch, seq]` (zeros
/// here; the job fills it).
pub fn text_descriptor(shape: BertShape) -> InputTensorDescriptor {
    let dims = [shape.batch, shape.seq];
    let mut d = InputTensorDescriptor::dense(DType::I32, &dims, Normalisation::None);
    d.attention_mask = Some(SideTensor {
        shape: dims.to_vec(),
        data: HostData::U8(vec![0; shape.batch * shape.seq]),
    });
    d
}

/// A BERT model's config and weights.
pub struct Bert {
    /// The config.
    pub config: BertConfig,
    weights: Weights,
    prefix: String,
}

impl Bert {
    /// Reads `config.json` and `model.safetensors` from a model directory.
    pub fn open(dir: &Path) -> Result<Bert> {
        let cfg = read_capped(
            &dir.join("config.json"),
            "config.json bytes",
            CONFIG_BYTES_MAX,
        )?;
        let config = BertConfig::parse(&cfg)?;
        Bert::new(config, Weights::open(&dir.join("model.safetensors"))?)
    }

    /// A model from a parsed config and its weights. Weight names may carry a `bert.`
    /// prefix (a `BertModel` saved inside a task head).
    pub fn new(config: BertConfig, weights: Weights) -> Result<Bert> {
        let prefix = if weights.contains("embeddings.word_embeddings.weight")? {
            ""
        } else if weights.contains("bert.embeddings.word_embeddings.weight")? {
            "bert."
        } else {
            return Err(ModelError::MissingTensor {
                name: "embeddings.word_embeddings.weight".into(),
                file: "model.safetensors".into(),
            });
        };
        Ok(Bert {
            config,
            weights,
            prefix: prefix.into(),
        })
    }

    /// Builds the program for jobs of `shape`.
    pub fn build(&self, shape: BertShape, pooling: Pooling) -> Result<Program> {
        let cfg = &self.config;
        if shape.batch == 0 || shape.seq == 0 || shape.seq > cfg.max_position_embeddings {
            return Err(cfg_err(format!(
                "sequence length {} must be in 1..={} and the batch at least 1",
                shape.seq, cfg.max_position_embeddings
            )));
        }
        let b = ProgramBuilder::new(&text_descriptor(shape));
        let (bs, l, h) = (shape.batch, shape.seq, cfg.hidden_size);
        let ids = b.input(InputSlot::Main)?;
        let mask = b.input(InputSlot::Mask)?;

        let word = self.param(
            &b,
            "embeddings.word_embeddings.weight",
            &[cfg.vocab_size, h],
            false,
        )?;
        let pos = self.rows(
            &b,
            "embeddings.position_embeddings.weight",
            cfg.max_position_embeddings,
            l,
        )?;
        let typ = self.rows(
            &b,
            "embeddings.token_type_embeddings.weight",
            cfg.type_vocab_size,
            1,
        )?;
        let mut x = b.exec(&Prim::Gather, &[&word, &ids])?;
        x = c::binary(&b, BinaryOp::Add, &x, &pos)?;
        x = c::binary(&b, BinaryOp::Add, &x, &typ)?;
        x = self.layer_norm(&b, "embeddings.LayerNorm", &x)?;

        // Keys a query may attend: the mask as [batch, 1, 1, seq].
        let keys = b.view(&b.view(&mask, View::Unsqueeze(1))?, View::Unsqueeze(1))?;
        let heads = cfg.num_attention_heads;
        let dh = h / heads;
        for i in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{i}.");
            let split = |t: &Val| -> blocktorch::Result<Val> {
                let t = c::reshape(&b, t, &[bs, l, heads, dh])?;
                b.view(&t, View::Permute(vec![0, 2, 1, 3]))
            };
            let q = split(&self.linear(&b, &format!("{p}attention.self.query"), &x, h, h)?)?;
            let k = split(&self.linear(&b, &format!("{p}attention.self.key"), &x, h, h)?)?;
            let v = split(&self.linear(&b, &format!("{p}attention.self.value"), &x, h, h)?)?;
            let ctx = c::attention(
                &b,
                &q,
                &k,
                &v,
                Some(&keys),
                None,
                &AttentionOptions::default(),
            )?;
            let ctx = b.view(&ctx, View::Permute(vec![0, 2, 1, 3]))?;
            let ctx = c::reshape(&b, &ctx, &[bs, l, h])?;
            let a = self.linear(&b, &format!("{p}attention.output.dense"), &ctx, h, h)?;
            x = self.layer_norm(
                &b,
                &format!("{p}attention.output.LayerNorm"),
                &c::binary(&b, BinaryOp::Add, &a, &x)?,
            )?;
            let f = self.linear(
                &b,
                &format!("{p}intermediate.dense"),
                &x,
                h,
                cfg.intermediate_size,
            )?;
            let f = match cfg.hidden_act {
                Activation::GeluErf => c::unary(&b, UnaryOp::GeluErf, &f)?,
                Activation::GeluTanh => c::unary(&b, UnaryOp::GeluTanh, &f)?,
                Activation::Relu => c::unary(&b, UnaryOp::Relu, &f)?,
            };
            let o = self.linear(
                &b,
                &format!("{p}output.dense"),
                &f,
                cfg.intermediate_size,
                h,
            )?;
            x = self.layer_norm(
                &b,
                &format!("{p}output.LayerNorm"),
                &c::binary(&b, BinaryOp::Add, &o, &x)?,
            )?;
        }

        match pooling {
            Pooling::None => {
                let y = b.exec(&Prim::Copy, &[&x])?;
                b.output("last_hidden_state", &y);
            }
            Pooling::Mean | Pooling::MeanNormalized => {
                let mut e = mean_pool(&b, &x, &mask)?;
                if pooling == Pooling::MeanNormalized {
                    e = l2_normalise(&b, &e)?;
                }
                b.output("embedding", &e);
            }
        }
        Ok(b.finish())
    }

    fn name(&self, n: &str) -> String {
        format!("{}{n}", self.prefix)
    }

    /// A weight as a constant; `transpose` stores a 2-D weight `[out, in]` as
    /// `[in, out]` so the program multiplies `x · w` (a copy at build time, exact).
    fn param(&self, b: &ProgramBuilder, n: &str, shape: &[usize], transpose: bool) -> Result<Val> {
        let name = self.name(n);
        let w = self.weights.get_shaped(&name, shape)?;
        let (data, dims) = if transpose {
            let (o, i) = (shape[0], shape[1]);
            let mut t = vec![0f32; o * i];
            for r in 0..o {
                for col in 0..i {
                    t[col * o + r] = w.data[r * i + col];
                }
            }
            (t, vec![i, o])
        } else {
            (w.data, shape.to_vec())
        };
        Ok(b.param(&name, HostData::F32(data), &dims)?)
    }

    /// The first `take` rows of a `[rows, hidden]` table, as a constant.
    fn rows(&self, b: &ProgramBuilder, n: &str, rows: usize, take: usize) -> Result<Val> {
        let name = self.name(n);
        let h = self.config.hidden_size;
        let w = self.weights.get_shaped(&name, &[rows, h])?;
        Ok(b.param(
            &name,
            HostData::F32(w.data[..take * h].to_vec()),
            &[take, h],
        )?)
    }

    /// `x · Wᵀ + b` of the `torch.nn.Linear` named `n`.
    fn linear(
        &self,
        b: &ProgramBuilder,
        n: &str,
        x: &Val,
        d_in: usize,
        d_out: usize,
    ) -> Result<Val> {
        let w = self.param(b, &format!("{n}.weight"), &[d_out, d_in], true)?;
        let bias = self.param(b, &format!("{n}.bias"), &[d_out], false)?;
        let y = b.exec(&Prim::Matmul, &[x, &w])?;
        Ok(c::binary(b, BinaryOp::Add, &y, &bias)?)
    }

    fn layer_norm(&self, b: &ProgramBuilder, n: &str, x: &Val) -> Result<Val> {
        let h = self.config.hidden_size;
        let w = self.param(b, &format!("{n}.weight"), &[h], false)?;
        let bias = self.param(b, &format!("{n}.bias"), &[h], false)?;
        Ok(c::layer_norm(
            b,
            x,
            1,
            Some(&w),
            Some(&bias),
            self.config.layer_norm_eps,
        )?)
    }
}

/// sentence-transformers' mean pooling: `Σ_t x[t]·m[t] / max(Σ_t m[t], 1e-9)` over the
/// sequence axis, with `m` the mask as f32.
pub fn mean_pool<B: Backend>(b: &B, x: &B::T, mask: &B::T) -> blocktorch::Result<B::T> {
    let m = b.exec(&Prim::Cast(DType::F32), &[mask])?;
    let m = b.view(&m, View::Unsqueeze(2))?;
    let s = c::sum(b, &c::binary(b, BinaryOp::Mul, x, &m)?, &[1], false)?;
    let n = c::sum(b, &m, &[1], false)?;
    let n = c::binary(b, BinaryOp::Max, &n, &c::scalar(b, 1e-9)?)?;
    c::binary(b, BinaryOp::Div, &s, &n)
}

/// `torch.nn.functional.normalize(x, p=2, dim=-1)`: `x / max(√(Σ x²), 1e-12)`.
pub fn l2_normalise<B: Backend>(b: &B, x: &B::T) -> blocktorch::Result<B::T> {
    let sq = c::binary(b, BinaryOp::Mul, x, x)?;
    let n = c::unary(b, UnaryOp::Sqrt, &c::sum(b, &sq, &[-1], true)?)?;
    let n = c::binary(b, BinaryOp::Max, &n, &c::scalar(b, 1e-12)?)?;
    c::binary(b, BinaryOp::Div, x, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_missing_a_size_is_one_clear_error() {
        let e = BertConfig::parse(br#"{"hidden_size": 8}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config: vocab_size is missing or not a positive integer"
        );
        let e = BertConfig::parse(b"{").unwrap_err();
        assert!(e.to_string().starts_with("config: not JSON"), "{e}");
        let e = BertConfig::parse(br#"{"model_type": "gpt2"}"#).unwrap_err();
        assert!(e.to_string().contains("only \"bert\""), "{e}");
    }
}
