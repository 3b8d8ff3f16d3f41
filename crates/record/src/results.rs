//! The results record: the one thing every part of tokbench shares. One JSON file per `tokbench run`.
//!
//! Bump [`SCHEMA_VERSION`] on any change that an older reader would misread; readers refuse other versions with a
//! clear error instead of guessing.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::id::BenchmarkId;
use crate::machine::Machine;
use crate::metric::Metric;
use crate::quality::{ParetoMarks, QualityResult};
use crate::setup::{EngineInfo, ModelInfo, PromptInfo, Settings};
use crate::summary::{Summary, Warning};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    pub schema_version: u32,
    pub tokbench_version: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The project's own commit when the run was made (None outside a git checkout).
    pub git: Option<GitStamp>,
    pub machine: Machine,
    pub benchmarks: Vec<BenchmarkResult>,
    /// Benchmarks that could not finish (a server that refused, timed out or broke its stream, ...): the error and
    /// the timed runs completed before it. The rest of the matrix ran on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FailedBenchmark>,
    /// Concurrency sweeps of the servers in the run (`--concurrency`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub concurrency: Vec<crate::sweep::ConcurrencySweep>,
    /// The test hook `TOKBENCH_INJECT_TOKEN_DELAY_US` was set: every generated token was delayed by this many µs on
    /// purpose (the gate's end-to-end tests make a real slowdown with it). Not a measurement to keep; the gate's
    /// report says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected_token_delay_us: Option<u64>,
    /// What the matrix was made from, so `bless` can tell a run of the committed config's whole matrix from a
    /// partial or altered one. Absent in results written before it was recorded (and in A/B workers' results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<MatrixStamp>,
}

/// The config file a run's matrix came from and the command-line flags that changed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixStamp {
    /// The config file as given (None: no config, flags only).
    pub config: Option<String>,
    /// SHA-256 of the config file's bytes.
    pub config_sha256: Option<String>,
    /// Flags that change what is measured or how (`--filter`, `--prompt`, `--runs`, ...), by name.
    pub overrides: Vec<String>,
}

impl RunResults {
    /// The report's warning about [`RunResults::injected_token_delay_us`], if it was set.
    pub fn injection_note(&self, side: &str) -> Option<String> {
        self.injected_token_delay_us.map(|us| {
            format!(
                "the {side} results were measured with the test hook TOKBENCH_INJECT_TOKEN_DELAY_US = {us} µs per token: \
                 a slowdown made on purpose, not a measurement"
            )
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FailedBenchmarkJson")]
pub struct FailedBenchmark {
    pub id: BenchmarkId,
    /// The part of the benchmark that failed when it was not the timed runs themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<FailedStage>,
    /// The whole error chain, outermost first.
    pub error: String,
    /// Timed runs that completed before the failure (not summarised: too few, and maybe disturbed).
    pub completed_runs: Vec<RunSample>,
}

/// How a failure is read: files written before [`FailedStage`] existed named a failed sweep `<id>/concurrency`.
#[derive(Deserialize)]
struct FailedBenchmarkJson {
    id: String,
    #[serde(default)]
    stage: Option<FailedStage>,
    error: String,
    completed_runs: Vec<RunSample>,
}

impl TryFrom<FailedBenchmarkJson> for FailedBenchmark {
    type Error = anyhow::Error;
    fn try_from(f: FailedBenchmarkJson) -> Result<FailedBenchmark> {
        let (id, stage) = match f.id.strip_suffix("/concurrency") {
            Some(id) => (id.parse()?, Some(FailedStage::ConcurrencySweep)),
            None => (f.id.parse()?, f.stage),
        };
        Ok(FailedBenchmark { id, stage, error: f.error, completed_runs: f.completed_runs })
    }
}

/// A part of a benchmark that can fail on its own after the timed runs succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailedStage {
    /// The server's concurrency sweep (`--concurrency`).
    ConcurrencySweep,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GitStamp {
    pub commit: String,
    pub branch: Option<String>,
    /// Uncommitted changes to tracked files.
    pub dirty: bool,
}

/// One backend × model × settings × prompt: raw samples and their summaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkResult {
    /// Stable id, `backend/model/quantization/prompt/tN` in JSON; also the criterion benchmark id.
    pub id: BenchmarkId,
    pub engine: EngineInfo,
    pub model: ModelInfo,
    pub settings: Settings,
    pub prompt: PromptInfo,
    pub load: LoadMeasurement,
    pub warmup_runs: usize,
    /// Timed runs, in the order they ran. Warmup runs are not kept.
    pub runs: Vec<RunSample>,
    pub summary: BTreeMap<Metric, Summary>,
    /// Warnings about this benchmark's numbers (too few runs, high variation, outliers); sentences in JSON.
    pub warnings: Vec<Warning>,
    /// The model's quality on the config's `[quality]` corpus (the same for every benchmark of the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityResult>,
    /// Where this configuration sits on the run's speed-against-perplexity Pareto frontiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pareto: Option<ParetoMarks>,
    /// Bandwidth achieved while decoding, against the machine's (see [`crate::roofline`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roofline: Option<crate::roofline::Roofline>,
}

/// Joules the machine's energy counter counted over one run's prefill and decode windows (package-wide: see
/// `tokbench_core::energy`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EnergySample {
    pub prefill_j: f64,
    pub decode_j: f64,
}

/// A server's own timing of one request, as it reported it (llama-server `timings`, Ollama `*_duration`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerTimings {
    pub prompt_tokens: Option<u64>,
    pub prompt_s: Option<f64>,
    /// Prompt tokens the server took from its cache instead of evaluating (llama-server `cache_n`).
    pub cached_tokens: Option<u64>,
    pub generated_tokens: Option<u64>,
    pub generation_s: Option<f64>,
}

impl ServerTimings {
    pub fn prefill_tps(&self) -> Option<f64> {
        let (n, s) = (self.prompt_tokens?, self.prompt_s?);
        (s > 0.0).then(|| n as f64 / s)
    }
    /// Generated tokens over the server's generation time (llama-server's `predicted_per_second`).
    pub fn decode_tps(&self) -> Option<f64> {
        let (n, s) = (self.generated_tokens?, self.generation_s?);
        (s > 0.0).then(|| n as f64 / s)
    }
}

/// What an in-process engine reports about one run itself, beside the clocks (MLX). Optional fields: an older
/// reader ignores the block, so the schema version is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct EngineRunReport {
    /// The engine allocator's own peak during the run (MLX `get_peak_memory`, reset right before the run): weights,
    /// KV cache and activations as the engine accounts them, which RSS (page cache, allocator slack) does not show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_peak_bytes: Option<u64>,
    /// Decode steps 1..n-1: seconds the host spent outside the engine's evaluation — building each step's lazy graph
    /// (the forward pass and sampling as MLX operations, before they are handed to MLX) — summed. Divided by the decode
    /// time (`token[n-1] − token[0]`) it is the share of decode spent in that host work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_host_s: Option<f64>,
}

/// Measured once per loaded model: from opening the file to a context ready to decode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadMeasurement {
    pub load_s: f64,
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    /// Peak RSS during the load (a peak window around it). Absent in results written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_peak_bytes: Option<u64>,
}

/// The one definition of a model's RAM cost (the reports' "RAM Δ", the gated `ram_delta_bytes`, criterion's
/// `peak_ram`): the highest RSS seen over the load and a run's generation, minus RSS right before the load. Weights
/// that are memory-mapped count once touched, so this is about the model's resident size plus KV cache and compute
/// buffers. (RSS *during* a generation alone, [`RunSample::peak_rss_delta_bytes`], barely moves: everything is
/// resident before it starts.) Results written before the load's peak was kept use the RSS after the load, a
/// lower bound of that peak.
pub fn ram_delta_bytes(load: &LoadMeasurement, run_peak_rss_bytes: u64) -> u64 {
    let load_peak = load.rss_peak_bytes.unwrap_or(load.rss_after_bytes);
    load_peak.max(run_peak_rss_bytes).saturating_sub(load.rss_before_bytes)
}

/// One timed run. Raw enough that any summary can be recomputed and any regression re-judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSample {
    pub ttft_s: f64,
    pub tokenize_s: f64,
    pub prefill_s: f64,
    pub prefill_tps: f64,
    pub decode_tps: Option<f64>,
    pub e2e_s: f64,
    pub itl_p50_s: Option<f64>,
    pub itl_p90_s: Option<f64>,
    pub itl_p99_s: Option<f64>,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub rss_start_bytes: u64,
    pub rss_peak_bytes: u64,
    /// Peak RSS during the generation minus RSS when it started (shown as "gen. RAM Δ").
    pub peak_rss_delta_bytes: u64,
    /// [`ram_delta_bytes`] of this run. `None` only in a file written before it existed, until
    /// [`RunResults::read`] derives it from the file's own fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_delta_bytes: Option<u64>,
    pub peak_method: PeakMethod,
    /// When each token was sampled, seconds from the start of the request.
    pub token_times_s: Vec<f64>,
    /// Token ids; `u32::MAX` where the engine did not say (servers stream text).
    pub tokens: Vec<u32>,
    /// The server's own timing of this request, beside the client-measured figures above (HTTP backends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerTimings>,
    /// The engine's own account of this run (MLX: its allocator's peak, host time per decode step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineRunReport>,
    /// Where the machine has an energy counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<EnergySample>,
    /// GPU memory the process held right after this run (NVIDIA: NVML's per-process used memory, summed over GPUs).
    /// A GPU allocator keeps what it grew to, so this is the run's high-water mark. Absent without a GPU context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory_bytes: Option<u64>,
}

/// Where a run's peak RSS came from (`tokbench_core::memory`), so results say how far to trust it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeakMethod {
    /// Linux: VmHWM (kernel high-water mark) reset at window start by writing "5" to /proc/self/clear_refs; exact,
    /// cannot miss a spike.
    LinuxHighWaterMark,
    /// macOS: the task's lifetime max phys_footprint, which rose inside the window, so it is exact. (When it did not
    /// rise, the reading comes from the sampler and says `Sampler`.)
    MacPhysFootprint,
    /// Fallback anywhere: a thread sampling current RSS every `interval_us` µs; can miss spikes shorter than that.
    Sampler { interval_us: u64 },
}

impl RunSample {
    /// Share of the decode time the host spent outside the engine's evaluation (see [`EngineRunReport`]).
    pub fn decode_host_fraction(&self) -> Option<f64> {
        let host = self.engine?.decode_host_s?;
        let decode = self.token_times_s.last()? - self.token_times_s.first()?;
        (decode > 0.0).then(|| host / decode)
    }

    pub fn value(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::TtftS => Some(self.ttft_s),
            Metric::PrefillTps => Some(self.prefill_tps),
            Metric::DecodeTps => self.decode_tps,
            Metric::E2eS => Some(self.e2e_s),
            Metric::ItlP50S => self.itl_p50_s,
            Metric::ItlP90S => self.itl_p90_s,
            Metric::ItlP99S => self.itl_p99_s,
            Metric::RamDeltaBytes => self.ram_delta_bytes.map(|b| b as f64),
            Metric::PeakRssDeltaBytes => Some(self.peak_rss_delta_bytes as f64),
            Metric::GpuMemoryBytes => self.gpu_memory_bytes.map(|b| b as f64),
            Metric::PrefillJoulesPerToken => {
                self.energy.filter(|_| self.prompt_tokens > 0).map(|e| e.prefill_j / self.prompt_tokens as f64)
            }
            Metric::DecodeJoulesPerToken => self
                .energy
                .filter(|_| self.generated_tokens > 1)
                .map(|e| e.decode_j / (self.generated_tokens - 1) as f64),
            // Per model, not per run: see `BenchmarkResult::quality`.
            Metric::Perplexity | Metric::MeanKld => None,
        }
    }
}

impl BenchmarkResult {
    /// This benchmark's roofline (see [`crate::roofline`]), against `machine`'s bandwidth.
    pub fn compute_roofline(&self, machine: &Machine) -> Option<crate::roofline::Roofline> {
        let runs: Vec<crate::roofline::DecodeRun> = self
            .runs
            .iter()
            .map(|r| crate::roofline::DecodeRun {
                prompt_tokens: r.prompt_tokens,
                generated_tokens: r.generated_tokens,
                decode_tps: r.decode_tps,
            })
            .collect();
        let traffic = self.model.decode_traffic.as_ref()?;
        let depth = self.prompt.depth as u64;
        // Offloaded, and llama.cpp had a GPU to offload to (the GPU's bandwidth is measured only through one).
        let on_gpu = self.settings.n_gpu_layers > 0 && machine.gpu_bandwidth.is_some();
        crate::roofline::compute(traffic, self.settings.kv_cache_type.as_deref(), &runs, depth, machine, on_gpu)
    }

    /// Results from before `ram_delta_bytes` was recorded (baselines blessed then, an older base build in an A/B
    /// job) carry everything it is made of: derive it, so they are still gated on RAM.
    pub fn derive_missing_ram_delta(&mut self) {
        for run in self.runs.iter_mut().filter(|r| r.ram_delta_bytes.is_none()) {
            run.ram_delta_bytes = Some(ram_delta_bytes(&self.load, run.rss_peak_bytes));
        }
    }

    /// A quality metric's value from the `quality` record, when it was measured.
    pub fn quality_value(&self, metric: Metric) -> Option<f64> {
        let q = self.quality.as_ref()?;
        match metric {
            Metric::Perplexity => Some(q.ppl),
            Metric::MeanKld => q.kld.as_ref().map(|k| k.summary.mean_kld),
            _ => None,
        }
    }
}

impl RunResults {
    pub fn read(path: &Path) -> Result<RunResults> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read results file {}", path.display()))?;
        let probe: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON: is it a tokbench results file?", path.display()))?;
        match probe.get("schema_version").and_then(|v| v.as_u64()) {
            Some(v) if v == SCHEMA_VERSION as u64 => {}
            Some(v) => bail!(
                "{} has results schema version {v}, this tokbench reads version {SCHEMA_VERSION}: re-run the benchmark with this version",
                path.display()
            ),
            None => bail!("{} has no schema_version: it is not a tokbench results file", path.display()),
        }
        let mut results: RunResults = serde_json::from_value(probe)
            .with_context(|| format!("{} does not match the results schema", path.display()))?;
        results.derive_missing_ram_delta();
        Ok(results)
    }

    /// See [`BenchmarkResult::derive_missing_ram_delta`]; done by [`RunResults::read`], and by whoever receives
    /// results another way (an A/B worker's reply).
    pub fn derive_missing_ram_delta(&mut self) {
        self.benchmarks.iter_mut().for_each(BenchmarkResult::derive_missing_ram_delta);
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        write_json_atomic(path, self)
    }
}

/// Writes JSON atomically (see [`write_atomic`]).
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Writes to a temporary file beside `path`, syncs it, then renames it over `path`: a reader sees the old file or
/// the new one, never half of one, and a crash leaves the old file intact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.json");
        write_json_atomic(&path, &vec![1, 2, 3]).unwrap();
        write_json_atomic(&path, &vec![4]).unwrap();
        let back: Vec<i32> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, vec![4]);
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn reading_refuses_other_schema_versions_and_foreign_json() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        std::fs::write(&p, r#"{"schema_version": 999}"#).unwrap();
        let e = RunResults::read(&p).unwrap_err().to_string();
        assert!(e.contains("schema version 999") && e.contains("re-run"), "{e}");
        std::fs::write(&p, r#"{"hello": 1}"#).unwrap();
        assert!(RunResults::read(&p).unwrap_err().to_string().contains("not a tokbench results file"));
        std::fs::write(&p, "not json").unwrap();
        assert!(RunResults::read(&p).unwrap_err().to_string().contains("not valid JSON"));
    }

    #[test]
    fn an_engine_report_gives_the_host_share_of_decode_and_is_optional_in_json() {
        let mut run = RunSample {
            ttft_s: 0.1,
            tokenize_s: 0.0,
            prefill_s: 0.1,
            prefill_tps: 10.0,
            decode_tps: Some(10.0),
            e2e_s: 1.1,
            itl_p50_s: None,
            itl_p90_s: None,
            itl_p99_s: None,
            prompt_tokens: 1,
            generated_tokens: 3,
            rss_start_bytes: 0,
            rss_peak_bytes: 0,
            peak_rss_delta_bytes: 0,
            ram_delta_bytes: Some(0),
            peak_method: PeakMethod::LinuxHighWaterMark,
            token_times_s: vec![0.1, 0.6, 1.1],
            tokens: vec![1, 2, 3],
            server: None,
            engine: None,
            gpu_memory_bytes: None,
            energy: None,
        };
        assert_eq!(run.decode_host_fraction(), None);
        assert_eq!(run.value(Metric::DecodeJoulesPerToken), None, "no counter, no number");
        run.energy = Some(EnergySample { prefill_j: 0.5, decode_j: 1.0 });
        // 0.5 J over 1 prompt token; 1.0 J over the 2 decoded tokens (3 generated, the first from prefill).
        assert_eq!(run.value(Metric::PrefillJoulesPerToken), Some(0.5));
        assert_eq!(run.value(Metric::DecodeJoulesPerToken), Some(0.5));
        run.energy = None;
        let json = serde_json::to_string(&run).unwrap();
        assert!(!json.contains("engine"), "absent report not written: {json}");
        run.engine = Some(EngineRunReport { device_peak_bytes: Some(7), decode_host_s: Some(0.05) });
        // 0.05 s of host work over a decode of 1.1 − 0.1 = 1.0 s.
        assert!((run.decode_host_fraction().unwrap() - 0.05).abs() < 1e-12);
        let back: RunSample = serde_json::from_str(&serde_json::to_string(&run).unwrap()).unwrap();
        assert_eq!(back.engine, run.engine);
    }

    #[test]
    fn ram_delta_spans_load_and_run_and_is_derived_for_files_written_before_it() {
        let load = LoadMeasurement {
            load_s: 0.2,
            rss_before_bytes: 40 << 20,
            rss_after_bytes: 180 << 20,
            rss_peak_bytes: Some(200 << 20),
        };
        // The load's peak is the higher one here; a run that rises above it sets the figure instead.
        assert_eq!(ram_delta_bytes(&load, 170 << 20), 160 << 20);
        assert_eq!(ram_delta_bytes(&load, 230 << 20), 190 << 20);
        // Without the load's peak (older files) the RSS after the load stands in for it.
        let old = LoadMeasurement { rss_peak_bytes: None, ..load };
        assert_eq!(ram_delta_bytes(&old, 170 << 20), 140 << 20);
        assert!(!serde_json::to_string(&old).unwrap().contains("rss_peak_bytes"));

        // A results file written before the field: RunResults::read fills it from the file's own load and runs.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../gate/tests/data/sessions/ab/aa01-base.json");
        let mut value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for b in value["benchmarks"].as_array_mut().unwrap() {
            b["load"].as_object_mut().unwrap().remove("rss_peak_bytes");
            for r in b["runs"].as_array_mut().unwrap() {
                r.as_object_mut().unwrap().remove("ram_delta_bytes");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("old.json");
        std::fs::write(&file, value.to_string()).unwrap();
        let results = RunResults::read(&file).unwrap();
        for b in &results.benchmarks {
            for r in &b.runs {
                let expected = b.load.rss_after_bytes.max(r.rss_peak_bytes) - b.load.rss_before_bytes;
                assert_eq!(r.ram_delta_bytes, Some(expected), "{}", b.id);
                // A 98 MB model: its resident cost is tens of MiB at least, never the 0 B of the in-run delta.
                assert!(expected > 50 << 20, "{}: {expected}", b.id);
                assert_eq!(r.value(Metric::RamDeltaBytes), Some(expected as f64));
            }
        }
    }

    #[test]
    fn a_failed_sweep_reads_from_the_old_id_suffix_and_writes_a_stage() {
        let old = r#"{"id": "srv/m/Q4_1/short/t2/concurrency", "error": "boom", "completed_runs": []}"#;
        let f: FailedBenchmark = serde_json::from_str(old).unwrap();
        assert_eq!((f.id.to_string().as_str(), f.stage), ("srv/m/Q4_1/short/t2", Some(FailedStage::ConcurrencySweep)));
        let json = serde_json::to_string(&f).unwrap();
        assert!(json.contains(r#""id":"srv/m/Q4_1/short/t2","stage":"concurrency_sweep""#), "{json}");
        assert_eq!(serde_json::from_str::<FailedBenchmark>(&json).unwrap(), f);
        let plain = r#"{"id": "srv/m/Q4_1/short/t2", "error": "boom", "completed_runs": []}"#;
        assert_eq!(serde_json::from_str::<FailedBenchmark>(plain).unwrap().stage, None);
        assert!(serde_json::from_str::<FailedBenchmark>(r#"{"id": "x", "error": "", "completed_runs": []}"#).is_err());
    }
}
