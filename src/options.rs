//! The options layer: `Config::default()` ← the config file ← flags, merged here and nowhere else. Every default
//! is written once, in `tokbench_core::config` (`RunConfig::default`, `ServerConfig`, `QualityConfig`); a flag that
//! is not given leaves the config's value, and a config that is not there is the default config.
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use tokbench_core::config::{Config, ServerConfig, DEFAULT_CONFIG_FILE};
use tokbench_core::machine::default_threads;
use tokbench_core::prompts::PromptSpec;
use tokbench_core::quality::measure::QualityOptions;
use tokbench_record::results::MatrixStamp;

use crate::cli::RunArgs;
use crate::registry;
use crate::runner::{Matrix, ModelRef, QualityPlan};

/// The config a command runs with: `--config PATH`, else `tokbench.toml` in the current directory when there is
/// one, else [`Config::default()`]. Also returns the directory relative paths in it are resolved against.
pub fn load_config(path: Option<&Path>) -> Result<(Config, PathBuf, bool)> {
    match path {
        Some(path) => Ok((Config::load(path)?, path.parent().unwrap_or(Path::new(".")).to_path_buf(), true)),
        None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
            Ok((Config::load(Path::new(DEFAULT_CONFIG_FILE))?, PathBuf::from("."), true))
        }
        None => Ok((Config::default(), PathBuf::from("."), false)),
    }
}

/// What the run's matrix is made of (see [`MatrixStamp`]): the config file that was read and its SHA-256, and the
/// flags that change what is measured or how. Output and display flags are not among them.
pub fn stamp(args: &RunArgs) -> Result<MatrixStamp> {
    let config = match &args.config {
        Some(path) => Some(path.clone()),
        None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
    };
    let config_sha256 = match &config {
        Some(path) => Some(tokbench_core::digest::sha256_file(path, |_| {})?),
        None => None,
    };
    let set = [
        ("--model", !args.model.is_empty()),
        ("--backend", !args.backend.is_empty()),
        ("--threads", !args.threads.is_empty()),
        ("--prompt", !args.prompt.is_empty()),
        ("--prompt-tokens", !args.prompt_tokens.is_empty()),
        ("--gen-tokens", !args.gen_tokens.is_empty()),
        ("--warmup", args.warmup.is_some()),
        ("--runs", args.runs.is_some()),
        ("--ctx-size", args.ctx_size.is_some()),
        ("--depth", !args.depth.is_empty()),
        ("--batch", args.batch.is_some()),
        ("--ubatch", args.ubatch.is_some()),
        ("--n-gpu-layers", args.n_gpu_layers.is_some()),
        ("--flash-attn", args.flash_attn.is_some()),
        ("--mmap", args.mmap.is_some()),
        ("--temperature", !args.temperature.is_empty()),
        ("--top-p", args.top_p.is_some()),
        ("--seed", args.seed.is_some()),
        ("--filter", !args.filter.is_empty()),
        ("--no-quality", args.no_quality),
        ("--url", args.url.is_some()),
        ("--model-name", args.model_name.is_some()),
        ("--api", args.api.is_some()),
        ("--concurrency", !args.concurrency.is_empty()),
        ("--requests-per-stream", args.requests_per_stream.is_some()),
    ];
    Ok(MatrixStamp {
        config: config.map(|p| p.display().to_string()),
        config_sha256,
        overrides: set.iter().filter(|(_, on)| *on).map(|(flag, _)| flag.to_string()).collect(),
    })
}

/// A model given as a config name (`name`, or `name@TYPE` for a ladder rung) or as a file.
pub fn resolve_model(config: &Config, name: &str) -> Result<ModelRef> {
    if config.model(name).is_some() || (name.contains('@') && config.ladder.is_some()) {
        let spec = config.resolve_model(name)?;
        let derived_from = spec.derived_from();
        return Ok(ModelRef { name: spec.name, path: spec.path, derived_from });
    }
    let path = PathBuf::from(name);
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| name.to_string());
    Ok(ModelRef { name: stem, path, derived_from: None })
}

/// The flag when given, else the config's list.
fn flag_or<T: Clone>(flag: &[T], config: &[T]) -> Vec<T> {
    if flag.is_empty() {
        config.to_vec()
    } else {
        flag.to_vec()
    }
}

/// The matrix of `tokbench run` and `cargo bench`: the config (or the default config) with the flags on top.
pub fn matrix(args: &RunArgs) -> Result<Matrix> {
    let (config, config_dir, _) = load_config(args.config.as_deref())?;
    matrix_of(&config, &config_dir, args)
}

/// The matrix of `config` (relative paths in it resolved against `config_dir`) with the flags on top.
pub fn matrix_of(config: &Config, config_dir: &Path, args: &RunArgs) -> Result<Matrix> {
    let mut run = config.run.clone();
    // Scalars: a flag replaces the config's value.
    macro_rules! flags_over_config {
        ($($field:ident),*) => { $( if let Some(v) = args.$field { run.$field = v; } )* };
    }
    flags_over_config!(warmup, runs, ctx_size, batch, ubatch, n_gpu_layers, flash_attn, mmap, top_p, seed);
    if !args.temperature.is_empty() {
        tokbench_core::config::check_temperatures(&args.temperature).context("--temperature")?;
        run.temperature = args.temperature.clone();
    }
    flags_over_config!(requests_per_stream);
    ensure!(run.runs > 0, "--runs must be at least 1");
    ensure!(run.requests_per_stream > 0, "--requests-per-stream must be at least 1");

    let mut backends = flag_or(&args.backend, &run.backends);
    if args.backend.is_empty() {
        // The config's matrix names every backend the project measures; one this binary lacks is skipped, loudly.
        backends.retain(|b| match registry::not_built_in(b) {
            Some(why) => {
                eprintln!("warning: skipping backend {b:?} of the config: {why}");
                false
            }
            None => true,
        });
        ensure!(!backends.is_empty(), "none of the config's backends is built into this tokbench");
    }
    let model_names = flag_or(&args.model, &run.models);
    // A server tokbench attaches to serves its own model; everything else needs a model file.
    let servers_attached = args.url.is_some()
        || backends.iter().all(|b| config.servers.iter().any(|s| s.name == *b && s.command.is_none()));
    ensure!(
        !model_names.is_empty() || servers_attached,
        "no model to run: pass --model PATH, or run from a directory with {DEFAULT_CONFIG_FILE}"
    );
    let models = model_names.iter().map(|m| resolve_model(config, m)).collect::<Result<Vec<_>>>()?;
    let quality = match &config.quality {
        Some(q) if !args.no_quality => Some(QualityPlan {
            options: QualityOptions {
                corpus: config_dir.join(&q.corpus),
                n_ctx: q.ctx,
                max_chunks: q.chunks,
                save_base: None,
                kld_base: None,
                top_k: q.top_k,
            },
            kld_base: q.kld_base.as_ref().map(|m| resolve_model(config, m)).transpose()?,
        }),
        _ => None,
    };
    let mut threads = flag_or(&args.threads, &run.threads);
    if threads.is_empty() {
        threads = vec![default_threads()];
    }
    ensure!(threads.iter().all(|&t| t > 0), "--threads must be positive");

    let mut prompts: Vec<PromptSpec> = if !args.prompt_tokens.is_empty() {
        let gens = flag_or(&args.gen_tokens, &[run.gen_tokens]);
        args.prompt_tokens
            .iter()
            .flat_map(|&p| gens.iter().map(move |&n| PromptSpec::Length { prompt_tokens: p, gen_tokens: n }))
            .collect()
    } else {
        let mut v = Vec::new();
        for name in &flag_or(&args.prompt, &run.prompts) {
            let spec = config.prompt_spec(name, &config_dir)?;
            if args.gen_tokens.is_empty() {
                v.push(spec);
            } else {
                v.extend(args.gen_tokens.iter().map(|&n| with_gen_tokens(&spec, n)));
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

    let mut servers = config.servers.clone();
    if let Some(url) = &args.url {
        let named: Vec<&String> = backends.iter().filter(|b| *b == "openai" || *b == "ollama").collect();
        ensure!(
            !named.is_empty(),
            "--url is for server backends: add --backend openai (OpenAI-compatible API) or --backend ollama"
        );
        for name in named {
            let api = match (name.as_str(), &args.api) {
                ("ollama", _) => "ollama".to_string(),
                (_, Some(api)) => api.clone(),
                (_, None) => ServerConfig::default_api(),
            };
            let mut server = ServerConfig::attached(name, &api, url, args.model_name.clone());
            server.api_key_env = args.api_key_env.clone();
            servers.retain(|s| s.name != server.name);
            servers.push(server);
        }
    }
    if let Some(t) = args.first_token_timeout {
        ensure!(
            tokbench_core::config::valid_timeout(t),
            "--first-token-timeout {t} is not a timeout: give a finite number of seconds between 0 and {} (a day)",
            tokbench_core::config::MAX_TIMEOUT_S
        );
        servers.iter_mut().for_each(|s| s.first_token_timeout_s = t);
    }
    let concurrency = flag_or(&args.concurrency, &run.concurrency);
    ensure!(concurrency.iter().all(|&c| c > 0), "--concurrency levels must be at least 1");
    let mut depths = flag_or(&args.depth, &run.depths);
    depths.dedup();
    let mut load = run.load_options(threads[0]);
    // Long exact-length prompts (-p 4096, 8192: up to a model's trained context) grow the context to fit prompt +
    // generation, unless --ctx-size asks for a size explicitly (then a prompt that does not fit fails with the fix).
    if args.ctx_size.is_none() {
        let longest = prompts
            .iter()
            .filter_map(|p| match p {
                PromptSpec::Length { prompt_tokens, gen_tokens } => Some(prompt_tokens + gen_tokens),
                PromptSpec::Text { .. } => None,
            })
            .max()
            .unwrap_or(0);
        load.ctx_size = load.ctx_size.max(u32::try_from(longest).context("--prompt-tokens is too large")?);
    }
    let deepest = depths.iter().copied().max().unwrap_or(0);
    load.ctx_size = load.ctx_size.checked_add(u32::try_from(deepest)?).context("--depth is too large")?;
    Ok(Matrix {
        backends,
        models,
        load,
        plan: run.plan(),
        threads,
        prompts,
        depths,
        temperatures: run.temperature.clone(),
        filter: args.filter.clone(),
        quality,
        servers,
        explicit_models: !args.model.is_empty(),
        backend_models: run.backend_models.clone(),
        concurrency,
        requests_per_stream: run.requests_per_stream,
    })
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

#[cfg(test)]
mod tests {
    use tokbench_core::config::RunConfig;
    use tokbench_record::setup::FlashAttn;

    #[test]
    fn the_stamp_names_the_config_and_every_flag_that_changes_the_matrix() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bench.toml");
        std::fs::write(&config, "[run]\nruns = 3\n").unwrap();
        let args = super::RunArgs { config: Some(config.clone()), ..Default::default() };
        let plain = super::stamp(&args).unwrap();
        assert_eq!(plain.config.as_deref(), Some(config.to_str().unwrap()));
        assert_eq!(plain.config_sha256.as_deref().map(str::len), Some(64));
        assert!(plain.overrides.is_empty());
        let args = super::RunArgs {
            filter: vec!["short".into()],
            runs: Some(1),
            quiet: true,
            output: Some("x.json".into()),
            ..args
        };
        assert_eq!(super::stamp(&args).unwrap().overrides, vec!["--runs", "--filter"]);
    }

    use super::*;

    fn args() -> RunArgs {
        RunArgs { model: vec!["m.gguf".into()], ..RunArgs::default() }
    }

    #[test]
    fn long_prompts_grow_the_context_unless_ctx_size_is_given_and_depth_adds_to_it() {
        let (config, dir) = (Config::default(), Path::new("."));
        let long = RunArgs { prompt_tokens: vec![512, 8192], gen_tokens: vec![128], ..args() };
        assert_eq!(matrix_of(&config, dir, &long).unwrap().load.ctx_size, 8192 + 128);
        let deep = RunArgs { depth: vec![0, 1024], ..long };
        assert_eq!(matrix_of(&config, dir, &deep).unwrap().load.ctx_size, 8192 + 128 + 1024);
        let pinned = RunArgs { ctx_size: Some(4096), ..deep };
        assert_eq!(matrix_of(&config, dir, &pinned).unwrap().load.ctx_size, 4096 + 1024);
        // Short prompts keep the default.
        assert_eq!(matrix_of(&config, dir, &args()).unwrap().load.ctx_size, RunConfig::default().ctx_size);
    }

    #[test]
    fn without_a_config_file_the_default_config_runs_and_flags_override_it() {
        let (config, dir) = (Config::default(), Path::new("."));
        let defaults = RunConfig::default();
        let m = matrix_of(&config, dir, &args()).unwrap();
        assert_eq!(m.plan, defaults.plan());
        assert_eq!(m.load, defaults.load_options(m.threads[0]));
        assert_eq!(m.backends, defaults.backends);
        assert_eq!(m.prompts.len(), defaults.prompts.len());
        assert_eq!(m.requests_per_stream, defaults.requests_per_stream);
        assert_eq!(m.models[0].path, PathBuf::from("m.gguf"));

        let flagged = RunArgs { runs: Some(9), ctx_size: Some(640), flash_attn: Some(FlashAttn::Off), ..args() };
        let m = matrix_of(&config, dir, &flagged).unwrap();
        assert_eq!((m.plan.runs, m.plan.warmup), (9, defaults.warmup));
        assert_eq!((m.load.ctx_size, m.load.flash_attn, m.load.batch), (640, FlashAttn::Off, defaults.batch));
        assert!(matrix_of(&config, dir, &RunArgs { runs: Some(0), ..args() })
            .unwrap_err()
            .to_string()
            .contains("--runs"));
    }

    #[test]
    fn the_config_file_overrides_the_defaults_and_flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let sha = "0".repeat(64);
        let text = format!(
            "[run]\nmodels = [\"m\"]\nruns = 7\nbatch = 1024\nprompts = [\"p64\"]\ngen_tokens = 16\n\n\
             [[model]]\nname = \"m\"\nfile = \"m.gguf\"\nsha256 = \"{sha}\"\nurl = \"http://127.0.0.1/m.gguf\"\n"
        );
        std::fs::write(&file, text).unwrap();
        let with_file = RunArgs { config: Some(file), model: Vec::new(), ..RunArgs::default() };
        let m = matrix(&with_file).unwrap();
        assert_eq!((m.plan.runs, m.load.batch, m.load.ubatch), (7, 1024, RunConfig::default().ubatch));
        assert_eq!(m.prompts, vec![PromptSpec::Length { prompt_tokens: 64, gen_tokens: 16 }]);
        assert_eq!(m.models[0].name, "m");
        let m = matrix(&RunArgs { runs: Some(3), gen_tokens: vec![8], ..with_file }).unwrap();
        assert_eq!((m.plan.runs, m.load.batch), (3, 1024));
        assert_eq!(m.prompts, vec![PromptSpec::Length { prompt_tokens: 64, gen_tokens: 8 }]);
    }
}
