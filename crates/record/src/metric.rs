//! Every metric the record carries: its key in JSON and config, its label and unit, which direction is better, and
//! how a value is shown to people. What each speed metric *means* is defined where it is computed, in
//! `tokbench_core::metrics`.
use serde::{Deserialize, Serialize};

/// Every metric tokbench summarises and compares, with its unit and which direction is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    TtftS,
    PrefillTps,
    DecodeTps,
    E2eS,
    ItlP50S,
    ItlP90S,
    ItlP99S,
    /// What the model costs in RAM: peak RSS over its load and the run, minus RSS right before the load
    /// ([`crate::results::ram_delta_bytes`]). Gated.
    RamDeltaBytes,
    /// How far RSS rose during the generation itself, above its level when the run started (KV cache and
    /// activations growing; near 0 once buffers are warm). Shown, not gated by default.
    PeakRssDeltaBytes,
    /// GPU memory held by the process after the run ([`crate::results::RunSample::gpu_memory_bytes`]). Shown, not
    /// gated by default.
    GpuMemoryBytes,
    /// Joules per prompt token over the prefill window, where an energy counter exists (`tokbench_core::energy`).
    PrefillJoulesPerToken,
    /// Joules per decoded token (generated − 1) over the decode window. Tokens per joule is its inverse.
    DecodeJoulesPerToken,
    /// Quality, one value per model and corpus (not per run): perplexity on the `[quality]` corpus.
    Perplexity,
    /// Quality: mean KL-divergence from the `[quality]` base.
    MeanKld,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    TokensPerSecond,
    Bytes,
    /// A plain number (perplexity, KL-divergence).
    Number,
    JoulesPerToken,
}

impl Metric {
    /// The metrics every timed run has.
    pub const ALL: [Metric; 12] = [
        Metric::TtftS,
        Metric::PrefillTps,
        Metric::DecodeTps,
        Metric::E2eS,
        Metric::ItlP50S,
        Metric::ItlP90S,
        Metric::ItlP99S,
        Metric::RamDeltaBytes,
        Metric::PeakRssDeltaBytes,
        Metric::GpuMemoryBytes,
        Metric::PrefillJoulesPerToken,
        Metric::DecodeJoulesPerToken,
    ];

    /// Quality metrics: one deterministic value per benchmark (from its `quality` record), not a sample per run.
    pub const QUALITY: [Metric; 2] = [Metric::Perplexity, Metric::MeanKld];

    pub fn is_quality(self) -> bool {
        Metric::QUALITY.contains(&self)
    }

    pub fn key(self) -> &'static str {
        match self {
            Metric::TtftS => "ttft_s",
            Metric::PrefillTps => "prefill_tps",
            Metric::DecodeTps => "decode_tps",
            Metric::E2eS => "e2e_s",
            Metric::ItlP50S => "itl_p50_s",
            Metric::ItlP90S => "itl_p90_s",
            Metric::ItlP99S => "itl_p99_s",
            Metric::RamDeltaBytes => "ram_delta_bytes",
            Metric::PeakRssDeltaBytes => "peak_rss_delta_bytes",
            Metric::GpuMemoryBytes => "gpu_memory_bytes",
            Metric::PrefillJoulesPerToken => "prefill_j_per_token",
            Metric::DecodeJoulesPerToken => "decode_j_per_token",
            Metric::Perplexity => "perplexity",
            Metric::MeanKld => "mean_kld",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Metric::TtftS => "TTFT",
            Metric::PrefillTps => "prefill t/s",
            Metric::DecodeTps => "decode t/s",
            Metric::E2eS => "end-to-end",
            Metric::ItlP50S => "ITL p50",
            Metric::ItlP90S => "ITL p90",
            Metric::ItlP99S => "ITL p99",
            Metric::RamDeltaBytes => "RAM Δ",
            Metric::PeakRssDeltaBytes => "gen. RAM Δ",
            Metric::GpuMemoryBytes => "GPU memory",
            Metric::PrefillJoulesPerToken => "prefill J/token",
            Metric::DecodeJoulesPerToken => "decode J/token",
            Metric::Perplexity => "PPL",
            Metric::MeanKld => "mean KLD",
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Metric::PrefillTps | Metric::DecodeTps => Unit::TokensPerSecond,
            Metric::RamDeltaBytes | Metric::PeakRssDeltaBytes | Metric::GpuMemoryBytes => Unit::Bytes,
            Metric::Perplexity | Metric::MeanKld => Unit::Number,
            Metric::PrefillJoulesPerToken | Metric::DecodeJoulesPerToken => Unit::JoulesPerToken,
            _ => Unit::Seconds,
        }
    }

    pub fn better(self) -> Better {
        match self.unit() {
            Unit::TokensPerSecond => Better::Higher,
            _ => Better::Lower,
        }
    }
}

/// Formats a value of a metric for people: ms for latencies, t/s, and binary units for bytes.
pub fn format_value(unit: Unit, value: f64) -> String {
    match unit {
        Unit::Bytes => format_bytes(value),
        _ => {
            let (factor, suffix, decimals) = display_scale(unit, value);
            format!("{:.*}{suffix}", decimals, value * factor)
        }
    }
}

/// `78.41 ms [72.82–86.19]`: a value and its interval, in the value's scale.
pub fn format_with_interval(unit: Unit, value: f64, low: f64, high: f64) -> String {
    if unit == Unit::Bytes {
        return format!("{} [{}–{}]", format_bytes(value), format_bytes(low), format_bytes(high));
    }
    let (factor, suffix, d) = display_scale(unit, value);
    format!("{:.*}{suffix} [{:.*}–{:.*}]", d, value * factor, d, low * factor, d, high * factor)
}

fn display_scale(unit: Unit, value: f64) -> (f64, &'static str, usize) {
    match unit {
        Unit::Seconds if value.abs() < 1.0 => (1e3, " ms", 2),
        Unit::Seconds => (1.0, " s", 3),
        Unit::TokensPerSecond => (1.0, "", 2),
        Unit::Bytes => (1.0, " B", 0),
        Unit::Number => (1.0, "", 4),
        Unit::JoulesPerToken if value.abs() < 1.0 => (1e3, " mJ/token", 2),
        Unit::JoulesPerToken => (1.0, " J/token", 3),
    }
}

pub fn format_bytes(bytes: f64) -> String {
    const KIB: f64 = 1024.0;
    let abs = bytes.abs();
    if abs >= KIB * KIB * KIB {
        format!("{:.2} GiB", bytes / (KIB * KIB * KIB))
    } else if abs >= KIB * KIB {
        format!("{:.1} MiB", bytes / (KIB * KIB))
    } else if abs >= KIB {
        format!("{:.1} KiB", bytes / KIB)
    } else {
        format!("{bytes:.0} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_format_in_binary_units() {
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(1536.0), "1.5 KiB");
        assert_eq!(format_bytes(200.0 * 1024.0 * 1024.0), "200.0 MiB");
        assert_eq!(format_bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.00 GiB");
        assert_eq!(format_value(Unit::Seconds, 0.0123), "12.30 ms");
    }
}
