//! The scaling dimensions through the real CLI and the real llama.cpp: `tokbench synth` models (the tensor table of
//! the real file, llama.cpp loads them, results say synthetic and score no quality), K-quants made through
//! llama.cpp's quantize API, prompts at a depth, and the roofline and energy columns of the results.
mod common;

use std::path::Path;
use std::process::Command;

use tokbench_core::gguf;
use tokbench_record::results::RunResults;

fn tokbench(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tokbench")).args(args).current_dir(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn a_synthetic_smollm2_has_the_real_files_tensor_table_and_runs_as_synthetic_with_a_roofline() {
    let dir = tempfile::tempdir().unwrap();
    let real = common::default_model();
    let synth = dir.path().join("synth.gguf");
    let (ok, log) = tokbench(
        &["synth", "--shape", "smollm2-135m", "--type", "Q4_1", "--tokenizer-from", real.to_str().unwrap(), "-o"]
            .into_iter()
            .chain([synth.to_str().unwrap()])
            .collect::<Vec<_>>(),
        dir.path(),
    );
    assert!(ok, "{log}");
    assert!(log.contains("0.135 B parameters, vocabulary 49152"), "{log}");

    // Every tensor of the real file, with its dimensions and type; the tokenizer entries copied verbatim.
    let (r, s) = (gguf::validate(&real).unwrap(), gguf::validate(&synth).unwrap());
    let table = |i: &gguf::GgufInfo| {
        let mut t: Vec<_> = i.tensors.iter().map(|t| (t.name.clone(), t.dims.clone(), t.ggml_type)).collect();
        t.sort();
        t
    };
    assert_eq!(table(&r), table(&s));
    assert_eq!(r.decode_traffic(), s.decode_traffic());
    let bytes = |path: &Path, info: &gguf::GgufInfo, key: &str| {
        let e = info.metadata.iter().find(|e| e.key == key).unwrap();
        std::fs::read(path).unwrap()[e.value_span.start as usize..e.value_span.end as usize].to_vec()
    };
    for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.pre"] {
        assert!(bytes(&real, &r, key) == bytes(&synth, &s, key), "{key} differs");
    }

    // Refuses to overwrite without --force.
    let (ok, log) = tokbench(&["synth", "--shape", "smollm2-135m", "-o", synth.to_str().unwrap()], dir.path());
    assert!(!ok && log.contains("pass --force"), "{log}");

    // Runs at depth 0 and 64 in one process; the results say synthetic, carry the depth and the roofline.
    let out = dir.path().join("r.json");
    let args = ["run", "-m", synth.to_str().unwrap(), "-p", "16", "-n", "8", "--depth", "0,64", "--runs", "2"];
    let (ok, log) = tokbench(
        &[&args[..], &["--warmup", "0", "-t", "2", "--no-quality", "-o", out.to_str().unwrap()]].concat(),
        dir.path(),
    );
    assert!(ok, "{log}");
    let results = RunResults::read(&out).unwrap();
    assert_eq!(results.benchmarks.len(), 2, "{log}");
    let ids: Vec<String> = results.benchmarks.iter().map(|b| b.id.to_string()).collect();
    assert!(ids[0].ends_with("/p16-n8/t2") && ids[1].ends_with("/p16-n8@d64/t2"), "{ids:?}");
    for (b, depth) in results.benchmarks.iter().zip([0, 64]) {
        assert_eq!(b.prompt.depth, depth);
        assert_eq!(b.model.synthetic.as_deref(), Some("smollm2-135m seed 0"));
        assert!(b.quality.is_none());
        assert!(b.runs.iter().all(|r| r.generated_tokens == 8 && r.prompt_tokens == 16));
        let roof = b.roofline.as_ref().expect("a roofline");
        assert_eq!(b.settings.kv_cache_type.as_deref(), Some("f16"));
        // 30 layers × 3 KV heads × (64 + 64) × 2 bytes per context token; the mean context is depth + 16 + 8/2.
        assert_eq!(roof.kv_bytes_per_context_token, 23040.0);
        let weights = s.decode_traffic().unwrap().weight_bytes as f64;
        assert_eq!(roof.bytes_per_token, weights + 23040.0 * (depth as f64 + 20.0));
        assert!(roof.percent_of_measured.is_some_and(|p| p > 0.0), "{roof:?}");
    }
    assert!(results.machine.bandwidth.is_some());
    let table = tokbench_core::export::markdown::table(&results);
    assert!(
        table.contains("(synthetic)") && table.contains("| 64 |") && table.contains("memory bandwidth:"),
        "{table}"
    );
    // No energy counter on this machine or a made-up number: one or the other, never both.
    let has_counter = results.machine.energy_counter.is_some();
    assert_eq!(table.contains("n/a (no energy counter)"), !has_counter, "{table}");

    // `tokbench report` of the real run: the page lands next to the results, with the roofline and the depth chart.
    let (ok, log) = tokbench(&["report", out.to_str().unwrap()], dir.path());
    assert!(ok, "{log}");
    let page = dir.path().join("r.html");
    assert!(log.contains(&format!("report: {}", page.display())), "{log}");
    let html = std::fs::read_to_string(&page).unwrap().replace("&#x2F;", "/");
    for id in ["roofline", "decode-vs-depth", "ttft-vs-prompt", "itl"] {
        assert!(html.contains(&format!("<figure class=\"chart\" id=\"{id}\">")), "no {id} chart");
    }
    let pct = results.benchmarks[0].roofline.as_ref().unwrap().percent_of_measured.unwrap();
    assert!(html.contains(&format!(">{pct:.0}%</td>")), "the roofline's % of measured is not in the table");
    let (ok, log) = tokbench(&["report", "missing.json"], dir.path());
    assert!(!ok && log.contains("missing.json does not exist"), "{log}");

    // Synthetic models are never scored, so a matrix of them needs no quality inputs: a config whose corpus is
    // missing still runs them (it used to fail preparing the corpus and KL-divergence base first).
    let config = "[run]\nmodels = [\"s\"]\n\n[[model]]\nname = \"s\"\nfile = \"s.gguf\"\nurl = \"http://127.0.0.1:9/s.gguf\"\nsha256 = \"{}\"\n\n\
                  [quality]\ncorpus = \"no-such-corpus.txt\"\n";
    std::fs::write(dir.path().join("q.toml"), config.replace("{}", &"0".repeat(64))).unwrap();
    let args = ["run", "--config", "q.toml", "-m", synth.to_str().unwrap(), "-p", "8", "-n", "4", "--runs", "1"];
    let (ok, log) = tokbench(&[&args[..], &["--warmup", "0", "-t", "2", "-o", "q.json"]].concat(), dir.path());
    assert!(ok, "{log}");
    assert!(RunResults::read(&dir.path().join("q.json")).unwrap().benchmarks[0].quality.is_none());
}

#[test]
fn k_quant_synthetics_are_made_by_llama_cpps_quantize_and_explicit_shapes_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let real = common::default_model();
    let out = dir.path().join("k.gguf");
    let shape = ["--n-layer", "2", "--n-embd", "256", "--n-head", "4", "--n-head-kv", "2", "--n-ff", "512"];
    let args = [
        &["synth", "--type", "Q4_K_M", "--tokenizer-from", real.to_str().unwrap(), "-o"][..],
        &[out.to_str().unwrap()],
        &shape,
    ]
    .concat();
    let (ok, log) = tokbench(&args, dir.path());
    assert!(ok, "{log}");
    let info = gguf::validate(&out).unwrap();
    assert_eq!(info.quantization.as_deref(), Some("Q4_K_M"));
    assert!(info.tensors.iter().any(|t| gguf::ggml_type_name(t.ggml_type) == Some("Q4_K")), "llama.cpp's mix");
    // It loads and generates.
    let (ok, log) = tokbench(
        &[
            "run",
            "-m",
            out.to_str().unwrap(),
            "-p",
            "8",
            "-n",
            "4",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--no-quality",
            "-o",
        ]
        .into_iter()
        .chain([dir.path().join("r.json").to_str().unwrap()])
        .collect::<Vec<_>>(),
        dir.path(),
    );
    assert!(ok, "{log}");

    let (ok, log) = tokbench(&["synth", "--n-layer", "2", "-o", "x.gguf"], dir.path());
    assert!(!ok && log.contains("--n-embd, --n-head, --n-ff missing"), "{log}");
    let (ok, log) = tokbench(&["synth", "--shape", "2b"], dir.path());
    assert!(!ok && log.contains("use one of smollm2-135m, 0.5b, 1b"), "{log}");
    let (ok, log) = tokbench(&["synth", "--shape", "1b", "--type", "Q9_9", "-o", "y.gguf"], dir.path());
    assert!(!ok && log.contains("not a llama.cpp type"), "{log}");
}

#[test]
fn a_depth_too_deep_for_the_context_fails_that_benchmark_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::default_model();
    let out = dir.path().join("r.json");
    let run = |gen: &str| {
        let args = ["run", "-m", model.to_str().unwrap(), "-p", "8", "-n", gen, "--depth", "240", "--ctx-size", "16"];
        let rest = ["--runs", "1", "--warmup", "0", "--no-quality", "-o", out.to_str().unwrap()];
        let (ok, log) = tokbench(&[&args[..], &rest[..]].concat(), dir.path());
        (ok, log, RunResults::read(&out).ok())
    };
    // The context grows by the largest depth: 240 + 8 + 4 tokens fit --ctx-size 16 + 240 (llama.cpp keeps 256).
    let (ok, log, results) = run("4");
    assert!(ok, "{log}");
    assert_eq!(results.unwrap().benchmarks[0].prompt.depth, 240);
    // 8 + 20 tokens after a depth of 240 do not: the benchmark fails with the fix (nothing measured: no file).
    std::fs::remove_file(&out).unwrap();
    let (ok, log, results) = run("20");
    assert!(!ok && results.is_none(), "{log}");
    assert!(log.contains("after a depth of 240, 268 in all, but the context holds 256: raise --ctx-size"), "{log}");
}

#[test]
fn a_temperature_sweep_is_a_dimension_of_the_ids_and_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::default_model();
    let out = dir.path().join("r.json");
    let args = ["run", "-m", model.to_str().unwrap(), "-p", "8", "-n", "24", "--temperature", "0,0.7", "--seed", "5"];
    let rest = ["--runs", "2", "--warmup", "0", "-t", "2", "--no-quality", "-o", out.to_str().unwrap()];
    let (ok, log) = tokbench(&[&args[..], &rest[..]].concat(), dir.path());
    assert!(ok, "{log}");
    let results = RunResults::read(&out).unwrap();
    let prompts: Vec<_> = results.benchmarks.iter().map(|b| b.id.prompt().to_string()).collect();
    assert_eq!(prompts, ["p8-n24@T0", "p8-n24@T0.7"]);
    let (greedy, warm) = (&results.benchmarks[0], &results.benchmarks[1]);
    assert_eq!(greedy.settings.sampling.temperature, 0.0);
    assert_eq!(warm.settings.sampling.temperature, 0.7);
    // Greedy repeats itself; 0.7 leaves the greedy path somewhere in 24 tokens.
    assert_eq!(greedy.runs[0].tokens, greedy.runs[1].tokens);
    assert_ne!(greedy.runs[0].tokens, warm.runs[0].tokens);

    for (bad, says) in [("-1", "temperature -1 is not a sampling temperature"), ("0.3,0.3", "0.3 is listed twice")] {
        let flag = format!("--temperature={bad}");
        let (ok, log) = tokbench(&["run", "-m", model.to_str().unwrap(), &flag], dir.path());
        assert!(!ok && log.contains(says), "{log}");
    }
}
