//! The `BlockTorchJobV0` blob: header, input descriptor, artifact, input bytes
//! (`docs/spec/job-format-v0.md`, byte by byte), and its version 1, which names a
//! published model (the artifact) by SHA-256 instead of carrying it
//! (`docs/spec/job-format-v1.md`).

use crate::error::{JobError, Result};
use crate::program::Program;
use crate::wire::{Reader, Writer};
use blocktorch::{DType, HostData, RANK_MAX};
use sha2::{Digest as _, Sha256};

/// The blob's magic.
pub const JOB_MAGIC: [u8; 4] = *b"BTRA";
/// Version 0: the blob carries its artifact (the program and its weights) inline.
pub const JOB_VERSION: u8 = 0;
/// Version 1: the blob names a published model (the artifact) by SHA-256 and size and
/// carries only the descriptor and the input.
pub const JOB_VERSION_BY_REFERENCE: u8 = 1;
/// Bytes of the fixed header: magic, version, kernel digest, artifact and input lengths.
pub const HEADER_BYTES: usize = 4 + 1 + 32 + 4 + 4;
/// Bytes of the fixed header of a version 1 blob: magic, version, kernel digest, model
/// SHA-256, model length, input length.
pub const HEADER_BYTES_V1: usize = 4 + 1 + 32 + 32 + 4 + 4;
/// Largest blob accepted.
pub const JOB_BLOB_BYTES_MAX: usize = 512 << 20;
/// Largest model (artifact) a version 1 blob may name: one published object.
pub const MODEL_BYTES_MAX: usize = JOB_BLOB_BYTES_MAX;
/// Longest `tensor_profile_epoch` label in a descriptor.
pub const PROFILE_EPOCH_BYTES_MAX: usize = 64;
/// Artifacts at least this large are hashed on a second thread while they decode.
const PARALLEL_HASH_BYTES_MIN: usize = 1 << 20;
/// Most bias arrays in a descriptor.
pub const BIAS_ARRAYS_MAX: usize = 8;

/// How the input bytes become the program's input tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalisation {
    /// The elements as they are (tag 0).
    None,
    /// u8 bytes `b` become f32 `b / 255.0` in [0, 1] (tag 1; the input dtype must be u8).
    Bytes255,
}

/// A rank-≤8 tensor carried in the descriptor (attention mask, bias arrays).
#[derive(Clone, Debug, PartialEq)]
pub struct SideTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Elements, row-major (u8 for the mask, f32 for bias arrays).
    pub data: HostData,
}

/// The `InputTensorDescriptor`: how to read the input bytes, and optional context.
#[derive(Clone, Debug, PartialEq)]
pub struct InputTensorDescriptor {
    /// Dtype of the input bytes.
    pub dtype: DType,
    /// Logical shape of the input.
    pub shape: Vec<usize>,
    /// Element strides of each axis into the input bytes.
    pub strides: Vec<usize>,
    /// How the bytes become the program's input.
    pub normalisation: Normalisation,
    /// The `tensor_profile_epoch` label the requestor expects (free-form, may be empty).
    pub profile_epoch: String,
    /// Optional attention mask (u8, 1 = attend).
    pub attention_mask: Option<SideTensor>,
    /// Optional padding token id.
    pub padding_token: Option<u32>,
    /// Bias arrays (f32), at most [`BIAS_ARRAYS_MAX`].
    pub bias: Vec<SideTensor>,
}

impl InputTensorDescriptor {
    /// A dense row-major descriptor with no side data.
    pub fn dense(dtype: DType, shape: &[usize], normalisation: Normalisation) -> Self {
        InputTensorDescriptor {
            dtype,
            shape: shape.to_vec(),
            strides: blocktorch::layout::contiguous_strides(shape),
            normalisation,
            profile_epoch: String::new(),
            attention_mask: None,
            padding_token: None,
            bias: Vec::new(),
        }
    }

    /// The dtype of the program's input tensor (after normalisation).
    pub fn input_dtype(&self) -> DType {
        match self.normalisation {
            Normalisation::None => self.dtype,
            Normalisation::Bytes255 => DType::F32,
        }
    }

    /// Elements the input bytes must hold: one past the largest strided offset.
    pub fn storage_elements(&self) -> Option<usize> {
        if self.shape.contains(&0) {
            return Some(0);
        }
        let mut max = 0usize;
        for (d, s) in self.shape.iter().zip(&self.strides) {
            max = max.checked_add((d - 1).checked_mul(*s)?)?;
        }
        max.checked_add(1)
    }

    fn encode(&self, w: &mut Writer) {
        w.u8(self.dtype.tag());
        w.shape(&self.shape);
        for s in &self.strides {
            w.u32(*s as u32);
        }
        w.u8(match self.normalisation {
            Normalisation::None => 0,
            Normalisation::Bytes255 => 1,
        });
        w.string(&self.profile_epoch);
        match &self.attention_mask {
            None => w.u8(0),
            Some(m) => {
                w.u8(1);
                w.shape(&m.shape);
                w.data(&m.data);
            }
        }
        match self.padding_token {
            None => w.u8(0),
            Some(p) => {
                w.u8(1);
                w.u32(p);
            }
        }
        w.u8(self.bias.len() as u8);
        for b in &self.bias {
            w.shape(&b.shape);
            w.data(&b.data);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<InputTensorDescriptor> {
        let dtype = r.dtype("descriptor dtype")?;
        let (shape, _) = r.shape("descriptor shape")?;
        let mut strides = Vec::with_capacity(shape.len());
        for _ in 0..shape.len() {
            strides.push(r.u32("descriptor stride")? as usize);
        }
        let at = r.offset();
        let normalisation = match r.u8("descriptor normalisation")? {
            0 => Normalisation::None,
            1 if dtype == DType::U8 => Normalisation::Bytes255,
            1 => {
                return Err(JobError::Invalid {
                    field: "descriptor normalisation",
                    offset: at,
                    message: format!("bytes/255 needs u8 input, the dtype is {dtype:?}"),
                })
            }
            t => {
                return Err(JobError::UnknownTag {
                    field: "descriptor normalisation",
                    offset: at,
                    tag: t as u64,
                })
            }
        };
        let profile_epoch = r.string("descriptor profile epoch", PROFILE_EPOCH_BYTES_MAX)?;
        let attention_mask = if r.flag("descriptor attention-mask flag")? {
            let (shape, n) = r.shape("descriptor attention-mask shape")?;
            let at = r.offset();
            let data = r.data("descriptor attention mask", DType::U8, n)?;
            if let HostData::U8(v) = &data {
                if let Some(i) = v.iter().position(|b| *b > 1) {
                    return Err(JobError::Invalid {
                        field: "descriptor attention mask",
                        offset: at + i,
                        message: format!("mask values are 0 or 1, found {}", v[i]),
                    });
                }
            }
            Some(SideTensor { shape, data })
        } else {
            None
        };
        let padding_token = if r.flag("descriptor padding flag")? {
            let at = r.offset();
            let p = r.u32("descriptor padding token")?;
            // The program reads it as an i32 scalar.
            crate::error::at_most("descriptor padding token", at, p as u64, i32::MAX as u64)?;
            Some(p)
        } else {
            None
        };
        let at = r.offset();
        let nb = r.u8("descriptor bias count")? as usize;
        crate::error::at_most(
            "descriptor bias count",
            at,
            nb as u64,
            BIAS_ARRAYS_MAX as u64,
        )?;
        let mut bias = Vec::with_capacity(nb);
        for _ in 0..nb {
            let (shape, n) = r.shape("descriptor bias shape")?;
            let data = r.data("descriptor bias", DType::F32, n)?;
            bias.push(SideTensor { shape, data });
        }
        Ok(InputTensorDescriptor {
            dtype,
            shape,
            strides,
            normalisation,
            profile_epoch,
            attention_mask,
            padding_token,
            bias,
        })
    }
}

/// A published model as a version 1 blob names it: the SHA-256 and size of the
/// artifact bytes (a model file is exactly an artifact, `BTPG`…).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelRef {
    /// SHA-256 of the artifact bytes (the model object's content address).
    pub sha256: [u8; 32],
    /// Their length.
    pub bytes: u64,
}

/// How a blob carries its program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JobForm {
    /// Version 0: the artifact is inside the blob.
    #[default]
    Inline,
    /// Version 1: the blob names the artifact, published once as a model object.
    ByReference,
}

/// A decoded job blob (either version; a version 1 blob resolved with its model).
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// The kernel variant digest the job was built for.
    pub kernel_digest: [u8; 32],
    /// How to read the input.
    pub descriptor: InputTensorDescriptor,
    /// The artifact: constants and the op list.
    pub program: Program,
    /// The input elements as stored (strided per the descriptor, before normalisation).
    pub input: HostData,
    /// SHA-256 of the artifact bytes.
    pub artifact_hash: [u8; 32],
    /// SHA-256 of the descriptor bytes.
    pub descriptor_hash: [u8; 32],
    /// Length of the artifact bytes.
    pub artifact_bytes: u64,
    /// Whether [`Job::encode`] writes the artifact inline (version 0) or names it
    /// (version 1).
    pub form: JobForm,
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

impl Job {
    /// Builds a job, hashing its artifact and descriptor. Fails if a field exceeds what
    /// the format can carry (see [`Job::encode`]).
    pub fn new(
        kernel_digest: [u8; 32],
        descriptor: InputTensorDescriptor,
        program: Program,
        input: HostData,
    ) -> Result<Job> {
        let mut job = Job {
            kernel_digest,
            descriptor,
            program,
            input,
            artifact_hash: [0; 32],
            descriptor_hash: [0; 32],
            artifact_bytes: 0,
            form: JobForm::Inline,
        };
        // Round-trip through the codec: what is built is exactly what decodes.
        let blob = job.encode()?;
        job = Job::decode(&blob)?;
        Ok(job)
    }

    /// The same job in the other form: [`JobForm::ByReference`] encodes as a version 1
    /// blob naming [`Job::model_ref`]; the program, input, hashes and every result are
    /// unchanged.
    pub fn with_form(mut self, form: JobForm) -> Job {
        self.form = form;
        self
    }

    /// The model this job's program is, as a version 1 blob names it.
    pub fn model_ref(&self) -> ModelRef {
        ModelRef {
            sha256: self.artifact_hash,
            bytes: self.artifact_bytes,
        }
    }

    /// The model bytes (the artifact: the program and its weights), which
    /// `tb-cli model publish` publishes and a version 1 blob names.
    pub fn model_bytes(&self) -> Result<Vec<u8>> {
        self.program.encode()
    }

    /// The canonical blob. Refuses values the format cannot carry (a name or label too
    /// long, too many bias arrays, an input whose length disagrees with its
    /// descriptor, sections past 4 GiB).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let d = &self.descriptor;
        let bad = |field: &'static str, message: String| JobError::Unencodable { field, message };
        if d.profile_epoch.len() > PROFILE_EPOCH_BYTES_MAX {
            return Err(bad("descriptor profile epoch", "too long".into()));
        }
        if d.bias.len() > BIAS_ARRAYS_MAX
            || d.shape.len() > RANK_MAX
            || d.strides.len() != d.shape.len()
        {
            return Err(bad(
                "descriptor",
                "rank, strides or bias count out of range".into(),
            ));
        }
        if d.shape
            .iter()
            .chain(&d.strides)
            .any(|v| *v > u32::MAX as usize)
        {
            return Err(bad(
                "descriptor shape",
                "a dim or stride exceeds u32".into(),
            ));
        }
        let side = |field: &'static str, t: &SideTensor, dtype: DType| -> Result<()> {
            let n =
                blocktorch::layout::check_shape(&t.shape).map_err(|e| bad(field, e.to_string()))?;
            if t.shape.iter().any(|v| *v > u32::MAX as usize) {
                return Err(bad(field, "a dim exceeds u32".into()));
            }
            if t.data.dtype() != dtype || t.data.len() != n {
                return Err(bad(
                    field,
                    format!(
                        "{} {:?} elements for a {dtype:?} {:?} tensor",
                        t.data.len(),
                        t.data.dtype(),
                        t.shape
                    ),
                ));
            }
            Ok(())
        };
        if let Some(m) = &d.attention_mask {
            side("descriptor attention mask", m, DType::U8)?;
            if let HostData::U8(v) = &m.data {
                if v.iter().any(|b| *b > 1) {
                    return Err(bad(
                        "descriptor attention mask",
                        "mask values are 0 or 1".into(),
                    ));
                }
            }
        }
        for b in &d.bias {
            side("descriptor bias", b, DType::F32)?;
        }
        if d.padding_token.is_some_and(|p| p > i32::MAX as u32) {
            return Err(bad("descriptor padding token", "above i32::MAX".into()));
        }
        if self.input.dtype() != d.dtype || Some(self.input.len()) != d.storage_elements() {
            return Err(bad(
                "input",
                format!(
                    "{} {:?} elements do not fill the descriptor ({:?} {:?})",
                    self.input.len(),
                    self.input.dtype(),
                    d.dtype,
                    d.shape
                ),
            ));
        }
        let mut dw = Writer::default();
        d.encode(&mut dw);
        let artifact = self.program.encode()?;
        let mut iw = Writer::default();
        iw.data(&self.input);
        let (al, il) = (artifact.len(), iw.bytes.len());
        if al > u32::MAX as usize || il > u32::MAX as usize {
            return Err(bad("lengths", "a section exceeds 4 GiB".into()));
        }
        let mut w = Writer::default();
        w.raw(&JOB_MAGIC);
        match self.form {
            JobForm::Inline => {
                w.u8(JOB_VERSION);
                w.raw(&self.kernel_digest);
                w.u32(al as u32);
                w.u32(il as u32);
                w.raw(&dw.bytes);
                w.raw(&artifact);
            }
            JobForm::ByReference => {
                if al > MODEL_BYTES_MAX {
                    return Err(bad(
                        "model length",
                        format!("the model is {al} bytes, above {MODEL_BYTES_MAX}"),
                    ));
                }
                w.u8(JOB_VERSION_BY_REFERENCE);
                w.raw(&self.kernel_digest);
                w.raw(&sha256(&artifact));
                w.u32(al as u32);
                w.u32(il as u32);
                w.raw(&dw.bytes);
            }
        }
        w.raw(&iw.bytes);
        Ok(w.bytes)
    }

    /// Decodes a version 0 blob: every field checked, nothing trailing. Does not validate
    /// the program against the descriptor; see [`crate::validate::validate`]. A version 1
    /// blob needs its model: [`Job::decode_resolved`] (here it is
    /// [`JobError::ModelMissing`]).
    pub fn decode(blob: &[u8]) -> Result<Job> {
        Job::decode_resolved(blob, None)
    }

    /// The model a blob names: `None` for a version 0 blob (it carries its artifact),
    /// the reference of a version 1 blob. Reads only the fixed header.
    pub fn model_of(blob: &[u8]) -> Result<Option<ModelRef>> {
        let mut r = Reader::new(blob, 0);
        match read_magic_version(&mut r)? {
            JobForm::Inline => Ok(None),
            JobForm::ByReference => {
                r.array32("kernel digest")?;
                let sha256 = r.array32("model sha256")?;
                let at = r.offset();
                let bytes = r.u32("model length")? as u64;
                check_model_length(bytes, at)?;
                Ok(Some(ModelRef { sha256, bytes }))
            }
        }
    }

    /// Decodes a blob of either version. A version 1 blob is resolved with `model`, the
    /// bytes of the model it names, which must have its SHA-256 and length
    /// ([`JobError::ModelMismatch`]); without them it is [`JobError::ModelMissing`]. A
    /// version 0 blob ignores `model`. Errors inside the model are
    /// [`JobError::InModel`], with offsets from the model's first byte.
    pub fn decode_resolved(blob: &[u8], model: Option<&[u8]>) -> Result<Job> {
        crate::error::at_most("blob", 0, blob.len() as u64, JOB_BLOB_BYTES_MAX as u64)?;
        let mut r = Reader::new(blob, 0);
        let form = read_magic_version(&mut r)?;
        let kernel_digest = r.array32("kernel digest")?;
        let model_sha = match form {
            JobForm::Inline => None,
            JobForm::ByReference => Some(r.array32("model sha256")?),
        };
        let len_at = r.offset();
        let artifact_len = r.u32(match form {
            JobForm::Inline => "artifact length",
            JobForm::ByReference => "model length",
        })? as usize;
        if form == JobForm::ByReference {
            check_model_length(artifact_len as u64, len_at)?;
        }
        let input_at = r.offset();
        let input_len = r.u32("input length")? as usize;
        let desc_start = r.offset();
        let descriptor = InputTensorDescriptor::decode(&mut r)?;
        let desc_end = r.offset();
        let descriptor_hash = sha256(&blob[desc_start..desc_end]);
        // The input length follows from the descriptor: check it before decoding the
        // (possibly large) artifact.
        let size = descriptor.dtype.size_bytes();
        let needed = descriptor
            .storage_elements()
            .and_then(|e| e.checked_mul(size))
            .ok_or(JobError::Overflow {
                field: "descriptor strides",
                offset: desc_start,
            })?;
        if needed != input_len {
            return Err(JobError::LengthMismatch {
                field: "input length",
                offset: input_at,
                declared: input_len as u64,
                actual: needed as u64,
            });
        }
        let (program, artifact_hash, input_bytes) = match model_sha {
            // Version 1: the input follows the descriptor; the artifact is the model.
            Some(sha) => {
                let input_bytes = r.take("input", input_len)?;
                r.finish()?;
                let hex = |h: [u8; 32]| tb_primitives::Digest(h).to_hex();
                let model = model.ok_or_else(|| JobError::ModelMissing {
                    sha256: hex(sha),
                    bytes: artifact_len as u64,
                })?;
                if model.len() != artifact_len {
                    return Err(JobError::ModelMismatch {
                        sha256: hex(sha),
                        message: format!(
                            "the blob names a model of {artifact_len} bytes, {} were supplied",
                            model.len()
                        ),
                    });
                }
                let (program, artifact_hash) = decode_and_hash(model, 0);
                let artifact_hash = artifact_hash?;
                if artifact_hash != sha {
                    return Err(JobError::ModelMismatch {
                        sha256: hex(sha),
                        message: format!("the supplied model's SHA-256 is {}", hex(artifact_hash)),
                    });
                }
                let program = program.map_err(|e| JobError::InModel {
                    source: Box::new(e),
                })?;
                (program, artifact_hash, input_bytes)
            }
            None => {
                let art_at = r.offset();
                let artifact = r.take("artifact", artifact_len)?;
                let (program, artifact_hash) = decode_and_hash(artifact, art_at);
                let program = program?;
                let artifact_hash = artifact_hash?;
                let input_bytes = r.take("input", input_len)?;
                r.finish()?;
                (program, artifact_hash, input_bytes)
            }
        };
        let input = crate::wire::host_from_le(descriptor.dtype, input_bytes);
        Ok(Job {
            kernel_digest,
            descriptor,
            program,
            input,
            artifact_hash,
            descriptor_hash,
            artifact_bytes: artifact_len as u64,
            form,
        })
    }

    /// The deterministic task id of a blob: BLAKE3 under the job domain.
    pub fn task_id(blob: &[u8]) -> tb_primitives::Id {
        tb_primitives::blake3_id(b"TB/job/task/v0", blob)
    }
}

/// Reads the magic and the version byte.
fn read_magic_version(r: &mut Reader<'_>) -> Result<JobForm> {
    let magic = r.take("magic", 4)?;
    if magic != JOB_MAGIC {
        let mut found = [0u8; 4];
        found.copy_from_slice(magic);
        return Err(JobError::BadMagic {
            field: "magic",
            offset: 0,
            expected: JOB_MAGIC,
            found,
        });
    }
    match r.u8("version")? {
        JOB_VERSION => Ok(JobForm::Inline),
        JOB_VERSION_BY_REFERENCE => Ok(JobForm::ByReference),
        v => Err(JobError::UnknownTag {
            field: "version",
            offset: 4,
            tag: v as u64,
        }),
    }
}

fn check_model_length(bytes: u64, offset: usize) -> Result<()> {
    crate::error::at_most("model length", offset, bytes, MODEL_BYTES_MAX as u64)?;
    Ok(())
}

/// Decodes artifact bytes (starting at `at`) and hashes them, on two threads when they
/// are large (the decode is dominated by copying the weights into fresh memory, the
/// hash by SHA-256).
fn decode_and_hash(artifact: &[u8], at: usize) -> (Result<Program>, Result<[u8; 32]>) {
    if artifact.len() < PARALLEL_HASH_BYTES_MIN {
        return (Program::decode(artifact, at), Ok(sha256(artifact)));
    }
    std::thread::scope(|s| {
        let h = s.spawn(|| sha256(artifact));
        let program = Program::decode(artifact, at);
        let hash = h.join().map_err(|_| JobError::Invalid {
            field: "artifact",
            offset: at,
            message: "the hashing thread panicked".into(),
        });
        (program, hash)
    })
}
