//! Gradient rules: one per primitive and per view. Gradients are computed on the same
//! fabric compositions as the forward pass (`crate::compose` on a `FabricBackend`),
//! without recording, so they are deterministic too.

use crate::compose::{self as c, Backend, FabricBackend, View};
use crate::dtype::DType;
use crate::error::{Result, TensorError};
use crate::fabric::FabricTensor;
use crate::ops::{BinaryOp, CompareOp, Prim, ReduceOp, UnaryOp};
use crate::storage::HostData;
use crate::tensor::{GradOp, Tensor};

type F = FabricTensor;

fn zeros(b: &FabricBackend, shape: &[usize]) -> Result<F> {
    b.constant(HostData::F32(vec![0.0; shape.iter().product()]), shape)
}

fn mul(b: &FabricBackend, x: &F, y: &F) -> Result<F> {
    c::binary(b, BinaryOp::Mul, x, y)
}

fn mul_s(b: &FabricBackend, x: &F, s: f32) -> Result<F> {
    c::binary_scalar(b, BinaryOp::Mul, x, s)
}

fn add_s(b: &FabricBackend, x: &F, s: f32) -> Result<F> {
    c::binary_scalar(b, BinaryOp::Add, x, s)
}

/// `1 − x`.
fn one_minus(b: &FabricBackend, x: &F) -> Result<F> {
    let one = c::scalar(b, 1.0)?;
    c::binary(b, BinaryOp::Sub, &one, x)
}

/// d/dx of a unary op, given input `x` and output `y`.
fn unary_derivative(b: &FabricBackend, op: UnaryOp, x: &F, y: &F) -> Result<Option<F>> {
    let d = match op {
        UnaryOp::Neg => b.constant(HostData::F32(vec![-1.0; x.layout().numel()]), x.shape())?,
        UnaryOp::Abs => c::unary(b, UnaryOp::Sign, x)?,
        UnaryOp::Exp => y.clone(),
        UnaryOp::Log => c::unary(b, UnaryOp::Recip, x)?,
        UnaryOp::Sqrt => c::unary(b, UnaryOp::Recip, &mul_s(b, y, 2.0)?)?,
        UnaryOp::Rsqrt => mul_s(b, &mul(b, &mul(b, y, y)?, y)?, -0.5)?,
        UnaryOp::Recip => c::unary(b, UnaryOp::Neg, &mul(b, y, y)?)?,
        UnaryOp::Tanh => one_minus(b, &mul(b, y, y)?)?,
        UnaryOp::Sigmoid => mul(b, y, &one_minus(b, y)?)?,
        UnaryOp::Relu => {
            let pos = c::compare(b, CompareOp::Gt, x, &c::scalar(b, 0.0)?)?;
            c::select(b, &pos, &c::scalar(b, 1.0)?, &c::scalar(b, 0.0)?)?
        }
        UnaryOp::GeluTanh => {
            // u = k·(x + 0.044715·x³); t = tanh(u);
            // d = 0.5·(1 + t) + 0.5·x·(1 − t²)·k·(1 + 3·0.044715·x²)
            let k = (2.0f32 / std::f32::consts::PI).sqrt();
            let x2 = mul(b, x, x)?;
            let u = mul_s(
                b,
                &c::binary(b, BinaryOp::Add, x, &mul_s(b, &mul(b, &x2, x)?, 0.044715)?)?,
                k,
            )?;
            let t = c::unary(b, UnaryOp::Tanh, &u)?;
            let left = mul_s(b, &add_s(b, &t, 1.0)?, 0.5)?;
            let du = mul_s(b, &add_s(b, &mul_s(b, &x2, 3.0 * 0.044715)?, 1.0)?, k)?;
            let right = mul(
                b,
                &mul(b, &mul_s(b, x, 0.5)?, &one_minus(b, &mul(b, &t, &t)?)?)?,
                &du,
            )?;
            c::binary(b, BinaryOp::Add, &left, &right)?
        }
        UnaryOp::GeluErf => {
            // d = 0.5·(1 + erf(x/√2)) + x·exp(−x²/2)/√(2π)
            let e = c::unary(
                b,
                UnaryOp::Erf,
                &mul_s(b, x, std::f32::consts::FRAC_1_SQRT_2)?,
            )?;
            let left = mul_s(b, &add_s(b, &e, 1.0)?, 0.5)?;
            let g = c::unary(b, UnaryOp::Exp, &mul_s(b, &mul(b, x, x)?, -0.5)?)?;
            let right = mul_s(b, &mul(b, x, &g)?, 0.398_942_3)?;
            c::binary(b, BinaryOp::Add, &left, &right)?
        }
        UnaryOp::Erf => {
            let g = c::unary(b, UnaryOp::Exp, &c::unary(b, UnaryOp::Neg, &mul(b, x, x)?)?)?;
            mul_s(b, &g, std::f32::consts::FRAC_2_SQRT_PI)?
        }
        UnaryOp::Sign => zeros(b, x.shape())?,
        UnaryOp::PowScalar(p) => {
            if p == 0.0 {
                zeros(b, x.shape())?
            } else {
                mul_s(b, &c::unary(b, UnaryOp::PowScalar(p - 1.0), x)?, p)?
            }
        }
    };
    Ok(Some(d))
}

/// Gradients of the inputs of one recorded op, given the output value and its gradient.
pub(crate) fn grad_rule(
    b: &FabricBackend,
    op: &GradOp,
    inputs: &[Tensor],
    out: &F,
    g: &F,
) -> Result<Vec<Option<F>>> {
    let x = |i: usize| inputs[i].raw();
    let shape = |i: usize| inputs[i].shape().to_vec();
    match op {
        GradOp::Prim(prim) => match prim {
            Prim::Unary(u) => {
                let d = unary_derivative(b, *u, x(0), out)?;
                Ok(vec![d.map(|d| mul(b, g, &d)).transpose()?])
            }
            Prim::Binary(bop) => {
                let (a, y) = (x(0), x(1));
                let (ga, gb) = match bop {
                    BinaryOp::Add => (g.clone(), g.clone()),
                    BinaryOp::Sub => (g.clone(), c::unary(b, UnaryOp::Neg, g)?),
                    BinaryOp::Mul => (mul(b, g, y)?, mul(b, g, a)?),
                    BinaryOp::Div => {
                        let ga = c::binary(b, BinaryOp::Div, g, y)?;
                        let gb = c::unary(
                            b,
                            UnaryOp::Neg,
                            &c::binary(b, BinaryOp::Div, &mul(b, &ga, a)?, y)?,
                        )?;
                        (ga, gb)
                    }
                    BinaryOp::Max | BinaryOp::Min => {
                        // Ties send the whole gradient to the first operand.
                        let cmp = if *bop == BinaryOp::Max {
                            CompareOp::Ge
                        } else {
                            CompareOp::Le
                        };
                        let m = c::compare(b, cmp, a, y)?;
                        let z = c::scalar(b, 0.0)?;
                        (c::select(b, &m, g, &z)?, c::select(b, &m, &z, g)?)
                    }
                };
                Ok(vec![
                    Some(c::sum_to_shape(b, &ga, &shape(0))?),
                    Some(c::sum_to_shape(b, &gb, &shape(1))?),
                ])
            }
            Prim::Compare(_) => Ok(vec![None, None]),
            Prim::Select => {
                let z = c::scalar(b, 0.0)?;
                let ga = c::select(b, x(0), g, &z)?;
                let gb = c::select(b, x(0), &z, g)?;
                Ok(vec![
                    None,
                    Some(c::sum_to_shape(b, &ga, &shape(1))?),
                    Some(c::sum_to_shape(b, &gb, &shape(2))?),
                ])
            }
            Prim::Reduce(r) => {
                let xs = shape(0);
                let gu = b.view(g, View::Unsqueeze(xs.len() - 1))?;
                match r {
                    ReduceOp::Sum => Ok(vec![Some(b.view(&gu, View::BroadcastTo(xs))?)]),
                    ReduceOp::Max => {
                        // The whole gradient goes to the first maximum of each row:
                        // scatter row r's gradient to flat position r·n + argmax(r).
                        let n = xs[xs.len() - 1];
                        let total: usize = xs.iter().product();
                        let rows = total / n.max(1);
                        let idx = b.exec(&Prim::Reduce(ReduceOp::ArgMax), &[x(0)])?;
                        let HostData::I32(arg) = b.0.download(&idx)? else {
                            return Err(TensorError::Fabric {
                                fabric: b.0.name().to_string(),
                                message: "argmax did not return i32".into(),
                            });
                        };
                        // Flat positions are below ELEMENTS_MAX < 2^31, so they fit in i32.
                        let flat: Vec<i32> = arg
                            .iter()
                            .enumerate()
                            .map(|(r, &i)| (r * n) as i32 + i)
                            .collect();
                        let flat = b.constant(HostData::I32(flat), &[rows])?;
                        let gr = c::reshape(b, g, &[rows, 1])?;
                        let scattered = b.exec(&Prim::IndexAdd { rows: total }, &[&flat, &gr])?;
                        Ok(vec![Some(c::reshape(b, &scattered, &xs)?)])
                    }
                    ReduceOp::ArgMax => Ok(vec![None]),
                }
            }
            Prim::Matmul => {
                let ga = b.exec(&Prim::Matmul, &[g, &c::transpose(b, x(1), -1, -2)?])?;
                let gb = b.exec(&Prim::Matmul, &[&c::transpose(b, x(0), -1, -2)?, g])?;
                Ok(vec![
                    Some(c::sum_to_shape(b, &ga, &shape(0))?),
                    Some(c::sum_to_shape(b, &gb, &shape(1))?),
                ])
            }
            Prim::Gather => {
                let rows = shape(0)[0];
                Ok(vec![
                    Some(b.exec(&Prim::IndexAdd { rows }, &[x(1), g])?),
                    None,
                ])
            }
            Prim::IndexAdd { .. } => Ok(vec![None, Some(b.exec(&Prim::Gather, &[g, x(0)])?)]),
            Prim::Concat { axis } => {
                let mut start = 0;
                let mut out = Vec::with_capacity(inputs.len());
                for t in inputs {
                    let len = t.shape()[*axis];
                    out.push(Some(b.view(
                        g,
                        View::Slice {
                            axis: *axis,
                            start,
                            end: start + len,
                            step: 1,
                        },
                    )?));
                    start += len;
                }
                Ok(out)
            }
            Prim::Cast(to) => Ok(vec![
                (*to == DType::F32 && inputs[0].dtype() == DType::F32).then(|| g.clone())
            ]),
            Prim::Copy => Ok(vec![Some(g.clone())]),
        },
        GradOp::View(v) => {
            let xs = shape(0);
            let gx = match v {
                View::Reshape(_) => c::reshape(b, g, &xs)?,
                View::Permute(perm) => {
                    let mut inv = vec![0; perm.len()];
                    for (i, &p) in perm.iter().enumerate() {
                        inv[p] = i;
                    }
                    b.view(g, View::Permute(inv))?
                }
                View::Slice {
                    axis, start, step, ..
                } => {
                    // Scatter the slice's gradient back: axis first, rows added at
                    // start + i·step, axis moved back. An empty input gets an empty
                    // gradient (its axis may still be long).
                    if xs.iter().product::<usize>() == 0 {
                        return Ok(vec![Some(zeros(b, &xs)?)]);
                    }
                    let gs = g.shape().to_vec();
                    let len = gs[*axis];
                    let rank = gs.len();
                    let mut perm = vec![*axis];
                    perm.extend((0..rank).filter(|d| d != axis));
                    let mut inv = vec![0; rank];
                    for (i, &p) in perm.iter().enumerate() {
                        inv[p] = i;
                    }
                    let gp = b.view(g, View::Permute(perm.clone()))?;
                    let idx: Vec<i32> = (0..len).map(|i| (start + i * step) as i32).collect();
                    let idx = b.constant(HostData::I32(idx), &[len])?;
                    let gp = c::contiguous(b, &gp)?;
                    let scattered = b.exec(&Prim::IndexAdd { rows: xs[*axis] }, &[&idx, &gp])?;
                    b.view(&scattered, View::Permute(inv))?
                }
                View::BroadcastTo(_) => c::sum_to_shape(b, g, &xs)?,
                View::Unsqueeze(axis) => b.view(g, View::Squeeze(*axis))?,
                View::Squeeze(axis) => b.view(g, View::Unsqueeze(*axis))?,
            };
            Ok(vec![Some(gx)])
        }
    }
}
