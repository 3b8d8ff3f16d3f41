//! How repeated measurements of one metric are summarised in the record, and the percentile definition every part of
//! tokbench shares (linear interpolation, numpy's default). The bootstrap that fills the interval is in
//! `tokbench_core::stats`.
use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::metric::Metric;

/// What a set of repeated measurements of one metric looks like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1 denominator); 0 when n == 1.
    pub std: f64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Coefficient of variation, std / |mean|; 0 when mean == 0.
    pub cv: f64,
    /// 95% percentile-bootstrap confidence interval of the mean.
    pub ci95_low: f64,
    pub ci95_high: f64,
    /// Samples whose |modified z-score| exceeds 3.5 (see `tokbench_core::stats::count_outliers`).
    pub outliers: usize,
}

/// Median (the 50th percentile, averaging the two middle values for an even count); NaN for an empty slice.
pub fn median(xs: &[f64]) -> f64 {
    percentile(xs, 50.0)
}

/// Percentile with linear interpolation between closest ranks (numpy's default, "linear"), p in [0, 100]. Input need
/// not be sorted. NaN for an empty slice.
///
/// # Panics
/// If `p` is outside [0, 100] (or NaN): that is a caller bug, not a property of the data.
pub fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile_sorted(&sorted, p)
}

pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    assert!((0.0..=100.0).contains(&p), "percentile must be in [0, 100], got {p}");
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    // Multiply before dividing so integer p gives an exact rank (90 * 9 / 100 = 8.1, not 0.9 * 9 = 8.100000000000001).
    let rank = p * (n - 1) as f64 / 100.0;
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let t = rank - lo as f64;
    let (a, b) = (sorted[lo], sorted[hi]);
    if t == 0.0 {
        return a;
    }
    // numpy's lerp: interpolate from the nearer end, which keeps the result exact at the ends and monotonic.
    if t < 0.5 {
        a + (b - a) * t
    } else {
        b - (b - a) * (1.0 - t)
    }
}

/// A warning about a benchmark's numbers that a reader should see: one per kind of problem, naming the metrics it
/// affects. In JSON it is the sentence a person reads (`Display`), and [`FromStr`] reads that sentence back, exactly:
/// the percentages are kept at the precision the sentence prints.
#[derive(Debug, Clone, PartialEq)]
pub enum Warning {
    /// Fewer than 3 timed runs: no meaningful spread or interval.
    TooFewSamples { n: usize },
    /// Metrics whose coefficient of variation is above the threshold: (metric, CV in %, one decimal).
    HighVariation { threshold_pct: f64, metrics: Vec<(Metric, f64)> },
    /// Metrics with outlying runs (modified z-score above 3.5): (metric, outliers, runs).
    Outliers { metrics: Vec<(Metric, usize, usize)> },
}

const HIGH_VARIATION: (&str, &str) =
    ("run-to-run variation above ", "; close other programs, pin the CPU governor, or raise --runs");
const OUTLIERS: (&str, &str) =
    ("outlying runs (modified z-score > 3.5): ", "; something else was probably using the machine");
const TOO_FEW: (&str, &str) =
    ("only ", ": too few for a meaningful spread or confidence interval; use --runs 3 or more");

impl Warning {
    /// `threshold` and each CV as fractions (0.1 = 10%); kept at the precision the sentence shows.
    pub fn high_variation(threshold: f64, metrics: &[(Metric, f64)]) -> Warning {
        let round = |x: f64, decimals: usize| format!("{:.*}", decimals, x * 100.0).parse::<f64>().unwrap_or(x);
        Warning::HighVariation {
            threshold_pct: round(threshold, 0),
            metrics: metrics.iter().map(|&(m, cv)| (m, round(cv, 1))).collect(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::TooFewSamples { n } => {
                write!(f, "{}{n} sample{}{}", TOO_FEW.0, if *n == 1 { "" } else { "s" }, TOO_FEW.1)
            }
            Warning::HighVariation { threshold_pct, metrics } => {
                let list: Vec<String> = metrics.iter().map(|(m, cv)| format!("{} {cv:.1}%", m.label())).collect();
                write!(f, "{}{threshold_pct:.0}% (CV): {}{}", HIGH_VARIATION.0, list.join(", "), HIGH_VARIATION.1)
            }
            Warning::Outliers { metrics } => {
                let list: Vec<String> = metrics.iter().map(|(m, k, n)| format!("{} {k}/{n}", m.label())).collect();
                write!(f, "{}{}{}", OUTLIERS.0, list.join(", "), OUTLIERS.1)
            }
        }
    }
}

impl FromStr for Warning {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Warning> {
        let inner = |(head, tail): (&str, &str)| s.strip_prefix(head).and_then(|r| r.strip_suffix(tail));
        // "TTFT 12.3%, decode t/s 11.0%" → [(TtftS, "12.3%"), (DecodeTps, "11.0%")]
        let per_metric = |list: &str| -> Result<Vec<(Metric, String)>> {
            list.split(", ")
                .map(|item| {
                    let (label, value) = item.rsplit_once(' ').with_context(|| format!("no value in {item:?}"))?;
                    let metric = Metric::ALL
                        .into_iter()
                        .find(|m| m.label() == label)
                        .with_context(|| format!("no metric is labelled {label:?}"))?;
                    Ok((metric, value.to_string()))
                })
                .collect()
        };
        let parsed = if let Some(rest) = inner(TOO_FEW) {
            let n = rest.trim_end_matches(" samples").trim_end_matches(" sample");
            Warning::TooFewSamples { n: n.parse()? }
        } else if let Some(rest) = inner(HIGH_VARIATION) {
            let (threshold, list) = rest.split_once("% (CV): ").context("no threshold")?;
            let metrics = per_metric(list)?
                .into_iter()
                .map(|(m, v)| Ok((m, v.strip_suffix('%').context("no %")?.parse()?)))
                .collect::<Result<_>>()?;
            Warning::HighVariation { threshold_pct: threshold.parse()?, metrics }
        } else if let Some(list) = inner(OUTLIERS) {
            let metrics = per_metric(list)?
                .into_iter()
                .map(|(m, v)| {
                    let (k, n) = v.split_once('/').context("no k/n")?;
                    Ok((m, k.parse()?, n.parse()?))
                })
                .collect::<Result<_>>()?;
            Warning::Outliers { metrics }
        } else {
            bail!("not a warning tokbench writes");
        };
        Ok(parsed)
    }
}

impl Serialize for Warning {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Warning {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Warning, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(|e: anyhow::Error| serde::de::Error::custom(format!("warning {s:?}: {e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_read_back_exactly_from_the_sentences_they_print() {
        let cases = [
            Warning::TooFewSamples { n: 1 },
            Warning::TooFewSamples { n: 2 },
            Warning::high_variation(0.1, &[(Metric::TtftS, 0.12345), (Metric::DecodeTps, 0.5)]),
            Warning::Outliers { metrics: vec![(Metric::ItlP90S, 1, 7), (Metric::ItlP99S, 2, 7)] },
        ];
        for w in cases {
            let text = w.to_string();
            assert_eq!(text.parse::<Warning>().unwrap(), w, "{text}");
            let json = serde_json::to_string(&w).unwrap();
            assert_eq!(serde_json::from_str::<Warning>(&json).unwrap(), w);
        }
        assert_eq!(
            Warning::high_variation(0.1, &[(Metric::TtftS, 0.12345), (Metric::PrefillTps, 0.153)]).to_string(),
            "run-to-run variation above 10% (CV): TTFT 12.3%, prefill t/s 15.3%; close other programs, pin the CPU \
             governor, or raise --runs"
        );
        assert_eq!(
            Warning::TooFewSamples { n: 1 }.to_string(),
            "only 1 sample: too few for a meaningful spread or confidence interval; use --runs 3 or more"
        );
        assert!("hello".parse::<Warning>().is_err());
    }
}
