//! The A/B gate: two builds of tokbench — the base ref's and the head's — measured in one job, generation by
//! generation. Each build runs as a `tokbench worker` (protocol: `tokbench_record::worker`) with its models loaded;
//! for each benchmark both warm up, then every round runs one timed generation per build in a random order. What
//! drifts slower than a round (a busier host, the hour, thermal state) hits both builds alike, and the paired rule
//! (`rule::judge_paired`) compares them round by round.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokbench_record::id::BenchmarkId;
use tokbench_record::metric::{format_value, Metric};
use tokbench_record::results::{RunResults, RunSample};
use tokbench_record::worker::{read_line, Hello, Reply, Request, PROTOCOL, PROTOCOL_VERSION};

use crate::config::GateConfig;

/// A running worker: a `tokbench worker` child process, or (in tests) any pair of streams that speak the protocol.
pub struct Worker {
    /// `base` or `head`, for messages.
    pub label: String,
    pub hello: Hello,
    child: Option<Child>,
    input: Box<dyn Write + Send>,
    output: Box<dyn BufRead + Send>,
}

/// Why a build cannot take part in an A/B run (the gate then falls back to committed baselines).
#[derive(Debug, Clone, PartialEq)]
pub struct Unsupported(pub String);

impl Worker {
    /// Starts `program worker ARGS…` and reads its hello.
    pub fn spawn(label: &str, program: &Path, args: &[String]) -> Result<std::result::Result<Worker, Unsupported>> {
        let mut child = Command::new(program)
            .arg("worker")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start the {label} build's worker {}", program.display()))?;
        let input = Box::new(child.stdin.take().expect("piped"));
        let output = Box::new(BufReader::new(child.stdout.take().expect("piped")));
        let started = Worker::over(label, input, output);
        match started {
            Ok(Ok(mut w)) => {
                w.child = Some(child);
                Ok(Ok(w))
            }
            other => {
                let _ = child.kill();
                let status = child.wait().ok();
                match other {
                    Ok(Err(Unsupported(why))) => {
                        let how = status.map_or(String::new(), |s| format!(" (it exited: {s})"));
                        Ok(Err(Unsupported(format!("{why}{how}"))))
                    }
                    Err(e) => Err(e),
                    Ok(Ok(_)) => unreachable!("handled above"),
                }
            }
        }
    }

    /// A worker on streams: reads and checks its hello line.
    pub fn over(
        label: &str,
        input: Box<dyn Write + Send>,
        mut output: Box<dyn BufRead + Send>,
    ) -> Result<std::result::Result<Worker, Unsupported>> {
        let line = read_line(&mut output).with_context(|| format!("reading the {label} worker's hello"))?;
        let Some(line) = line else {
            return Ok(Err(Unsupported(format!(
                "the {label} build's tokbench has no `worker` command: it predates the A/B protocol"
            ))));
        };
        let hello: serde_json::Value = match serde_json::from_slice(&line) {
            Ok(v) => v,
            Err(_) => {
                return Ok(Err(Unsupported(format!("the {label} build's `tokbench worker` is not a protocol worker"))))
            }
        };
        if hello.get("protocol").and_then(|p| p.as_str()) != Some(PROTOCOL) {
            return Ok(Err(Unsupported(format!("the {label} build's first line is not a {PROTOCOL} hello"))));
        }
        let version = hello.get("version").and_then(|v| v.as_u64());
        if version != Some(u64::from(PROTOCOL_VERSION)) {
            return Ok(Err(Unsupported(format!(
                "the {label} build speaks worker protocol version {}, this gate speaks {PROTOCOL_VERSION}",
                version.map_or("?".into(), |v| v.to_string())
            ))));
        }
        let hello: Hello =
            serde_json::from_value(hello).with_context(|| format!("the {label} worker's hello is malformed"))?;
        Ok(Ok(Worker { label: label.into(), hello, child: None, input, output }))
    }

    /// Freezes the worker (SIGSTOP) while the other build measures: an idle engine is not idle — llama.cpp's OpenMP
    /// threads spin for a while after each parallel region — and on a small machine that spinning would land on the
    /// other build's clock.
    fn pause(&mut self) {
        #[cfg(unix)]
        if let Some(child) = &self.child {
            // SAFETY: a signal to our own child process, which we have not reaped (it is still in `self.child`).
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGSTOP) };
        }
    }

    fn resume(&mut self) {
        #[cfg(unix)]
        if let Some(child) = &self.child {
            // SAFETY: as in `pause`.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
        }
    }

    fn call(&mut self, request: &Request) -> Result<Reply> {
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        let label = &self.label;
        self.input
            .write_all(&line)
            .and_then(|()| self.input.flush())
            .with_context(|| format!("the {label} worker stopped reading (did it crash? see its errors above)"))?;
        let Some(reply) = read_line(&mut self.output)? else {
            let status = self.child.as_mut().and_then(|c| c.wait().ok()).map_or(String::new(), |s| format!(" ({s})"));
            bail!("the {label} worker exited{status} while answering {request:?} (see its errors above)");
        };
        serde_json::from_slice(&reply).with_context(|| format!("the {label} worker's reply is not of the protocol"))
    }

    /// One request whose failure fails only this benchmark on this side: `Err(message)`.
    fn run(&mut self, request: &Request) -> Result<std::result::Result<Option<RunSample>, String>> {
        match self.call(request)? {
            Reply::Done => Ok(Ok(None)),
            Reply::Sample { sample } => Ok(Ok(Some(*sample))),
            Reply::Error { message } => Ok(Err(message)),
            Reply::Results { .. } => bail!("the {} worker answered {request:?} with results", self.label),
        }
    }

    /// The worker's results; it exits.
    pub fn finish(mut self) -> Result<RunResults> {
        self.resume();
        let mut results = match self.call(&Request::Finish)? {
            Reply::Results { results } => *results,
            Reply::Error { message } => bail!("the {} worker could not report its results: {message}", self.label),
            other => bail!("the {} worker answered finish with {other:?}", self.label),
        };
        if let Some(mut child) = self.child.take() {
            let _ = child.wait(); // it exits after its results
        }
        results.derive_missing_ram_delta(); // a base built before RAM Δ was recorded
        Ok(results)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.resume();
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What an interleaved run produced: both builds' results, `runs[i]` of each being round i. A confirmed suspect has
/// `2 × rounds` runs on each side: the first pass, then the confirmation's fresh rounds.
pub struct Interleaved {
    pub base: RunResults,
    pub head: RunResults,
    pub rounds: usize,
    pub seed: u64,
    /// Benchmarks the first pass judged regressed, measured again in a second interleaved pass (seed + 1).
    pub confirmed: Vec<BenchmarkId>,
    /// Benchmarks only the base build has (renamed or dropped by the change): not measured.
    pub base_only: Vec<BenchmarkId>,
}

/// Each benchmark's timed samples from one pass, `[base, head]`, in round order.
pub type PassSamples = BTreeMap<BenchmarkId, [Vec<RunSample>; 2]>;

/// Runs benchmarks `ids` of the head's matrix on both workers: per benchmark, `warmup` alternating warmups, then
/// `runs` rounds of one timed generation per build, the order inside each round drawn from a generator seeded with
/// `seed`. The build not measuring is frozen meanwhile. Benchmarks the base lacks are measured on the head alone.
/// `base = None` measures the head alone (the fallback). `pass` names the pass in progress lines.
pub fn interleave(
    mut base: Option<&mut Worker>,
    head: &mut Worker,
    ids: &[BenchmarkId],
    seed: u64,
    pass: &str,
    progress: bool,
) -> Result<PassSamples> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (warmup, rounds) = (head.hello.warmup, head.hello.runs);
    let started = Instant::now();
    let mut measured = PassSamples::new();
    for (index, id) in ids.iter().enumerate() {
        let with_base = base.as_ref().is_some_and(|b| b.hello.benchmarks.contains(id));
        let benchmark_started = Instant::now();
        if progress {
            let sides = if with_base { "base and head alternating" } else { "head only" };
            eprintln!("[{}/{}] {id}: {warmup} warmup + {rounds} rounds, {sides}{pass}", index + 1, ids.len());
        }
        let samples = measured.entry(id.clone()).or_default();
        // failed[0] = base, failed[1] = head: a side that failed stops running this benchmark.
        let mut failed = [!with_base, false];
        let mut decode: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let steps = (0..warmup).map(|_| false).chain((0..rounds).map(|_| true));
        for timed in steps {
            let order: [usize; 2] = if rng.random_bool(0.5) { [0, 1] } else { [1, 0] };
            for side in order {
                if failed[side] {
                    continue;
                }
                let request = if timed {
                    Request::Measure { id: id.clone() }
                } else {
                    Request::Warmup { id: id.clone(), runs: 1 }
                };
                // Only the measuring build runs; the other is frozen (see `Worker::pause`).
                if side == 0 {
                    head.pause();
                } else if let Some(b) = base.as_deref_mut() {
                    b.pause();
                }
                let worker: &mut Worker = if side == 0 { base.as_deref_mut().expect("with_base") } else { head };
                worker.resume();
                match worker.run(&request)? {
                    Ok(Some(sample)) => {
                        decode[side].extend(sample.decode_tps);
                        samples[side].push(sample);
                    }
                    Ok(None) => {}
                    Err(message) => {
                        eprintln!("{id}: the {} build failed: {message}", worker.label);
                        failed[side] = true;
                    }
                }
            }
        }
        if progress {
            let median = |v: &[f64]| (!v.is_empty()).then(|| tokbench_record::summary::median(v));
            let show = |v: Option<f64>| v.map_or("—".into(), |v| format_value(Metric::DecodeTps.unit(), v) + " t/s");
            let (b, h) = (median(&decode[0]), median(&decode[1]));
            let ratio = match (b, h) {
                (Some(b), Some(h)) => format!(" ({:+.1}%)", (h / b - 1.0) * 100.0),
                _ => String::new(),
            };
            let elapsed = started.elapsed().as_secs_f64();
            let done = index + 1;
            let left = elapsed / done as f64 * (ids.len() - done) as f64;
            let clock = |s: f64| format!("{}:{:02}", (s / 60.0) as u64, (s % 60.0) as u64);
            eprintln!(
                "[{done}/{}] {id}: decode base {}, head {}{ratio} ({:.1} s){pass}; {} so far, about {} left",
                ids.len(),
                show(b),
                show(h),
                benchmark_started.elapsed().as_secs_f64(),
                clock(elapsed),
                clock(left)
            );
        }
    }
    Ok(measured)
}

/// Both workers through [`interleave`] on the whole matrix; then the benchmarks that pass judged regressed (by the
/// paired rule and `config`, [`crate::compare::paired_suspects`]) once more, in fresh rounds with seed + 1, so that
/// one unlucky pass cannot fail a pull request alone (see docs/gate.md); then both builds' results.
pub fn run_both(
    mut base: Worker,
    mut head: Worker,
    seed: u64,
    config: &GateConfig,
    progress: bool,
) -> Result<Interleaved> {
    let ids = head.hello.benchmarks.clone();
    let first = interleave(Some(&mut base), &mut head, &ids, seed, "", progress)?;
    let confirmed = crate::compare::paired_suspects(&first, config);
    if !confirmed.is_empty() {
        if progress {
            let list: Vec<String> = confirmed.iter().map(ToString::to_string).collect();
            eprintln!(
                "A/B: {} suspect(s) after the first pass, measured again to confirm: {}",
                list.len(),
                list.join(", ")
            );
        }
        interleave(Some(&mut base), &mut head, &confirmed, seed.wrapping_add(1), " (confirmation)", progress)?;
    }
    let base_only: Vec<BenchmarkId> =
        base.hello.benchmarks.iter().filter(|id| !head.hello.benchmarks.contains(id)).cloned().collect();
    let rounds = head.hello.runs;
    let base = base.finish()?;
    let head = head.finish()?;
    Ok(Interleaved { base, head, rounds, seed, confirmed, base_only })
}

/// The base ref's tokbench, built once per commit: a detached worktree under `<root>/target/tokbench/ab/`, built
/// with its own target dir (shared by every base commit, so llama.cpp compiles once), the binary kept per commit.
pub fn build_base(root: &Path, rev: &str, cargo_args: &[String]) -> Result<(String, PathBuf)> {
    let commit = git(root, &["rev-parse", "--verify", &format!("{rev}^{{commit}}")]).with_context(|| {
        format!("--ab {rev}: not a commit of this repository (fetch it first, e.g. `git fetch origin main`)")
    })?;
    let ab = root.join("target/tokbench/ab");
    let binary = ab.join("bin").join(&commit).join(format!("tokbench{}", std::env::consts::EXE_SUFFIX));
    if binary.is_file() {
        eprintln!("A/B: base {rev} ({}) already built: {}", &commit[..12], binary.display());
        return Ok((commit, binary));
    }
    let worktree = ab.join("worktrees").join(&commit);
    if !worktree.join("Cargo.toml").is_file() {
        let _ = std::fs::remove_dir_all(&worktree);
        let _ = git(root, &["worktree", "prune"]);
        git(root, &["worktree", "add", "--detach", &worktree.to_string_lossy(), &commit])
            .with_context(|| format!("cannot check out {rev} into {}", worktree.display()))?;
    }
    let target = ab.join("target");
    eprintln!(
        "A/B: building base {rev} ({}) in {} (its own target dir: {})",
        &commit[..12],
        worktree.display(),
        target.display()
    );
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "tokbench"])
        .args(cargo_args)
        .current_dir(&worktree)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .context("cannot run cargo")?;
    ensure!(status.success(), "building the base {rev} ({commit}) failed ({status})");
    let built = target.join("release").join(format!("tokbench{}", std::env::consts::EXE_SUFFIX));
    let dir = binary.parent().expect("has a parent");
    std::fs::create_dir_all(dir)?;
    let partial = dir.join(".tokbench.partial");
    std::fs::copy(&built, &partial).with_context(|| format!("cannot copy {}", built.display()))?;
    std::fs::rename(&partial, &binary)?;
    Ok((commit, binary))
}

/// The working tree's tokbench: `cargo build --release -p tokbench` in `root`.
pub fn build_head(root: &Path, cargo_args: &[String]) -> Result<PathBuf> {
    eprintln!("A/B: building head (the working tree)");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "tokbench"])
        .args(cargo_args)
        .current_dir(root)
        .status()
        .context("cannot run cargo")?;
    ensure!(status.success(), "building the head failed ({status})");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("release").join(format!("tokbench{}", std::env::consts::EXE_SUFFIX)))
}

fn git(root: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git").args(args).current_dir(root).output().context("cannot run git")?;
    ensure!(out.status.success(), "git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
