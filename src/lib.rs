//! The `tokbench` command line: turns a config and flags into a [`runner::Matrix`], runs it, writes the results.
//! The measurement itself lives in `tokbench-core` (engine, metrics, schema); backends in their own crates.
pub mod backends;
pub mod cli;
pub mod git;
pub mod ladder;
pub mod runner;
