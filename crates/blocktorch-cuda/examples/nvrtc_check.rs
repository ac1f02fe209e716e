//! Compiles the CUDA kernels with NVRTC (no GPU needed) and prints the PTX size, or the
//! compiler log on failure: `cargo run -p blocktorch-cuda --example nvrtc_check [cc]`.
fn main() {
    let cc = std::env::args().nth(1).unwrap_or_else(|| "90".into());
    let (major, minor) = cc.split_at(cc.len() - 1);
    let (major, minor) = (major.parse().unwrap_or(9), minor.parse().unwrap_or(0));
    match blocktorch_cuda::compile_kernels(major, minor) {
        Ok(ptx) => {
            let text = ptx.to_src();
            println!(
                "compiled for compute_{major}{minor}: {} bytes of PTX",
                text.len()
            );
            if let Some(path) = std::env::args().nth(2) {
                if let Err(e) = std::fs::write(&path, text) {
                    eprintln!("write {path}: {e}");
                }
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
