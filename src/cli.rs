//! Command-line parsing: flags override the committed config; comma lists sweep, as in llama-bench.
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Result};
use clap::{Args, Parser, Subcommand};
use tokbench_core::backend::LoadOptions;
use tokbench_core::config::{parse_prompt_name, Config, ServerConfig, DEFAULT_CONFIG_FILE};
use tokbench_core::engine::RunPlan;
use tokbench_core::export;
use tokbench_core::machine::default_threads;
use tokbench_core::prompts::PromptSpec;
use tokbench_core::quality::measure::{score_corpus, QualityOptions, QualityResult};
use tokbench_core::schema::{write_atomic, FlashAttn, RunResults, Sampling};

use crate::runner::{self, Matrix, ModelRef, QualityPlan};

#[derive(Parser, Debug)]
#[command(
    name = "tokbench",
    version,
    about = "Benchmark local LLM inference: TTFT, tokens/s and peak RAM, with statistics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the benchmark matrix of the config, or an ad hoc one from flags.
    Run(Box<RunArgs>),
    /// List the backends built into this binary, with engine versions and build flags.
    Backends,
    /// Make the config's quantization ladder with llama.cpp's quantize API (up-to-date rungs are skipped).
    Quantize(QuantizeArgs),
    /// Perplexity of a model on a corpus, computed as llama.cpp's llama-perplexity does; optionally saves the
    /// model's top-k log-probabilities as a KL-divergence base, or scores KL-divergence against one.
    Perplexity(PerplexityArgs),
}

#[derive(Args, Debug)]
pub struct PerplexityArgs {
    /// GGUF file, or a model name from the config (`name` or `name@TYPE` for a ladder rung).
    #[arg(long, short = 'm')]
    pub model: String,
    /// Text corpus, e.g. WikiText-2's wiki.test.raw (`cargo xtask fetch-corpus`) or any UTF-8 file.
    #[arg(long, short = 'f')]
    pub corpus: PathBuf,
    /// Tokens per chunk (llama-perplexity -c).
    #[arg(long, short = 'c', default_value_t = 512)]
    pub ctx: usize,
    /// Score only the first K chunks.
    #[arg(long)]
    pub chunks: Option<usize>,
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// Logical batch; chunks are scored batch / ctx at a time, as llama-perplexity does.
    #[arg(long, short = 'b', default_value_t = 2048)]
    pub batch: u32,
    #[arg(long, default_value_t = 512)]
    pub ubatch: u32,
    /// Save this model's top-k log-probabilities here, as the base for `--kld-base`.
    #[arg(long)]
    pub save_base: Option<PathBuf>,
    /// Also report KL-divergence, top-token agreement and ΔPPL against this saved base.
    #[arg(long)]
    pub kld_base: Option<PathBuf>,
    /// Log-probabilities kept per token in a saved base.
    #[arg(long, default_value_t = 32)]
    pub top_k: usize,
    #[arg(long, default_value = "llama.cpp")]
    pub backend: String,
    /// Write the result as JSON.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    #[arg(long, default_value = DEFAULT_CONFIG_FILE)]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct QuantizeArgs {
    #[arg(long, default_value = DEFAULT_CONFIG_FILE)]
    pub config: PathBuf,
    /// Rungs to make (comma list). Default: every `[ladder] types` entry.
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// Only the rungs that `[run] models` uses.
    #[arg(long)]
    pub needed: bool,
    /// Remake rungs even when up to date.
    #[arg(long)]
    pub force: bool,
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
}

#[derive(Args, Debug, Default)]
pub struct RunArgs {
    /// Benchmark config; flags below override it. Without one, --model is required.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model files, or model names from the config (comma list).
    #[arg(long, short = 'm', value_delimiter = ',')]
    pub model: Vec<String>,
    /// Backends (comma list), e.g. llama.cpp.
    #[arg(long, short = 'b', value_delimiter = ',')]
    pub backend: Vec<String>,
    /// Thread counts to sweep (comma list). Default: physical cores.
    #[arg(long, short = 't', value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Prompt sets: short, medium, long, config [[prompt]] names, or pN for an exact N-token prompt (comma list).
    #[arg(long, value_delimiter = ',')]
    pub prompt: Vec<String>,
    /// Exact prompt lengths in tokens, like llama-bench -p (comma list). Replaces --prompt.
    #[arg(long, short = 'p', value_delimiter = ',')]
    pub prompt_tokens: Vec<usize>,
    /// Tokens to generate, like llama-bench -n (comma list). Overrides the prompt sets' own lengths.
    #[arg(long, short = 'n', value_delimiter = ',')]
    pub gen_tokens: Vec<usize>,
    /// Warmup generations per benchmark, discarded (default 2).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Timed generations per benchmark (default 5).
    #[arg(long, short = 'r')]
    pub runs: Option<usize>,
    #[arg(long)]
    pub ctx_size: Option<u32>,
    #[arg(long)]
    pub batch: Option<u32>,
    #[arg(long)]
    pub ubatch: Option<u32>,
    #[arg(long, short = 'g')]
    pub n_gpu_layers: Option<i32>,
    /// on, off or auto.
    #[arg(long)]
    pub flash_attn: Option<FlashAttn>,
    #[arg(long)]
    pub mmap: Option<bool>,
    /// 0 = greedy (default).
    #[arg(long)]
    pub temperature: Option<f32>,
    #[arg(long)]
    pub top_p: Option<f32>,
    #[arg(long)]
    pub seed: Option<u32>,
    /// Results JSON. Default: target/tokbench/runs/<time>.json, copied to target/tokbench/latest.json.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Also write the results as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Also write the results table as markdown.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Run only benchmarks whose id contains one of these substrings (comma list), e.g. `short/t2`.
    #[arg(long, value_delimiter = ',')]
    pub filter: Vec<String>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Skip the config's [quality] section (perplexity, KL-divergence, Pareto frontier).
    #[arg(long)]
    pub no_quality: bool,
    /// Root URL of a running server, for `--backend openai` (OpenAI-compatible: llama-server, vLLM, mlx_lm.server,
    /// MLC-LLM …) or `--backend ollama`, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: Option<String>,
    /// The `model` sent to the server (default: the first model it lists; required for Ollama).
    #[arg(long)]
    pub model_name: Option<String>,
    /// OpenAI-compatible endpoint: completions (raw prompt, default) or chat (the server applies its template).
    #[arg(long, default_value = "completions")]
    pub api: String,
    /// Environment variable holding the server's API key (sent as a bearer token, never logged or saved).
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// Server backends: concurrent streams to sweep after each benchmark (comma list), e.g. 1,2,4,8.
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Vec<usize>,
    /// Requests each stream sends, back to back, at every concurrency level (default 4).
    #[arg(long)]
    pub requests_per_stream: Option<usize>,
    /// Seconds a server may take to send the first token before the run fails (default 120).
    #[arg(long)]
    pub first_token_timeout: Option<f64>,
}

pub fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(&args).map(|_| ()),
        Command::Quantize(args) => {
            let config = Config::load(&args.config)?;
            let mut types = args.types.clone();
            if types.is_empty() {
                let ladder = config.ladder.as_ref().map(|l| l.types.clone()).unwrap_or_default();
                types = if args.needed {
                    // The matrix's rungs, and the KL-divergence base when it is one.
                    let kld_base = config.quality.as_ref().and_then(|q| q.kld_base.as_ref());
                    let used: Vec<String> = config
                        .run
                        .models
                        .iter()
                        .chain(kld_base)
                        .filter_map(|m| m.split_once('@'))
                        .map(|(_, t)| t.to_string())
                        .collect();
                    ladder.into_iter().filter(|t| used.iter().any(|u| u.eq_ignore_ascii_case(t))).collect()
                } else {
                    ladder
                };
            }
            let threads = args.threads.unwrap_or_else(default_threads);
            for path in crate::ladder::make(&config, &types, threads, args.force, std::io::stderr().is_terminal())? {
                let size = std::fs::metadata(&path)?.len();
                println!("{}\t{}", tokbench_core::metrics::format_bytes(size as f64), path.display());
            }
            Ok(())
        }
        Command::Perplexity(args) => perplexity(&args).map(|_| ()),
        Command::Backends => {
            for name in crate::backends::available() {
                let info = crate::backends::create(name, &[])?.engine_info();
                println!("{name}\t{}\t{}", info.version, info.build_info);
            }
            Ok(())
        }
    }
}

/// Builds the matrix from config + flags.
pub fn matrix(args: &RunArgs) -> Result<Matrix> {
    let (config, config_dir) = match &args.config {
        Some(path) => (Some(Config::load(path)?), path.parent().unwrap_or(Path::new(".")).to_path_buf()),
        None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
            (Some(Config::load(Path::new(DEFAULT_CONFIG_FILE))?), PathBuf::from("."))
        }
        None => (None, PathBuf::from(".")),
    };
    let run = config.as_ref().map(|c| &c.run);

    let mut backends = pick(&args.backend, run.map(|r| r.backends.clone()), vec!["llama.cpp".to_string()]);
    if args.backend.is_empty() {
        // The config's matrix names every backend the project measures; one this binary lacks is skipped, loudly.
        backends.retain(|b| match crate::backends::not_built_in(b) {
            Some(why) => {
                eprintln!("warning: skipping backend {b:?} of the config: {why}");
                false
            }
            None => true,
        });
        ensure!(!backends.is_empty(), "none of the config's backends is built into this tokbench");
    }
    let model_names = pick(&args.model, run.map(|r| r.models.clone()), Vec::new());
    // A server tokbench attaches to serves its own model; everything else needs a model file.
    let servers_attached = args.url.is_some()
        || backends
            .iter()
            .all(|b| config.as_ref().is_some_and(|c| c.servers.iter().any(|s| s.name == *b && s.command.is_none())));
    ensure!(
        !model_names.is_empty() || servers_attached,
        "no model to run: pass --model PATH, or run from a directory with {DEFAULT_CONFIG_FILE}"
    );
    let resolve = |name: &String| match &config {
        Some(c) if c.model(name).is_some() || name.contains('@') => {
            let spec = c.resolve_model(name)?;
            let derived_from = spec.derived_from();
            Ok(ModelRef { name: spec.name, path: spec.path, derived_from })
        }
        _ => {
            let path = PathBuf::from(name);
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| name.clone());
            Ok(ModelRef { name: stem, path, derived_from: None })
        }
    };
    let models = model_names.iter().map(resolve).collect::<Result<Vec<_>>>()?;
    let quality = match config.as_ref().and_then(|c| c.quality.as_ref()) {
        Some(q) if !args.no_quality => Some(QualityPlan {
            options: QualityOptions {
                corpus: config_dir.join(&q.corpus),
                n_ctx: q.ctx,
                max_chunks: q.chunks,
                save_base: None,
                kld_base: None,
                top_k: q.top_k,
            },
            kld_base: q.kld_base.as_ref().map(resolve).transpose()?,
        }),
        _ => None,
    };
    let threads =
        pick(&args.threads, run.map(|r| r.threads.clone()).filter(|t| !t.is_empty()), vec![default_threads()]);
    ensure!(threads.iter().all(|&t| t > 0), "--threads must be positive");

    let default_gen = run.map_or(128, |r| r.gen_tokens);
    let mut prompts: Vec<PromptSpec> = if !args.prompt_tokens.is_empty() {
        let gens = if args.gen_tokens.is_empty() { vec![default_gen] } else { args.gen_tokens.clone() };
        let mut v = Vec::new();
        for &p in &args.prompt_tokens {
            for &n in &gens {
                v.push(PromptSpec::Length { prompt_tokens: p, gen_tokens: n });
            }
        }
        v
    } else {
        let names =
            pick(&args.prompt, run.map(|r| r.prompts.clone()), vec!["short".into(), "medium".into(), "long".into()]);
        let mut v = Vec::new();
        for name in &names {
            let spec = match &config {
                Some(c) => c.prompt_spec(name, &config_dir)?,
                None => parse_prompt_name(name, default_gen)?,
            };
            if args.gen_tokens.is_empty() {
                v.push(spec);
            } else {
                for &n in &args.gen_tokens {
                    v.push(with_gen_tokens(&spec, n));
                }
            }
        }
        v
    };
    prompts.dedup();
    for p in &prompts {
        ensure!(
            p.gen_tokens() > 0,
            "prompt {:?} asks for 0 generated tokens: ask for at least 1 (--gen-tokens)",
            p.name()
        );
        if let PromptSpec::Length { prompt_tokens: 0, .. } = p {
            bail!("--prompt-tokens 0: a prompt needs at least 1 token");
        }
    }

    let load = LoadOptions {
        threads: threads[0],
        batch: args.batch.or(run.map(|r| r.batch)).unwrap_or(2048),
        ubatch: args.ubatch.or(run.map(|r| r.ubatch)).unwrap_or(512),
        n_gpu_layers: args.n_gpu_layers.or(run.map(|r| r.n_gpu_layers)).unwrap_or(99),
        ctx_size: args.ctx_size.or(run.map(|r| r.ctx_size)).unwrap_or(2048),
        flash_attn: args.flash_attn.or(run.map(|r| r.flash_attn)).unwrap_or(FlashAttn::Auto),
        mmap: args.mmap.or(run.map(|r| r.mmap)).unwrap_or(true),
    };
    let defaults = RunPlan::default();
    let plan = RunPlan {
        warmup: args.warmup.or(run.map(|r| r.warmup)).unwrap_or(defaults.warmup),
        runs: args.runs.or(run.map(|r| r.runs)).unwrap_or(defaults.runs),
        sampling: Sampling {
            temperature: args.temperature.or(run.map(|r| r.temperature)).unwrap_or(0.0),
            top_p: args.top_p.or(run.map(|r| r.top_p)).unwrap_or(1.0),
            seed: args.seed.or(run.map(|r| r.seed)).unwrap_or(Sampling::GREEDY.seed),
        },
        cv_threshold: run.map_or(defaults.cv_threshold, |r| r.cv_threshold),
    };
    ensure!(plan.runs > 0, "--runs must be at least 1");

    let mut servers = config.as_ref().map(|c| c.servers.clone()).unwrap_or_default();
    if let Some(url) = &args.url {
        let named: Vec<&String> = backends.iter().filter(|b| *b == "openai" || *b == "ollama").collect();
        ensure!(
            !named.is_empty(),
            "--url is for server backends: add --backend openai (OpenAI-compatible API) or --backend ollama"
        );
        for name in named {
            let api = if name == "ollama" { "ollama" } else { args.api.as_str() };
            let mut server = ServerConfig::attached(name, api, url, args.model_name.clone());
            server.api_key_env = args.api_key_env.clone();
            servers.retain(|s| s.name != server.name);
            servers.push(server);
        }
    }
    if let Some(t) = args.first_token_timeout {
        ensure!(t > 0.0, "--first-token-timeout must be positive");
        servers.iter_mut().for_each(|s| s.first_token_timeout_s = t);
    }
    let concurrency = pick(&args.concurrency, run.map(|r| r.concurrency.clone()), Vec::new());
    ensure!(concurrency.iter().all(|&c| c > 0), "--concurrency levels must be at least 1");
    let requests_per_stream = args.requests_per_stream.or(run.map(|r| r.requests_per_stream)).unwrap_or(4);
    ensure!(requests_per_stream > 0, "--requests-per-stream must be at least 1");
    Ok(Matrix {
        backends,
        models,
        threads,
        prompts,
        load,
        plan,
        filter: args.filter.clone(),
        quality,
        servers,
        explicit_models: !args.model.is_empty(),
        backend_models: run.map(|r| r.backend_models.clone()).unwrap_or_default(),
        concurrency,
        requests_per_stream,
    })
}

fn pick<T: Clone>(flag: &[T], config: Option<Vec<T>>, default: Vec<T>) -> Vec<T> {
    if !flag.is_empty() {
        flag.to_vec()
    } else {
        config.unwrap_or(default)
    }
}

fn with_gen_tokens(spec: &PromptSpec, n: usize) -> PromptSpec {
    match spec {
        PromptSpec::Text { name, text, gen_tokens } if *gen_tokens != n => {
            PromptSpec::Text { name: format!("{name}-n{n}"), text: text.clone(), gen_tokens: n }
        }
        PromptSpec::Text { .. } => spec.clone(),
        PromptSpec::Length { prompt_tokens, .. } => PromptSpec::Length { prompt_tokens: *prompt_tokens, gen_tokens: n },
    }
}

/// Runs and writes results; returns them. On a failure mid-way, what was measured is written before the error.
pub fn run(args: &RunArgs) -> Result<RunResults> {
    let matrix = matrix(args)?;
    let mut results = runner::new_results();
    let outcome = runner::run(&matrix, &mut results, !args.quiet && std::io::stderr().is_terminal());
    let measured_something =
        !results.benchmarks.is_empty() || results.failures.iter().any(|f| !f.completed_runs.is_empty());
    if !measured_something {
        // Nothing measured: no results file, just the errors.
        let outcome = outcome.map(|_| ());
        outcome?;
        ensure!(results.failures.is_empty(), "{}", failure_list(&results));
        return Ok(results);
    }
    let written = write_outputs(args, &results)?;
    if let Err(e) = outcome {
        return Err(e.context(format!(
            "stopped after {} of {} benchmarks; those are saved in {}",
            results.benchmarks.len(),
            matrix.len(),
            written.display()
        )));
    }
    print!("{}", export::markdown::table(&results));
    print!("{}", export::overhead::table(&results));
    print!("{}", tokbench_core::sweep::table(&results.concurrency));
    for b in &results.benchmarks {
        for w in &b.warnings {
            eprintln!("warning: {}: {w}", b.id);
        }
    }
    eprintln!("results: {}", written.display());
    if !results.failures.is_empty() {
        bail!(
            "{} (the other {} are measured and saved in {})",
            failure_list(&results),
            results.benchmarks.len(),
            written.display()
        );
    }
    Ok(results)
}

/// "N benchmark(s) failed:" and one line per failure.
fn failure_list(results: &RunResults) -> String {
    let list: Vec<String> = results.failures.iter().map(|f| format!("  {}: {}", f.id, f.error)).collect();
    format!("{} benchmark(s) failed:\n{}", results.failures.len(), list.join("\n"))
}

fn write_outputs(args: &RunArgs, results: &RunResults) -> Result<PathBuf> {
    let path = match &args.output {
        Some(p) => p.clone(),
        None => {
            let stamp = results.created_at.replace(':', "-");
            let path = PathBuf::from("target/tokbench/runs").join(format!("{stamp}.json"));
            results.write(&PathBuf::from("target/tokbench/latest.json"))?;
            path
        }
    };
    results.write(&path)?;
    if let Some(csv_path) = &args.csv {
        let mut buf = Vec::new();
        export::csv::write(results, &mut buf)?;
        write_atomic(csv_path, &buf)?;
    }
    if let Some(md_path) = &args.markdown {
        write_atomic(md_path, export::markdown::table(results).as_bytes())?;
    }
    Ok(path)
}

/// `tokbench perplexity`: load once, score, print llama-perplexity's `PPL = x +/- se` line and the KLD summary.
pub fn perplexity(args: &PerplexityArgs) -> Result<QualityResult> {
    let path = model_path(&args.model, &args.config)?;
    tokbench_core::gguf::validate(&path)?;
    let backend = crate::backends::create(&args.backend, &[])?;
    let options = LoadOptions {
        threads: args.threads.unwrap_or_else(default_threads),
        batch: args.batch,
        ubatch: args.ubatch,
        n_gpu_layers: 99,
        // The generation context stays small; scoring makes a context of its own and frees it afterwards.
        ctx_size: 512,
        flash_attn: FlashAttn::Auto,
        mmap: true,
    };
    ensure!(args.top_k > 0, "--top-k must be at least 1");
    let mut model = backend.load(&path, &options)?;
    let quality = QualityOptions {
        corpus: args.corpus.clone(),
        n_ctx: args.ctx,
        max_chunks: args.chunks,
        save_base: args.save_base.clone(),
        kld_base: args.kld_base.clone(),
        top_k: args.top_k,
    };
    let engine = backend.engine_info();
    let result = score_corpus(model.as_mut(), &path, &format!("{} {}", engine.backend, engine.version), &quality)?;
    println!("{}", quality_report(&result));
    if let Some(out) = &args.output {
        // The quality figures at the top level, with what made them: engine and build flags, model file, machine.
        let stem = path.file_stem().map_or_else(|| args.model.clone(), |s| s.to_string_lossy().into_owned());
        let model_ref = ModelRef { name: stem, path: path.clone(), derived_from: None };
        let mut record = serde_json::to_value(&result)?;
        record["engine"] = serde_json::to_value(&engine)?;
        record["model"] = serde_json::to_value(runner::describe_model(&model_ref)?)?;
        record["machine"] = serde_json::to_value(tokbench_core::machine::Machine::detect())?;
        write_atomic(out, serde_json::to_string_pretty(&record)?.as_bytes())?;
    }
    if let Some(base) = &args.save_base {
        eprintln!("base log-probabilities (top {}): {}", args.top_k, base.display());
    }
    Ok(result)
}

/// A model given as a path, or as a config name (`name`, `name@TYPE`).
fn model_path(model: &str, config: &Path) -> Result<PathBuf> {
    let as_path = PathBuf::from(model);
    if as_path.is_file() || !config.is_file() {
        return Ok(as_path);
    }
    let config = Config::load(config)?;
    if config.model(model).is_some() || model.contains('@') {
        return Ok(config.resolve_model(model)?.path);
    }
    Ok(as_path)
}

pub fn quality_report(q: &QualityResult) -> String {
    let mut out = format!(
        "PPL = {:.4} +/- {:.5}  ({} tokens scored in {} chunks of {}, {} corpus tokens; {:.1} tokens/s evaluated)",
        q.ppl, q.ppl_std_error, q.tokens_scored, q.n_chunks, q.n_ctx, q.corpus.tokens, q.eval_tps
    );
    if let Some(k) = &q.kld {
        let s = &k.summary;
        out += &format!(
            "\nvs base {}: mean KLD {:.6} +/- {:.6}, 99th pct KLD {:.6}, same top token {:.2}%, ΔPPL {:+.4} \
             (base {:.4}), mean Δp {:+.3}%  [top-{} base]",
            k.base_model,
            s.mean_kld,
            s.kld_std_error,
            s.kld_p99,
            s.same_top_pct,
            s.delta_ppl,
            s.ppl_base,
            s.mean_delta_p,
            k.top_k
        );
    }
    out
}
