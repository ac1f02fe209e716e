//! The seeded random-program differential harness: chains of primitives and composites
//! drawn from one seed, run on a fabric under test and on the CPU reference, every
//! step's output compared bit for bit (NaN payloads canonicalised).
//!
//! Where [`crate::conformance`] checks each op on fresh inputs, a program feeds op
//! outputs into later ops: values that were produced by the fabric itself, views of
//! them (transposed, sliced, broadcast, reshaped), non-f32 values (masks, indices,
//! casts) and the edge values that propagate through a chain. A program is a value
//! pool that starts with 1–3 random f32 inputs; each step takes operands from the pool
//! (by index) or freshly generated ones, and pushes its result. One program in
//! [`REFUSAL_ONE_IN`] ends with a step built to be refused (an out-of-range index, a
//! shape mismatch), so refusals are compared too. One program in [`WILD_ONE_IN`] draws
//! extreme and edge values (±0, subnormals, ±∞, NaN, 1e±20); the others draw plain
//! values, so that their long chains stay mostly finite and every rounding counts.
//!
//! Generation is a pure function of the seed and the config ([`random_program`]), so
//! a failure names the seed that replays it. A new fabric proves itself by passing
//! [`run_random_programs`] with at least [`ProgramConfig::default`]'s 1,000 programs.

use crate::compose::{self, apply_view, AttentionOptions, FabricBackend, View};
use crate::conformance::{
    place, upload_elements, Arrange, ConformanceFailure, Gen, Input, CASE_ELEMENTS_MAX,
};
use crate::cpu::CpuFabric;
use crate::dtype::DType;
use crate::error::{Result, TensorError};
use crate::fabric::{Fabric, FabricTensor};
use crate::layout::broadcast_shapes;
use crate::ops::{BinaryOp, CompareOp, Prim, UnaryOp};
use crate::rng::SplitMix64;
use crate::storage::HostData;
use crate::RANK_MAX;
use std::fmt::Write as _;

/// Largest element count of any value a program creates (inputs, fresh operands and
/// step outputs).
pub const PROGRAM_VALUE_ELEMENTS_MAX: usize = CASE_ELEMENTS_MAX;
/// Largest `steps_max` honoured; a larger one is clamped to it.
pub const PROGRAM_STEPS_MAX: usize = 256;
/// Largest `dim_max` honoured; a larger one is clamped to it.
pub const PROGRAM_DIM_MAX: usize = 1024;
/// Most initial input values of a program.
pub const PROGRAM_INPUTS_MAX: usize = 3;
/// One program in this many ends with a step built to be refused.
pub const REFUSAL_ONE_IN: usize = 32;
/// Pairs of pool values are drawn from this many most recent values.
const PAIR_WINDOW: usize = 16;
/// One program in this many is wild: its f32 operands have values scaled by 1e±20
/// and half of them edge values; the others draw plain values in [−3, 3) only, so
/// that most of their outputs are finite and every rounding is compared.
pub const WILD_ONE_IN: usize = 2;
/// In an f32 operand with edge values, one value in this many is an edge value.
const EDGE_ONE_IN: usize = 16;
/// Of the unary ops defined on x ≥ 0 only, all but one in this many take |x|.
const RAW_DOMAIN_ONE_IN: usize = 4;
/// Tries at drawing a step kind whose preconditions hold before falling back to unary.
const KIND_TRIES: usize = 8;
/// Slots of the step-kind draw in `Builder::step` (unary takes two).
const STEP_KINDS: usize = 25;
/// Exponents of `PowScalar` steps.
const POW_EXPONENTS: [f32; 8] = [2.0, 3.0, -1.5, 0.5, 0.0, 7.0, -1.0, 1.0 / 3.0];
/// Fill values of `masked_fill` steps.
const FILL_VALUES: [f32; 5] = [0.0, f32::NEG_INFINITY, -1.0e9, f32::NAN, 1.0];
/// Every unary op but `PowScalar` (the first 14 of `UnaryOp::ALL`), whose exponent is
/// drawn from [`POW_EXPONENTS`].
fn unary_fixed() -> &'static [UnaryOp] {
    &UnaryOp::ALL[..14]
}

/// What [`run_random_programs`] generates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramConfig {
    /// Seed of the run; program `i` uses [`program_seed`]`(seed, i)`.
    pub seed: u64,
    /// Programs to run.
    pub count: usize,
    /// Most steps of a program (each has 3..=`steps_max`); clamped to
    /// 3..=[`PROGRAM_STEPS_MAX`].
    pub steps_max: usize,
    /// Largest dimension of random shapes (matmul widths go up to 2× this); clamped to
    /// 2..=[`PROGRAM_DIM_MAX`]. Values never exceed [`PROGRAM_VALUE_ELEMENTS_MAX`].
    pub dim_max: usize,
}

impl Default for ProgramConfig {
    fn default() -> Self {
        ProgramConfig {
            seed: 0x9e0_b10c,
            count: 1000,
            steps_max: 12,
            dim_max: 48,
        }
    }
}

/// A passed run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramReport {
    /// Fabric name and description.
    pub fabric: String,
    /// Programs compared.
    pub programs: usize,
    /// Steps compared, refused steps included.
    pub steps: usize,
    /// Output elements compared.
    pub elements: usize,
    /// Programs ended by a step that both fabrics refused with the same error.
    pub refused: usize,
}

/// One seeded random program: initial inputs and the steps that build on them.
/// Built by [`random_program`], run by [`run_program`].
#[derive(Clone, Debug)]
pub struct Program {
    seed: u64,
    wild: bool,
    inputs: Vec<Input>,
    steps: Vec<Step>,
}

/// A step operand: a pool value (inputs first, then step outputs, in order) or fresh
/// host data placed on the fabric for this step only.
#[derive(Clone, Debug)]
enum Operand {
    Value(usize),
    Fresh(Input),
}

/// What a step computes; operands are listed in the order the op takes them.
#[derive(Clone, Debug)]
enum StepOp {
    /// `[x]`, or `[|x|]` when `of_abs` (for ops defined on x ≥ 0 only).
    Unary { op: UnaryOp, of_abs: bool },
    /// `[a, b]`.
    Binary(BinaryOp),
    /// `[a, b]` → u8.
    Compare(CompareOp),
    /// `[cond, a, b]`.
    Select,
    /// `[x, mask]`: `compose::masked_fill` with this value.
    MaskedFill(f32),
    /// `[a, b]`, `b` transposed (a view) first when asked.
    Matmul { transpose_rhs: bool },
    /// `[x]`.
    Softmax { axis: isize },
    /// `[x]`.
    LogSoftmax { axis: isize },
    /// `[x, weight, bias]` over the last `dims` axes.
    LayerNorm { dims: usize },
    /// `[x]`.
    Reduce {
        op: Reduction,
        axes: Vec<isize>,
        keepdim: bool,
    },
    /// `[x]` → i32.
    ArgMax { axis: isize, keepdim: bool },
    /// `[x]`: swap two axes; materialise with `Prim::Copy` when `contiguous`.
    Transpose {
        a: isize,
        b: isize,
        contiguous: bool,
    },
    /// `[x]`: a strided slice view.
    Slice {
        axis: usize,
        start: usize,
        end: usize,
        step: usize,
    },
    /// `[x]`: a broadcast (stride 0) view.
    Expand(Vec<usize>),
    /// `[x]`: `compose::reshape`.
    Reshape(Vec<usize>),
    /// `[x]`.
    Cast(DType),
    /// `[x0, x1, ..]`.
    Concat { axis: isize },
    /// `[table, idx]`: `compose::embedding`.
    Gather,
    /// `[q, k, v, mask?, bias?]`.
    Attention {
        masked: bool,
        biased: bool,
        causal: bool,
    },
    /// `[idx, src]`: `Prim::IndexAdd`.
    IndexAdd { rows: usize },
}

/// The axis reductions of `compose`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reduction {
    Sum,
    Mean,
    Max,
}

impl StepOp {
    /// The step kind: the first word of a step name.
    fn kind(&self) -> &'static str {
        match self {
            StepOp::Unary { .. } => "unary",
            StepOp::Binary(_) => "binary",
            StepOp::Compare(_) => "compare",
            StepOp::Select => "select",
            StepOp::MaskedFill(_) => "masked_fill",
            StepOp::Matmul { .. } => "matmul",
            StepOp::Softmax { .. } => "softmax",
            StepOp::LogSoftmax { .. } => "log_softmax",
            StepOp::LayerNorm { .. } => "layer_norm",
            StepOp::Reduce { op, .. } => match op {
                Reduction::Sum => "sum",
                Reduction::Mean => "mean",
                Reduction::Max => "max",
            },
            StepOp::ArgMax { .. } => "argmax",
            StepOp::Transpose { .. } => "transpose",
            StepOp::Slice { .. } => "slice",
            StepOp::Expand(_) => "expand",
            StepOp::Reshape(_) => "reshape",
            StepOp::Cast(_) => "cast",
            StepOp::Concat { .. } => "concat",
            StepOp::Gather => "gather",
            StepOp::Attention { .. } => "attention",
            StepOp::IndexAdd { .. } => "index_add",
        }
    }

    /// The op's parameters, for step names.
    fn detail(&self) -> String {
        match self {
            StepOp::Unary { op, of_abs } => {
                format!("{op:?}{}", if *of_abs { " of |x|" } else { "" })
            }
            StepOp::Binary(op) => format!("{op:?}"),
            StepOp::Compare(op) => format!("{op:?}"),
            StepOp::Select | StepOp::Gather => String::new(),
            StepOp::MaskedFill(v) => format!("value {v}"),
            StepOp::Matmul { transpose_rhs } => {
                if *transpose_rhs {
                    "rhs transposed".into()
                } else {
                    String::new()
                }
            }
            StepOp::Softmax { axis } | StepOp::LogSoftmax { axis } => format!("axis {axis}"),
            StepOp::LayerNorm { dims } => format!("dims {dims}"),
            StepOp::Reduce { axes, keepdim, .. } => format!("axes {axes:?} keepdim {keepdim}"),
            StepOp::ArgMax { axis, keepdim } => format!("axis {axis} keepdim {keepdim}"),
            StepOp::Transpose { a, b, contiguous } => {
                format!("{a}<->{b}{}", if *contiguous { " contiguous" } else { "" })
            }
            StepOp::Slice {
                axis,
                start,
                end,
                step,
            } => format!("axis {axis} {start}..{end} step {step}"),
            StepOp::Expand(shape) => format!("to {shape:?}"),
            StepOp::Reshape(shape) => format!("to {shape:?}"),
            StepOp::Cast(to) => format!("to {to}"),
            StepOp::Concat { axis } => format!("axis {axis}"),
            StepOp::Attention {
                masked,
                biased,
                causal,
            } => format!("masked {masked} biased {biased} causal {causal}"),
            StepOp::IndexAdd { rows } => format!("rows {rows}"),
        }
    }
}

/// One step: an op, its operands, and the result's dtype and shape (`None` for a step
/// built to be refused, always the last).
#[derive(Clone, Debug)]
struct Step {
    op: StepOp,
    operands: Vec<Operand>,
    out: Option<(DType, Vec<usize>)>,
}

impl Program {
    /// The seed the program was generated from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Whether the program is wild (see [`WILD_ONE_IN`]).
    pub fn is_wild(&self) -> bool {
        self.wild
    }

    /// Number of steps (at least 3).
    pub fn step_count(&self) -> usize {
        self.steps.len()
    }

    /// A readable name of each step: the kind first (`matmul`, `unary`, `gather`, …),
    /// then its parameters, operands and result.
    pub fn step_names(&self) -> Vec<String> {
        (0..self.steps.len()).map(|k| self.step_name(k)).collect()
    }

    /// Whether the last step is built to be refused (by every fabric, with one error).
    pub fn expects_refusal(&self) -> bool {
        self.steps.last().is_some_and(|s| s.out.is_none())
    }

    fn value_meta(&self, i: usize) -> Option<(DType, &[usize])> {
        match i.checked_sub(self.inputs.len()) {
            None => self
                .inputs
                .get(i)
                .map(|inp| (inp.data.dtype(), &inp.shape[..])),
            Some(k) => self
                .steps
                .get(k)
                .and_then(|s| s.out.as_ref())
                .map(|(d, s)| (*d, &s[..])),
        }
    }

    fn step_name(&self, k: usize) -> String {
        let Some(step) = self.steps.get(k) else {
            return format!("step {k} (none)");
        };
        let operands: Vec<String> = step
            .operands
            .iter()
            .map(|o| match o {
                Operand::Value(i) => match self.value_meta(*i) {
                    Some((d, s)) => format!("v{i} {d} {s:?}"),
                    None => format!("v{i}"),
                },
                Operand::Fresh(inp) => format!(
                    "fresh {} {:?}{}",
                    inp.data.dtype(),
                    inp.shape,
                    arrange_suffix(inp.arrange)
                ),
            })
            .collect();
        let out = match &step.out {
            Some((d, s)) => format!("{d} {s:?}"),
            None => "refused".into(),
        };
        let detail = step.op.detail();
        let sep = if detail.is_empty() { "" } else { " " };
        format!(
            "{}{sep}{detail} ({}) -> v{} {out}",
            step.op.kind(),
            operands.join(", "),
            self.inputs.len() + k
        )
    }

    fn stage_name(&self, stage: Stage) -> String {
        match stage {
            Stage::Input(j) => match self.inputs.get(j) {
                Some(inp) => format!(
                    "input {j} ({} {:?}{})",
                    inp.data.dtype(),
                    inp.shape,
                    arrange_suffix(inp.arrange)
                ),
                None => format!("input {j}"),
            },
            Stage::Step(k) => format!("step {k} ({})", self.step_name(k)),
        }
    }
}

fn arrange_suffix(a: Arrange) -> &'static str {
    match a {
        Arrange::Plain => "",
        Arrange::Transposed => " transposed",
        Arrange::Strided => " strided",
    }
}

/// The seed of program `index` of a run seeded with `seed`: SplitMix64 of
/// `seed ^ index·0x9e3779b97f4a7c15` (distinct for every index).
pub fn program_seed(seed: u64, index: usize) -> u64 {
    SplitMix64::new(seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64()
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Whether a result of `shape` is small enough for a program value.
fn fits(shape: &[usize]) -> bool {
    shape.len() <= RANK_MAX && numel(shape) <= PROGRAM_VALUE_ELEMENTS_MAX
}

mod generate;
mod run;
#[cfg(test)]
mod tests;

pub use generate::random_program;
use generate::*;
#[cfg(test)]
use run::*;
pub use run::{run_program, run_random_programs};
