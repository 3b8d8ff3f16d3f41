//! The markdown verdict: printed, appended to `$GITHUB_STEP_SUMMARY`, posted as the PR comment.
use std::fmt::Write;

use crate::compare::{BenchmarkComparison, GateReport, MetricComparison, Mode, Outcome};
use crate::report::{change_text, deciding, interval_text, median_text};
use crate::rule::Verdict;

/// Ids, model names and engine strings are untrusted: GitHub renders some HTML in markdown, `|` would break the
/// table, `@name` would mention a user and `[text](url)` would make a link.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("&#124;"),
            '`' => out.push_str("&#96;"),
            '@' => out.push_str("&#64;"),
            '[' => out.push_str("&#91;"),
            ']' => out.push_str("&#93;"),
            '(' => out.push_str("&#40;"),
            ')' => out.push_str("&#41;"),
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
    // A re-run's medians beside the first pass's: both sides' when the base re-ran too (A/B), else the head's.
    let (baseline, current) = match &m.confirmation {
        Some(c) if !c.baseline_samples.is_empty() => (
            format!("{} (re-run: {})", median_text(m.metric, &m.baseline), median_text(m.metric, &c.baseline_samples)),
            format!("{} (re-run: {})", median_text(m.metric, &m.current), median_text(m.metric, &c.samples)),
        ),
        Some(c) => (
            median_text(m.metric, &m.baseline),
            format!("{} (re-run: {})", median_text(m.metric, &m.current), median_text(m.metric, &c.samples)),
        ),
        None => (median_text(m.metric, &m.baseline), median_text(m.metric, &m.current)),
    };
    let n = format!("{}→{}", m.baseline.len(), m.confirmation.as_ref().map_or(m.current.len(), |c| c.samples.len()));
    let _ = writeln!(
        out,
        "| {} | {} | {} {} | {} | {} | {} | {} | {} |",
        escape(&b.id.to_string()),
        m.label,
        m.verdict.emoji(),
        m.verdict.key(),
        baseline,
        current,
        change,
        interval,
        n
    );
}

const HEADER: &str = "| benchmark | metric | verdict | baseline median | current median | Δ | interval | runs |\n\
                      |---|---|---|---:|---:|---:|---|---:|\n";

/// The comparison's kind, in one line: what the baseline side is and which rule judged it. `quote` renders the
/// untrusted parts (a ref name, a path).
pub fn mode_text(report: &GateReport, quote: impl Fn(&str) -> String) -> String {
    match &report.mode {
        Mode::Baselines => format!("against committed baselines: {} (unpaired rule)", quote(&report.baseline_source)),
        Mode::Interleaved { base_ref, base_commit, rounds, seed } => format!(
            "A/B: base {} at {} measured beside this build in one job, {rounds} rounds alternating in random order \
             (seed {seed}), paired rule; a regression of the first pass counts only if {rounds} fresh rounds repeat it",
            quote(base_ref),
            &base_commit[..base_commit.len().min(12)]
        ),
    }
}

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
        "{} · machine `{}` · α = {}{}  \n{}\n",
        if counts.is_empty() { "nothing compared".into() } else { counts.join(" · ") },
        escape(&report.machine_class),
        report.alpha,
        if report.confirm { " · suspects re-run (--confirm)" } else { "" },
        mode_text(report, |s| format!("`{}`", escape(s))),
    );
    for note in &report.notes {
        let _ = writeln!(out, "> {}\n", escape(note));
    }
    let broken: Vec<_> = report.broken().collect();
    if !broken.is_empty() {
        out.push_str("**Failed in this build:**\n");
        for f in broken {
            let _ = writeln!(out, "- {}: {}", escape(&f.id.to_string()), escape(&f.error));
        }
        out.push('\n');
    }
    if !report.changes.is_empty() {
        out.push_str("**What changed** (engine parts that differ; the rest is identical)\n\n");
        out.push_str("| backend | part | baseline | current |\n|---|---|---|---|\n");
        for c in &report.changes {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                escape(&c.backend),
                escape(&c.part),
                escape(&c.baseline),
                escape(&c.current)
            );
        }
        out.push('\n');
    }
    let mut rows: Vec<(&BenchmarkComparison, &MetricComparison)> =
        report.benchmarks.iter().flat_map(|b| b.metrics.iter().map(move |m| (b, m))).collect();
    // Regressed, then inconclusive, then the rest; by id within each.
    rows.sort_by(|a, b| a.1.verdict.cmp(&b.1.verdict).then_with(|| a.0.id.cmp(&b.0.id)));
    let needs_eyes = |m: &MetricComparison| {
        matches!(m.verdict, Verdict::Regressed | Verdict::Inconclusive)
            || (m.verdict == Verdict::Missing && !report.allow_missing)
    };
    let (lead, rest): (Vec<_>, Vec<_>) = rows.iter().partition(|(_, m)| needs_eyes(m));
    if lead.is_empty() {
        out.push_str("No metric regressed or is inconclusive, and no benchmark is missing.\n");
    } else {
        out.push_str(HEADER);
        for (b, m) in &lead {
            row(&mut out, b, m);
        }
    }
    let notes: Vec<String> = report
        .benchmarks
        .iter()
        .flat_map(|b| b.notes.iter().map(move |n| format!("- {}: {}", escape(&b.id.to_string()), escape(n))))
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(
            out,
            "\n<details><summary>{} note(s) on like-for-like</summary>\n\n{}\n\n</details>",
            notes.len(),
            notes.join("\n")
        );
    }
    if !rest.is_empty() {
        let kinds: Vec<&str> = Verdict::ALL
            .iter()
            .filter(|v| !matches!(v, Verdict::Regressed | Verdict::Inconclusive))
            .filter(|v| rest.iter().any(|(_, m)| m.verdict == **v))
            .map(|v| v.key())
            .collect();
        let _ = write!(
            out,
            "\n<details><summary>{} more comparisons ({})</summary>\n\n{HEADER}",
            rest.len(),
            kinds.join(", ")
        );
        for (b, m) in &rest {
            row(&mut out, b, m);
        }
        out.push_str("\n</details>\n");
    }
    out
}
