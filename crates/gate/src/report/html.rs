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
use crate::report::chart::{self, lin, AxisSpec, DataPoint, DataSeries, Plot, Scale, Spread, XyChart};
use crate::report::{change_text, deciding, interval_text, median_text, outcome_text};
use crate::rule::Verdict;

const TEMPLATE: &str = include_str!("report.html.tera");

/// The parts both reports share: tera's loader for them, so `tokbench report` renders with the same files.
pub(crate) fn tera_with_shared(name: &str, template: &str) -> anyhow::Result<tera::Tera> {
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![".html", ".html.tera"]);
    tera.add_raw_templates([
        ("report.css", include_str!("report.css")),
        ("sort.js", include_str!("sort.js")),
        ("charts.html.tera", include_str!("charts.html.tera")),
        (name, template),
    ])?;
    Ok(tera)
}

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
    /// Drawn by charts.html.tera's `xy`, as in `tokbench report`.
    scatter: Option<XyChart>,
    latency: Option<XyChart>,
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
fn scatter(inputs: &Inputs) -> Option<XyChart> {
    let pareto = inputs.current.iter().any(|b| b.quality.is_some());
    let x_of = |b: &BenchmarkResult| -> Option<Spread> {
        if pareto {
            b.quality.as_ref().map(|q| Spread { mid: q.ppl, lo: q.ppl - q.ppl_std_error, hi: q.ppl + q.ppl_std_error })
        } else {
            Spread::of(&samples(b, Metric::TtftS))
        }
    };
    let mut pts = Vec::new();
    let mut add = |b: &BenchmarkResult, baseline: bool| {
        if let (Some(x), Some(y)) = (x_of(b), Spread::of(&samples(b, Metric::DecodeTps))) {
            let verdict = b.pareto.as_ref().map(|p| &p.decode_vs_ppl);
            let optimal = !baseline && verdict.is_some_and(|v| v.is_optimal());
            let mark = match verdict {
                Some(tokbench_record::quality::ParetoVerdict::Dominated { by }) => format!(": dominated by {by}"),
                Some(_) => ": Pareto-optimal".to_string(),
                None => String::new(),
            };
            let label = format!("{}{}{}", b.id, if baseline { " (baseline)" } else { "" }, mark);
            let class = if baseline {
                "base"
            } else if optimal {
                "opt"
            } else {
                "cur"
            };
            pts.push(DataPoint { x, y, label, class: class.into(), hollow: baseline });
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
    // PPL is a plain number.
    let x = if pareto {
        AxisSpec { label: "perplexity (lower is better)".into(), unit: Unit::Number, scale: Scale::Linear }
    } else {
        AxisSpec { label: "time to first token (lower is better)".into(), unit: Unit::Seconds, scale: Scale::Linear }
    };
    let caption = if pareto {
        "Decode tok/s (median, min–max whiskers) against perplexity (± its standard error). Green: on the current \
         run's Pareto frontier (nothing is both faster and better); blue: dominated; hollow: baseline. Hover a point \
         for its benchmark and what dominates it."
    } else {
        "No result has a perplexity (no [quality] in the config), so time to first token stands in on the x axis. \
         Medians with min–max whiskers; filled: current, hollow: baseline. Hover a point for its benchmark."
    };
    let title = if pareto { "Speed against quality: the Pareto chart" } else { "Speed against a quality axis" };
    let plot = Plot {
        id: "pareto".into(),
        title: title.into(),
        caption: caption.into(),
        x,
        y: AxisSpec {
            label: "decode tok/s (higher is better)".into(),
            unit: Unit::TokensPerSecond,
            scale: Scale::Linear,
        },
        series: vec![DataSeries::points("benchmarks".into(), chart::colour(0), pts)],
        ceilings: Vec::new(),
    };
    Some(plot.layout())
}

/// Inter-token gaps of one run: the median-decode run of the worst benchmark that has per-token times.
fn latency(inputs: &Inputs) -> Option<XyChart> {
    let gaps = |b: &BenchmarkResult| -> Option<Vec<f64>> {
        let mut runs: Vec<_> = b.runs.iter().filter(|r| r.token_times_s.len() >= 2).collect();
        runs.sort_by(|a, b| a.decode_tps.unwrap_or(0.0).total_cmp(&b.decode_tps.unwrap_or(0.0)));
        let r = runs.get(runs.len() / 2)?;
        Some(r.token_times_s.windows(2).map(|w| w[1] - w[0]).collect())
    };
    let (bench, cur) = inputs
        .report
        .benchmarks
        .iter()
        .filter_map(|c| inputs.current.iter().find(|b| b.id == c.id))
        .find_map(|b| gaps(b).map(|g| (b, g)))?;
    let base = inputs.baselines.by_id.get(&bench.id).and_then(|b| gaps(&b.benchmark)).unwrap_or_default();
    // Token k (from 2): the gap before it.
    let line = |label: &str, colour: &str, g: &[f64], dashed: bool| DataSeries {
        label: label.into(),
        colour: colour.into(),
        joined: true,
        dashed,
        markers: false,
        points: g
            .iter()
            .enumerate()
            .map(|(i, v)| DataPoint::new(Spread::exact((i + 2) as f64), Spread::exact(*v), String::new()))
            .collect(),
    };
    let mut series = vec![line("current", chart::colour(0), &cur, false)];
    if !base.is_empty() {
        series.insert(0, line("baseline", "#818b98", &base, true));
    }
    let plot = Plot {
        id: "latency".into(),
        title: "Per-token latency of one run".into(),
        caption: format!(
            "{}: gap before token k, median-decode run, {} tokens. Blue: current, dashed grey: baseline.",
            bench.id,
            cur.len() + 1
        ),
        x: AxisSpec { label: "generated token".into(), unit: Unit::Number, scale: Scale::Linear },
        y: AxisSpec { label: "gap before the token".into(), unit: Unit::Seconds, scale: Scale::Linear },
        series,
        ceilings: Vec::new(),
    };
    let mut chart = plot.layout();
    chart.legend = false;
    Some(chart)
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
            let (lo, hi) = chart::extent(s.values.iter().map(|(_, v)| *v));
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
    let tera = tera_with_shared("report.html", TEMPLATE)?;
    let context = tera::Context::from_serialize(&ctx)?;
    Ok(tera.render("report.html", &context)?)
}
