//! The results record: every type tokbench persists, and nothing else. The leaf that every other part depends on
//! (the engine writes it, the gate and reports read it); it depends on no crate of ours.
//!
//! - [`results`]: one `tokbench run` — machine, benchmarks (settings, raw runs, summaries), failures — with
//!   [`results::SCHEMA_VERSION`], a reader that refuses other versions, and atomic writes.
//! - [`setup`]: what a benchmark ran: engine, model, settings, prompt.
//! - [`id`]: the typed benchmark id (`backend/model/quantization/prompt/tN` in JSON).
//! - [`metric`]: every metric's key, label, unit and better direction, and how values are shown.
//! - [`summary`]: the summary of a metric's runs, the shared percentile definition, typed warnings.
//! - [`machine`]: the machine a run came from and the class key baselines are keyed by.
//! - [`roofline`]: bytes a decoded token reads, and the bandwidth a benchmark achieved against the machine's.
//! - [`quality`], [`sweep`]: perplexity/KLD/Pareto records and server concurrency sweeps.
//! - [`worker`]: the versioned JSON-lines protocol between the A/B gate and `tokbench worker`.
//!
//! Every persisted type lives here, so "bump `SCHEMA_VERSION` on any change an older reader would misread" is
//! checked by reading this crate's diff.
pub mod id;
pub mod machine;
pub mod metric;
pub mod quality;
pub mod results;
pub mod roofline;
pub mod setup;
pub mod summary;
pub mod sweep;
pub mod worker;
