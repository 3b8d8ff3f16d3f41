//! One results record, many views (as llama-bench prints one record as md, csv, json). JSON is the record itself
//! ([`tokbench_record::results::RunResults::write`]); the siblings here are the human and spreadsheet views.
pub mod csv;
pub mod markdown;
pub mod overhead;

use tokbench_record::metric::{format_value, format_with_interval, Metric};
use tokbench_record::results::BenchmarkResult;

/// `mean [lo–hi]` of a metric, with the 95% CI of the mean; `-` when the metric was not measured.
pub fn mean_with_ci(b: &BenchmarkResult, metric: Metric) -> String {
    match b.summary.get(&metric) {
        Some(s) if s.n > 1 => format_with_interval(metric.unit(), s.mean, s.ci95_low, s.ci95_high),
        Some(s) => format_value(metric.unit(), s.mean),
        None => "-".to_string(),
    }
}
