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
        GateCommand::Compare(args) => run_compare(&args),
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
