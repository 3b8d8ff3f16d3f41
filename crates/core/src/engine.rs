//! The measurement engine: loads a model once (timed), then for each prompt runs warmup generations (discarded) and
//! timed generations, each inside a peak-RAM window, and summarises them. It knows no backend: everything engine-
//! specific happens behind [`Backend`] / [`LoadedModel`].
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context, Result};

use crate::backend::{Backend, GenerationRequest, LoadOptions, LoadedModel};
use crate::memory::{current_rss_bytes, PeakWindow};
use crate::metrics::{SpeedMetrics, TraceRecorder};
use crate::prompts::ResolvedPrompt;
use crate::stats::{summarize, warnings, StatWarning, Summary};
use tokbench_record::metric::Metric;
use tokbench_record::results::{ram_delta_bytes, LoadMeasurement, RunSample};
use tokbench_record::setup::Sampling;
use tokbench_record::summary::Warning;

/// How many runs, and how they sample.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// Generations run first and thrown away (caches, page faults, CPU clocks settle). Default: `[run] warmup`.
    pub warmup: usize,
    /// Timed generations kept as samples. Default: `[run] runs`.
    pub runs: usize,
    pub sampling: Sampling,
    /// Coefficient of variation above which a metric gets a warning.
    pub cv_threshold: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Warmup,
    Timed,
}

/// Loads a model, timing the call from before the file is opened until the backend returns a model ready to
/// generate, and reading RSS before and after, and its peak in between (a [`PeakWindow`] around the load).
pub fn load_model(
    backend: &dyn Backend,
    path: &Path,
    options: &LoadOptions,
) -> Result<(Box<dyn LoadedModel>, LoadMeasurement)> {
    let window = PeakWindow::start()?;
    let start = Instant::now();
    let model = backend.load(path, options)?;
    let load_s = start.elapsed().as_secs_f64();
    let rss_after_bytes = current_rss_bytes()?;
    let peak = window.finish()?;
    let load = LoadMeasurement {
        load_s,
        rss_before_bytes: peak.start_rss_bytes,
        rss_after_bytes,
        rss_peak_bytes: Some(peak.peak_rss_bytes.max(rss_after_bytes)),
    };
    Ok((model, load))
}

/// One generation, measured: the clock starts right before `generate` is called with the prompt text in hand.
/// `load` is the measurement of the load that made `model`: the run's RAM Δ counts from RSS before it.
pub fn measure_once(
    model: &mut dyn LoadedModel,
    load: &LoadMeasurement,
    prompt: &ResolvedPrompt,
    sampling: Sampling,
) -> Result<RunSample> {
    let request =
        GenerationRequest { prompt: &prompt.text, gen_tokens: prompt.gen_tokens, sampling, depth: prompt.depth };
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
        ram_delta_bytes: Some(ram_delta_bytes(load, peak.peak_rss_bytes)),
        peak_method: peak.method,
        token_times_s: trace.token_times.iter().map(|d| d.as_secs_f64()).collect(),
        tokens: trace.tokens,
        server: trace.server,
        engine: trace.engine,
        energy: trace.energy,
        // After the run's clock and peak window: an NVML query takes about a millisecond.
        gpu_memory_bytes: crate::energy::gpu_memory_of_this_process(),
    })
}

/// Warmup runs (discarded) then timed runs. `progress(phase, done, total, sample)` is called after each generation
/// with what it measured (a warmup's sample is dropped after the call), so a caller can keep a checkpoint.
pub fn measure(
    model: &mut dyn LoadedModel,
    load: &LoadMeasurement,
    prompt: &ResolvedPrompt,
    plan: &RunPlan,
    progress: &mut dyn FnMut(Phase, usize, usize, &RunSample),
) -> Result<Vec<RunSample>> {
    let mut samples = Vec::with_capacity(plan.runs);
    measure_into(model, load, prompt, plan, &mut samples, progress)?;
    Ok(samples)
}

/// [`measure`], pushing each timed run onto `samples` as it completes: when a run fails (a server answering 500
/// on the fourth run, say), the runs before it are still in `samples` for the caller to keep.
pub fn measure_into(
    model: &mut dyn LoadedModel,
    load: &LoadMeasurement,
    prompt: &ResolvedPrompt,
    plan: &RunPlan,
    samples: &mut Vec<RunSample>,
    progress: &mut dyn FnMut(Phase, usize, usize, &RunSample),
) -> Result<()> {
    ensure!(plan.runs > 0, "--runs must be at least 1");
    for i in 0..plan.warmup {
        let sample = measure_once(model, load, prompt, plan.sampling)
            .with_context(|| format!("warmup run {} of {}", i + 1, plan.warmup))?;
        progress(Phase::Warmup, i + 1, plan.warmup, &sample);
    }
    for i in 0..plan.runs {
        let sample = measure_once(model, load, prompt, plan.sampling)
            .with_context(|| format!("timed run {} of {}", i + 1, plan.runs))?;
        samples.push(sample);
        progress(Phase::Timed, i + 1, plan.runs, samples.last().expect("pushed above"));
    }
    Ok(())
}

/// Summary statistics of every metric over the timed runs, and the warnings a reader should see: one per kind of
/// problem, naming the metrics it affects (not one per metric).
pub fn summarize_runs(runs: &[RunSample], cv_threshold: f64) -> (BTreeMap<Metric, Summary>, Vec<Warning>) {
    let mut summary = BTreeMap::new();
    let (mut noisy, mut outliers, mut too_few) = (Vec::new(), Vec::new(), None);
    for metric in Metric::ALL {
        let values: Vec<f64> = runs.iter().filter_map(|r| r.value(metric)).collect();
        if values.len() != runs.len() {
            continue; // e.g. decode rate of single-token runs: undefined, so not summarised
        }
        let Some(s) = summarize(&values) else { continue };
        // RAM deltas are near zero once buffers are warm, so their variation says nothing; judge only speeds.
        if !matches!(metric, Metric::PeakRssDeltaBytes | Metric::RamDeltaBytes | Metric::GpuMemoryBytes) {
            for w in warnings(&s, cv_threshold) {
                match w {
                    StatWarning::HighVariation { cv, .. } => noisy.push((metric, cv)),
                    StatWarning::Outliers { count, n } => outliers.push((metric, count, n)),
                    StatWarning::TooFewSamples { n } => too_few = Some(Warning::TooFewSamples { n }),
                }
            }
        }
        summary.insert(metric, s);
    }
    let mut notes: Vec<Warning> = too_few.into_iter().collect();
    if !noisy.is_empty() {
        notes.push(Warning::high_variation(cv_threshold, &noisy));
    }
    if !outliers.is_empty() {
        notes.push(Warning::Outliers { metrics: outliers });
    }
    (summary, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ModelDetails;

    /// A backend whose generation briefly holds `spike` bytes, touched page by page and freed before it returns.
    struct SpikyModel {
        spike: usize,
        /// Bytes kept resident for the model's lifetime.
        #[allow(dead_code)]
        held: Vec<u8>,
    }

    impl LoadedModel for SpikyModel {
        fn details(&self) -> ModelDetails {
            ModelDetails::default()
        }
        fn context_size(&self) -> usize {
            1024
        }
        fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
            Ok(text.split_whitespace().map(|w| w.len() as u32).collect())
        }
        fn detokenize(&self, _: &[u32]) -> Result<String> {
            unreachable!()
        }
        fn generate(&mut self, request: &GenerationRequest<'_>, trace: &mut TraceRecorder) -> Result<()> {
            trace.tokenized(self.tokenize(request.prompt)?.len());
            trace.prefill_done();
            let mut buffer = vec![0u8; self.spike];
            for page in buffer.chunks_mut(4096) {
                page[0] = 1;
            }
            std::hint::black_box(&buffer);
            drop(buffer);
            for i in 0..request.gen_tokens {
                trace.token(i as u32);
            }
            Ok(())
        }
    }

    /// A load measurement with nothing before it: the tests here read the in-generation figures.
    fn no_load() -> LoadMeasurement {
        LoadMeasurement { load_s: 0.0, rss_before_bytes: 0, rss_after_bytes: 0, rss_peak_bytes: Some(0) }
    }

    /// RSS is the process's: tests that read it must not overlap another test's allocations.
    static RSS_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_short_ram_spike_inside_a_generation_is_caught() {
        let _alone = RSS_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let prompt =
            ResolvedPrompt { name: "t".into(), text: "a b c".into(), prompt_tokens: 3, gen_tokens: 4, depth: 0 };
        let spike = 192 << 20;
        let sample =
            measure_once(&mut SpikyModel { spike, held: Vec::new() }, &no_load(), &prompt, Sampling::GREEDY).unwrap();
        assert!(
            sample.peak_rss_delta_bytes >= (spike as u64) * 9 / 10,
            "peak delta {} for a {spike}-byte spike ({:?})",
            sample.peak_rss_delta_bytes,
            sample.peak_method
        );
        let quiet = measure_once(&mut SpikyModel { spike: 0, held: Vec::new() }, &no_load(), &prompt, Sampling::GREEDY)
            .unwrap();
        assert!(quiet.peak_rss_delta_bytes < 16 << 20, "{}", quiet.peak_rss_delta_bytes);
    }

    /// Loads a model that keeps `weights` bytes resident from its load on, like weights read at load time.
    struct HeavyBackend {
        weights: usize,
    }
    impl Backend for HeavyBackend {
        fn name(&self) -> &str {
            "heavy"
        }
        fn engine_info(&self) -> tokbench_record::setup::EngineInfo {
            unreachable!()
        }
        fn load(&self, _: &Path, _: &LoadOptions) -> Result<Box<dyn LoadedModel>> {
            let mut held = vec![0u8; self.weights];
            held.chunks_mut(4096).for_each(|page| page[0] = 1);
            Ok(Box::new(SpikyModel { spike: 0, held }))
        }
    }

    fn options() -> LoadOptions {
        LoadOptions {
            threads: 1,
            batch: 512,
            ubatch: 512,
            n_gpu_layers: 0,
            ctx_size: 256,
            flash_attn: tokbench_record::setup::FlashAttn::Auto,
            mmap: true,
        }
    }

    #[test]
    fn ram_delta_counts_what_the_load_made_resident_which_the_in_generation_delta_cannot_see() {
        let _alone = RSS_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let weights = 160 << 20;
        let (mut model, load) = load_model(&HeavyBackend { weights }, Path::new("unused"), &options()).unwrap();
        assert!(load.rss_peak_bytes.unwrap() >= load.rss_after_bytes);
        let prompt =
            ResolvedPrompt { name: "t".into(), text: "a b c".into(), prompt_tokens: 3, gen_tokens: 4, depth: 0 };
        let run = measure_once(model.as_mut(), &load, &prompt, Sampling::GREEDY).unwrap();
        let ram = run.ram_delta_bytes.unwrap();
        assert!(ram >= (weights as u64) * 9 / 10, "RAM Δ {ram} for {weights} bytes held since the load");
        assert!(ram < (weights as u64) + (64 << 20), "RAM Δ {ram} for {weights} bytes");
        assert!(run.peak_rss_delta_bytes < 16 << 20, "in-generation delta {}", run.peak_rss_delta_bytes);
        drop(model);
    }

    #[test]
    fn a_backend_that_stops_early_is_an_error_not_a_short_sample() {
        struct Lazy;
        impl LoadedModel for Lazy {
            fn details(&self) -> ModelDetails {
                ModelDetails::default()
            }
            fn context_size(&self) -> usize {
                64
            }
            fn tokenize(&self, _: &str) -> Result<Vec<u32>> {
                Ok(vec![1])
            }
            fn detokenize(&self, _: &[u32]) -> Result<String> {
                unreachable!()
            }
            fn generate(&mut self, _: &GenerationRequest<'_>, trace: &mut TraceRecorder) -> Result<()> {
                trace.tokenized(1);
                trace.prefill_done();
                trace.token(2); // stops at end-of-sequence after one token
                Ok(())
            }
        }
        let prompt = ResolvedPrompt { name: "t".into(), text: "x".into(), prompt_tokens: 1, gen_tokens: 8, depth: 0 };
        let e = measure_once(&mut Lazy, &no_load(), &prompt, Sampling::GREEDY).unwrap_err().to_string();
        assert!(e.contains("generated 1 tokens but 8 were requested"), "{e}");
    }

    #[test]
    fn warnings_are_grouped_by_kind() {
        let mk = |ttft: f64| RunSample {
            ttft_s: ttft,
            tokenize_s: 0.0,
            prefill_s: 0.1,
            prefill_tps: 100.0,
            decode_tps: Some(50.0),
            e2e_s: 1.0,
            itl_p50_s: Some(0.02),
            itl_p90_s: Some(0.02),
            itl_p99_s: Some(0.02),
            prompt_tokens: 10,
            generated_tokens: 10,
            rss_start_bytes: 0,
            rss_peak_bytes: 0,
            peak_rss_delta_bytes: 0,
            ram_delta_bytes: Some(0),
            peak_method: tokbench_record::results::PeakMethod::LinuxHighWaterMark,
            token_times_s: vec![],
            tokens: vec![],
            server: None,
            engine: None,
            energy: None,
            gpu_memory_bytes: None,
        };
        let runs: Vec<RunSample> = [0.1, 0.1, 0.1, 0.1, 0.3].into_iter().map(mk).collect();
        let (summary, notes) = summarize_runs(&runs, 0.10);
        assert_eq!(summary[&Metric::TtftS].n, 5);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            matches!(&notes[0], Warning::HighVariation { threshold_pct, metrics }
                if *threshold_pct == 10.0 && metrics[0].0 == Metric::TtftS),
            "{notes:?}"
        );
        assert_eq!(notes[1], Warning::Outliers { metrics: vec![(Metric::TtftS, 1, 5)] });
        assert!(notes[0].to_string().starts_with("run-to-run variation above 10% (CV): TTFT"), "{}", notes[0]);
        let (_, notes) = summarize_runs(&runs[..2], 0.10);
        assert_eq!(notes[0], Warning::TooFewSamples { n: 2 }, "too few samples said once");
    }
}
