//! Running a program on a fabric and on the CPU reference, and comparing every step.

use super::*;

pub(super) type Output = (DType, Vec<usize>, HostData);

/// The outputs of the steps that ran, and the refusal that stopped the run, if any.
pub(super) struct Trace {
    pub(super) outputs: Vec<Output>,
    pub(super) refusal: Option<(Stage, TensorError)>,
}

pub(super) fn trace(f: &dyn Fabric, p: &Program) -> Trace {
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

pub(super) fn exec_step(
    f: &dyn Fabric,
    pool: &[FabricTensor],
    step: &Step,
) -> Result<FabricTensor> {
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
pub(super) fn difference(want: &Output, got: &Output) -> Option<String> {
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
pub(super) fn unravel(mut at: usize, shape: &[usize]) -> Vec<usize> {
    let mut ix = vec![0; shape.len()];
    for (i, &d) in ix.iter_mut().zip(shape).rev() {
        let d = d.max(1);
        *i = at % d;
        at /= d;
    }
    ix
}

/// Compares one program's traces; returns (steps, elements, refused).
pub(super) fn compare(
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
