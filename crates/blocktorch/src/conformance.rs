//! The public fabric conformance suite: runs every primitive (and the composites built
//! on them) on random shapes, layouts and values — edge values included (±0,
//! subnormals, ±∞, NaN, extreme exponents) — on a fabric under test and on the CPU
//! reference, and demands bit-identical results (NaN payloads canonicalised) and
//! identical refusals. A new fabric proves itself by passing [`run_conformance`].

use crate::compose::{self, apply_view, AttentionOptions, FabricBackend, View};
use crate::cpu::CpuFabric;
use crate::dtype::DType;
use crate::error::{Result, TensorError};
use crate::fabric::{Fabric, FabricTensor};
use crate::ops::{BinaryOp, CompareOp, Prim, ReduceOp, UnaryOp};
use crate::rng::SplitMix64;
use crate::storage::HostData;
use std::fmt;

/// What the suite runs.
#[derive(Clone, Debug)]
pub struct ConformanceConfig {
    /// Seed of every random shape and value.
    pub seed: u64,
    /// Random cases per primitive variant.
    pub cases_per_op: usize,
    /// Largest dimension of random shapes (matmul dims go up to 2× this).
    pub dim_max: usize,
}

impl Default for ConformanceConfig {
    fn default() -> Self {
        ConformanceConfig {
            seed: 0x5eed_b10c,
            cases_per_op: 10,
            dim_max: 70,
        }
    }
}

/// A passed run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConformanceReport {
    /// Fabric name and description.
    pub fabric: String,
    /// Cases compared.
    pub cases: usize,
    /// Output elements compared.
    pub elements: usize,
}

/// The first difference found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConformanceFailure {
    /// The case (op and seed-derived index).
    pub case: String,
    /// What differed.
    pub detail: String,
}

impl fmt::Display for ConformanceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conformance case {}: {}", self.case, self.detail)
    }
}

/// Largest element count of a random (non-large) case input.
pub const CASE_ELEMENTS_MAX: usize = 6000;

/// The edge values every f32 input draws from, besides ordinary values.
pub const EDGE_VALUES: [f32; 16] = [
    0.0,
    -0.0,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
    f32::MAX,
    f32::MIN,
    f32::MIN_POSITIVE,
    -f32::MIN_POSITIVE,
    1.0e-45,       // smallest subnormal
    -1.0e-45,      // smallest negative subnormal
    1.1754942e-38, // largest subnormal
    1.0e30,
    -1.0e30,
    88.72284,
    -103.97208,
];

/// How an input is laid out when handed to the op (shared with `crate::programs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrange {
    Plain,
    /// Uploaded with the last two dims swapped, then permuted back (non-contiguous).
    Transposed,
    /// Uploaded with the last dim doubled, then sliced with step 2.
    Strided,
}

/// Host data of an input and how it is placed on a fabric (see [`place`]).
#[derive(Clone, Debug)]
pub(crate) struct Input {
    /// Row-major data of the uploaded shape (the last two dims swapped for
    /// [`Arrange::Transposed`], the last dim doubled for [`Arrange::Strided`]).
    pub(crate) data: HostData,
    /// The logical shape the op sees.
    pub(crate) shape: Vec<usize>,
    /// The layout it is handed over in.
    pub(crate) arrange: Arrange,
}

/// The random source of generated cases (shared with `crate::programs`).
pub(crate) struct Gen(pub(crate) SplitMix64);

impl Gen {
    /// Uniform in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n.max(1) as u64) as usize
    }
    fn f32s(&mut self, n: usize, edges: bool) -> Vec<f32> {
        self.f32s_mixed(n, if edges { 8 } else { 0 }, true)
    }
    /// `n` values: one in `edge_one_in` from [`EDGE_VALUES`] (none when 0), the rest
    /// uniform in [−3, 3), and when `scaled` one in 16 of those scaled by 1e−20 and
    /// one in 16 by 1e20.
    pub(crate) fn f32s_mixed(&mut self, n: usize, edge_one_in: usize, scaled: bool) -> Vec<f32> {
        (0..n)
            .map(|_| {
                if edge_one_in != 0 && self.below(edge_one_in) == 0 {
                    EDGE_VALUES[self.below(EDGE_VALUES.len())]
                } else {
                    let u = self.0.next_unit_f32() * 6.0 - 3.0;
                    if !scaled {
                        return u;
                    }
                    match self.below(16) {
                        0 => u * 1.0e-20,
                        1 => u * 1.0e20,
                        _ => u,
                    }
                }
            })
            .collect()
    }
    /// A random shape of `rank` dims up to `dim_max`, with at most [`CASE_ELEMENTS_MAX`]
    /// elements (the largest dims are halved until it fits).
    pub(crate) fn shape(&mut self, rank: usize, dim_max: usize) -> Vec<usize> {
        let mut s: Vec<usize> = (0..rank).map(|_| 1 + self.below(dim_max)).collect();
        while s.iter().product::<usize>() > CASE_ELEMENTS_MAX {
            if let Some(m) = s.iter_mut().max() {
                *m = m.div_ceil(2);
            }
        }
        s
    }
    /// A random arrangement valid for `rank` (plain half the time).
    pub(crate) fn arrange(&mut self, rank: usize) -> Arrange {
        match self.below(4) {
            1 if rank >= 2 => Arrange::Transposed,
            2 if rank >= 1 => Arrange::Strided,
            _ => Arrange::Plain,
        }
    }
    fn f32_input(&mut self, shape: Vec<usize>, edges: bool) -> Input {
        self.f32_input_mixed(shape, if edges { 8 } else { 0 }, true)
    }
    /// An f32 input of `shape` in a random arrangement, values as in
    /// [`Gen::f32s_mixed`].
    pub(crate) fn f32_input_mixed(
        &mut self,
        shape: Vec<usize>,
        edge_one_in: usize,
        scaled: bool,
    ) -> Input {
        let arrange = self.arrange(shape.len());
        let n = upload_elements(&shape, arrange);
        Input {
            data: HostData::F32(self.f32s_mixed(n, edge_one_in, scaled)),
            shape,
            arrange,
        }
    }
}

/// Elements of the host data an input of `shape` placed as `arrange` uploads.
pub(crate) fn upload_elements(shape: &[usize], arrange: Arrange) -> usize {
    let n: usize = shape.iter().product();
    match arrange {
        Arrange::Strided => n * 2,
        Arrange::Plain | Arrange::Transposed => n,
    }
}

/// Uploads an input and applies its arrangement's view (the result is non-contiguous
/// for [`Arrange::Transposed`] and [`Arrange::Strided`]).
pub(crate) fn place(f: &dyn Fabric, input: &Input) -> Result<FabricTensor> {
    let s = &input.shape;
    let r = s.len();
    let min_rank = match input.arrange {
        Arrange::Plain => 0,
        Arrange::Strided => 1,
        Arrange::Transposed => 2,
    };
    if r < min_rank {
        return Err(TensorError::InvalidArgument {
            op: "place",
            message: format!("{:?} needs rank >= {min_rank}, got {s:?}", input.arrange),
        });
    }
    match input.arrange {
        Arrange::Plain => f.upload(&input.data, s),
        Arrange::Transposed => {
            let mut up = s.clone();
            up.swap(r - 2, r - 1);
            let t = f.upload(&input.data, &up)?;
            let mut perm: Vec<usize> = (0..r).collect();
            perm.swap(r - 2, r - 1);
            apply_view(&t, &View::Permute(perm))
        }
        Arrange::Strided => {
            let mut up = s.clone();
            up[r - 1] *= 2;
            let t = f.upload(&input.data, &up)?;
            apply_view(
                &t,
                &View::Slice {
                    axis: r - 1,
                    start: 1,
                    end: up[r - 1],
                    step: 2,
                },
            )
        }
    }
}

/// What a case computes.
enum Op {
    Prim(Prim),
    Softmax,
    LogSoftmax,
    LayerNorm,
    Attention {
        causal: bool,
        masked: bool,
        biased: bool,
    },
    SumAxes(Vec<isize>),
    Mean(Vec<isize>),
}

struct Case {
    name: String,
    op: Op,
    inputs: Vec<Input>,
}

fn run_op(f: &dyn Fabric, op: &Op, inputs: &[Input]) -> Result<(DType, Vec<usize>, HostData)> {
    let ts: Vec<FabricTensor> = inputs.iter().map(|i| place(f, i)).collect::<Result<_>>()?;
    let refs: Vec<&FabricTensor> = ts.iter().collect();
    let b = FabricBackend(f);
    let out = match op {
        Op::Prim(p) => f.execute(p, &refs)?,
        Op::Softmax => compose::softmax(&b, refs[0], -1)?,
        Op::LogSoftmax => compose::log_softmax(&b, refs[0], 0)?,
        Op::LayerNorm => compose::layer_norm(&b, refs[0], 1, Some(refs[1]), Some(refs[2]), 1e-5)?,
        Op::Attention {
            causal,
            masked,
            biased,
        } => {
            let mask = if *masked { Some(refs[3]) } else { None };
            let bias = if *biased { Some(refs[4]) } else { None };
            compose::attention(
                &b,
                refs[0],
                refs[1],
                refs[2],
                mask,
                bias,
                &AttentionOptions {
                    scale: None,
                    causal: *causal,
                },
            )?
        }
        Op::SumAxes(axes) => compose::sum(&b, refs[0], axes, false)?,
        Op::Mean(axes) => compose::mean(&b, refs[0], axes, true)?,
    };
    Ok((out.dtype(), out.shape().to_vec(), f.download(&out)?))
}

fn cases(cfg: &ConformanceConfig) -> Vec<Case> {
    let mut g = Gen(SplitMix64::new(cfg.seed));
    let d = cfg.dim_max.max(2);
    let mut out = Vec::new();
    for i in 0..cfg.cases_per_op {
        let big = i + 1 == cfg.cases_per_op; // one large case per op crosses the threading threshold
        let rank = 1 + g.below(4);
        let mut sh = g.shape(rank, d);
        if big {
            sh = vec![130 + g.below(40), 257 + g.below(40)];
        }
        for op in UnaryOp::ALL {
            let inp = g.f32_input(sh.clone(), true);
            out.push(Case {
                name: format!("unary {op:?} #{i}"),
                op: Op::Prim(Prim::Unary(op)),
                inputs: vec![inp],
            });
        }
        // Broadcasting pairs: b drops leading dims and sets some dims to 1.
        let mut bsh: Vec<usize> = sh[g.below(sh.len())..].to_vec();
        for dim in bsh.iter_mut() {
            if g.below(3) == 0 {
                *dim = 1;
            }
        }
        for op in BinaryOp::ALL {
            let (a, b) = (
                g.f32_input(sh.clone(), true),
                g.f32_input(bsh.clone(), true),
            );
            out.push(Case {
                name: format!("binary {op:?} #{i}"),
                op: Op::Prim(Prim::Binary(op)),
                inputs: vec![a, b],
            });
        }
        for op in CompareOp::ALL {
            let (a, b) = (
                g.f32_input(bsh.clone(), true),
                g.f32_input(sh.clone(), true),
            );
            out.push(Case {
                name: format!("compare {op:?} #{i}"),
                op: Op::Prim(Prim::Compare(op)),
                inputs: vec![a, b],
            });
        }
        let n: usize = bsh.iter().product();
        let cond = Input {
            data: HostData::U8((0..n).map(|_| g.below(2) as u8).collect()),
            shape: bsh.clone(),
            arrange: Arrange::Plain,
        };
        out.push(Case {
            name: format!("select #{i}"),
            op: Op::Prim(Prim::Select),
            inputs: vec![
                cond,
                g.f32_input(sh.clone(), true),
                g.f32_input(vec![1], true),
            ],
        });
        for op in ReduceOp::ALL {
            let edges = g.below(2) == 0;
            let inp = g.f32_input(sh.clone(), edges);
            out.push(Case {
                name: format!("reduce {op:?} #{i}"),
                op: Op::Prim(Prim::Reduce(op)),
                inputs: vec![inp],
            });
        }
        // Matmul: random batch broadcast, edge sizes around the tiles.
        let (m, k, n) = if big {
            (150 + g.below(50), 200 + g.below(90), 260 + g.below(40))
        } else {
            (1 + g.below(2 * d), g.below(2 * d), 1 + g.below(2 * d))
        };
        let batch = g.below(3);
        let mut a_shape: Vec<usize> = (0..batch).map(|_| 1 + g.below(3)).collect();
        let mut b_shape = a_shape.clone();
        if batch > 0 && g.below(2) == 0 {
            b_shape[0] = 1;
        }
        a_shape.extend([m, k]);
        b_shape.extend([k, n]);
        let edges = g.below(3) == 0;
        let (a, b) = (g.f32_input(a_shape, edges), g.f32_input(b_shape, edges));
        out.push(Case {
            name: format!("matmul {m}x{k}x{n} #{i}"),
            op: Op::Prim(Prim::Matmul),
            inputs: vec![a, b],
        });
        // Gather / IndexAdd.
        let v = 1 + g.below(d);
        let rest_rank = g.below(3);
        let rest = g.shape(rest_rank, 9);
        let ix_rank = 1 + g.below(2);
        let ix = g.shape(ix_rank, 7);
        let ixn: usize = ix.iter().product();
        let idx: Vec<i32> = (0..ixn).map(|_| g.below(v) as i32).collect();
        let mut tshape = vec![v];
        tshape.extend(&rest);
        out.push(Case {
            name: format!("gather #{i}"),
            op: Op::Prim(Prim::Gather),
            inputs: vec![
                g.f32_input(tshape, true),
                Input {
                    data: HostData::I32(idx.clone()),
                    shape: ix.clone(),
                    arrange: Arrange::Plain,
                },
            ],
        });
        let mut sshape = ix.clone();
        sshape.extend(&rest);
        out.push(Case {
            name: format!("index_add #{i}"),
            op: Op::Prim(Prim::IndexAdd { rows: v }),
            inputs: vec![
                Input {
                    data: HostData::U32(idx.iter().map(|&x| x as u32).collect()),
                    shape: ix,
                    arrange: Arrange::Plain,
                },
                g.f32_input(sshape, true),
            ],
        });
        // Concat along a random axis.
        let axis = g.below(sh.len());
        let parts: Vec<Input> = (0..1 + g.below(3))
            .map(|_| {
                let mut s = sh.clone();
                s[axis] = 1 + g.below(5);
                g.f32_input(s, true)
            })
            .collect();
        out.push(Case {
            name: format!("concat axis {axis} #{i}"),
            op: Op::Prim(Prim::Concat { axis }),
            inputs: parts,
        });
        // Casts between every dtype pair, and copies.
        let cn: usize = sh.iter().product();
        for from in DType::ALL {
            let data = match from {
                DType::F32 => {
                    HostData::F32(g.f32s(cn, true).into_iter().map(|x| x * 300.0).collect())
                }
                DType::U8 => HostData::U8((0..cn).map(|_| g.below(256) as u8).collect()),
                DType::I32 => HostData::I32((0..cn).map(|_| g.0.next_u64() as i32).collect()),
                DType::U32 => HostData::U32((0..cn).map(|_| g.0.next_u64() as u32).collect()),
            };
            for to in DType::ALL {
                out.push(Case {
                    name: format!("cast {from}->{to} #{i}"),
                    op: Op::Prim(Prim::Cast(to)),
                    inputs: vec![Input {
                        data: data.clone(),
                        shape: sh.clone(),
                        arrange: Arrange::Plain,
                    }],
                });
            }
        }
        out.push(Case {
            name: format!("copy #{i}"),
            op: Op::Prim(Prim::Copy),
            inputs: vec![g.f32_input(sh.clone(), true)],
        });
        // Composites.
        let soft_edges = g.below(2) == 0;
        out.push(Case {
            name: format!("softmax #{i}"),
            op: Op::Softmax,
            inputs: vec![g.f32_input(sh.clone(), soft_edges)],
        });
        out.push(Case {
            name: format!("log_softmax #{i}"),
            op: Op::LogSoftmax,
            inputs: vec![g.f32_input(sh.clone(), false)],
        });
        let last = *sh.last().unwrap_or(&1);
        out.push(Case {
            name: format!("layer_norm #{i}"),
            op: Op::LayerNorm,
            inputs: vec![
                g.f32_input(sh.clone(), false),
                g.f32_input(vec![last], false),
                g.f32_input(vec![last], false),
            ],
        });
        let (lq, lk, dh, dv) = (
            1 + g.below(20),
            1 + g.below(20),
            1 + g.below(40),
            1 + g.below(20),
        );
        let heads = 1 + g.below(3);
        let mask: Vec<u8> = (0..lq * lk)
            .map(|j| (j % lk == 0 || g.below(4) != 0) as u8)
            .collect();
        let causal = g.below(2) == 0;
        out.push(Case {
            name: format!("attention causal={causal} #{i}"),
            op: Op::Attention {
                causal,
                masked: true,
                biased: true,
            },
            inputs: vec![
                g.f32_input(vec![heads, lq, dh], false),
                g.f32_input(vec![heads, lk, dh], false),
                g.f32_input(vec![heads, lk, dv], false),
                Input {
                    data: HostData::U8(mask),
                    shape: vec![lq, lk],
                    arrange: Arrange::Plain,
                },
                g.f32_input(vec![heads, 1, lk], false),
            ],
        });
        let axes: Vec<isize> = (0..sh.len() as isize).filter(|_| g.below(2) == 0).collect();
        out.push(Case {
            name: format!("sum {axes:?} #{i}"),
            op: Op::SumAxes(axes.clone()),
            inputs: vec![g.f32_input(sh.clone(), true)],
        });
        if !axes.is_empty() {
            out.push(Case {
                name: format!("mean {axes:?} #{i}"),
                op: Op::Mean(axes),
                inputs: vec![g.f32_input(sh.clone(), false)],
            });
        }
    }
    out
}

fn bits(data: &HostData) -> Vec<u8> {
    data.to_le_bytes_canonical()
}

/// Runs the suite on `fabric` against [`CpuFabric::reference`].
pub fn run_conformance(
    fabric: &dyn Fabric,
    cfg: &ConformanceConfig,
) -> std::result::Result<ConformanceReport, ConformanceFailure> {
    let reference = CpuFabric::reference();
    let mut report = ConformanceReport {
        fabric: format!("{} ({})", fabric.name(), fabric.device_description()),
        cases: 0,
        elements: 0,
    };
    for case in cases(cfg) {
        let want = run_op(&reference, &case.op, &case.inputs);
        let got = run_op(fabric, &case.op, &case.inputs);
        let fail = |detail: String| ConformanceFailure {
            case: case.name.clone(),
            detail,
        };
        match (want, got) {
            (Ok((wd, ws, wv)), Ok((gd, gs, gv))) => {
                if (wd, &ws) != (gd, &gs) {
                    return Err(fail(format!(
                        "reference gives {wd} {ws:?}, fabric gives {gd} {gs:?}"
                    )));
                }
                let (wb, gb) = (bits(&wv), bits(&gv));
                if wb != gb {
                    let esz = wd.size_bytes();
                    let at = wb
                        .chunks(esz)
                        .zip(gb.chunks(esz))
                        .position(|(a, b)| a != b)
                        .unwrap_or(0);
                    return Err(fail(format!(
                        "element {at} differs: reference {:02x?}, fabric {:02x?}",
                        &wb[at * esz..(at + 1) * esz],
                        &gb[at * esz..(at + 1) * esz]
                    )));
                }
                report.elements += wv.len();
            }
            (Err(we), Err(ge)) => {
                if we != ge {
                    return Err(fail(format!(
                        "reference refuses with {we}, fabric with {ge}"
                    )));
                }
            }
            (Ok(_), Err(e)) => return Err(fail(format!("fabric refused: {e}"))),
            (Err(e), Ok(_)) => {
                return Err(fail(format!(
                    "reference refused ({e}) but the fabric accepted"
                )))
            }
        }
        report.cases += 1;
    }
    Ok(report)
}

/// The refusals a device fabric must share with the CPU reference: an out-of-range
/// `Gather` index (`IndexOutOfRange` with that index and size), a negative `IndexAdd`
/// index, a zero-element operand whose strides pass 32 bits (never described to a
/// kernel: its row sums are +0), and a tensor that lives on another fabric (a
/// `TensorError::Fabric`). Returns the first difference.
pub fn check_refusals(fabric: &dyn Fabric) -> std::result::Result<(), String> {
    let e = |what: &str, err: TensorError| format!("{what}: {err}");
    let table = fabric
        .upload(&HostData::F32(vec![1.0; 12]), &[4, 3])
        .map_err(|x| e("upload", x))?;
    let idx = fabric
        .upload(&HostData::I32(vec![0, 4]), &[2])
        .map_err(|x| e("upload", x))?;
    match fabric.execute(&Prim::Gather, &[&table, &idx]) {
        Err(TensorError::IndexOutOfRange {
            index: 4, size: 4, ..
        }) => {}
        other => return Err(format!("gather of index 4 of 4: {other:?}")),
    }
    let neg = fabric
        .upload(&HostData::I32(vec![-1]), &[1])
        .map_err(|x| e("upload", x))?;
    let src = fabric
        .upload(&HostData::F32(vec![1.0; 3]), &[1, 3])
        .map_err(|x| e("upload", x))?;
    match fabric.execute(&Prim::IndexAdd { rows: 4 }, &[&neg, &src]) {
        Err(TensorError::IndexOutOfRange { index: -1, .. }) => {}
        other => return Err(format!("index_add of index -1: {other:?}")),
    }
    let one = fabric
        .upload(&HostData::F32(vec![1.0]), &[1])
        .map_err(|x| e("upload", x))?;
    let layout = crate::layout::Layout::from_parts(vec![3, 0], vec![1 << 40, 1], 0)
        .map_err(|x| e("layout", x))?;
    let empty = one.with_layout(layout).map_err(|x| e("view", x))?;
    let sum = fabric
        .execute(&Prim::Reduce(ReduceOp::Sum), &[&empty])
        .and_then(|s| fabric.download(&s))
        .map_err(|x| e("the sum of empty rows", x))?;
    if sum != HostData::F32(vec![0.0; 3]) {
        return Err(format!("the sum of empty rows: {sum:?}"));
    }
    let foreign = CpuFabric::reference()
        .upload(&HostData::F32(vec![1.0]), &[1])
        .map_err(|x| e("upload", x))?;
    match fabric.execute(&Prim::Unary(UnaryOp::Exp), &[&foreign]) {
        Err(TensorError::Fabric { .. }) => Ok(()),
        other => Err(format!("a CPU tensor on {}: {other:?}", fabric.name())),
    }
}
