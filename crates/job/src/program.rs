//! The artifact: a compiled program of named constants (the weights) and an op list in
//! SSA order, its canonical encoding, its validation (shape and dtype inference,
//! references, runtime, cost bounds) and its deterministic cost.
//!
//! Values are numbered constants first (`0..consts`), then one per op in order. An op's
//! arguments refer only to values defined before it.

use crate::error::{JobError, Result};
use crate::wire::{Reader, Writer};
use blocktorch::compose::View;
use blocktorch::layout::Layout;
use blocktorch::{BinaryOp, CompareOp, DType, HostData, Prim, ReduceOp, UnaryOp};

/// The artifact's magic.
pub const ARTIFACT_MAGIC: [u8; 4] = *b"BTPG";
/// The artifact format version.
pub const ARTIFACT_VERSION: u8 = 0;
/// Most constants.
pub const CONSTS_MAX: usize = 4096;
/// Most ops.
pub const OPS_MAX: usize = 65_536;
/// Most declared outputs.
pub const OUTPUTS_MAX: usize = 256;
/// Most arguments of one op.
pub const OP_ARGS_MAX: usize = 16;
/// Longest constant or output name.
pub const NAME_BYTES_MAX: usize = 64;
/// Longest runtime string.
pub const RUNTIME_BYTES_MAX: usize = 64;
/// Largest program cost in FLOPs (10¹⁴).
pub const PROGRAM_FLOPS_MAX: u128 = 100_000_000_000_000;
/// Largest program cost in bytes moved (2⁴⁰).
pub const PROGRAM_BYTES_MAX: u128 = 1 << 40;

/// Where an `Input` op reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputSlot {
    /// The input tensor (after normalisation).
    Main,
    /// The descriptor's attention mask (u8).
    Mask,
    /// The descriptor's padding token id, as a rank-0 i32.
    Padding,
    /// Bias array `i` of the descriptor (f32).
    Bias(u8),
}

/// What an op does.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// Reads an input slot (no arguments).
    Input(InputSlot),
    /// A runtime primitive.
    Prim(Prim),
    /// A layout view of its one argument.
    View(View),
}

/// One op: what it does and the values it reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// The op.
    pub node: Node,
    /// Value ids of its arguments.
    pub args: Vec<u32>,
}

/// A named constant tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    /// Its name (parameters are named; helper constants may be empty).
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Elements, row-major.
    pub data: HostData,
}

/// A declared output.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    /// Its name.
    pub name: String,
    /// The value it is.
    pub value: u32,
}

/// A program.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// The runtime it was built for (`blocktorch::RUNTIME_VERSION`).
    pub runtime: String,
    /// Constants, values `0..consts.len()`.
    pub consts: Vec<Const>,
    /// Ops, value `consts.len() + i` for op `i`.
    pub ops: Vec<Op>,
    /// Declared outputs.
    pub outputs: Vec<Output>,
}

/// The name of a node, for errors and the op table.
pub fn node_name(n: &Node) -> String {
    match n {
        Node::Input(s) => format!("input {s:?}"),
        Node::Prim(Prim::Unary(op)) => format!("unary {op:?}"),
        Node::Prim(Prim::Binary(op)) => format!("binary {op:?}"),
        Node::Prim(Prim::Compare(op)) => format!("compare {op:?}"),
        Node::Prim(Prim::Reduce(op)) => format!("reduce {op:?}"),
        Node::Prim(p) => format!("{p:?}").to_lowercase(),
        Node::View(v) => format!("view {v:?}").to_lowercase(),
    }
}

fn unary_code(op: UnaryOp) -> u8 {
    UnaryOp::ALL
        .iter()
        .position(|o| std::mem::discriminant(o) == std::mem::discriminant(&op))
        .unwrap_or(0) as u8
}

fn unary_from(code: u8, p: f32) -> Option<UnaryOp> {
    match UnaryOp::ALL.get(code as usize)? {
        UnaryOp::PowScalar(_) => Some(UnaryOp::PowScalar(p)),
        op => Some(*op),
    }
}

const POW_CODE: u8 = 14;

impl Program {
    /// The canonical artifact bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let bad = |field: &'static str, message: String| JobError::Unencodable { field, message };
        if self.runtime.len() > RUNTIME_BYTES_MAX
            || self.consts.len() > CONSTS_MAX
            || self.ops.len() > OPS_MAX
            || self.outputs.len() > OUTPUTS_MAX
        {
            return Err(bad(
                "artifact",
                "a count or the runtime string is above its limit".into(),
            ));
        }
        let mut w = Writer::default();
        w.raw(&ARTIFACT_MAGIC);
        w.u8(ARTIFACT_VERSION);
        w.string(&self.runtime);
        w.u32(self.consts.len() as u32);
        for c in &self.consts {
            if c.name.len() > NAME_BYTES_MAX {
                return Err(bad(
                    "constant",
                    format!("{:?}: name above {NAME_BYTES_MAX} bytes", c.name),
                ));
            }
            let n = blocktorch::layout::check_shape(&c.shape)
                .map_err(|e| bad("constant", format!("{:?}: {e}", c.name)))?;
            if c.shape.iter().any(|d| *d > u32::MAX as usize) {
                return Err(bad("constant", format!("{:?}: a dim exceeds u32", c.name)));
            }
            if c.data.len() != n {
                return Err(bad(
                    "constant",
                    format!("{:?}: data does not fill its shape", c.name),
                ));
            }
            w.string(&c.name);
            w.u8(c.data.dtype().tag());
            w.shape(&c.shape);
            w.data(&c.data);
        }
        w.u32(self.ops.len() as u32);
        for op in &self.ops {
            encode_node(&mut w, &op.node)?;
            if op.args.len() > OP_ARGS_MAX {
                return Err(bad("op", "too many arguments".into()));
            }
            w.u8(op.args.len() as u8);
            for a in &op.args {
                w.u32(*a);
            }
        }
        w.u32(self.outputs.len() as u32);
        for o in &self.outputs {
            if o.name.len() > NAME_BYTES_MAX {
                return Err(bad("output", format!("{:?}: name too long", o.name)));
            }
            w.string(&o.name);
            w.u32(o.value);
        }
        Ok(w.bytes)
    }

    /// Decodes artifact bytes that start at byte `base` of the blob.
    pub fn decode(bytes: &[u8], base: usize) -> Result<Program> {
        let mut r = Reader::new(bytes, base);
        let at = r.offset();
        let magic = r.take("artifact magic", 4)?;
        if magic != ARTIFACT_MAGIC {
            let mut found = [0u8; 4];
            found.copy_from_slice(magic);
            return Err(JobError::BadMagic {
                field: "artifact magic",
                offset: at,
                expected: ARTIFACT_MAGIC,
                found,
            });
        }
        let at = r.offset();
        let v = r.u8("artifact version")?;
        if v != ARTIFACT_VERSION {
            return Err(JobError::UnknownTag {
                field: "artifact version",
                offset: at,
                tag: v as u64,
            });
        }
        let runtime = r.string("artifact runtime", RUNTIME_BYTES_MAX)?;
        let n = count(&mut r, "constant count", CONSTS_MAX)?;
        let mut consts = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.string("constant name", NAME_BYTES_MAX)?;
            let dtype = r.dtype("constant dtype")?;
            let (shape, n) = r.shape("constant shape")?;
            let data = r.data("constant data", dtype, n)?;
            consts.push(Const { name, shape, data });
        }
        let n = count(&mut r, "op count", OPS_MAX)?;
        let mut ops = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            let node = decode_node(&mut r)?;
            let at = r.offset();
            let na = r.u8("op argument count")? as usize;
            crate::error::at_most("op argument count", at, na as u64, OP_ARGS_MAX as u64)?;
            let mut args = Vec::with_capacity(na);
            for _ in 0..na {
                args.push(r.u32("op argument")?);
            }
            ops.push(Op { node, args });
        }
        let n = count(&mut r, "output count", OUTPUTS_MAX)?;
        let mut outputs = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.string("output name", NAME_BYTES_MAX)?;
            let value = r.u32("output value")?;
            outputs.push(Output { name, value });
        }
        r.finish()?;
        Ok(Program {
            runtime,
            consts,
            ops,
            outputs,
        })
    }
}

fn count(r: &mut Reader<'_>, field: &'static str, max: usize) -> Result<usize> {
    let at = r.offset();
    let n = r.u32(field)? as usize;
    crate::error::at_most(field, at, n as u64, max as u64)?;
    Ok(n)
}

// Opcodes (docs/spec/job-format-v0.md §3).
const OP_INPUT: u8 = 0x01;
const OP_UNARY: u8 = 0x10;
const OP_BINARY: u8 = 0x11;
const OP_COMPARE: u8 = 0x12;
const OP_SELECT: u8 = 0x13;
const OP_REDUCE: u8 = 0x14;
const OP_MATMUL: u8 = 0x15;
const OP_GATHER: u8 = 0x16;
const OP_INDEX_ADD: u8 = 0x17;
const OP_CONCAT: u8 = 0x18;
const OP_CAST: u8 = 0x19;
const OP_COPY: u8 = 0x1A;
const OP_RESHAPE: u8 = 0x20;
const OP_PERMUTE: u8 = 0x21;
const OP_SLICE: u8 = 0x22;
const OP_BROADCAST: u8 = 0x23;
const OP_UNSQUEEZE: u8 = 0x24;
const OP_SQUEEZE: u8 = 0x25;

fn small(v: usize, what: &'static str) -> Result<u8> {
    u8::try_from(v).map_err(|_| JobError::Unencodable {
        field: what,
        message: format!("{v} does not fit a byte"),
    })
}

fn dims32(w: &mut Writer, dims: &[usize]) -> Result<()> {
    if dims.len() > blocktorch::RANK_MAX || dims.iter().any(|d| *d > u32::MAX as usize) {
        return Err(JobError::Unencodable {
            field: "view shape",
            message: format!("{dims:?}: rank above 8 or a dim above u32"),
        });
    }
    w.shape(dims);
    Ok(())
}

fn encode_node(w: &mut Writer, n: &Node) -> Result<()> {
    match n {
        Node::Input(s) => {
            w.u8(OP_INPUT);
            let (slot, idx) = match s {
                InputSlot::Main => (0, 0),
                InputSlot::Mask => (1, 0),
                InputSlot::Padding => (2, 0),
                InputSlot::Bias(i) => (3, *i),
            };
            w.u8(slot);
            w.u8(idx);
        }
        Node::Prim(p) => match p {
            Prim::Unary(op) => {
                w.u8(OP_UNARY);
                let code = unary_code(*op);
                w.u8(code);
                if let UnaryOp::PowScalar(e) = op {
                    w.f32(*e);
                }
            }
            Prim::Binary(op) => {
                w.u8(OP_BINARY);
                w.u8(BinaryOp::ALL.iter().position(|o| o == op).unwrap_or(0) as u8);
            }
            Prim::Compare(op) => {
                w.u8(OP_COMPARE);
                w.u8(CompareOp::ALL.iter().position(|o| o == op).unwrap_or(0) as u8);
            }
            Prim::Select => w.u8(OP_SELECT),
            Prim::Reduce(op) => {
                w.u8(OP_REDUCE);
                w.u8(match op {
                    ReduceOp::Sum => 0,
                    ReduceOp::Max => 1,
                    ReduceOp::ArgMax => 2,
                });
            }
            Prim::Matmul => w.u8(OP_MATMUL),
            Prim::Gather => w.u8(OP_GATHER),
            Prim::IndexAdd { rows } => {
                w.u8(OP_INDEX_ADD);
                w.u32(u32::try_from(*rows).map_err(|_| JobError::Unencodable {
                    field: "index_add rows",
                    message: "exceeds u32".into(),
                })?);
            }
            Prim::Concat { axis } => {
                w.u8(OP_CONCAT);
                w.u8(small(*axis, "concat axis")?);
            }
            Prim::Cast(to) => {
                w.u8(OP_CAST);
                w.u8(to.tag());
            }
            Prim::Copy => w.u8(OP_COPY),
        },
        Node::View(v) => match v {
            View::Reshape(s) => {
                w.u8(OP_RESHAPE);
                dims32(w, s)?;
            }
            View::Permute(p) => {
                w.u8(OP_PERMUTE);
                w.u8(small(p.len(), "permutation rank")?);
                for a in p {
                    w.u8(small(*a, "permutation axis")?);
                }
            }
            View::Slice {
                axis,
                start,
                end,
                step,
            } => {
                w.u8(OP_SLICE);
                w.u8(small(*axis, "slice axis")?);
                for v in [start, end, step] {
                    w.u32(u32::try_from(*v).map_err(|_| JobError::Unencodable {
                        field: "slice bound",
                        message: "exceeds u32".into(),
                    })?);
                }
            }
            View::BroadcastTo(s) => {
                w.u8(OP_BROADCAST);
                dims32(w, s)?;
            }
            View::Unsqueeze(a) => {
                w.u8(OP_UNSQUEEZE);
                w.u8(small(*a, "unsqueeze axis")?);
            }
            View::Squeeze(a) => {
                w.u8(OP_SQUEEZE);
                w.u8(small(*a, "squeeze axis")?);
            }
        },
    }
    Ok(())
}

fn tag_err(field: &'static str, offset: usize, tag: u8) -> JobError {
    JobError::UnknownTag {
        field,
        offset,
        tag: tag as u64,
    }
}

fn decode_node(r: &mut Reader<'_>) -> Result<Node> {
    let at = r.offset();
    let code = r.u8("opcode")?;
    let sub_at = r.offset();
    Ok(match code {
        OP_INPUT => {
            let slot = r.u8("input slot")?;
            let idx_at = r.offset();
            let idx = r.u8("input slot index")?;
            let s = match (slot, idx) {
                (0, 0) => InputSlot::Main,
                (1, 0) => InputSlot::Mask,
                (2, 0) => InputSlot::Padding,
                (3, i) => InputSlot::Bias(i),
                (0..=2, i) => return Err(tag_err("input slot index", idx_at, i)),
                _ => return Err(tag_err("input slot", sub_at, slot)),
            };
            Node::Input(s)
        }
        OP_UNARY => {
            let c = r.u8("unary op")?;
            let p = if c == POW_CODE {
                r.f32("pow exponent")?
            } else {
                0.0
            };
            match unary_from(c, p) {
                // ALL lists PowScalar five times; only the first code is canonical.
                Some(op) if c <= POW_CODE => Node::Prim(Prim::Unary(op)),
                _ => return Err(tag_err("unary op", sub_at, c)),
            }
        }
        OP_BINARY => {
            let c = r.u8("binary op")?;
            let op = BinaryOp::ALL
                .get(c as usize)
                .ok_or_else(|| tag_err("binary op", sub_at, c))?;
            Node::Prim(Prim::Binary(*op))
        }
        OP_COMPARE => {
            let c = r.u8("compare op")?;
            let op = CompareOp::ALL
                .get(c as usize)
                .ok_or_else(|| tag_err("compare op", sub_at, c))?;
            Node::Prim(Prim::Compare(*op))
        }
        OP_SELECT => Node::Prim(Prim::Select),
        OP_REDUCE => {
            let c = r.u8("reduce op")?;
            Node::Prim(Prim::Reduce(match c {
                0 => ReduceOp::Sum,
                1 => ReduceOp::Max,
                2 => ReduceOp::ArgMax,
                _ => return Err(tag_err("reduce op", sub_at, c)),
            }))
        }
        OP_MATMUL => Node::Prim(Prim::Matmul),
        OP_GATHER => Node::Prim(Prim::Gather),
        OP_INDEX_ADD => Node::Prim(Prim::IndexAdd {
            rows: r.u32("index_add rows")? as usize,
        }),
        OP_CONCAT => Node::Prim(Prim::Concat {
            axis: r.u8("concat axis")? as usize,
        }),
        OP_CAST => Node::Prim(Prim::Cast(r.dtype("cast dtype")?)),
        OP_COPY => Node::Prim(Prim::Copy),
        OP_RESHAPE => Node::View(View::Reshape(r.shape("reshape shape")?.0)),
        OP_PERMUTE => {
            let at = r.offset();
            let n = r.u8("permutation rank")? as usize;
            crate::error::at_most(
                "permutation rank",
                at,
                n as u64,
                blocktorch::RANK_MAX as u64,
            )?;
            let mut p = Vec::with_capacity(n);
            for _ in 0..n {
                p.push(r.u8("permutation axis")? as usize);
            }
            Node::View(View::Permute(p))
        }
        OP_SLICE => Node::View(View::Slice {
            axis: r.u8("slice axis")? as usize,
            start: r.u32("slice start")? as usize,
            end: r.u32("slice end")? as usize,
            step: r.u32("slice step")? as usize,
        }),
        OP_BROADCAST => Node::View(View::BroadcastTo(r.shape("broadcast shape")?.0)),
        OP_UNSQUEEZE => Node::View(View::Unsqueeze(r.u8("unsqueeze axis")? as usize)),
        OP_SQUEEZE => Node::View(View::Squeeze(r.u8("squeeze axis")? as usize)),
        _ => return Err(tag_err("opcode", at, code)),
    })
}

/// The deterministic cost of one op.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Floating-point operations (spec: job-format-v0.md §5).
    pub flops: u128,
    /// Bytes read and written (logical elements × dtype size).
    pub bytes: u128,
}

/// What validation learns about each value.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    /// Dtype.
    pub dtype: DType,
    /// The layout the value has at run time (views keep strides).
    pub layout: Layout,
}

/// A validated program: every value's dtype and layout, every op's cost, the totals.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Value infos, constants first.
    pub values: Vec<ValueInfo>,
    /// Per-op costs.
    pub costs: Vec<Cost>,
    /// Sum of the op costs.
    pub total: Cost,
    /// For each value, the last op that reads it (`None`: never read).
    pub last_use: Vec<Option<usize>>,
}

/// FLOPs per element of a unary op (a fixed, documented table).
fn unary_flops(op: UnaryOp) -> u128 {
    match op {
        UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Relu | UnaryOp::Sign => 1,
        UnaryOp::Sqrt | UnaryOp::Recip => 4,
        UnaryOp::Rsqrt => 8,
        UnaryOp::PowScalar(_) => 32,
        UnaryOp::Exp | UnaryOp::Log | UnaryOp::Tanh | UnaryOp::Sigmoid | UnaryOp::Erf => 16,
        UnaryOp::GeluTanh | UnaryOp::GeluErf => 32,
    }
}

pub(crate) fn op_cost(node: &Node, ins: &[&ValueInfo], out: &ValueInfo) -> Cost {
    let n = |v: &ValueInfo| v.layout.numel() as u128;
    let bytes_of = |v: &ValueInfo| n(v) * v.dtype.size_bytes() as u128;
    let out_n = n(out);
    let io_bytes = ins.iter().map(|v| bytes_of(v)).sum::<u128>() + bytes_of(out);
    let flops = match node {
        Node::Input(_) | Node::View(_) => 0,
        Node::Prim(p) => match p {
            Prim::Unary(op) => out_n * unary_flops(*op),
            Prim::Binary(BinaryOp::Div) => out_n * 4,
            Prim::Binary(_) | Prim::Compare(_) | Prim::Select => out_n,
            Prim::Reduce(_) => ins.first().map(|v| n(v)).unwrap_or(0),
            Prim::Matmul => {
                let k = ins
                    .first()
                    .and_then(|a| a.layout.shape().last().copied())
                    .unwrap_or(0) as u128;
                2 * out_n * k
            }
            Prim::IndexAdd { .. } => ins.get(1).map(|v| n(v)).unwrap_or(0),
            Prim::Gather | Prim::Concat { .. } | Prim::Cast(_) | Prim::Copy => 0,
        },
    };
    // Every op output is digested for the trace, views included: a view costs the
    // bytes it exposes even though it copies nothing.
    let bytes = match node {
        Node::View(_) | Node::Input(_) => bytes_of(out),
        _ => io_bytes,
    };
    Cost { flops, bytes }
}

/// The layout a view gives (the runtime's own rule, `blocktorch::compose::view_layout`).
pub use blocktorch::compose::view_layout;
