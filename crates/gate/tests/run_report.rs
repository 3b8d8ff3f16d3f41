//! `tokbench report`'s page (the rendering; the browser test is in html_browser.rs): what it draws from which
//! results, what it says it cannot draw, bad input.
mod common;

use common::*;
use tokbench_gate::report::run::{render, write_report, RunInput};

/// The page, with tera's escaped `/` put back so assertions read naturally (`<` and `&` stay escaped).
fn page(runs: Vec<RunInput>) -> String {
    render(&runs, "2026-12-06T00:00:00Z".into()).unwrap().replace("&#x2F;", "/")
}

#[test]
fn a_scaling_run_draws_every_chart_and_its_table() {
    let html = page(vec![RunInput { label: "latest.json".into(), results: scaling_run() }]);
    for id in ["ttft-vs-prompt", "decode-vs-depth", "roofline", "size-vs-speed", "itl"] {
        assert!(html.contains(&format!("<figure class=\"chart\" id=\"{id}\">")), "no {id} chart");
    }
    // No perplexity in these results: the Pareto chart says what would draw it.
    assert!(!html.contains("id=\"pareto\"") && html.contains("synthetic models are never scored"));
    // 12 benchmarks in the table, the roofline's percentage of the measured 18 GB/s in it, the ceiling drawn.
    assert_eq!(html.matches("<td class=\"id\">").count(), 12);
    assert!(html.contains("measured 18.0 GB/s"), "no ceiling label");
    assert!(html.contains("18.00 GB/s measured (best of 10 passes, 2 threads)"));
    assert!(html.contains("synth-large (synthetic)") && html.contains("not scored (synthetic)"));
    // Decode against depth: one line per model × prompt, 3 depths each (4 series).
    let depth_chart = &html[html.find("id=\"decode-vs-depth\"").unwrap()..html.find("id=\"roofline\"").unwrap()];
    assert_eq!(depth_chart.matches("<g class=\"series\"").count(), 4);
    assert_eq!(depth_chart.matches("<circle").count(), 12);
}

#[test]
fn one_depth_and_one_size_leave_those_charts_out_with_the_reason() {
    let mut r = scaling_run();
    r.benchmarks.retain(|b| b.prompt.depth == 0 && b.model.name == "synth-small");
    let html = page(vec![RunInput { label: "a.json".into(), results: r }]);
    assert!(!html.contains("id=\"decode-vs-depth\"") && html.contains("run with --depth 0,512,2048"));
    assert!(!html.contains("id=\"size-vs-speed\"") && html.contains("two model sizes or more"));
    assert!(html.contains("id=\"roofline\""));
    // Real models without perplexities: the fix is the config's [quality].
    let mut real_models = scaling_run();
    real_models.benchmarks.iter_mut().for_each(|b| b.model.synthetic = None);
    let html = page(vec![RunInput { label: "r.json".into(), results: real_models }]);
    assert!(html.contains("add a [quality] section to the config"));
}

#[test]
fn several_runs_are_told_apart_and_hostile_names_stay_text() {
    let mut a = scaling_run();
    a.benchmarks[0].model.name = "<img src=x onerror=alert(1)>".into();
    let b = real();
    let html = page(vec![
        RunInput { label: "mac.json".into(), results: a },
        RunInput { label: "<b>linux</b>.json".into(), results: b },
    ]);
    assert!(html.contains("tokbench report: 2 runs"));
    assert!(!html.contains("<img src=x") && html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!html.contains("<b>linux</b>") && html.contains("&lt;b&gt;linux&lt;/b&gt;.json"));
    assert!(html.contains("<th data-type=\"text\">run</th>"));
}

#[test]
fn bad_input_names_the_file_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let e = write_report(&[missing.clone()], None).unwrap_err();
    assert!(format!("{e:#}").contains("nope.json does not exist: run `tokbench run`"), "{e:#}");
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"not\": \"results\"}").unwrap();
    let e = write_report(&[junk.clone()], None).unwrap_err();
    assert!(format!("{e:#}").contains("junk.json"), "{e:#}");
    assert!(!dir.path().join("junk.html").exists());

    let good = write(&scaling_run(), &dir.path().join("run.json"));
    let out = write_report(&[good], None).unwrap();
    assert_eq!(out, dir.path().join("run.html"));
    assert!(std::fs::read_to_string(out).unwrap().contains("id=\"roofline\""));
}
