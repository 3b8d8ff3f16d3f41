//! `cargo xtask bless | compare | history`: the regression gate (crates/gate), with its own exit codes:
//! 0 pass, 1 regression, 2 usage or input error.
use std::process::ExitCode;

use clap::Subcommand;
use tokbench_gate::cli::{run_bless, run_compare, run_history, BlessArgs, CompareArgs, HistoryArgs, EXIT_ERROR};

#[derive(Subcommand)]
pub enum GateCommand {
    /// Write the current results as this machine class's baselines (baselines/<class>/, one file per benchmark).
    Bless(BlessArgs),
    /// Compare results with baselines per benchmark × metric: exit 0 pass, 1 regression, 2 usage/input error.
    Compare(CompareArgs),
    /// How each benchmark × metric's baseline moved over the commits that changed baselines/.
    History(HistoryArgs),
}

pub fn run(command: GateCommand) -> ExitCode {
    let exit = match command {
        GateCommand::Bless(args) => run_bless(&args),
        GateCommand::Compare(args) => run_compare(&args),
        GateCommand::History(args) => run_history(&args),
    };
    if exit.code == EXIT_ERROR {
        eprintln!("{}", exit.message);
    } else {
        println!("{}", exit.message);
    }
    ExitCode::from(exit.code)
}
