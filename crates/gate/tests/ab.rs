//! The A/B driver against fake workers that speak the protocol over real pipes: a machine that slows down while the
//! job runs (both builds alike), a head that is 10% slower at decode, and builds that cannot take part.
mod common;

use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::real;
use tokbench_gate::ab::{run_both, Unsupported, Worker};
use tokbench_gate::compare::{compare_interleaved, Mode, Outcome};
use tokbench_gate::config::GateConfig;
use tokbench_gate::rule::Verdict;
use tokbench_record::id::BenchmarkId;
use tokbench_record::metric::{Better, Metric};
use tokbench_record::results::RunResults;
use tokbench_record::worker::{Hello, Reply, Request};

/// A fake build: decode at `speed` × the machine's state. `clock` counts generations of both builds; a neighbour's
/// job comes and goes every 12 generations, taking up to 15% of the machine, with ±1.5% noise per generation.
struct Fake {
    speed: f64,
    ids: Vec<BenchmarkId>,
    clock: Arc<AtomicU64>,
    /// Fail every request for this benchmark (a head that broke it).
    broken: Option<BenchmarkId>,
}

fn ids() -> Vec<BenchmarkId> {
    ["short", "medium", "long"].iter().map(|p| BenchmarkId::new("llama.cpp", "m", "Q4_1", p, 2)).collect()
}

fn serve(fake: Fake, requests: impl BufRead, mut replies: impl Write) {
    let template = real();
    let mut send = |v: &dyn Line| {
        replies.write_all(v.line().as_bytes()).unwrap();
        replies.flush().unwrap();
    };
    send(&Hello::new("0.1.0", None, 1, 9, fake.ids.clone()));
    let mut measured: Vec<(BenchmarkId, Vec<tokbench_record::results::RunSample>)> = Vec::new();
    for line in requests.lines() {
        let request: Request = serde_json::from_str(&line.unwrap()).unwrap();
        let id = match &request {
            Request::Finish => None,
            Request::Warmup { id, .. } | Request::Measure { id } => Some(id.clone()),
        };
        if id.is_some() && id == fake.broken {
            send(&Reply::Error { message: "the model failed to load".into() });
            continue;
        }
        let t = fake.clock.fetch_add(1, Ordering::SeqCst) as f64;
        let noise = 1.0 + 0.015 * ((t * 12.9898).sin() * 43758.5453).fract().abs().mul_add(2.0, -1.0);
        let load = 0.15 * (0.5 + 0.5 * (std::f64::consts::TAU * t / 12.0).sin());
        let rate = fake.speed * (1.0 - load) * noise;
        match request {
            Request::Warmup { .. } => send(&Reply::Done),
            Request::Measure { id } => {
                let mut sample = template.benchmarks[0].runs[0].clone();
                sample.decode_tps = Some(rate);
                sample.ttft_s *= 100.0 / rate;
                sample.prefill_tps *= rate / 100.0;
                match measured.iter_mut().find(|(i, _)| *i == id) {
                    Some((_, v)) => v.push(sample.clone()),
                    None => measured.push((id, vec![sample.clone()])),
                }
                send(&Reply::Sample { sample: Box::new(sample) });
            }
            Request::Finish => {
                let mut results: RunResults = template.clone();
                results.benchmarks = measured
                    .drain(..)
                    .map(|(id, runs)| {
                        let mut b = template.benchmarks[0].clone();
                        b.id = id;
                        b.runs = runs;
                        b
                    })
                    .collect();
                send(&Reply::Results { results: Box::new(results) });
                return;
            }
        }
    }
}

/// Anything serialisable as one protocol line.
trait Line {
    fn line(&self) -> String;
}
impl<T: serde::Serialize> Line for T {
    fn line(&self) -> String {
        serde_json::to_string(self).unwrap() + "\n"
    }
}

/// A worker over pipes to a thread running `fake`.
fn start(label: &str, fake: Fake) -> Worker {
    let (to_worker_r, to_worker_w) = std::io::pipe().unwrap();
    let (from_worker_r, from_worker_w) = std::io::pipe().unwrap();
    std::thread::spawn(move || serve(fake, BufReader::new(to_worker_r), from_worker_w));
    Worker::over(label, Box::new(to_worker_w), Box::new(BufReader::new(from_worker_r))).unwrap().unwrap()
}

fn interleaved(base_speed: f64, head_speed: f64) -> tokbench_gate::ab::Interleaved {
    let clock = Arc::new(AtomicU64::new(0));
    let base = start("base", Fake { speed: base_speed, ids: ids(), clock: clock.clone(), broken: None });
    let head = start("head", Fake { speed: head_speed, ids: ids(), clock, broken: None });
    let run = run_both(base, head, 7, &GateConfig::default(), false).unwrap();
    assert_eq!(run.rounds, 9);
    // A suspect of the first pass is measured again: 9 more rounds on both sides.
    for side in [&run.base, &run.head] {
        for b in &side.benchmarks {
            let expected = if run.confirmed.contains(&b.id) { 18 } else { 9 };
            assert_eq!(b.runs.len(), expected, "{}", b.id);
        }
    }
    run
}

fn mode(seed: u64) -> Mode {
    Mode::Interleaved { base_ref: "main".into(), base_commit: "0".repeat(40), rounds: 9, seed }
}

fn ab(base_speed: f64, head_speed: f64) -> tokbench_gate::compare::GateReport {
    let run = interleaved(base_speed, head_speed);
    compare_interleaved(&run.head, &run.base, &GateConfig::default(), "fake", mode(7))
}

fn verdict(report: &tokbench_gate::compare::GateReport, metric: Metric) -> Vec<Verdict> {
    report.benchmarks.iter().flat_map(|b| &b.metrics).filter(|m| m.metric == metric).map(|m| m.verdict).collect()
}

#[test]
fn a_ten_percent_slower_head_fails_while_the_machine_slows_down_under_both() {
    // The neighbour's load swings by 15%: more than the change itself.
    let report = ab(100.0, 90.0);
    assert_eq!(report.outcome, Outcome::Fail);
    assert_eq!(verdict(&report, Metric::DecodeTps), vec![Verdict::Regressed; 3]);
    // Each was a suspect after the first pass and regressed again in the confirmation's fresh rounds.
    assert!(report.confirm);
    for m in report.benchmarks.iter().flat_map(|b| &b.metrics).filter(|m| m.metric == Metric::DecodeTps) {
        let c = m.confirmation.as_ref().expect("confirmed");
        assert_eq!((m.current.len(), c.samples.len(), c.judgement.verdict), (9, 9, Verdict::Regressed));
        assert_eq!(c.baseline_samples.len(), 9, "the base's fresh rounds are kept beside the head's");
    }
    // The markdown shows both sides' re-run medians, not the head's alone.
    let md = tokbench_gate::report::markdown::render(&report);
    let row = md.lines().find(|l| l.contains("decode") && l.contains("regressed")).unwrap();
    assert_eq!(row.matches("(re-run: ").count(), 2, "{row}");
    for m in report.benchmarks.iter().flat_map(|b| &b.metrics).filter(|m| m.metric == Metric::DecodeTps) {
        let change = m.judgement.as_ref().unwrap().rel_change.unwrap();
        assert!((change + 0.10).abs() < 0.02, "estimated {change}");
    }
    // Pairing takes the neighbour's swing out of the evidence: the paired interval is much narrower than the
    // unpaired one on the same samples.
    let m = report.benchmarks[0].metrics.iter().find(|m| m.metric == Metric::DecodeTps).unwrap();
    let paired = m.judgement.as_ref().unwrap();
    let unpaired = tokbench_gate::rule::judge(&m.baseline, &m.current, Better::Higher, m.threshold, 0.02);
    let width = |j: &tokbench_gate::rule::Judgement| j.rel_high.unwrap() - j.rel_low.unwrap();
    assert!(width(paired) * 2.0 < width(&unpaired), "paired {paired:?}\nunpaired {unpaired:?}");
}

#[test]
fn the_same_build_on_both_sides_passes_under_the_same_drift() {
    let report = ab(100.0, 100.0);
    assert_eq!(report.outcome, Outcome::Pass, "{:?}", report.counts);
    assert!(verdict(&report, Metric::DecodeTps).iter().all(|v| *v == Verdict::Unchanged));
    let md = tokbench_gate::report::markdown::render(&report);
    assert!(md.contains("A/B: base `main` at 000000000000 measured beside this build"), "{md}");
}

#[test]
fn a_benchmark_the_head_breaks_fails_the_gate_by_name() {
    let broken = ids()[1].clone();
    let clock = Arc::new(AtomicU64::new(0));
    let base = start("base", Fake { speed: 100.0, ids: ids(), clock: clock.clone(), broken: None });
    let head = start("head", Fake { speed: 100.0, ids: ids(), clock, broken: Some(broken.clone()) });
    let run = run_both(base, head, 1, &GateConfig::default(), false).unwrap();
    // The fake does not record its own failures; a real worker lists them in its results.
    let mut head_results = run.head.clone();
    head_results.failures.push(tokbench_record::results::FailedBenchmark {
        id: broken.clone(),
        stage: None,
        error: "the model failed to load".into(),
        completed_runs: vec![],
    });
    let report = compare_interleaved(&head_results, &run.base, &GateConfig::default(), "fake", mode(1));
    assert_eq!(report.outcome, Outcome::Fail);
    assert_eq!(report.broken().map(|f| f.id.clone()).collect::<Vec<_>>(), vec![broken.clone()]);
    let md = tokbench_gate::report::markdown::render(&report);
    assert!(md.contains("**Failed in this build:**"), "{md}");
}

#[test]
fn a_first_pass_regression_that_fresh_rounds_do_not_repeat_passes_and_one_they_repeat_fails() {
    // Same build on both sides; then the head's first 9 rounds are made 15% slower, as an unlucky pass might be,
    // and 9 fresh rounds appended on both sides, as the confirmation pass measures them.
    let run = interleaved(100.0, 100.0);
    assert!(run.confirmed.is_empty());
    let with_confirmation = |slow_again: bool| {
        let (mut base, mut head) = (run.base.clone(), run.head.clone());
        for (b, h) in base.benchmarks.iter_mut().zip(&mut head.benchmarks) {
            let (fresh_b, mut fresh_h) = (b.runs.clone(), h.runs.clone());
            for r in &mut h.runs {
                r.decode_tps = r.decode_tps.map(|v| v * 0.85);
            }
            if slow_again {
                fresh_h.iter_mut().for_each(|r| r.decode_tps = r.decode_tps.map(|v| v * 0.85));
            }
            b.runs.extend(fresh_b);
            h.runs.extend(fresh_h);
        }
        compare_interleaved(&head, &base, &GateConfig::default(), "fake", mode(7))
    };
    let unlucky = with_confirmation(false);
    assert_eq!(unlucky.outcome, Outcome::Pass, "{:?}", unlucky.counts);
    assert!(unlucky.confirm);
    for m in unlucky.benchmarks.iter().flat_map(|b| &b.metrics).filter(|m| m.metric == Metric::DecodeTps) {
        // Judged on the first pass (regressed there), re-judged on the fresh rounds: not confirmed.
        assert_eq!(m.current.len(), 9);
        assert_eq!(m.judgement.as_ref().unwrap().verdict, Verdict::Regressed);
        assert_eq!(m.confirmation.as_ref().unwrap().judgement.verdict, Verdict::Unchanged);
        assert_eq!(m.verdict, Verdict::Unchanged);
    }
    let real = with_confirmation(true);
    assert_eq!(real.outcome, Outcome::Fail);
    assert_eq!(verdict(&real, Metric::DecodeTps), vec![Verdict::Regressed; 3]);
}

fn hello_of(line: &str) -> Result<Worker, Unsupported> {
    let (r, mut w) = std::io::pipe().unwrap();
    w.write_all(line.as_bytes()).unwrap();
    drop(w);
    Worker::over("base", Box::new(std::io::sink()), Box::new(BufReader::new(r))).unwrap()
}

#[test]
fn builds_that_cannot_take_part_are_named_not_guessed_at() {
    // A base older than the protocol: `tokbench worker` is an unknown command, it prints nothing on stdout.
    let Err(Unsupported(why)) = hello_of("") else { panic!("accepted an empty hello") };
    assert!(why.contains("has no `worker` command: it predates the A/B protocol"), "{why}");
    // A later protocol version.
    let later = r#"{"protocol":"tokbench-worker","version":2,"something":"new"}"#.to_string() + "\n";
    let Err(Unsupported(why)) = hello_of(&later) else { panic!("accepted version 2") };
    assert!(why.contains("speaks worker protocol version 2, this gate speaks 1"), "{why}");
    // Something else entirely on stdout.
    let Err(Unsupported(why)) = hello_of("usage: tokbench ...\n") else { panic!("accepted a usage line") };
    assert!(why.contains("not a protocol worker"), "{why}");
    // The current version is accepted.
    let hello = Hello::new("0.1.0", None, 2, 7, ids());
    assert!(hello_of(&(serde_json::to_string(&hello).unwrap() + "\n")).is_ok());
}

#[test]
fn a_real_process_without_the_worker_command_is_unsupported() {
    // `true worker …` exits at once with nothing on stdout, as an old tokbench does (with a usage error).
    let Err(Unsupported(why)) = Worker::spawn("base", std::path::Path::new("true"), &[]).unwrap() else {
        panic!("`true` was taken for a worker")
    };
    assert!(why.contains("predates the A/B protocol") && why.contains("exited"), "{why}");
}
