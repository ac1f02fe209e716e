//! Writes each ONNX test case (`scripts/onnx_cases.py` layout) as a job blob with the
//! CPU reference's output digest beside it, so another fabric (CUDA on a GPU machine)
//! can be checked bit for bit on the imported programs without this crate:
//!
//!     cargo run --release -p tb-models --example onnx_jobs -- CASES_DIR OUT_DIR
//!     tb-cli job run OUT_DIR/CASE.btj --fabric cuda --cross-fabric --json
//!
//! OUT_DIR/expected.txt has one line per case: `CASE.btj DIGEST`.

use blocktorch::{CpuFabric, Fabric};
use std::fmt::Write as _;
use tb_job::{execute, ExecOptions, Job, ReplayMode};
use tb_models::onnx::{import, tensor_from_bytes, ImportOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cases, out] = args.as_slice() else {
        return Err("usage: onnx_jobs CASES_DIR OUT_DIR".into());
    };
    std::fs::create_dir_all(out)?;
    let cpu = CpuFabric::reference();
    let opts = ExecOptions {
        replay: ReplayMode::CrossFabric,
        profile: false,
    };
    let mut expected = String::new();
    let mut dirs: Vec<_> = std::fs::read_dir(cases)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    dirs.sort();
    for dir in dirs {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let Ok(m) = import(
            &std::fs::read(dir.join("model.onnx"))?,
            &ImportOptions::default(),
        ) else {
            continue;
        };
        let set = dir.join("test_data_set_0");
        let mut inputs = Vec::new();
        for i in 0.. {
            let Ok(b) = std::fs::read(set.join(format!("input_{i}.pb"))) else {
                break;
            };
            inputs.push(tensor_from_bytes(&b)?);
        }
        let Ok((d, input)) = m.job_input(&inputs) else {
            continue;
        };
        let job = Job::new(cpu.kernel_variant_digest(), d, m.program, input)?;
        let r = execute(&job, &cpu, opts)?;
        std::fs::write(format!("{out}/{name}.btj"), job.encode()?)?;
        let hex: String = r.output_digest.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(expected, "{name}.btj {hex}")?;
    }
    std::fs::write(format!("{out}/expected.txt"), &expected)?;
    println!("{} jobs written to {out}", expected.lines().count());
    Ok(())
}
