//! The record of a server's concurrency sweep (`--concurrency`): per level, latency percentiles, aggregate tokens/s,
//! errors and every request. How a level is measured and summarised is `tokbench_core::sweep`.
use serde::{Deserialize, Serialize};

use crate::id::BenchmarkId;
use crate::setup::PromptInfo;
use crate::summary::percentile;

/// One request of a concurrent batch, as the client saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Which stream sent it (0-based).
    pub stream: usize,
    /// When it was sent, seconds after the level started.
    pub sent_s: f64,
    pub ttft_s: f64,
    pub e2e_s: f64,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(values: &[f64]) -> Option<Percentiles> {
        (!values.is_empty()).then(|| Percentiles {
            p50: percentile(values, 50.0),
            p90: percentile(values, 90.0),
            p99: percentile(values, 99.0),
            mean: values.iter().sum::<f64>() / values.len() as f64,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConcurrencyLevel {
    pub streams: usize,
    /// Requests sent (completed + failed).
    pub requests: usize,
    pub completed: usize,
    pub errors: usize,
    /// The first few error messages, for the reader.
    pub error_examples: Vec<String>,
    pub wall_s: f64,
    /// None when no request completed.
    pub ttft_s: Option<Percentiles>,
    pub e2e_s: Option<Percentiles>,
    pub aggregate_tps: f64,
    pub requests_per_s: f64,
    /// Every completed request, for re-analysis.
    pub records: Vec<RequestRecord>,
}

/// One server × model × prompt, swept over concurrency levels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConcurrencySweep {
    /// The benchmark id of the single-stream benchmark of the same server, model and prompt.
    pub id: BenchmarkId,
    pub backend: String,
    pub model: String,
    pub prompt: PromptInfo,
    pub requests_per_stream: usize,
    pub levels: Vec<ConcurrencyLevel>,
}
