//! How baselines moved over time: one point per commit that changed a machine class's baselines, oldest first.
//! [`crate::git`] walks the repository; this module holds the data and renders the trend table.
use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};
use tokbench_record::id::BenchmarkId;
use tokbench_record::metric::{format_value, Metric};
use tokbench_record::summary::median;

use crate::baseline::BaselineSet;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    pub class: String,
    /// Oldest first.
    pub points: Vec<HistoryPoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryPoint {
    pub commit: String,
    /// RFC 3339, the commit's time.
    pub date: String,
    pub subject: String,
    /// Median of each benchmark × metric in the baselines as of this commit.
    pub medians: BTreeMap<BenchmarkId, BTreeMap<Metric, f64>>,
}

/// One benchmark × metric across the history: `(point index, median)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub id: BenchmarkId,
    pub metric: Metric,
    pub values: Vec<(usize, f64)>,
}

impl HistoryPoint {
    pub fn from_set(commit: String, date: String, subject: String, set: &BaselineSet, metrics: &[Metric]) -> Self {
        let mut medians = BTreeMap::new();
        for (id, b) in &set.by_id {
            let per: BTreeMap<Metric, f64> = metrics
                .iter()
                .filter_map(|&m| {
                    let xs = crate::compare::samples(&b.benchmark, m);
                    (!xs.is_empty()).then(|| (m, median(&xs)))
                })
                .collect();
            medians.insert(id.clone(), per);
        }
        HistoryPoint { commit, date, subject, medians }
    }
}

impl History {
    pub fn series(&self, metrics: &[Metric]) -> Vec<Series> {
        let mut by_key: BTreeMap<(BenchmarkId, usize), Series> = BTreeMap::new();
        for (i, p) in self.points.iter().enumerate() {
            for (id, per) in &p.medians {
                for (mi, &m) in metrics.iter().enumerate() {
                    if let Some(&v) = per.get(&m) {
                        by_key
                            .entry((id.clone(), mi))
                            .or_insert_with(|| Series { id: id.clone(), metric: m, values: Vec::new() })
                            .values
                            .push((i, v));
                    }
                }
            }
        }
        by_key.into_values().collect()
    }

    /// A markdown table: per benchmark × metric, the medians oldest → newest and the change first → last.
    pub fn render_text(&self, metrics: &[Metric]) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## Baseline history of `{}`: {} commits\n", self.class, self.points.len());
        for (i, p) in self.points.iter().enumerate() {
            let _ = writeln!(out, "{}. `{}` {} {}", i + 1, &p.commit[..p.commit.len().min(10)], p.date, p.subject);
        }
        out.push_str("\n| benchmark | metric | medians, oldest → newest | first → last |\n|---|---|---|---:|\n");
        for s in self.series(metrics) {
            let vals: Vec<String> =
                s.values.iter().map(|(i, v)| format!("{}:{}", i + 1, format_value(s.metric.unit(), *v))).collect();
            let change = match (s.values.first(), s.values.last()) {
                (Some((_, a)), Some((_, b))) if *a != 0.0 && s.values.len() > 1 => {
                    format!("{:+.1}%", (b / a - 1.0) * 100.0)
                }
                _ => "—".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                crate::report::markdown::escape(&s.id.to_string()),
                s.metric.label(),
                vals.join(" → "),
                change
            );
        }
        out
    }
}
