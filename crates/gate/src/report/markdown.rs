//! The markdown verdict: printed, appended to `$GITHUB_STEP_SUMMARY`, posted as the PR comment.
use std::fmt::Write;

use crate::compare::{BenchmarkComparison, GateReport, MetricComparison, Outcome};
use crate::report::{change_text, deciding, interval_text, median_text};
use crate::rule::Verdict;

/// Ids and model names are untrusted: GitHub renders some HTML in markdown, and `|` would break the table.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("&#124;"),
            '`' => out.push_str("&#96;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn row(out: &mut String, b: &BenchmarkComparison, m: &MetricComparison) {
    let (change, interval) = match deciding(m) {
        Some(j) => (change_text(m.metric, j), interval_text(m.metric, j)),
        None => ("—".into(), "—".into()),
    };
    let current = match &m.confirmation {
        Some(c) => format!("{} (re-run: {})", median_text(m.metric, &m.current), median_text(m.metric, &c.samples)),
        None => median_text(m.metric, &m.current),
    };
    let n = format!("{}→{}", m.baseline.len(), m.confirmation.as_ref().map_or(m.current.len(), |c| c.samples.len()));
    let _ = writeln!(
        out,
        "| {} | {} | {} {} | {} | {} | {} | {} | {} |",
        escape(&b.id.to_string()),
        m.label,
        m.verdict.emoji(),
        m.verdict.key(),
        median_text(m.metric, &m.baseline),
        current,
        change,
        interval,
        n
    );
}

const HEADER: &str = "| benchmark | metric | verdict | baseline median | current median | Δ | interval | runs |\n\
                      |---|---|---|---:|---:|---:|---|---:|\n";

pub fn render(report: &GateReport) -> String {
    let mut out = String::new();
    let head = match report.outcome {
        Outcome::Pass => "✅ pass",
        Outcome::Fail => "❌ fail: regression",
    };
    let _ = writeln!(out, "## tokbench regression gate: {head}\n");
    let counts: Vec<String> = Verdict::ALL
        .iter()
        .filter_map(|v| report.counts.get(v).map(|n| format!("{} {n} {}", v.emoji(), v.key())))
        .collect();
    let _ = writeln!(
        out,
        "{} · machine `{}` · baseline {} · α = {}{}\n",
        if counts.is_empty() { "nothing compared".into() } else { counts.join(" · ") },
        escape(&report.machine_class),
        escape(&report.baseline_source),
        report.alpha,
        if report.confirm { " · suspects re-run (--confirm)" } else { "" }
    );
    let rows: Vec<(&BenchmarkComparison, &MetricComparison)> =
        report.benchmarks.iter().flat_map(|b| b.metrics.iter().map(move |m| (b, m))).collect();
    let notable: Vec<_> = rows.iter().filter(|(_, m)| m.verdict != Verdict::Unchanged).collect();
    if notable.is_empty() {
        out.push_str("Every compared metric is unchanged.\n");
    } else {
        out.push_str(HEADER);
        for (b, m) in &notable {
            row(&mut out, b, m);
        }
    }
    let notes: Vec<String> = report
        .benchmarks
        .iter()
        .flat_map(|b| b.notes.iter().map(move |n| format!("- {}: {}", escape(&b.id.to_string()), escape(n))))
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(out, "\n{}", notes.join("\n"));
    }
    if !rows.is_empty() {
        let _ = write!(out, "\n<details><summary>All {} comparisons</summary>\n\n{HEADER}", rows.len());
        for (b, m) in &rows {
            row(&mut out, b, m);
        }
        out.push_str("\n</details>\n");
    }
    out
}
