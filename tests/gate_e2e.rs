//! The regression gate end to end on the real model: real `tokbench run`s, bless, compare (in-process, as
//! `cargo xtask compare` runs it). Unchanged code passes; a real per-token slowdown fails naming the benchmark and
//! metric; `--confirm` clears a slowdown that does not reproduce; broken baselines are input errors.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use tokbench_gate::cli::{run_bless, run_compare, BlessArgs, CompareArgs, Exit};

/// Tiny on purpose: the gate's statistics need 5 runs per side, not long generations. One backend, speed only (run
/// from the repository, tokbench would otherwise take the committed config's MLX rows and quality scoring too).
const RUN_ARGS: [&str; 13] = [
    "--prompt",
    "short",
    "-n",
    "32",
    "--runs",
    "5",
    "--warmup",
    "1",
    "--threads",
    "2",
    "--backend",
    "llama.cpp",
    "--no-quality",
];

fn tokbench_run(model: &Path, out: &Path, token_delay_us: Option<u64>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokbench"));
    cmd.arg("run").arg("--model").arg(model).args(RUN_ARGS).arg("--quiet").arg("-o").arg(out);
    cmd.env_remove(tokbench_core::metrics::INJECT_TOKEN_DELAY_ENV);
    if let Some(us) = token_delay_us {
        cmd.env(tokbench_core::metrics::INJECT_TOKEN_DELAY_ENV, us.to_string());
    }
    let o = cmd.output().expect("tokbench starts");
    assert!(o.status.success(), "tokbench run failed: {}", String::from_utf8_lossy(&o.stderr));
}

fn compare(dir: &Path, results: &Path, extra: &[&str]) -> Exit {
    let (root, out, config) = (dir.join("baselines"), dir.join("out"), common::repo_root().join("gate.toml"));
    let mut args: Vec<String> = ["compare", "--results"].map(String::from).to_vec();
    args.push(results.display().to_string());
    for (flag, value) in [("--baselines-root", &root), ("--out", &out), ("--gate-config", &config)] {
        args.push(flag.into());
        args.push(value.display().to_string());
    }
    args.extend(["--history-limit", "0"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let exit = run_compare(&CompareArgs::try_parse_from_args(&args));
    println!("compare {extra:?} → exit {}\n{}", exit.code, exit.message);
    exit
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

trait ParseFrom: Sized {
    fn try_parse_from_args(args: &[String]) -> Self;
}

impl<T: clap::Parser> ParseFrom for T {
    fn try_parse_from_args(args: &[String]) -> Self {
        T::try_parse_from(args).unwrap()
    }
}

#[test]
fn gate_passes_unchanged_code_and_fails_a_real_slowdown() {
    let model = common::default_model();
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| -> PathBuf { dir.path().join(name) };

    tokbench_run(&model, &file("base.json"), None);
    let (base, root) = (file("base.json").display().to_string(), dir.path().join("baselines").display().to_string());
    let blessed = run_bless(&BlessArgs::try_parse_from_args(&strings(&[
        "bless",
        "--results",
        &base,
        "--baselines-root",
        &root,
        "--partial",
    ])));
    assert_eq!(blessed.code, 0, "{}", blessed.message);

    // Unchanged code, fresh samples. On this 2-core shared VM, 5-run sessions drift by 10-20% (seen in CI), which
    // even --confirm cannot always tell from a change, so a pass is not asserted here: the false-alarm rate is
    // measured by the seeded simulation test instead. Asserted: a valid comparison (0 or 1, never an input error).
    tokbench_run(&model, &file("same.json"), None);
    let mut confirm: Vec<String> =
        vec!["--confirm".into(), "--confirm-runner".into(), env!("CARGO_BIN_EXE_tokbench").into()];
    for a in ["--model", model.to_str().unwrap()].iter().chain(RUN_ARGS.iter()) {
        confirm.push(format!("--confirm-arg={a}"));
    }
    let confirm: Vec<&str> = confirm.iter().map(String::as_str).collect();
    let e = compare(dir.path(), &file("same.json"), &confirm);
    assert!(e.code == 0 || e.code == 1, "unchanged code gave an input error:\n{}", e.message);

    // Every token 15 ms slower (a real sleep in the token path): decode rate far below the 5% threshold.
    tokbench_run(&model, &file("slow.json"), Some(15_000));
    let e = compare(dir.path(), &file("slow.json"), &[]);
    assert_eq!(e.code, 1, "a clear slowdown passed:\n{}", e.message);
    let id = tokbench_record::results::RunResults::read(&file("base.json")).unwrap().benchmarks[0].id.clone();
    // The delay also lands on the first token, so TTFT may be named too; decode must be.
    let named = e.message.lines().find(|l| l.starts_with("regressed: ")).unwrap_or_default();
    assert!(named.contains(&format!("{id} decode t/s")), "{}", e.message);
    // The results say the slowdown was injected, and so does the report.
    let slow = tokbench_record::results::RunResults::read(&file("slow.json")).unwrap();
    assert_eq!(slow.injected_token_delay_us, Some(15_000));
    let notes = e.report.as_ref().unwrap().notes.join("\n");
    assert!(notes.contains("TOKBENCH_INJECT_TOKEN_DELAY_US = 15000"), "{notes}");

    // The same slowdown with --confirm, whose re-run has no injected delay: the 70% decode drop does not reproduce
    // and the suspect is re-judged on fresh samples. Whether the fresh samples then pass depends on this shared
    // machine's session drift (10-20% seen in CI), so only the re-judgement and a non-error exit are asserted.
    let e = compare(dir.path(), &file("slow.json"), &confirm);
    assert!(e.code == 0 || e.code == 1, "{}", e.message);
    let report = e.report.unwrap();
    let rejudged = report.benchmarks.iter().flat_map(|b| &b.metrics).filter(|m| m.confirmation.is_some()).count();
    assert!(rejudged >= 1, "the suspect was not re-judged on fresh samples:\n{}", e.message);

    // A corrupted baseline and a baseline of another schema are input errors naming the file and the fix.
    let class_dir = std::fs::read_dir(dir.path().join("baselines")).unwrap().next().unwrap().unwrap().path();
    let baseline = std::fs::read_dir(&class_dir).unwrap().next().unwrap().unwrap().path();
    let original = std::fs::read_to_string(&baseline).unwrap();
    std::fs::write(&baseline, &original[..original.len() / 3]).unwrap();
    let e = compare(dir.path(), &file("same.json"), &[]);
    assert_eq!(e.code, 2, "{}", e.message);
    assert!(e.message.contains(baseline.to_str().unwrap()) && e.message.contains("cargo xtask bless"), "{}", e.message);
    std::fs::write(&baseline, original.replacen("\"baseline_version\": 1", "\"baseline_version\": 2", 1)).unwrap();
    let e = compare(dir.path(), &file("same.json"), &[]);
    assert_eq!(e.code, 2, "{}", e.message);
    assert!(e.message.contains("baseline format 2") && e.message.contains("re-bless"), "{}", e.message);
}

/// `compare --ab` with real `tokbench worker` processes on the real model: this test binary's tokbench stands for
/// both builds (a base built from another ref would differ only in what it measures).
fn compare_ab(dir: &Path, base_worker: &str, extra: &[&str]) -> Exit {
    let model = common::default_model();
    let out = dir.join("out");
    let mut args = strings(&["compare", "--ab", "HEAD", "--base-worker", base_worker, "--head-worker"]);
    args.push(env!("CARGO_BIN_EXE_tokbench").into());
    args.extend(["--out".to_string(), out.display().to_string(), "--history-limit".into(), "0".into()]);
    args.push(format!("--gate-config={}", common::repo_root().join("gate.toml").display()));
    args.push(format!("--config={}", common::repo_root().join("tokbench.toml").display()));
    let worker = ["--prompt", "short", "-n", "16", "--runs", "7", "--warmup", "1", "--threads", "2"];
    for a in
        ["--model", model.to_str().unwrap()].iter().chain(&worker).chain(&["--backend", "llama.cpp", "--no-quality"])
    {
        args.push(format!("--worker-arg={a}"));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let exit = run_compare(&CompareArgs::try_parse_from_args(&args));
    println!("compare --ab {extra:?} → exit {}\n{}", exit.code, exit.message);
    exit
}

#[test]
fn ab_mode_runs_both_builds_as_workers_in_paired_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let e = compare_ab(dir.path(), env!("CARGO_BIN_EXE_tokbench"), &["--seed", "42"]);
    // The same binary on both sides: a pass unless the paired rule's ≤1%-per-metric false alarm strikes, so a
    // regression verdict is allowed here and the rate is measured on real jobs by the simulation test instead.
    assert!(e.code == 0 || e.code == 1, "{}", e.message);
    let report = e.report.unwrap();
    match &report.mode {
        tokbench_gate::compare::Mode::Interleaved { base_ref, rounds, seed, .. } => {
            assert_eq!((base_ref.as_str(), *rounds, *seed), ("HEAD", 7, 42));
        }
        other => panic!("not an interleaved comparison: {other:?}"),
    }
    assert!(e.message.contains("A/B: base `HEAD` at"), "{}", e.message);
    // Both sides' results are kept, paired by round, and every timed metric was judged on 7 pairs (a suspect of the
    // first pass has 7 more, the confirmation's).
    let base = tokbench_record::results::RunResults::read(&dir.path().join("out/ab-base.json")).unwrap();
    let head = tokbench_record::results::RunResults::read(&dir.path().join("out/ab-head.json")).unwrap();
    assert_eq!((base.benchmarks.len(), head.benchmarks.len()), (1, 1));
    let confirmed = report.benchmarks[0].metrics.iter().any(|m| m.confirmation.is_some());
    let rounds = if confirmed { 14 } else { 7 };
    assert_eq!((base.benchmarks[0].runs.len(), head.benchmarks[0].runs.len()), (rounds, rounds));
    assert!(base.injected_token_delay_us.is_none() && report.notes.is_empty(), "{:?}", report.notes);
    assert_eq!(base.git.as_ref().unwrap().branch.as_deref(), Some("HEAD"));
    let decode = report.benchmarks[0].metrics.iter().find(|m| m.label == "decode t/s").unwrap();
    assert_eq!(decode.judgement.as_ref().unwrap().n_baseline, 7);
    assert!(report.changes.is_empty(), "the same binary differs from itself: {:?}", report.changes);
}

#[test]
fn ab_mode_falls_back_to_committed_baselines_when_the_base_cannot_be_a_worker() {
    // `true` stands for a base built before the protocol: `tokbench worker` is not a command there, nothing answers.
    let dir = tempfile::tempdir().unwrap();
    let e = compare_ab(dir.path(), "true", &["--allow-machine-mismatch"]);
    assert!(e.code == 0 || e.code == 1, "{}", e.message);
    let report = e.report.unwrap();
    assert_eq!(report.mode, tokbench_gate::compare::Mode::Baselines);
    let note = report.notes.join("\n");
    assert!(note.contains("not an A/B comparison") && note.contains("predates the A/B protocol"), "{note}");
    assert!(report.baseline_source.contains("HEAD:"), "{}", report.baseline_source);
    assert!(e.message.contains("not an A/B comparison"), "the report does not say so:\n{}", e.message);
}
