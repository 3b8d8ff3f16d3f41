//! `tokbench worker`: the matrix of `tokbench run`, driven one generation at a time over stdin/stdout by the A/B
//! gate (the protocol is `tokbench_record::worker`). The worker keeps one model loaded — the one the last request
//! needed — so the driver can alternate base and head generation by generation without reloading either.
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;

use anyhow::{bail, ensure, Context, Result};
use tokbench_core::backend::{Backend, LoadOptions, LoadedModel};
use tokbench_core::engine::{self, RunPlan};
use tokbench_core::prompts::{self, PromptSpec, ResolvedPrompt};
use tokbench_core::quality::measure::{score_corpus, QualityOptions};
use tokbench_core::quality::pareto;
use tokbench_record::id::BenchmarkId;
use tokbench_record::quality::QualityResult;
use tokbench_record::results::{FailedBenchmark, LoadMeasurement, RunResults, RunSample};
use tokbench_record::setup::{EngineInfo, ModelInfo, Sampling};
use tokbench_record::worker::{read_line, Hello, Reply, Request, MAX_LINE_BYTES};

use crate::cli::RunArgs;
use crate::runner::{self, Matrix, ModelRef};
use crate::{options, registry};

/// One benchmark of the matrix, and what the worker has measured of it.
struct Slot {
    id: BenchmarkId,
    backend: String,
    engine: EngineInfo,
    model_ref: ModelRef,
    model_info: ModelInfo,
    options: LoadOptions,
    spec: PromptSpec,
    /// Tokens in the KV cache before the prompt.
    depth: usize,
    /// This benchmark's sampling (the matrix may sweep temperatures).
    sampling: Sampling,
    prompt: Option<ResolvedPrompt>,
    samples: Vec<RunSample>,
    /// The load of the model this benchmark last ran on.
    load: Option<LoadMeasurement>,
    error: Option<String>,
}

/// What makes two benchmarks share a loaded model: backend, file, thread count.
type ModelKey = (String, PathBuf, usize);

struct Worker {
    matrix: Matrix,
    slots: Vec<Slot>,
    backends: BTreeMap<String, Box<dyn Backend>>,
    loaded: Option<(ModelKey, Box<dyn LoadedModel>, LoadMeasurement)>,
    /// Tokens the loaded model's KV cache holds before prompts (`runner::fill_depth`).
    filled: usize,
    /// Quality options once the KL-divergence base is ready (prepared on the first load that scores quality).
    quality: Option<QualityOptions>,
    /// Scored once per backend × model, as `tokbench run` does.
    scored: BTreeMap<(String, String), QualityResult>,
}

pub fn worker(args: &RunArgs) -> Result<()> {
    // The protocol owns the real stdout; anything else written to fd 1 (an engine's C code included) lands on
    // stderr, so it cannot corrupt a message.
    let mut out = protocol_stdout()?;
    let matrix = options::matrix(args)?;
    let mut slots = Vec::new();
    runner::for_each_group(
        &matrix,
        |_| true,
        |group| {
            for runner::Selected { spec, depth, plan, id } in group.selected {
                slots.push(Slot {
                    id,
                    backend: group.backend.name().to_string(),
                    engine: group.engine.clone(),
                    model_ref: group.model_ref.clone(),
                    model_info: group.model_info.clone(),
                    options: group.options.clone(),
                    spec: spec.clone(),
                    depth,
                    sampling: plan.sampling,
                    prompt: None,
                    samples: Vec::new(),
                    load: None,
                    error: None,
                });
            }
            Ok(())
        },
    )?;
    let hello = Hello::new(
        env!("CARGO_PKG_VERSION"),
        crate::git::stamp(&std::env::current_dir().unwrap_or_default()),
        matrix.plan.warmup,
        matrix.plan.runs,
        slots.iter().map(|s| s.id.clone()).collect(),
    );
    send(&mut out, &hello)?;
    let mut worker = Worker {
        matrix,
        slots,
        backends: BTreeMap::new(),
        loaded: None,
        filled: 0,
        quality: None,
        scored: BTreeMap::new(),
    };
    let mut input = BufReader::new(std::io::stdin().lock());
    while let Some(line) = read_line(&mut input)? {
        let request: Request = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => {
                send(&mut out, &Reply::Error { message: format!("not a request of this protocol version: {e}") })?;
                continue;
            }
        };
        let reply = match request {
            Request::Finish => {
                let results = worker.results()?;
                return send(&mut out, &Reply::Results { results: Box::new(results) });
            }
            Request::Warmup { id, runs } => worker.warmup(&id, runs).map(|()| Reply::Done),
            Request::Measure { id } => worker.measure(&id).map(|s| Reply::Sample { sample: Box::new(s) }),
        };
        let reply = reply.unwrap_or_else(|e| Reply::Error { message: format!("{e:#}") });
        send(&mut out, &reply)?;
    }
    Ok(()) // the driver went away without Finish: nothing to report to
}

impl Worker {
    fn slot(&self, id: &BenchmarkId) -> Result<usize> {
        let i = self.slots.iter().position(|s| &s.id == id);
        let i = i.with_context(|| format!("benchmark {id} is not in this worker's matrix"))?;
        if let Some(e) = &self.slots[i].error {
            bail!("benchmark {id} already failed: {e}");
        }
        Ok(i)
    }

    /// Loads the slot's model unless it is the one loaded, and resolves its prompt on it.
    fn prepare(&mut self, i: usize) -> Result<()> {
        let slot = &self.slots[i];
        let key: ModelKey = (slot.backend.clone(), slot.model_ref.path.clone(), slot.options.threads);
        if self.loaded.as_ref().is_none_or(|(k, _, _)| *k != key) {
            self.loaded = None; // free the previous model before loading the next
            if !self.backends.contains_key(&slot.backend) {
                let backend = registry::create(&slot.backend, &self.matrix.servers)?;
                self.backends.insert(slot.backend.clone(), backend);
            }
            let backend = self.backends[&slot.backend].as_ref();
            let (mut model, load) = engine::load_model(backend, &slot.model_ref.path, &slot.options)
                .with_context(|| format!("loading {} with {}", slot.model_ref.name, slot.backend))?;
            let quality_key = (slot.backend.clone(), slot.model_info.name.clone());
            let can = registry::capabilities(&slot.backend, &self.matrix.servers).expect("a backend of the matrix");
            // A synthetic model's text is noise: its quality is never scored (as `tokbench run`).
            let scores = can.scores_quality && slot.model_info.synthetic.is_none();
            if let (Some(plan), true, false) = (&self.matrix.quality, scores, self.scored.contains_key(&quality_key)) {
                if self.quality.is_none() {
                    self.quality = Some(runner::prepare_quality(&self.matrix, &slot.backend, plan)?);
                }
                let options = self.quality.as_ref().expect("prepared above");
                let engine = format!("{} {}", slot.engine.backend, slot.engine.version);
                let q = score_corpus(model.as_mut(), &slot.model_ref.path, &engine, options)
                    .with_context(|| format!("perplexity of {}", slot.model_info.name))?;
                self.scored.insert(quality_key, q);
            }
            self.loaded = Some((key, model, load));
            self.filled = 0;
        }
        let (_, model, load) = self.loaded.as_mut().expect("loaded above");
        let slot = &mut self.slots[i];
        // Benchmarks of one model at different depths alternate: refill when the depth changes.
        runner::fill_depth(model.as_mut(), &mut self.filled, slot.depth)?;
        slot.model_info.n_params = model.details().n_params;
        slot.load = Some(load.clone());
        if slot.prompt.is_none() {
            slot.prompt = Some(prompts::resolve_at_depth(&slot.spec, slot.depth, model.as_ref())?);
        }
        Ok(())
    }

    /// Runs `f` on the slot's model; an error fails the benchmark for good (as in `tokbench run`).
    fn on_slot<T>(
        &mut self,
        id: &BenchmarkId,
        f: impl FnOnce(&mut dyn LoadedModel, &LoadMeasurement, &ResolvedPrompt) -> Result<T>,
    ) -> Result<T> {
        let i = self.slot(id)?;
        let outcome = self.prepare(i).and_then(|()| {
            let (_, model, load) = self.loaded.as_mut().expect("prepared");
            f(model.as_mut(), load, self.slots[i].prompt.as_ref().expect("resolved in prepare"))
        });
        if let Err(e) = &outcome {
            self.slots[i].error = Some(format!("{e:#}"));
        }
        outcome
    }

    fn warmup(&mut self, id: &BenchmarkId, runs: usize) -> Result<()> {
        let sampling = self.slots[self.slot(id)?].sampling;
        self.on_slot(id, |model, load, prompt| {
            for _ in 0..runs {
                engine::measure_once(model, load, prompt, sampling)?;
            }
            Ok(())
        })
    }

    fn measure(&mut self, id: &BenchmarkId) -> Result<RunSample> {
        let sampling = self.slots[self.slot(id)?].sampling;
        let sample = self.on_slot(id, |model, load, prompt| engine::measure_once(model, load, prompt, sampling))?;
        let i = self.slot(id)?;
        self.slots[i].samples.push(sample.clone());
        Ok(sample)
    }

    /// The run as `tokbench run` would have written it: measured benchmarks, and failures with their completed runs.
    fn results(&mut self) -> Result<RunResults> {
        let mut results = runner::new_results();
        for slot in &mut self.slots {
            let samples = std::mem::take(&mut slot.samples);
            if let Some(error) = slot.error.take() {
                results.failures.push(FailedBenchmark {
                    id: slot.id.clone(),
                    stage: None,
                    error,
                    completed_runs: samples,
                });
                continue;
            }
            let (Some(prompt), Some(load), false) = (&slot.prompt, &slot.load, samples.is_empty()) else {
                continue; // never asked for
            };
            let plan = RunPlan { sampling: slot.sampling, ..self.matrix.plan.clone() };
            let mut result = runner::benchmark_result(
                slot.id.clone(),
                &slot.engine,
                &slot.model_info,
                &slot.options,
                &plan,
                prompt,
                load,
                samples,
            );
            result.quality = self.scored.get(&(slot.backend.clone(), slot.model_info.name.clone())).cloned();
            results.benchmarks.push(result);
        }
        pareto::mark_run(&mut results)?;
        Ok(results)
    }
}

fn send(out: &mut impl Write, message: &impl serde::Serialize) -> Result<()> {
    let mut line = serde_json::to_vec(message)?;
    ensure!(line.len() < MAX_LINE_BYTES, "a worker message of {} bytes is over the protocol's limit", line.len());
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush().context("the driver closed the worker's stdout")
}

/// The process's real stdout, for protocol lines only; fd 1 is pointed at stderr for everyone else.
#[cfg(unix)]
fn protocol_stdout() -> Result<File> {
    use std::os::fd::FromRawFd;
    std::io::stdout().flush()?;
    // SAFETY: dup/dup2 on the process's own standard descriptors; the new fd is owned by the File alone.
    let fd = unsafe { libc::dup(1) };
    ensure!(fd >= 0, "cannot duplicate stdout: {}", std::io::Error::last_os_error());
    ensure!(unsafe { libc::dup2(2, 1) } >= 0, "cannot redirect stdout: {}", std::io::Error::last_os_error());
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[cfg(not(unix))]
fn protocol_stdout() -> Result<std::io::Stdout> {
    Ok(std::io::stdout())
}
