//! `cargo xtask gpu-bundle`: tokbench for a CUDA machine that has a compiler but no Rust and no network.
//!
//! tokbench is built here with llama.cpp as shared libraries (`--features llama-dynamic-link`), its CPU code for the
//! portable x86-64-v3 level (AVX2) rather than this host's CPU. The bundle carries that binary with the CPU build of
//! the libraries in `bin/lib` (found through `LD_LIBRARY_PATH`: a RUNPATH would not reach libggml's own dependencies,
//! and an RPATH would outrank the CUDA build), the llama.cpp tree those libraries were compiled from (llama-cpp-sys-2's, plus llama-bench's sources
//! from the llama-cpp-python sdist), and a one-layer GGUF holding the default model's tokenizer. On the GPU machine
//! `xtask/gpu/run.sh` compiles the same tree with `GGML_CUDA=ON` into shared libraries and puts them first on
//! `LD_LIBRARY_PATH`: the binary built here then runs llama.cpp on CUDA, and llama-bench from the same build is the
//! peer. The C API the binary was generated against is the same header in both builds.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, ensure, Context, Result};

use crate::peers::{self, output, run};

/// What the device's working tree can carry besides itself (the `run` tool's limit is 64 MiB in all).
const CARRY_LIMIT: u64 = 64 << 20;
/// Where the bundle is written (ignored by git; carried to the GPU machine as one path).
pub const BUNDLE_DIR: &str = "target/gpu-bundle";
/// Its own cargo target dir: a shared-library llama.cpp must not replace the static one of `target/release`.
const BUILD_DIR: &str = "target/gpu-build";

#[derive(clap::Args)]
pub struct GpuBundleArgs {
    /// llama-cpp-python sdist whose llama.cpp tree supplies llama-bench's sources.
    #[arg(long, default_value = peers::PEER_SDIST_VERSION)]
    llama_cpp_python: String,
    /// The rustc target-cpu of the bundle's code (its CPU side must run on the GPU machine's CPU).
    #[arg(long, default_value = "x86-64-v3")]
    target_cpu: String,
}

pub fn gpu_bundle(args: &GpuBundleArgs) -> Result<()> {
    let bundle = PathBuf::from(BUNDLE_DIR);
    let bin = bundle.join("bin");
    // A stale bundle must not be mistaken for this one: start empty.
    if bundle.exists() {
        std::fs::remove_dir_all(&bundle).with_context(|| format!("cannot clear {}", bundle.display()))?;
    }
    std::fs::create_dir_all(bin.join("lib"))?;

    eprintln!("building tokbench with llama.cpp as shared libraries (target-cpu {})", args.target_cpu);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // RUSTFLAGS replaces .cargo/config.toml's target-cpu=native: llama-cpp-sys-2 then builds llama.cpp with
    // GGML_NATIVE=OFF and -march=<target-cpu>, so nothing of this host's CPU leaks into the bundle.
    let rustflags = format!("-C target-cpu={}", args.target_cpu);
    // llama-cpp-sys-2's build script hard-links the libraries' unversioned symlinks into the target dir (and its
    // examples/ and deps/) and fails ("File exists") when it runs again and finds them there dangling: clear them.
    for dir in ["release", "release/examples", "release/deps"] {
        for entry in std::fs::read_dir(Path::new(BUILD_DIR).join(dir)).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("lib") && name.contains(".so") && entry.path().is_symlink() {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    for (package, features) in [("tokbench", Some("llama-dynamic-link")), ("xtask", None)] {
        let mut c = Command::new(&cargo);
        c.args(["build", "--release", "-p", package]).env("CARGO_TARGET_DIR", BUILD_DIR);
        c.env("RUSTFLAGS", &rustflags);
        if let Some(f) = features {
            c.args(["--features", f]);
        }
        run(&mut c)?;
    }
    for name in ["tokbench", "xtask"] {
        let to = bin.join(name);
        std::fs::copy(Path::new(BUILD_DIR).join("release").join(name), &to)?;
        run(Command::new("strip").arg(&to))?;
    }
    let copied = copy_shared_libraries(&bin.join("lib"))?;
    eprintln!("shared libraries: {}", copied.join(", "));

    let source = sys_crate_llama_cpp_tree()?;
    let sdist = peers::peer_llama_cpp(&args.llama_cpp_python)?;
    pack_source(&source, &sdist, &bundle.join("llama.cpp.tar.xz"))?;

    // The synthetic models are made on the GPU machine (gigabytes do not travel); they need a tokenizer, and the
    // default model (98 MB) is over the carry limit, so a one-layer model of 64 wide carries it (~2 MB).
    let default_model = crate::fetch::fetch(Path::new("tokbench.toml"), &[])?.remove(0);
    let tokenizer = bundle.join("tokenizer.gguf");
    let tokbench = bin.join("tokbench");
    let libs = std::fs::canonicalize(bin.join("lib"))?;
    let on_bundle_libs = |program: &Path| {
        let mut c = Command::new(program);
        c.env("LD_LIBRARY_PATH", &libs);
        c
    };
    run(on_bundle_libs(&tokbench)
        .args(["synth", "--shape", "smollm2-135m", "--n-layer", "1", "--n-embd", "64", "--n-head", "1"])
        .args(["--n-head-kv", "1", "--n-ff", "64", "--type", "Q4_0", "--tokenizer-from"])
        .arg(&default_model)
        .arg("--out")
        .arg(&tokenizer))?;

    // The bundle must work before it travels: its binary, on the CPU libraries of bin/lib, lists llama.cpp and
    // generates with the tokenizer model.
    let backends = output(on_bundle_libs(&tokbench).arg("backends"))?;
    ensure!(backends.contains("llama.cpp"), "the bundle's tokbench does not list llama.cpp:\n{backends}");
    run(on_bundle_libs(&tokbench)
        .args(["run", "--model"])
        .arg(&tokenizer)
        .args(["-p", "16", "-n", "8", "--warmup", "0", "--runs", "1", "--no-quality", "--quiet", "--output"])
        .arg(bundle.join("check.json"))
        .stdout(std::process::Stdio::null()))?;

    let size = dir_size(&bundle)?;
    let tracked = tracked_size()?;
    println!(
        "bundle: {} ({:.1} MiB; with the tracked tree {:.1} MiB)",
        bundle.display(),
        mib(size),
        mib(size + tracked)
    );
    ensure!(
        size + tracked <= CARRY_LIMIT,
        "the bundle and the tracked tree are {:.1} MiB, over the {} MiB a device run carries",
        mib(size + tracked),
        CARRY_LIMIT >> 20
    );
    println!("on the GPU machine (the working tree plus {BUNDLE_DIR}):");
    println!("  bash xtask/gpu/run.sh build     # CUDA libllama/libggml and llama-bench from the bundled tree");
    println!("  bash xtask/gpu/run.sh measure   # the matrix, llama-bench beside it, the report, into $OUT");
    Ok(())
}

/// llama-cpp-sys-2's shared libraries (`libllama.so`, `libggml*.so`, …) from the bundle build, symlinks kept.
fn copy_shared_libraries(to: &Path) -> Result<Vec<String>> {
    let build = Path::new(BUILD_DIR).join("release/build");
    // Every configuration of the sys crate this target dir has built keeps its own out dir; the one just built
    // (for the binary being bundled) holds the newest libllama.
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(&build).with_context(|| format!("{} is missing", build.display()))? {
        let dir = entry?.path();
        let is_sys = dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with("llama-cpp-sys-2-"));
        let lib = dir.join("out/lib");
        let Ok(built) = std::fs::metadata(lib.join("libllama.so")).and_then(|m| m.modified()) else { continue };
        if is_sys && newest.as_ref().is_none_or(|(t, _)| built > *t) {
            newest = Some((built, lib));
        }
    }
    let (_, lib) = newest.ok_or_else(|| {
        anyhow!(
            "no libllama.so under {}/llama-cpp-sys-2-*/out/lib: did the llama-dynamic-link build run?",
            build.display()
        )
    })?;
    let mut found = Vec::new();
    for file in std::fs::read_dir(&lib)? {
        let path = file?.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.contains(".so") {
            continue;
        }
        let target = to.join(&name);
        match std::fs::read_link(&path) {
            Ok(link) => std::os::unix::fs::symlink(link, &target)?,
            Err(_) => {
                std::fs::copy(&path, &target)?;
            }
        }
        found.push(name);
    }
    found.sort();
    Ok(found)
}

/// The llama.cpp tree that llama-cpp-sys-2 compiles, from cargo's registry (found through `cargo metadata`).
fn sys_crate_llama_cpp_tree() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let meta = output(Command::new(cargo).args(["metadata", "--format-version", "1"]))?;
    let meta: serde_json::Value = serde_json::from_str(&meta)?;
    let manifest = meta["packages"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "llama-cpp-sys-2"))
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or_else(|| anyhow!("cargo metadata does not list llama-cpp-sys-2"))?;
    let tree = Path::new(manifest).parent().unwrap().join("llama.cpp");
    ensure!(tree.join("CMakeLists.txt").is_file(), "{} holds no llama.cpp tree", tree.display());
    Ok(tree)
}

/// `llama.cpp.tar.xz`: the sys crate's tree without what a library + llama-bench build never reads, with
/// llama-bench's sources from the sdist (the crate ships none of the tools' sources) and a tools/CMakeLists.txt
/// that builds llama-bench alone.
fn pack_source(tree: &Path, sdist: &Path, archive: &Path) -> Result<()> {
    let staging = Path::new(BUILD_DIR).join("llama.cpp-staging");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    let copy = staging.join("llama.cpp");
    run(Command::new("cp").arg("-a").arg(tree).arg(&copy))?;
    for unneeded in ["docs", "gguf-py", "models", "examples", "tests", "pocs", "ci", "tools"] {
        let _ = std::fs::remove_dir_all(copy.join(unneeded));
    }
    std::fs::create_dir_all(copy.join("tools"))?;
    let bench = sdist.join("tools/llama-bench");
    ensure!(bench.join("llama-bench.cpp").is_file(), "{} holds no llama-bench sources", bench.display());
    run(Command::new("cp").arg("-a").arg(&bench).arg(copy.join("tools/llama-bench")))?;
    std::fs::write(copy.join("tools/CMakeLists.txt"), "llama_add_compile_flags()\nadd_subdirectory(llama-bench)\n")?;
    let archive = std::fs::canonicalize(archive.parent().unwrap())?.join(archive.file_name().unwrap());
    run(Command::new("tar").arg("-cJf").arg(&archive).arg("llama.cpp").current_dir(&staging).env("XZ_OPT", "-T0"))?;
    std::fs::remove_dir_all(&staging)?;
    Ok(())
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = std::fs::symlink_metadata(entry.path())?;
        total += if meta.is_dir() { dir_size(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}

fn tracked_size() -> Result<u64> {
    let files = output(Command::new("git").args(["ls-files", "-z"]))?;
    Ok(files.split('\0').filter(|f| !f.is_empty()).filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}
