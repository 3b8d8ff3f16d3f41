//! `cargo xtask gpu-bundle` end to end, as far as this machine can take it: the bundle builds, its binary loads the
//! shared llama.cpp libraries of `bin/lib` through `LD_LIBRARY_PATH` (the CPU build: the same loading path the CUDA
//! build takes on a GPU machine) and generates, and the source it carries is complete enough to build the CUDA libraries and llama-bench.
use std::path::Path;
use std::process::Command;

use tokbench_record::results::RunResults;

#[test]
fn the_gpu_bundle_builds_and_its_binary_runs_on_the_shared_libraries_beside_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_xtask")).arg("gpu-bundle").current_dir(root).status().unwrap();
    assert!(status.success(), "cargo xtask gpu-bundle failed ({status})");

    let bundle = root.join("target/gpu-bundle");
    let tokbench = bundle.join("bin/tokbench");
    // The binary links llama.cpp dynamically and resolves it, and ggml's CPU library behind it, from bin/lib.
    let ldd = Command::new("ldd").arg(&tokbench).env("LD_LIBRARY_PATH", bundle.join("bin/lib")).output().unwrap();
    let ldd = String::from_utf8_lossy(&ldd.stdout).into_owned();
    let libllama = ldd.lines().find(|l| l.trim_start().starts_with("libllama")).unwrap_or_else(|| panic!("{ldd}"));
    assert!(libllama.contains("gpu-bundle/bin/lib/"), "libllama is not the bundle's: {libllama}");
    assert!(ldd.contains("libggml-cpu") && !ldd.contains("not found"), "{ldd}");

    // The bundle's own check generated with it: one benchmark, of the synthetic tokenizer model.
    let check = RunResults::read(&bundle.join("check.json")).unwrap();
    assert_eq!(check.benchmarks.len(), 1);
    assert!(check.benchmarks[0].model.synthetic.is_some());
    assert_eq!(check.benchmarks[0].runs[0].generated_tokens, 8);

    // The source: llama.cpp with its CUDA backend, llama-bench's sources, a tools/ that builds llama-bench alone.
    let list = Command::new("tar").arg("-tJf").arg(bundle.join("llama.cpp.tar.xz")).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    for needed in [
        "llama.cpp/CMakeLists.txt",
        "llama.cpp/include/llama.h",
        "llama.cpp/ggml/src/ggml-cuda/ggml-cuda.cu",
        "llama.cpp/tools/CMakeLists.txt",
        "llama.cpp/tools/llama-bench/llama-bench.cpp",
        "llama.cpp/tools/llama-bench/main.cpp",
        "llama.cpp/tools/llama-bench/CMakeLists.txt",
    ] {
        assert!(list.lines().any(|l| l == needed), "the bundle's source lacks {needed}");
    }
    assert!(bundle.join("tokenizer.gguf").is_file());
}
