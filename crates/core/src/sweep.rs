//! Concurrency sweep of a server: at each level `c`, `c` client streams run in a closed loop (each sends its next
//! request as soon as the previous one has finished) until every stream has sent `requests_per_stream` requests.
//!
//! Per level:
//! - **TTFT** p50/p90/p99: request sent → first non-empty content delta, over the level's completed requests;
//! - **end-to-end latency** p50/p90/p99: request sent → last delta;
//! - **aggregate tokens/s**: generated tokens of all completed requests / the level's wall time (first request sent
//!   → last request finished), so the ramp-down at the end, when fewer than `c` streams are still busy, counts;
//! - **requests/s**: completed requests / wall time; **errors**: failed requests, with the first few messages.
//!
//! Percentiles are linear-interpolated (as everywhere in tokbench); with few requests p99 is close to the maximum.
use anyhow::{ensure, Result};

use tokbench_record::sweep::{ConcurrencyLevel, ConcurrencySweep, Percentiles, RequestRecord};

/// What a backend hands back from [`crate::backend::LoadedModel::generate_concurrently`].
#[derive(Debug, Clone, PartialEq)]
pub struct ConcurrentBatch {
    pub streams: usize,
    /// First request sent → last request finished.
    pub wall_s: f64,
    pub completed: Vec<RequestRecord>,
    /// One message per failed request.
    pub errors: Vec<String>,
}

/// One level of a sweep, summarised from the batch a backend ran.
pub fn summarize_level(batch: ConcurrentBatch) -> Result<ConcurrencyLevel> {
    ensure!(batch.wall_s > 0.0 || batch.completed.is_empty(), "a concurrent batch took no time");
    let ttft: Vec<f64> = batch.completed.iter().map(|r| r.ttft_s).collect();
    let e2e: Vec<f64> = batch.completed.iter().map(|r| r.e2e_s).collect();
    let tokens: usize = batch.completed.iter().map(|r| r.generated_tokens).sum();
    let per_s = |x: f64| if batch.wall_s > 0.0 { x / batch.wall_s } else { 0.0 };
    Ok(ConcurrencyLevel {
        streams: batch.streams,
        requests: batch.completed.len() + batch.errors.len(),
        completed: batch.completed.len(),
        errors: batch.errors.len(),
        error_examples: batch.errors.iter().take(3).cloned().collect(),
        wall_s: batch.wall_s,
        ttft_s: Percentiles::of(&ttft),
        e2e_s: Percentiles::of(&e2e),
        aggregate_tps: per_s(tokens as f64),
        requests_per_s: per_s(batch.completed.len() as f64),
        records: batch.completed,
    })
}

/// The sweep as a markdown table, one row per level.
pub fn table(sweeps: &[ConcurrencySweep]) -> String {
    let mut out = String::new();
    for s in sweeps {
        out += &format!(
            "\nconcurrency sweep {} ({} requests per stream, {} generated tokens each)\n\n",
            s.id, s.requests_per_stream, s.prompt.gen_tokens
        );
        out += "| streams | requests | errors | TTFT p50 | TTFT p90 | TTFT p99 | e2e p50 | e2e p90 | e2e p99 | tok/s (all) | req/s |\n";
        out += "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
        for l in &s.levels {
            let ms = |p: Option<Percentiles>, f: fn(&Percentiles) -> f64| {
                p.map_or_else(|| "–".to_string(), |p| format!("{:.1} ms", f(&p) * 1e3))
            };
            let secs = |p: Option<Percentiles>, f: fn(&Percentiles) -> f64| {
                p.map_or_else(|| "–".to_string(), |p| format!("{:.2} s", f(&p)))
            };
            out += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.2} |\n",
                l.streams,
                l.requests,
                l.errors,
                ms(l.ttft_s, |p| p.p50),
                ms(l.ttft_s, |p| p.p90),
                ms(l.ttft_s, |p| p.p99),
                secs(l.e2e_s, |p| p.p50),
                secs(l.e2e_s, |p| p.p90),
                secs(l.e2e_s, |p| p.p99),
                l.aggregate_tps,
                l.requests_per_s
            );
        }
        for l in s.levels.iter().filter(|l| !l.error_examples.is_empty()) {
            out += &format!("\n{} streams: {} failed, e.g. {}\n", l.streams, l.errors, l.error_examples[0]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokbench_record::id::BenchmarkId;
    use tokbench_record::setup::PromptInfo;

    fn rec(stream: usize, ttft: f64, e2e: f64, n: usize) -> RequestRecord {
        RequestRecord { stream, sent_s: 0.0, ttft_s: ttft, e2e_s: e2e, prompt_tokens: 10, generated_tokens: n }
    }

    #[test]
    fn a_level_summarises_completed_requests_and_counts_failures() {
        let batch = ConcurrentBatch {
            streams: 2,
            wall_s: 2.0,
            completed: vec![rec(0, 0.1, 1.0, 10), rec(1, 0.3, 1.0, 10), rec(0, 0.2, 1.0, 10)],
            errors: vec!["HTTP 500".into()],
        };
        let l = summarize_level(batch).unwrap();
        assert_eq!((l.requests, l.completed, l.errors), (4, 3, 1));
        let t = l.ttft_s.unwrap();
        assert!((t.p50 - 0.2).abs() < 1e-12 && (t.p90 - 0.28).abs() < 1e-12, "{t:?}");
        assert!((l.aggregate_tps - 15.0).abs() < 1e-12);
        assert!((l.requests_per_s - 1.5).abs() < 1e-12);
        assert_eq!(l.error_examples, vec!["HTTP 500".to_string()]);
    }

    #[test]
    fn a_level_where_everything_failed_has_no_percentiles() {
        let l = summarize_level(ConcurrentBatch {
            streams: 1,
            wall_s: 0.5,
            completed: vec![],
            errors: vec!["refused".into(), "refused".into()],
        })
        .unwrap();
        assert_eq!((l.ttft_s, l.aggregate_tps, l.errors), (None, 0.0, 2));
        assert!(table(&[ConcurrencySweep {
            id: BenchmarkId::new("server", "m", "Q4_1", "p", 1),
            backend: "b".into(),
            model: "m".into(),
            prompt: PromptInfo {
                name: "p".into(),
                prompt_tokens: 1,
                gen_tokens: 1,
                text_sha256: String::new(),
                depth: 0
            },
            requests_per_stream: 2,
            levels: vec![l]
        }])
        .contains("| 1 | 2 | 2 | – |"));
    }
}
