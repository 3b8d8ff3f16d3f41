//! What every speed metric means. This file is the one place that defines them.
//!
//! A backend records a [`GenerationTrace`] through a [`TraceRecorder`] whose clock the *engine* starts, right
//! before it calls `generate` with the prompt text in hand. The backend only marks events:
//!
//! ```text
//!  t=0            tokenized        prefill_end      token[0]   token[1] ...   token[n-1]
//!  |-- tokenize --|---- prefill ----|-- sample --|-- decode+sample --| ... |
//!  |<------------------------ TTFT ------------->|
//!  |<---------------------------------- end-to-end latency ------------------------>|
//! ```
//!
//! - **TTFT** = `token[0]`: tokenization + prefill + sampling of the first generated token.
//! - **prefill tok/s** = prompt tokens / (`prefill_end` − `tokenized`); `prefill_end` is taken after the engine has
//!   synchronised (logits are ready), so asynchronous GPU work is inside it.
//! - **decode tok/s** = (generated − 1) / (`token[n-1]` − `token[0]`): the steady-state rate, free of prefill.
//! - **end-to-end latency** = `token[n-1]`.
//! - **inter-token latency (ITL)** p50/p90/p99 over `token[i] − token[i-1]`, i ≥ 1 (linear-interpolated percentiles).
//!
//! RAM is measured by the engine around the whole call (see [`crate::memory`]); load time and RSS around the
//! model load are measured once per loaded model.
//!
//! - **energy**, where the machine has a counter ([`crate::energy`]): prefill joules from t=0 to `token[0]` (the TTFT
//!   window), decode joules from `token[0]` to the end of the run (the decode-rate window); **J/token** = prefill J /
//!   prompt tokens and decode J / (generated − 1). The counter is read right after `token[0]`'s timestamp, so the
//!   read (NVML's takes about a millisecond) is in neither TTFT nor prefill; it delays token[1] once, a cost spread
//!   over the n − 1 decoded tokens.
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};

use crate::energy::{EnergyMeter, Reading};
use crate::stats::percentile;
use tokbench_record::results::{EnergySample, EngineRunReport, ServerTimings};

/// The events of one generation, as offsets from the moment the engine started the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationTrace {
    /// Tokens fed to prefill, including any BOS token the model adds.
    pub prompt_tokens: usize,
    pub tokenized: Duration,
    pub prefill_end: Duration,
    /// When each generated token had been sampled.
    pub token_times: Vec<Duration>,
    pub tokens: Vec<u32>,
    /// What a server said about its own timing of this request (HTTP backends only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerTimings>,
    /// What an in-process engine said about the run itself (MLX).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineRunReport>,
    /// Joules over the prefill and decode windows, where the machine has an energy counter (see [`crate::energy`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<EnergySample>,
}

/// Token id recorded when the engine does not say which token it generated (an HTTP server streaming text).
pub const UNKNOWN_TOKEN: u32 = u32::MAX;

/// Hands a backend the clock. The backend calls `tokenized`, `prefill_done`, then `token` once per generated token;
/// anything out of order is an error in [`TraceRecorder::finish`], so a backend cannot silently mis-time a run.
#[derive(Debug)]
pub struct TraceRecorder {
    start: Instant,
    prompt_tokens: Option<usize>,
    tokenized: Option<Duration>,
    prefill_end: Option<Duration>,
    token_times: Vec<Duration>,
    tokens: Vec<u32>,
    out_of_order: Option<&'static str>,
    injected_delay: Option<Duration>,
    server: Option<ServerTimings>,
    engine: Option<EngineRunReport>,
    /// The energy counter's readings at the start and, once marked live, at the first token.
    energy: Option<(&'static EnergyMeter, Reading, Option<Reading>)>,
}

/// Test-only: a real slowdown of every generated token by this many microseconds, for proving that the regression
/// gate catches one. Never set it for a measurement you mean: the results record it (`injected_token_delay_us`),
/// tokbench warns, and the gate's report says so.
pub const INJECT_TOKEN_DELAY_ENV: &str = "TOKBENCH_INJECT_TOKEN_DELAY_US";

/// [`INJECT_TOKEN_DELAY_ENV`], read once per process.
pub fn injected_token_delay() -> Option<Duration> {
    static DELAY: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    *DELAY.get_or_init(|| {
        let delay = std::env::var(INJECT_TOKEN_DELAY_ENV).ok()?.parse::<u64>().ok().map(Duration::from_micros)?;
        eprintln!(
            "warning: {INJECT_TOKEN_DELAY_ENV} = {} µs: every token is delayed on purpose (a test hook); the results \
             record it",
            delay.as_micros()
        );
        Some(delay)
    })
}

impl TraceRecorder {
    /// Starts the clock. `capacity` is the number of tokens expected, so the per-token path never reallocates.
    pub fn start(capacity: usize) -> Self {
        TraceRecorder {
            start: Instant::now(),
            prompt_tokens: None,
            tokenized: None,
            prefill_end: None,
            token_times: Vec::with_capacity(capacity),
            tokens: Vec::with_capacity(capacity),
            out_of_order: None,
            injected_delay: injected_token_delay(),
            server: None,
            engine: None,
            energy: crate::energy::meter().ok().and_then(|m| Some((m, m.read()?, None))),
        }
    }

    /// When the clock started: a backend that timestamps events as they happen (an HTTP client reading a stream on
    /// another thread) records them afterwards with the `*_at` methods.
    pub fn started_at(&self) -> Instant {
        self.start
    }

    pub fn tokenized(&mut self, prompt_tokens: usize) {
        self.tokenized_at(prompt_tokens, Instant::now());
    }

    pub fn tokenized_at(&mut self, prompt_tokens: usize, at: Instant) {
        if self.tokenized.is_some() {
            self.out_of_order.get_or_insert("tokenized() called twice");
        }
        self.tokenized = Some(at.saturating_duration_since(self.start));
        self.prompt_tokens = Some(prompt_tokens);
    }

    /// Call after the prefill's results are ready (after synchronising with any asynchronous device).
    pub fn prefill_done(&mut self) {
        self.prefill_done_at(Instant::now());
    }

    pub fn prefill_done_at(&mut self, at: Instant) {
        if self.tokenized.is_none() {
            self.out_of_order.get_or_insert("prefill_done() before tokenized()");
        }
        if self.prefill_end.is_some() {
            self.out_of_order.get_or_insert("prefill_done() called twice");
        }
        self.prefill_end = Some(at.saturating_duration_since(self.start));
    }

    /// Call when a generated token has been sampled.
    #[inline]
    pub fn token(&mut self, id: u32) {
        if let Some(delay) = self.injected_delay {
            std::thread::sleep(delay);
        }
        self.token_at(id, Instant::now());
        // The first token splits the energy windows. After its timestamp, so the read is not inside TTFT. Only live
        // marks read it: a time recorded afterwards (`token_at`) has no matching counter value.
        if self.token_times.len() == 1 {
            if let Some((meter, _, at_first_token)) = &mut self.energy {
                *at_first_token = meter.read();
            }
        }
    }

    /// A token that arrived at `at` (e.g. a streamed delta's arrival); `id` may be [`UNKNOWN_TOKEN`].
    #[inline]
    pub fn token_at(&mut self, id: u32, at: Instant) {
        if self.prefill_end.is_none() {
            self.out_of_order.get_or_insert("token() before prefill_done()");
        }
        self.token_times.push(at.saturating_duration_since(self.start));
        self.tokens.push(id);
    }

    /// A server's own account of the request's prompt and generation times, kept beside the client's clock.
    pub fn server_timings(&mut self, timings: ServerTimings) {
        self.server = Some(timings);
    }

    /// An in-process engine's own account of the run (its allocator's peak, host time during decode).
    pub fn engine_report(&mut self, report: EngineRunReport) {
        self.engine = Some(report);
    }

    pub fn finish(self) -> Result<GenerationTrace> {
        let energy = match &self.energy {
            Some((meter, start, Some(prefill))) => meter.read().map(|end| EnergySample {
                prefill_j: meter.joules(start, prefill),
                decode_j: meter.joules(prefill, &end),
            }),
            _ => None,
        };
        if let Some(what) = self.out_of_order {
            bail!("backend recorded its trace out of order: {what} (a bug in the backend)");
        }
        let (Some(prompt_tokens), Some(tokenized), Some(prefill_end)) =
            (self.prompt_tokens, self.tokenized, self.prefill_end)
        else {
            bail!("backend finished without recording tokenization and prefill (a bug in the backend)");
        };
        Ok(GenerationTrace {
            prompt_tokens,
            tokenized,
            prefill_end,
            token_times: self.token_times,
            tokens: self.tokens,
            server: self.server,
            engine: self.engine,
            energy,
        })
    }
}

/// The speed metrics of one run, derived from its trace. Seconds and tokens per second throughout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeedMetrics {
    pub ttft_s: f64,
    pub tokenize_s: f64,
    pub prefill_s: f64,
    pub prefill_tps: f64,
    /// `None` when fewer than two tokens were generated (no interval to measure).
    pub decode_tps: Option<f64>,
    pub e2e_s: f64,
    pub itl_p50_s: Option<f64>,
    pub itl_p90_s: Option<f64>,
    pub itl_p99_s: Option<f64>,
}

impl SpeedMetrics {
    pub fn from_trace(trace: &GenerationTrace) -> Result<SpeedMetrics> {
        let times = &trace.token_times;
        ensure!(!times.is_empty(), "the run generated no token, so it has no time to first token");
        ensure!(trace.prompt_tokens > 0, "the run had an empty prompt");
        ensure!(
            trace.tokenized <= trace.prefill_end && trace.prefill_end <= times[0],
            "trace timestamps are not in order (tokenized {:?}, prefill end {:?}, first token {:?})",
            trace.tokenized,
            trace.prefill_end,
            times[0]
        );
        ensure!(times.windows(2).all(|w| w[0] <= w[1]), "token timestamps go backwards");

        let secs = |d: Duration| d.as_secs_f64();
        let prefill_s = secs(trace.prefill_end - trace.tokenized);
        let first = secs(times[0]);
        let last = secs(*times.last().unwrap());
        let itl: Vec<f64> = times.windows(2).map(|w| secs(w[1] - w[0])).collect();
        let pct = |p: f64| (!itl.is_empty()).then(|| percentile(&itl, p));
        Ok(SpeedMetrics {
            ttft_s: first,
            tokenize_s: secs(trace.tokenized),
            prefill_s,
            prefill_tps: trace.prompt_tokens as f64 / prefill_s,
            decode_tps: (times.len() >= 2 && last > first).then(|| (times.len() - 1) as f64 / (last - first)),
            e2e_s: last,
            itl_p50_s: pct(50.0),
            itl_p90_s: pct(90.0),
            itl_p99_s: pct(99.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn trace(prompt_tokens: usize, tokenized: u64, prefill_end: u64, tokens_ms: &[u64]) -> GenerationTrace {
        GenerationTrace {
            prompt_tokens,
            tokenized: ms(tokenized),
            prefill_end: ms(prefill_end),
            token_times: tokens_ms.iter().map(|&t| ms(t)).collect(),
            tokens: (0..tokens_ms.len() as u32).collect(),
            server: None,
            engine: None,
            energy: None,
        }
    }

    #[test]
    fn metrics_follow_their_definitions() {
        // 100 prompt tokens, tokenized at 2 ms, prefill done at 202 ms (200 ms prefill → 500 t/s),
        // tokens at 210, 220, 240, 250, 260 ms: TTFT 210 ms; decode = 4 tokens / 50 ms = 80 t/s.
        let m = SpeedMetrics::from_trace(&trace(100, 2, 202, &[210, 220, 240, 250, 260])).unwrap();
        assert!((m.ttft_s - 0.210).abs() < 1e-12);
        assert!((m.tokenize_s - 0.002).abs() < 1e-12);
        assert!((m.prefill_s - 0.200).abs() < 1e-12);
        assert!((m.prefill_tps - 500.0).abs() < 1e-9);
        assert!((m.decode_tps.unwrap() - 80.0).abs() < 1e-9);
        assert!((m.e2e_s - 0.260).abs() < 1e-12);
        // ITLs: 10, 20, 10, 10 ms → sorted 10,10,10,20; p50 = 10; p90 at rank 2.7 → 10 + 0.7*10 = 17 ms.
        assert!((m.itl_p50_s.unwrap() - 0.010).abs() < 1e-12);
        assert!((m.itl_p90_s.unwrap() - 0.017).abs() < 1e-12);
    }

    #[test]
    fn a_single_token_has_ttft_but_no_decode_rate() {
        let m = SpeedMetrics::from_trace(&trace(10, 1, 5, &[6])).unwrap();
        assert_eq!(m.decode_tps, None);
        assert_eq!(m.itl_p50_s, None);
        assert!((m.ttft_s - 0.006).abs() < 1e-12);
    }

    #[test]
    fn empty_or_disordered_traces_are_rejected() {
        assert!(SpeedMetrics::from_trace(&trace(10, 1, 5, &[])).is_err());
        assert!(SpeedMetrics::from_trace(&trace(10, 6, 5, &[7])).is_err());
        assert!(SpeedMetrics::from_trace(&trace(10, 1, 5, &[9, 8])).is_err());
    }

    #[test]
    fn recorder_rejects_out_of_order_events() {
        let mut r = TraceRecorder::start(1);
        r.token(1);
        assert!(r.finish().unwrap_err().to_string().contains("token() before prefill_done()"));
        let mut r = TraceRecorder::start(1);
        r.tokenized(3);
        r.prefill_done();
        r.token(7);
        let t = r.finish().unwrap();
        assert_eq!((t.prompt_tokens, t.tokens.clone()), (3, vec![7]));
        assert!(t.tokenized <= t.prefill_end && t.prefill_end <= t.token_times[0]);
    }
}
