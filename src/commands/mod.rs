//! One file per `tokbench` subcommand: what it does with the options `cli.rs` parsed.
pub mod backends;
pub mod export_mlx;
pub mod perplexity;
pub mod quantize;
pub mod run;
pub mod synth;
pub mod worker;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command};

/// Parses the command line and runs the command.
pub fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run::run(&args).map(|_| ()),
        Command::Quantize(args) => quantize::quantize(&args),
        Command::Perplexity(args) => perplexity::perplexity(&args).map(|_| ()),
        Command::Synth(args) => synth::synth(&args),
        Command::ExportMlx(args) => export_mlx::export_mlx(&args),
        Command::Machine => {
            let mut machine = tokbench_core::machine::detect();
            machine.bandwidth = Some(tokbench_core::bandwidth::for_this_boot(&machine, true));
            machine.gpu_bandwidth = run::gpu_bandwidth();
            println!("{}", serde_json::to_string_pretty(&machine)?);
            Ok(())
        }
        Command::Backends => backends::list(),
        Command::Worker(args) => worker::worker(&args),
        Command::Report(args) => {
            let out = tokbench_gate::report::run::write_report(&args.results, args.output.as_deref())?;
            println!("report: {}", out.display());
            Ok(())
        }
    }
}
