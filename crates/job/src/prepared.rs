//! A model's constants uploaded to a fabric once, for every job of that model.
//!
//! [`crate::execute`] uploads every constant the program reads at the start of each
//! run: for all-MiniLM-L6-v2 that is 90 MB copied into fresh pages per job, about a
//! third of a batch-1 run on the CPU (`BENCHMARKS.md`, "Models uploaded once"). A
//! [`PreparedModel`] holds those uploads; [`execute_prepared`] runs a job of the same
//! model with them and gives exactly the result [`crate::execute`] gives (the same
//! outputs, leaves, trace root: constants are immutable on every fabric, and an op's
//! output never depends on where its input buffer came from). A [`ModelCache`] keeps
//! prepared models under a byte budget, least recently used first out; the node's
//! provider and verifier share one (`model_cache_mb`, `docs/node.md`).
//!
//! A run with the allocation profiler ([`ExecOptions::profile`]) uploads its constants
//! afresh, so its profile epoch records the same allocations as any other run's.

use crate::error::{JobError, Result};
use crate::exec::{execute_plan_with, upload_consts, ExecOptions, ExecResult};
use crate::format::Job;
use crate::program::Plan;
use crate::validate::validate;
use blocktorch::{Fabric, FabricTensor};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Which fabric a prepared model lives on: its name and device description (two CPU
/// fabrics of different configurations, or two GPUs, are different fabrics).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FabricId {
    name: String,
    device: String,
}

impl FabricId {
    fn of(fabric: &dyn Fabric) -> FabricId {
        FabricId {
            name: fabric.name().to_string(),
            device: fabric.device_description(),
        }
    }
}

/// A program's constants, uploaded to one fabric.
#[derive(Debug)]
pub struct PreparedModel {
    artifact_hash: [u8; 32],
    fabric: FabricId,
    /// One slot per constant: uploaded when the program reads it or declares it an
    /// output, else `None` (as the executor leaves it).
    consts: Vec<Option<FabricTensor>>,
    bytes: u64,
}

impl PreparedModel {
    /// Validates `job` and uploads the constants its program reads to `fabric`.
    pub fn new(job: &Job, fabric: &dyn Fabric) -> Result<PreparedModel> {
        Self::with_plan(job, &validate(job)?, fabric)
    }

    /// As [`PreparedModel::new`], for a job already validated into `plan`.
    fn with_plan(job: &Job, plan: &Plan, fabric: &dyn Fabric) -> Result<PreparedModel> {
        let p = &job.program;
        let mut consts = vec![None; p.consts.len()];
        upload_consts(job, plan, fabric, &mut consts)?;
        let bytes = consts
            .iter()
            .flatten()
            .map(|t| (t.layout().numel() as u64).saturating_mul(t.dtype().size_bytes() as u64))
            .fold(0u64, u64::saturating_add);
        Ok(PreparedModel {
            artifact_hash: job.artifact_hash,
            fabric: FabricId::of(fabric),
            consts,
            bytes,
        })
    }

    /// The SHA-256 of the model (artifact) whose constants these are.
    pub fn artifact_hash(&self) -> [u8; 32] {
        self.artifact_hash
    }

    /// Bytes of constants held on the fabric.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The uploaded constants for a run of `job` on `fabric`: refused (typed) when the
    /// job is of another model or the fabric is not the one they were uploaded to.
    pub(crate) fn consts_for(
        &self,
        job: &Job,
        fabric: &dyn Fabric,
    ) -> Result<&[Option<FabricTensor>]> {
        if job.artifact_hash != self.artifact_hash || job.program.consts.len() != self.consts.len()
        {
            return Err(JobError::PreparedMismatch {
                message: format!(
                    "the constants were uploaded for model {}, the job's model is {}",
                    hex(&self.artifact_hash),
                    hex(&job.artifact_hash)
                ),
            });
        }
        let here = FabricId::of(fabric);
        if here != self.fabric {
            return Err(JobError::PreparedMismatch {
                message: format!(
                    "the constants live on {} ({}), the job runs on {} ({})",
                    self.fabric.name, self.fabric.device, here.name, here.device
                ),
            });
        }
        Ok(&self.consts)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Validates `job` and runs it on `fabric` with the constants of `prepared` (uploaded
/// before, for this model on this fabric). The result is [`crate::execute`]'s, bit
/// for bit; a `prepared` of another model or fabric is refused
/// ([`JobError::PreparedMismatch`]).
pub fn execute_prepared(
    job: &Job,
    fabric: &dyn Fabric,
    prepared: &PreparedModel,
    opts: ExecOptions,
) -> Result<ExecResult> {
    let plan = validate(job)?;
    let consts = prepared.consts_for(job, fabric)?;
    execute_plan_with(job, &plan, fabric, Some(consts), opts)
}

/// How a [`ModelCache::get_or_prepare`] was served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheLookup {
    /// Found prepared.
    Hit,
    /// Prepared now and kept.
    Miss,
    /// Prepared now, not kept: larger than the cache's whole budget.
    TooLarge,
    /// Not looked up: a run with the allocation profiler uploads afresh.
    Profiled,
}

impl CacheLookup {
    /// A metric label: `hit`, `miss`, `too_large`, `profiled`.
    pub fn label(self) -> &'static str {
        match self {
            CacheLookup::Hit => "hit",
            CacheLookup::Miss => "miss",
            CacheLookup::TooLarge => "too_large",
            CacheLookup::Profiled => "profiled",
        }
    }
}

struct Entry {
    model: Arc<PreparedModel>,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<([u8; 32], FabricId), Entry>,
    bytes: u64,
    tick: u64,
}

/// Prepared models under a byte budget (the sum of [`PreparedModel::bytes`] kept),
/// keyed by model and fabric; the least recently used goes first when a new one needs
/// room. A budget of 0 keeps nothing (every lookup prepares afresh). Safe to share
/// between threads; a model being prepared does not hold the lock.
pub struct ModelCache {
    budget: u64,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for ModelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (models, bytes) = self.usage();
        f.debug_struct("ModelCache")
            .field("budget", &self.budget)
            .field("models", &models)
            .field("bytes", &bytes)
            .finish()
    }
}

impl ModelCache {
    /// An empty cache holding at most `budget` bytes of constants.
    pub fn new(budget: u64) -> ModelCache {
        ModelCache {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The byte budget.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves the map consistent (every
        // update is one insert or remove with its byte count), so a poisoned lock is
        // still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Models held and their bytes.
    pub fn usage(&self) -> (usize, u64) {
        let g = self.lock();
        (g.entries.len(), g.bytes)
    }

    /// Advances the clock and, when `key` is held, marks it used now and returns it.
    fn touch(g: &mut Inner, key: &([u8; 32], FabricId)) -> Option<Arc<PreparedModel>> {
        g.tick += 1;
        let tick = g.tick;
        let e = g.entries.get_mut(key)?;
        e.last_used = tick;
        Some(e.model.clone())
    }

    /// The prepared model of `job`'s model on `fabric`: the one held, or a new one
    /// (kept when it fits the budget, evicting the least recently used).
    pub fn get_or_prepare(
        &self,
        job: &Job,
        fabric: &dyn Fabric,
    ) -> Result<(Arc<PreparedModel>, CacheLookup)> {
        self.get_or_prepare_with(job, None, fabric)
    }

    /// [`ModelCache::get_or_prepare`], with the job's plan when the caller has it
    /// (else a miss validates the job).
    fn get_or_prepare_with(
        &self,
        job: &Job,
        plan: Option<&Plan>,
        fabric: &dyn Fabric,
    ) -> Result<(Arc<PreparedModel>, CacheLookup)> {
        let key = (job.artifact_hash, FabricId::of(fabric));
        if let Some(held) = Self::touch(&mut self.lock(), &key) {
            return Ok((held, CacheLookup::Hit));
        }
        let model = Arc::new(match plan {
            Some(plan) => PreparedModel::with_plan(job, plan, fabric)?,
            None => PreparedModel::new(job, fabric)?,
        });
        if model.bytes > self.budget {
            return Ok((model, CacheLookup::TooLarge));
        }
        let mut g = self.lock();
        if let Some(held) = Self::touch(&mut g, &key) {
            // Another thread prepared it meanwhile: keep one.
            return Ok((held, CacheLookup::Hit));
        }
        let tick = g.tick;
        while g.bytes + model.bytes > self.budget {
            let Some(oldest) = g
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = g.entries.remove(&oldest) {
                g.bytes -= e.model.bytes;
            }
        }
        g.bytes += model.bytes;
        g.entries.insert(
            key,
            Entry {
                model: model.clone(),
                last_used: tick,
            },
        );
        Ok((model, CacheLookup::Miss))
    }

    /// Runs `job` on `fabric` with its model's prepared constants (from the cache, or
    /// prepared now), as [`execute_prepared`].
    pub fn execute(
        &self,
        job: &Job,
        fabric: &dyn Fabric,
        opts: ExecOptions,
    ) -> Result<(ExecResult, CacheLookup)> {
        let plan = validate(job)?;
        if opts.profile {
            // Uploads afresh (module docs): nothing to look up.
            return Ok((
                execute_plan_with(job, &plan, fabric, None, opts)?,
                CacheLookup::Profiled,
            ));
        }
        let (model, how) = self.get_or_prepare_with(job, Some(&plan), fabric)?;
        let consts = model.consts_for(job, fabric)?;
        Ok((
            execute_plan_with(job, &plan, fabric, Some(consts), opts)?,
            how,
        ))
    }
}
