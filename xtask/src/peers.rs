//! Real peers to measure against. `vs-llama-bench` builds llama.cpp's own llama-bench from the llama.cpp tree that
//! the PyPI `llama-cpp-python` sdist vendors (cached under ~/.cache/tokbench/peers, never in the repo), then runs it
//! and `tokbench run` alternately on the same file and threads, and reports medians and ratios:
//!   prefill: tokbench `--prompt-tokens 512` prefill t/s  vs  llama-bench `-p 512 -n 0`
//!   decode:  tokbench `--depth D --prompt-tokens 1 --gen-tokens 128` decode t/s  vs  llama-bench
//!            `-p 0 -n 128 -d D`, at each D of `--depths` (default 0, 512, 2048, 4096: decode slows as the cache
//!            fills, so only the same depth compares)
//! each with the context llama-bench allocates for that test (prompt + generated + depth).
use std::path::PathBuf;
use std::process::Command;

use anyhow::{anyhow, ensure, Context, Result};
use serde_json::Value;
use tokbench_core::config::Config;

use crate::Engines;
use tokbench_record::metric::Metric;
use tokbench_record::results::{write_json_atomic, RunResults};
use tokbench_record::summary::median;

#[derive(clap::Args)]
pub struct VsArgs {
    #[arg(long, default_value = "tokbench.toml")]
    config: PathBuf,
    /// Model file; default: the config's first model (fetched if needed).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Threads for both tools; default: physical cores.
    #[arg(long)]
    threads: Option<usize>,
    /// Alternating rounds; each round runs both tools once per test.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Depths of the decode comparison (llama-bench's -d): tokens in the KV cache before the 128 generated.
    #[arg(long, value_delimiter = ',', default_value = "0,512,2048,4096")]
    depths: Vec<usize>,
    /// Repetitions inside each tool invocation (llama-bench -r, tokbench --runs).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// llama-cpp-python sdist whose vendored llama.cpp builds llama-bench.
    #[arg(long, default_value = PEER_SDIST_VERSION)]
    llama_cpp_python: String,
    /// A llama-bench binary to use instead of building one from the sdist, e.g. one built from the llama.cpp tree
    /// that llama-cpp-sys-2 ships, so both sides run the same ggml (docs/measurements.md shows how).
    #[arg(long)]
    llama_bench: Option<PathBuf>,
    /// A tokbench binary to use instead of `cargo build --release` (the GPU bundle's, on a machine without Rust).
    #[arg(long)]
    tokbench: Option<PathBuf>,
    /// Layers offloaded to the GPU by both tools (llama-bench -ngl, tokbench --n-gpu-layers); 0 is CPU only.
    #[arg(long, default_value_t = 0)]
    n_gpu_layers: u32,
    /// Directory for the per-round results and report.json.
    #[arg(long, default_value = "target/tokbench/vs-llama-bench")]
    out: PathBuf,
}

/// The llama-cpp-python sdist whose vendored llama.cpp builds the peers (llama-bench, llama-perplexity,
/// llama-server).
pub const PEER_SDIST_VERSION: &str = "0.3.36";

fn cache_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache/tokbench/peers")
}

/// `cargo run --release -p tokbench -- ARGS` from the workspace root, with llama.cpp and, when asked, MLX built in.
/// Cargo's own progress is shown: a first build compiles llama.cpp for minutes.
pub fn cargo_tokbench(engines: Engines, args: &[String]) -> Result<()> {
    let mut cmd = crate::mlx::cargo(engines, &["run", "--release", "-p", "tokbench"])?;
    cmd.arg("--").args(args);
    let status = crate::mlx::status_keeping_lock(&mut cmd)?;
    ensure!(status.success(), "tokbench {} failed ({status})", args.first().map_or("", String::as_str));
    Ok(())
}

/// `cargo build --workspace --all-targets`, then `cargo nextest run --workspace ARGS` with TOKBENCH_TEST_MODEL
/// pointing at the fetched default model. With MLX, its backend and its cross-checks against llama.cpp are in;
/// without, the MLX crate is left out of the workspace's build.
/// `mlx_lm_venv`: mlx-lm's venv for the MLX server test (`cargo xtask test --mlx`), passed as $TOKBENCH_MLX_LM_VENV.
pub fn nextest(
    engines: Engines,
    model: &std::path::Path,
    mlx_lm_venv: Option<&std::path::Path>,
    args: &[String],
) -> Result<()> {
    let without_mlx: &[&str] = if engines.mlx() { &[] } else { &["--exclude", "tokbench-mlx"] };
    // Benches are not test targets; build them (same feature set as the tests, so llama.cpp is built once) so that
    // a change that breaks `cargo bench` fails here too.
    let mut build = crate::mlx::cargo(engines, &["build", "--workspace", "--all-targets"])?;
    ensure!(crate::mlx::status_keeping_lock(build.args(without_mlx))?.success(), "the build failed");
    // The server backend's tests run against llama.cpp's own llama-server (built once, cached outside the repo).
    let llama_server = build_peer_tool(PEER_SDIST_VERSION, "llama-server")?;
    let mut tests = crate::mlx::cargo(engines, &["nextest", "run", "--workspace"])?;
    if let Some(venv) = mlx_lm_venv {
        tests.env("TOKBENCH_MLX_LM_VENV", venv);
    }
    tests
        .args(without_mlx)
        .args(args)
        .env("TOKBENCH_TEST_MODEL", model)
        .env("TOKBENCH_LLAMA_SERVER", std::fs::canonicalize(&llama_server)?);
    let status = crate::mlx::status_keeping_lock(&mut tests)
        .context("cannot run cargo nextest: install it with `cargo install cargo-nextest --locked`")?;
    ensure!(status.success(), "tests failed ({status})");
    Ok(())
}

/// The llama.cpp tree the llama-cpp-python sdist vendors, downloaded and unpacked once into the peers cache.
pub fn peer_llama_cpp(version: &str) -> Result<PathBuf> {
    let peers = cache_dir();
    let src = peers.join(format!("llama_cpp_python-{version}/vendor/llama.cpp"));
    if !src.join("CMakeLists.txt").is_file() {
        std::fs::create_dir_all(&peers)?;
        eprintln!("fetching the llama-cpp-python {version} sdist (for its vendored llama.cpp)");
        run(Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--disable-pip-version-check", "-d"])
            .arg(&peers)
            .arg(format!("llama-cpp-python=={version}")))?;
        run(Command::new("tar").arg("xzf").arg(format!("llama_cpp_python-{version}.tar.gz")).current_dir(&peers))?;
    }
    Ok(src)
}

/// Builds (once) and returns a llama.cpp tool from the sdist's vendored tree, e.g. `llama-bench`.
pub fn build_peer_tool(version: &str, target: &str) -> Result<PathBuf> {
    let src = peer_llama_cpp(version)?;
    let build = src.join("build-native");
    let bin = build.join("bin").join(target);
    if !bin.is_file() {
        eprintln!("building {target} from {} (several minutes the first time)", src.display());
        // GGML_NATIVE=ON is llama.cpp's default and matches tokbench's own `target-cpu=native` build.
        run(Command::new("cmake").arg("-S").arg(&src).arg("-B").arg(&build).args([
            "-DCMAKE_BUILD_TYPE=Release",
            "-DGGML_NATIVE=ON",
            "-DLLAMA_CURL=OFF",
            "-DLLAMA_OPENSSL=OFF",
            "-DLLAMA_BUILD_TESTS=OFF",
            "-DLLAMA_BUILD_EXAMPLES=OFF",
            // llama-server, for the server backend's tests; its web UI would be downloaded, so it is left out.
            "-DLLAMA_BUILD_SERVER=ON",
            "-DLLAMA_USE_PREBUILT_UI=OFF",
        ]))?;
        let jobs = std::thread::available_parallelism().map_or(2, |n| n.get()).to_string();
        run(Command::new("cmake").arg("--build").arg(&build).args(["--target", target, "-j", &jobs]))?;
    }
    Ok(bin)
}

/// Runs a command to its end; its failure names the command.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start {cmd:?}"))?;
    ensure!(status.success(), "{cmd:?} failed ({status})");
    Ok(())
}

/// A command's standard output; its failure names the command and carries its standard error.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("cannot start {cmd:?}"))?;
    ensure!(out.status.success(), "{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?)
}

/// The model a comparison runs on: the one given, else the config's first model (fetched and verified if needed).
pub(crate) fn model_or_default(model: Option<&PathBuf>, config_path: &std::path::Path) -> Result<PathBuf> {
    if let Some(m) = model {
        return Ok(m.clone());
    }
    let config = Config::load(config_path)?;
    let first = config.run.models.first().ok_or_else(|| anyhow!("the config lists no model"))?.clone();
    Ok(crate::fetch::fetch(config_path, &[first])?.remove(0))
}

/// Builds tokbench in release (llama.cpp as CMake Release, as the peers are) and returns the binary.
fn release_tokbench() -> Result<PathBuf> {
    run(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
        "build",
        "--release",
        "-p",
        "tokbench",
    ]))?;
    Ok(PathBuf::from("target/release/tokbench"))
}

/// Median of llama-bench's per-repetition tokens/s for its single test.
fn llama_bench_tps(json: &str) -> Result<(f64, Value)> {
    let v: Value = serde_json::from_str(json).context("llama-bench did not print JSON")?;
    let test = v.as_array().and_then(|a| a.first()).ok_or_else(|| anyhow!("llama-bench printed no test"))?;
    let samples: Vec<f64> = test["samples_ts"]
        .as_array()
        .ok_or_else(|| anyhow!("llama-bench JSON has no samples_ts"))?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    ensure!(!samples.is_empty(), "llama-bench reported no samples");
    Ok((median(&samples), test.clone()))
}

pub fn vs_llama_bench(args: &VsArgs) -> Result<()> {
    ensure!(!args.depths.is_empty(), "--depths is empty: give at least one depth, e.g. 0,512,2048,4096");
    let model = model_or_default(args.model.as_ref(), &args.config)?;
    let threads = args.threads.unwrap_or_else(tokbench_core::machine::default_threads);
    let llama_bench = match &args.llama_bench {
        Some(path) => {
            ensure!(path.is_file(), "--llama-bench {}: no such file", path.display());
            path.clone()
        }
        None => build_peer_tool(&args.llama_cpp_python, "llama-bench")?,
    };
    let tokbench = match &args.tokbench {
        Some(path) => {
            ensure!(path.is_file(), "--tokbench {}: no such file", path.display());
            path.clone()
        }
        None => release_tokbench()?,
    };
    let scratch = args.out.clone();
    std::fs::create_dir_all(&scratch)?;
    let (t, reps, m) = (threads.to_string(), args.reps.to_string(), model.as_os_str());
    let ngl = args.n_gpu_layers.to_string();

    // One llama-bench test: `-p P -n N -d D`, the median of its repetitions' tokens/s.
    let llama_bench_test = |p: usize, n: usize, d: usize| -> Result<(f64, Value)> {
        let mut c = Command::new(&llama_bench);
        c.arg("-m").arg(m).args(["-t", &t, "-r", &reps, "-ngl", &ngl, "-o", "json"]);
        c.args(["-p", &p.to_string(), "-n", &n.to_string(), "-d", &d.to_string()]);
        llama_bench_tps(&output(&mut c)?)
    };
    // One tokbench benchmark (its own process, as a user runs it): `--prompt-tokens P --gen-tokens N --depth D`,
    // with the context llama-bench gives the same test (prompt + generated + depth: a larger context makes
    // llama.cpp's decode a few percent slower). Returns prefill and decode medians and the engine line.
    let tokbench_test = |name: &str, p: usize, n: usize, d: usize| -> Result<(f64, Option<f64>, String)> {
        let out = scratch.join(format!("{name}.json"));
        let (p_s, n_s, d_s, ctx) = (p.to_string(), n.to_string(), d.to_string(), (p + n).to_string());
        run(Command::new(&tokbench)
            .arg("run")
            .arg("--model")
            .arg(m)
            .args(["--threads", &t, "--prompt-tokens", &p_s, "--gen-tokens", &n_s, "--depth", &d_s])
            .args(["--n-gpu-layers", &ngl])
            // tokbench grows the context by the depth: --ctx-size is the budget of prompt + generation.
            .args(["--ctx-size", &ctx, "--warmup", "1", "--runs", &reps, "--no-quality", "--quiet"])
            .arg("--output")
            .arg(&out)
            .stdout(std::process::Stdio::null()))?;
        let results = RunResults::read(&out)?;
        let b = results.benchmarks.first().ok_or_else(|| anyhow!("tokbench wrote no benchmark ({name})"))?;
        let decode = b.summary.get(&Metric::DecodeTps).map(|s| s.median);
        Ok((b.summary[&Metric::PrefillTps].median, decode, format!("{} [{}]", b.engine.version, b.engine.build_info)))
    };

    let depths = &args.depths;
    let (mut ours_pp, mut theirs_pp) = (vec![], vec![]);
    let (mut ours_tg, mut theirs_tg) = (vec![vec![]; depths.len()], vec![vec![]; depths.len()]);
    let (mut their_info, mut our_engine) = (Value::Null, String::new());
    for round in 0..args.rounds {
        // Alternate who goes first, so drift in machine state (heat, other load) does not favour one tool.
        let ours_first = round % 2 == 1;
        // Prefill: pp512 against a 512-token prompt (one generated token).
        for ours in [ours_first, !ours_first] {
            if ours {
                let (pp, _, engine) = tokbench_test(&format!("round-{round}-pp512"), 512, 1, 0)?;
                ours_pp.push(pp);
                our_engine = engine;
            } else {
                let (pp, info) = llama_bench_test(512, 0, 0)?;
                theirs_pp.push(pp);
                their_info = info;
            }
        }
        // Decode: tg128 at depth D against 128 tokens after a 1-token prompt at depth D (tokbench's prompt needs
        // a token; llama-bench's tg test starts from one too).
        for (i, &d) in depths.iter().enumerate() {
            for ours in [ours_first, !ours_first] {
                if ours {
                    let (_, tg, _) = tokbench_test(&format!("round-{round}-tg128-d{d}"), 1, 128, d)?;
                    ours_tg[i].push(tg.ok_or_else(|| anyhow!("tokbench measured no decode at depth {d}"))?);
                } else {
                    theirs_tg[i].push(llama_bench_test(0, 128, d)?.0);
                }
            }
        }
        let per_depth: Vec<String> = depths
            .iter()
            .enumerate()
            .map(|(i, d)| format!("d{d} {:.2} vs {:.2}", ours_tg[i][round], theirs_tg[i][round]))
            .collect();
        eprintln!(
            "round {}/{}: prefill {:.1} vs {:.1} t/s; decode t/s {} (tokbench vs llama-bench)",
            round + 1,
            args.rounds,
            ours_pp[round],
            theirs_pp[round],
            per_depth.join(", ")
        );
    }
    let (op, tp) = (median(&ours_pp), median(&theirs_pp));
    let their_version = match &args.llama_bench {
        Some(path) => {
            format!("{} (build {} {})", path.display(), their_info["build_number"], their_info["build_commit"])
        }
        None => format!(
            "llama-cpp-python {} vendored llama.cpp (build {} {})",
            args.llama_cpp_python, their_info["build_number"], their_info["build_commit"]
        ),
    };
    // Two views of the same pairs: the ratio of the medians, and the median of each round's ratio (the two tools
    // ran back to back in a round, so a round's ratio cancels slow drift of the machine).
    let round_ratio =
        |ours: &[f64], theirs: &[f64]| median(&ours.iter().zip(theirs).map(|(o, t)| o / t).collect::<Vec<_>>());
    println!("| metric | tokbench | llama-bench | ratio of medians | median of round ratios |");
    println!("|---|---:|---:|---:|---:|");
    let pp_rounds = round_ratio(&ours_pp, &theirs_pp);
    println!("| prefill t/s, 512-token prompt (pp512) | {op:.1} | {tp:.1} | {:.3} | {pp_rounds:.3} |", op / tp);
    let mut decode_rows = Vec::new();
    for (i, d) in depths.iter().enumerate() {
        let (ot, tt) = (median(&ours_tg[i]), median(&theirs_tg[i]));
        let rounds = round_ratio(&ours_tg[i], &theirs_tg[i]);
        println!(
            "| decode t/s, 128 tokens at depth {d} (tg128 -d {d}) | {ot:.2} | {tt:.2} | {:.3} | {rounds:.3} |",
            ot / tt
        );
        decode_rows.push(serde_json::json!({
            "depth": d, "tokbench_tps": ours_tg[i], "llama_bench_tps": theirs_tg[i], "ratio": ot / tt,
            "median_round_ratio": rounds,
        }));
    }
    println!();
    println!(
        "medians of {} alternating rounds × {} repetitions, {threads} threads, {} GPU layers, {}",
        args.rounds,
        args.reps,
        args.n_gpu_layers,
        model.display()
    );
    println!("tokbench engine: {our_engine}");
    println!("llama-bench: {their_version}");
    let report = serde_json::json!({
        "model": model, "threads": threads, "rounds": args.rounds, "reps": args.reps, "n_gpu_layers": args.n_gpu_layers,
        "tokbench": { "engine": our_engine, "prefill_tps": ours_pp },
        "llama_bench": { "version": their_version, "prefill_tps": theirs_pp, "last_test": their_info },
        "ratio": { "prefill": op / tp, "prefill_median_round_ratio": pp_rounds },
        "decode": decode_rows,
    });
    write_json_atomic(&scratch.join("report.json"), &report)?;
    println!("report: {}", scratch.join("report.json").display());
    Ok(())
}

#[derive(clap::Args)]
pub struct VsPerplexityArgs {
    #[arg(long, default_value = "tokbench.toml")]
    config: PathBuf,
    /// Model file; default: the config's first model (fetched if needed).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Corpus; default: WikiText-2's wiki.test.raw when `cargo xtask fetch-corpus` has cached it, else the test
    /// fixture repeated 6 times (chunks are scored independently, so repeating text across chunks does not make it
    /// easier; it only gives the throughput comparison enough chunks).
    #[arg(long)]
    corpus: Option<PathBuf>,
    #[arg(long, default_value_t = 512)]
    ctx: usize,
    /// Chunks to score (default: all).
    #[arg(long)]
    chunks: Option<usize>,
    #[arg(long)]
    threads: Option<usize>,
    /// Alternating rounds; each runs both tools once.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long, default_value = PEER_SDIST_VERSION)]
    llama_cpp_python: String,
}

/// From llama-perplexity's log (stderr): `Final estimate: PPL = 12.3456 +/- 0.12345`, and its scoring tokens/s:
/// chunks × n_ctx (from `calculating perplexity over N chunks, n_ctx=C`) over the time between that line and the
/// final estimate, read from the log's own timestamps (`m.ss.mmm.uuu`), so it covers the same loop tokbench times
/// (batched decoding and log-softmax), without model loading or tokenization.
fn parse_llama_perplexity(log: &str) -> Result<(f64, f64, f64)> {
    let stamp = |s: &str| -> Option<f64> {
        let p: Vec<f64> = s.split('.').map(|x| x.parse::<f64>().ok()).collect::<Option<_>>()?;
        (p.len() == 4).then(|| p[0] * 60.0 + p[1] + p[2] / 1e3 + p[3] / 1e6)
    };
    let start_line = log
        .lines()
        .find(|l| l.contains("calculating perplexity over"))
        .ok_or_else(|| anyhow!("llama-perplexity did not start scoring:\n{log}"))?;
    let start = start_line.split_whitespace().next().and_then(stamp);
    let tokens = {
        let chunks = start_line.split("over ").nth(1).and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok());
        let n_ctx = start_line.split("n_ctx=").nth(1).and_then(|t| t.split(',').next()?.parse::<f64>().ok());
        chunks.zip(n_ctx).map(|(c, n)| c * n)
    };
    let (before, after) = log
        .split_once(" I Final estimate: PPL =")
        .ok_or_else(|| anyhow!("llama-perplexity printed no final estimate:\n{log}"))?;
    let end = before.split_whitespace().next_back().and_then(stamp);
    let mut numbers =
        after.lines().next().unwrap_or("").split([' ', '+', '/', '-']).filter_map(|w| w.parse::<f64>().ok());
    match (numbers.next(), numbers.next(), start, end, tokens) {
        (Some(ppl), Some(se), Some(t0), Some(t1), Some(n)) if t1 > t0 => Ok((ppl, se, n / (t1 - t0))),
        _ => Err(anyhow!("cannot read PPL and timing from llama-perplexity's log:\n{start_line}\n...{after}")),
    }
}

pub fn vs_llama_perplexity(args: &VsPerplexityArgs) -> Result<()> {
    let model = model_or_default(args.model.as_ref(), &args.config)?;
    let scratch = PathBuf::from("target/tokbench/vs-llama-perplexity");
    std::fs::create_dir_all(&scratch)?;
    let corpus = match &args.corpus {
        Some(c) => c.clone(),
        None => match crate::fetch::cached_wikitext2() {
            Some(wiki) => wiki,
            None => {
                let fixture = std::fs::read_to_string("tests/fixtures/corpus.txt")
                    .context("tests/fixtures/corpus.txt (run from the repository root)")?;
                let repeated = scratch.join("fixture-x6.txt");
                std::fs::write(&repeated, fixture.repeat(6))?;
                repeated
            }
        },
    };
    let threads = args.threads.unwrap_or_else(tokbench_core::machine::default_threads);
    let llama_perplexity = build_peer_tool(&args.llama_cpp_python, "llama-perplexity")?;
    let tokbench = release_tokbench()?;
    let (t, ctx) = (threads.to_string(), args.ctx.to_string());
    let chunks: Vec<String> = args.chunks.map(|c| vec!["--chunks".to_string(), c.to_string()]).unwrap_or_default();

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let theirs_round = |theirs: &mut Vec<(f64, f64, f64)>| -> Result<()> {
            let out = Command::new(&llama_perplexity)
                .arg("-m")
                .arg(&model)
                .arg("-f")
                .arg(&corpus)
                .args(["-c", &ctx, "-t", &t, "-b", "2048"])
                .args(&chunks)
                .output()
                .context("cannot start llama-perplexity")?;
            let log = String::from_utf8_lossy(&out.stderr).into_owned();
            ensure!(out.status.success(), "llama-perplexity failed ({}):\n{log}", out.status);
            theirs.push(parse_llama_perplexity(&log)?);
            Ok(())
        };
        let ours_round = |ours: &mut Vec<(f64, f64, f64)>| -> Result<()> {
            let json = scratch.join(format!("round-{round}.json"));
            run(Command::new(&tokbench)
                .arg("perplexity")
                .arg("--model")
                .arg(&model)
                .arg("--corpus")
                .arg(&corpus)
                .args(["--ctx", &ctx, "--threads", &t, "--batch", "2048"])
                .args(&chunks)
                .arg("--output")
                .arg(&json)
                .stdout(std::process::Stdio::null()))?;
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
            let get = |k: &str| v[k].as_f64().ok_or_else(|| anyhow!("{} has no {k}", json.display()));
            ours.push((get("ppl")?, get("ppl_std_error")?, get("eval_tps")?));
            Ok(())
        };
        if round % 2 == 0 {
            theirs_round(&mut theirs)?;
            ours_round(&mut ours)?;
        } else {
            ours_round(&mut ours)?;
            theirs_round(&mut theirs)?;
        }
        let (o, th) = (ours[round], theirs[round]);
        eprintln!(
            "round {}/{}: PPL {:.4} vs {:.4}, {:.1} vs {:.1} t/s (tokbench vs llama-perplexity)",
            round + 1,
            args.rounds,
            o.0,
            th.0,
            o.2,
            th.2
        );
    }
    let (ppl_o, se_o) = (ours[0].0, ours[0].1);
    let (ppl_t, se_t) = (theirs[0].0, theirs[0].1);
    let tps_o = median(&ours.iter().map(|o| o.2).collect::<Vec<_>>());
    let tps_t = median(&theirs.iter().map(|o| o.2).collect::<Vec<_>>());
    let diff_pct = 100.0 * (ppl_o - ppl_t) / ppl_t;
    println!("| | tokbench | llama-perplexity | |");
    println!("|---|---:|---:|---:|");
    println!("| PPL | {ppl_o:.4} ± {se_o:.4} | {ppl_t:.4} ± {se_t:.4} | {diff_pct:+.3}% |");
    println!("| tokens/s (median of {} rounds) | {tps_o:.1} | {tps_t:.1} | ratio {:.3} |", args.rounds, tps_o / tps_t);
    println!();
    println!("{}, corpus {}, n_ctx {}, {threads} threads", model.display(), corpus.display(), args.ctx);
    println!(
        "tokbench: llama.cpp from llama-cpp-sys-2 (see `tokbench backends`); llama-perplexity: llama-cpp-python {} sdist",
        args.llama_cpp_python
    );
    let report = serde_json::json!({
        "model": model, "corpus": corpus, "ctx": args.ctx, "threads": threads, "rounds": args.rounds,
        "tokbench": ours.iter().map(|o| serde_json::json!({"ppl": o.0, "se": o.1, "tps": o.2})).collect::<Vec<_>>(),
        "llama_perplexity": theirs.iter().map(|o| serde_json::json!({"ppl": o.0, "se": o.1, "tps": o.2})).collect::<Vec<_>>(),
        "ppl_diff_pct": diff_pct, "tps_ratio": tps_o / tps_t,
    });
    write_json_atomic(&scratch.join("report.json"), &report)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_llama_perplexity_output() {
        // As llama-cpp-python 0.3.36's llama-perplexity writes it: the ETA's value goes to stdout, so the final
        // estimate's timestamp follows "ETA " on the same stderr line.
        let log =
            "0.00.481.113 I perplexity: calculating perplexity over 4 chunks, n_ctx=128, batch_size=2048, n_seq=16\n\
                   0.02.955.912 I perplexity: 2.47 seconds per pass - ETA 0.02.989.993 I Final estimate: PPL = 33.9978 \
                   +/- 6.66952\n";
        let (ppl, se, tps) = parse_llama_perplexity(log).unwrap();
        assert_eq!((ppl, se), (33.9978, 6.66952));
        assert!((tps - 512.0 / (2.989993 - 0.481113)).abs() < 1e-6, "{tps}");
        assert!(parse_llama_perplexity("no estimate").unwrap_err().to_string().contains("did not start scoring"));
    }
}
