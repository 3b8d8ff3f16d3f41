//! mlx-lm, the peer of tokbench's MLX backend: what MLX users run (`mlx_lm.generate`, `mlx_lm.benchmark`,
//! `mlx_lm.server`). [`venv`] installs the pinned mlx-lm into a virtual environment under the cache (never in the
//! repo): on Linux with MLX's CPU build (`mlx[cpu]`, the same MLX 0.32.2 wheel tokbench links), on macOS with Metal.
//!
//! `cargo xtask vs-mlx-lm` (see [`vs_mlx_lm`]) writes an MLX-format directory from the GGUF with `tokbench
//! export-mlx`, then on that directory, alternating:
//!   speed: mlx-lm's `stream_generate` (as `mlx_lm.benchmark` runs it, xtask/mlx_lm/bench.py) against `tokbench run
//!          --backend mlx-native -p P -n N` (both compute in the directory's stored float type); prefill = P / TTFT on both sides (call → first token, first sample included),
//!          decode = (N − 1) / (last token − first token) on both sides; medians over rounds and ratios;
//!   greedy: the same prompt's greedy tokens from both;
//!   perplexity: `tokbench perplexity --backend mlx` against mlx-lm's model scoring the same chunks.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::{json, Value};
use tokbench_record::metric::Metric;
use tokbench_record::results::{write_json_atomic, RunResults};
use tokbench_record::summary::median;

use crate::peers::{output, run};
use crate::Engines;

pub const MLX_LM_VERSION: &str = "0.32.2";

/// The pip requirements of the venv: mlx-lm and the MLX it runs on (the CPU build off macOS).
fn requirements() -> Vec<String> {
    let mlx = if cfg!(target_os = "macos") { "mlx" } else { "mlx[cpu]" };
    vec![format!("mlx-lm=={MLX_LM_VERSION}"), format!("{mlx}=={}", crate::mlx::MLX_VERSION)]
}

/// mlx-lm's virtual environment: its directory, made (or remade, when an earlier install did not finish) on first
/// use. Its `bin/python` and `bin/mlx_lm.server` are what tests and comparisons run.
pub fn venv() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = home.join(format!(".cache/tokbench/mlx-lm/venv-{MLX_LM_VERSION}"));
    let marker = dir.join("tokbench-installed.txt");
    let wanted = requirements().join(" ");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == wanted) {
        return Ok(dir);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove the unfinished {}", dir.display()))?;
    }
    eprintln!("mlx-lm: installing {wanted} into {}", dir.display());
    let made = Command::new("python3").args(["-m", "venv"]).arg(&dir).status();
    ensure!(
        made.as_ref().is_ok_and(|s| s.success()),
        "`python3 -m venv {}` failed: mlx-lm needs Python 3.10+ with venv (Debian/Ubuntu: apt-get install \
         python3-venv)",
        dir.display()
    );
    let pip = Command::new(dir.join("bin/python"))
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(requirements())
        .status()
        .context("cannot run the venv's pip")?;
    ensure!(pip.success(), "pip could not install {wanted} into {} ({pip})", dir.display());
    std::fs::write(&marker, &wanted)?;
    Ok(dir)
}

#[derive(clap::Args)]
pub struct VsMlxLmArgs {
    #[arg(long, default_value = "tokbench.toml")]
    config: PathBuf,
    /// GGUF to export and compare on; default: the config's first model (fetched if needed).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Prompt tokens of the speed test (mlx_lm.benchmark -p). Default: 512 on macOS; 64 elsewhere, where MLX runs on
    /// its CPU backend at a few tokens per second (docs/measurements.md).
    #[arg(long, default_value_t = if cfg!(target_os = "macos") { 512 } else { 64 })]
    prompt_tokens: usize,
    /// Generated tokens of the speed test (mlx_lm.benchmark -g). Default: 128 on macOS, 32 elsewhere.
    #[arg(long, default_value_t = if cfg!(target_os = "macos") { 128 } else { 32 })]
    gen_tokens: usize,
    /// Alternating rounds; each runs both tools once.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Timed generations inside each tool invocation (after one warmup).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Float type the exported directory stores, which both tools compute in (mlx-lm computes in the stored type;
    /// tokbench runs `mlx-native`, which does the same). Default: the weights' own on macOS (float16 for quantized
    /// GGUFs); float32 elsewhere, since MLX's CPU backend runs float16 in software, ~20× slower.
    #[arg(long)]
    dtype: Option<String>,
    /// Greedy tokens both must produce identically.
    #[arg(long, default_value_t = 32)]
    greedy_tokens: usize,
    #[arg(long, default_value = "The capital of France is")]
    greedy_prompt: String,
    /// Perplexity corpus and chunk size.
    #[arg(long, default_value = "tests/fixtures/corpus.txt")]
    corpus: PathBuf,
    #[arg(long, default_value_t = 128)]
    ctx: usize,
    /// Chunks of the corpus to score. Default: all on macOS, 4 elsewhere (MLX's CPU backend).
    #[arg(long)]
    chunks: Option<usize>,
    /// Directory for the exported model, per-round results and report.json.
    #[arg(long, default_value = "target/tokbench/vs-mlx-lm")]
    out: PathBuf,
}

/// `tokbench` in release with the MLX backend, built through xtask (on Linux: against the mlx-cpu wheel).
fn release_tokbench_with_mlx() -> Result<PathBuf> {
    let mut build = crate::mlx::cargo(Engines::WITH_MLX, &["build", "--release", "-p", "tokbench"])?;
    ensure!(crate::mlx::status_keeping_lock(&mut build)?.success(), "the release build with MLX failed");
    Ok(crate::mlx::workspace_root().join("target/release/tokbench"))
}

fn bench_py() -> PathBuf {
    crate::mlx::workspace_root().join("xtask/mlx_lm/bench.py")
}

/// mlx-lm's side: bench.py's JSON.
fn mlx_lm(python: &Path, model: &Path, args: &[String]) -> Result<Value> {
    let text = output(Command::new(python).arg(bench_py()).arg("--model").arg(model).args(args))?;
    serde_json::from_str(text.trim()).with_context(|| format!("bench.py printed no JSON: {text}"))
}

pub fn vs_mlx_lm(args: &VsMlxLmArgs) -> Result<()> {
    ensure!(args.rounds > 0 && args.reps > 0, "--rounds and --reps must be at least 1");
    ensure!(args.gen_tokens > 1, "--gen-tokens must be at least 2: decode speed needs two tokens");
    ensure!(args.corpus.is_file(), "--corpus {}: no such file", args.corpus.display());
    let gguf = crate::peers::model_or_default(args.model.as_ref(), &args.config)?;
    let python = venv()?.join("bin/python");
    let tokbench = release_tokbench_with_mlx()?;
    std::fs::create_dir_all(&args.out)?;
    let model = args.out.join("model");
    let dtype = args.dtype.clone().or_else(|| (!cfg!(target_os = "macos")).then(|| "float32".to_string()));
    let mut export = Command::new(&tokbench);
    export.arg("export-mlx").arg("-m").arg(&gguf).arg("-o").arg(&model).arg("--force");
    if let Some(dtype) = &dtype {
        export.args(["--dtype", dtype]);
    }
    run(&mut export)?;
    let chunks = args.chunks.or(if cfg!(target_os = "macos") { None } else { Some(4) });
    // Absolute: the greedy run's config names it, and a path there must hold a `/`.
    let model = std::fs::canonicalize(&model)?;

    let (p, n, reps) = (args.prompt_tokens.to_string(), args.gen_tokens.to_string(), args.reps.to_string());
    let tokbench_round = |round: usize| -> Result<(f64, f64, String)> {
        let out = args.out.join(format!("round-{round}-tokbench.json"));
        run(Command::new(&tokbench)
            .args(["run", "--backend", "mlx-native", "--model"])
            .arg(&model)
            .args(["--prompt-tokens", &p, "--gen-tokens", &n, "--warmup", "1", "--runs", &reps])
            .args(["--no-quality", "--quiet", "--bandwidth-probe", "off", "--output"])
            .arg(&out)
            .stdout(std::process::Stdio::null()))?;
        let results = RunResults::read(&out)?;
        let b = results.benchmarks.first().ok_or_else(|| anyhow!("tokbench wrote no benchmark"))?;
        let ttft = b.summary[&Metric::TtftS].median;
        let decode = b.summary.get(&Metric::DecodeTps).map(|s| s.median).context("tokbench measured no decode")?;
        Ok((b.prompt.prompt_tokens as f64 / ttft, decode, format!("{} [{}]", b.engine.version, b.engine.build_info)))
    };
    let mlx_lm_round = |round: usize| -> Result<(f64, f64, Value)> {
        let v = mlx_lm(
            &python,
            &model,
            &["--prompt-tokens", &p, "--gen-tokens", &n, "--warmup", "1", "--runs", &reps].map(String::from),
        )?;
        write_json_atomic(&args.out.join(format!("round-{round}-mlx-lm.json")), &v)?;
        let runs = v["runs"].as_array().ok_or_else(|| anyhow!("bench.py reported no runs"))?;
        let col = |k: &str| runs.iter().filter_map(|r| r[k].as_f64()).collect::<Vec<_>>();
        let (ttft, decode) = (col("ttft_s"), col("decode_tps"));
        ensure!(!ttft.is_empty() && decode.len() == ttft.len(), "bench.py runs lack ttft_s / decode_tps: {v}");
        Ok((args.prompt_tokens as f64 / median(&ttft), median(&decode), v))
    };

    let (mut ours_pp, mut theirs_pp, mut ours_tg, mut theirs_tg) = (vec![], vec![], vec![], vec![]);
    let (mut our_engine, mut their_info) = (String::new(), Value::Null);
    for round in 0..args.rounds {
        // Alternate who goes first, so drift of the machine favours neither.
        for ours in [round % 2 == 1, round % 2 == 0] {
            if ours {
                let (pp, tg, engine) = tokbench_round(round)?;
                ours_pp.push(pp);
                ours_tg.push(tg);
                our_engine = engine;
            } else {
                let (pp, tg, info) = mlx_lm_round(round)?;
                theirs_pp.push(pp);
                theirs_tg.push(tg);
                their_info = info;
            }
        }
        eprintln!(
            "round {}/{}: prefill {:.1} vs {:.1} t/s, decode {:.2} vs {:.2} t/s (tokbench vs mlx-lm)",
            round + 1,
            args.rounds,
            ours_pp[round],
            theirs_pp[round],
            ours_tg[round],
            theirs_tg[round]
        );
    }

    // Greedy tokens: a one-prompt config, one run of `greedy_tokens`.
    let config = args.out.join("greedy.toml");
    std::fs::write(
        &config,
        format!(
            "[run]\nbackends = [\"mlx-native\"]\nmodels = [{model:?}]\nprompts = [\"greedy\"]\n\n[[prompt]]\nname = \
             \"greedy\"\ntext = {text:?}\ngen_tokens = {g}\n",
            model = model.display().to_string(),
            text = args.greedy_prompt,
            g = args.greedy_tokens
        ),
    )?;
    let greedy_out = args.out.join("greedy-tokbench.json");
    run(Command::new(&tokbench)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .args(["--warmup", "0", "--runs", "1", "--no-quality", "--quiet", "--bandwidth-probe", "off", "--output"])
        .arg(&greedy_out)
        .stdout(std::process::Stdio::null()))?;
    let ours_tokens = RunResults::read(&greedy_out)?
        .benchmarks
        .first()
        .and_then(|b| b.runs.first())
        .map(|r| r.tokens.clone())
        .ok_or_else(|| anyhow!("tokbench's greedy run recorded no tokens"))?;
    let g = mlx_lm(
        &python,
        &model,
        &[
            "--greedy-prompt".to_string(),
            args.greedy_prompt.clone(),
            "--greedy-tokens".into(),
            args.greedy_tokens.to_string(),
        ],
    )?;
    let theirs_tokens: Vec<u32> = serde_json::from_value(g["greedy"]["tokens"].clone())?;
    let same = ours_tokens.iter().zip(&theirs_tokens).take_while(|(a, b)| a == b).count();

    // Perplexity on the same chunks.
    let ppl_out = args.out.join("perplexity-tokbench.json");
    run(Command::new(&tokbench)
        .args(["perplexity", "--backend", "mlx-native", "-m"])
        .arg(&model)
        .arg("-f")
        .arg(&args.corpus)
        .args(["-c", &args.ctx.to_string()])
        .args(chunks.map(|n| format!("--chunks={n}")))
        .arg("-o")
        .arg(&ppl_out)
        .stdout(std::process::Stdio::null()))?;
    let ours_ppl: Value = serde_json::from_str(&std::fs::read_to_string(&ppl_out)?)?;
    let mut ppl_args =
        vec!["--corpus".to_string(), args.corpus.display().to_string(), "--ctx".into(), args.ctx.to_string()];
    ppl_args.extend(chunks.map(|n| format!("--chunks={n}")));
    let theirs_ppl = mlx_lm(&python, &model, &ppl_args)?;
    let (op, tp) =
        (ours_ppl["ppl"].as_f64().context("no ppl")?, theirs_ppl["perplexity"]["ppl"].as_f64().context("no ppl")?);
    let (o_scored, t_scored) = (ours_ppl["tokens_scored"].as_u64(), theirs_ppl["perplexity"]["tokens_scored"].as_u64());
    ensure!(
        o_scored == t_scored,
        "the two scored different tokens ({o_scored:?} vs {t_scored:?}): the tokenizers differ"
    );

    let (opp, tpp, otg, ttg) = (median(&ours_pp), median(&theirs_pp), median(&ours_tg), median(&theirs_tg));
    let round_ratio = |o: &[f64], t: &[f64]| median(&o.iter().zip(t).map(|(a, b)| a / b).collect::<Vec<_>>());
    println!("| metric | tokbench (mlx) | mlx-lm | ratio of medians | median of round ratios |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| prefill t/s, {} prompt tokens (P / TTFT) | {opp:.1} | {tpp:.1} | {:.3} | {:.3} |",
        args.prompt_tokens,
        opp / tpp,
        round_ratio(&ours_pp, &theirs_pp)
    );
    println!(
        "| decode t/s, {} tokens ((N − 1) / first → last) | {otg:.2} | {ttg:.2} | {:.3} | {:.3} |",
        args.gen_tokens,
        otg / ttg,
        round_ratio(&ours_tg, &theirs_tg)
    );
    println!();
    println!("greedy {:?}: {same} of {} tokens identical", args.greedy_prompt, args.greedy_tokens);
    println!("  tokbench {ours_tokens:?}\n  mlx-lm   {theirs_tokens:?}");
    println!(
        "perplexity ({}, ctx {}, {} tokens scored): tokbench {op:.4}, mlx-lm {tp:.4} (Δ {:+.3}%)",
        args.corpus.display(),
        args.ctx,
        o_scored.unwrap_or(0),
        (op - tp) / tp * 100.0
    );
    println!(
        "medians of {} alternating rounds × {} generations; model {} (exported from {})",
        args.rounds,
        args.reps,
        model.display(),
        gguf.display()
    );
    println!("tokbench engine: {our_engine}");
    println!("mlx-lm {} on MLX {} ({})", their_info["mlx_lm"], their_info["mlx"], their_info["device"]);
    let report = json!({
        "model": model, "exported_from": gguf, "dtype": dtype, "rounds": args.rounds, "chunks": chunks, "reps": args.reps,
        "prompt_tokens": args.prompt_tokens, "gen_tokens": args.gen_tokens,
        "tokbench": { "engine": our_engine, "prefill_tps": ours_pp, "decode_tps": ours_tg, "greedy": ours_tokens,
                      "perplexity": ours_ppl },
        "mlx_lm": { "version": their_info["mlx_lm"], "mlx": their_info["mlx"], "device": their_info["device"],
                    "prefill_tps": theirs_pp, "decode_tps": theirs_tg, "greedy": g["greedy"],
                    "perplexity": theirs_ppl["perplexity"] },
        "ratio": { "prefill": opp / tpp, "decode": otg / ttg,
                   "prefill_median_round_ratio": round_ratio(&ours_pp, &theirs_pp),
                   "decode_median_round_ratio": round_ratio(&ours_tg, &theirs_tg) },
        "greedy_identical_tokens": same,
        "perplexity_relative_difference": (op - tp) / tp,
    });
    write_json_atomic(&args.out.join("report.json"), &report)?;
    println!("report: {}", args.out.join("report.json").display());
    if same < args.greedy_tokens.min(16) {
        bail!("tokbench and mlx-lm agree on only {same} greedy tokens (at least 16 expected)");
    }
    Ok(())
}
