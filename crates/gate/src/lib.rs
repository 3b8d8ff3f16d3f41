//! tokbench's regression gate: fails a pull request on real regressions and stays quiet on noise.
//!
//! - [`baseline`]: the store, `baselines/<machine class>/<benchmark>.json`, and blessing.
//! - [`rule`]: the statistical decision for one metric (significance *and* effect size).
//! - [`compare`]: current results vs baselines, per benchmark × metric, and `--confirm` re-judging.
//! - [`ab`]: the pull-request mode: base and head builds run as `tokbench worker`s, alternating generation by
//!   generation in one job (judged in pairs by [`rule::judge_paired`]).
//! - [`report`]: markdown, JSON and HTML renderings of a comparison.
//! - [`history`]: how baselines moved over the commits that changed them; [`git`] reads them (feature `git`).
//! - [`config`]: `gate.toml`; [`cli`]: the commands with their exit codes (0 pass, 1 regression, 2 error).
pub mod ab;
pub mod baseline;
pub mod cli;
pub mod compare;
pub mod config;
#[cfg(feature = "git")]
pub mod git;
pub mod history;
pub mod report;
pub mod rule;
