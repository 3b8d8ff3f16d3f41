//! Current results against baselines, per benchmark × gated metric: the verdicts a report shows and the gate acts on.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokbench_record::id::BenchmarkId;
use tokbench_record::metric::{Better, Metric};
use tokbench_record::results::BenchmarkResult;

use crate::baseline::BaselineSet;
use crate::config::GateConfig;
use crate::rule::{judge, judge_deterministic, Judgement, Threshold, Verdict};

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
    pub counts: BTreeMap<Verdict, usize>,
    pub benchmarks: Vec<BenchmarkComparison>,
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

fn like_for_like_notes(base: &BenchmarkResult, cur: &BenchmarkResult) -> Vec<String> {
    let mut notes = Vec::new();
    if base.settings != cur.settings {
        notes.push("settings differ from the baseline's".into());
    }
    if base.prompt != cur.prompt {
        notes.push(format!(
            "prompt differs from the baseline's ({}→{} prompt tokens, {}→{} generated)",
            base.prompt.prompt_tokens, cur.prompt.prompt_tokens, base.prompt.gen_tokens, cur.prompt.gen_tokens
        ));
    }
    if base.model.sha256 != cur.model.sha256 {
        notes.push("model file differs from the baseline's (SHA-256)".into());
    }
    if base.engine.version != cur.engine.version || base.engine.build_info != cur.engine.build_info {
        notes.push(format!("engine changed: {} → {}", base.engine.version, cur.engine.version));
    }
    notes
}

fn metric_row(
    metric: Metric,
    config: &GateConfig,
    base: Option<&BenchmarkResult>,
    cur: Option<&BenchmarkResult>,
) -> Option<MetricComparison> {
    let b = base.map(|b| samples(b, metric)).unwrap_or_default();
    let c = cur.map(|c| samples(c, metric)).unwrap_or_default();
    let threshold = config.threshold(metric);
    let (verdict, judgement) = match (b.is_empty(), c.is_empty()) {
        (true, true) => return None, // not measured on either side (e.g. decode rate of a 1-token run)
        (true, false) => (Verdict::New, None),
        (false, true) => (Verdict::Missing, None),
        (false, false) if metric.is_quality() => {
            let j = judge_deterministic(b[0], c[0], metric.better(), threshold);
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
    let mut benchmarks = Vec::new();
    for cur in current {
        let base = baselines.by_id.get(&cur.id);
        let metrics: Vec<MetricComparison> = config
            .metrics
            .iter()
            .filter_map(|&m| metric_row(m, config, base.map(|b| &b.benchmark), Some(cur)))
            .collect();
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
                .filter_map(|&m| metric_row(m, config, Some(&base.benchmark), None))
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
                m.confirmation = Some(Confirmation { samples: s, judgement: j });
            }
            b.verdict = worst(b.metrics.iter().map(|m| m.verdict));
        }
        self.finish();
        absent
    }

    fn finish(&mut self) {
        self.counts.clear();
        for m in self.benchmarks.iter().flat_map(|b| &b.metrics) {
            *self.counts.entry(m.verdict).or_default() += 1;
        }
        let failed = self.counts.get(&Verdict::Regressed).copied().unwrap_or(0) > 0;
        self.outcome = if failed { Outcome::Fail } else { Outcome::Pass };
        // Worst first, then by id: the rows a reviewer needs are on top.
        self.benchmarks.sort_by(|a, b| a.verdict.cmp(&b.verdict).then_with(|| a.id.cmp(&b.id)));
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
