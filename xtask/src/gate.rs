//! `cargo xtask bless | compare | history`: the regression gate (crates/gate), with its own exit codes:
//! 0 pass, 1 regression, 2 usage or input error.
use std::process::ExitCode;

use clap::Subcommand;

use crate::Engines;
use tokbench_gate::cli::{
    run_bless, run_compare, run_history, run_migrate, BlessArgs, CompareArgs, HistoryArgs, MigrateArgs, EXIT_ERROR,
};

#[derive(Subcommand)]
pub enum GateCommand {
    /// Write the current results as this machine class's baselines (baselines/<class>/, one file per benchmark).
    Bless(BlessArgs),
    /// Compare results with baselines per benchmark × metric: exit 0 pass, 1 regression, 2 usage/input error.
    Compare(CompareArgs),
    /// How each benchmark × metric's baseline moved over the commits that changed baselines/.
    History(HistoryArgs),
    /// Rename baseline classes keyed before SIMD features were part of the machine class, by what each baseline
    /// recorded (llama.cpp's system-info line).
    MigrateBaselines(MigrateArgs),
}

pub fn run(command: GateCommand) -> ExitCode {
    let exit = match command {
        GateCommand::Bless(args) => run_bless(&args),
        GateCommand::Compare(mut args) if args.ab.is_some() => {
            // Both builds run the config's matrix: its models and ladder rungs must be on disk first.
            if let Err(e) = prepare_ab(&mut args) {
                eprintln!("error: {e:#}");
                return ExitCode::from(EXIT_ERROR);
            }
            run_compare(&args)
        }
        GateCommand::Compare(mut args) => {
            if let Err(e) = prepare_confirm(&mut args) {
                eprintln!("error: {e:#}");
                return ExitCode::from(EXIT_ERROR);
            }
            run_compare(&args)
        }
        GateCommand::History(args) => run_history(&args),
        GateCommand::MigrateBaselines(args) => run_migrate(&args),
    };
    if exit.code == EXIT_ERROR {
        eprintln!("{}", exit.message);
    } else {
        println!("{}", exit.message);
    }
    ExitCode::from(exit.code)
}

/// `compare --confirm` without a `--confirm-runner`: the suspects are re-run by a tokbench built with the engines of
/// the run it confirms (MLX included when the results have MLX benchmarks, as `cargo xtask run --mlx` built it), not
/// by a plain `cargo run` that would lack them.
fn prepare_confirm(args: &mut CompareArgs) -> anyhow::Result<()> {
    if !args.confirm || args.confirm_runner.is_some() {
        return Ok(());
    }
    let current = tokbench_gate::cli::load_results(&args.results)?;
    let engines = Engines { mlx: current.benchmarks.iter().any(|b| b.engine.backend.starts_with("mlx")) };
    let mut build = crate::mlx::cargo(engines, &["build", "--release", "-p", "tokbench"])?;
    anyhow::ensure!(crate::mlx::status_keeping_lock(&mut build)?.success(), "building tokbench for --confirm failed");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| crate::mlx::workspace_root().join("target"), Into::into);
    args.confirm_runner = Some(target.join("release").join(format!("tokbench{}", std::env::consts::EXE_SUFFIX)));
    Ok(())
}

/// `compare --ab`: the config's models fetched and its ladder rungs made (by the head build), and on macOS the MLX
/// backend built into both builds, as `cargo xtask run` builds it.
fn prepare_ab(args: &mut CompareArgs) -> anyhow::Result<()> {
    crate::fetch::fetch(&args.config, &[])?;
    let config = args.config.display().to_string();
    let quantize = ["quantize", "--needed", "--config", &config].map(String::from);
    crate::peers::cargo_tokbench(Engines::LLAMA_CPP_ONLY, &quantize)?;
    if cfg!(target_os = "macos") && !args.cargo_args.iter().any(|a| a.contains("mlx")) {
        args.cargo_args.extend(["--features", "tokbench/mlx"].map(String::from));
    }
    Ok(())
}
