//! What serving costs: the same GGUF, prompt and thread count measured in-process and behind a server, metric by
//! metric. Overhead is "how much slower the server path is", positive = slower: for times `server / in-process − 1`,
//! for rates `in-process / server − 1` (so +5% means 5% more time per token either way). Medians of the timed runs.
use std::fmt::Write;

use crate::stats::median;
use tokbench_record::metric::{format_value, Metric};
use tokbench_record::results::{BenchmarkResult, RunResults};

#[derive(Debug, Clone, PartialEq)]
pub struct OverheadRow {
    pub metric: &'static str,
    pub in_process: f64,
    pub server: f64,
    /// Positive = the server path is slower.
    pub overhead: f64,
}

/// A server benchmark and its in-process twin.
pub struct Pair<'a> {
    pub in_process: &'a BenchmarkResult,
    pub server: &'a BenchmarkResult,
}

pub fn pairs(results: &RunResults) -> Vec<Pair<'_>> {
    let same = |a: &BenchmarkResult, b: &BenchmarkResult| {
        !a.model.sha256.is_empty()
            && a.model.sha256 == b.model.sha256
            && a.prompt == b.prompt
            && a.settings.threads == b.settings.threads
    };
    results
        .benchmarks
        .iter()
        .filter(|s| s.engine.server.is_some())
        .filter_map(|server| {
            let twin = results.benchmarks.iter().find(|i| i.engine.server.is_none() && same(i, server))?;
            Some(Pair { in_process: twin, server })
        })
        .collect()
}

const METRICS: [Metric; 5] = [Metric::TtftS, Metric::PrefillTps, Metric::DecodeTps, Metric::ItlP50S, Metric::E2eS];

pub fn rows(pair: &Pair<'_>) -> Vec<OverheadRow> {
    let med = |b: &BenchmarkResult, m: Metric| -> Option<f64> {
        let v: Vec<f64> = b.runs.iter().filter_map(|r| r.value(m)).collect();
        (!v.is_empty()).then(|| median(&v))
    };
    let mut rows: Vec<OverheadRow> = METRICS
        .iter()
        .filter_map(|&m| {
            let (i, s) = (med(pair.in_process, m)?, med(pair.server, m)?);
            let overhead =
                if m.better() == tokbench_record::metric::Better::Higher { i / s - 1.0 } else { s / i - 1.0 };
            Some(OverheadRow { metric: m.label(), in_process: i, server: s, overhead })
        })
        .collect();
    // The server's own decode rate, beside the client's: the gap between them is the HTTP + streaming path.
    let reported: Vec<f64> =
        pair.server.runs.iter().filter_map(|r| r.server.as_ref().and_then(|t| t.decode_tps())).collect();
    if let (false, Some(i)) = (reported.is_empty(), med(pair.in_process, Metric::DecodeTps)) {
        let s = median(&reported);
        rows.push(OverheadRow {
            metric: "decode t/s (server-reported)",
            in_process: i,
            server: s,
            overhead: i / s - 1.0,
        });
    }
    rows
}

pub fn table(results: &RunResults) -> String {
    let mut out = String::new();
    for pair in pairs(results) {
        let _ = writeln!(
            out,
            "\nserver overhead: {} vs {} in-process — {}, prompt {}, {} threads (medians; + = server slower)\n",
            pair.server.engine.backend,
            pair.in_process.engine.backend,
            pair.server.model.name,
            pair.server.prompt.name,
            pair.server.settings.threads
        );
        let _ = writeln!(out, "| metric | in-process | server | overhead |\n|---|---:|---:|---:|");
        for row in rows(&pair) {
            let unit = if row.metric.contains("t/s") {
                tokbench_record::metric::Unit::TokensPerSecond
            } else {
                unit_of(row.metric)
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:+.1}% |",
                row.metric,
                format_value(unit, row.in_process),
                format_value(unit, row.server),
                row.overhead * 100.0
            );
        }
    }
    out
}

fn unit_of(label: &str) -> tokbench_record::metric::Unit {
    METRICS.iter().find(|m| m.label() == label).map_or(tokbench_record::metric::Unit::Seconds, |m| m.unit())
}
