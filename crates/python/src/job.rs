//! Programs, jobs, local runs, results and traces: `ProgramBuilder`, `Program`, `Job`,
//! `run`, `decode_result`, `decode_trace`, and the model importers.

use crate::arrays::{dtype_name, dtype_of, from_numpy, to_numpy};
use crate::errors;
use crate::keys::PyAddress;
use blocktorch::compose::{self as c, Backend as _};
use blocktorch::{BinaryOp, CpuConfig, CpuFabric, DType, Fabric, HostData, Prim, UnaryOp};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use tb_job::format::{InputTensorDescriptor, Normalisation};
use tb_job::{InputSlot, Job, JobForm, ProgramBuilder, ResultObject, Val};
use tb_models::bert::{Bert, BertShape, Pooling};
use tb_models::text::TextEncoder;

/// Most CPU threads `run` takes (the fabric's own limit is higher; a Python caller
/// asking for more is a mistake).
const RUN_THREADS_MAX: usize = 256;
/// Bytes of model constants `Job.run` keeps uploaded in this process, all models
/// together (1 GiB): a second run of a model's jobs reuses them (`tb_job::ModelCache`).
const RUN_MODEL_CACHE_BYTES: u64 = 1 << 30;

/// The process's prepared models for `Job.run`.
fn run_models() -> &'static tb_job::ModelCache {
    static MODELS: std::sync::OnceLock<tb_job::ModelCache> = std::sync::OnceLock::new();
    MODELS.get_or_init(|| tb_job::ModelCache::new(RUN_MODEL_CACHE_BYTES))
}

/// A value of a program being built: its id, shape and dtype.
#[pyclass(name = "Value", module = "the_block", frozen)]
#[derive(Clone)]
pub struct PyValue(Val);

#[pymethods]
impl PyValue {
    #[getter]
    fn shape(&self) -> Vec<usize> {
        self.0.layout.shape().to_vec()
    }

    #[getter]
    fn dtype(&self) -> &'static str {
        dtype_name(self.0.dtype)
    }

    fn __repr__(&self) -> String {
        format!(
            "Value(shape={:?}, dtype={})",
            self.0.layout.shape(),
            dtype_name(self.0.dtype)
        )
    }
}

/// Records a program over BlockTorch's primitives. Each method adds the ops of one
/// composite exactly as the runtime's `compose` module writes them (the ops every
/// fabric runs and the referee re-executes); shapes and dtypes are checked as they are
/// added. `finish()` gives the `Program`; the builder is spent.
#[pyclass(name = "ProgramBuilder", module = "the_block", unsendable)]
pub struct PyProgramBuilder {
    b: Option<ProgramBuilder>,
    descriptor: InputTensorDescriptor,
}

fn built(what: &str, r: blocktorch::Result<Val>) -> PyResult<PyValue> {
    r.map(PyValue).map_err(|e| errors::job(what, e))
}

fn unary_op(name: &str) -> PyResult<UnaryOp> {
    Ok(match name {
        "neg" => UnaryOp::Neg,
        "abs" => UnaryOp::Abs,
        "exp" => UnaryOp::Exp,
        "log" => UnaryOp::Log,
        "sqrt" => UnaryOp::Sqrt,
        "rsqrt" => UnaryOp::Rsqrt,
        "recip" => UnaryOp::Recip,
        "tanh" => UnaryOp::Tanh,
        "sigmoid" => UnaryOp::Sigmoid,
        "relu" => UnaryOp::Relu,
        "gelu" | "gelu_tanh" => UnaryOp::GeluTanh,
        "gelu_erf" => UnaryOp::GeluErf,
        "erf" => UnaryOp::Erf,
        "sign" => UnaryOp::Sign,
        other => {
            return Err(errors::JobError::new_err(format!(
                "no unary op {other:?}: neg, abs, exp, log, sqrt, rsqrt, recip, tanh, \
                 sigmoid, relu, gelu (tanh form), gelu_erf, erf, sign"
            )))
        }
    })
}

impl PyProgramBuilder {
    fn b(&self) -> PyResult<&ProgramBuilder> {
        self.b.as_ref().ok_or_else(|| {
            errors::JobError::new_err("this ProgramBuilder is finished; start a new one")
        })
    }

    fn binary(&self, op: BinaryOp, x: &PyValue, y: &PyValue) -> PyResult<PyValue> {
        let b = self.b()?;
        built("binary op", c::binary(b, op, &x.0, &y.0))
    }
}

#[pymethods]
impl PyProgramBuilder {
    /// A builder for jobs whose input is a dense `input_dtype` tensor of
    /// `input_shape`, optionally with a uint8 attention mask of `mask_shape`.
    #[new]
    #[pyo3(signature = (input_shape, input_dtype="float32", mask_shape=None))]
    fn new(
        input_shape: Vec<usize>,
        input_dtype: &str,
        mask_shape: Option<Vec<usize>>,
    ) -> PyResult<PyProgramBuilder> {
        let dtype = dtype_of(input_dtype)?;
        blocktorch::layout::check_shape(&input_shape).map_err(|e| errors::job("input", e))?;
        let mut d = InputTensorDescriptor::dense(dtype, &input_shape, Normalisation::None);
        if let Some(ms) = mask_shape {
            blocktorch::layout::check_shape(&ms).map_err(|e| errors::job("mask", e))?;
            let n = ms.iter().product();
            d.attention_mask = Some(tb_job::SideTensor {
                shape: ms,
                data: HostData::U8(vec![0; n]),
            });
        }
        Ok(PyProgramBuilder {
            b: Some(ProgramBuilder::new(&d)),
            descriptor: d,
        })
    }

    /// The job's input.
    fn input(&self) -> PyResult<PyValue> {
        built("input", self.b()?.input(InputSlot::Main))
    }

    /// The job's attention mask (uint8, 1 = attend).
    fn mask(&self) -> PyResult<PyValue> {
        built("mask", self.b()?.input(InputSlot::Mask))
    }

    /// A named constant (a weight) from a numpy array (float32, uint8, int32, uint32).
    fn param(&self, name: &str, array: &Bound<'_, PyAny>) -> PyResult<PyValue> {
        let (data, shape) = from_numpy(array)?;
        built(name, self.b()?.param(name, data, &shape))
    }

    /// A float32 scalar constant.
    fn scalar(&self, value: f32) -> PyResult<PyValue> {
        built("scalar", c::scalar(self.b()?, value))
    }

    /// `x @ y` (batched, broadcasting the batch axes).
    fn matmul(&self, x: &PyValue, y: &PyValue) -> PyResult<PyValue> {
        built("matmul", self.b()?.exec(&Prim::Matmul, &[&x.0, &y.0]))
    }

    /// `x @ w + b` with `w: [in, out]`, `b: [out]` (a dense layer).
    #[pyo3(signature = (x, w, b=None))]
    fn linear(&self, x: &PyValue, w: &PyValue, b: Option<&PyValue>) -> PyResult<PyValue> {
        let bd = self.b()?;
        let y = bd
            .exec(&Prim::Matmul, &[&x.0, &w.0])
            .map_err(|e| errors::job("linear", e))?;
        match b {
            None => Ok(PyValue(y)),
            Some(b) => built("linear", c::binary(bd, BinaryOp::Add, &y, &b.0)),
        }
    }

    fn add(&self, x: &PyValue, y: &PyValue) -> PyResult<PyValue> {
        self.binary(BinaryOp::Add, x, y)
    }

    fn sub(&self, x: &PyValue, y: &PyValue) -> PyResult<PyValue> {
        self.binary(BinaryOp::Sub, x, y)
    }

    fn mul(&self, x: &PyValue, y: &PyValue) -> PyResult<PyValue> {
        self.binary(BinaryOp::Mul, x, y)
    }

    fn div(&self, x: &PyValue, y: &PyValue) -> PyResult<PyValue> {
        self.binary(BinaryOp::Div, x, y)
    }

    fn maximum(&self, x: &PyValue, y: &PyValue) -> PyResult<PyValue> {
        self.binary(BinaryOp::Max, x, y)
    }

    fn minimum(&self, x: &PyValue, y: &PyValue) -> PyResult<PyValue> {
        self.binary(BinaryOp::Min, x, y)
    }

    /// An elementwise function by name: `relu`, `gelu`, `tanh`, `exp`, `sigmoid`, …
    fn unary(&self, op: &str, x: &PyValue) -> PyResult<PyValue> {
        built(op, c::unary(self.b()?, unary_op(op)?, &x.0))
    }

    fn relu(&self, x: &PyValue) -> PyResult<PyValue> {
        self.unary("relu", x)
    }

    /// GELU, tanh form.
    fn gelu(&self, x: &PyValue) -> PyResult<PyValue> {
        self.unary("gelu", x)
    }

    fn tanh(&self, x: &PyValue) -> PyResult<PyValue> {
        self.unary("tanh", x)
    }

    fn sigmoid(&self, x: &PyValue) -> PyResult<PyValue> {
        self.unary("sigmoid", x)
    }

    fn exp(&self, x: &PyValue) -> PyResult<PyValue> {
        self.unary("exp", x)
    }

    #[pyo3(signature = (x, axis=-1))]
    fn softmax(&self, x: &PyValue, axis: isize) -> PyResult<PyValue> {
        built("softmax", c::softmax(self.b()?, &x.0, axis))
    }

    #[pyo3(signature = (x, axis=-1))]
    fn log_softmax(&self, x: &PyValue, axis: isize) -> PyResult<PyValue> {
        built("log_softmax", c::log_softmax(self.b()?, &x.0, axis))
    }

    /// Layer normalisation over the last `normalized_dims` axes.
    #[pyo3(signature = (x, weight=None, bias=None, eps=1e-5, normalized_dims=1))]
    fn layer_norm(
        &self,
        x: &PyValue,
        weight: Option<&PyValue>,
        bias: Option<&PyValue>,
        eps: f32,
        normalized_dims: usize,
    ) -> PyResult<PyValue> {
        built(
            "layer_norm",
            c::layer_norm(
                self.b()?,
                &x.0,
                normalized_dims,
                weight.map(|w| &w.0),
                bias.map(|b| &b.0),
                eps,
            ),
        )
    }

    /// Scaled dot-product attention (`q: [.., Lq, d]`, `k: [.., Lk, d]`,
    /// `v: [.., Lk, dv]`), optionally causal and masked.
    #[pyo3(signature = (q, k, v, mask=None, causal=false, scale=None))]
    fn attention(
        &self,
        q: &PyValue,
        k: &PyValue,
        v: &PyValue,
        mask: Option<&PyValue>,
        causal: bool,
        scale: Option<f32>,
    ) -> PyResult<PyValue> {
        let opts = blocktorch::AttentionOptions { scale, causal };
        built(
            "attention",
            c::attention(self.b()?, &q.0, &k.0, &v.0, mask.map(|m| &m.0), None, &opts),
        )
    }

    fn reshape(&self, x: &PyValue, shape: Vec<usize>) -> PyResult<PyValue> {
        built("reshape", c::reshape(self.b()?, &x.0, &shape))
    }

    #[pyo3(signature = (x, dim0=-2, dim1=-1))]
    fn transpose(&self, x: &PyValue, dim0: isize, dim1: isize) -> PyResult<PyValue> {
        built("transpose", c::transpose(self.b()?, &x.0, dim0, dim1))
    }

    #[pyo3(signature = (x, axes, keepdim=false))]
    fn sum(&self, x: &PyValue, axes: Vec<isize>, keepdim: bool) -> PyResult<PyValue> {
        built("sum", c::sum(self.b()?, &x.0, &axes, keepdim))
    }

    #[pyo3(signature = (x, axes, keepdim=false))]
    fn mean(&self, x: &PyValue, axes: Vec<isize>, keepdim: bool) -> PyResult<PyValue> {
        built("mean", c::mean(self.b()?, &x.0, &axes, keepdim))
    }

    #[pyo3(signature = (x, axes, keepdim=false))]
    fn max(&self, x: &PyValue, axes: Vec<isize>, keepdim: bool) -> PyResult<PyValue> {
        built("max", c::max(self.b()?, &x.0, &axes, keepdim))
    }

    #[pyo3(signature = (x, axis=-1, keepdim=false))]
    fn argmax(&self, x: &PyValue, axis: isize, keepdim: bool) -> PyResult<PyValue> {
        built("argmax", c::argmax(self.b()?, &x.0, axis, keepdim))
    }

    /// Rows of `table` at integer `indices`.
    fn embedding(&self, table: &PyValue, indices: &PyValue) -> PyResult<PyValue> {
        built("embedding", c::embedding(self.b()?, &table.0, &indices.0))
    }

    #[pyo3(signature = (xs, axis=0))]
    fn concat(&self, xs: Vec<Bound<'_, PyValue>>, axis: isize) -> PyResult<PyValue> {
        let refs: Vec<&Val> = xs.iter().map(|x| &x.get().0).collect();
        built("concat", c::concat(self.b()?, &refs, axis))
    }

    /// Declares `x` an output named `name` (the result object carries the outputs in
    /// declaration order).
    fn output(&self, name: &str, x: &PyValue) -> PyResult<()> {
        self.b()?.output(name, &x.0);
        Ok(())
    }

    /// The program; the builder is spent.
    fn finish(&mut self) -> PyResult<PyProgram> {
        let b = self.b.take().ok_or_else(|| {
            errors::JobError::new_err("this ProgramBuilder is finished; start a new one")
        })?;
        let program = b.finish();
        if program.outputs.is_empty() {
            return Err(errors::JobError::new_err(
                "the program declares no output (ProgramBuilder.output)",
            ));
        }
        Ok(PyProgram {
            program,
            descriptor: Some(self.descriptor.clone()),
        })
    }
}

/// A program: constants (weights) and the op list. Its encoding is a model file
/// (`BTPG`…), what `model publish` publishes and a version 1 job names.
#[pyclass(name = "Program", module = "the_block", frozen)]
pub struct PyProgram {
    program: tb_job::Program,
    /// The input it was built for (a decoded or imported model has its own).
    descriptor: Option<InputTensorDescriptor>,
}

#[pymethods]
impl PyProgram {
    /// A program from a model file's bytes.
    #[staticmethod]
    fn decode(model: &[u8]) -> PyResult<PyProgram> {
        if model.len() > tb_job::format::MODEL_BYTES_MAX {
            return Err(errors::decode(
                "model",
                format!(
                    "{} bytes, above the limit of {}",
                    model.len(),
                    tb_job::format::MODEL_BYTES_MAX
                ),
            ));
        }
        let program = tb_job::Program::decode(model, 0).map_err(|e| errors::decode("model", e))?;
        Ok(PyProgram {
            program,
            descriptor: None,
        })
    }

    /// The model file's bytes.
    fn encode<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = self
            .program
            .encode()
            .map_err(|e| errors::job("encoding the program", e))?;
        Ok(PyBytes::new(py, &b))
    }

    /// SHA-256 of the model file (hex): how a version 1 job names it.
    #[getter]
    fn sha256(&self) -> PyResult<String> {
        let b = self
            .program
            .encode()
            .map_err(|e| errors::job("encoding the program", e))?;
        Ok(hex::encode(tb_primitives::sha256_digest(&b).0))
    }

    #[getter]
    fn n_ops(&self) -> usize {
        self.program.ops.len()
    }

    /// Weights: constants and their total elements.
    #[getter]
    fn parameters(&self) -> usize {
        self.program.consts.iter().map(|c| c.data.len()).sum()
    }

    /// The output names, in order.
    #[getter]
    fn outputs(&self) -> Vec<String> {
        self.program
            .outputs
            .iter()
            .map(|o| o.name.clone())
            .collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "Program(ops={}, constants={}, outputs={:?})",
            self.program.ops.len(),
            self.program.consts.len(),
            self.outputs()
        )
    }
}

/// A job: a program, its input descriptor and input. `encode()` is the blob a requester
/// submits; `run()` runs it here on the CPU reference fabric.
#[pyclass(name = "Job", module = "the_block", frozen)]
pub struct PyJob(pub Job);

fn cpu_kernel() -> [u8; 32] {
    CpuFabric::reference().kernel_variant_digest()
}

#[pymethods]
impl PyJob {
    /// The job of `program` (built with a `ProgramBuilder`, or imported) on `input` (a
    /// numpy array of the dtype and shape the program was built for), plus `mask`
    /// (uint8) when it reads one. `by_reference=True` names the model instead of
    /// carrying it (a version 1 blob; publish the model first).
    #[staticmethod]
    #[pyo3(signature = (program, input, mask=None, by_reference=false))]
    fn build(
        program: &PyProgram,
        input: &Bound<'_, PyAny>,
        mask: Option<&Bound<'_, PyAny>>,
        by_reference: bool,
    ) -> PyResult<PyJob> {
        let (data, shape) = from_numpy(input)?;
        let mut d = InputTensorDescriptor::dense(data.dtype(), &shape, Normalisation::None);
        if let Some(want) = &program.descriptor {
            if want.shape != shape || want.dtype != data.dtype() {
                return Err(errors::JobError::new_err(format!(
                    "the program was built for a {} input of shape {:?}, this one is {} {:?}",
                    dtype_name(want.dtype),
                    want.shape,
                    dtype_name(data.dtype()),
                    shape
                )));
            }
        }
        if let Some(m) = mask {
            let (md, ms) = from_numpy(m)?;
            if md.dtype() != DType::U8 {
                return Err(errors::JobError::new_err("the mask must be a uint8 array"));
            }
            d.attention_mask = Some(tb_job::SideTensor {
                shape: ms,
                data: md,
            });
        }
        let job = Job::new(cpu_kernel(), d, program.program.clone(), data)
            .map_err(|e| errors::job("building the job", e))?;
        tb_job::validate(&job).map_err(|e| errors::job("the job does not validate", e))?;
        Ok(PyJob(if by_reference {
            job.with_form(JobForm::ByReference)
        } else {
            job
        }))
    }

    /// A job from its blob; a version 1 blob needs its `model`'s bytes.
    #[staticmethod]
    #[pyo3(signature = (blob, model=None))]
    fn decode(blob: &[u8], model: Option<&[u8]>) -> PyResult<PyJob> {
        Job::decode_resolved(blob, model)
            .map(PyJob)
            .map_err(|e| errors::decode("job blob", e))
    }

    /// The SHA-256 (hex) of the model a blob names, or `None` for a blob that carries
    /// its program.
    #[staticmethod]
    fn model_of(blob: &[u8]) -> PyResult<Option<String>> {
        Job::model_of(blob)
            .map(|m| m.map(|m| hex::encode(m.sha256)))
            .map_err(|e| errors::decode("job blob", e))
    }

    /// The blob.
    fn encode<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = self
            .0
            .encode()
            .map_err(|e| errors::job("encoding the job", e))?;
        Ok(PyBytes::new(py, &b))
    }

    /// The same job naming its model (a version 1 blob).
    fn by_reference(&self) -> PyJob {
        PyJob(self.0.clone().with_form(JobForm::ByReference))
    }

    /// The same job carrying its model (a version 0 blob).
    fn inline(&self) -> PyJob {
        PyJob(self.0.clone().with_form(JobForm::Inline))
    }

    /// The model file's bytes (what a version 1 blob names).
    fn model_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = self
            .0
            .model_bytes()
            .map_err(|e| errors::job("encoding the model", e))?;
        Ok(PyBytes::new(py, &b))
    }

    /// SHA-256 (hex) of the model.
    #[getter]
    fn model_sha256(&self) -> String {
        hex::encode(self.0.artifact_hash)
    }

    /// Whether the blob names its model (version 1).
    #[getter]
    fn is_by_reference(&self) -> bool {
        self.0.form == JobForm::ByReference
    }

    /// The task id a chain gives a blob (hex).
    #[staticmethod]
    fn task_id(blob: &[u8]) -> String {
        Job::task_id(blob).to_hex()
    }

    #[getter]
    fn n_ops(&self) -> usize {
        self.0.program.ops.len()
    }

    /// The job's FLOPs as the chain prices them.
    #[getter]
    fn flops(&self) -> PyResult<u128> {
        let plan = tb_job::validate(&self.0).map_err(|e| errors::job("validating", e))?;
        Ok(plan.total.flops)
    }

    #[getter]
    fn input_shape(&self) -> Vec<usize> {
        self.0.descriptor.shape.clone()
    }

    /// Runs the job on the CPU reference fabric (`threads` worker threads; default: the
    /// fabric's, from `TB_BLOCKTORCH_THREADS` or the machine). The GIL is released
    /// while it runs. Bit-identical to every other fabric and thread count. The
    /// model's constants stay uploaded for the next run of its jobs (up to 1 GiB of
    /// models per process, least recently used out: `model_cache_usage`).
    #[pyo3(signature = (threads=None))]
    fn run(&self, py: Python<'_>, threads: Option<usize>) -> PyResult<PyRun> {
        let config = match threads {
            Some(0) => return Err(errors::JobError::new_err("threads must be at least 1")),
            Some(n) if n > RUN_THREADS_MAX => {
                return Err(errors::JobError::new_err(format!(
                    "threads {n}: at most {RUN_THREADS_MAX}"
                )))
            }
            Some(n) => CpuConfig::new(blocktorch::cpu::gemm::Simd::detect(), n),
            None => CpuConfig::from_env().map_err(|e| errors::job("CPU fabric", e))?,
        };
        let job = &self.0;
        let r = py.detach(move || {
            let fabric = CpuFabric::new(config)?;
            run_models()
                .execute(job, &fabric, tb_job::ExecOptions::default())
                .map(|(run, _)| run)
                .map_err(|e| blocktorch::TensorError::InvalidArgument {
                    op: "run",
                    message: e.to_string(),
                })
        });
        let r = r.map_err(|e| errors::job("running the job", e))?;
        Ok(PyRun(r))
    }

    fn __repr__(&self) -> String {
        format!(
            "Job(ops={}, input={:?}, model={}, by_reference={})",
            self.0.program.ops.len(),
            self.0.descriptor.shape,
            &hex::encode(self.0.artifact_hash)[..16],
            self.0.form == JobForm::ByReference
        )
    }
}

/// What a local run gave: the outputs as numpy arrays, the output digest a receipt
/// commits to, every op's trace leaf and their root.
#[pyclass(name = "Run", module = "the_block", frozen)]
pub struct PyRun(tb_job::ExecResult);

#[pymethods]
impl PyRun {
    /// The declared outputs, by name, in declaration order.
    #[getter]
    fn outputs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for o in &self.0.outputs {
            d.set_item(&o.name, to_numpy(py, o.data.clone(), &o.shape)?)?;
        }
        Ok(d)
    }

    /// `output_digest_sha256` (hex): what a receipt commits to.
    #[getter]
    fn output_digest(&self) -> String {
        hex::encode(self.0.output_digest)
    }

    /// The Merkle root of the trace leaves (hex).
    #[getter]
    fn trace_root(&self) -> String {
        self.0.trace_root.to_hex()
    }

    /// Every op's trace leaf, in program order (`docs/spec/job-format-v0.md` §10).
    #[getter]
    fn leaves<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.0
            .op_digests
            .iter()
            .map(|l| PyBytes::new(py, l))
            .collect()
    }

    #[getter]
    fn n_ops(&self) -> usize {
        self.0.n_ops
    }

    #[getter]
    fn fabric(&self) -> &str {
        &self.0.fabric
    }

    #[getter]
    fn device(&self) -> &str {
        &self.0.device
    }

    /// The result object a provider would publish for this run.
    fn result_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = ResultObject::of_run(&self.0)
            .encode()
            .map_err(|e| errors::job("encoding the result", e))?;
        Ok(PyBytes::new(py, &b))
    }

    fn __repr__(&self) -> String {
        format!(
            "Run(output_digest={}, trace_root={}, ops={})",
            hex::encode(self.0.output_digest),
            self.0.trace_root.to_hex(),
            self.0.n_ops
        )
    }
}

/// A decoded result object: the outputs as numpy arrays and the output digest they
/// give (compare it with the receipt's).
#[pyclass(name = "ResultObject", module = "the_block", frozen)]
pub struct PyResultObject {
    r: ResultObject,
    sha256: [u8; 32],
}

#[pymethods]
impl PyResultObject {
    #[getter]
    fn outputs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for o in &self.r.outputs {
            d.set_item(&o.name, to_numpy(py, o.data.clone(), &o.shape)?)?;
        }
        Ok(d)
    }

    /// The output digest these outputs give (hex).
    #[getter]
    fn output_digest(&self) -> String {
        hex::encode(self.r.output_digest())
    }

    /// SHA-256 of the object's bytes (hex).
    #[getter]
    fn sha256(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// Decodes a result object (`compute.getResult`'s bytes); `DecodeError` on anything
/// malformed.
#[pyfunction]
fn decode_result(b: &[u8]) -> PyResult<PyResultObject> {
    let r = ResultObject::decode(b).map_err(|e| errors::decode("result object", e))?;
    Ok(PyResultObject {
        r,
        sha256: ResultObject::sha256(b),
    })
}

/// A provider's published trace: the task, the provider and the leaves.
#[pyclass(name = "Trace", module = "the_block", frozen)]
pub struct PyTrace(tb_job::TraceBlob);

#[pymethods]
impl PyTrace {
    #[getter]
    fn task_id(&self) -> String {
        self.0.task_id.to_hex()
    }

    #[getter]
    fn provider(&self) -> PyAddress {
        PyAddress(self.0.provider)
    }

    #[getter]
    fn leaves<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.0.leaves.iter().map(|l| PyBytes::new(py, l)).collect()
    }

    /// The leaves' Merkle root (hex): the receipt's `trace_root`.
    #[getter]
    fn root(&self) -> String {
        tb_job::trace_root(&self.0.leaves).to_hex()
    }

    /// The first op where `leaves` (a replay's) differ from this trace's, or `None`
    /// when they agree.
    fn first_divergence(&self, leaves: Vec<Vec<u8>>) -> PyResult<Option<usize>> {
        let ours = leaves32(leaves)?;
        Ok(tb_job::verify::first_divergence(&ours, &self.0.leaves))
    }
}

fn leaves32(leaves: Vec<Vec<u8>>) -> PyResult<Vec<[u8; 32]>> {
    leaves
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            <[u8; 32]>::try_from(l.as_slice()).map_err(|_| {
                errors::DecodeError::new_err(format!("leaf {i} is {} bytes, not 32", l.len()))
            })
        })
        .collect()
}

/// Decodes a trace blob (`BTTR`…); `DecodeError` on anything malformed.
#[pyfunction]
fn decode_trace(b: &[u8]) -> PyResult<PyTrace> {
    tb_job::decode_trace(b)
        .map(PyTrace)
        .map_err(|e| errors::decode("trace", e))
}

/// The Merkle root (hex) of trace leaves.
#[pyfunction]
fn trace_root(leaves: Vec<Vec<u8>>) -> PyResult<String> {
    Ok(tb_job::trace_root(&leaves32(leaves)?).to_hex())
}

/// Imports an ONNX model (bytes): `dims` sizes its dynamic axes, `zero_inputs` folds
/// inputs to zeros, `mask_input` names the attention mask (default
/// `attention_mask`).
#[pyfunction]
#[pyo3(signature = (data, dims=None, zero_inputs=None, mask_input=None))]
fn import_onnx(
    data: &[u8],
    dims: Option<BTreeMap<String, usize>>,
    zero_inputs: Option<Vec<String>>,
    mask_input: Option<String>,
) -> PyResult<PyProgram> {
    let opts = tb_models::onnx::ImportOptions {
        dims: dims.unwrap_or_default(),
        zero_inputs: zero_inputs
            .unwrap_or_default()
            .into_iter()
            .collect::<BTreeSet<_>>(),
        mask_input,
        ..Default::default()
    };
    let m = tb_models::onnx::import(data, &opts).map_err(|e| errors::model("ONNX model", e))?;
    Ok(PyProgram {
        program: m.program,
        descriptor: Some(m.descriptor),
    })
}

/// Imports a Hugging Face BERT-family encoder from `directory` (config.json and
/// model.safetensors) for `batch` texts of `seq_len` tokens (default: the directory's
/// tokenizer.json fixed length), pooled as `pooling` (`mean-normalized`, `mean`,
/// `none`).
#[pyfunction]
#[pyo3(signature = (directory, batch=1, seq_len=None, pooling="mean-normalized"))]
fn import_bert(
    directory: PathBuf,
    batch: usize,
    seq_len: Option<usize>,
    pooling: &str,
) -> PyResult<PyProgram> {
    let pooling = match pooling {
        "mean-normalized" => Pooling::MeanNormalized,
        "mean" => Pooling::Mean,
        "none" => Pooling::None,
        o => {
            return Err(errors::ModelError::new_err(format!(
                "pooling {o:?}: expected mean-normalized, mean or none"
            )))
        }
    };
    if batch == 0 {
        return Err(errors::ModelError::new_err("batch must be at least 1"));
    }
    let where_ = directory.display().to_string();
    let seq = match seq_len {
        Some(0) => return Err(errors::ModelError::new_err("seq_len must be at least 1")),
        Some(l) => l,
        None => {
            TextEncoder::open(&directory.join("tokenizer.json"), None)
                .map_err(|e| errors::model(&where_, format!("{e}; give seq_len")))?
                .seq
        }
    };
    let bert = Bert::open(&directory).map_err(|e| errors::model(&where_, e))?;
    let shape = BertShape { batch, seq };
    let program = bert
        .build(shape, pooling)
        .map_err(|e| errors::model(&where_, e))?;
    Ok(PyProgram {
        program,
        descriptor: Some(tb_models::bert::text_descriptor(shape)),
    })
}

/// The job of `texts` for `model` (a model file's bytes, from `import_bert`'s
/// `encode()`): tokenised by `tokenizer` (a tokenizer.json) to `seq_len` tokens
/// (default: the tokenizer's), one text per row of the batch the model was imported
/// for. The job names the model (version 1).
#[pyfunction]
#[pyo3(signature = (model, tokenizer, texts, seq_len=None))]
fn text_job(
    model: &[u8],
    tokenizer: PathBuf,
    texts: Vec<String>,
    seq_len: Option<usize>,
) -> PyResult<PyJob> {
    let where_ = tokenizer.display().to_string();
    let enc = TextEncoder::open(&tokenizer, seq_len).map_err(|e| errors::model(&where_, e))?;
    let encoded = enc.encode(&texts).map_err(|e| errors::model(&where_, e))?;
    let program = tb_job::Program::decode(model, 0).map_err(|e| errors::decode("model", e))?;
    let (d, input) = encoded.job_input();
    let job = Job::new(cpu_kernel(), d, program, input)
        .map_err(|e| errors::job("building the job", e))?
        .with_form(JobForm::ByReference);
    tb_job::validate(&job).map_err(|e| {
        errors::job(
            &format!(
                "{} text(s) of {} tokens do not fit this model (it takes the batch and \
                 sequence length it was imported for)",
                texts.len(),
                encoded.shape.seq
            ),
            e,
        )
    })?;
    Ok(PyJob(job))
}

/// The models `Job.run` keeps uploaded in this process: `(models, bytes, budget)`.
#[pyfunction]
fn model_cache_usage() -> (usize, u64, u64) {
    let m = run_models();
    let (models, bytes) = m.usage();
    (models, bytes, m.budget())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyValue>()?;
    m.add_class::<PyProgramBuilder>()?;
    m.add_class::<PyProgram>()?;
    m.add_class::<PyJob>()?;
    m.add_class::<PyRun>()?;
    m.add_class::<PyResultObject>()?;
    m.add_class::<PyTrace>()?;
    m.add_function(wrap_pyfunction!(decode_result, m)?)?;
    m.add_function(wrap_pyfunction!(decode_trace, m)?)?;
    m.add_function(wrap_pyfunction!(trace_root, m)?)?;
    m.add_function(wrap_pyfunction!(import_onnx, m)?)?;
    m.add_function(wrap_pyfunction!(import_bert, m)?)?;
    m.add_function(wrap_pyfunction!(text_job, m)?)?;
    m.add_function(wrap_pyfunction!(model_cache_usage, m)?)?;
    Ok(())
}
