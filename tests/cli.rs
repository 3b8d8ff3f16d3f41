//! `tokbench run` as users start it: the real binary, the real model, results read back through the schema.
mod common;

use std::path::Path;
use std::process::{Command, Output};

use tokbench_core::config::Config;
use tokbench_record::metric::Metric;
use tokbench_record::results::RunResults;

fn tokbench(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokbench")).args(args).current_dir(dir).output().expect("tokbench starts")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn run_writes_a_complete_results_file() {
    let model = common::default_model();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let csv = dir.path().join("r.csv");
    let o = tokbench(
        &[
            "run",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "short,p64",
            "--gen-tokens",
            "8",
            "--warmup",
            "1",
            "--runs",
            "3",
            "--threads",
            "2",
            "--output",
            out.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("| TTFT [95% CI] |") && table.contains("Q4_1"), "{table}");

    let r = RunResults::read(&out).unwrap();
    assert_eq!(r.benchmarks.len(), 2);
    let config = Config::load(&common::repo_root().join("tokbench.toml")).unwrap();
    let b = &r.benchmarks[0];
    assert_eq!(b.model.sha256, config.models[0].sha256);
    assert_eq!((b.model.quantization.as_str(), b.model.architecture.as_deref()), ("Q4_1", Some("llama")));
    assert!(b.engine.build_info.contains("CPU"), "llama.cpp system info recorded: {}", b.engine.build_info);
    assert_eq!(b.id.to_string(), format!("llama.cpp/{}/Q4_1/short-n8/t2", b.model.name));
    assert_eq!(r.benchmarks[1].prompt.name, "p64-n8");
    assert_eq!(r.benchmarks[1].prompt.prompt_tokens, 64);
    // What made the matrix: no config file in this directory, and the flags that shaped it (not --output/--csv).
    let stamp = r.matrix.as_ref().expect("the matrix stamp");
    assert_eq!((stamp.config.as_deref(), stamp.config_sha256.as_deref()), (None, None));
    assert_eq!(stamp.overrides, ["--model", "--threads", "--prompt", "--gen-tokens", "--warmup", "--runs"]);
    assert_eq!(r.injected_token_delay_us, None);
    // RAM Δ of every run: the model's resident cost (98 MB of weights and more), not the ~0 of the in-run delta.
    for run in r.benchmarks.iter().flat_map(|b| &b.runs) {
        let ram = run.ram_delta_bytes.unwrap();
        assert!(ram > 80 << 20 && ram < 1 << 30, "RAM Δ {ram}");
    }
    assert_eq!((b.warmup_runs, b.runs.len()), (1, 3));
    assert!(b.runs.iter().all(|s| s.generated_tokens == 8));
    assert!(b.summary[&Metric::TtftS].mean > 0.0 && b.load.load_s > 0.0);
    assert!(r.machine.class_key.contains("c-"));
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert!(csv_text.lines().count() > 2 && csv_text.contains("decode_tps"));
    // stderr is a pipe here, as in a CI log: one plain line as each benchmark starts, one as it ends with its figures,
    // the time so far and an estimate of the time left (progress bars would print nothing there).
    let log = stderr(&o);
    assert!(log.contains(&format!("[1/2] {}: 1 warmup + 3 timed runs", b.id)), "{log}");
    let done = log.lines().find(|l| l.starts_with(&format!("[2/2] {}: TTFT ", r.benchmarks[1].id))).unwrap_or_default();
    assert!(done.contains(" t/s (") && done.contains(" so far, about 0:00 left"), "{log}");
}

#[test]
fn bad_model_files_are_named_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let run = |model: &Path| {
        let o = tokbench(
            &["run", "--model", model.to_str().unwrap(), "--runs", "1", "--warmup", "0", "--quiet"],
            dir.path(),
        );
        assert_eq!(o.status.code(), Some(2));
        stderr(&o)
    };
    let missing = dir.path().join("nope.gguf");
    let e = run(&missing);
    assert!(e.contains("nope.gguf") && e.contains("cargo xtask fetch"), "{e}");

    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, "these are not weights").unwrap();
    let e = run(&text);
    assert!(e.contains("notes.gguf") && e.contains("not a GGUF"), "{e}");

    let truncated = dir.path().join("half.gguf");
    let bytes = std::fs::read(common::default_model()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e = run(&truncated);
    assert!(e.contains("half.gguf") && e.contains("truncated"), "{e}");
}

#[test]
fn bad_flags_are_clear_errors_and_nothing_is_written() {
    let model = common::default_model();
    let dir = tempfile::tempdir().unwrap();
    let m = model.to_str().unwrap();
    let o = tokbench(&["run", "--model", m, "--gen-tokens", "0", "--quiet"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("0 generated tokens"), "{}", stderr(&o));
    let o = tokbench(&["run", "--model", m, "--prompt-tokens", "4000", "--ctx-size", "512", "--quiet"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("raise --ctx-size"), "{}", stderr(&o));
    let o = tokbench(&["run", "--model", m, "--backend", "vllm", "--quiet"], dir.path());
    assert!(stderr(&o).contains("\"vllm\" is neither an engine tokbench knows"), "{}", stderr(&o));
    assert!(!dir.path().join("target").exists(), "a run that measured nothing writes no results");
}

#[test]
fn perplexity_prints_llama_perplexitys_line_and_records_what_made_it() {
    let model = common::default_model();
    let corpus = common::repo_root().join("tests/fixtures/corpus.txt");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ppl.json");
    let base = dir.path().join("base.tklp");
    let args = ["perplexity", "-m", model.to_str().unwrap(), "-f", corpus.to_str().unwrap(), "-c", "128"];
    let o = tokbench(&[&args[..], &["--chunks", "3", "--save-base", base.to_str().unwrap()]].concat(), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("PPL = ") && stdout.contains("+/-") && stdout.contains("189 tokens scored"), "{stdout}");
    let o = tokbench(
        &[&args[..], &["--chunks", "3", "--kld-base", base.to_str().unwrap(), "-o", out.to_str().unwrap()]].concat(),
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(v["ppl"].as_f64().unwrap() > 1.0 && v["n_chunks"] == 3 && v["tokens_scored"] == 189);
    assert!(v["kld"]["mean_kld"].as_f64().unwrap().abs() < 1e-9, "the same model against itself: {}", v["kld"]);
    assert_eq!(v["kld"]["same_top_pct"], 100.0);
    assert!(v["engine"]["build_info"].as_str().unwrap().contains("CPU"), "{}", v["engine"]);
    assert_eq!(v["model"]["quantization"], "Q4_1");
    // A missing corpus is named, and nothing is written.
    let o = tokbench(&["perplexity", "-m", model.to_str().unwrap(), "-f", "missing.txt", "-o", "x.json"], dir.path());
    assert!(!o.status.success() && stderr(&o).contains("missing.txt") && !dir.path().join("x.json").exists());
}
