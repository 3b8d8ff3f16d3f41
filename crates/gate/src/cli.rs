//! The gate's commands as `cargo xtask` exposes them, callable in-process (tests) and returning exit codes:
//! 0 pass, 1 regression, 2 usage or input error.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use tokbench_record::id::BenchmarkId;
use tokbench_record::results::{BenchmarkResult, RunResults};

use crate::baseline::{self, check_class_key, BaselineSet};
use crate::compare::{compare, GateReport, Outcome};
use crate::config::GateConfig;
use crate::history::History;
use crate::report;

pub const EXIT_PASS: u8 = 0;
pub const EXIT_REGRESSION: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

/// Compare results with baselines; exit 0 pass, 1 regression, 2 usage/input error.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "compare")]
pub struct CompareArgs {
    /// Results file, or a directory of them (merged by benchmark id; the newest run of an id wins).
    #[arg(long, default_value = "target/tokbench/latest.json")]
    pub results: PathBuf,
    /// Baseline directory of one machine class. Default: <baselines-root>/<machine class of the results>.
    #[arg(long, conflicts_with = "base")]
    pub baseline: Option<PathBuf>,
    /// Read the baselines as committed at this git ref (e.g. origin/main) instead of the work tree.
    #[arg(long)]
    pub base: Option<String>,
    #[arg(long, default_value = "baselines")]
    pub baselines_root: PathBuf,
    /// Re-run the suspect benchmarks and fail only if the fresh samples regress too.
    #[arg(long)]
    pub confirm: bool,
    /// Compare against baselines measured on another machine class.
    #[arg(long)]
    pub allow_machine_mismatch: bool,
    /// Where gate.md, gate.json and gate.html go.
    #[arg(long, default_value = "target/tokbench/gate")]
    pub out: PathBuf,
    /// Thresholds and significance level (`[gate]` table); defaults when absent.
    #[arg(long, default_value = "gate.toml")]
    pub gate_config: PathBuf,
    /// Program that re-runs suspects for --confirm; it gets `run --filter <ids> -o <file> --quiet` then the
    /// --confirm-arg values. Default: `cargo run --release -p tokbench --`.
    #[arg(long)]
    pub confirm_runner: Option<PathBuf>,
    /// Extra argument for the re-run (repeatable), e.g. --confirm-arg=--prompt --confirm-arg=short.
    #[arg(long = "confirm-arg", allow_hyphen_values = true)]
    pub confirm_args: Vec<String>,
    /// Commits of baseline history to draw as trend lines in the HTML report (0 = none).
    #[arg(long, default_value_t = 30)]
    pub history_limit: usize,
}

/// Write the current results as the baselines of this machine class.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "bless")]
pub struct BlessArgs {
    #[arg(long, default_value = "target/tokbench/latest.json")]
    pub results: PathBuf,
    #[arg(long, default_value = "baselines")]
    pub baselines_root: PathBuf,
    /// Also delete baselines of benchmarks these results did not run.
    #[arg(long)]
    pub prune: bool,
}

/// Print how each benchmark × metric's baseline moved over the commits that changed it.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "history")]
pub struct HistoryArgs {
    #[arg(long, default_value = "baselines")]
    pub baselines_root: PathBuf,
    /// Walk back from this ref.
    #[arg(long, default_value = "HEAD")]
    pub rev: String,
    /// Machine class; default: the only class under the baselines root, or the latest results' class.
    #[arg(long)]
    pub class: Option<String>,
    #[arg(long, default_value_t = 30)]
    pub limit: usize,
    #[arg(long, default_value = "gate.toml")]
    pub gate_config: PathBuf,
    /// Also write the history as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What a command ended with: the exit code, the message to show (the markdown verdict, or the error), the report.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
    pub report: Option<GateReport>,
}

impl Exit {
    fn error(e: anyhow::Error) -> Exit {
        Exit { code: EXIT_ERROR, message: format!("error: {e:#}"), report: None }
    }
}

/// Current results: one file, or every results file of a directory merged by id.
pub struct Current {
    pub benchmarks: Vec<BenchmarkResult>,
    pub class: String,
    pub commit: Option<String>,
    pub source: String,
}

pub fn load_results(path: &Path) -> Result<Current> {
    let fix = "run the benchmarks first (`cargo xtask run`) or pass --results FILE";
    let mut files = if path.is_dir() {
        let list = baseline::json_files(path)?;
        ensure!(!list.is_empty(), "{} has no results files: {fix}", path.display());
        list.iter().map(|p| RunResults::read(p)).collect::<Result<Vec<_>>>()?
    } else {
        ensure!(path.exists(), "results file {} does not exist: {fix}", path.display());
        vec![RunResults::read(path)?]
    };
    files.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    let class = files[0].machine.class_key.clone();
    check_class_key(&class)?;
    if let Some(other) = files.iter().find(|r| r.machine.class_key != class) {
        bail!(
            "{} mixes results from machine classes {class} and {}: compare one machine's results at a time",
            path.display(),
            other.machine.class_key
        );
    }
    let mut by_id: BTreeMap<BenchmarkId, BenchmarkResult> = BTreeMap::new();
    let mut order = Vec::new();
    for r in &files {
        for b in &r.benchmarks {
            if by_id.insert(b.id.clone(), b.clone()).is_none() {
                order.push(b.id.clone());
            }
        }
    }
    ensure!(!order.is_empty(), "{} holds no benchmarks: {fix}", path.display());
    let commit = files.last().and_then(|r| r.git.as_ref()).map(|g| g.commit.clone());
    let benchmarks = order.into_iter().map(|id| by_id.remove(&id).unwrap()).collect();
    Ok(Current { benchmarks, class, commit, source: path.display().to_string() })
}

fn mismatch(class: &str, source: &str, found: &[String]) -> anyhow::Error {
    anyhow::anyhow!(
        "the results were measured on machine class {class}, but the baselines in {source} are for {}: numbers from \
         different machines are not comparable. Bless baselines on this machine (`cargo xtask run && cargo xtask \
         bless`) or pass --allow-machine-mismatch to compare anyway",
        found.join(", ")
    )
}

/// The baselines to compare with, after the machine-class check.
fn load_baselines(args: &CompareArgs, class: &str) -> Result<BaselineSet> {
    let (set, others) = if let Some(dir) = &args.baseline {
        ensure!(dir.is_dir(), "baseline directory {} does not exist", dir.display());
        (BaselineSet::load_dir(dir)?, Vec::new())
    } else if let Some(rev) = &args.base {
        read_at_ref(&args.baselines_root, rev, class)?
    } else {
        let set = BaselineSet::load_dir(&args.baselines_root.join(class))?;
        (set, baseline::classes_in(&args.baselines_root))
    };
    let found = set.classes();
    if !found.is_empty() && found != [class] && !args.allow_machine_mismatch {
        return Err(mismatch(class, &set.source, &found));
    }
    let others: Vec<String> = others.into_iter().filter(|c| c != class).collect();
    if set.by_id.is_empty() && !others.is_empty() {
        if !args.allow_machine_mismatch {
            return Err(mismatch(class, &args.baselines_root.display().to_string(), &others));
        }
        ensure!(
            others.len() == 1,
            "baselines exist for several other machine classes ({}): pick one with --baseline DIR",
            others.join(", ")
        );
        return if let Some(rev) = &args.base {
            Ok(read_at_ref(&args.baselines_root, rev, &others[0])?.0)
        } else {
            BaselineSet::load_dir(&args.baselines_root.join(&others[0]))
        };
    }
    Ok(set)
}

#[cfg(feature = "git")]
fn read_at_ref(root: &Path, rev: &str, class: &str) -> Result<(BaselineSet, Vec<String>)> {
    crate::git::read_at(&std::env::current_dir()?, root, rev, class)
}

#[cfg(not(feature = "git"))]
fn read_at_ref(_root: &Path, _rev: &str, _class: &str) -> Result<(BaselineSet, Vec<String>)> {
    bail!("--base needs git support: this build of tokbench-gate lacks the `git` feature (cargo xtask has it)")
}

#[cfg(feature = "git")]
fn history_for_report(
    root: &Path,
    rev: &str,
    class: &str,
    metrics: &[tokbench_record::metric::Metric],
    limit: usize,
) -> Option<History> {
    match crate::git::history(&std::env::current_dir().ok()?, root, rev, class, metrics, limit) {
        Ok(h) if !h.points.is_empty() => Some(h),
        Ok(_) => None,
        Err(e) => {
            eprintln!("note: no trend lines in the report: {e:#}");
            None
        }
    }
}

#[cfg(not(feature = "git"))]
fn history_for_report(_: &Path, _: &str, _: &str, _: &[tokbench_record::metric::Metric], _: usize) -> Option<History> {
    None
}

/// Re-runs `ids` and returns the fresh results.
fn rerun(args: &CompareArgs, ids: &[BenchmarkId]) -> Result<Vec<BenchmarkResult>> {
    let ids = ids.iter().map(ToString::to_string).collect::<Vec<_>>();
    let file = args.out.join("confirm-results.json");
    let mut cmd = match &args.confirm_runner {
        Some(p) => Command::new(p),
        None => {
            let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            c.args(["run", "--release", "--quiet", "-p", "tokbench", "--"]);
            c
        }
    };
    cmd.arg("run").arg("--filter").arg(ids.join(",")).arg("-o").arg(&file).arg("--quiet").args(&args.confirm_args);
    eprintln!("--confirm: re-running {} suspect benchmark(s): {}", ids.len(), ids.join(", "));
    let status = cmd.status().with_context(|| format!("cannot start the re-run {cmd:?}"))?;
    ensure!(status.success(), "the --confirm re-run failed ({status}): {cmd:?}");
    Ok(RunResults::read(&file)?.benchmarks)
}

fn compare_inner(args: &CompareArgs) -> Result<(GateReport, String)> {
    let config = GateConfig::load_or_default(&args.gate_config)?;
    let current = load_results(&args.results)?;
    let baselines = load_baselines(args, &current.class)?;
    let mut report =
        compare(&current.benchmarks, &baselines, &config, &current.class, &current.source, current.commit.clone());
    if args.confirm {
        let suspects = report.suspects();
        if !suspects.is_empty() {
            let fresh = rerun(args, &suspects)?;
            let absent = report.apply_confirmation(&fresh, &config);
            ensure!(
                absent.is_empty(),
                "the --confirm re-run did not produce {}: check --confirm-arg",
                absent.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            );
        } else {
            report.confirm = true;
        }
    }
    let md = report::markdown::render(&report);
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    tokbench_record::results::write_atomic(&args.out.join("gate.md"), md.as_bytes())?;
    report::json::write(&report, &args.out.join("gate.json"))?;
    let history = if args.history_limit > 0 {
        history_for_report(
            &args.baselines_root,
            args.base.as_deref().unwrap_or("HEAD"),
            &current.class,
            &config.metrics,
            args.history_limit,
        )
    } else {
        None
    };
    let html = report::html::render(
        &report::html::Inputs {
            report: &report,
            current: &current.benchmarks,
            baselines: &baselines,
            history: history.as_ref(),
            generated_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        },
        &config.metrics,
    )?;
    tokbench_record::results::write_atomic(&args.out.join("gate.html"), html.as_bytes())?;
    if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|s| !s.is_empty()) {
        use std::io::Write;
        let mut f =
            std::fs::OpenOptions::new().create(true).append(true).open(&summary).with_context(|| {
                format!("cannot append to $GITHUB_STEP_SUMMARY ({})", Path::new(&summary).display())
            })?;
        writeln!(f, "{md}")?;
    }
    Ok((report, md))
}

/// `cargo xtask compare`.
pub fn run_compare(args: &CompareArgs) -> Exit {
    match compare_inner(args) {
        Ok((report, mut md)) => {
            let code = match report.outcome {
                Outcome::Pass => EXIT_PASS,
                Outcome::Fail => EXIT_REGRESSION,
            };
            if code == EXIT_REGRESSION {
                let list: Vec<String> = report.regressions().iter().map(|(id, m)| format!("{id} {m}")).collect();
                md.push_str(&format!("\nregressed: {}\n", list.join("; ")));
            }
            md.push_str(&format!("\nreports: {}/gate.{{md,json,html}}\n", args.out.display()));
            Exit { code, message: md, report: Some(report) }
        }
        Err(e) => Exit::error(e),
    }
}

/// `cargo xtask bless`.
pub fn run_bless(args: &BlessArgs) -> Exit {
    let go = || -> Result<String> {
        let results = RunResults::read(&args.results)
            .with_context(|| "bless needs a results file: run `cargo xtask run` first or pass --results FILE")?;
        let out = baseline::bless(&results, &args.baselines_root, args.prune)?;
        let mut msg = format!("blessed {} benchmark(s) into {}", out.written.len(), out.dir.display());
        if results.git.as_ref().is_some_and(|g| g.dirty) {
            msg.push_str("\nnote: these results were measured with uncommitted changes");
        }
        if results.benchmarks.iter().any(|b| b.runs.len() < 5) {
            msg.push_str("\nnote: some benchmarks have fewer than 5 runs; the gate needs 4+ per side to decide");
        }
        if !out.kept.is_empty() {
            msg.push_str(&format!(
                "\nkept {} baseline(s) these results did not run (--prune removes them)",
                out.kept.len()
            ));
        }
        for id in &out.pruned {
            msg.push_str(&format!("\npruned {id}"));
        }
        Ok(msg)
    };
    match go() {
        Ok(message) => Exit { code: EXIT_PASS, message, report: None },
        Err(e) => Exit::error(e),
    }
}

/// `cargo xtask history`.
#[cfg(feature = "git")]
pub fn run_history(args: &HistoryArgs) -> Exit {
    let go = || -> Result<String> {
        let config = GateConfig::load_or_default(&args.gate_config)?;
        let class =
            match &args.class {
                Some(c) => c.clone(),
                None => {
                    let classes = baseline::classes_in(&args.baselines_root);
                    match classes.as_slice() {
                        [one] => one.clone(),
                        _ => load_results(Path::new("target/tokbench/latest.json")).map(|c| c.class).with_context(
                            || format!("pick a machine class with --class (found: {})", classes.join(", ")),
                        )?,
                    }
                }
            };
        check_class_key(&class)?;
        let h = crate::git::history(
            &std::env::current_dir()?,
            &args.baselines_root,
            &args.rev,
            &class,
            &config.metrics,
            args.limit,
        )?;
        if let Some(p) = &args.json {
            tokbench_record::results::write_json_atomic(p, &h)?;
        }
        Ok(h.render_text(&config.metrics))
    };
    match go() {
        Ok(message) => Exit { code: EXIT_PASS, message, report: None },
        Err(e) => Exit::error(e),
    }
}
