//! `cargo xtask <command>`: project automation in Rust (the xtask pattern), depending only on light crates.
mod fetch;
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
    /// The main job: fetch the config's models, then `tokbench run` (release build) with any extra arguments.
    Run {
        #[arg(long, default_value = "tokbench.toml")]
        config: PathBuf,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The test suite: fetch the config's models, then `cargo nextest run --workspace` (extra arguments passed on).
    Test {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Side by side with llama.cpp's own llama-bench (built from the llama-cpp-python sdist): prefill at -p 512 and
    /// decode at -n 128 -d 512, alternating runs, medians and ratios.
    VsLlamaBench(peers::VsArgs),
}

fn main() -> ExitCode {
    let result: Result<()> = match Cli::parse().command {
        Command::Fetch { config, model } => fetch::fetch(&config, &model).map(|_| ()),
        Command::Run { config, args } => fetch::fetch(&config, &[]).and_then(|_| peers::cargo_tokbench(&args)),
        Command::Test { args } => {
            fetch::fetch(std::path::Path::new("tokbench.toml"), &[]).and_then(|paths| peers::nextest(&paths[0], &args))
        }
        Command::VsLlamaBench(args) => peers::vs_llama_bench(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
