//! Renderings of a [`GateReport`]: markdown (terminal, job summary, PR comment), JSON (machines) and HTML (people).
pub mod chart;
pub mod html;
pub mod json;
pub mod markdown;
pub mod run;

use tokbench_record::metric::{format_value, Metric};

use crate::compare::{MetricComparison, Outcome};
use crate::rule::Judgement;

/// The judgement that decided a metric's verdict: the confirmation's when there was one.
pub fn deciding(m: &MetricComparison) -> Option<&Judgement> {
    m.confirmation.as_ref().map(|c| &c.judgement).or(m.judgement.as_ref())
}

/// `+12.3%`, or the absolute shift when the baseline median is 0 and a ratio is undefined.
pub fn change_text(metric: Metric, j: &Judgement) -> String {
    match j.rel_change {
        Some(r) => format!("{:+.1}%", r * 100.0),
        None => signed(metric, j.abs_change),
    }
}

/// `[−14.0%, −10.1%]` at the interval's actual confidence, or `no interval (too few samples)`.
pub fn interval_text(metric: Metric, j: &Judgement) -> String {
    if j.confidence == 0.0 {
        return "no interval (too few samples)".into();
    }
    match (j.rel_low, j.rel_high) {
        (Some(lo), Some(hi)) => format!("[{:+.1}%, {:+.1}%]", lo * 100.0, hi * 100.0),
        // Relative change undefined (baseline median 0): the shift in the metric's unit.
        _ => format!("[{}, {}]", signed(metric, j.abs_low), signed(metric, j.abs_high)),
    }
}

fn signed(metric: Metric, v: f64) -> String {
    let s = format_value(metric.unit(), v.abs());
    if v < 0.0 {
        format!("-{s}")
    } else {
        format!("+{s}")
    }
}

pub fn median_text(metric: Metric, xs: &[f64]) -> String {
    if xs.is_empty() {
        return "—".into();
    }
    format_value(metric.unit(), tokbench_record::summary::median(xs))
}

pub fn outcome_text(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
    }
}
