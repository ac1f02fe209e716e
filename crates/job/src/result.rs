//! The result object (`BTRS`): a job's declared outputs as a provider publishes them,
//! content-addressed, bound to its receipt by `output_digest_sha256`
//! (`docs/spec/verification.md` §2a, byte by byte).
//!
//! Each output entry is its name, then exactly the bytes `output_digest_sha256` hashes
//! (dtype tag, rank, dims as LE u32, the elements as LE bytes), with every f32 NaN
//! written as the canonical `0x7fc00000` (any other NaN is refused). So an output's
//! digest is the SHA-256 of a byte range of the object, the same answer gives the same
//! object on every fabric, and [`ResultScanner`] computes the digests from the object's
//! chunks as they arrive, without holding the whole.

use crate::error::{JobError, Result};
use crate::exec::{job_output_digest, ExecResult};
use crate::wire::{Reader, Writer};
use blocktorch::{DType, HostData, CANONICAL_NAN_BITS, RANK_MAX};
use sha2::{Digest as _, Sha256};

/// The result object's magic.
pub const RESULT_MAGIC: [u8; 4] = *b"BTRS";
/// Its version.
pub const RESULT_VERSION: u8 = 0;
/// Largest result object: one published object.
pub const RESULT_BYTES_MAX: usize = crate::format::JOB_BLOB_BYTES_MAX;
/// Most outputs in a result (the chain records at most this many per job).
pub const RESULT_OUTPUTS_MAX: usize = 16;
/// Longest output name (the program's limit).
pub const RESULT_NAME_BYTES_MAX: usize = crate::program::NAME_BYTES_MAX;
/// Bytes before the first output: magic, version, count.
pub const RESULT_HEADER_BYTES: usize = 4 + 1 + 4;

/// One output of a result.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultTensor {
    /// The program's name for it.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Elements, row-major (f32 NaNs canonical).
    pub data: HostData,
}

/// A job's declared outputs, in declaration order.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultObject {
    /// The outputs.
    pub outputs: Vec<ResultTensor>,
}

fn canonical(data: &HostData) -> HostData {
    match data {
        HostData::F32(v) => HostData::F32(
            v.iter()
                .map(|x| f32::from_bits(blocktorch::canonical_f32_bits(*x)))
                .collect(),
        ),
        other => other.clone(),
    }
}

impl ResultObject {
    /// The outputs of a run, every f32 NaN canonicalised.
    pub fn of_run(run: &ExecResult) -> ResultObject {
        ResultObject {
            outputs: run
                .outputs
                .iter()
                .map(|o| ResultTensor {
                    name: o.name.clone(),
                    shape: o.shape.clone(),
                    data: canonical(&o.data),
                })
                .collect(),
        }
    }

    /// Canonical bytes. Refuses what the format cannot carry: no outputs or more than
    /// [`RESULT_OUTPUTS_MAX`], a name above [`RESULT_NAME_BYTES_MAX`] bytes, a shape
    /// beyond the runtime's limits, data that does not fill its shape, a non-canonical
    /// NaN, more than [`RESULT_BYTES_MAX`] bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let bad = |message: String| JobError::Unencodable {
            field: "result",
            message,
        };
        if self.outputs.is_empty() || self.outputs.len() > RESULT_OUTPUTS_MAX {
            return Err(bad(format!(
                "a result holds 1..={RESULT_OUTPUTS_MAX} outputs, not {}",
                self.outputs.len()
            )));
        }
        let mut w = Writer::default();
        w.raw(&RESULT_MAGIC);
        w.u8(RESULT_VERSION);
        w.u32(self.outputs.len() as u32);
        for o in &self.outputs {
            if o.name.len() > RESULT_NAME_BYTES_MAX {
                return Err(bad(format!("output {:?}: the name is too long", o.name)));
            }
            let n = blocktorch::layout::check_shape(&o.shape)
                .map_err(|e| bad(format!("output {:?}: {e}", o.name)))?;
            // The decoder multiplies the dims out with overflow checks (a zero dim
            // after huge ones does not save a shape): so must what is encoded.
            if o.shape
                .iter()
                .try_fold(1u64, |n, d| n.checked_mul(*d as u64))
                .is_none()
            {
                return Err(bad(format!(
                    "output {:?}: the element count of its shape overflows",
                    o.name
                )));
            }
            if o.shape.iter().any(|d| *d > u32::MAX as usize) || o.data.len() != n {
                return Err(bad(format!(
                    "output {:?}: the data does not fill its shape",
                    o.name
                )));
            }
            if let HostData::F32(v) = &o.data {
                if v.iter()
                    .any(|x| x.is_nan() && x.to_bits() != CANONICAL_NAN_BITS)
                {
                    return Err(bad(format!("output {:?}: a non-canonical NaN", o.name)));
                }
            }
            w.string(&o.name);
            w.u8(o.data.dtype().tag());
            w.shape(&o.shape);
            w.data(&o.data);
            if w.bytes.len() > RESULT_BYTES_MAX {
                return Err(bad(format!("the result exceeds {RESULT_BYTES_MAX} bytes")));
            }
        }
        Ok(w.bytes)
    }

    /// Decodes canonical bytes: every defect is a typed error naming the field and the
    /// byte offset; nothing may follow the last output.
    pub fn decode(b: &[u8]) -> Result<ResultObject> {
        crate::error::at_most("result", 0, b.len() as u64, RESULT_BYTES_MAX as u64)?;
        let mut r = Reader::new(b, 0);
        let magic: [u8; 4] = r.take("magic", 4)?.try_into().expect("4 bytes");
        if magic != RESULT_MAGIC {
            return Err(JobError::BadMagic {
                field: "magic",
                offset: 0,
                expected: RESULT_MAGIC,
                found: magic,
            });
        }
        let v = r.u8("version")?;
        if v != RESULT_VERSION {
            return Err(JobError::UnknownTag {
                field: "version",
                offset: 4,
                tag: v as u64,
            });
        }
        let at = r.offset();
        let n = r.u32("output count")? as usize;
        if n == 0 || n > RESULT_OUTPUTS_MAX {
            return Err(count_error(n as u64, at));
        }
        let mut outputs = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.string("output name", RESULT_NAME_BYTES_MAX)?;
            let dtype = r.dtype("output dtype")?;
            let (shape, elements) = r.shape("output shape")?;
            let at = r.offset();
            let data = r.data("output data", dtype, elements)?;
            if let HostData::F32(v) = &data {
                if let Some(i) = v
                    .iter()
                    .position(|x| x.is_nan() && x.to_bits() != CANONICAL_NAN_BITS)
                {
                    return Err(nan_error(at + 4 * i));
                }
            }
            outputs.push(ResultTensor { name, shape, data });
        }
        r.finish()?;
        Ok(ResultObject { outputs })
    }

    /// Each output's `output_digest_sha256`, in order.
    pub fn digests(&self) -> Vec<[u8; 32]> {
        self.outputs
            .iter()
            .map(|o| {
                blocktorch::output_digest_sha256(&o.shape, &o.data)
                    .expect("a decoded or encodable output has a valid shape")
            })
            .collect()
    }

    /// The job's output digest these outputs give (`exec::job_output_digest`: what a
    /// receipt commits to).
    pub fn output_digest(&self) -> [u8; 32] {
        job_output_digest(&self.digests())
    }

    /// SHA-256 of the canonical bytes (the object's content address).
    pub fn sha256(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }
}

/// The encoded size of the result object of a run of `job` (validated as `plan`): the
/// header, and per declared output its name (length byte and bytes), dtype tag, rank,
/// dims and data, exactly what [`ResultObject::encode`] writes.
pub fn encoded_bytes(job: &crate::Job, plan: &crate::program::Plan) -> u128 {
    RESULT_HEADER_BYTES as u128
        + job
            .program
            .outputs
            .iter()
            .map(|o| {
                let v = &plan.values[o.value as usize];
                let rank = v.layout.shape().len() as u128;
                1 + o.name.len() as u128
                    + 2
                    + 4 * rank
                    + v.layout.numel() as u128 * v.dtype.size_bytes() as u128
            })
            .sum::<u128>()
}

fn count_error(n: u64, offset: usize) -> JobError {
    if n == 0 {
        JobError::Invalid {
            field: "output count",
            offset,
            message: "a result holds at least one output".into(),
        }
    } else {
        JobError::TooLarge {
            field: "output count",
            offset,
            value: n,
            max: RESULT_OUTPUTS_MAX as u64,
        }
    }
}

fn nan_error(offset: usize) -> JobError {
    JobError::Invalid {
        field: "output data",
        offset,
        message: format!("a NaN other than the canonical {CANONICAL_NAN_BITS:#010x}"),
    }
}

/// What the chain keeps of a result object: its output count and the output digest it
/// gives (checked against a receipt's `output_digest_sha256`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultSummary {
    /// Outputs.
    pub outputs: u32,
    /// Each output's digest, in order.
    pub digests: Vec<[u8; 32]>,
    /// The combined output digest.
    pub output_digest: [u8; 32],
}

/// Where the scanner is inside the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    /// Magic, version and count (9 bytes).
    Header,
    /// An output's name length.
    NameLen,
    /// Its name (`n` bytes).
    Name,
    /// Its dtype tag.
    Dtype,
    /// Its rank.
    Rank,
    /// Its dims.
    Dims,
    /// Its elements.
    Data,
    /// Past the last output.
    End,
}

/// Checks a result object and computes its output digests from its bytes fed in any
/// pieces, holding only a few bytes and one hash state: the chain runs it over a
/// published object's chunks. It accepts exactly what [`ResultObject::decode`] accepts
/// and gives the same digests (property-tested).
#[derive(Clone)]
pub struct ResultScanner {
    field: Field,
    /// Bytes of the current small field gathered so far.
    buf: Vec<u8>,
    /// Bytes the current field needs (`Data`: bytes left).
    need: u64,
    /// Offset of the next byte.
    at: u64,
    /// Outputs declared, and done.
    count: u32,
    done: u32,
    dtype: DType,
    rank: usize,
    elements: u64,
    /// A partial f32 carried between pieces (NaN checks).
    carry: Vec<u8>,
    hash: Sha256,
    digests: Vec<[u8; 32]>,
    error: Option<JobError>,
}

impl Default for ResultScanner {
    fn default() -> Self {
        ResultScanner::new()
    }
}

impl ResultScanner {
    /// A scanner at the object's first byte.
    pub fn new() -> ResultScanner {
        ResultScanner {
            field: Field::Header,
            buf: Vec::with_capacity(64),
            need: RESULT_HEADER_BYTES as u64,
            at: 0,
            count: 0,
            done: 0,
            dtype: DType::U8,
            rank: 0,
            elements: 0,
            carry: Vec::with_capacity(4),
            hash: Sha256::new(),
            digests: Vec::new(),
            error: None,
        }
    }

    /// Feeds the next bytes. After an error, further bytes are ignored and
    /// [`ResultScanner::finish`] returns it.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.error.is_none() {
            match self.step(bytes) {
                Ok(used) => bytes = &bytes[used..],
                Err(e) => self.error = Some(e),
            }
        }
    }

    /// The summary, or the first defect (an object that ends early is `Truncated`).
    pub fn finish(self) -> Result<ResultSummary> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.field != Field::End {
            let field = match self.field {
                Field::Header => "result header",
                Field::NameLen | Field::Name => "output name",
                Field::Dtype => "output dtype",
                Field::Rank | Field::Dims => "output shape",
                Field::Data => "output data",
                Field::End => unreachable!("checked above"),
            };
            return Err(JobError::Truncated {
                field,
                offset: self.at as usize - self.buf.len(),
                needed: (self.need as usize).saturating_sub(self.buf.len()),
                available: 0,
            });
        }
        let output_digest = job_output_digest(&self.digests);
        Ok(ResultSummary {
            outputs: self.count,
            digests: self.digests,
            output_digest,
        })
    }

    /// Gathers bytes into `buf` until `need` are there; returns the bytes used and
    /// whether the field is complete.
    fn gather(&mut self, bytes: &[u8]) -> (usize, bool) {
        let want = self.need as usize - self.buf.len();
        let take = want.min(bytes.len());
        self.buf.extend_from_slice(&bytes[..take]);
        self.at += take as u64;
        (take, self.buf.len() == self.need as usize)
    }

    fn start(&mut self, field: Field, need: u64) {
        self.field = field;
        self.need = need;
        self.buf.clear();
    }

    /// Consumes some of `bytes`; returns how many.
    fn step(&mut self, bytes: &[u8]) -> Result<usize> {
        if self.field == Field::End {
            return Err(JobError::TrailingBytes {
                offset: self.at as usize,
                count: bytes.len(),
            });
        }
        if self.field == Field::Data {
            return self.data(bytes);
        }
        let (used, complete) = self.gather(bytes);
        if !complete {
            return Ok(used);
        }
        let field_at = (self.at - self.need) as usize;
        match self.field {
            Field::Header => {
                if self.buf[..4] != RESULT_MAGIC {
                    return Err(JobError::BadMagic {
                        field: "magic",
                        offset: 0,
                        expected: RESULT_MAGIC,
                        found: self.buf[..4].try_into().expect("4 bytes"),
                    });
                }
                if self.buf[4] != RESULT_VERSION {
                    return Err(JobError::UnknownTag {
                        field: "version",
                        offset: 4,
                        tag: self.buf[4] as u64,
                    });
                }
                let n = u32::from_le_bytes(self.buf[5..9].try_into().expect("4 bytes"));
                if n == 0 || n as usize > RESULT_OUTPUTS_MAX {
                    return Err(count_error(n as u64, 5));
                }
                self.count = n;
                self.start(Field::NameLen, 1);
            }
            Field::NameLen => {
                let n = self.buf[0] as usize;
                crate::error::at_most(
                    "output name",
                    field_at,
                    n as u64,
                    RESULT_NAME_BYTES_MAX as u64,
                )?;
                if n == 0 {
                    self.start(Field::Dtype, 1);
                } else {
                    self.start(Field::Name, n as u64);
                }
            }
            Field::Name => {
                if std::str::from_utf8(&self.buf).is_err() {
                    return Err(JobError::Invalid {
                        field: "output name",
                        offset: field_at,
                        message: "not UTF-8".into(),
                    });
                }
                self.start(Field::Dtype, 1);
            }
            Field::Dtype => {
                let t = self.buf[0];
                self.dtype = DType::from_tag(t).ok_or(JobError::UnknownTag {
                    field: "output dtype",
                    offset: field_at,
                    tag: t as u64,
                })?;
                self.hash = Sha256::new();
                self.hash.update([t]);
                self.start(Field::Rank, 1);
            }
            Field::Rank => {
                let rank = self.buf[0] as usize;
                crate::error::at_most("output shape", field_at, rank as u64, RANK_MAX as u64)?;
                self.hash.update([rank as u8]);
                self.rank = rank;
                if rank == 0 {
                    self.elements = 1;
                    self.begin_data(field_at)?;
                } else {
                    self.start(Field::Dims, 4 * rank as u64);
                }
            }
            Field::Dims => {
                // The rank byte is the shape field's offset, as the decoder reports it.
                let shape_at = field_at - 1;
                let mut n: u64 = 1;
                for c in self.buf.chunks_exact(4) {
                    let d = u32::from_le_bytes(c.try_into().expect("4 bytes")) as u64;
                    n = n.checked_mul(d).ok_or(JobError::Overflow {
                        field: "output shape",
                        offset: shape_at,
                    })?;
                }
                crate::error::at_most(
                    "output shape",
                    shape_at,
                    n,
                    blocktorch::ELEMENTS_MAX as u64,
                )?;
                self.hash.update(&self.buf);
                self.elements = n;
                self.begin_data(shape_at)?;
            }
            Field::Data | Field::End => unreachable!("handled above"),
        }
        Ok(used)
    }

    fn begin_data(&mut self, shape_at: usize) -> Result<()> {
        let bytes = self
            .elements
            .checked_mul(self.dtype.size_bytes() as u64)
            .ok_or(JobError::Overflow {
                field: "output shape",
                offset: shape_at,
            })?;
        self.start(Field::Data, bytes);
        self.carry.clear();
        if bytes == 0 {
            self.end_output();
        }
        Ok(())
    }

    fn data(&mut self, bytes: &[u8]) -> Result<usize> {
        let take = (self.need.min(bytes.len() as u64)) as usize;
        let piece = &bytes[..take];
        if self.dtype == DType::F32 {
            // Check every f32 for a non-canonical NaN, across piece boundaries.
            let mut i = 0;
            let start = self.at;
            if !self.carry.is_empty() {
                let k = (4 - self.carry.len()).min(piece.len());
                self.carry.extend_from_slice(&piece[..k]);
                i = k;
                if self.carry.len() == 4 {
                    let at = start as usize + k - 4;
                    check_f32(&self.carry, at)?;
                    self.carry.clear();
                }
            }
            let whole = (piece.len() - i) / 4 * 4;
            for (j, c) in piece[i..i + whole].chunks_exact(4).enumerate() {
                check_f32(c, start as usize + i + 4 * j)?;
            }
            self.carry.extend_from_slice(&piece[i + whole..]);
        }
        self.hash.update(piece);
        self.at += take as u64;
        self.need -= take as u64;
        if self.need == 0 {
            self.end_output();
        }
        Ok(take)
    }

    fn end_output(&mut self) {
        let h = std::mem::replace(&mut self.hash, Sha256::new());
        self.digests.push(h.finalize().into());
        self.done += 1;
        if self.done == self.count {
            self.start(Field::End, 0);
        } else {
            self.start(Field::NameLen, 1);
        }
    }
}

fn check_f32(c: &[u8], at: usize) -> Result<()> {
    let bits = u32::from_le_bytes(c.try_into().expect("4 bytes"));
    if f32::from_bits(bits).is_nan() && bits != CANONICAL_NAN_BITS {
        return Err(nan_error(at));
    }
    Ok(())
}

/// Scans a whole result object ([`ResultScanner`] over one piece).
pub fn scan_result(bytes: &[u8]) -> Result<ResultSummary> {
    crate::error::at_most("result", 0, bytes.len() as u64, RESULT_BYTES_MAX as u64)?;
    let mut s = ResultScanner::new();
    s.feed(bytes);
    s.finish()
}
