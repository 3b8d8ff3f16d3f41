//! Three criterion [`Measurement`]s, so criterion's statistics, reports and change detection run on what matters
//! for LLM inference instead of the wall time of a whole generation.
//!
//! - [`Ttft`]: time to first token (a duration).
//! - [`DecodeTime`]: decode time **per token**, (last − first token time) / (generated − 1). A *time* rather than a
//!   rate, because criterion's change detection and "Performance has regressed" wording assume that smaller is
//!   better; the benches also declare `Throughput::Elements(1)` per iteration, so criterion prints the same number as
//!   tokens per second (`thrpt:` line) next to it.
//! - [`PeakRam`]: the results' RAM Δ (`tokbench_record::results::ram_delta_bytes`): peak resident memory over the
//!   model's load and the generation **minus resident memory right before the load**, in bytes: what the model costs
//!   in RAM (weights as paged in, KV cache, compute buffers). The delta over the
//!   generation's own start would be near zero once buffers are allocated and would hide the difference between
//!   quantizations, which is what this number is for.
//!
//! The benches feed values through `iter_custom` from real generations (see [`crate::bank`]); `start`/`end` exist
//! for criterion's `iter` and measure the same quantity around an arbitrary routine.
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;
use tokbench_core::memory::{current_rss_bytes, PeakWindow};

/// Time to first token. `iter` falls back to wall time of the routine.
pub struct Ttft;

/// Decode time per generated token. `iter` falls back to wall time of the routine.
pub struct DecodeTime;

/// Peak resident bytes above a reference (RSS before the model was loaded).
pub struct PeakRam {
    pub reference_bytes: u64,
}

/// TTFT and decode time are both durations in nanoseconds; they differ only in which value the benches feed in.
macro_rules! duration_measurement {
    ($t:ty) => {
        impl Measurement for $t {
            type Intermediate = Instant;
            type Value = Duration;
            fn start(&self) -> Instant {
                Instant::now()
            }
            fn end(&self, i: Instant) -> Duration {
                i.elapsed()
            }
            fn add(&self, v1: &Duration, v2: &Duration) -> Duration {
                *v1 + *v2
            }
            fn zero(&self) -> Duration {
                Duration::ZERO
            }
            fn to_f64(&self, value: &Duration) -> f64 {
                value.as_nanos() as f64
            }
            fn formatter(&self) -> &dyn ValueFormatter {
                &DurationFormatter { throughput_unit: "tok/s" }
            }
        }
    };
}
duration_measurement!(Ttft);
duration_measurement!(DecodeTime);

impl Measurement for PeakRam {
    type Intermediate = Option<PeakWindow>;
    type Value = u64;
    fn start(&self) -> Option<PeakWindow> {
        PeakWindow::start().ok()
    }
    fn end(&self, window: Option<PeakWindow>) -> u64 {
        let peak = window.and_then(|w| w.finish().ok()).map(|r| r.peak_rss_bytes);
        peak.or_else(|| current_rss_bytes().ok()).unwrap_or(0).saturating_sub(self.reference_bytes)
    }
    fn add(&self, v1: &u64, v2: &u64) -> u64 {
        v1 + v2
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &BytesFormatter
    }
}

/// Durations measured in nanoseconds, shown in ns/µs/ms/s; `Throughput::Elements(n)` per iteration shows as
/// `throughput_unit` (n per second).
pub struct DurationFormatter {
    pub throughput_unit: &'static str,
}

impl ValueFormatter for DurationFormatter {
    fn scale_values(&self, typical_ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = match typical_ns.abs() {
            t if t < 1e3 => (1.0, "ns"),
            t if t < 1e6 => (1e-3, "µs"),
            t if t < 1e9 => (1e-6, "ms"),
            _ => (1e-9, "s"),
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(&self, _typical: f64, throughput: &Throughput, values: &mut [f64]) -> &'static str {
        let (per_iteration, unit) = match throughput {
            Throughput::Elements(n) => (*n as f64, self.throughput_unit),
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => (*n as f64, "B/s"),
            Throughput::Bits(n) => (*n as f64, "bit/s"),
            Throughput::ElementsAndBytes { elements, .. } => (*elements as f64, self.throughput_unit),
        };
        values.iter_mut().for_each(|ns| *ns = per_iteration * 1e9 / *ns);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// Bytes shown in binary units (B, KiB, MiB, GiB), chosen by the typical value.
pub struct BytesFormatter;

impl ValueFormatter for BytesFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        const K: f64 = 1024.0;
        let (factor, unit) = match typical.abs() {
            t if t < K => (1.0, "B"),
            t if t < K * K => (1.0 / K, "KiB"),
            t if t < K * K * K => (1.0 / (K * K), "MiB"),
            _ => (1.0 / (K * K * K), "GiB"),
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(&self, typical: f64, _throughput: &Throughput, values: &mut [f64]) -> &'static str {
        // A rate of bytes of RAM means nothing; show the bytes themselves.
        self.scale_values(typical, values)
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "B"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_measurements_add_in_nanoseconds() {
        let a = Duration::from_millis(80);
        let b = Duration::from_micros(2500);
        for (add, zero, to_f64) in [
            (Ttft.add(&a, &b), Ttft.zero(), Ttft.to_f64(&a)),
            (DecodeTime.add(&a, &b), DecodeTime.zero(), DecodeTime.to_f64(&a)),
        ] {
            assert_eq!(add, Duration::from_micros(82_500));
            assert_eq!(zero, Duration::ZERO);
            assert_eq!(to_f64, 80_000_000.0);
        }
    }

    #[test]
    fn durations_scale_to_readable_units() {
        let f = DurationFormatter { throughput_unit: "tok/s" };
        let mut v = [80_000_000.0, 90_000_000.0];
        assert_eq!(f.scale_values(85e6, &mut v), "ms");
        assert_eq!(v, [80.0, 90.0]);
        let mut v = [1_500.0];
        assert_eq!(f.scale_values(1_500.0, &mut v), "µs");
        assert_eq!(v, [1.5]);
        let mut v = [2.5e9];
        assert_eq!(f.scale_values(2.5e9, &mut v), "s");
        assert_eq!(v, [2.5]);
        let mut v = [12.0];
        assert_eq!(f.scale_values(12.0, &mut v), "ns");
    }

    #[test]
    fn decode_time_per_token_reads_as_tokens_per_second() {
        // 10 ms per decoded token, one token per iteration → 100 tok/s.
        let f = DurationFormatter { throughput_unit: "tok/s" };
        let mut v = [10_000_000.0, 8_000_000.0];
        assert_eq!(f.scale_throughputs(10e6, &Throughput::Elements(1), &mut v), "tok/s");
        assert_eq!(v, [100.0, 125.0]);
    }

    #[test]
    fn ram_measurement_adds_bytes_and_formats_binary_units() {
        let m = PeakRam { reference_bytes: 0 };
        assert_eq!(m.add(&(3 << 20), &(1 << 20)), 4 << 20);
        assert_eq!(m.zero(), 0);
        assert_eq!(m.to_f64(&1536), 1536.0);
        let f = BytesFormatter;
        let cases = [
            (512.0, "B", 512.0),
            (1536.0, "KiB", 1.5),
            (150.0 * 1048576.0, "MiB", 150.0),
            (3.0 * 1073741824.0, "GiB", 3.0),
        ];
        for (bytes, unit, shown) in cases {
            let mut v = [bytes];
            assert_eq!(f.scale_values(bytes, &mut v), unit);
            assert!((v[0] - shown).abs() < 1e-9, "{bytes} → {} {unit}", v[0]);
        }
    }

    #[test]
    fn ram_measurement_around_a_routine_sees_an_allocation() {
        let m = PeakRam { reference_bytes: current_rss_bytes().unwrap() };
        let w = m.start();
        let mut buf = vec![0u8; 64 << 20];
        buf.iter_mut().step_by(4096).for_each(|b| *b = 1);
        std::hint::black_box(&buf);
        drop(buf);
        assert!(m.end(w) >= 60 << 20);
    }
}
