//! The measurement engine: loads a model once (timed), then for each prompt runs warmup generations (discarded) and
//! timed generations, each inside a peak-RAM window, and summarises them. It knows no backend: everything engine-
//! specific happens behind [`Backend`] / [`LoadedModel`].
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context, Result};

use crate::backend::{Backend, GenerationRequest, LoadOptions, LoadedModel};
use crate::memory::{current_rss_bytes, PeakWindow};
use crate::metrics::{Metric, SpeedMetrics, TraceRecorder};
use crate::prompts::ResolvedPrompt;
use crate::schema::{LoadMeasurement, RunSample, Sampling};
use crate::stats::{summarize, warnings, StatWarning, Summary};

/// How many runs, and how they sample.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// Generations run first and thrown away (caches, page faults, CPU clocks settle). Default 2.
    pub warmup: usize,
    /// Timed generations kept as samples. Default 5.
    pub runs: usize,
    pub sampling: Sampling,
    /// Coefficient of variation above which a metric gets a warning.
    pub cv_threshold: f64,
}

impl Default for RunPlan {
    fn default() -> Self {
        RunPlan { warmup: 2, runs: 5, sampling: Sampling::GREEDY, cv_threshold: crate::stats::DEFAULT_CV_THRESHOLD }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Warmup,
    Timed,
}

/// Loads a model, timing the call from before the file is opened until the backend returns a model ready to
/// generate, and reading RSS on either side.
pub fn load_model(
    backend: &dyn Backend,
    path: &Path,
    options: &LoadOptions,
) -> Result<(Box<dyn LoadedModel>, LoadMeasurement)> {
    let rss_before_bytes = current_rss_bytes()?;
    let start = Instant::now();
    let model = backend.load(path, options)?;
    let load_s = start.elapsed().as_secs_f64();
    let rss_after_bytes = current_rss_bytes()?;
    Ok((model, LoadMeasurement { load_s, rss_before_bytes, rss_after_bytes }))
}

/// One generation, measured: the clock starts right before `generate` is called with the prompt text in hand.
pub fn measure_once(model: &mut dyn LoadedModel, prompt: &ResolvedPrompt, sampling: Sampling) -> Result<RunSample> {
    let request = GenerationRequest { prompt: &prompt.text, gen_tokens: prompt.gen_tokens, sampling };
    let window = PeakWindow::start()?;
    let mut recorder = TraceRecorder::start(prompt.gen_tokens);
    model.generate(&request, &mut recorder)?;
    let trace = recorder.finish()?;
    let peak = window.finish()?;

    ensure!(
        trace.token_times.len() == prompt.gen_tokens,
        "the backend generated {} tokens but {} were requested: every run must do equal work",
        trace.token_times.len(),
        prompt.gen_tokens
    );
    ensure!(
        trace.prompt_tokens == prompt.prompt_tokens,
        "the backend fed {} prompt tokens but the prompt was built for {}",
        trace.prompt_tokens,
        prompt.prompt_tokens
    );
    let m = SpeedMetrics::from_trace(&trace)?;
    Ok(RunSample {
        ttft_s: m.ttft_s,
        tokenize_s: m.tokenize_s,
        prefill_s: m.prefill_s,
        prefill_tps: m.prefill_tps,
        decode_tps: m.decode_tps,
        e2e_s: m.e2e_s,
        itl_p50_s: m.itl_p50_s,
        itl_p90_s: m.itl_p90_s,
        itl_p99_s: m.itl_p99_s,
        prompt_tokens: trace.prompt_tokens,
        generated_tokens: trace.token_times.len(),
        rss_start_bytes: peak.start_rss_bytes,
        rss_peak_bytes: peak.peak_rss_bytes,
        peak_rss_delta_bytes: peak.peak_delta_bytes(),
        peak_method: peak.method,
        token_times_s: trace.token_times.iter().map(|d| d.as_secs_f64()).collect(),
        tokens: trace.tokens,
    })
}

/// Warmup runs (discarded) then timed runs. `progress(phase, done, total)` is called after each generation.
pub fn measure(
    model: &mut dyn LoadedModel,
    prompt: &ResolvedPrompt,
    plan: &RunPlan,
    progress: &mut dyn FnMut(Phase, usize, usize),
) -> Result<Vec<RunSample>> {
    ensure!(plan.runs > 0, "--runs must be at least 1");
    for i in 0..plan.warmup {
        measure_once(model, prompt, plan.sampling)
            .with_context(|| format!("warmup run {} of {}", i + 1, plan.warmup))?;
        progress(Phase::Warmup, i + 1, plan.warmup);
    }
    let mut samples = Vec::with_capacity(plan.runs);
    for i in 0..plan.runs {
        let sample = measure_once(model, prompt, plan.sampling)
            .with_context(|| format!("timed run {} of {}", i + 1, plan.runs))?;
        samples.push(sample);
        progress(Phase::Timed, i + 1, plan.runs);
    }
    Ok(samples)
}

/// Summary statistics of every metric over the timed runs, and the warnings a reader should see.
pub fn summarize_runs(runs: &[RunSample], cv_threshold: f64) -> (BTreeMap<Metric, Summary>, Vec<String>) {
    let mut summary = BTreeMap::new();
    let mut notes = Vec::new();
    for metric in Metric::ALL {
        let values: Vec<f64> = runs.iter().filter_map(|r| r.value(metric)).collect();
        if values.len() != runs.len() {
            continue; // e.g. decode rate of single-token runs: undefined, so not summarised
        }
        if let Some(s) = summarize(&values) {
            // RAM deltas are near zero once buffers are warm, so their CV says nothing; judge only speeds.
            if metric != Metric::PeakRssDeltaBytes {
                for w in warnings(&s, cv_threshold) {
                    match w {
                        StatWarning::TooFewSamples { .. } => {} // said once below, not once per metric
                        w => notes.push(format!("{}: {w}", metric.label())),
                    }
                }
            }
            summary.insert(metric, s);
        }
    }
    if let Some(w) = summary
        .values()
        .next()
        .and_then(|s| warnings(s, cv_threshold).into_iter().find(|w| matches!(w, StatWarning::TooFewSamples { .. })))
    {
        notes.insert(0, w.to_string());
    }
    (summary, notes)
}
