//! Indexing, shape, slicing, concatenation, casts and constants.

use super::*;

impl Lower<'_> {
    pub(super) fn gather(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["axis"])?;
        let (data, idx) = (self.arg(0)?, self.arg(1)?);
        let ds = shape_of(&data);
        let a = axis("Gather", self.attr_i("axis", 0), ds.len())?;
        if let (V::S(t), V::S(i)) = (&data, &idx) {
            return Ok(vec![st(self.ctx(t.gather(a, i))?)]);
        }
        let elem = elem_of(&data);
        if elem_of(&idx) != Elem::Int {
            unsupported!(self, "indices must be integers");
        }
        let indices = match &idx {
            V::S(t) => {
                // Negative indices count from the end; normalised at import.
                let dim = ds[a] as i64;
                let v = self.ctx(t.as_ints("Gather"))?;
                let mut fixed = Vec::with_capacity(v.len());
                for x in v {
                    let y = if x < 0 { x + dim } else { x };
                    if !(0..dim).contains(&y) {
                        unsupported!(self, "index {x} out of range for {dim} rows");
                    }
                    fixed.push(y);
                }
                self.param(
                    "",
                    &HostTensor::new(t.shape.clone(), HostValues::I64(fixed))?,
                )?
            }
            V::D(x) => {
                // Negative indices count from the end: i + dim where i < 0 (exact in f32
                // for any table the runtime holds, |i| < 2^24 checked by the binder).
                let f = self.f32_of(x)?;
                let zero = self.ctx(c::scalar(&self.b, 0.0))?;
                let neg = self.prim(Prim::Compare(CompareOp::Lt), &[&f, &zero])?;
                let wrapped =
                    self.ctx(c::binary_scalar(&self.b, BinaryOp::Add, &f, ds[a] as f32))?;
                let fixed = self.prim(Prim::Select, &[&neg, &wrapped, &f])?;
                self.prim(Prim::Cast(DType::I32), &[&fixed])?
            }
        };
        let table = self.dynamic(0)?;
        let table = self.f32_of(&table)?;
        let rank = ds.len();
        let moved = if a == 0 {
            table
        } else {
            let mut perm = vec![a];
            perm.extend((0..rank).filter(|&d| d != a));
            let p = self.view(&table, View::Permute(perm))?;
            self.prim(Prim::Copy, &[&p])?
        };
        let mut y = self.prim(Prim::Gather, &[&moved, &indices])?;
        if a != 0 {
            let r = indices.layout.shape().len();
            let mut perm: Vec<usize> = (r..r + a).collect();
            perm.extend(0..r);
            perm.extend(r + a..y.layout.shape().len());
            y = self.view(&y, View::Permute(perm))?;
        }
        Ok(vec![V::D(self.back(y, elem)?)])
    }

    /// ONNX `Reshape`'s target: 0 copies the input's dim (unless `allowzero`), −1 is
    /// inferred.
    pub(super) fn reshape_target(
        &self,
        from: &[usize],
        spec: &[i64],
        allowzero: bool,
    ) -> Result<Vec<usize>> {
        let n: usize = from.iter().product();
        let mut out = Vec::with_capacity(spec.len());
        let mut infer = None;
        for (i, &d) in spec.iter().enumerate() {
            out.push(match d {
                -1 if infer.is_none() => {
                    infer = Some(i);
                    1
                }
                0 if !allowzero => *from.get(i).ok_or_else(|| {
                    self.unsupported(format!("dim {i} copies a missing input dim"))
                })?,
                d if d >= 0 => d as usize,
                d => unsupported!(self, "bad reshape dim {d}"),
            });
        }
        if let Some(i) = infer {
            // The spec's dims are the file's: their product may overflow (a fuzzer's
            // find, `docs/fuzzing.md`).
            let Some(known) = out.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
                unsupported!(self, "the dims of {spec:?} multiply past the address space");
            };
            if known == 0 || !n.is_multiple_of(known) {
                unsupported!(self, "cannot infer dim {i} of {spec:?} for {from:?}");
            }
            out[i] = n / known;
        }
        if host::numel(&out)? != n {
            unsupported!(self, "cannot reshape {from:?} to {spec:?}");
        }
        Ok(out)
    }

    pub(super) fn reshape_to(&mut self, v: V, shape: Vec<usize>) -> Result<V> {
        Ok(match v {
            V::S(t) => st(self.ctx(t.reshape(shape))?),
            V::D(x) => V::D(self.ctx(c::reshape(&self.b, &x, &shape))?),
        })
    }

    pub(super) fn reshape(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["allowzero"])?;
        let x = self.arg(0)?;
        let spec = self.ctx(self.static_arg(1, "shape")?.as_dims("Reshape"))?;
        let target = self.reshape_target(&shape_of(&x), &spec, self.attr_i("allowzero", 0) != 0)?;
        Ok(vec![self.reshape_to(x, target)?])
    }

    pub(super) fn flatten(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["axis"])?;
        let x = self.arg(0)?;
        let s = shape_of(&x);
        let a = self.attr_i("axis", 1);
        let a = if a < 0 { a + s.len() as i64 } else { a };
        if !(0..=s.len() as i64).contains(&a) {
            unsupported!(self, "axis {a} out of range");
        }
        let (l, r) = s.split_at(a as usize);
        Ok(vec![self.reshape_to(
            x,
            vec![l.iter().product(), r.iter().product()],
        )?])
    }

    pub(super) fn transpose(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["perm"])?;
        let x = self.arg(0)?;
        let rank = shape_of(&x).len();
        let perm: Vec<usize> = match self.attr_ints("perm") {
            Some(p) => p
                .iter()
                .map(|&d| axis("Transpose", d, rank))
                .collect::<Result<_>>()?,
            None => (0..rank).rev().collect(),
        };
        Ok(vec![match x {
            V::S(t) => st(self.ctx(t.permute(&perm))?),
            V::D(v) => V::D(self.view(&v, View::Permute(perm))?),
        }])
    }

    pub(super) fn squeeze(&mut self, op: &str) -> Result<Vec<V>> {
        self.check_attrs(&["axes"])?;
        let x = self.arg(0)?;
        let s = shape_of(&x);
        let axes = match self.attr_ints("axes") {
            Some(a) if self.opset < 13 => Some(a),
            Some(_) => unsupported!(self, "axes is an input from opset 13"),
            None => self.static_ints(1, "axes")?,
        };
        let target = if op == "Unsqueeze" {
            let axes = axes.ok_or_else(|| self.unsupported("axes is required".into()))?;
            let rank = s.len() + axes.len();
            let mut pos: Vec<usize> = axes
                .iter()
                .map(|&a| axis("Unsqueeze", a, rank))
                .collect::<Result<_>>()?;
            pos.sort_unstable();
            let mut out = s.clone();
            for p in pos {
                if p > out.len() {
                    unsupported!(self, "axes {axes:?} out of range");
                }
                out.insert(p, 1);
            }
            out
        } else {
            let drop: Vec<usize> = match axes {
                Some(a) => a
                    .iter()
                    .map(|&d| axis("Squeeze", d, s.len()))
                    .collect::<Result<_>>()?,
                None => (0..s.len()).filter(|&d| s[d] == 1).collect(),
            };
            if drop.iter().any(|&d| s[d] != 1) {
                unsupported!(self, "cannot squeeze a dim that is not 1 in {s:?}");
            }
            s.iter()
                .enumerate()
                .filter(|(d, _)| !drop.contains(d))
                .map(|(_, &v)| v)
                .collect()
        };
        Ok(vec![self.reshape_to(x, target)?])
    }

    pub(super) fn concat(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["axis"])?;
        let k = self.node.input.len();
        let vals: Vec<V> = (0..k).map(|i| self.arg(i)).collect::<Result<_>>()?;
        let first = vals
            .first()
            .ok_or_else(|| self.unsupported("no inputs".into()))?;
        let rank = shape_of(first).len();
        let a = axis("Concat", self.attr_i("axis", 0), rank)?;
        if vals.iter().all(|v| matches!(v, V::S(_))) {
            let ts: Vec<&HostTensor> = vals
                .iter()
                .map(|v| match v {
                    V::S(t) => t.as_ref(),
                    V::D(_) => unreachable!("all static"),
                })
                .collect();
            return Ok(vec![st(self.ctx(HostTensor::concat(&ts, a))?)]);
        }
        let elem = elem_of(first);
        if vals.iter().any(|v| elem_of(v) != elem) {
            unsupported!(self, "inputs of different types");
        }
        let xs: Vec<Val> = (0..k).map(|i| self.dynamic(i)).collect::<Result<_>>()?;
        let xs: Vec<Val> = if elem == Elem::Float {
            xs
        } else {
            xs.iter().map(|x| self.f32_of(x)).collect::<Result<_>>()?
        };
        let refs: Vec<&Val> = xs.iter().collect();
        let y = self.prim(Prim::Concat { axis: a }, &refs)?;
        Ok(vec![V::D(self.back(y, elem)?)])
    }

    /// One slice along `axis` of `x`, with ONNX's clamping.
    pub(super) fn slice_one(&self, x: V, ax: usize, start: i64, end: i64, step: i64) -> Result<V> {
        let dim = shape_of(&x)[ax] as i64;
        if step < 1 {
            unsupported!(self, "step {step}: only positive steps are supported");
        }
        let norm = |v: i64| (if v < 0 { v.saturating_add(dim) } else { v }).clamp(0, dim) as usize;
        let (s, e) = (norm(start), norm(end));
        let e = e.max(s);
        Ok(match x {
            V::S(t) => st(self.ctx(t.slice(ax, s, e, step as usize))?),
            V::D(v) => V::D(self.view(
                &v,
                View::Slice {
                    axis: ax,
                    start: s,
                    end: e,
                    step: step as usize,
                },
            )?),
        })
    }

    pub(super) fn slice(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&[])?;
        let mut x = self.arg(0)?;
        let rank = shape_of(&x).len();
        let starts = self.static_ints(1, "starts")?.unwrap_or_default();
        let ends = self.static_ints(2, "ends")?.unwrap_or_default();
        let axes = self
            .static_ints(3, "axes")?
            .unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = self
            .static_ints(4, "steps")?
            .unwrap_or_else(|| vec![1; starts.len()]);
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            unsupported!(self, "starts, ends, axes and steps differ in length");
        }
        for i in 0..starts.len() {
            let a = axis("Slice", axes[i], rank)?;
            x = self.slice_one(x, a, starts[i], ends[i], steps[i])?;
        }
        Ok(vec![x])
    }

    pub(super) fn split(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["axis", "num_outputs"])?;
        let x = self.arg(0)?;
        let s = shape_of(&x);
        let a = axis("Split", self.attr_i("axis", 0), s.len())?;
        let k = self.node.output.len();
        let sizes = match self.static_ints(1, "split")? {
            Some(v) => v,
            None => {
                let parts = self.attr_i("num_outputs", k as i64).max(1);
                let each = (s[a] as i64 + parts - 1) / parts;
                (0..parts)
                    .map(|i| each.min(s[a] as i64 - i * each).max(0))
                    .collect()
            }
        };
        if sizes.len() != k
            || sizes.iter().any(|&v| v < 0)
            || sizes.iter().sum::<i64>() != s[a] as i64
        {
            unsupported!(
                self,
                "split sizes {sizes:?} do not cover dim {} with {k} outputs",
                s[a]
            );
        }
        let mut out = Vec::with_capacity(k);
        let mut at = 0;
        for sz in sizes {
            out.push(self.slice_one(x.clone(), a, at, at + sz, 1)?);
            at += sz;
        }
        Ok(out)
    }

    pub(super) fn expand(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&[])?;
        let x = self.arg(0)?;
        let spec = self.ctx(self.static_arg(1, "shape")?.as_dims("Expand"))?;
        let spec: Vec<usize> = spec
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| self.unsupported(format!("bad dim {d}"))))
            .collect::<Result<_>>()?;
        let out = host::broadcast("Expand", &shape_of(&x), &spec)?;
        host::numel(&out)?;
        Ok(vec![match x {
            V::S(t) => st(self.ctx(t.expand(&out))?),
            V::D(v) => {
                let rank = v.layout.shape().len();
                let mut y = v;
                for _ in rank..out.len() {
                    y = self.view(&y, View::Unsqueeze(0))?;
                }
                V::D(self.view(&y, View::BroadcastTo(out))?)
            }
        }])
    }

    pub(super) fn cast(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["to", "saturate"])?;
        let to = self.attr_i("to", 0) as i32;
        let target = match super::super::elem_of(to) {
            Some(e) => e,
            None => unsupported!(
                self,
                "cast to {} is not supported",
                super::super::dtype_name(to)
            ),
        };
        let x = self.arg(0)?;
        if let V::S(t) = &x {
            let kind = match target {
                Elem::Float => HostValues::F32(vec![]),
                Elem::Int => HostValues::I64(vec![]),
                Elem::Bool => HostValues::Bool(vec![]),
            };
            return Ok(vec![st(t.cast(&kind))]);
        }
        let v = self.dynamic(0)?;
        let from = elem_of(&x);
        let y = match (from, target) {
            (a, b) if a == b => v,
            (_, Elem::Float) => self.prim(Prim::Cast(DType::F32), &[&v])?,
            (Elem::Bool, Elem::Int) => self.prim(Prim::Cast(DType::I32), &[&v])?,
            (Elem::Float, Elem::Int) => self.prim(Prim::Cast(DType::I32), &[&v])?,
            (_, Elem::Bool) => self.back(self.f32_of(&v)?, Elem::Bool)?,
            (_, Elem::Int) => self.prim(Prim::Cast(DType::I32), &[&v])?,
        };
        Ok(vec![V::D(y)])
    }

    pub(super) fn constant(&mut self) -> Result<Vec<V>> {
        let n = self.node;
        let a = match n.attribute.as_slice() {
            [a] => a,
            _ => unsupported!(self, "expected exactly one value attribute"),
        };
        let t = match a.name() {
            "value" => {
                let t =
                    a.t.as_ref()
                        .ok_or_else(|| self.unsupported("value has no tensor".into()))?;
                self.ctx(tensor_from_proto(t))?
            }
            "value_float" => HostTensor::new(vec![], HostValues::F32(vec![a.f()]))?,
            "value_floats" => {
                HostTensor::new(vec![a.floats.len()], HostValues::F32(a.floats.clone()))?
            }
            "value_int" => HostTensor::new(vec![], HostValues::I64(vec![a.i()]))?,
            "value_ints" => HostTensor::ints(a.ints.clone()),
            other => unsupported!(self, "attribute {other:?} is not supported"),
        };
        Ok(vec![st(t)])
    }

    pub(super) fn constant_of_shape(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["value"])?;
        let dims = self.ctx(self.static_arg(0, "shape")?.as_dims("ConstantOfShape"))?;
        let shape: Vec<usize> = dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| self.unsupported(format!("bad dim {d}"))))
            .collect::<Result<_>>()?;
        let n = host::numel(&shape)?;
        let fill = match self.attr("value").and_then(|a| a.t.as_ref()) {
            Some(t) => self.ctx(tensor_from_proto(t))?,
            None => HostTensor::new(vec![1], HostValues::F32(vec![0.0]))?,
        };
        if fill.values.len() != 1 {
            unsupported!(self, "value must hold one element");
        }
        let values = match &fill.values {
            HostValues::F32(v) => HostValues::F32(vec![v[0]; n]),
            HostValues::I64(v) => HostValues::I64(vec![v[0]; n]),
            HostValues::Bool(v) => HostValues::Bool(vec![v[0]; n]),
        };
        Ok(vec![st(HostTensor::new(shape, values)?)])
    }

    pub(super) fn range(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&[])?;
        let (s, l, d) = (
            self.static_arg(0, "start")?,
            self.static_arg(1, "limit")?,
            self.static_arg(2, "delta")?,
        );
        match (&s.values, &l.values, &d.values) {
            (HostValues::I64(s), HostValues::I64(l), HostValues::I64(d))
                if s.len() == 1 && l.len() == 1 && d.len() == 1 =>
            {
                let (s, l, d) = (s[0], l[0], d[0]);
                if d == 0 {
                    unsupported!(self, "delta 0");
                }
                let n = ((l - s) as f64 / d as f64).ceil().max(0.0) as usize;
                host::numel(&[n])?;
                Ok(vec![st(HostTensor::ints(
                    (0..n as i64).map(|i| s + i * d).collect(),
                ))])
            }
            _ => unsupported!(self, "only integer ranges known at import are supported"),
        }
    }
}
