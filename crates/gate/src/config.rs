//! The gate's settings: `gate.toml` at the repository root (a `[gate]` table), all optional.
//!
//! ```toml
//! [gate]
//! alpha = 0.02                      # significance level of the Mann–Whitney interval
//! metrics = ["ttft_s", "prefill_tps", "decode_tps", "ram_delta_bytes"]
//! [gate.threshold]                  # relative change that matters, per metric
//! ttft_s = 0.10
//! decode_tps = 0.05
//! [gate.min_abs]                    # absolute floor in the metric's unit, where the baseline can be ~0
//! ram_delta_bytes = 1048576
//! ```
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{ensure, Context, Result};
use serde::Deserialize;
use tokbench_record::metric::Metric;

use crate::rule::Threshold;

#[derive(Debug, Clone, PartialEq)]
pub struct GateConfig {
    pub alpha: f64,
    /// Gated metrics, in report order.
    pub metrics: Vec<Metric>,
    pub threshold: BTreeMap<Metric, f64>,
    pub min_abs: BTreeMap<Metric, f64>,
    /// A baseline benchmark absent from the results passes instead of failing (`[gate] allow_missing`).
    pub allow_missing: bool,
}

/// Two-sided level of the Mann–Whitney interval. 0.02 makes the one-sided false-alarm rate at most 1% for noise of
/// any shape (independent runs), and 5 vs 5 runs can reach it (smallest two-sided level 2/252 ≈ 0.008).
pub const DEFAULT_ALPHA: f64 = 0.02;
/// Used for a gated metric without its own threshold.
pub const FALLBACK_THRESHOLD: f64 = 0.05;

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            alpha: DEFAULT_ALPHA,
            metrics: vec![
                Metric::TtftS,
                Metric::PrefillTps,
                Metric::DecodeTps,
                Metric::RamDeltaBytes,
                Metric::Perplexity,
                Metric::MeanKld,
            ],
            threshold: BTreeMap::from([
                (Metric::TtftS, 0.10),
                (Metric::PrefillTps, 0.05),
                (Metric::DecodeTps, 0.05),
                (Metric::RamDeltaBytes, 0.05),
                // Deterministic on one machine, so any real move counts; 0.5% is the llama-perplexity agreement bound.
                (Metric::Perplexity, 0.005),
                (Metric::MeanKld, 0.10),
            ]),
            // A page or two of RSS moves between identical runs; 1 MiB is noise for an LLM, not a regression.
            // The KLD base's own KLD is 0, so a relative change alone cannot judge it.
            min_abs: BTreeMap::from([(Metric::RamDeltaBytes, 1024.0 * 1024.0), (Metric::MeanKld, 0.001)]),
            allow_missing: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    gate: Option<Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    alpha: Option<f64>,
    metrics: Option<Vec<Metric>>,
    allow_missing: Option<bool>,
    #[serde(default)]
    threshold: BTreeMap<Metric, f64>,
    #[serde(default)]
    min_abs: BTreeMap<Metric, f64>,
}

impl GateConfig {
    pub fn threshold(&self, metric: Metric) -> Threshold {
        Threshold {
            rel: self.threshold.get(&metric).copied().unwrap_or(FALLBACK_THRESHOLD),
            abs: self.min_abs.get(&metric).copied().unwrap_or(0.0),
        }
    }

    /// Defaults overridden by `path` when it exists.
    pub fn load_or_default(path: &Path) -> Result<GateConfig> {
        if !path.exists() {
            return Ok(GateConfig::default());
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("{} is not a valid gate config", path.display()))
    }

    pub fn parse(text: &str) -> Result<GateConfig> {
        let file: File = toml::from_str(text)?;
        let mut config = GateConfig::default();
        let Some(t) = file.gate else { return Ok(config) };
        if let Some(a) = t.alpha {
            ensure!(a > 0.0 && a < 0.5, "gate.alpha must be between 0 and 0.5, got {a}");
            config.alpha = a;
        }
        if let Some(a) = t.allow_missing {
            config.allow_missing = a;
        }
        if let Some(m) = t.metrics {
            ensure!(!m.is_empty(), "gate.metrics is empty: list at least one metric");
            config.metrics = m;
        }
        for (m, v) in t.threshold {
            ensure!(v.is_finite() && v >= 0.0, "gate.threshold.{} must be a non-negative fraction, got {v}", m.key());
            config.threshold.insert(m, v);
        }
        for (m, v) in t.min_abs {
            ensure!(v.is_finite() && v >= 0.0, "gate.min_abs.{} must be non-negative, got {v}", m.key());
            config.min_abs.insert(m, v);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let d = GateConfig::default();
        assert_eq!(d.threshold(Metric::TtftS).rel, 0.10);
        assert_eq!(d.threshold(Metric::DecodeTps).rel, 0.05);
        let c = GateConfig::parse("[gate]\nalpha = 0.01\n[gate.threshold]\ndecode_tps = 0.02\n").unwrap();
        assert_eq!((c.alpha, c.threshold(Metric::DecodeTps).rel, c.threshold(Metric::TtftS).rel), (0.01, 0.02, 0.10));
        assert_eq!(GateConfig::parse("").unwrap(), d);
    }

    #[test]
    fn the_committed_gate_toml_is_valid_and_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gate.toml");
        assert_eq!(GateConfig::load_or_default(&path).unwrap(), GateConfig::default());
    }

    #[test]
    fn unknown_keys_and_metrics_and_bad_values_are_errors() {
        assert!(GateConfig::parse("[gate]\nalpah = 0.1\n").is_err());
        assert!(GateConfig::parse("[gate.threshold]\nbogus_metric = 0.1\n").is_err());
        let e = GateConfig::parse("[gate.threshold]\nttft_s = -1\n").unwrap_err().to_string();
        assert!(e.contains("gate.threshold.ttft_s"), "{e}");
        assert!(GateConfig::parse("[gate]\nmetrics = []\n").is_err());
    }
}
