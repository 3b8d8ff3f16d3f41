//! Quality records: a model's perplexity and KL-divergence on a corpus, and where a benchmark sits on the run's
//! speed-against-quality Pareto frontiers. How they are computed is `tokbench_core::quality`.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusInfo {
    pub file_name: String,
    pub sha256: String,
    pub bytes: u64,
    pub tokens: usize,
}

/// One model's quality on one corpus: in `tokbench perplexity`'s JSON and beside each benchmark of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityResult {
    pub corpus: CorpusInfo,
    pub n_ctx: usize,
    pub n_chunks: usize,
    pub tokens_scored: usize,
    pub ppl: f64,
    /// llama-perplexity's `±`: the standard error of the mean NLL times PPL.
    pub ppl_std_error: f64,
    /// Tokens evaluated (chunks × n_ctx), the scoring pass's wall time, and their ratio.
    pub eval_tokens: usize,
    pub eval_seconds: f64,
    pub eval_tps: f64,
    /// Against the saved base, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kld: Option<KldVsBase>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KldVsBase {
    /// The base's model file, as recorded in the base file.
    pub base_model: String,
    pub top_k: usize,
    #[serde(flatten)]
    pub summary: KldSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KldSummary {
    pub mean_kld: f64,
    pub kld_std_error: f64,
    pub kld_median: f64,
    pub kld_p99: f64,
    pub kld_max: f64,
    /// % of scored tokens whose most likely token is the base's.
    pub same_top_pct: f64,
    /// Mean of (current − base) probability of the right token, in percentage points.
    pub mean_delta_p: f64,
    pub ppl_base: f64,
    pub ppl_current: f64,
    pub delta_ppl: f64,
    pub ppl_ratio: f64,
    pub tokens: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ParetoVerdict {
    Optimal,
    /// `by`: of the points that dominate this one, the best on x (ties: smallest id), so output is deterministic.
    Dominated {
        by: String,
    },
}

impl ParetoVerdict {
    pub fn is_optimal(&self) -> bool {
        matches!(self, ParetoVerdict::Optimal)
    }
}

/// A benchmark's place on the two frontiers tokbench reports, among the benchmarks of its run with the same prompt
/// set and thread count (so across models, quantizations and backends).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParetoMarks {
    /// Median decode tok/s (higher is better) against PPL (lower is better).
    pub decode_vs_ppl: ParetoVerdict,
    /// Median TTFT (lower is better) against PPL.
    pub ttft_vs_ppl: ParetoVerdict,
}
