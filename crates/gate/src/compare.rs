//! Current results against baselines, per benchmark × gated metric: the verdicts a report shows and the gate acts on.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokbench_record::id::BenchmarkId;
use tokbench_record::metric::{Better, Metric};
use tokbench_record::results::{BenchmarkResult, RunResults, RunSample};
use tokbench_record::setup::EngineInfo;

use crate::baseline::{Baseline, BaselineSet};
use crate::config::GateConfig;
use crate::rule::{judge, judge_deterministic, judge_paired, Judgement, Threshold, Verdict};

pub const REPORT_FORMAT: &str = "tokbench-gate-report";
pub const REPORT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
}

/// The JSON verdict `cargo xtask compare` writes; also what the markdown and HTML reports render.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateReport {
    pub format: String,
    pub version: u32,
    pub outcome: Outcome,
    pub machine_class: String,
    pub results_source: String,
    pub baseline_source: String,
    pub current_commit: Option<String>,
    pub alpha: f64,
    /// Whether suspects were re-run (`--confirm`).
    pub confirm: bool,
    /// Against committed baselines, or against the base build measured beside this one.
    #[serde(default)]
    pub mode: Mode,
    /// What differs between the baselines' engines and the current ones, part by part (never "X → X").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// About the comparison as a whole: e.g. why an A/B compare fell back to committed baselines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Benchmarks the current build could not finish (a failure fails the gate when the baseline side ran it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FailedComparison>,
    /// Whether baseline benchmarks missing from the results pass (`--allow-missing`); otherwise they fail the gate.
    #[serde(default)]
    pub allow_missing: bool,
    pub counts: BTreeMap<Verdict, usize>,
    pub benchmarks: Vec<BenchmarkComparison>,
}

/// How the baseline side of a comparison was measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mode {
    /// Committed baselines, measured earlier (maybe on another day): unpaired samples, the Mann–Whitney rule.
    #[default]
    Baselines,
    /// Base and head measured in one job, alternating generation by generation in random order: paired rounds,
    /// the signed-rank rule.
    Interleaved {
        base_ref: String,
        base_commit: String,
        rounds: usize,
        /// Seed of the per-round order, to replay it.
        seed: u64,
    },
}

/// One part of the engine that differs between the two sides, e.g. `system info` with `AVX512 = 1` only current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// `engine version`, `system info`, `server`.
    pub part: String,
    pub backend: String,
    pub baseline: String,
    pub current: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedComparison {
    pub id: BenchmarkId,
    /// `current` or `baseline`.
    pub side: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchmarkComparison {
    pub id: BenchmarkId,
    pub model: String,
    pub prompt: String,
    /// The worst metric verdict (regressed > inconclusive > improved > unchanged), or new / missing.
    pub verdict: Verdict,
    pub baseline_commit: Option<String>,
    pub baseline_measured_at: Option<String>,
    /// Differences that make the comparison less like-for-like (settings, model file, engine).
    pub notes: Vec<String>,
    pub metrics: Vec<MetricComparison>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricComparison {
    pub metric: Metric,
    pub label: String,
    pub higher_is_better: bool,
    pub threshold: Threshold,
    pub verdict: Verdict,
    pub baseline: Vec<f64>,
    pub current: Vec<f64>,
    pub judgement: Option<Judgement>,
    /// The `--confirm` re-run: fresh samples and their judgement against the same baseline.
    pub confirmation: Option<Confirmation>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Confirmation {
    pub samples: Vec<f64>,
    /// The base side's fresh samples when it re-ran too (the A/B mode's paired confirmation rounds); empty when the
    /// re-run was judged against the baseline's original samples (`--confirm`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baseline_samples: Vec<f64>,
    pub judgement: Judgement,
}

/// A metric's finite samples in run order; for a quality metric, its one value.
pub fn samples(b: &BenchmarkResult, metric: Metric) -> Vec<f64> {
    if metric.is_quality() {
        return b.quality_value(metric).filter(|v| v.is_finite()).into_iter().collect();
    }
    b.runs.iter().filter_map(|r| r.value(metric)).filter(|v| v.is_finite()).collect()
}

fn worst(verdicts: impl Iterator<Item = Verdict>) -> Verdict {
    // Verdict's order puts regressed first, then inconclusive, improved, unchanged.
    verdicts.min().unwrap_or(Verdict::Unchanged)
}

/// The parts of a `|`-separated system-info line (llama.cpp's `CPU : AVX2 = 1 | FMA = 1 | ...`) that only one
/// side has: `(only baseline, only current)`.
fn differing_parts(base: &str, cur: &str) -> (Vec<String>, Vec<String>) {
    let parts =
        |s: &str| -> Vec<String> { s.split('|').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect() };
    let (b, c) = (parts(base), parts(cur));
    let only = |x: &[String], y: &[String]| x.iter().filter(|p| !y.contains(p)).cloned().collect::<Vec<_>>();
    (only(&b, &c), only(&c, &b))
}

/// What differs between two engines, part by part; empty when they are the same.
pub fn engine_changes(base: &EngineInfo, cur: &EngineInfo) -> Vec<Change> {
    let mut out = Vec::new();
    let change = |part: &str, baseline: String, current: String| Change {
        part: part.into(),
        backend: cur.backend.clone(),
        baseline,
        current,
    };
    if base.version != cur.version {
        out.push(change("engine version", base.version.clone(), cur.version.clone()));
    }
    if base.build_info != cur.build_info {
        let (only_base, only_cur) = differing_parts(&base.build_info, &cur.build_info);
        let show = |v: Vec<String>| if v.is_empty() { "—".to_string() } else { v.join(" | ") };
        out.push(change("system info", show(only_base), show(only_cur)));
    }
    let server = |e: &EngineInfo| e.server.as_ref().map(|s| format!("{} {}", s.api, s.url));
    if server(base) != server(cur) {
        let text = |s: Option<String>| s.unwrap_or_else(|| "in-process".into());
        out.push(change("server", text(server(base)), text(server(cur))));
    }
    out
}

/// What makes a comparison meaningless rather than less like-for-like: other settings or another model file. Each
/// difference is named, `field: baseline → current`.
pub fn not_comparable(base: &BenchmarkResult, cur: &BenchmarkResult) -> Vec<String> {
    let mut out = Vec::new();
    if base.settings != cur.settings {
        let (b, c) = (
            serde_json::to_value(&base.settings).unwrap_or_default(),
            serde_json::to_value(&cur.settings).unwrap_or_default(),
        );
        let flat = |v: &serde_json::Value| -> Vec<(String, String)> {
            let mut fields = Vec::new();
            if let serde_json::Value::Object(map) = v {
                for (k, v) in map {
                    match v {
                        serde_json::Value::Object(inner) => {
                            fields.extend(inner.iter().map(|(k2, v2)| (format!("{k}.{k2}"), v2.to_string())))
                        }
                        v => fields.push((k.clone(), v.to_string())),
                    }
                }
            }
            fields
        };
        let (bf, cf) = (flat(&b), flat(&c));
        for (key, bv) in &bf {
            let cv = cf.iter().find(|(k, _)| k == key).map_or("—", |(_, v)| v.as_str());
            if cv != bv {
                out.push(format!("{key}: {bv} → {cv}"));
            }
        }
    }
    if !base.model.sha256.is_empty() && !cur.model.sha256.is_empty() && base.model.sha256 != cur.model.sha256 {
        out.push(format!(
            "model file SHA-256: {}… → {}…",
            &base.model.sha256[..base.model.sha256.len().min(12)],
            &cur.model.sha256[..cur.model.sha256.len().min(12)]
        ));
    }
    out
}

fn like_for_like_notes(base: &BenchmarkResult, cur: &BenchmarkResult) -> Vec<String> {
    let mut notes = Vec::new();
    if base.prompt != cur.prompt {
        notes.push(format!(
            "prompt differs from the baseline's ({}→{} prompt tokens, {}→{} generated)",
            base.prompt.prompt_tokens, cur.prompt.prompt_tokens, base.prompt.gen_tokens, cur.prompt.gen_tokens
        ));
    }
    if !engine_changes(&base.engine, &cur.engine).is_empty() {
        notes.push("engine differs from the baseline's (see \"What changed\")".into());
    }
    notes
}

/// Round-paired samples of `metric`: `(base, current)` of every round where both sides have a finite value.
pub fn paired_samples(base: &BenchmarkResult, cur: &BenchmarkResult, metric: Metric) -> (Vec<f64>, Vec<f64>) {
    paired_values(&base.runs, &cur.runs, metric)
}

/// Round i's `metric` of both sides, for the rounds where both have a finite value.
fn paired_values(base: &[RunSample], cur: &[RunSample], metric: Metric) -> (Vec<f64>, Vec<f64>) {
    base.iter()
        .zip(cur)
        .filter_map(|(b, c)| Some((b.value(metric)?, c.value(metric)?)))
        .filter(|(b, c)| b.is_finite() && c.is_finite())
        .unzip()
}

fn metric_row(
    metric: Metric,
    config: &GateConfig,
    base: Option<&BenchmarkResult>,
    cur: Option<&BenchmarkResult>,
    paired: bool,
) -> Option<MetricComparison> {
    let (b, c) = match (base, cur) {
        (Some(base), Some(cur)) if paired && !metric.is_quality() => paired_samples(base, cur, metric),
        _ => {
            (base.map(|b| samples(b, metric)).unwrap_or_default(), cur.map(|c| samples(c, metric)).unwrap_or_default())
        }
    };
    let threshold = config.threshold(metric);
    let (verdict, judgement) = match (b.is_empty(), c.is_empty()) {
        (true, true) => return None, // not measured on either side (e.g. decode rate of a 1-token run)
        (true, false) => (Verdict::New, None),
        (false, true) => (Verdict::Missing, None),
        (false, false) if metric.is_quality() => {
            let j = judge_deterministic(b[0], c[0], metric.better(), threshold);
            (j.verdict, Some(j))
        }
        (false, false) if paired => {
            let j = judge_paired(&b, &c, metric.better(), threshold, config.alpha);
            (j.verdict, Some(j))
        }
        (false, false) => {
            let j = judge(&b, &c, metric.better(), threshold, config.alpha);
            (j.verdict, Some(j))
        }
    };
    Some(MetricComparison {
        metric,
        label: metric.label().to_string(),
        higher_is_better: metric.better() == Better::Higher,
        threshold,
        verdict,
        baseline: b,
        current: c,
        judgement,
        confirmation: None,
    })
}

/// Compares every benchmark in `current` or `baselines`; `results_source` and `machine_class` are for the report.
pub fn compare(
    current: &[BenchmarkResult],
    baselines: &BaselineSet,
    config: &GateConfig,
    machine_class: &str,
    results_source: &str,
    current_commit: Option<String>,
) -> GateReport {
    compare_in(current, baselines, config, machine_class, results_source, current_commit, Mode::Baselines)
}

/// Compares the head and base runs of one interleaved A/B job: `runs[i]` of either side is round i, judged in pairs.
/// Failures of the head build are listed and fail the gate when the base ran the benchmark.
pub fn compare_interleaved(
    head: &RunResults,
    base: &RunResults,
    config: &GateConfig,
    results_source: &str,
    mode: Mode,
) -> GateReport {
    let source = match &mode {
        Mode::Interleaved { base_ref, base_commit, .. } => {
            format!("{base_ref} ({}) measured beside this build", &base_commit[..base_commit.len().min(12)])
        }
        Mode::Baselines => "base run".into(),
    };
    // Runs past `rounds` are a confirmation pass (`ab::run_both`): the first pass is judged, then re-judged on them.
    let rounds = match &mode {
        Mode::Interleaved { rounds, .. } => *rounds,
        Mode::Baselines => usize::MAX,
    };
    let first_pass = |r: &RunResults| -> Vec<BenchmarkResult> {
        r.benchmarks
            .iter()
            .map(|b| BenchmarkResult { runs: b.runs.iter().take(rounds).cloned().collect(), ..b.clone() })
            .collect()
    };
    let (head_first, base_first) = (first_pass(head), first_pass(base));
    let set = base_set(&RunResults { benchmarks: base_first.clone(), ..base.clone() }, &source);
    let commit = head.git.as_ref().map(|g| g.commit.clone());
    let mut report = compare_in(&head_first, &set, config, &head.machine.class_key, results_source, commit, mode);
    let confirmation: Vec<(BenchmarkId, &BenchmarkResult, &BenchmarkResult)> = head
        .benchmarks
        .iter()
        .filter(|h| h.runs.len() > rounds)
        .filter_map(|h| Some((h.id.clone(), base.benchmarks.iter().find(|b| b.id == h.id)?, h)))
        .collect();
    if !confirmation.is_empty() {
        report.apply_paired_confirmation(&confirmation, rounds, config);
    }
    for (side, run) in [("current", head), ("baseline", base)] {
        for f in &run.failures {
            report.failures.push(FailedComparison { id: f.id.clone(), side: side.into(), error: f.error.clone() });
        }
    }
    report.finish();
    report
}

/// Benchmarks of one interleaved pass with a gated timed metric that the paired rule judges regressed: what the A/B
/// mode measures again before it fails a pull request.
/// `pass` is [`crate::ab::PassSamples`]: each benchmark's timed samples, `[base, head]`, in round order.
pub fn paired_suspects(pass: &BTreeMap<BenchmarkId, [Vec<RunSample>; 2]>, config: &GateConfig) -> Vec<BenchmarkId> {
    pass.iter()
        .filter(|(_, [base, head])| {
            config.metrics.iter().filter(|m| !m.is_quality()).any(|&m| {
                let (b, c) = paired_values(base, head, m);
                !b.is_empty()
                    && judge_paired(&b, &c, m.better(), config.threshold(m), config.alpha).verdict == Verdict::Regressed
            })
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// A base run as a baseline set (what the reports chart the current benchmarks against).
pub fn base_set(base: &RunResults, source: &str) -> BaselineSet {
    BaselineSet {
        source: source.into(),
        by_id: base.benchmarks.iter().map(|b| (b.id.clone(), Baseline::from_results(base, b))).collect(),
    }
}

fn compare_in(
    current: &[BenchmarkResult],
    baselines: &BaselineSet,
    config: &GateConfig,
    machine_class: &str,
    results_source: &str,
    current_commit: Option<String>,
    mode: Mode,
) -> GateReport {
    let paired = matches!(mode, Mode::Interleaved { .. });
    let mut changes: Vec<Change> = Vec::new();
    let mut benchmarks = Vec::new();
    for cur in current {
        let base = baselines.by_id.get(&cur.id);
        let metrics: Vec<MetricComparison> = config
            .metrics
            .iter()
            .filter_map(|&m| metric_row(m, config, base.map(|b| &b.benchmark), Some(cur), paired))
            .collect();
        for change in base.map(|b| engine_changes(&b.benchmark.engine, &cur.engine)).unwrap_or_default() {
            if !changes.contains(&change) {
                changes.push(change);
            }
        }
        benchmarks.push(BenchmarkComparison {
            id: cur.id.clone(),
            model: cur.model.name.clone(),
            prompt: cur.prompt.name.clone(),
            verdict: if base.is_none() { Verdict::New } else { worst(metrics.iter().map(|m| m.verdict)) },
            baseline_commit: base.and_then(|b| b.provenance.commit.clone()),
            baseline_measured_at: base.map(|b| b.provenance.measured_at.clone()),
            notes: base.map(|b| like_for_like_notes(&b.benchmark, cur)).unwrap_or_default(),
            metrics,
        });
    }
    for (id, base) in &baselines.by_id {
        if current.iter().any(|c| &c.id == id) {
            continue;
        }
        benchmarks.push(BenchmarkComparison {
            id: id.clone(),
            model: base.benchmark.model.name.clone(),
            prompt: base.benchmark.prompt.name.clone(),
            verdict: Verdict::Missing,
            baseline_commit: base.provenance.commit.clone(),
            baseline_measured_at: Some(base.provenance.measured_at.clone()),
            notes: vec!["in the baseline but not in these results (not run, or renamed)".into()],
            metrics: config
                .metrics
                .iter()
                .filter_map(|&m| metric_row(m, config, Some(&base.benchmark), None, paired))
                .collect(),
        });
    }
    let mut report = GateReport {
        format: REPORT_FORMAT.into(),
        version: REPORT_VERSION,
        outcome: Outcome::Pass,
        machine_class: machine_class.into(),
        results_source: results_source.into(),
        baseline_source: baselines.source.clone(),
        current_commit,
        alpha: config.alpha,
        confirm: false,
        mode,
        changes,
        notes: Vec::new(),
        failures: Vec::new(),
        allow_missing: config.allow_missing,
        counts: BTreeMap::new(),
        benchmarks,
    };
    report.finish();
    report
}

impl GateReport {
    /// Ids of benchmarks with a regressed metric: what `--confirm` re-runs.
    pub fn suspects(&self) -> Vec<BenchmarkId> {
        self.benchmarks
            .iter()
            .filter(|b| b.metrics.iter().any(|m| m.verdict == Verdict::Regressed))
            .map(|b| b.id.clone())
            .collect()
    }

    /// Re-judges each regressed metric on fresh samples against the same baseline. It stays regressed only when the
    /// fresh samples are judged regressed too; otherwise it takes the fresh judgement's verdict. Metrics that were
    /// not regressed keep their verdict. Returns the suspects that `fresh` lacks.
    pub fn apply_confirmation(&mut self, fresh: &[BenchmarkResult], config: &GateConfig) -> Vec<BenchmarkId> {
        self.confirm = true;
        let mut absent = Vec::new();
        for b in &mut self.benchmarks {
            if !b.metrics.iter().any(|m| m.verdict == Verdict::Regressed) {
                continue;
            }
            let Some(f) = fresh.iter().find(|f| f.id == b.id) else {
                absent.push(b.id.clone());
                continue;
            };
            for m in &mut b.metrics {
                // A quality metric is deterministic: a re-run would only repeat it.
                if m.verdict != Verdict::Regressed || m.metric.is_quality() {
                    continue;
                }
                let s = samples(f, m.metric);
                let j = judge(&m.baseline, &s, m.metric.better(), m.threshold, config.alpha);
                m.verdict = j.verdict;
                m.confirmation = Some(Confirmation { samples: s, baseline_samples: Vec::new(), judgement: j });
            }
            b.verdict = worst(b.metrics.iter().map(|m| m.verdict));
        }
        self.finish();
        absent
    }

    /// [`GateReport::apply_confirmation`] for the A/B mode: each regressed timed metric of a confirmed benchmark is
    /// re-judged on the confirmation pass's fresh rounds (runs past `rounds` on both sides), paired. It stays
    /// regressed only when they are judged regressed too.
    fn apply_paired_confirmation(
        &mut self,
        confirmed: &[(BenchmarkId, &BenchmarkResult, &BenchmarkResult)],
        rounds: usize,
        config: &GateConfig,
    ) {
        self.confirm = true;
        for b in &mut self.benchmarks {
            let Some((_, base, head)) = confirmed.iter().find(|(id, _, _)| *id == b.id) else { continue };
            let fresh = |r: &BenchmarkResult| BenchmarkResult {
                runs: r.runs[rounds.min(r.runs.len())..].to_vec(),
                ..r.clone()
            };
            let (base, head) = (fresh(base), fresh(head));
            for m in &mut b.metrics {
                if m.verdict != Verdict::Regressed || m.metric.is_quality() {
                    continue;
                }
                let (x, y) = paired_samples(&base, &head, m.metric);
                if x.is_empty() {
                    continue;
                }
                let j = judge_paired(&x, &y, m.metric.better(), m.threshold, config.alpha);
                m.verdict = j.verdict;
                m.confirmation = Some(Confirmation { samples: y, baseline_samples: x, judgement: j });
            }
            b.verdict = worst(b.metrics.iter().map(|m| m.verdict));
        }
        self.finish();
    }

    fn finish(&mut self) {
        self.counts.clear();
        for m in self.benchmarks.iter().flat_map(|b| &b.metrics) {
            *self.counts.entry(m.verdict).or_default() += 1;
        }
        let failed = self.counts.get(&Verdict::Regressed).copied().unwrap_or(0) > 0
            || self.broken().next().is_some()
            || (!self.allow_missing && self.benchmarks.iter().any(|b| b.verdict == Verdict::Missing));
        self.outcome = if failed { Outcome::Fail } else { Outcome::Pass };
        // Worst first, then by id: the rows a reviewer needs are on top.
        self.benchmarks.sort_by(|a, b| a.verdict.cmp(&b.verdict).then_with(|| a.id.cmp(&b.id)));
    }

    /// Benchmarks the current build failed that the baseline side did not: broken by the change.
    pub fn broken(&self) -> impl Iterator<Item = &FailedComparison> {
        self.failures
            .iter()
            .filter(|f| f.side == "current" && !self.failures.iter().any(|o| o.side == "baseline" && o.id == f.id))
    }

    /// `(benchmark id, metric label)` of every regressed metric.
    pub fn regressions(&self) -> Vec<(BenchmarkId, String)> {
        self.benchmarks
            .iter()
            .flat_map(|b| b.metrics.iter().map(move |m| (b, m)))
            .filter(|(_, m)| m.verdict == Verdict::Regressed)
            .map(|(b, m)| (b.id.clone(), m.label.clone()))
            .collect()
    }
}
