//! SIGINT and SIGTERM in the middle of a real in-process run (llama.cpp; MLX with `--features mlx`), as a user's
//! Ctrl-C or a CI cancel sends them: the finished benchmarks and the interrupted one's completed runs are saved, and
//! tokbench exits with 128 + the signal.
mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokbench_record::results::RunResults;

/// Runs `tokbench run` on the default model with two benchmarks (16- and 24-token prompts: runs of about equal length, 16 generated tokens, 12
/// timed runs each, no warmup), sends `signal` once the progress line starting with `after` appeared and then
/// `delay(time the first benchmark took, if it finished)` passed, and returns the exit code, stderr and the results
/// file (if one was written).
fn interrupt(
    backend: &str,
    signal: i32,
    after: &str,
    delay: impl Fn(Option<Duration>) -> Duration,
) -> (Option<i32>, String, Option<RunResults>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokbench"));
    cmd.arg("run")
        .arg("-m")
        .arg(common::default_model())
        .args(["--backend", backend, "-p", "16,24", "-n", "16", "--runs", "12", "--warmup", "0", "-t", "2"])
        .args(["--no-quality", "-o"])
        .arg(&out)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // A test harness (or a shell's background job) may hand its children SIGINT ignored: start tokbench with the
    // default dispositions, as a terminal or a CI runner does.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            all.push_str(&line);
            all.push('\n');
            let _ = lines_tx.send(line);
        }
        all
    });
    let started = Instant::now();
    let (mut first_started, mut first_took) = (None, None);
    loop {
        let line = lines_rx.recv_timeout(Duration::from_secs(300)).expect("tokbench printed no progress line");
        if line.starts_with(&starts(1)) && first_started.is_none() {
            first_started = Some(Instant::now());
        }
        if line.starts_with(&starts(2)) && first_took.is_none() {
            first_took = first_started.map(|t| t.elapsed());
        }
        if line.starts_with(after) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "no line starting with {after:?}");
    }
    std::thread::sleep(delay(first_took));
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    let status = child.wait().unwrap();
    let stderr = reader.join().unwrap();
    let results = out.is_file().then(|| RunResults::read(&out).unwrap());
    (status.code(), stderr, results)
}

/// The line the runner prints when benchmark `i` of 2 starts (when stderr is not a terminal).
fn starts(i: usize) -> String {
    format!("[{i}/2] ")
}

fn check_interrupted_mid_second(backend: &str, signal: i32, name: &str) {
    // Three runs' worth into the second benchmark, at the pace the first one ran (the machine may be busy).
    let three_runs = |first: Option<Duration>| first.expect("the first benchmark finished") * 3 / 12;
    let (code, stderr, results) = interrupt(backend, signal, &starts(2), three_runs);
    assert_eq!(code, Some(128 + signal), "{stderr}");
    let results = results.unwrap_or_else(|| panic!("no results file after {name}:\n{stderr}"));
    assert_eq!(results.benchmarks.len(), 1, "the finished benchmark is saved:\n{stderr}");
    assert!(results.benchmarks[0].id.to_string().contains("/p16-n16/"), "{}", results.benchmarks[0].id);
    assert_eq!(results.benchmarks[0].runs.len(), 12);
    assert_eq!(results.failures.len(), 1, "{stderr}");
    let cut = &results.failures[0];
    assert!(cut.id.to_string().contains("/p24-n16/"), "{}", cut.id);
    assert_eq!(cut.error, format!("interrupted by {name}"));
    // About three runs into it: some completed, not all 12.
    assert!((1..12).contains(&cut.completed_runs.len()), "{} completed runs", cut.completed_runs.len());
    assert!(cut.completed_runs.iter().all(|r| r.generated_tokens == 16 && r.ram_delta_bytes.is_some()));
    assert!(stderr.contains(&format!("{name}: saving what was measured")), "{stderr}");
}

#[test]
fn sigint_mid_run_saves_the_finished_benchmark_and_the_interrupted_ones_runs_then_exits_130() {
    check_interrupted_mid_second("llama.cpp", libc::SIGINT, "SIGINT");
}

#[test]
fn sigterm_mid_run_saves_the_same_then_exits_143() {
    check_interrupted_mid_second("llama.cpp", libc::SIGTERM, "SIGTERM");
}

#[test]
fn a_signal_before_anything_was_measured_writes_nothing_and_still_exits_by_it() {
    // Right as the first benchmark starts (its warmup): nothing to save.
    let (code, stderr, results) = interrupt("llama.cpp", libc::SIGINT, &starts(1), |_| Duration::ZERO);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(results.is_none(), "a results file with nothing measured in it");
    assert!(stderr.contains("nothing was measured yet: no results file"), "{stderr}");
}

#[cfg(feature = "mlx")]
#[test]
fn sigint_mid_run_of_mlx_saves_what_was_measured_then_exits_130() {
    check_interrupted_mid_second("mlx", libc::SIGINT, "SIGINT");
}
