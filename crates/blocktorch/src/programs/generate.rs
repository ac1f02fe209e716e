//! Drawing a program from a seed: the generator (`Builder`) and its step kinds.

use super::*;

/// The generator state: the random source and the dtype and shape of every pool value.
pub(super) struct Builder {
    g: Gen,
    pool: Vec<(DType, Vec<usize>)>,
    dim_max: usize,
    wild: bool,
}

/// How the values of one f32 operand are drawn (`Gen::f32s_mixed`).
#[derive(Clone, Copy)]
pub(super) struct Mix {
    edge_one_in: usize,
    scaled: bool,
}

impl Mix {
    const TAME: Mix = Mix {
        edge_one_in: 0,
        scaled: false,
    };
}

pub(super) type Meta = (DType, Vec<usize>);

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
pub(super) fn defined_everywhere(op: UnaryOp) -> bool {
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
pub(super) fn make_out_of_range(data: &HostData, at: usize, bound: usize) -> HostData {
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
pub(super) fn matmul_shape(a: &[usize], b: &[usize], transpose_rhs: bool) -> Option<Vec<usize>> {
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
pub(super) enum Stage {
    Input(usize),
    Step(usize),
}
