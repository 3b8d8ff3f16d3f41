//! tokbench's light half: everything that needs no C/C++ to build.
//!
//! - [`schema`]: the results record every other part reads and writes (versioned, written atomically).
//! - [`metrics`]: what TTFT, prefill/decode tok/s, ITL and RAM *mean*: computed from a timestamped trace.
//! - [`engine`]: the measurement loop (warmup, timed runs, RAM probe) over any [`backend::Backend`].
//! - [`energy`]: the machine's energy counter (Linux RAPL), for joules per token.
//! - [`stats`]: summary statistics and bootstrap confidence intervals.
//! - [`bandwidth`]: the machine's memory read bandwidth (a probe) and published figures: the roofline's ceiling.
//! - [`memory`]: RSS and peak-RSS probes, one file per OS.
//! - [`gguf`]: a GGUF header reader, to name a model's quantization and to reject bad files with a clear error.
//! - [`digest`]: SHA-256 of model files.
//! - [`interrupt`]: SIGINT/SIGTERM: clean-ups (stop servers, save results), then exit 130/143.
//! - [`synth`]: synthetic llama models of any size (seeded random weights, a real tokenizer) for speed tables.
//! - [`sweep`]: a server under 1, 2, 4, 8 concurrent streams: latency percentiles, aggregate tokens/s, errors.
//! - [`quality`]: perplexity (as llama-perplexity computes it), KL-divergence against a base, Pareto frontier.
//! - [`machine`], [`prompts`], [`config`], [`export`]: machine fingerprint, prompt sets, config, table/CSV printers.
pub mod backend;
pub mod bandwidth;
pub mod config;
pub mod digest;
pub mod energy;
pub mod engine;
pub mod export;
pub mod gguf;
pub mod interrupt;
pub mod machine;
pub mod memory;
pub mod metrics;
pub mod mlx_dir;
pub mod prompts;
pub mod quality;
pub mod stats;
pub mod sweep;
pub mod synth;
