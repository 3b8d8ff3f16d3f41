//! Shared by the gate's tests: results sets built from a real results file (`tests/data/results.json`, made by
//! `tokbench run --prompt short -n 32 --runs 5 --warmup 1 --threads 2`).
#![allow(dead_code)]
use std::path::{Path, PathBuf};

use tokbench_gate::cli::{run_bless, run_compare, BlessArgs, CompareArgs, Exit};
use tokbench_record::id::BenchmarkId;
use tokbench_record::results::{BenchmarkResult, RunResults};

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

pub fn real() -> RunResults {
    RunResults::read(&data("results.json")).unwrap()
}

/// `n` benchmarks cloned from the real one, ids `…/short-n32-bNNN/t2`; `name_of(i)` can override an id.
pub fn many(n: usize, name_of: impl Fn(usize) -> Option<BenchmarkId>) -> RunResults {
    let mut r = real();
    let template = r.benchmarks[0].clone();
    r.benchmarks = (0..n)
        .map(|i| {
            let mut b = template.clone();
            b.id = name_of(i).unwrap_or_else(|| numbered(&template.id, i));
            b
        })
        .collect();
    r
}

/// The id of the `i`th copy of `template` made by [`many`].
pub fn numbered(template: &BenchmarkId, i: usize) -> BenchmarkId {
    let prompt = format!("{}-b{i:03}", template.prompt());
    BenchmarkId::new(template.backend(), template.model(), template.quantization(), &prompt, template.threads())
}

/// `x/m/q/<name>/t1`: a short id for tests that only need distinct benchmarks.
pub fn short_id(name: &str) -> BenchmarkId {
    BenchmarkId::new("x", "m", "q", name, 1)
}

/// Multiplies every run's decode rate by `factor` (a real slowdown would also stretch token times; the gate reads
/// the rate).
pub fn scale_decode(b: &mut BenchmarkResult, factor: f64) {
    for run in &mut b.runs {
        run.decode_tps = run.decode_tps.map(|v| v * factor);
    }
}

pub fn write(r: &RunResults, path: &Path) -> PathBuf {
    r.write(path).unwrap();
    path.to_path_buf()
}

pub fn bless(results: &Path, root: &Path, prune: bool) -> Exit {
    bless_with(results, root, if prune { &["--prune", "--yes"] } else { &[] })
}

/// `cargo xtask bless` with extra flags (no benchmark config: the crate directory has none).
pub fn bless_with(results: &Path, root: &Path, extra: &[&str]) -> Exit {
    let mut args = vec!["bless", "--results", results.to_str().unwrap(), "--baselines-root", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_bless(&<BlessArgs as clap::Parser>::try_parse_from(args).unwrap())
}

/// `cargo xtask compare` in-process with paths under `dir` and no gate.toml (defaults), plus `extra` flags.
pub fn compare(dir: &Path, results: &Path, extra: &[&str]) -> Exit {
    let root = dir.join("baselines");
    let out = dir.join("out");
    let missing_config = dir.join("no-gate.toml");
    let mut args = vec![
        "compare",
        "--results",
        results.to_str().unwrap(),
        "--baselines-root",
        root.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--gate-config",
        missing_config.to_str().unwrap(),
        "--history-limit",
        "0",
    ];
    args.extend_from_slice(extra);
    run_compare(&<CompareArgs as clap::Parser>::try_parse_from(args).unwrap())
}

/// A run with the scaling dimensions, built from the real results: two model sizes (synthetic, with the GGUF's
/// decode traffic) × depths 0, 512, 2048 × prompts of 16 and 256 tokens, a measured bandwidth, rooflines computed
/// as `tokbench run` does. Decode slows with size and depth, TTFT grows with the prompt.
pub fn scaling_run() -> RunResults {
    use tokbench_record::machine::BandwidthProbe;
    use tokbench_record::roofline::DecodeTraffic;
    let mut r = real();
    r.machine.bandwidth =
        Some(BandwidthProbe { read_bytes_per_s: 18_000_000_000, buffer_bytes: 1 << 30, threads: 2, passes: 10 });
    let template = r.benchmarks[0].clone();
    let mut out = Vec::new();
    for (name, weight_bytes, speed) in [("synth-small", 80_000_000u64, 1.0), ("synth-large", 700_000_000, 0.15)] {
        for depth in [0usize, 512, 2048] {
            for pp in [16usize, 256] {
                let mut b = template.clone();
                b.id = BenchmarkId::new("llama.cpp", name, "Q4_0", &format!("p{pp}@d{depth}"), 2);
                b.model.name = name.into();
                b.model.quantization = "Q4_0".into();
                b.model.synthetic = Some("shape test".into());
                b.model.decode_traffic =
                    Some(DecodeTraffic { weight_bytes, kv_elements_per_context_token: 30 * 2 * 192 });
                b.prompt.name = format!("p{pp}@d{depth}");
                b.prompt.prompt_tokens = pp;
                b.prompt.depth = depth;
                b.settings.kv_cache_type = Some("f16".into());
                let slow = speed / (1.0 + depth as f64 / 2048.0);
                for run in &mut b.runs {
                    run.decode_tps = run.decode_tps.map(|v| v * slow);
                    run.ttft_s *= pp as f64 / 15.0 / speed;
                    run.prompt_tokens = pp;
                }
                b.roofline = b.compute_roofline(&r.machine);
                out.push(b);
            }
        }
    }
    r.benchmarks = out;
    r
}
