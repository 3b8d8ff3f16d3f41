//! The HTML report: one self-contained file (inline CSS, JS and SVG; nothing fetched), rendered by tera with
//! autoescaping on, because benchmark ids, model and prompt names come from files anyone can edit.
//!
//! Charts are drawn here as SVG coordinates (numbers only reach the template as numbers); the one script sorts the
//! table.
use serde::Serialize;
use tokbench_record::metric::{format_value, Metric, Unit};
use tokbench_record::results::BenchmarkResult;
use tokbench_record::summary::median;

use crate::baseline::BaselineSet;
use crate::compare::{samples, GateReport};
use crate::history::History;
use crate::report::{change_text, deciding, interval_text, median_text, outcome_text};
use crate::rule::Verdict;

const TEMPLATE: &str = include_str!("report.html.tera");

pub struct Inputs<'a> {
    pub report: &'a GateReport,
    pub current: &'a [BenchmarkResult],
    pub baselines: &'a BaselineSet,
    pub history: Option<&'a History>,
    pub generated_at: String,
}

#[derive(Serialize)]
struct Ctx {
    outcome: &'static str,
    generated_at: String,
    machine_class: String,
    results_source: String,
    baseline_source: String,
    commit: String,
    alpha: f64,
    confirm: bool,
    counts: Vec<Count>,
    /// What the baseline side is and which rule judged it.
    mode: String,
    paired: bool,
    report_notes: Vec<String>,
    broken: Vec<crate::compare::FailedComparison>,
    changes: Vec<crate::compare::Change>,
    /// Regressed and inconclusive rows first, open; the rest in a collapsed table.
    tables: Vec<Table>,
    notes: Vec<String>,
    scatter: Option<Scatter>,
    latency: Option<Latency>,
    trends: Vec<Trend>,
    trend_commits: Vec<String>,
}

#[derive(Serialize)]
struct Count {
    key: &'static str,
    n: usize,
}

#[derive(Serialize)]
struct Table {
    id: &'static str,
    heading: String,
    folded: bool,
    /// Shown instead of an empty table.
    empty: String,
    rows: Vec<Row>,
}

#[derive(Serialize)]
struct Row {
    id: String,
    model: String,
    prompt: String,
    metric: String,
    verdict: &'static str,
    rank: usize,
    baseline: String,
    baseline_v: String,
    current: String,
    current_v: String,
    delta: String,
    delta_v: String,
    interval: String,
    confirmation: String,
    runs: String,
    bar: Option<Bar>,
}

/// An error bar on a ±`span` relative axis 0..160 px: interval, estimate, zero and the threshold lines.
#[derive(Serialize)]
struct Bar {
    lo: f64,
    hi: f64,
    est: f64,
    zero: f64,
    thr_lo: f64,
    thr_hi: f64,
    span: String,
}

#[derive(Serialize)]
struct Tick {
    pos: f64,
    label: String,
}

#[derive(Serialize)]
struct Point {
    x: f64,
    y: f64,
    x_lo: f64,
    x_hi: f64,
    y_lo: f64,
    y_hi: f64,
    label: String,
    baseline: bool,
    /// On the decode-vs-PPL Pareto frontier of its run.
    optimal: bool,
}

#[derive(Serialize)]
struct Scatter {
    /// Perplexity on the x axis (the Pareto chart); false: TTFT stands in, because no result has a perplexity.
    pareto: bool,
    x_label: String,
    y_label: String,
    x_ticks: Vec<Tick>,
    y_ticks: Vec<Tick>,
    points: Vec<Point>,
}

#[derive(Serialize)]
struct Latency {
    id: String,
    current: String,
    baseline: String,
    x_ticks: Vec<Tick>,
    y_ticks: Vec<Tick>,
    note: String,
}

#[derive(Serialize)]
struct Trend {
    id: String,
    metric: String,
    line: String,
    dots: Vec<Dot>,
    first: String,
    last: String,
}

#[derive(Serialize)]
struct Dot {
    x: f64,
    y: f64,
    title: String,
}

// Plot areas (px), shared with the template's SVG viewBoxes.
const W: f64 = 560.0;
const H: f64 = 300.0;
const ML: f64 = 60.0;
const MR: f64 = 16.0;
const MT: f64 = 12.0;
const MB: f64 = 40.0;

fn lin(v: f64, lo: f64, hi: f64, p0: f64, p1: f64) -> f64 {
    if hi <= lo {
        return (p0 + p1) / 2.0;
    }
    let t = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
    ((p0 + t * (p1 - p0)) * 10.0).round() / 10.0
}

/// Axis range with a little padding, and ~5 round ticks.
fn axis(values: impl Iterator<Item = f64>, unit: Unit) -> (f64, f64, Vec<(f64, String)>) {
    let (mut lo, mut hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-12 * hi.abs().max(1.0) {
        let pad = hi.abs().max(1e-9) * 0.1;
        (lo, hi) = (lo - pad, hi + pad);
    }
    let pad = (hi - lo) * 0.08;
    // Times, rates and bytes are never negative: do not pad the axis below zero.
    (lo, hi) = (if lo >= 0.0 { (lo - pad).max(0.0) } else { lo - pad }, hi + pad);
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let mut ticks = Vec::new();
    let mut t = (lo / step).ceil() * step;
    while t <= hi + step * 1e-9 && ticks.len() < 12 {
        ticks.push((t, format_value(unit, t)));
        t += step;
    }
    (lo, hi, ticks)
}

fn row_of(b: &crate::compare::BenchmarkComparison, m: &crate::compare::MetricComparison) -> Row {
    let j = deciding(m);
    let num = |v: Option<f64>| v.filter(|v| v.is_finite()).map(|v| format!("{v}")).unwrap_or_default();
    let bar = j.and_then(|j| {
        let (lo, hi, est) = (j.rel_low?, j.rel_high?, j.rel_change?);
        if !(lo.is_finite() && hi.is_finite()) {
            return None;
        }
        let t = m.threshold.rel;
        let span = [lo.abs(), hi.abs(), 2.0 * t, 0.02].into_iter().fold(0.0, f64::max).min(1.0);
        let x = |v: f64| lin(v, -span, span, 4.0, 156.0);
        Some(Bar {
            lo: x(lo),
            hi: x(hi),
            est: x(est),
            zero: x(0.0),
            thr_lo: x(-t),
            thr_hi: x(t),
            span: format!("±{:.0}%", span * 100.0),
        })
    });
    let confirmation = match &m.confirmation {
        Some(c) => format!(
            "re-run {}: {}",
            change_text(m.metric, &c.judgement),
            if c.judgement.verdict == Verdict::Regressed { "confirmed" } else { "not confirmed" }
        ),
        None => String::new(),
    };
    Row {
        id: b.id.to_string(),
        model: b.model.clone(),
        prompt: b.prompt.clone(),
        metric: m.label.clone(),
        verdict: m.verdict.key(),
        rank: m.verdict as usize,
        baseline: median_text(m.metric, &m.baseline),
        baseline_v: num((!m.baseline.is_empty()).then(|| median(&m.baseline))),
        current: median_text(m.metric, &m.current),
        current_v: num((!m.current.is_empty()).then(|| median(&m.current))),
        delta: j.map(|j| change_text(m.metric, j)).unwrap_or_else(|| "—".into()),
        delta_v: num(j.and_then(|j| j.rel_change)),
        interval: j.map(|j| interval_text(m.metric, j)).unwrap_or_default(),
        confirmation,
        runs: format!("{}→{}", m.baseline.len(), m.current.len()),
        bar,
    }
}

/// The Pareto chart: decode tok/s (y) against perplexity (x, ± its standard error), current and baseline, the
/// current run's frontier marked. Without perplexities in the results, TTFT stands in on the x axis.
fn scatter(inputs: &Inputs) -> Option<Scatter> {
    struct P {
        x: [f64; 3],
        y: [f64; 3],
        label: String,
        baseline: bool,
        optimal: bool,
    }
    let pareto = inputs.current.iter().any(|b| b.quality.is_some());
    let span = |xs: &[f64]| -> Option<[f64; 3]> {
        (!xs.is_empty()).then(|| {
            let med = median(xs);
            let (lo, hi) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            [med, lo, hi]
        })
    };
    let x_of = |b: &BenchmarkResult| -> Option<[f64; 3]> {
        if pareto {
            b.quality.as_ref().map(|q| [q.ppl, q.ppl - q.ppl_std_error, q.ppl + q.ppl_std_error])
        } else {
            span(&samples(b, Metric::TtftS))
        }
    };
    let mut pts = Vec::new();
    let mut add = |b: &BenchmarkResult, baseline: bool| {
        if let (Some(x), Some(y)) = (x_of(b), span(&samples(b, Metric::DecodeTps))) {
            let verdict = b.pareto.as_ref().map(|p| &p.decode_vs_ppl);
            let optimal = !baseline && verdict.is_some_and(|v| v.is_optimal());
            let mark = match verdict {
                Some(tokbench_record::quality::ParetoVerdict::Dominated { by }) => format!(": dominated by {by}"),
                Some(_) => ": Pareto-optimal".to_string(),
                None => String::new(),
            };
            let label = format!("{}{}{}", b.id, if baseline { " (baseline)" } else { "" }, mark);
            pts.push(P { x, y, label, baseline, optimal });
        }
    };
    for b in inputs.current {
        add(b, false);
        if let Some(base) = inputs.baselines.by_id.get(&b.id) {
            add(&base.benchmark, true);
        }
    }
    if pts.is_empty() {
        return None;
    }
    // PPL is a plain number; the tokens/s formatter prints plain numbers.
    let x_unit = if pareto { Unit::TokensPerSecond } else { Unit::Seconds };
    let (x0, x1, xt) = axis(pts.iter().flat_map(|p| p.x), x_unit);
    let (y0, y1, yt) = axis(pts.iter().flat_map(|p| p.y), Unit::TokensPerSecond);
    let sx = |v| lin(v, x0, x1, ML, W - MR);
    let sy = |v| lin(v, y0, y1, H - MB, MT);
    Some(Scatter {
        pareto,
        x_label: if pareto { "perplexity (lower is better)" } else { "time to first token (lower is better)" }.into(),
        y_label: "decode tok/s (higher is better)".into(),
        x_ticks: xt.into_iter().map(|(v, label)| Tick { pos: sx(v), label }).collect(),
        y_ticks: yt.into_iter().map(|(v, label)| Tick { pos: sy(v), label }).collect(),
        points: pts
            .into_iter()
            .map(|p| Point {
                x: sx(p.x[0]),
                y: sy(p.y[0]),
                x_lo: sx(p.x[1]),
                x_hi: sx(p.x[2]),
                y_lo: sy(p.y[1]),
                y_hi: sy(p.y[2]),
                label: p.label,
                baseline: p.baseline,
                optimal: p.optimal,
            })
            .collect(),
    })
}

/// Inter-token gaps of one run: the median-decode run of the worst benchmark that has per-token times.
fn latency(inputs: &Inputs) -> Option<Latency> {
    let gaps = |b: &BenchmarkResult| -> Option<Vec<f64>> {
        let mut runs: Vec<_> = b.runs.iter().filter(|r| r.token_times_s.len() >= 2).collect();
        runs.sort_by(|a, b| a.decode_tps.unwrap_or(0.0).total_cmp(&b.decode_tps.unwrap_or(0.0)));
        let r = runs.get(runs.len() / 2)?;
        Some(r.token_times_s.windows(2).map(|w| (w[1] - w[0]) * 1e3).collect())
    };
    let (bench, cur) = inputs
        .report
        .benchmarks
        .iter()
        .filter_map(|c| inputs.current.iter().find(|b| b.id == c.id))
        .find_map(|b| gaps(b).map(|g| (b, g)))?;
    let base = inputs.baselines.by_id.get(&bench.id).and_then(|b| gaps(&b.benchmark)).unwrap_or_default();
    let n = cur.len().max(base.len()).max(2);
    let (y0, y1, yt) = axis(cur.iter().chain(&base).copied().chain([0.0]), Unit::TokensPerSecond);
    let sx = |i: usize| lin(i as f64, 0.0, (n - 1) as f64, ML, W - MR);
    let sy = |v: f64| lin(v, y0, y1, H - MB, MT);
    let line =
        |g: &[f64]| g.iter().enumerate().map(|(i, v)| format!("{},{}", sx(i), sy(*v))).collect::<Vec<_>>().join(" ");
    let step = (n / 8).max(1);
    Some(Latency {
        id: bench.id.to_string(),
        current: line(&cur),
        baseline: line(&base),
        x_ticks: (0..n).step_by(step).map(|i| Tick { pos: sx(i), label: format!("{}", i + 2) }).collect(),
        y_ticks: yt.into_iter().map(|(v, _)| Tick { pos: sy(v), label: format!("{v:.1} ms") }).collect(),
        note: format!("gap before token k (ms), median-decode run, {} tokens", cur.len() + 1),
    })
}

fn trends(inputs: &Inputs, metrics: &[Metric]) -> (Vec<Trend>, Vec<String>) {
    let Some(h) = inputs.history else { return (Vec::new(), Vec::new()) };
    let n = h.points.len().max(2);
    let commits: Vec<String> =
        h.points.iter().map(|p| format!("{} {} {}", &p.commit[..p.commit.len().min(10)], p.date, p.subject)).collect();
    let out = h
        .series(metrics)
        .into_iter()
        .filter(|s| !s.values.is_empty())
        .map(|s| {
            let (lo, hi) =
                s.values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, v)| (a.min(*v), b.max(*v)));
            let sx = |i: usize| lin(i as f64, 0.0, (n - 1) as f64, 6.0, 214.0);
            let sy = |v: f64| lin(v, lo, hi, 56.0, 8.0);
            let unit = s.metric.unit();
            Trend {
                id: s.id.to_string(),
                metric: s.metric.label().into(),
                line: s.values.iter().map(|(i, v)| format!("{},{}", sx(*i), sy(*v))).collect::<Vec<_>>().join(" "),
                dots: s
                    .values
                    .iter()
                    .map(|(i, v)| Dot {
                        x: sx(*i),
                        y: sy(*v),
                        title: format!("{}: {}", commits[*i], format_value(unit, *v)),
                    })
                    .collect(),
                first: format_value(unit, s.values[0].1),
                last: format_value(unit, s.values[s.values.len() - 1].1),
            }
        })
        .collect();
    (out, commits)
}

pub fn render(inputs: &Inputs, metrics: &[Metric]) -> anyhow::Result<String> {
    let r = inputs.report;
    let mut pairs: Vec<_> = r.benchmarks.iter().flat_map(|b| b.metrics.iter().map(move |m| (b, m))).collect();
    pairs.sort_by(|a, b| a.1.verdict.cmp(&b.1.verdict).then_with(|| a.0.id.cmp(&b.0.id)));
    let (lead, rest): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(_, m)| {
        matches!(m.verdict, Verdict::Regressed | Verdict::Inconclusive)
            || (m.verdict == Verdict::Missing && !r.allow_missing)
    });
    let tables = vec![
        Table {
            id: "lead",
            heading: "Regressed and inconclusive".into(),
            folded: false,
            empty: "No metric regressed or is inconclusive.".into(),
            rows: lead.iter().map(|(b, m)| row_of(b, m)).collect(),
        },
        Table {
            id: "results",
            heading: format!("{} more comparisons (improved, unchanged, new, missing)", rest.len()),
            folded: true,
            empty: "None.".into(),
            rows: rest.iter().map(|(b, m)| row_of(b, m)).collect(),
        },
    ];
    let notes = r.benchmarks.iter().flat_map(|b| b.notes.iter().map(move |n| format!("{}: {n}", b.id))).collect();
    let (trends, trend_commits) = trends(inputs, metrics);
    let ctx = Ctx {
        outcome: outcome_text(r.outcome),
        generated_at: inputs.generated_at.clone(),
        machine_class: r.machine_class.clone(),
        results_source: r.results_source.clone(),
        baseline_source: r.baseline_source.clone(),
        commit: r.current_commit.clone().unwrap_or_else(|| "unknown".into()),
        alpha: r.alpha,
        confirm: r.confirm,
        counts: Verdict::ALL.iter().filter_map(|v| r.counts.get(v).map(|&n| Count { key: v.key(), n })).collect(),
        mode: crate::report::markdown::mode_text(r, str::to_string),
        paired: matches!(r.mode, crate::compare::Mode::Interleaved { .. }),
        report_notes: r.notes.clone(),
        broken: r.broken().cloned().collect(),
        changes: r.changes.clone(),
        tables,
        notes,
        scatter: scatter(inputs),
        latency: latency(inputs),
        trends,
        trend_commits,
    };
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![".html"]);
    tera.add_raw_template("report.html", TEMPLATE)?;
    let context = tera::Context::from_serialize(&ctx)?;
    Ok(tera.render("report.html", &context)?)
}
