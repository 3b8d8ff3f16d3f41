//! The gate's commands as `cargo xtask` exposes them, callable in-process (tests) and returning exit codes:
//! 0 pass, 1 regression, 2 usage or input error.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use tokbench_record::id::BenchmarkId;
use tokbench_record::machine::Machine;
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
    /// Let baseline benchmarks that the results lack pass (by default they fail the gate, named); also
    /// `[gate] allow_missing = true`.
    #[arg(long)]
    pub allow_missing: bool,
    /// Where gate.md, gate.json and gate.html go.
    #[arg(long, default_value = "target/tokbench/gate")]
    pub out: PathBuf,
    /// Thresholds and significance level (`[gate]` table); defaults when absent.
    #[arg(long, default_value = "gate.toml")]
    pub gate_config: PathBuf,
    /// Program that re-runs suspects for --confirm; it gets `run --filter <ids> -o <file>` then the
    /// --confirm-arg values. Default (`cargo xtask compare`): a tokbench built with the engines of the results it
    /// confirms (MLX when they have MLX benchmarks); without xtask, `cargo run --release -p tokbench --`.
    #[arg(long)]
    pub confirm_runner: Option<PathBuf>,
    /// Extra argument for the re-run (repeatable), e.g. --confirm-arg=--prompt --confirm-arg=short.
    #[arg(long = "confirm-arg", allow_hyphen_values = true)]
    pub confirm_args: Vec<String>,
    /// Commits of baseline history to draw as trend lines in the HTML report (0 = none).
    #[arg(long, default_value_t = 30)]
    pub history_limit: usize,
    /// A/B mode, for pull requests: build this git ref's tokbench (e.g. origin/main) and measure it beside the
    /// working tree's in this one job, alternating generation by generation in random order; the rounds are judged
    /// in pairs. Falls back to the baselines committed at REF when REF predates the worker protocol.
    #[arg(long, value_name = "REF", conflicts_with_all = ["baseline", "base", "confirm"])]
    pub ab: Option<String>,
    /// A/B: run this tokbench binary as the base instead of building REF (it must be built from REF).
    #[arg(long, requires = "ab")]
    pub base_worker: Option<PathBuf>,
    /// A/B: run this tokbench binary as the head instead of building the working tree.
    #[arg(long, requires = "ab")]
    pub head_worker: Option<PathBuf>,
    /// A/B: the benchmark config both builds run (the head's).
    #[arg(long, default_value = "tokbench.toml")]
    pub config: PathBuf,
    /// A/B: extra `tokbench run` flag for both builds (repeatable), e.g. --worker-arg=--backend
    /// --worker-arg=llama.cpp.
    #[arg(long = "worker-arg", allow_hyphen_values = true)]
    pub worker_args: Vec<String>,
    /// A/B: extra cargo argument for building both builds (repeatable), e.g. --cargo-arg=--features
    /// --cargo-arg=tokbench/mlx.
    #[arg(long = "cargo-arg", allow_hyphen_values = true)]
    pub cargo_args: Vec<String>,
    /// A/B: seed of the order inside each round (default: from the clock; the report records it).
    #[arg(long, requires = "ab")]
    pub seed: Option<u64>,
}

/// Write the current results as the baselines of this machine class.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "bless")]
pub struct BlessArgs {
    #[arg(long, default_value = "target/tokbench/latest.json")]
    pub results: PathBuf,
    #[arg(long, default_value = "baselines")]
    pub baselines_root: PathBuf,
    /// Also delete baselines of benchmarks these results did not run (lists them; needs --yes).
    #[arg(long)]
    pub prune: bool,
    /// Confirms --prune's deletions.
    #[arg(long)]
    pub yes: bool,
    /// Bless results of part of the matrix (fewer runs than the config's, or without some benchmarks that have
    /// baselines), keeping the other baselines as they are.
    #[arg(long)]
    pub partial: bool,
    /// The benchmark config whose `[run] runs` the gate's comparisons will use.
    #[arg(long, default_value = "tokbench.toml")]
    pub config: PathBuf,
    /// The gate's settings (α).
    #[arg(long, default_value = "gate.toml")]
    pub gate_config: PathBuf,
}

/// `[run] runs` of a benchmark config, when it has one.
fn committed_runs(config: &Path) -> Result<Option<usize>> {
    if !config.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(config).with_context(|| format!("cannot read {}", config.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", config.display()))?;
    Ok(table.get("run").and_then(|r| r.get("runs")).and_then(|r| r.as_integer()).map(|r| r.max(0) as usize))
}

/// Refuses what would weaken the gate for good: baselines too small to ever reach α, a partial run blessed as if it
/// were the whole matrix, deletions nobody confirmed.
fn check_bless(args: &BlessArgs, results: &RunResults) -> Result<()> {
    let alpha = GateConfig::load_or_default(&args.gate_config)?.alpha;
    let committed = committed_runs(&args.config)?;
    for b in &results.benchmarks {
        let n = b.runs.len();
        let against = committed.unwrap_or(n).max(1);
        if crate::rule::mann_whitney_k(n, against, alpha).is_none() {
            let needed = (1..=64).find(|&m| crate::rule::mann_whitney_k(m, against, alpha).is_some()).unwrap_or(64);
            bail!(
                "benchmark {} has {n} run(s): a compare of {against} runs against it can never reach the gate's \
                 α = {alpha}, so every change would pass as inconclusive. Bless at least {needed} runs per benchmark \
                 (the committed config's {against}: `cargo xtask run`)",
                b.id
            );
        }
    }
    let mut partial = Vec::new();
    // Results that say what made their matrix: the committed config, unaltered by flags, or it is not the matrix.
    if let Some(stamp) = &results.matrix {
        let committed_sha = std::fs::read(&args.config).ok().map(|bytes| {
            use sha2::Digest;
            sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect::<String>()
        });
        if committed_sha.is_some() && stamp.config_sha256 != committed_sha {
            partial.push(format!(
                "they were measured with {} rather than the committed {} as it is now",
                stamp.config.as_deref().map_or("no config file".to_string(), |c| format!("config {c}")),
                args.config.display()
            ));
        }
        if !stamp.overrides.is_empty() {
            partial.push(format!("command-line flags changed the config's matrix ({})", stamp.overrides.join(" ")));
        }
    }
    if let Some(c) = committed {
        let short: Vec<String> =
            results.benchmarks.iter().filter(|b| b.runs.len() < c).map(|b| b.id.to_string()).collect();
        if !short.is_empty() {
            partial.push(format!(
                "{} benchmark(s) have fewer runs than the config's {c} ({})",
                short.len(),
                short.join(", ")
            ));
        }
    }
    let dir = args.baselines_root.join(&results.machine.class_key);
    let existing = BaselineSet::load_dir(&dir)?;
    let absent: Vec<String> = existing
        .by_id
        .keys()
        .filter(|id| !results.benchmarks.iter().any(|b| &b.id == *id))
        .map(ToString::to_string)
        .collect();
    if args.prune && !args.yes {
        bail!(
            "--prune would delete {} baseline(s) of {}: {}. Run again with --prune --yes to delete them",
            absent.len(),
            dir.display(),
            if absent.is_empty() { "none".into() } else { absent.join(", ") }
        );
    }
    if !absent.is_empty() && !args.prune {
        partial.push(format!(
            "{} benchmark(s) with baselines are not in these results ({})",
            absent.len(),
            absent.join(", ")
        ));
    }
    ensure!(
        partial.is_empty() || args.partial,
        "these results look like part of the matrix: {}. Bless the whole matrix (`cargo xtask run`, then bless), or \
         pass --partial to bless just these and keep the other baselines (--prune --yes deletes baselines of \
         benchmarks that no longer run)",
        partial.join("; ")
    );
    Ok(())
}

/// Rename class directories of baselines blessed before the class key carried SIMD features.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "migrate-baselines")]
pub struct MigrateArgs {
    #[arg(long, default_value = "baselines")]
    pub baselines_root: PathBuf,
}

/// `cargo xtask migrate-baselines`.
pub fn run_migrate(args: &MigrateArgs) -> Exit {
    match baseline::migrate(&args.baselines_root) {
        Ok(done) if done.is_empty() => {
            Exit { code: EXIT_PASS, message: "every baseline class already has the current key".into(), report: None }
        }
        Ok(done) => {
            let lines: Vec<String> = done
                .iter()
                .map(|m| format!("{} → {} ({}; {} baselines)", m.from, m.to, m.features.join(" "), m.files))
                .collect();
            Exit {
                code: EXIT_PASS,
                message: format!("migrated:\n{}\ncommit the rename", lines.join("\n")),
                report: None,
            }
        }
        Err(e) => Exit::error(e),
    }
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
    /// The machine of the newest results file.
    pub machine: tokbench_record::machine::Machine,
    pub commit: Option<String>,
    pub source: String,
    /// For the report: results made with a test hook (see `RunResults::injection_note`).
    pub notes: Vec<String>,
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
    let machine = files.last().expect("at least one file").machine.clone();
    let mut notes: Vec<String> = files.iter().filter_map(|r| r.injection_note("current")).collect();
    notes.dedup();
    Ok(Current { benchmarks, class, machine, commit, source: path.display().to_string(), notes })
}

fn mismatch(machine: &Machine, set: &BaselineSet, found: &[String]) -> anyhow::Error {
    let differences = set
        .by_id
        .values()
        .find(|b| b.provenance.machine.class_key != machine.class_key)
        .map(|b| tokbench_record::machine::class_differences(&b.provenance.machine, machine))
        .filter(|d| !d.is_empty())
        .map_or(String::new(), |d| format!(" (baselines ≠ results: {})", d.join("; ")));
    anyhow::anyhow!(
        "the results were measured on machine class {}, but the baselines in {} are for {}{differences}: numbers \
         from different machines are not comparable. Bless baselines on this machine (`cargo xtask run && cargo \
         xtask bless`) or pass --allow-machine-mismatch to compare anyway",
        machine.class_key,
        set.source,
        found.join(", ")
    )
}

/// The baselines to compare with, after the machine-class check, and a note for the report when there are none for
/// this class at all (a neutral pass: nothing to compare with, and how to bless).
fn load_baselines(args: &CompareArgs, machine: &Machine) -> Result<(BaselineSet, Option<String>)> {
    let class = machine.class_key.as_str();
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
        return Err(mismatch(machine, &set, &found));
    }
    let others: Vec<String> = others.into_iter().filter(|c| c != class).collect();
    if set.by_id.is_empty() && args.baseline.is_none() {
        let legacy = tokbench_record::machine::legacy_class_key(
            &machine.cpu,
            machine.physical_cores,
            machine.memory_bytes,
            std::env::consts::OS,
            &machine.arch,
        );
        ensure!(
            !others.contains(&legacy),
            "baselines/{legacy} holds baselines under the old class key, which did not tell SIMD levels apart: run \
             `cargo xtask migrate-baselines` (it renames each class by the SIMD level its baselines recorded) and \
             commit the rename"
        );
    }
    if set.by_id.is_empty() && args.baseline.is_none() && !args.allow_machine_mismatch {
        let root = &args.baselines_root;
        let describe = |other: &String| -> String {
            let theirs = BaselineSet::load_dir(&root.join(other)).ok().and_then(|s| {
                s.by_id
                    .values()
                    .next()
                    .map(|b| tokbench_record::machine::class_differences(&b.provenance.machine, machine))
            });
            match theirs {
                Some(d) if !d.is_empty() => format!("{other} (theirs ≠ this machine: {})", d.join("; ")),
                _ => other.clone(),
            }
        };
        let elsewhere = if others.is_empty() {
            String::new()
        } else {
            format!(" (there are for {})", others.iter().map(describe).collect::<Vec<_>>().join(", "))
        };
        let note = format!(
            "no baselines for machine class {class} in {}{elsewhere}: nothing to compare with, so this is a neutral \
             pass. Bless this machine's: run the bench workflow by hand (workflow_dispatch), or `cargo xtask run && \
             cargo xtask bless` on the runner and commit baselines/{class}/",
            set.source
        );
        return Ok((set, Some(note)));
    }
    if set.by_id.is_empty() && !others.is_empty() {
        ensure!(
            others.len() == 1,
            "baselines exist for several other machine classes ({}): pick one with --baseline DIR",
            others.join(", ")
        );
        let set = if let Some(rev) = &args.base {
            read_at_ref(&args.baselines_root, rev, &others[0])?.0
        } else {
            BaselineSet::load_dir(&args.baselines_root.join(&others[0]))?
        };
        return Ok((set, None));
    }
    Ok((set, None))
}

/// Other settings or another model file make a comparison meaningless: an input error naming each difference.
fn check_comparable(current: &[BenchmarkResult], baselines: &BaselineSet) -> Result<()> {
    let mut problems = Vec::new();
    for cur in current {
        if let Some(base) = baselines.by_id.get(&cur.id) {
            let diffs = crate::compare::not_comparable(&base.benchmark, cur);
            if !diffs.is_empty() {
                problems.push(format!("  {}: {}", cur.id, diffs.join("; ")));
            }
        }
    }
    ensure!(
        problems.is_empty(),
        "{} benchmark(s) were measured differently from their baselines (baseline → current), so their numbers are \
         not comparable:\n{}\nCompare results made with the baseline's settings and model file, or re-bless \
         (`cargo xtask run && cargo xtask bless`)",
        problems.len(),
        problems.join("\n")
    );
    Ok(())
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
            c.args(["run", "--release", "-p", "tokbench", "--"]);
            c
        }
    };
    cmd.arg("run").arg("--filter").arg(ids.join(",")).arg("-o").arg(&file).args(&args.confirm_args);
    eprintln!("--confirm: re-running {} suspect benchmark(s): {}", ids.len(), ids.join(", "));
    let status = cmd.status().with_context(|| format!("cannot start the re-run {cmd:?}"))?;
    ensure!(status.success(), "the --confirm re-run failed ({status}): {cmd:?}");
    Ok(RunResults::read(&file)?.benchmarks)
}

/// What a comparison compared: the current benchmarks and the baseline side, for the reports' charts.
struct Compared {
    report: GateReport,
    current: Vec<BenchmarkResult>,
    baselines: BaselineSet,
    class: String,
}

fn compare_with_baselines(args: &CompareArgs, config: &GateConfig) -> Result<Compared> {
    let current = load_results(&args.results)?;
    let (baselines, no_baselines) = load_baselines(args, &current.machine)?;
    check_comparable(&current.benchmarks, &baselines)?;
    let mut report =
        compare(&current.benchmarks, &baselines, config, &current.class, &current.source, current.commit.clone());
    report.notes.extend(no_baselines);
    report.notes.extend(current.notes.iter().cloned());
    if args.confirm {
        let suspects = report.suspects();
        if !suspects.is_empty() {
            let fresh = rerun(args, &suspects)?;
            let absent = report.apply_confirmation(&fresh, config);
            ensure!(
                absent.is_empty(),
                "the --confirm re-run did not produce {}: check --confirm-arg",
                absent.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            );
        } else {
            report.confirm = true;
        }
    }
    Ok(Compared { report, current: current.benchmarks, baselines, class: current.class })
}

/// `--ab REF`: base and head built, run side by side as workers, judged in pairs; or, when the base cannot run as a
/// worker, the head alone against the baselines committed at REF.
fn compare_ab(args: &CompareArgs, rev: &str, config: &GateConfig) -> Result<Compared> {
    use crate::ab::{self, Worker};
    let root = std::env::current_dir()?;
    let (base_commit, base_bin) = match &args.base_worker {
        Some(p) => (resolve_commit(&root, rev).unwrap_or_else(|| rev.to_string()), p.clone()),
        None => ab::build_base(&root, rev, &args.cargo_args)?,
    };
    let head_bin = match &args.head_worker {
        Some(p) => p.clone(),
        None => ab::build_head(&root, &args.cargo_args)?,
    };
    let config_path = std::fs::canonicalize(&args.config)
        .with_context(|| format!("--config {}: no such benchmark config", args.config.display()))?;
    let worker_args: Vec<String> =
        [vec!["--config".to_string(), config_path.display().to_string()], args.worker_args.clone()].concat();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    });
    let mut head = Worker::spawn("head", &head_bin, &worker_args)?
        .map_err(|u| anyhow::anyhow!("the head build cannot run as an A/B worker: {}", u.0))?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let head_file = args.out.join("ab-head.json");
    match Worker::spawn("base", &base_bin, &worker_args)? {
        Ok(base) => {
            eprintln!("A/B: base {rev} ({}) against head, seed {seed}", &base_commit[..base_commit.len().min(12)]);
            let mut run = ab::run_both(base, head, seed, config, true)?;
            run.base.git = Some(tokbench_record::results::GitStamp {
                commit: base_commit.clone(),
                branch: Some(rev.to_string()),
                dirty: false,
            });
            run.head.write(&head_file)?;
            run.base.write(&args.out.join("ab-base.json"))?;
            let mode = crate::compare::Mode::Interleaved {
                base_ref: rev.to_string(),
                base_commit,
                rounds: run.rounds,
                seed: run.seed,
            };
            check_comparable(&run.head.benchmarks, &crate::compare::base_set(&run.base, "the base build"))?;
            let mut report = crate::compare::compare_interleaved(
                &run.head,
                &run.base,
                config,
                &head_file.display().to_string(),
                mode,
            );
            report.notes.extend(run.head.injection_note("head").into_iter().chain(run.base.injection_note("base")));
            if !run.base_only.is_empty() {
                let ids: Vec<String> = run.base_only.iter().map(ToString::to_string).collect();
                report.notes.push(format!("only the base has {} (not measured): {}", ids.len(), ids.join(", ")));
            }
            let baselines = crate::compare::base_set(&run.base, &report.baseline_source);
            let class = run.head.machine.class_key.clone();
            Ok(Compared { report, current: run.head.benchmarks, baselines, class })
        }
        Err(ab::Unsupported(why)) => {
            eprintln!("A/B: {why}; measuring the head alone against the baselines committed at {rev}");
            let ids = head.hello.benchmarks.clone();
            ab::interleave(None, &mut head, &ids, seed, "", true)?;
            let results = head.finish()?;
            results.write(&head_file)?;
            let class = results.machine.class_key.clone();
            let fallback = CompareArgs { base: Some(rev.to_string()), ab: None, ..args.clone() };
            let (baselines, no_baselines) = load_baselines(&fallback, &results.machine)?;
            check_comparable(&results.benchmarks, &baselines)?;
            let commit = results.git.as_ref().map(|g| g.commit.clone());
            let source = head_file.display().to_string();
            let mut report = compare(&results.benchmarks, &baselines, config, &class, &source, commit);
            report.notes.extend(no_baselines);
            report.notes.extend(results.injection_note("head"));
            report.notes.push(format!(
                "not an A/B comparison: {why}, so the head was compared with the baselines committed at {rev} \
                 (measured on another day: drift between sessions can pass for a change)"
            ));
            Ok(Compared { report, current: results.benchmarks, baselines, class })
        }
    }
}

fn resolve_commit(root: &Path, rev: &str) -> Option<String> {
    let out =
        Command::new("git").args(["rev-parse", "--verify", &format!("{rev}^{{commit}}")]).current_dir(root).output();
    out.ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn compare_inner(args: &CompareArgs) -> Result<(GateReport, String)> {
    let mut config = GateConfig::load_or_default(&args.gate_config)?;
    config.allow_missing |= args.allow_missing;
    let Compared { report, current, baselines, class } = match &args.ab {
        Some(rev) => compare_ab(args, rev, &config)?,
        None => compare_with_baselines(args, &config)?,
    };
    let md = report::markdown::render(&report);
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    tokbench_record::results::write_atomic(&args.out.join("gate.md"), md.as_bytes())?;
    report::json::write(&report, &args.out.join("gate.json"))?;
    let history = if args.history_limit > 0 {
        history_for_report(
            &args.baselines_root,
            args.base.as_deref().unwrap_or("HEAD"),
            &class,
            &config.metrics,
            args.history_limit,
        )
    } else {
        None
    };
    let html = report::html::render(
        &report::html::Inputs {
            report: &report,
            current: &current,
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
                let mut list: Vec<String> = report.regressions().iter().map(|(id, m)| format!("{id} {m}")).collect();
                list.extend(report.broken().map(|f| format!("{} failed", f.id)));
                if !report.allow_missing {
                    let missing = report.benchmarks.iter().filter(|b| b.verdict == crate::rule::Verdict::Missing);
                    list.extend(missing.map(|b| format!("{} missing (--allow-missing lets it pass)", b.id)));
                }
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
        check_bless(args, &results)?;
        let out = baseline::bless(&results, &args.baselines_root, args.prune)?;
        let mut msg = format!("blessed {} benchmark(s) into {}", out.written.len(), out.dir.display());
        if results.git.as_ref().is_some_and(|g| g.dirty) {
            msg.push_str("\nnote: these results were measured with uncommitted changes");
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
