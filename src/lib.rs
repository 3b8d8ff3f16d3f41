//! The `tokbench` command line: turns a config and flags into a [`runner::Matrix`], runs it, writes the results.
//!
//! - [`cli`]: the clap types; [`options`]: `Config::default()` ← file ← flags, merged once; [`commands`]: one file
//!   per subcommand; [`registry`]: the one table of backends; [`runner`]: walks the matrix through the engine.
//!
//! The measurement itself lives in `tokbench-core`, the record in `tokbench-record`, backends in their own crates.
pub mod cli;
pub mod commands;
pub mod git;
pub mod ladder;
pub mod options;
pub mod registry;
pub mod runner;
