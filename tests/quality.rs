//! Quality on the real model through the real llama.cpp: the perplexity and KL-divergence of the default ladder on
//! the fixture corpus, pinned by an insta snapshot, and bad corpus inputs.
//!
//! When a change in llama.cpp, in quantization or in the scoring moves these numbers on purpose, accept the new
//! snapshot with `cargo insta review` (or `INSTA_UPDATE=always cargo xtask test`) and commit it.
mod common;

use std::path::{Path, PathBuf};

use tokbench_core::backend::{Backend, LoadedModel};
use tokbench_core::quality::measure::{score_corpus, QualityOptions};
use tokbench_llama::LlamaCpp;
use tokbench_record::quality::QualityResult;

/// 128-token chunks: the fixture (1,611 tokens) gives 12 chunks, 756 scored tokens.
const CTX: usize = 128;

fn fixture() -> PathBuf {
    common::repo_root().join("tests/fixtures/corpus.txt")
}

fn options(corpus: &Path, save_base: Option<&Path>, kld_base: Option<&Path>) -> QualityOptions {
    QualityOptions {
        corpus: corpus.to_path_buf(),
        n_ctx: CTX,
        max_chunks: None,
        save_base: save_base.map(Path::to_path_buf),
        kld_base: kld_base.map(Path::to_path_buf),
        top_k: 32,
    }
}

fn load(path: &Path, threads: usize) -> Box<dyn LoadedModel> {
    let mut opts = common::options(512);
    opts.threads = threads;
    opts.batch = 2048;
    LlamaCpp::new().unwrap().load(path, &opts).unwrap()
}

fn score(path: &Path, threads: usize, options: &QualityOptions) -> QualityResult {
    score_corpus(load(path, threads).as_mut(), path, "llama.cpp", options).unwrap()
}

/// The widest SIMD set llama.cpp's system-info line reports: the snapshot's suffix.
fn isa_class() -> &'static str {
    let info = LlamaCpp::system_info();
    let on = |flag: &str| info.contains(&format!("{flag} = 1"));
    if on("AVX512") {
        "avx512"
    } else if on("AVX2") {
        "avx2"
    } else if on("NEON") {
        "neon"
    } else {
        "other"
    }
}

#[test]
fn the_ladders_perplexity_and_kld_on_the_fixture_corpus() {
    let real = common::default_model();
    let (cache, config, _) = common::private_ladder_cache();
    let types: Vec<String> = ["F16", "Q8_0", "Q4_K_M", "Q3_K_L"].map(String::from).to_vec();
    let rungs = tokbench::ladder::make(&config, &types, 2, false, false).unwrap();

    // The F16 (dequantized from the Q4_1 original) is the ladder's base and the KL-divergence reference.
    let base_file = cache.path().join("f16.tklp");
    let f16 = score(&rungs[0], 2, &options(&fixture(), Some(&base_file), None));
    let mut table = String::from(
        "| model | PPL | ΔPPL vs F16 | mean KLD | KLD p99 | same top token |\n|---|---|---|---|---|---|\n",
    );
    let mut rows = Vec::new();
    for (name, path) in std::iter::once(("Q4_1 (original)", real.as_path()))
        .chain(types.iter().map(String::as_str).zip(rungs.iter().map(PathBuf::as_path)))
    {
        let q = score(path, 2, &options(&fixture(), None, Some(&base_file)));
        let k = &q.kld.as_ref().expect("scored against the base").summary;
        assert_eq!(q.tokens_scored, 756);
        assert!((k.ppl_base - f16.ppl).abs() < 1e-3 * f16.ppl, "the base file's own PPL is the F16's");
        // Rounded so that run-to-run and thread-count differences cannot move them (see the next test).
        table += &format!(
            "| {name} | {:.2} | {:+.2} | {:.3} | {:.2} | {:.0}% |\n",
            q.ppl, k.delta_ppl, k.mean_kld, k.kld_p99, k.same_top_pct
        );
        rows.push((name, q.ppl, k.mean_kld));
    }
    // llama.cpp's CPU kernels round differently per instruction set (an AVX-512 build's PPL differs from an AVX2
    // build's in the second decimal), so the snapshot is per instruction-set class of llama.cpp's own build.
    insta::with_settings!({ snapshot_suffix => isa_class() }, {
        insta::assert_snapshot!("ladder_quality_fixture_ctx128", table);
    });

    // What the snapshot must keep saying, whatever the exact numbers: F16 against itself is 0; Q8_0 is within 1%
    // of F16; fewer bits, more divergence.
    let get = |n: &str| rows.iter().find(|r| r.0 == n).copied().unwrap();
    assert!(get("F16").2 < 1e-6, "F16 against its own base: {table}");
    assert!((get("Q8_0").1 - f16.ppl).abs() < 0.01 * f16.ppl, "{table}");
    assert!(get("Q8_0").2 < get("Q4_K_M").2 && get("Q4_K_M").2 < get("Q3_K_L").2, "{table}");
    assert!(get("Q3_K_L").1 > get("Q8_0").1, "{table}");
}

#[test]
fn perplexity_does_not_depend_on_the_thread_count() {
    let model = common::default_model();
    let one = score(&model, 1, &options(&fixture(), None, None));
    let two = score(&model, 2, &options(&fixture(), None, None));
    assert_eq!(format!("{:.2}", one.ppl), format!("{:.2}", two.ppl));
    assert!((one.ppl - two.ppl).abs() < 1e-4 * one.ppl, "1 thread {} vs 2 threads {}", one.ppl, two.ppl);
    assert!(one.ppl > 1.0 && one.ppl_std_error > 0.0 && one.eval_tps > 0.0);
    assert_eq!((one.n_chunks, one.eval_tokens), (12, 12 * CTX));
}

#[test]
fn bad_corpus_inputs_are_clear_errors() {
    let model_path = common::default_model();
    let mut model = load(&model_path, 2);
    let dir = tempfile::tempdir().unwrap();
    let mut try_corpus = |name: &str, bytes: &[u8], ctx: usize| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut o = options(&path, None, None);
        o.n_ctx = ctx;
        format!("{:#}", score_corpus(model.as_mut(), &model_path, "llama.cpp", &o).unwrap_err())
    };
    let e = try_corpus("empty.txt", b"", CTX);
    assert!(e.contains("empty.txt") && e.contains("empty"), "{e}");
    let e = try_corpus("short.txt", b"Only a sentence or two of text. Not nearly enough.", CTX);
    assert!(e.contains("short.txt") && e.contains("needs at least 256") && e.contains("smaller --ctx"), "{e}");
    let e = try_corpus("latin1.txt", b"caf\xe9 au lait", CTX);
    assert!(e.contains("latin1.txt") && e.contains("not UTF-8") && e.contains("offset 3"), "{e}");
    let text = std::fs::read(fixture()).unwrap();
    let e = try_corpus("huge-ctx.txt", &text, 1 << 20);
    assert!(e.contains("larger than the 8192 tokens") && e.contains("lower --ctx"), "{e}");
    let e = format!(
        "{:#}",
        score_corpus(model.as_mut(), &model_path, "llama.cpp", &options(&dir.path().join("nope.txt"), None, None))
            .unwrap_err()
    );
    assert!(e.contains("nope.txt") && e.contains("--corpus"), "{e}");

    // A KLD base made with other chunks is refused, naming both settings.
    let base = dir.path().join("base.tklp");
    let mut o = options(&fixture(), Some(&base), None);
    o.max_chunks = Some(2);
    score_corpus(model.as_mut(), &model_path, "llama.cpp", &o).unwrap();
    let e = format!(
        "{:#}",
        score_corpus(model.as_mut(), &model_path, "llama.cpp", &options(&fixture(), None, Some(&base))).unwrap_err()
    );
    assert!(e.contains("over 2 chunks") && e.contains("over 12"), "{e}");
}
