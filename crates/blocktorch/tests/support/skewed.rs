//! A deliberately wrong fabric for the suites' must-fail tests: the CPU reference with
//! the f32 outputs of one primitive perturbed by a given function.

use blocktorch::fabric::{Fabric, FabricTensor};
use blocktorch::{CpuFabric, HostData, Prim, Result, TensorError};

/// The CPU reference, except that every f32 output of `prim` goes through `perturb`.
pub struct Skewed {
    pub prim: Prim,
    pub perturb: fn(&mut [f32]),
    inner: CpuFabric,
}

impl Skewed {
    pub fn new(prim: Prim, perturb: fn(&mut [f32])) -> Skewed {
        Skewed {
            prim,
            perturb,
            inner: CpuFabric::reference(),
        }
    }
}

impl Fabric for Skewed {
    fn name(&self) -> &str {
        "skewed"
    }
    fn device_description(&self) -> String {
        format!("cpu with a wrong {:?}", self.prim)
    }
    fn kernel_variant_digest(&self) -> [u8; 32] {
        [0; 32]
    }
    fn upload(&self, data: &HostData, shape: &[usize]) -> Result<FabricTensor> {
        self.inner.upload(data, shape)
    }
    fn download(&self, t: &FabricTensor) -> Result<HostData> {
        self.inner.download(t)
    }
    fn execute(&self, prim: &Prim, inputs: &[&FabricTensor]) -> Result<FabricTensor> {
        let out = self.inner.execute(prim, inputs)?;
        if *prim != self.prim {
            return Ok(out);
        }
        let HostData::F32(mut v) = self.inner.download(&out)? else {
            return Err(TensorError::Fabric {
                fabric: "skewed".into(),
                message: format!("{prim:?} gave a non-f32 output"),
            });
        };
        (self.perturb)(&mut v);
        self.inner.upload(&HostData::F32(v), out.shape())
    }
}
