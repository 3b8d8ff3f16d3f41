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
