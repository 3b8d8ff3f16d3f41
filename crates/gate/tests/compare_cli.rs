//! `bless` and `compare` as CI runs them, in-process, on result sets built from a real results file.
mod common;

use std::time::Instant;

use common::*;
use tokbench_gate::rule::Verdict;

#[test]
fn bless_then_compare_unchanged_passes_and_a_slowdown_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(&many(3, |_| None), &dir.path().join("base.json"));
    let e = bless(&base, &dir.path().join("baselines"), false);
    assert_eq!(e.code, 0, "{}", e.message);
    let class = real().machine.class_key;
    let files = std::fs::read_dir(dir.path().join("baselines").join(&class)).unwrap().count();
    assert_eq!(files, 3);

    // The very same samples: nothing moved.
    let same = compare(dir.path(), &base, &[]);
    assert_eq!(same.code, 0, "{}", same.message);
    let report = same.report.unwrap();
    assert!(report.benchmarks.iter().all(|b| b.verdict == Verdict::Unchanged), "{}", same.message);

    // b001 decodes 30% slower.
    let mut slow = many(3, |_| None);
    scale_decode(&mut slow.benchmarks[1], 0.7);
    let cur = write(&slow, &dir.path().join("slow.json"));
    let e = compare(dir.path(), &cur, &[]);
    assert_eq!(e.code, 1, "{}", e.message);
    assert!(e.message.contains("regressed: ") && e.message.contains("-b001/t2 decode t/s"), "{}", e.message);
    assert!(!e.message.contains("-b000/t2 decode"), "{}", e.message);
    let r = e.report.unwrap();
    assert_eq!(r.regressions().len(), 1);
    // All three reports are written.
    for f in ["gate.md", "gate.json", "gate.html"] {
        assert!(dir.path().join("out").join(f).is_file(), "{f}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/gate.json")).unwrap()).unwrap();
    assert_eq!(json["outcome"], "fail");
}

#[test]
fn missing_benchmarks_fail_unless_allowed_and_bless_guards_what_it_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("baselines");
    let ab = write(&many(2, |i| Some(short_id(["a", "b"][i]))), &dir.path().join("ab.json"));
    assert_eq!(bless(&ab, &root, false).code, 0);
    let bc = write(&many(2, |i| Some(short_id(["b", "c"][i]))), &dir.path().join("bc.json"));
    // a has a baseline but did not run: the gate fails, naming it; new c passes.
    let e = compare(dir.path(), &bc, &[]);
    assert_eq!(e.code, 1, "{}", e.message);
    assert!(e.message.contains("x/m/q/a/t1 missing (--allow-missing lets it pass)"), "{}", e.message);
    let r = e.report.unwrap();
    let verdict = |id: &str| r.benchmarks.iter().find(|b| b.id == short_id(id)).unwrap().verdict;
    assert_eq!((verdict("a"), verdict("b"), verdict("c")), (Verdict::Missing, Verdict::Unchanged, Verdict::New));
    let md = std::fs::read_to_string(dir.path().join("out/gate.md")).unwrap();
    let lead = md.split("<details>").next().unwrap();
    assert!(
        lead.contains("x/m/q/a/t1") && lead.contains("missing"),
        "a missing benchmark is not shown up front:\n{md}"
    );
    assert_eq!(compare(dir.path(), &bc, &["--allow-missing"]).code, 0);
    // The helper's gate config (absent so far) with `allow_missing = true`.
    std::fs::write(dir.path().join("no-gate.toml"), "[gate]\nallow_missing = true\n").unwrap();
    assert_eq!(compare(dir.path(), &bc, &[]).code, 0);
    std::fs::remove_file(dir.path().join("no-gate.toml")).unwrap();

    // Blessing b, c over a, b: a partial matrix, refused unless --partial (which keeps a).
    let class_dir = root.join(real().machine.class_key);
    let e = bless(&bc, &root, false);
    assert_eq!(e.code, 2, "{}", e.message);
    assert!(e.message.contains("x/m/q/a/t1") && e.message.contains("--partial"), "{}", e.message);
    assert!(!class_dir.join("x+m+q+c+t1.json").exists(), "a refused bless wrote something");
    let e = bless_with(&bc, &root, &["--partial"]);
    assert!(e.code == 0 && e.message.contains("kept 1"), "{}", e.message);
    assert!(class_dir.join("x+m+q+a+t1.json").is_file());
    // --prune lists what it would delete and deletes only with --yes.
    let e = bless_with(&bc, &root, &["--prune"]);
    assert_eq!(e.code, 2, "{}", e.message);
    assert!(e.message.contains("would delete 1 baseline(s)") && e.message.contains("x/m/q/a/t1"), "{}", e.message);
    assert!(class_dir.join("x+m+q+a+t1.json").is_file());
    let e = bless(&bc, &root, true);
    assert!(e.message.contains("pruned x/m/q/a/t1"), "{}", e.message);
    assert!(!class_dir.join("x+m+q+a+t1.json").exists() && class_dir.join("x+m+q+c+t1.json").is_file());
}

#[test]
fn bless_refuses_results_the_gate_could_never_decide_on() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("baselines");
    let mut one = many(1, |_| None);
    one.benchmarks[0].runs.truncate(1);
    let e = bless(&write(&one, &dir.path().join("one.json")), &root, false);
    assert_eq!(e.code, 2, "{}", e.message);
    assert!(
        e.message.contains("has 1 run(s)") && e.message.contains("never reach the gate's α = 0.02"),
        "{}",
        e.message
    );
    assert!(!root.exists() || std::fs::read_dir(&root).unwrap().next().is_none(), "a refused bless wrote something");
    // Against the committed config's 7 runs, 3 runs can reach α (2/120 ≤ 0.02), 2 cannot.
    let config = dir.path().join("tokbench.toml");
    std::fs::write(&config, "[run]\nruns = 7\n").unwrap();
    let mut two = many(1, |_| None);
    two.benchmarks[0].runs.truncate(2);
    let e = bless_with(&write(&two, &dir.path().join("two.json")), &root, &["--config", config.to_str().unwrap()]);
    assert!(e.code == 2 && e.message.contains("at least 3 runs"), "{}", e.message);
    // 5 runs reach α but are fewer than the config's 7: a partial run, blessed only with --partial.
    let five = write(&many(1, |_| None), &dir.path().join("five.json"));
    let e = bless_with(&five, &root, &["--config", config.to_str().unwrap()]);
    assert!(e.code == 2 && e.message.contains("fewer runs than the config's 7"), "{}", e.message);
    let e = bless_with(&five, &root, &["--config", config.to_str().unwrap(), "--partial"]);
    assert_eq!(e.code, 0, "{}", e.message);
}

#[test]
fn bless_refuses_a_matrix_that_is_not_the_committed_configs_unless_partial() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("baselines");
    let config = dir.path().join("tokbench.toml");
    std::fs::write(&config, "[run]\nruns = 5\n").unwrap();
    let sha = |bytes: &[u8]| sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let stamped = |config_bytes: &[u8], overrides: &[&str]| {
        let mut r = many(2, |_| None);
        r.matrix = Some(tokbench_record::results::MatrixStamp {
            config: Some("tokbench.toml".into()),
            config_sha256: Some(sha(config_bytes)),
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
        });
        r
    };
    let args = ["--config", config.to_str().unwrap()];
    // The first bless of a class has no baselines to miss: only the stamp can tell a filtered run from the matrix.
    let filtered = write(&stamped(b"[run]\nruns = 5\n", &["--filter"]), &dir.path().join("filtered.json"));
    let e = bless_with(&filtered, &root, &args);
    assert!(
        e.code == 2 && e.message.contains("command-line flags changed the config's matrix (--filter)"),
        "{}",
        e.message
    );
    let edited = write(&stamped(b"[run]\nruns = 5\nwarmup = 1\n", &[]), &dir.path().join("edited.json"));
    let e = bless_with(&edited, &root, &args);
    assert!(e.code == 2 && e.message.contains("rather than the committed"), "{}", e.message);
    assert!(!root.exists() || std::fs::read_dir(&root).unwrap().next().is_none(), "a refused bless wrote something");
    assert_eq!(bless_with(&filtered, &root, &[&args[..], &["--partial"]].concat()).code, 0);
    // The committed config's own matrix, unaltered: blessed as the whole.
    let whole = write(&stamped(b"[run]\nruns = 5\n", &[]), &dir.path().join("whole.json"));
    let e = bless_with(&whole, &root, &args);
    assert_eq!(e.code, 0, "{}", e.message);
}

#[test]
fn other_settings_or_model_file_are_an_input_error_naming_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    let base = many(2, |_| None);
    assert_eq!(bless(&write(&base, &dir.path().join("base.json")), &dir.path().join("baselines"), false).code, 0);
    let mut cur = base.clone();
    cur.benchmarks[1].settings.ctx_size = 4096;
    cur.benchmarks[1].model.sha256 = "f".repeat(64);
    let e = compare(dir.path(), &write(&cur, &dir.path().join("cur.json")), &[]);
    assert_eq!(e.code, 2, "{}", e.message);
    let id = cur.benchmarks[1].id.to_string();
    assert!(e.message.contains(&format!("{id}: ctx_size: 2048 → 4096; model file SHA-256: ")), "{}", e.message);
    assert!(e.message.contains("re-bless"), "{}", e.message);
}

#[test]
fn bad_inputs_exit_2_naming_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("baselines");
    let res = write(&many(2, |_| None), &dir.path().join("r.json"));
    assert_eq!(bless(&res, &root, false).code, 0);
    let class_dir = root.join(real().machine.class_key);
    let victim = std::fs::read_dir(&class_dir).unwrap().next().unwrap().unwrap().path();
    let original = std::fs::read_to_string(&victim).unwrap();

    // Truncated baseline.
    std::fs::write(&victim, &original[..original.len() / 2]).unwrap();
    let e = compare(dir.path(), &res, &[]);
    assert_eq!(e.code, 2);
    assert!(e.message.contains(victim.to_str().unwrap()) && e.message.contains("cargo xtask bless"), "{}", e.message);

    // Another schema version.
    std::fs::write(&victim, original.replacen("\"schema_version\": 1", "\"schema_version\": 99", 1)).unwrap();
    let e = compare(dir.path(), &res, &[]);
    assert_eq!(e.code, 2);
    assert!(e.message.contains("schema 99") && e.message.contains("re-bless"), "{}", e.message);
    std::fs::write(&victim, &original).unwrap();
    assert_eq!(compare(dir.path(), &res, &[]).code, 0);

    // Missing and corrupt results.
    let e = compare(dir.path(), &dir.path().join("nope.json"), &[]);
    assert!(e.code == 2 && e.message.contains("cargo xtask run"), "{}", e.message);
    std::fs::write(dir.path().join("bad.json"), "{").unwrap();
    let e = compare(dir.path(), &dir.path().join("bad.json"), &[]);
    assert!(e.code == 2 && e.message.contains("bad.json"), "{}", e.message);

    // Baselines only for another machine class (a new runner's first pull request): a neutral pass that says how
    // to bless, unless a comparison across machines is asked for.
    std::fs::rename(&class_dir, root.join("other-machine-8c-16g-macos-aarch64")).unwrap();
    let e = compare(dir.path(), &res, &[]);
    assert_eq!(e.code, 0, "{}", e.message);
    assert!(
        e.message.contains("no baselines for machine class")
            && e.message.contains("other-machine-8c-16g-macos-aarch64")
            && e.message.contains("cargo xtask bless"),
        "{}",
        e.message
    );
    let e = compare(dir.path(), &res, &["--allow-machine-mismatch"]);
    assert_eq!(e.code, 0, "{}", e.message);
}

#[test]
fn step_summary_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let res = write(&many(1, |_| None), &dir.path().join("r.json"));
    bless(&res, &dir.path().join("baselines"), false);
    let summary = dir.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    // nextest runs each test in its own process, so setting the variable here touches no other test.
    std::env::set_var("GITHUB_STEP_SUMMARY", &summary);
    let e = compare(dir.path(), &res, &[]);
    std::env::remove_var("GITHUB_STEP_SUMMARY");
    assert_eq!(e.code, 0);
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.starts_with("earlier step\n") && text.contains("tokbench regression gate: ✅ pass"), "{text}");
}

#[test]
fn a_hundred_benchmarks_compare_and_the_one_regression_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let res = write(&many(100, |_| None), &dir.path().join("r.json"));
    bless(&res, &dir.path().join("baselines"), false);
    let mut cur = many(100, |_| None);
    scale_decode(&mut cur.benchmarks[42], 0.5);
    let cur = write(&cur, &dir.path().join("c.json"));
    let t = Instant::now();
    let e = compare(dir.path(), &cur, &[]);
    let took = t.elapsed();
    println!("compare of 100 benchmarks × 4 metrics, reports included: {took:?}");
    assert_eq!(e.code, 1, "{}", e.message);
    assert_eq!(
        e.report.unwrap().regressions(),
        vec![(numbered(&real().benchmarks[0].id, 42), "decode t/s".to_string())]
    );
    // Not a timing assertion: a shared 2-core machine makes any bound either loose or flaky. The time is printed.
}

#[test]
fn perplexity_and_kld_are_gated_deterministically() {
    // A real `[quality]` record (Q4_K_M rung on the fixture corpus) on every benchmark.
    let quality: tokbench_record::quality::QualityResult =
        serde_json::from_str(&std::fs::read_to_string(data("quality.json")).unwrap()).unwrap();
    let with_quality = |ppl_factor: f64, kld_add: f64| {
        let mut r = many(2, |_| None);
        for b in &mut r.benchmarks {
            let mut q = quality.clone();
            q.ppl *= ppl_factor;
            q.kld.as_mut().unwrap().summary.mean_kld += kld_add;
            b.quality = Some(q);
        }
        r
    };
    let dir = tempfile::tempdir().unwrap();
    let base = write(&with_quality(1.0, 0.0), &dir.path().join("base.json"));
    assert_eq!(bless(&base, &dir.path().join("baselines"), false).code, 0);
    let same = compare(dir.path(), &base, &[]);
    assert_eq!(same.code, 0, "{}", same.message);
    let rows = |e: &tokbench_gate::cli::Exit, label: &str| -> Vec<Verdict> {
        let r = e.report.as_ref().unwrap();
        r.benchmarks.iter().flat_map(|b| &b.metrics).filter(|m| m.label == label).map(|m| m.verdict).collect()
    };
    assert_eq!(rows(&same, "PPL"), vec![Verdict::Unchanged; 2]);
    assert_eq!(rows(&same, "mean KLD"), vec![Verdict::Unchanged; 2]);

    // +0.3% PPL is inside the 0.5% threshold; +1% PPL and a doubled KLD fail, named.
    let small = write(&with_quality(1.003, 0.0), &dir.path().join("small.json"));
    assert_eq!(compare(dir.path(), &small, &[]).code, 0);
    let worse = write(&with_quality(1.01, quality.kld.as_ref().unwrap().summary.mean_kld), &dir.path().join("w.json"));
    let e = compare(dir.path(), &worse, &[]);
    assert_eq!(e.code, 1, "{}", e.message);
    assert!(e.message.contains("-b000/t2 PPL") && e.message.contains("-b001/t2 mean KLD"), "{}", e.message);
    assert_eq!(rows(&e, "PPL"), vec![Verdict::Regressed; 2]);
}

/// Every committed baseline still reads with this version of the record (ids, warnings and all): a change to the
/// record that would orphan them fails here, not in a pull request's gate.
#[test]
fn the_committed_baselines_load() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../baselines");
    for class in tokbench_gate::baseline::classes_in(&root) {
        let set = tokbench_gate::baseline::BaselineSet::load_dir(&root.join(&class)).unwrap();
        assert!(!set.by_id.is_empty(), "{class}");
        let warned = set.by_id.values().filter(|b| !b.benchmark.warnings.is_empty()).count();
        eprintln!("{class}: {} baselines, {warned} with warnings", set.by_id.len());
    }
}

#[test]
fn what_changed_shows_the_differing_parts_side_by_side_never_x_to_x() {
    let dir = tempfile::tempdir().unwrap();
    let base = many(2, |_| None);
    assert_eq!(bless(&write(&base, &dir.path().join("base.json")), &dir.path().join("baselines"), false).code, 0);
    // Same engine version, another host's build: AVX-512 on, and one part gone.
    let mut cur = base.clone();
    for b in &mut cur.benchmarks {
        b.engine.build_info = b.engine.build_info.replace("FMA = 1 | ", "") + " | AVX512 = 1";
    }
    let e = compare(dir.path(), &write(&cur, &dir.path().join("cur.json")), &[]);
    assert_eq!(e.code, 0, "{}", e.message);
    let r = e.report.unwrap();
    assert_eq!(r.changes.len(), 1, "one change, however many benchmarks share it: {:?}", r.changes);
    let c = &r.changes[0];
    assert_eq!((c.part.as_str(), c.baseline.as_str(), c.current.as_str()), ("system info", "FMA = 1", "AVX512 = 1"));
    assert!(e.message.contains("| llama.cpp | system info | FMA = 1 | AVX512 = 1 |"), "{}", e.message);
    // The version did not change, so it is not shown as one (the old note read "engine changed: X → X").
    assert!(!e.message.contains("engine version"), "{}", e.message);
    assert!(!e.message.contains("engine changed"), "{}", e.message);
    // A version change is shown with both versions.
    for b in &mut cur.benchmarks {
        b.engine.version = "llama-cpp-sys-2 0.1.170 (ggml 0.27.0)".into();
    }
    let e = compare(dir.path(), &write(&cur, &dir.path().join("cur2.json")), &[]);
    assert!(
        e.message.contains(
            "| llama.cpp | engine version | llama-cpp-sys-2 0.1.161 &#40;ggml 0.26.0&#41; | llama-cpp-sys-2 0.1.170"
        ),
        "{}",
        e.message
    );
}

#[test]
fn reports_lead_with_regressed_then_inconclusive_and_fold_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let base = many(6, |_| None);
    assert_eq!(bless(&write(&base, &dir.path().join("base.json")), &dir.path().join("baselines"), false).code, 0);
    let mut cur = base.clone();
    scale_decode(&mut cur.benchmarks[4], 0.7); // regressed
                                               // Inconclusive: a 10% drop on average, but with runs that overlap the baseline's.
    for (i, run) in cur.benchmarks[2].runs.iter_mut().enumerate() {
        run.decode_tps = run.decode_tps.map(|v| v * if i % 2 == 0 { 0.75 } else { 1.02 });
    }
    let e = compare(dir.path(), &write(&cur, &dir.path().join("cur.json")), &[]);
    assert_eq!(e.code, 1, "{}", e.message);
    let md = std::fs::read_to_string(dir.path().join("out/gate.md")).unwrap();
    let (lead, folded) = md.split_once("<details><summary>").expect("the rest is folded");
    let rows: Vec<&str> = lead.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| benchmark")).collect();
    let verdicts: Vec<&str> = rows
        .iter()
        .map(|l| {
            if l.contains("regressed") {
                "regressed"
            } else if l.contains("inconclusive") {
                "inconclusive"
            } else {
                "other"
            }
        })
        .collect();
    assert_eq!(verdicts.first(), Some(&"regressed"), "{md}");
    assert!(verdicts.contains(&"inconclusive") && !verdicts.contains(&"other"), "{md}");
    let first_inconclusive = verdicts.iter().position(|v| *v == "inconclusive").unwrap();
    assert!(verdicts[first_inconclusive..].iter().all(|v| *v == "inconclusive"), "regressed rows come first:\n{md}");
    assert!(folded.contains("unchanged") && !folded.contains("regressed |"), "{md}");
    // The HTML keeps the same order: a lead table open, the rest in a closed <details>.
    let html = std::fs::read_to_string(dir.path().join("out/gate.html")).unwrap();
    let lead_at = html.find("id=\"lead\"").unwrap();
    let rest_at = html.find("<details id=\"rest\">").unwrap();
    assert!(lead_at < rest_at && !html.contains("<details id=\"rest\" open"));
}
