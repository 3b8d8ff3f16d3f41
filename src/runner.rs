//! Expands a matrix (backends × models × threads × prompts) into benchmarks and runs them through the engine.
//! A model is loaded once per backend × model × thread count; every prompt set then runs on that loaded model.
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use anyhow::{ensure, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tokbench_core::backend::{Backend, GenerationRequest, LoadOptions, LoadedModel};
use tokbench_core::config::ServerConfig;
use tokbench_core::engine::{self, Phase, RunPlan};
use tokbench_core::prompts::ResolvedPrompt;
use tokbench_core::prompts::{self, PromptSpec};
use tokbench_core::quality::base_logprobs::BaseLogprobs;
use tokbench_core::quality::measure::{score_corpus, QualityOptions};
use tokbench_core::quality::pareto;
use tokbench_core::sweep::summarize_level;
use tokbench_core::{digest, gguf, interrupt};
use tokbench_record::id::BenchmarkId;
use tokbench_record::metric::{format_value, Metric};
use tokbench_record::quality::QualityResult;
use tokbench_record::results::{
    BenchmarkResult, FailedBenchmark, FailedStage, LoadMeasurement, RunResults, RunSample, SCHEMA_VERSION,
};
use tokbench_record::setup::{EngineInfo, ModelInfo};
use tokbench_record::sweep::ConcurrencySweep;

use crate::registry;

/// A model to benchmark: a display name and the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRef {
    pub name: String,
    pub path: PathBuf,
    /// Provenance of a derived file (a quantization-ladder rung).
    pub derived_from: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub backends: Vec<String>,
    pub models: Vec<ModelRef>,
    pub threads: Vec<usize>,
    pub prompts: Vec<PromptSpec>,
    /// Tokens in the KV cache before each prompt (llama-bench's `-d`); `[0]` = an empty cache.
    pub depths: Vec<usize>,
    /// Sampling temperatures swept (`plan.sampling` carries the first); with more than one, ids carry `@T<t>`.
    pub temperatures: Vec<f32>,
    /// Load settings; `threads` is replaced by each entry of [`Matrix::threads`].
    pub load: LoadOptions,
    pub plan: RunPlan,
    /// Only benchmarks whose id contains one of these substrings; empty = all.
    pub filter: Vec<String>,
    /// Perplexity (and KL-divergence) of every model, beside its speed; None skips it.
    pub quality: Option<QualityPlan>,
    /// Servers usable as backends by name.
    pub servers: Vec<ServerConfig>,
    /// Models were named on the command line (an attached server then runs exactly that file).
    pub explicit_models: bool,
    /// Config `[run.backend_models]`: backends restricted to some of the models (ignored with explicit models).
    pub backend_models: std::collections::BTreeMap<String, Vec<String>>,
    /// Server backends: concurrency levels swept after each benchmark (empty = none).
    pub concurrency: Vec<usize>,
    pub requests_per_stream: usize,
}

/// The `[quality]` section resolved: what to score every model on, and the model to compare them with.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityPlan {
    /// `save_base` / `kld_base` are filled in by the runner.
    pub options: QualityOptions,
    pub kld_base: Option<ModelRef>,
}

impl Matrix {
    pub fn selected(&self, id: &BenchmarkId) -> bool {
        self.filter.is_empty() || self.filter.iter().any(|f| id.matches(f))
    }

    pub fn len(&self) -> usize {
        let models: usize = self.backends.iter().map(|b| self.models_for(b).len()).sum();
        models * self.threads.len() * self.prompts.len() * self.depths.len().max(1) * self.temperatures.len().max(1)
    }

    /// The models `backend` runs: all of them, or those `[run.backend_models]` names for it.
    pub fn models_for(&self, backend: &str) -> Vec<ModelRef> {
        match self.backend_models.get(backend) {
            Some(names) if !self.explicit_models => {
                self.models.iter().filter(|m| names.contains(&m.name)).cloned().collect()
            }
            _ => self.models.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The matrix's backends that run in this process (not servers).
    pub fn in_process_backends(&self) -> impl Iterator<Item = &str> {
        self.backends.iter().map(String::as_str).filter(|b| !self.servers.iter().any(|s| s.name == *b))
    }
}

/// Reads what identifies a model file: header (rejecting non-GGUF and truncated files) and SHA-256; for an MLX model
/// directory, its config and the SHA-256 of its weights.
pub fn describe_model(model: &ModelRef) -> Result<ModelInfo> {
    if model.path.as_os_str().is_empty() {
        // The model of a server tokbench attached to: known by the name it serves, not by a file.
        return Ok(ModelInfo {
            name: model.name.clone(),
            file_name: String::new(),
            size_bytes: 0,
            sha256: String::new(),
            quantization: "unknown".to_string(),
            architecture: None,
            n_params: None,
            derived_from: None,
            synthetic: None,
            decode_traffic: None,
        });
    }
    ensure!(
        model.path.exists(),
        "model file {} does not exist: run `cargo xtask fetch` (and `cargo xtask quantize` for ladder rungs), or pass \
         --model PATH",
        model.path.display()
    );
    if model.path.is_dir() {
        // An MLX-format directory (MLX backends only): identified by its weights' shards.
        let dir = tokbench_core::mlx_dir::describe(&model.path)?;
        return Ok(ModelInfo {
            name: model.name.clone(),
            file_name: model.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
            size_bytes: dir.size_bytes,
            sha256: digest::sha256_files(&dir.shards, |_| {})?,
            quantization: dir.quantization,
            architecture: dir.architecture,
            n_params: None,
            derived_from: model.derived_from.clone(),
            synthetic: None,
            decode_traffic: None,
        });
    }
    let info = gguf::validate(&model.path)?;
    let size_bytes = std::fs::metadata(&model.path)?.len();
    let sha256 = digest::sha256_file(&model.path, |_| {})?;
    Ok(ModelInfo {
        name: model.name.clone(),
        file_name: model.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        size_bytes,
        sha256,
        quantization: info.quantization.clone().unwrap_or_else(|| "unknown".to_string()),
        architecture: info.architecture.clone(),
        n_params: None,
        derived_from: model.derived_from.clone(),
        synthetic: tokbench_core::synth::stamp(&info, &model.path).map(|(shape, seed)| format!("{shape} seed {seed}")),
        decode_traffic: info.decode_traffic(),
    })
}

pub fn new_results() -> RunResults {
    RunResults {
        schema_version: SCHEMA_VERSION,
        tokbench_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        git: crate::git::stamp(&std::env::current_dir().unwrap_or_default()),
        machine: tokbench_core::machine::detect(),
        benchmarks: Vec::new(),
        failures: Vec::new(),
        concurrency: Vec::new(),
        injected_token_delay_us: tokbench_core::metrics::injected_token_delay().map(|d| d.as_micros() as u64),
        matrix: None,
    }
}

/// One benchmark's record: its timed runs, summarised, with everything that says how they were made.
#[allow(clippy::too_many_arguments)]
pub fn benchmark_result(
    id: BenchmarkId,
    engine: &EngineInfo,
    model: &ModelInfo,
    options: &LoadOptions,
    plan: &RunPlan,
    prompt: &ResolvedPrompt,
    load: &LoadMeasurement,
    runs: Vec<RunSample>,
) -> BenchmarkResult {
    let (summary, warnings) = engine::summarize_runs(&runs, plan.cv_threshold);
    BenchmarkResult {
        id,
        engine: engine.clone(),
        model: model.clone(),
        settings: options.settings(plan.sampling),
        prompt: prompt.info(),
        load: load.clone(),
        warmup_runs: plan.warmup,
        runs,
        summary,
        warnings,
        quality: None,
        pareto: None,
        roofline: None,
    }
}

/// One backend × model × thread count of a matrix, with the prompt sets (and their benchmark ids) that pass the
/// filters. Loading the model is the visitor's job, so a visitor that only lists benchmarks loads nothing.
pub struct Group<'a> {
    pub backend: &'a dyn Backend,
    pub engine: &'a EngineInfo,
    pub model_ref: &'a ModelRef,
    /// Described once per model (header, SHA-256); the visitor may fill in what loading learns (`n_params`).
    pub model_info: &'a mut ModelInfo,
    /// The matrix's load settings with this group's thread count.
    pub options: LoadOptions,
    /// The selected benchmarks, depths grouped so each is filled once.
    pub selected: Vec<Selected<'a>>,
}

/// One benchmark of a group: its prompt, the depth it runs at, its plan (sampling included) and its id.
#[derive(Debug, Clone)]
pub struct Selected<'a> {
    pub spec: &'a PromptSpec,
    pub depth: usize,
    pub plan: RunPlan,
    pub id: BenchmarkId,
}

/// The id's prompt part: the prompt's name, `@dD` at a depth, `@T<t>` when the matrix sweeps temperatures.
pub fn prompt_part(matrix: &Matrix, spec: &PromptSpec, depth: usize, temperature: f32) -> String {
    let name = prompts::name_at_depth(spec, depth);
    if matrix.temperatures.len() > 1 {
        format!("{name}@T{temperature}")
    } else {
        name
    }
}

/// Walks the matrix in run order (backend, model, threads), skipping groups with nothing selected: `tokbench run`
/// and `cargo bench` share this loop. `wanted` is a filter on benchmark ids on top of `--filter`.
pub fn for_each_group(
    matrix: &Matrix,
    wanted: impl Fn(&BenchmarkId) -> bool,
    mut visit: impl FnMut(Group<'_>) -> Result<()>,
) -> Result<()> {
    for backend_name in &matrix.backends {
        let backend = registry::create(backend_name, &matrix.servers)?;
        let engine = backend.engine_info();
        // A server that was already running serves one model: the file named with --model, else whatever it loaded.
        let models = match backend.attached_model() {
            None => matrix.models_for(backend_name),
            Some(_) if matrix.explicit_models => {
                ensure!(
                    matrix.models.len() == 1,
                    "backend {backend_name:?} is a running server, which serves one model: pass the one file it serves \
                     with --model (or give the server a `command` so tokbench starts it for each model)"
                );
                matrix.models.clone()
            }
            Some(served) => vec![ModelRef { name: served, path: PathBuf::new(), derived_from: None }],
        };
        for model_ref in &models {
            let mut model_info = describe_model(model_ref)?;
            for &threads in &matrix.threads {
                let depths = if matrix.depths.is_empty() { &[0][..] } else { &matrix.depths[..] };
                let temperatures = if matrix.temperatures.is_empty() {
                    vec![matrix.plan.sampling.temperature]
                } else {
                    matrix.temperatures.clone()
                };
                let mut selected = Vec::new();
                for &depth in depths {
                    for spec in &matrix.prompts {
                        for &temperature in &temperatures {
                            let id = BenchmarkId::new(
                                backend.name(),
                                &model_info.name,
                                &model_info.quantization,
                                &prompt_part(matrix, spec, depth, temperature),
                                threads,
                            );
                            if matrix.selected(&id) && wanted(&id) {
                                let mut plan = matrix.plan.clone();
                                plan.sampling.temperature = temperature;
                                selected.push(Selected { spec, depth, plan, id });
                            }
                        }
                    }
                }
                if selected.is_empty() {
                    continue; // nothing of this model × threads passes the filters: don't even load it
                }
                visit(Group {
                    backend: backend.as_ref(),
                    engine: &engine,
                    model_ref,
                    model_info: &mut model_info,
                    options: LoadOptions { threads, ..matrix.load.clone() },
                    selected,
                })?;
            }
        }
    }
    Ok(())
}

/// Puts `depth` filler tokens in the model's KV cache unless it holds them already (`filled`).
pub fn fill_depth(model: &mut dyn LoadedModel, filled: &mut usize, depth: usize) -> Result<()> {
    if *filled != depth {
        *filled = usize::MAX; // unknown until the fill succeeds
        let tokens = prompts::depth_tokens(model, depth)?;
        model.fill_context(&tokens).with_context(|| format!("filling the context to a depth of {depth} tokens"))?;
        *filled = depth;
    }
    Ok(())
}

/// How the runner reports its progress on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Progress bars: stderr is a terminal.
    Bars,
    /// One plain line as each benchmark starts and one as it ends, with its key figures, the time so far and an
    /// estimate of the time left: CI logs and pipes, where progress bars would print nothing.
    Lines,
    /// Warnings and errors only (`--quiet`).
    Quiet,
}

impl Progress {
    pub fn for_stderr(quiet: bool) -> Progress {
        match (quiet, std::io::IsTerminal::is_terminal(&std::io::stderr())) {
            (true, _) => Progress::Quiet,
            (false, true) => Progress::Bars,
            (false, false) => Progress::Lines,
        }
    }
}

/// `[3/12] <id>: TTFT 71.90 ms, decode 94.00 t/s (4.2 s); 0:52 so far, about 2:36 left`: a finished benchmark as
/// a CI log shows it. `done` of `total` benchmarks took `elapsed_s`; the estimate assumes the rest take as long.
pub fn finished_line(result: &BenchmarkResult, done: usize, total: usize, took_s: f64, elapsed_s: f64) -> String {
    let figure = |m: Metric| result.summary.get(&m).map(|s| format_value(m.unit(), s.median));
    let figures: Vec<String> = [(Metric::TtftS, "TTFT"), (Metric::DecodeTps, "decode")]
        .into_iter()
        .filter_map(|(m, label)| {
            Some(format!("{label} {}{}", figure(m)?, if m == Metric::DecodeTps { " t/s" } else { "" }))
        })
        .collect();
    let clock = |s: f64| format!("{}:{:02}", (s / 60.0) as u64, (s % 60.0) as u64);
    let left = elapsed_s / done.max(1) as f64 * total.saturating_sub(done) as f64;
    format!(
        "[{done}/{total}] {}: {} ({took_s:.1} s); {} so far, about {} left",
        result.id,
        figures.join(", "),
        clock(elapsed_s),
        clock(left)
    )
}

/// What a signal's clean-up writes (`tokbench_core::interrupt`): the results as of the last finished benchmark,
/// and the benchmark in flight with its completed timed runs. Shared with the signal watcher thread; the runner
/// updates it between generations, never inside a timed one.
#[derive(Clone, Default)]
pub struct Checkpoint(Arc<Mutex<Saved>>);

#[derive(Default)]
struct Saved {
    results: Option<RunResults>,
    in_flight: Option<(BenchmarkId, Vec<RunSample>)>,
}

impl Checkpoint {
    fn lock(&self) -> std::sync::MutexGuard<'_, Saved> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After a benchmark ended (measured or failed): the results so far, nothing in flight.
    fn finished(&self, results: &RunResults) {
        let mut saved = self.lock();
        saved.results = Some(results.clone());
        saved.in_flight = None;
    }

    /// A benchmark starts (its warmup): a signal from now on names it as the one interrupted.
    fn started(&self, id: &BenchmarkId) {
        self.lock().in_flight = Some((id.clone(), Vec::new()));
    }

    /// After each timed run of the benchmark in flight.
    fn timed_run(&self, id: &BenchmarkId, sample: &RunSample) {
        let mut saved = self.lock();
        match &mut saved.in_flight {
            Some((current, runs)) if current == id => runs.push(sample.clone()),
            in_flight => *in_flight = Some((id.clone(), vec![sample.clone()])),
        }
    }

    /// The results to save when `signal` arrived: the finished benchmarks, and the one in flight as a failure
    /// ("interrupted by SIGINT") with the timed runs it had completed. None before anything was measured.
    pub fn interrupted(&self, signal: i32, empty: &RunResults) -> Option<RunResults> {
        let saved = self.lock();
        let mut results = saved.results.clone().unwrap_or_else(|| empty.clone());
        if let Some((id, runs)) = &saved.in_flight {
            results.failures.push(FailedBenchmark {
                id: id.clone(),
                stage: None,
                error: interrupt::interrupted_by(signal),
                completed_runs: runs.clone(),
            });
        }
        let measured = !results.benchmarks.is_empty() || results.failures.iter().any(|f| !f.completed_runs.is_empty());
        measured.then_some(results)
    }
}

/// Runs the whole matrix, appending to `results` as each benchmark finishes, so that on an error everything
/// measured before it is still there for the caller to write out; `checkpoint` keeps the same for a signal.
pub fn run(matrix: &Matrix, results: &mut RunResults, progress: Progress, checkpoint: &Checkpoint) -> Result<()> {
    let style = ProgressStyle::with_template("{prefix:>3} {bar:24} {pos}/{len} {msg}").expect("valid template");
    let total = matrix.len(); // upper bound when --filter drops some
    let mut index = 0;
    let started = Instant::now();
    let show_progress = progress != Progress::Quiet;
    // Quality is scored in-process (servers expose no logits to score with); a run of servers only skips it.
    // Synthetic models are never scored: a matrix of them alone needs no corpus and no KL-divergence base.
    let scores_some_model = matrix.models.iter().any(|m| !is_synthetic(&m.path));
    let quality = match (&matrix.quality, matrix.in_process_backends().next(), scores_some_model) {
        (Some(plan), Some(backend), true) => Some(prepare_quality(matrix, backend, plan)?),
        _ => None,
    };
    // Scored once per backend × model (the first thread count that runs it), then shared by its benchmarks.
    let mut scored: Vec<((String, String), QualityResult)> = Vec::new();
    for_each_group(
        matrix,
        |_| true,
        |group| {
            let Group { backend, engine: engine_info, model_ref, model_info, options, selected } = group;
            ensure!(!interrupt::interrupted(), INTERRUPTED);
            let loaded = engine::load_model(backend, &model_ref.path, &options)
                .with_context(|| format!("loading {} with {}", model_ref.name, backend.name()));
            let (mut model, load) = match loaded {
                Ok(loaded) => loaded,
                Err(e) => {
                    // Every benchmark of this group fails with the same error; the rest of the matrix runs on.
                    for Selected { id, .. } in selected {
                        index += 1;
                        record_failure(results, id, None, &e, Vec::new());
                    }
                    checkpoint.finished(results);
                    return Ok(());
                }
            };
            model_info.n_params = model.details().n_params;
            let key = (engine_info.backend.clone(), model_info.name.clone());
            let can = registry::capabilities(backend.name(), &matrix.servers).expect("a backend of the matrix");
            // A synthetic model's text is noise: its quality is never scored.
            if let (Some(options), true) = (&quality, can.scores_quality && model_info.synthetic.is_none()) {
                if !scored.iter().any(|(k, _)| *k == key) {
                    // Before the model's speed runs; the scoring context is freed before they start.
                    let engine = format!("{} {}", engine_info.backend, engine_info.version);
                    if show_progress {
                        eprintln!("scoring perplexity of {} on {}", model_info.name, options.corpus.display());
                    }
                    let q = score_corpus(model.as_mut(), &model_ref.path, &engine, options)
                        .with_context(|| format!("perplexity of {}", model_info.name))?;
                    scored.push((key.clone(), q));
                }
            }
            let model_quality = scored.iter().find(|(k, _)| *k == key).map(|(_, q)| q.clone());
            let mut filled = 0;
            for Selected { spec, depth, plan, id } in selected {
                ensure!(!interrupt::interrupted(), INTERRUPTED);
                index += 1;
                // The context is filled once per depth (untimed); each run then keeps those positions.
                let prompt = fill_depth(model.as_mut(), &mut filled, depth)
                    .and_then(|()| prompts::resolve_at_depth(spec, depth, model.as_ref()));
                let prompt = match prompt {
                    Ok(p) => p,
                    Err(e) => {
                        record_failure(results, id, None, &e, Vec::new());
                        checkpoint.finished(results);
                        continue;
                    }
                };
                let bar = if progress == Progress::Bars {
                    ProgressBar::new((plan.warmup + plan.runs) as u64)
                } else {
                    ProgressBar::hidden()
                };
                if progress == Progress::Lines {
                    let (w, r) = (plan.warmup, plan.runs);
                    eprintln!("[{index}/{total}] {id}: {w} warmup + {r} timed runs");
                }
                let benchmark_started = Instant::now();
                bar.set_style(style.clone());
                bar.set_prefix(format!("{index}/{total}"));
                bar.set_message(format!("{id} (warmup)"));
                let warmup = plan.warmup as u64;
                let mut runs = Vec::with_capacity(plan.runs);
                checkpoint.started(&id);
                // A panic inside one benchmark (an engine's assertion, a bug of ours) becomes that benchmark's
                // recorded failure, like an error: the matrix goes on.
                let measured = catch_panic(|| {
                    engine::measure_into(
                        model.as_mut(),
                        &load,
                        &prompt,
                        &plan,
                        &mut runs,
                        &mut |phase, done, _, sample| {
                            bar.set_position(if phase == Phase::Warmup { done as u64 } else { warmup + done as u64 });
                            if phase == Phase::Timed || done as u64 == warmup {
                                bar.set_message(id.to_string());
                            }
                            if phase == Phase::Timed {
                                checkpoint.timed_run(&id, sample);
                            }
                        },
                    )
                });
                bar.finish_and_clear();
                if let Err(e) = measured {
                    record_failure(results, id, None, &e, runs);
                    checkpoint.finished(results);
                    continue;
                }
                let mut result =
                    benchmark_result(id.clone(), engine_info, model_info, &options, &plan, &prompt, &load, runs);
                result.quality = model_quality.clone();
                result.settings.kv_cache_type = model.details().kv_cache_type.map(str::to_string);
                result.roofline = result.compute_roofline(&results.machine);
                if progress == Progress::Lines {
                    let took = benchmark_started.elapsed().as_secs_f64();
                    eprintln!("{}", finished_line(&result, index, total, took, started.elapsed().as_secs_f64()));
                }
                results.benchmarks.push(result);
                pareto::mark_run(results)?;
                checkpoint.finished(results);
                if can.concurrent_requests && !matrix.concurrency.is_empty() {
                    match sweep(model.as_ref(), matrix, &plan, &prompt, &id, engine_info, model_info, show_progress) {
                        Ok(s) => results.concurrency.push(s),
                        Err(e) => {
                            let stage = Some(FailedStage::ConcurrencySweep);
                            record_failure(results, id, stage, &e, Vec::new());
                            checkpoint.finished(results);
                        }
                    }
                }
            }
            Ok(())
        },
    )
}

/// A GGUF that `tokbench synth` wrote (an unreadable file is not: its error comes when it is loaded).
pub fn is_synthetic(path: &std::path::Path) -> bool {
    tokbench_core::gguf::validate(path).ok().and_then(|info| tokbench_core::synth::stamp(&info, path)).is_some()
}

/// The runner's error once a signal arrived (`main` then exits with 128 + the signal, after the clean-ups).
pub const INTERRUPTED: &str = "interrupted";

/// Runs `f`, turning a panic into an error that quotes its message.
pub(crate) fn catch_panic<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(outcome) => outcome,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            anyhow::bail!("panicked: {message}")
        }
    }
}

fn record_failure(
    results: &mut RunResults,
    id: BenchmarkId,
    stage: Option<FailedStage>,
    error: &anyhow::Error,
    completed_runs: Vec<RunSample>,
) {
    let mut error = format!("{error:#}");
    if let Some(signal) = interrupt::signal() {
        error = format!("{}: {error}", interrupt::interrupted_by(signal));
    }
    let during = stage.map_or(String::new(), |_| " (concurrency sweep)".to_string());
    eprintln!("benchmark {id}{during} failed: {error}");
    results.failures.push(FailedBenchmark { id, stage, error, completed_runs });
}

/// The concurrency sweep of one server benchmark: every level of `matrix.concurrency` in turn.
fn sweep(
    model: &dyn LoadedModel,
    matrix: &Matrix,
    plan: &RunPlan,
    prompt: &ResolvedPrompt,
    id: &BenchmarkId,
    engine_info: &EngineInfo,
    model_info: &ModelInfo,
    show_progress: bool,
) -> Result<ConcurrencySweep> {
    let request =
        GenerationRequest { prompt: &prompt.text, gen_tokens: prompt.gen_tokens, sampling: plan.sampling, depth: 0 };
    let mut levels = Vec::new();
    for &streams in &matrix.concurrency {
        if show_progress {
            eprintln!("{id}: {streams} concurrent streams × {} requests", matrix.requests_per_stream);
        }
        let batch = model.generate_concurrently(&request, streams, matrix.requests_per_stream)?;
        levels.push(summarize_level(batch)?);
    }
    Ok(ConcurrencySweep {
        id: id.clone(),
        backend: engine_info.backend.clone(),
        model: model_info.name.clone(),
        prompt: prompt.info(),
        requests_per_stream: matrix.requests_per_stream,
        levels,
    })
}

/// Scores the KL-divergence base (when there is one) and saves its distribution under target/tokbench/quality/,
/// returning the options every model is then scored with. A saved base is reused when it was made from the same
/// model file, corpus and engine with the same ctx / chunks / top-k (on WikiText-2 scoring it again is not free).
pub(crate) fn prepare_quality(matrix: &Matrix, backend: &str, plan: &QualityPlan) -> Result<QualityOptions> {
    let mut options = QualityOptions { save_base: None, kld_base: None, ..plan.options.clone() };
    let Some(base) = &plan.kld_base else { return Ok(options) };
    let backend = registry::create(backend, &matrix.servers)?;
    let info = backend.engine_info();
    let engine = format!("{} {}", info.backend, info.version);
    let stem = |p: &std::path::Path| p.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let file = PathBuf::from("target/tokbench/quality").join(format!(
        "{}.{}.ctx{}.chunks-{}.top{}.tklp",
        stem(&base.path),
        stem(&options.corpus),
        options.n_ctx,
        options.max_chunks.map_or_else(|| "all".to_string(), |c| c.to_string()),
        options.top_k
    ));
    options.kld_base = Some(file.clone());
    if let Ok(saved) = BaseLogprobs::read(&file) {
        let h = &saved.header;
        if h.engine == engine
            && base.path.is_file()
            && h.model_sha256 == digest::sha256_file(&base.path, |_| {})?
            && h.corpus_sha256 == digest::sha256_file(&options.corpus, |_| {})?
        {
            eprintln!("KL-divergence base {}: reusing {}", base.name, file.display());
            return Ok(options);
        }
    }
    let load = LoadOptions { threads: matrix.threads[0], ..matrix.load.clone() };
    let (mut model, _) = engine::load_model(backend.as_ref(), &base.path, &load)
        .with_context(|| format!("loading the KL-divergence base {}", base.path.display()))?;
    eprintln!("scoring the KL-divergence base {} on {}", base.name, options.corpus.display());
    let base_options = QualityOptions { save_base: Some(file), kld_base: None, ..options.clone() };
    score_corpus(model.as_mut(), &base.path, &engine, &base_options)
        .with_context(|| format!("perplexity of the KL-divergence base {}", base.name))?;
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_quoting_it_and_the_checkpoint_names_the_interrupted_benchmark() {
        let e = catch_panic(|| -> Result<()> { panic!("index 9 out of range") }).unwrap_err();
        assert_eq!(e.to_string(), "panicked: index 9 out of range");
        let e = catch_panic(|| -> Result<()> { panic!("{} tokens", 3) }).unwrap_err();
        assert_eq!(e.to_string(), "panicked: 3 tokens");
        assert_eq!(catch_panic(|| Ok(7)).unwrap(), 7);

        let results: RunResults = serde_json::from_str(include_str!("../crates/gate/tests/data/results.json")).unwrap();
        let empty = RunResults { benchmarks: Vec::new(), ..results.clone() };
        let checkpoint = Checkpoint::default();
        assert!(checkpoint.interrupted(2, &empty).is_none(), "nothing measured, nothing to save");
        let (done, cut) = (&results.benchmarks[0], &results.benchmarks[1]);
        checkpoint.finished(&RunResults { benchmarks: vec![done.clone()], ..empty.clone() });
        checkpoint.started(&cut.id);
        for run in &cut.runs[..2] {
            checkpoint.timed_run(&cut.id, run);
        }
        let saved = checkpoint.interrupted(15, &empty).unwrap();
        assert_eq!(saved.benchmarks.len(), 1);
        assert_eq!(saved.failures.len(), 1);
        assert_eq!(
            (saved.failures[0].id.clone(), saved.failures[0].error.as_str()),
            (cut.id.clone(), "interrupted by SIGTERM")
        );
        assert_eq!(saved.failures[0].completed_runs, cut.runs[..2].to_vec());
    }

    #[test]
    fn a_finished_benchmark_is_one_line_with_its_figures_and_the_time_left() {
        let results: RunResults = serde_json::from_str(include_str!("../crates/gate/tests/data/results.json")).unwrap();
        let b = &results.benchmarks[0];
        let line = finished_line(b, 3, 12, 4.25, 52.0);
        let ttft = format_value(Metric::TtftS.unit(), b.summary[&Metric::TtftS].median);
        assert!(line.starts_with(&format!("[3/12] {}: TTFT {ttft}, decode ", b.id)), "{line}");
        // 52 s for 3 benchmarks: 9 left at ~17.3 s each → 156 s.
        assert!(line.ends_with("t/s (4.2 s); 0:52 so far, about 2:36 left"), "{line}");
    }
}
