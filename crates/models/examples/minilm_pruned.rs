//! Prepares the MiniLM check for a machine the full model cannot be copied to (the GPU
//! machine takes 64 MiB of files): the job of the 20 test sentences, and the model with
//! its word-embedding table cut to the rows those sentences use (ids renumbered in
//! order). Gather only copies rows, so every op computes the same values as with the
//! full table: the embeddings must be bit-identical to the full model's, which this
//! checks on the CPU before writing anything.
//!
//!     cargo run --release -p tb-models --example minilm_pruned -- MODEL_DIR SENTENCES OUT_DIR
//!
//! Writes OUT_DIR/minilm-pruned.btm (the model), OUT_DIR/minilm-20.btj (a version 1 job
//! naming it, CPU reference kernel digest) and OUT_DIR/expected.txt (the full model's
//! output digest on the CPU). Then, on the GPU machine:
//! `tb-cli job run minilm-20.btj --model minilm-pruned.btm --fabric cuda --cross-fabric`.

use blocktorch::{CpuFabric, Fabric};
use safetensors::tensor::{serialize, TensorView};
use safetensors::Dtype;
use std::path::Path;
use tb_job::{execute, ExecOptions, Job, JobForm, ReplayMode};
use tb_models::bert::{Bert, BertConfig, BertShape, Pooling};
use tb_models::text::TextEncoder;
use tb_models::weights::Weights;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, sentences, out] = args.as_slice() else {
        return Err("usage: minilm_pruned MODEL_DIR SENTENCES OUT_DIR".into());
    };
    let (dir, out) = (Path::new(dir), Path::new(out));
    let texts: Vec<String> = std::fs::read_to_string(sentences)?
        .lines()
        .map(String::from)
        .collect();
    let enc = TextEncoder::open(&dir.join("tokenizer.json"), None)?;
    let e = enc.encode(&texts)?;
    let shape = BertShape {
        batch: texts.len(),
        seq: enc.seq,
    };
    let cpu = CpuFabric::reference();
    let opts = ExecOptions {
        replay: ReplayMode::CrossFabric,
        profile: false,
    };

    // The full model's answer.
    let full = Bert::open(dir)?.build(shape, Pooling::MeanNormalized)?;
    let (d, input) = e.job_input();
    let want = execute(
        &Job::new(cpu.kernel_variant_digest(), d, full, input)?,
        &cpu,
        opts,
    )?;

    // The used rows, in increasing id order, and the ids renumbered.
    let mut used: Vec<i32> = e.ids.clone();
    used.sort_unstable();
    used.dedup();
    let renumber = |id: i32| used.binary_search(&id).map(|i| i as i32).unwrap_or(0);
    let st_bytes = std::fs::read(dir.join("model.safetensors"))?;
    let st = safetensors::SafeTensors::deserialize(&st_bytes)?;
    let word = st.tensor("embeddings.word_embeddings.weight")?;
    let h = word.shape()[1];
    let rows: Vec<u8> = used
        .iter()
        .flat_map(|&id| word.data()[id as usize * h * 4..(id as usize + 1) * h * 4].to_vec())
        .collect();
    let mut views: Vec<(String, TensorView<'_>)> = Vec::new();
    for (name, t) in st.tensors() {
        if name == "embeddings.word_embeddings.weight" {
            views.push((
                name,
                TensorView::new(Dtype::F32, vec![used.len(), h], &rows)?,
            ));
        } else {
            views.push((name, t));
        }
    }
    let pruned = Weights::from_bytes(serialize(views, None)?, "pruned")?;
    let mut cfg = BertConfig::parse(&std::fs::read(dir.join("config.json"))?)?;
    cfg.vocab_size = used.len();
    let program = Bert::new(cfg, pruned)?.build(shape, Pooling::MeanNormalized)?;
    let mut e2 = e.clone();
    e2.ids = e.ids.iter().map(|&id| renumber(id)).collect();
    let (d, input) = e2.job_input();
    let job =
        Job::new(cpu.kernel_variant_digest(), d, program, input)?.with_form(JobForm::ByReference);
    let got = execute(&job, &cpu, opts)?;
    assert_eq!(
        got.output_digest, want.output_digest,
        "the pruned model must give the full model's bits"
    );

    std::fs::create_dir_all(out)?;
    let model = job.model_bytes()?;
    std::fs::write(out.join("minilm-pruned.btm"), &model)?;
    std::fs::write(out.join("minilm-20.btj"), job.encode()?)?;
    let hex: String = want
        .output_digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(out.join("expected.txt"), format!("{hex}\n"))?;
    println!(
        "{} rows of {} kept; model {} bytes; output digest {hex} (full and pruned, CPU reference)",
        used.len(),
        word.shape()[0],
        model.len()
    );
    Ok(())
}
