//! `cargo bench`: every backend × model (quantization) × threads × prompt set of the committed config
//! (`tokbench.toml`, the same matrix `tokbench run` uses) as three criterion benchmarks:
//!
//! - `ttft/<id>`: time to first token;
//! - `decode/<id>`: decode time per token (criterion also prints it as tok/s through `Throughput::Elements(1)`);
//! - `peak_ram/<id>`: the results' RAM Δ: peak RSS over the model's load and the generation, above RSS right before
//!   the load (`tokbench_record::results::ram_delta_bytes`).
//!
//! `<id>` is tokbench's stable benchmark id, `backend/model/quantization/prompt/tN`, so a criterion result is found
//! in tokbench's JSON (`target/tokbench/bench-latest.json`) by the same id. Filter as usual:
//! `cargo bench -- Q4_K_M/short`. Shrink the matrix with `TOKBENCH_BENCH_ARGS` (any `tokbench run` flags, e.g.
//! `TOKBENCH_BENCH_ARGS="--prompt short --model smollm2-135m-instruct-q4_1"`).
//!
//! Each model is loaded once per backend × threads; each benchmark first runs the config's warmup generations
//! (discarded), then criterion samples. One generation feeds all three measurements (see `tokbench_criterion::bank`).
use std::time::Duration;

use clap::Parser;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use tokbench::cli::RunArgs;
use tokbench::options;
use tokbench::runner;
use tokbench_core::engine;
use tokbench_core::memory::current_rss_bytes;
use tokbench_core::prompts;
use tokbench_criterion::bank::{SampleBank, Stream};
use tokbench_criterion::measurement::{DecodeTime, PeakRam, Ttft};
use tokbench_record::id::BenchmarkId;
use tokbench_record::results::write_json_atomic;

/// Criterion's sample count (its minimum is 10). `TOKBENCH_BENCH_SAMPLES` overrides.
const DEFAULT_SAMPLES: usize = 10;
/// Relative changes below this are "within noise" for criterion's change detection. Generations of a small model on
/// a shared CPU vary by a few percent from run to run; `TOKBENCH_BENCH_NOISE` overrides.
const DEFAULT_NOISE: f64 = 0.03;
/// Criterion sizes flat samples by the *wall time* of its one-iteration warm-up (not by the measured value): a target
/// of 1.5 generations' wall time per sample gives two generations per sample (criterion warns whenever a sample
/// would hold one), so each sample averages two runs.
const ITERATIONS_PER_SAMPLE_TARGET: f64 = 1.5;

#[derive(Parser)]
struct BenchArgs {
    #[command(flatten)]
    run: RunArgs,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Criterion's positional filter from `cargo bench -- FILTER`, if any (options that take a value are skipped).
fn criterion_filter() -> Option<regex::Regex> {
    const WITH_VALUE: [&str; 16] = [
        "--save-baseline",
        "-s",
        "--baseline",
        "-b",
        "--baseline-lenient",
        "--load-baseline",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--profile-time",
        "--color",
        "--output-format",
    ];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            return regex::Regex::new(&a).ok();
        }
    }
    None
}

fn configure<M: criterion::measurement::Measurement>(group: &mut BenchmarkGroup<'_, M>, samples: usize, wall_s: f64) {
    let target = (samples as f64 * wall_s * 1e9 * ITERATIONS_PER_SAMPLE_TARGET) as u64;
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(samples)
        .warm_up_time(Duration::from_nanos(1)) // warmup generations already ran, outside criterion
        .measurement_time(Duration::from_nanos(target.max(1)))
        .noise_threshold(env_or("TOKBENCH_BENCH_NOISE", DEFAULT_NOISE));
}

fn main() -> anyhow::Result<()> {
    let extra = std::env::var("TOKBENCH_BENCH_ARGS").unwrap_or_default();
    let args = BenchArgs::try_parse_from(std::iter::once("bench").chain(extra.split_whitespace()))
        .map_err(|e| anyhow::anyhow!("TOKBENCH_BENCH_ARGS: {e}"))?
        .run;
    let matrix = options::matrix(&args)?;
    let samples = env_or("TOKBENCH_BENCH_SAMPLES", DEFAULT_SAMPLES).max(10);
    let filter = criterion_filter();
    let wanted = |id: &BenchmarkId| {
        filter.as_ref().is_none_or(|f| ["ttft", "decode", "peak_ram"].iter().any(|m| f.is_match(&format!("{m}/{id}"))))
    };

    let listing = std::env::args().any(|a| a == "--list");

    let mut ttft = Criterion::default().with_measurement(Ttft).configure_from_args();
    let mut decode = Criterion::default().with_measurement(DecodeTime).configure_from_args();
    let mut ram = Criterion::default()
        .with_measurement(PeakRam { reference_bytes: current_rss_bytes()? })
        .configure_from_args()
        // Peak RSS is often identical in every run; criterion 0.8's density plots index out of bounds on constant
        // samples (seen here on an A/A run), so this group gets statistics and change detection, but no plots.
        .without_plots();
    let mut results = runner::new_results();

    runner::for_each_group(&matrix, wanted, |group| {
        let runner::Group { backend, engine: engine_info, model_ref, model_info, options, selected } = group;
        if listing {
            // `--list` (criterion's, or a test runner's probe): name the benchmarks without running them.
            for runner::Selected { id, .. } in &selected {
                for m in ["ttft", "decode", "peak_ram"] {
                    println!("{m}/{id}: benchmark");
                }
            }
            return Ok(());
        }
        let (mut model, load) = engine::load_model(backend, &model_ref.path, &options)?;
        model_info.n_params = model.details().n_params;
        let mut filled = 0;
        for runner::Selected { spec, depth, plan, id } in selected {
            runner::fill_depth(model.as_mut(), &mut filled, depth)?;
            let prompt = prompts::resolve_at_depth(spec, depth, model.as_ref())?;
            let mut bank = SampleBank::new(model.as_mut(), &load, &prompt, plan.sampling, plan.warmup);
            let estimate = bank.warm_up()?.clone();
            let decode_ns = |r: &tokbench_record::results::RunSample| 1e9 / r.decode_tps.unwrap_or(f64::INFINITY);
            // The results' RAM Δ (`tokbench_record::results::ram_delta_bytes`): one definition for both.
            let ram_bytes = |r: &tokbench_record::results::RunSample| r.ram_delta_bytes.expect("measured by this run");

            let mut g = ttft.benchmark_group("ttft");
            configure(&mut g, samples, estimate.e2e_s);
            g.bench_function(id.to_string(), |b| {
                b.iter_custom(|n| {
                    let runs = bank.take(Stream::Ttft, n as usize).expect("generation failed");
                    runs.iter().map(|r| Duration::from_secs_f64(r.ttft_s)).sum()
                })
            });
            g.finish();

            if estimate.decode_tps.is_some() {
                let mut g = decode.benchmark_group("decode");
                configure(&mut g, samples, estimate.e2e_s);
                g.throughput(Throughput::Elements(1));
                g.bench_function(id.to_string(), |b| {
                    b.iter_custom(|n| {
                        let runs = bank.take(Stream::Decode, n as usize).expect("generation failed");
                        runs.iter().map(|r| Duration::from_nanos(decode_ns(r) as u64)).sum()
                    })
                });
                g.finish();
            }

            let mut g = ram.benchmark_group("peak_ram");
            configure(&mut g, samples, estimate.e2e_s);
            g.bench_function(id.to_string(), |b| {
                b.iter_custom(|n| {
                    let runs = bank.take(Stream::Ram, n as usize).expect("generation failed");
                    runs.iter().map(ram_bytes).sum()
                })
            });
            g.finish();

            let runs = bank.samples().to_vec();
            if runs.is_empty() {
                continue; // criterion ran none of its three benchmarks
            }
            results.benchmarks.push(runner::benchmark_result(
                id,
                engine_info,
                model_info,
                &options,
                &matrix.plan,
                &prompt,
                &load,
                runs,
            ));
        }
        Ok(())
    })?;
    ttft.final_summary();
    decode.final_summary();
    ram.final_summary();
    if !results.benchmarks.is_empty() {
        let stamp = results.created_at.replace(':', "-");
        write_json_atomic(&std::path::PathBuf::from(format!("target/tokbench/bench/{stamp}.json")), &results)?;
        write_json_atomic(std::path::Path::new("target/tokbench/bench-latest.json"), &results)?;
        eprintln!("tokbench results of these benchmarks: target/tokbench/bench-latest.json");
    }
    Ok(())
}
