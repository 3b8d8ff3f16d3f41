//! `tokbench perplexity`: one model's perplexity on a corpus (llama-perplexity's method), optionally saving or
//! scoring against a KL-divergence base.
use anyhow::{ensure, Result};
use tokbench_core::config::QualityConfig;
use tokbench_core::machine::default_threads;
use tokbench_core::quality::measure::{score_corpus, QualityOptions};
use tokbench_record::quality::QualityResult;
use tokbench_record::results::write_atomic;

use crate::cli::PerplexityArgs;
use crate::options;
use crate::runner::{self, ModelRef};

/// `tokbench perplexity`: load once, score, print llama-perplexity's `PPL = x +/- se` line and the KLD summary.
pub fn perplexity(args: &PerplexityArgs) -> Result<QualityResult> {
    // Defaults come from the config when there is one, else from the default config.
    let config_file = args.config.is_file().then_some(args.config.as_path());
    let (config, _, _) = options::load_config(config_file)?;
    let path = options::resolve_model(&config, &args.model)?.path;
    if path.is_dir() {
        tokbench_core::mlx_dir::describe(&path)?; // an MLX model directory (MLX backends)
    } else {
        tokbench_core::gguf::validate(&path)?;
    }
    let backend = crate::registry::create(&args.backend, &[])?;
    let run = &config.run;
    let mut load = run.load_options(args.threads.unwrap_or_else(default_threads));
    load.batch = args.batch.unwrap_or(run.batch);
    load.ubatch = args.ubatch.unwrap_or(run.ubatch);
    // The generation context stays small; scoring makes a context of its own and frees it afterwards.
    load.ctx_size = SCORING_RUN_CTX;
    let quality_config = config.quality.as_ref();
    let top_k = args.top_k.or(quality_config.map(|q| q.top_k)).unwrap_or_else(QualityConfig::default_top_k);
    ensure!(top_k > 0, "--top-k must be at least 1");
    let mut model = backend.load(&path, &load)?;
    let quality = QualityOptions {
        corpus: args.corpus.clone(),
        n_ctx: args.ctx.or(quality_config.map(|q| q.ctx)).unwrap_or_else(QualityConfig::default_ctx),
        max_chunks: args.chunks,
        save_base: args.save_base.clone(),
        kld_base: args.kld_base.clone(),
        top_k,
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
        record["machine"] = serde_json::to_value(tokbench_core::machine::detect())?;
        write_atomic(out, serde_json::to_string_pretty(&record)?.as_bytes())?;
    }
    if let Some(base) = &args.save_base {
        eprintln!("base log-probabilities (top {top_k}): {}", base.display());
    }
    Ok(result)
}

/// The generation context of the model `tokbench perplexity` loads: unused for scoring, so small.
const SCORING_RUN_CTX: u32 = 512;

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
