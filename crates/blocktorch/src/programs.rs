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

/// The generator state: the random source and the dtype and shape of every pool value.
struct Builder {
    g: Gen,
    pool: Vec<(DType, Vec<usize>)>,
    dim_max: usize,
    wild: bool,
}

/// How the values of one f32 operand are drawn (`Gen::f32s_mixed`).
#[derive(Clone, Copy)]
struct Mix {
    edge_one_in: usize,
    scaled: bool,
}

impl Mix {
    const TAME: Mix = Mix {
        edge_one_in: 0,
        scaled: false,
    };
}

type Meta = (DType, Vec<usize>);

impl Builder {
    fn coin(&mut self) -> bool {
        self.g.below(2) == 0
    }

    /// A pool value satisfying `pred`: the most recent one half the time, else uniform.
    fn pick(&mut self, pred: impl Fn(&Meta) -> bool) -> Option<usize> {
        let cands: Vec<usize> = (0..self.pool.len())
            .filter(|&i| pred(&self.pool[i]))
            .collect();
        let last = *cands.last()?;
        if self.coin() {
            return Some(last);
        }
        cands.get(self.g.below(cands.len())).copied()
    }

    /// An ordered pair (maybe one value twice) among the [`PAIR_WINDOW`] most recent
    /// pool values satisfying `pred`.
    fn pick_pair(&mut self, pred: impl Fn(&Meta, &Meta) -> bool) -> Option<(usize, usize)> {
        let lo = self.pool.len().saturating_sub(PAIR_WINDOW);
        let mut cands = Vec::new();
        for i in lo..self.pool.len() {
            for j in lo..self.pool.len() {
                if pred(&self.pool[i], &self.pool[j]) {
                    cands.push((i, j));
                }
            }
        }
        if cands.is_empty() {
            return None;
        }
        cands.get(self.g.below(cands.len())).copied()
    }

    fn meta(&self, i: usize) -> Option<Meta> {
        self.pool.get(i).cloned()
    }

    /// A random axis of `rank` (≥ 1), negative half the time.
    fn axis(&mut self, rank: usize) -> isize {
        let a = self.g.below(rank) as isize;
        if self.coin() {
            a - rank as isize
        } else {
            a
        }
    }

    /// How the values of the next f32 operand are drawn (see [`WILD_ONE_IN`]).
    fn mix(&mut self) -> Mix {
        if !self.wild {
            return Mix::TAME;
        }
        Mix {
            edge_one_in: if self.coin() { EDGE_ONE_IN } else { 0 },
            scaled: true,
        }
    }

    /// A fresh f32 operand in a random arrangement, values as [`Builder::mix`] says.
    fn fresh_f32(&mut self, shape: Vec<usize>) -> Operand {
        let mix = self.mix();
        self.fresh_f32_mix(shape, mix)
    }

    fn fresh_f32_mix(&mut self, shape: Vec<usize>, mix: Mix) -> Operand {
        Operand::Fresh(self.g.f32_input_mixed(shape, mix.edge_one_in, mix.scaled))
    }

    /// Fresh indices in `0..bound`, i32 or u32, in a random arrangement.
    fn fresh_index(&mut self, shape: Vec<usize>, bound: usize) -> Input {
        let arrange = self.g.arrange(shape.len());
        self.index_input(shape, arrange, bound)
    }

    /// Fresh indices in `0..bound`, i32 or u32, placed as `arrange`.
    fn index_input(&mut self, shape: Vec<usize>, arrange: Arrange, bound: usize) -> Input {
        let n = upload_elements(&shape, arrange);
        let data = if self.coin() {
            HostData::I32((0..n).map(|_| self.g.below(bound) as i32).collect())
        } else {
            HostData::U32((0..n).map(|_| self.g.below(bound) as u32).collect())
        };
        Input {
            data,
            shape,
            arrange,
        }
    }

    /// A fresh 0/1 mask in a random arrangement.
    fn fresh_mask(&mut self, shape: Vec<usize>) -> Operand {
        let arrange = self.g.arrange(shape.len());
        let n = upload_elements(&shape, arrange);
        let data = HostData::U8((0..n).map(|_| (self.g.below(3) != 0) as u8).collect());
        Operand::Fresh(Input {
            data,
            shape,
            arrange,
        })
    }

    /// A shape that broadcasts to `shape`: a scalar a quarter of the time, else a
    /// suffix of `shape` with some dims set to 1.
    fn partner_shape(&mut self, shape: &[usize]) -> Vec<usize> {
        if shape.is_empty() || self.g.below(4) == 0 {
            return Vec::new();
        }
        let drop = self.g.below(shape.len());
        shape[drop..]
            .iter()
            .map(|&d| if self.g.below(3) == 0 { 1 } else { d })
            .collect()
    }

    /// A random step whose preconditions hold.
    fn step(&mut self) -> Step {
        for _ in 0..KIND_TRIES {
            let step = match self.g.below(STEP_KINDS) {
                0 | 1 => Some(self.unary()),
                2 => self.binary_fresh(),
                3 => self.binary_values(),
                4 => self.compare(),
                5 => self.select(),
                6 => self.masked_fill(),
                7 => self.matmul_fresh(),
                8 => self.matmul_values(),
                9 => self.softmax(false),
                10 => self.softmax(true),
                11 => self.layer_norm(),
                12 => self.reduce(Reduction::Sum),
                13 => self.reduce(Reduction::Mean),
                14 => self.reduce(Reduction::Max),
                15 => self.argmax(),
                16 => self.transpose(),
                17 => self.slice(),
                18 => self.expand(),
                19 => self.reshape(),
                20 => self.cast(),
                21 => self.concat(),
                22 => self.gather(),
                23 => self.attention(),
                _ => self.index_add(),
            };
            let small = |s: &Step| {
                s.out.as_ref().is_some_and(|(_, s)| fits(s))
                    && s.operands.iter().all(|o| match o {
                        Operand::Value(_) => true,
                        Operand::Fresh(input) => fits(&input.shape),
                    })
            };
            if let Some(step) = step.filter(small) {
                return step;
            }
        }
        self.unary()
    }

    fn is_f32(m: &Meta) -> bool {
        m.0 == DType::F32
    }

    /// A unary op on an f32 value (value 0, an f32 input, always qualifies).
    fn unary(&mut self) -> Step {
        let x = self.pick(Self::is_f32).unwrap_or(0);
        let k = self.g.below(unary_fixed().len() + 4);
        let op = match unary_fixed().get(k) {
            Some(op) => *op,
            None => UnaryOp::PowScalar(POW_EXPONENTS[self.g.below(POW_EXPONENTS.len())]),
        };
        let of_abs = !defined_everywhere(op) && self.g.below(RAW_DOMAIN_ONE_IN) != 0;
        let shape = self.meta(x).map(|m| m.1).unwrap_or_default();
        Step {
            op: StepOp::Unary { op, of_abs },
            operands: vec![Operand::Value(x)],
            out: Some((DType::F32, shape)),
        }
    }

    /// An f32 value and a fresh f32 operand that broadcasts to it, in random order.
    fn pair_fresh(&mut self) -> Option<(Vec<Operand>, Vec<usize>)> {
        let x = self.pick(Self::is_f32)?;
        let xs = self.meta(x)?.1;
        let ys = self.partner_shape(&xs);
        let out = broadcast_shapes("program", &xs, &ys).ok()?;
        let y = self.fresh_f32(ys);
        let operands = if self.coin() {
            vec![Operand::Value(x), y]
        } else {
            vec![y, Operand::Value(x)]
        };
        Some((operands, out))
    }

    /// Two f32 pool values (maybe the same one) whose shapes broadcast.
    fn pair_values(&mut self) -> Option<(Vec<Operand>, Vec<usize>)> {
        let (a, b) = self.pick_pair(|a, b| {
            Self::is_f32(a)
                && Self::is_f32(b)
                && broadcast_shapes("program", &a.1, &b.1).is_ok_and(|s| fits(&s))
        })?;
        let out = broadcast_shapes("program", &self.meta(a)?.1, &self.meta(b)?.1).ok()?;
        Some((vec![Operand::Value(a), Operand::Value(b)], out))
    }

    fn binary_fresh(&mut self) -> Option<Step> {
        let op = BinaryOp::ALL[self.g.below(BinaryOp::ALL.len())];
        let (operands, out) = self.pair_fresh()?;
        Some(Step {
            op: StepOp::Binary(op),
            operands,
            out: Some((DType::F32, out)),
        })
    }

    fn binary_values(&mut self) -> Option<Step> {
        let op = BinaryOp::ALL[self.g.below(BinaryOp::ALL.len())];
        let (operands, out) = self.pair_values()?;
        Some(Step {
            op: StepOp::Binary(op),
            operands,
            out: Some((DType::F32, out)),
        })
    }

    fn compare(&mut self) -> Option<Step> {
        let op = CompareOp::ALL[self.g.below(CompareOp::ALL.len())];
        let (operands, out) = if self.coin() {
            self.pair_fresh()?
        } else {
            self.pair_values()?
        };
        Some(Step {
            op: StepOp::Compare(op),
            operands,
            out: Some((DType::U8, out)),
        })
    }

    /// A u8 mask (a pool value half the time, else fresh) and an f32 value it
    /// broadcasts with; returns (mask, value, broadcast shape).
    fn mask_and_value(&mut self) -> Option<(Operand, usize, Vec<usize>)> {
        let pair = if self.coin() {
            self.pick_pair(|c, x| {
                c.0 == DType::U8
                    && Self::is_f32(x)
                    && broadcast_shapes("program", &c.1, &x.1).is_ok_and(|s| fits(&s))
            })
        } else {
            None
        };
        match pair {
            Some((c, x)) => {
                let out = broadcast_shapes("program", &self.meta(c)?.1, &self.meta(x)?.1).ok()?;
                Some((Operand::Value(c), x, out))
            }
            None => {
                let x = self.pick(Self::is_f32)?;
                let xs = self.meta(x)?.1;
                let cs = self.partner_shape(&xs);
                let out = broadcast_shapes("program", &cs, &xs).ok()?;
                Some((self.fresh_mask(cs), x, out))
            }
        }
    }

    fn select(&mut self) -> Option<Step> {
        let (cond, x, cx) = self.mask_and_value()?;
        let ys = self.partner_shape(&cx);
        let y = self.fresh_f32(ys);
        let operands = if self.coin() {
            vec![cond, Operand::Value(x), y]
        } else {
            vec![cond, y, Operand::Value(x)]
        };
        Some(Step {
            op: StepOp::Select,
            operands,
            out: Some((DType::F32, cx)),
        })
    }

    fn masked_fill(&mut self) -> Option<Step> {
        let (mask, x, out) = self.mask_and_value()?;
        let value = FILL_VALUES[self.g.below(FILL_VALUES.len())];
        Some(Step {
            op: StepOp::MaskedFill(value),
            operands: vec![Operand::Value(x), mask],
            out: Some((DType::F32, out)),
        })
    }

    /// An f32 value of rank ≥ 2 times a fresh weight `[k, n]`.
    fn matmul_fresh(&mut self) -> Option<Step> {
        let x = self.pick(|m| Self::is_f32(m) && m.1.len() >= 2)?;
        let xs = self.meta(x)?.1;
        let (&k, lead) = xs.split_last()?;
        // Both the weight and the result must fit.
        let n_max = PROGRAM_VALUE_ELEMENTS_MAX / numel(lead).max(k).max(1);
        if n_max == 0 {
            return None;
        }
        let n = (1 + self.g.below(2 * self.dim_max)).min(n_max);
        let w = self.fresh_f32(vec![k, n]);
        let mut out = lead.to_vec();
        out.push(n);
        Some(Step {
            op: StepOp::Matmul {
                transpose_rhs: false,
            },
            operands: vec![Operand::Value(x), w],
            out: Some((DType::F32, out)),
        })
    }

    /// Batched matmul of two f32 pool values (`b` transposed when asked); `a · aᵀ`
    /// always qualifies when small enough.
    fn matmul_values(&mut self) -> Option<Step> {
        let first = self.coin();
        for transpose_rhs in [first, !first] {
            let found = self.pick_pair(|a, b| {
                Self::is_f32(a)
                    && Self::is_f32(b)
                    && matmul_shape(&a.1, &b.1, transpose_rhs).is_some_and(|s| fits(&s))
            });
            if let Some((a, b)) = found {
                let out = matmul_shape(&self.meta(a)?.1, &self.meta(b)?.1, transpose_rhs)?;
                return Some(Step {
                    op: StepOp::Matmul { transpose_rhs },
                    operands: vec![Operand::Value(a), Operand::Value(b)],
                    out: Some((DType::F32, out)),
                });
            }
        }
        None
    }

    fn softmax(&mut self, log: bool) -> Option<Step> {
        let x = self.pick(|m| Self::is_f32(m) && !m.1.is_empty())?;
        let xs = self.meta(x)?.1;
        let axis = if self.g.below(4) == 0 {
            self.axis(xs.len())
        } else {
            -1
        };
        Some(Step {
            op: if log {
                StepOp::LogSoftmax { axis }
            } else {
                StepOp::Softmax { axis }
            },
            operands: vec![Operand::Value(x)],
            out: Some((DType::F32, xs)),
        })
    }

    fn layer_norm(&mut self) -> Option<Step> {
        let x = self.pick(|m| Self::is_f32(m) && !m.1.is_empty())?;
        let xs = self.meta(x)?.1;
        let dims = if xs.len() >= 2 && self.g.below(3) == 0 {
            2
        } else {
            1
        };
        let ps = xs[xs.len() - dims..].to_vec();
        let w = self.fresh_f32(ps.clone());
        let b = self.fresh_f32(ps);
        Some(Step {
            op: StepOp::LayerNorm { dims },
            operands: vec![Operand::Value(x), w, b],
            out: Some((DType::F32, xs)),
        })
    }

    /// Sum, mean or max over a random axis set (empty: every axis) of any f32 value.
    fn reduce(&mut self, op: Reduction) -> Option<Step> {
        let x = self.pick(Self::is_f32)?;
        let xs = self.meta(x)?.1;
        let rank = xs.len();
        let mut picked = Vec::new();
        let mut axes = Vec::new();
        for d in 0..rank {
            if self.coin() {
                picked.push(d);
                axes.push(if self.coin() {
                    d as isize - rank as isize
                } else {
                    d as isize
                });
            }
        }
        if self.coin() {
            axes.reverse();
        }
        let keepdim = self.coin();
        let reduced = |d: usize| picked.is_empty() || picked.contains(&d);
        let out: Vec<usize> = (0..rank)
            .filter_map(|d| match (reduced(d), keepdim) {
                (false, _) => Some(xs[d]),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect();
        Some(Step {
            op: StepOp::Reduce { op, axes, keepdim },
            operands: vec![Operand::Value(x)],
            out: Some((DType::F32, out)),
        })
    }

    fn argmax(&mut self) -> Option<Step> {
        let x = self.pick(|m| Self::is_f32(m) && !m.1.is_empty())?;
        let mut out = self.meta(x)?.1;
        let axis = self.axis(out.len());
        let keepdim = self.coin();
        let a = axis.rem_euclid(out.len() as isize) as usize;
        if keepdim {
            out[a] = 1;
        } else {
            out.remove(a);
        }
        Some(Step {
            op: StepOp::ArgMax { axis, keepdim },
            operands: vec![Operand::Value(x)],
            out: Some((DType::I32, out)),
        })
    }

    fn transpose(&mut self) -> Option<Step> {
        let x = self.pick(|m| !m.1.is_empty())?;
        let (dtype, mut out) = self.meta(x)?;
        let rank = out.len();
        let (a, b) = (self.axis(rank), self.axis(rank));
        let contiguous = self.g.below(3) != 0;
        out.swap(
            a.rem_euclid(rank as isize) as usize,
            b.rem_euclid(rank as isize) as usize,
        );
        Some(Step {
            op: StepOp::Transpose { a, b, contiguous },
            operands: vec![Operand::Value(x)],
            out: Some((dtype, out)),
        })
    }

    fn slice(&mut self) -> Option<Step> {
        let x = self.pick(|m| !m.1.is_empty())?;
        let (dtype, mut out) = self.meta(x)?;
        let axis = self.g.below(out.len());
        let size = out[axis];
        let start = self.g.below(size);
        let step = 1 + self.g.below(3);
        let end = start + 1 + self.g.below(size - start + 2); // may pass the end: clamped
        out[axis] = (end.min(size) - start).div_ceil(step);
        Some(Step {
            op: StepOp::Slice {
                axis,
                start,
                end,
                step,
            },
            operands: vec![Operand::Value(x)],
            out: Some((dtype, out)),
        })
    }

    /// Broadcasts size-1 dims and maybe a new leading dim (a stride-0 view).
    fn expand(&mut self) -> Option<Step> {
        let x = self.pick(|m| m.1.len() < RANK_MAX)?;
        let (dtype, xs) = self.meta(x)?;
        let mut out: Vec<usize> = xs
            .iter()
            .map(|&d| {
                if d == 1 && self.coin() {
                    1 + self.g.below(4)
                } else {
                    d
                }
            })
            .collect();
        if out == xs || self.coin() {
            out.insert(0, 2 + self.g.below(2));
        }
        Some(Step {
            op: StepOp::Expand(out.clone()),
            operands: vec![Operand::Value(x)],
            out: Some((dtype, out)),
        })
    }

    /// A random factorisation of the element count into 1–4 dims.
    fn reshape(&mut self) -> Option<Step> {
        let x = self.pick(|_| true)?;
        let (dtype, xs) = self.meta(x)?;
        let mut rest = numel(&xs);
        let rank = 1 + self.g.below(4);
        let mut out = Vec::with_capacity(rank);
        for _ in 1..rank {
            let divisors: Vec<usize> = (1..=rest).filter(|&d| rest.is_multiple_of(d)).collect();
            let d = *divisors.get(self.g.below(divisors.len()))?;
            out.push(d);
            rest /= d;
        }
        out.push(rest);
        Some(Step {
            op: StepOp::Reshape(out.clone()),
            operands: vec![Operand::Value(x)],
            out: Some((dtype, out)),
        })
    }

    /// f32 to i32, u8 or u32; or (half the time, when the pool has one) a non-f32
    /// value back to f32 or to another dtype.
    fn cast(&mut self) -> Option<Step> {
        let back = if self.coin() {
            self.pick(|m| !Self::is_f32(m))
        } else {
            None
        };
        let (x, to) = match back {
            Some(x) => {
                let to = if self.g.below(4) == 0 {
                    DType::ALL[self.g.below(DType::ALL.len())]
                } else {
                    DType::F32
                };
                (x, to)
            }
            None => {
                let x = self.pick(Self::is_f32)?;
                let to = match self.g.below(5) {
                    0 | 1 => DType::I32,
                    2 | 3 => DType::U8,
                    _ => DType::U32,
                };
                (x, to)
            }
        };
        let xs = self.meta(x)?.1;
        Some(Step {
            op: StepOp::Cast(to),
            operands: vec![Operand::Value(x)],
            out: Some((to, xs)),
        })
    }

    /// A value joined with itself (2 or 3 copies) along a random axis, for f32 values
    /// sometimes with a fresh part of another size in between.
    fn concat(&mut self) -> Option<Step> {
        let x = self.pick(|m| !m.1.is_empty())?;
        let (dtype, xs) = self.meta(x)?;
        let rank = xs.len();
        let axis = self.axis(rank);
        let a = axis.rem_euclid(rank as isize) as usize;
        let mut operands = vec![Operand::Value(x); 2 + self.g.below(2)];
        let mut out = xs.clone();
        out[a] = xs[a] * operands.len();
        if !fits(&out) {
            return None;
        }
        if dtype == DType::F32 && self.coin() {
            let mut ps = xs.clone();
            ps[a] = 1 + self.g.below(5);
            out[a] += ps[a];
            if !fits(&out) {
                return None;
            }
            let at = self.g.below(operands.len() + 1);
            let part = self.fresh_f32(ps);
            operands.insert(at, part);
        }
        Some(Step {
            op: StepOp::Concat { axis },
            operands,
            out: Some((dtype, out)),
        })
    }

    /// Rows of an f32 value at fresh in-range indices (i32 or u32).
    fn gather(&mut self) -> Option<Step> {
        let t = self.pick(|m| Self::is_f32(m) && !m.1.is_empty())?;
        let ts = self.meta(t)?.1;
        let ix_rank = 1 + self.g.below(2);
        let ix = self.g.shape(ix_rank, 7);
        let mut out = ix.clone();
        out.extend_from_slice(&ts[1..]);
        let idx = self.fresh_index(ix, ts[0]);
        Some(Step {
            op: StepOp::Gather,
            operands: vec![Operand::Value(t), Operand::Fresh(idx)],
            out: Some((DType::F32, out)),
        })
    }

    /// Attention on small `[h, l, d]` operands; `q` is a pool value of rank 2 or 3
    /// when one is small enough and the coin says so, else fresh.
    fn attention(&mut self) -> Option<Step> {
        let pooled = if self.coin() {
            self.pick(|m| {
                Self::is_f32(m)
                    && (2..=3).contains(&m.1.len())
                    && m.1[0] <= 4
                    && m.1[m.1.len() - 2] <= 32
                    && m.1[m.1.len() - 1] <= 64
            })
        } else {
            None
        };
        let edges = self.mix();
        let (q, lead, lq, dh) = match pooled {
            Some(q) => {
                let qs = self.meta(q)?.1;
                let (lead, tail) = qs.split_at(qs.len() - 2);
                (Operand::Value(q), lead.to_vec(), tail[0], tail[1])
            }
            None => {
                let lead = vec![1 + self.g.below(3)];
                let (lq, dh) = (1 + self.g.below(16), 1 + self.g.below(32));
                let mut qs = lead.clone();
                qs.extend([lq, dh]);
                (self.fresh_f32_mix(qs, edges), lead, lq, dh)
            }
        };
        let (lk, dv) = (1 + self.g.below(16), 1 + self.g.below(16));
        let with = |tail: [usize; 2]| {
            let mut s = lead.clone();
            s.extend(tail);
            s
        };
        let (ks, vs, out) = (with([lk, dh]), with([lk, dv]), with([lq, dv]));
        if !fits(&with([lq, lk])) {
            return None;
        }
        let k = self.fresh_f32_mix(ks, edges);
        let v = self.fresh_f32_mix(vs, edges);
        let mut operands = vec![q, k, v];
        let masked = self.g.below(3) != 0;
        if masked {
            let mask: Vec<u8> = (0..lq * lk)
                .map(|j| (j % lk == 0 || self.g.below(4) != 0) as u8)
                .collect();
            operands.push(Operand::Fresh(Input {
                data: HostData::U8(mask),
                shape: vec![lq, lk],
                arrange: Arrange::Plain,
            }));
        }
        let biased = self.coin();
        if biased {
            let bs = if self.coin() {
                with([1, lk])
            } else {
                vec![lq, lk]
            };
            let bias = self.fresh_f32_mix(bs, Mix::TAME);
            operands.push(bias);
        }
        let causal = self.coin();
        Some(Step {
            op: StepOp::Attention {
                masked,
                biased,
                causal,
            },
            operands,
            out: Some((DType::F32, out)),
        })
    }

    /// An f32 value's rows (over its first 1 or 2 dims) added into `rows` rows at fresh
    /// in-range indices.
    fn index_add(&mut self) -> Option<Step> {
        let src = self.pick(|m| Self::is_f32(m) && !m.1.is_empty())?;
        let ss = self.meta(src)?.1;
        let j = if ss.len() >= 2 && self.coin() { 2 } else { 1 };
        let rows = 1 + self.g.below(self.dim_max);
        let mut out = vec![rows];
        out.extend_from_slice(&ss[j..]);
        let idx = self.fresh_index(ss[..j].to_vec(), rows);
        Some(Step {
            op: StepOp::IndexAdd { rows },
            operands: vec![Operand::Fresh(idx), Operand::Value(src)],
            out: Some((DType::F32, out)),
        })
    }

    /// A step every fabric must refuse: an out-of-range gather or index_add index, a
    /// matmul with mismatched inner dims, or a binary op on shapes that do not
    /// broadcast.
    fn refused(&mut self) -> Step {
        let kind = self.g.below(4);
        if kind == 2 {
            let k_max = 2 * self.dim_max;
            let small_k = |m: &Meta| m.1.last().is_some_and(|&k| k < k_max);
            if let Some(x) = self.pick(|m| Self::is_f32(m) && m.1.len() >= 2 && small_k(m)) {
                let k = self.meta(x).and_then(|m| m.1.last().copied()).unwrap_or(1);
                let n = 1 + self.g.below(8);
                let w = self.fresh_f32(vec![k + 1, n]);
                return Step {
                    op: StepOp::Matmul {
                        transpose_rhs: false,
                    },
                    operands: vec![Operand::Value(x), w],
                    out: None,
                };
            }
        }
        if kind == 3 {
            if let Some(x) = self.pick(|m| Self::is_f32(m) && m.1.last().is_some_and(|&d| d > 1)) {
                let d = self.meta(x).and_then(|m| m.1.last().copied()).unwrap_or(2);
                let y = self.fresh_f32(vec![d + 1]);
                return Step {
                    op: StepOp::Binary(BinaryOp::ALL[self.g.below(BinaryOp::ALL.len())]),
                    operands: vec![Operand::Value(x), y],
                    out: None,
                };
            }
        }
        // An f32 value of rank ≥ 1 always exists: the inputs.
        let x = self
            .pick(|m| Self::is_f32(m) && !m.1.is_empty())
            .unwrap_or(0);
        let xs = self.meta(x).map(|m| m.1).unwrap_or_default();
        let lead = xs.first().copied().unwrap_or(1);
        if kind == 1 {
            let rows = 1 + self.g.below(self.dim_max);
            let mut idx = self.index_input(vec![lead], Arrange::Plain, rows);
            idx.data = make_out_of_range(&idx.data, self.g.below(lead), rows);
            return Step {
                op: StepOp::IndexAdd { rows },
                operands: vec![Operand::Fresh(idx), Operand::Value(x)],
                out: None,
            };
        }
        let n = 1 + self.g.below(7);
        let mut idx = self.index_input(vec![n], Arrange::Plain, lead);
        idx.data = make_out_of_range(&idx.data, self.g.below(n), lead);
        Step {
            op: StepOp::Gather,
            operands: vec![Operand::Value(x), Operand::Fresh(idx)],
            out: None,
        }
    }
}

/// Whether `op` gives a number (not NaN) for every finite negative input too.
fn defined_everywhere(op: UnaryOp) -> bool {
    match op {
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt => false,
        UnaryOp::PowScalar(p) => p == p.trunc(),
        UnaryOp::Neg
        | UnaryOp::Abs
        | UnaryOp::Exp
        | UnaryOp::Recip
        | UnaryOp::Tanh
        | UnaryOp::Sigmoid
        | UnaryOp::Relu
        | UnaryOp::GeluTanh
        | UnaryOp::GeluErf
        | UnaryOp::Erf
        | UnaryOp::Sign => true,
    }
}

/// Index data of a plain index input with element `at` set to `bound` (out of range);
/// i32 data gets −1 instead when `bound` is even, so negative indices are refused too.
fn make_out_of_range(data: &HostData, at: usize, bound: usize) -> HostData {
    let mut data = data.clone();
    match &mut data {
        HostData::I32(v) => {
            if let Some(x) = v.get_mut(at) {
                *x = if bound.is_multiple_of(2) {
                    -1
                } else {
                    bound as i32
                };
            }
        }
        HostData::U32(v) => {
            if let Some(x) = v.get_mut(at) {
                *x = bound as u32;
            }
        }
        HostData::F32(_) | HostData::U8(_) => {}
    }
    data
}

/// The result shape of `a · b` (`a · bᵀ` when `transpose_rhs`), if valid.
fn matmul_shape(a: &[usize], b: &[usize], transpose_rhs: bool) -> Option<Vec<usize>> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (ab, am) = a.split_at(a.len() - 2);
    let (bb, bm) = b.split_at(b.len() - 2);
    let (bk, bn) = if transpose_rhs {
        (bm[1], bm[0])
    } else {
        (bm[0], bm[1])
    };
    if am[1] != bk {
        return None;
    }
    let mut out = broadcast_shapes("program", ab, bb).ok()?;
    out.extend([am[0], bn]);
    Some(out)
}

/// The program of `seed`: a pure function of `seed` and `cfg.steps_max` and
/// `cfg.dim_max` (clamped as documented on [`ProgramConfig`]); `cfg.seed` and
/// `cfg.count` are not read. Never panics.
pub fn random_program(seed: u64, cfg: &ProgramConfig) -> Program {
    let steps_max = cfg.steps_max.clamp(3, PROGRAM_STEPS_MAX);
    let dim_max = cfg.dim_max.clamp(2, PROGRAM_DIM_MAX);
    let mut g = Gen(SplitMix64::new(seed));
    let wild = g.below(WILD_ONE_IN) == 0;
    let mut b = Builder {
        g,
        pool: Vec::new(),
        dim_max,
        wild,
    };
    let n_inputs = 1 + b.g.below(PROGRAM_INPUTS_MAX);
    let mut inputs = Vec::with_capacity(n_inputs);
    for _ in 0..n_inputs {
        let rank = 1 + b.g.below(4);
        let shape = b.g.shape(rank, dim_max);
        b.pool.push((DType::F32, shape.clone()));
        let mix = b.mix();
        inputs.push(b.g.f32_input_mixed(shape, mix.edge_one_in, mix.scaled));
    }
    let n_steps = 3 + b.g.below(steps_max - 2);
    let refuse = b.g.below(REFUSAL_ONE_IN) == 0;
    let mut steps = Vec::with_capacity(n_steps);
    for k in 0..n_steps {
        let step = if refuse && k + 1 == n_steps {
            b.refused()
        } else {
            b.step()
        };
        if let Some(out) = &step.out {
            b.pool.push(out.clone());
        }
        steps.push(step);
    }
    Program {
        seed,
        wild,
        inputs,
        steps,
    }
}

/// Where a run stopped: placing an input or running a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Input(usize),
    Step(usize),
}

type Output = (DType, Vec<usize>, HostData);

/// The outputs of the steps that ran, and the refusal that stopped the run, if any.
struct Trace {
    outputs: Vec<Output>,
    refusal: Option<(Stage, TensorError)>,
}

fn trace(f: &dyn Fabric, p: &Program) -> Trace {
    let mut t = Trace {
        outputs: Vec::with_capacity(p.steps.len()),
        refusal: None,
    };
    let mut pool: Vec<FabricTensor> = Vec::with_capacity(p.inputs.len() + p.steps.len());
    for (j, input) in p.inputs.iter().enumerate() {
        match place(f, input) {
            Ok(v) => pool.push(v),
            Err(e) => {
                t.refusal = Some((Stage::Input(j), e));
                return t;
            }
        }
    }
    for (k, step) in p.steps.iter().enumerate() {
        let run = exec_step(f, &pool, step).and_then(|v| {
            let data = f.download(&v)?;
            Ok((v, data))
        });
        match run {
            Ok((v, data)) => {
                t.outputs.push((v.dtype(), v.shape().to_vec(), data));
                pool.push(v);
            }
            Err(e) => {
                t.refusal = Some((Stage::Step(k), e));
                return t;
            }
        }
    }
    t
}

fn exec_step(f: &dyn Fabric, pool: &[FabricTensor], step: &Step) -> Result<FabricTensor> {
    let xs: Vec<FabricTensor> = step
        .operands
        .iter()
        .map(|o| match o {
            Operand::Value(i) => {
                pool.get(*i)
                    .cloned()
                    .ok_or_else(|| TensorError::InvalidArgument {
                        op: "program",
                        message: format!("value {i} is not defined yet"),
                    })
            }
            Operand::Fresh(input) => place(f, input),
        })
        .collect::<Result<_>>()?;
    let arg = |i: usize| {
        xs.get(i).ok_or_else(|| TensorError::InvalidArgument {
            op: "program",
            message: format!("{} has no operand {i}", step.op.kind()),
        })
    };
    let b = FabricBackend(f);
    match &step.op {
        StepOp::Unary { op, of_abs } => {
            if *of_abs {
                let a = compose::unary(&b, UnaryOp::Abs, arg(0)?)?;
                compose::unary(&b, *op, &a)
            } else {
                compose::unary(&b, *op, arg(0)?)
            }
        }
        StepOp::Binary(op) => compose::binary(&b, *op, arg(0)?, arg(1)?),
        StepOp::Compare(op) => compose::compare(&b, *op, arg(0)?, arg(1)?),
        StepOp::Select => compose::select(&b, arg(0)?, arg(1)?, arg(2)?),
        StepOp::MaskedFill(v) => compose::masked_fill(&b, arg(0)?, arg(1)?, *v),
        StepOp::Matmul { transpose_rhs } => {
            let rhs = if *transpose_rhs {
                compose::transpose(&b, arg(1)?, -1, -2)?
            } else {
                arg(1)?.clone()
            };
            f.execute(&Prim::Matmul, &[arg(0)?, &rhs])
        }
        StepOp::Softmax { axis } => compose::softmax(&b, arg(0)?, *axis),
        StepOp::LogSoftmax { axis } => compose::log_softmax(&b, arg(0)?, *axis),
        StepOp::LayerNorm { dims } => {
            compose::layer_norm(&b, arg(0)?, *dims, Some(arg(1)?), Some(arg(2)?), 1e-5)
        }
        StepOp::Reduce { op, axes, keepdim } => match op {
            Reduction::Sum => compose::sum(&b, arg(0)?, axes, *keepdim),
            Reduction::Mean => compose::mean(&b, arg(0)?, axes, *keepdim),
            Reduction::Max => compose::max(&b, arg(0)?, axes, *keepdim),
        },
        StepOp::ArgMax { axis, keepdim } => compose::argmax(&b, arg(0)?, *axis, *keepdim),
        StepOp::Transpose {
            a,
            b: c,
            contiguous,
        } => {
            let t = compose::transpose(&b, arg(0)?, *a, *c)?;
            if *contiguous {
                compose::contiguous(&b, &t)
            } else {
                Ok(t)
            }
        }
        StepOp::Slice {
            axis,
            start,
            end,
            step,
        } => apply_view(
            arg(0)?,
            &View::Slice {
                axis: *axis,
                start: *start,
                end: *end,
                step: *step,
            },
        ),
        StepOp::Expand(shape) => apply_view(arg(0)?, &View::BroadcastTo(shape.clone())),
        StepOp::Reshape(shape) => compose::reshape(&b, arg(0)?, shape),
        StepOp::Cast(to) => f.execute(&Prim::Cast(*to), &[arg(0)?]),
        StepOp::Concat { axis } => {
            let refs: Vec<&FabricTensor> = xs.iter().collect();
            compose::concat(&b, &refs, *axis)
        }
        StepOp::Gather => compose::embedding(&b, arg(0)?, arg(1)?),
        StepOp::Attention {
            masked,
            biased,
            causal,
        } => {
            let mask = if *masked { Some(arg(3)?) } else { None };
            let bias = if *biased {
                Some(arg(3 + *masked as usize)?)
            } else {
                None
            };
            compose::attention(
                &b,
                arg(0)?,
                arg(1)?,
                arg(2)?,
                mask,
                bias,
                &AttentionOptions {
                    scale: None,
                    causal: *causal,
                },
            )
        }
        StepOp::IndexAdd { rows } => {
            f.execute(&Prim::IndexAdd { rows: *rows }, &[arg(0)?, arg(1)?])
        }
    }
}

/// Runs `p` on `fabric`: places the inputs, runs every step and downloads its output.
/// Returns each step's (dtype, shape, data), or the first refusal.
pub fn run_program(fabric: &dyn Fabric, p: &Program) -> Result<Vec<(DType, Vec<usize>, HostData)>> {
    let t = trace(fabric, p);
    match t.refusal {
        Some((_, e)) => Err(e),
        None => Ok(t.outputs),
    }
}

/// Why `got` differs from `want` (the reference), if it does: dtype or shape, the
/// downloaded data's dtype or length, or the first differing element (canonical bits,
/// in hex).
fn difference(want: &Output, got: &Output) -> Option<String> {
    let ((wd, ws, wv), (gd, gs, gv)) = (want, got);
    if (wd, ws) != (gd, gs) {
        return Some(format!(
            "reference gives {wd} {ws:?}, fabric gives {gd} {gs:?}"
        ));
    }
    for (who, d, v) in [("reference", wd, wv), ("fabric", gd, gv)] {
        if v.dtype() != *d || v.len() != numel(ws) {
            return Some(format!(
                "the {who} downloaded {} × {} for a {d} {ws:?} tensor",
                v.len(),
                v.dtype()
            ));
        }
    }
    let (wb, gb) = (wv.to_le_bytes_canonical(), gv.to_le_bytes_canonical());
    if wb == gb {
        return None;
    }
    let esz = wd.size_bytes().max(1);
    let at = wb
        .chunks(esz)
        .zip(gb.chunks(esz))
        .position(|(a, b)| a != b)
        .unwrap_or(0);
    let hex = |bytes: &[u8]| {
        let chunk = bytes.get(at * esz..(at + 1) * esz).unwrap_or(&[]);
        let bits = chunk
            .iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
        let mut s = format!("{bits:#0w$x}", w = 2 + 2 * esz);
        if *wd == DType::F32 {
            let _ = write!(s, " ({:e})", f32::from_bits(bits as u32));
        }
        s
    };
    Some(format!(
        "element {at} (index {:?}) of {wd} {ws:?} differs: reference {}, fabric {}",
        unravel(at, ws),
        hex(&wb),
        hex(&gb)
    ))
}

/// The multi-index of row-major element `at` of `shape`.
fn unravel(mut at: usize, shape: &[usize]) -> Vec<usize> {
    let mut ix = vec![0; shape.len()];
    for (i, &d) in ix.iter_mut().zip(shape).rev() {
        let d = d.max(1);
        *i = at % d;
        at /= d;
    }
    ix
}

/// Compares one program's traces; returns (steps, elements, refused).
fn compare(
    index: usize,
    p: &Program,
    want: &Trace,
    got: &Trace,
) -> std::result::Result<(usize, usize, bool), ConformanceFailure> {
    let fail = |stage: Stage, detail: String| ConformanceFailure {
        case: format!(
            "program {index} (seed {:#018x}) {}",
            p.seed,
            p.stage_name(stage)
        ),
        detail,
    };
    for (k, (w, g)) in want.outputs.iter().zip(&got.outputs).enumerate() {
        if let Some(detail) = difference(w, g) {
            return Err(fail(Stage::Step(k), detail));
        }
    }
    let elements = want.outputs.iter().map(|o| o.2.len()).sum();
    let ran = want.outputs.len();
    match (&want.refusal, &got.refusal) {
        (None, None) if got.outputs.len() == ran => Ok((ran, elements, false)),
        (None, None) => Err(fail(
            Stage::Step(ran.min(got.outputs.len())),
            format!("reference ran {ran} steps, fabric {}", got.outputs.len()),
        )),
        (Some((ws, we)), Some((gs, ge))) if ws == gs => {
            if we == ge {
                let refused_steps = matches!(ws, Stage::Step(_)) as usize;
                Ok((ran + refused_steps, elements, true))
            } else {
                Err(fail(
                    *ws,
                    format!("reference refuses with {we}, fabric with {ge}"),
                ))
            }
        }
        (Some((ws, we)), Some((gs, _))) if ws < gs => Err(fail(
            *ws,
            format!("reference refused ({we}) but the fabric accepted"),
        )),
        (_, Some((gs, ge))) => Err(fail(*gs, format!("fabric refused: {ge}"))),
        (Some((ws, we)), None) => Err(fail(
            *ws,
            format!("reference refused ({we}) but the fabric accepted"),
        )),
    }
}

/// Runs `cfg.count` random programs (program `i` from [`program_seed`]`(cfg.seed, i)`)
/// on `fabric` and on [`CpuFabric::reference`], and demands every step's dtype, shape
/// and canonical bits equal, or the same refusal at the same step. Returns the first
/// difference, naming the program, its seed, the step and the first differing element.
pub fn run_random_programs(
    fabric: &dyn Fabric,
    cfg: &ProgramConfig,
) -> std::result::Result<ProgramReport, ConformanceFailure> {
    let reference = CpuFabric::reference();
    let mut report = ProgramReport {
        fabric: format!("{} ({})", fabric.name(), fabric.device_description()),
        programs: 0,
        steps: 0,
        elements: 0,
        refused: 0,
    };
    for index in 0..cfg.count {
        let p = random_program(program_seed(cfg.seed, index), cfg);
        let want = trace(&reference, &p);
        let got = trace(fabric, &p);
        let (steps, elements, refused) = compare(index, &p, &want, &got)?;
        report.programs += 1;
        report.steps += steps;
        report.elements += elements;
        report.refused += refused as usize;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every input, fresh operand and predicted result is within the value limits.
    fn check_limits(i: usize, p: &Program) {
        for input in &p.inputs {
            assert!(fits(&input.shape), "program {i}: input {:?}", input.shape);
        }
        for (k, s) in p.steps.iter().enumerate() {
            let shapes = s.operands.iter().filter_map(|o| match o {
                Operand::Value(_) => None,
                Operand::Fresh(input) => Some(&input.shape),
            });
            for shape in shapes.chain(s.out.as_ref().map(|(_, s)| s)) {
                assert!(fits(shape), "program {i} step {k}: {}", p.step_name(k));
            }
        }
    }

    /// The generator's predicted dtype and shape of every step is what the reference
    /// computes, every value is within the limits, and only steps built to be refused
    /// are refused.
    #[test]
    fn predicted_results_match_the_reference() {
        let cfg = ProgramConfig::default();
        let reference = CpuFabric::reference();
        let mut refused = 0;
        for i in 0..400 {
            let p = random_program(program_seed(cfg.seed, i), &cfg);
            check_limits(i, &p);
            let t = trace(&reference, &p);
            for (k, (o, s)) in t.outputs.iter().zip(&p.steps).enumerate() {
                let want = s.out.as_ref().map(|(d, sh)| (*d, sh.as_slice()));
                assert_eq!(
                    Some((o.0, o.1.as_slice())),
                    want,
                    "program {i} step {k}: {}",
                    p.step_name(k)
                );
            }
            match &t.refusal {
                None => assert!(!p.expects_refusal(), "program {i} was not refused"),
                Some((stage, e)) => {
                    assert!(
                        p.expects_refusal() && *stage == Stage::Step(p.steps.len() - 1),
                        "program {i} refused at {}: {e}",
                        p.stage_name(*stage)
                    );
                    refused += 1;
                }
            }
        }
        assert!(refused > 0, "no program of 400 ended with a refusal");
    }

    /// Long programs over the largest dims keep every value within the limits.
    #[test]
    fn long_programs_stay_within_the_limits() {
        let cfg = ProgramConfig {
            steps_max: PROGRAM_STEPS_MAX,
            dim_max: PROGRAM_DIM_MAX,
            ..ProgramConfig::default()
        };
        for i in 0..20 {
            check_limits(i, &random_program(program_seed(1, i), &cfg));
        }
    }
}
