//! `cargo xtask <command>`: project automation in Rust (the xtask pattern), depending only on light crates.
mod fetch;
mod gate;
mod gpu;
mod mlx;
mod mlx_lm;
mod peers;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download and verify every model named in the config into the model cache.
    Fetch {
        #[arg(long, default_value = "tokbench.toml")]
        config: PathBuf,
        /// Only these models (config names).
        #[arg(long, value_delimiter = ',')]
        model: Vec<String>,
    },
    /// The quantization ladder of the config: fetch the base, then `tokbench quantize` (release build) with any extra
    /// arguments, e.g. `--types Q8_0,Q4_K_M`.
    Quantize {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The main job: fetch the config's models, make the ladder rungs it names, then `tokbench run` (release build)
    /// with any extra arguments.
    Run {
        #[arg(long, default_value = "tokbench.toml")]
        config: PathBuf,
        #[command(flatten)]
        engines: Engines,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The test suite: fetch the config's models, then `cargo nextest run --workspace` (extra arguments passed on).
    Test {
        #[command(flatten)]
        engines: Engines,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Side by side with llama.cpp's own llama-bench (built from the llama-cpp-python sdist): prefill at -p 512 and
    /// decode of 128 tokens at depths 0, 512, 2048, 4096 (-d), alternating runs, medians and ratios.
    VsLlamaBench(peers::VsArgs),
    /// Side by side with llama.cpp's own llama-perplexity (built from the llama-cpp-python sdist): same model, corpus
    /// and n_ctx; PPL difference and scoring tokens/s ratio.
    VsLlamaPerplexity(peers::VsPerplexityArgs),
    /// Side by side with mlx-lm (pinned, in a venv under ~/.cache/tokbench): the GGUF exported as an MLX directory,
    /// then mlx-lm's generation loop and tokbench's MLX backend alternately on it (prefill and decode ratios), the
    /// same greedy tokens, perplexity on the same chunks.
    VsMlxLm(mlx_lm::VsMlxLmArgs),
    /// A bundle for a CUDA machine without Rust or network (target/gpu-bundle): tokbench on shared llama.cpp
    /// libraries, the llama.cpp tree to build them with CUDA there, llama-bench's sources, a tokenizer model; prints
    /// the commands to run there (docs/gpu.md).
    GpuBundle(gpu::GpuBundleArgs),
    /// Linux: fetch MLX's CPU backend (PyPI mlx-cpu 0.32.2) and prepare the Linux build of mlx-sys under
    /// target/mlx; prints the cargo config that builds with `--features mlx`. macOS needs nothing.
    PrepareMlx,
    /// Download and verify WikiText-2 (raw) into ~/.cache/tokbench/corpora, for `tokbench perplexity --corpus`.
    FetchCorpus,
    #[command(flatten)]
    Gate(gate::GateCommand),
}

/// Which in-process engines a build has. llama.cpp always; MLX on request off macOS, since on Linux it means
/// downloading MLX's CPU build (PyPI mlx-cpu) and a much slower matrix.
#[derive(clap::Args, Clone, Copy)]
pub struct Engines {
    /// Also build and run the MLX backend (on Linux: MLX's CPU build from the PyPI wheel mlx-cpu; on macOS it is
    /// always built, with Metal).
    #[arg(long)]
    mlx: bool,
}

impl Engines {
    pub const LLAMA_CPP_ONLY: Engines = Engines { mlx: false };
    pub const WITH_MLX: Engines = Engines { mlx: true };

    pub fn mlx(self) -> bool {
        self.mlx || cfg!(target_os = "macos")
    }
}

/// Where `tokbench run ARGS` writes its results: `-o/--output`, else target/tokbench/latest.json.
fn results_path(args: &[String]) -> PathBuf {
    let mut given = None;
    for (i, a) in args.iter().enumerate() {
        if let Some(v) = a.strip_prefix("--output=") {
            given = Some(v.to_string());
        } else if a == "-o" || a == "--output" {
            given = args.get(i + 1).cloned();
        }
    }
    given.map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target/tokbench/latest.json"))
}

fn main() -> ExitCode {
    let command = match Cli::parse().command {
        Command::Gate(command) => return gate::run(command),
        other => other,
    };
    let result: Result<()> = match command {
        Command::Gate(_) => unreachable!("handled above"),
        Command::Fetch { config, model } => fetch::fetch(&config, &model).map(|_| ()),
        Command::Quantize { args } => fetch::fetch(std::path::Path::new("tokbench.toml"), &[]).and_then(|_| {
            peers::cargo_tokbench(Engines::LLAMA_CPP_ONLY, &[&["quantize".to_string()], &args[..]].concat())
        }),
        Command::Run { config, engines, args } => fetch::fetch(&config, &[]).and_then(|_| {
            let config_arg = ["--config".to_string(), config.display().to_string()];
            let quantize = [&["quantize".to_string(), "--needed".to_string()], &config_arg[..]].concat();
            peers::cargo_tokbench(engines, &quantize)?;
            peers::cargo_tokbench(engines, &[&["run".to_string()], &config_arg[..], &args[..]].concat())?;
            // The HTML report of the run, next to its results.
            let results = results_path(&args);
            let page = tokbench_gate::report::run::write_report(std::slice::from_ref(&results), None)?;
            println!("report: {}", page.display());
            Ok(())
        }),
        Command::Test { engines, args } => fetch::fetch(std::path::Path::new("tokbench.toml"), &[]).and_then(|paths| {
            // The MLX server test runs mlx-lm's own mlx_lm.server (pinned, in a venv under the cache).
            let mlx_lm_venv = if engines.mlx() { Some(mlx_lm::venv()?) } else { None };
            peers::nextest(engines, &paths[0], mlx_lm_venv.as_deref(), &args)
        }),
        Command::VsLlamaBench(args) => peers::vs_llama_bench(&args),
        Command::VsLlamaPerplexity(args) => peers::vs_llama_perplexity(&args),
        Command::VsMlxLm(args) => mlx_lm::vs_mlx_lm(&args),
        Command::GpuBundle(args) => gpu::gpu_bundle(&args),
        Command::PrepareMlx => mlx::prepare().map(|config| {
            if let Some(config) = config {
                println!("{}", config.display());
            }
        }),
        Command::FetchCorpus => fetch::fetch_wikitext2().map(|path| println!("{}", path.display())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
