//! Shared by the integration tests: the default model from the config, fetched by `cargo xtask fetch`.
#![allow(dead_code)]
use std::path::{Path, PathBuf};

use tokbench_core::backend::LoadOptions;
use tokbench_core::config::Config;
use tokbench_record::setup::FlashAttn;

/// The config's first model in the cache. Missing is a failure, not a skip: the README's test command fetches it.
pub fn default_model() -> PathBuf {
    let config = Config::load(&repo_root().join("tokbench.toml")).expect("tokbench.toml loads");
    let path = config.model(&config.run.models[0]).unwrap().cached_path();
    assert!(path.is_file(), "{} is missing: run `cargo xtask fetch` (or `cargo xtask test`)", path.display());
    path
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

pub fn options(ctx_size: u32) -> LoadOptions {
    LoadOptions {
        threads: 2,
        batch: 512,
        ubatch: 512,
        n_gpu_layers: 0,
        ctx_size,
        flash_attn: FlashAttn::Auto,
        mmap: true,
    }
}

/// A private model cache (a temporary directory, set as `$TOKBENCH_MODELS`) holding a link to the fetched default
/// model as the ladder's base, so rungs made by a test land in the temporary directory. Keep the `TempDir` alive.
pub fn private_ladder_cache() -> (tempfile::TempDir, Config, tokbench_core::config::ModelEntry) {
    let real = default_model();
    let cache = tempfile::tempdir().unwrap();
    std::env::set_var("TOKBENCH_MODELS", cache.path());
    let config = Config::load(&repo_root().join("tokbench.toml")).unwrap();
    let base = config.model(&config.ladder.as_ref().unwrap().base).unwrap().clone();
    std::os::unix::fs::symlink(&real, base.cached_path()).unwrap();
    (cache, config, base)
}

/// Greedy tokens of a generation at `depth` (the context already filled with that many tokens).
pub fn greedy_at(
    model: &mut dyn tokbench_core::backend::LoadedModel,
    prompt: &str,
    depth: usize,
    n: usize,
) -> Vec<u32> {
    use tokbench_core::backend::GenerationRequest;
    let request =
        GenerationRequest { prompt, gen_tokens: n, sampling: tokbench_record::setup::Sampling::GREEDY, depth };
    let mut trace = tokbench_core::metrics::TraceRecorder::start(n);
    model.generate(&request, &mut trace).unwrap();
    trace.finish().unwrap().tokens
}

/// A prompt at depth D (the context filled with D tokens first, untimed) continues exactly as the same tokens given
/// as one prompt at depth 0: the same computation in two steps. A second run at that depth (the cache cut back to
/// the D tokens) gives the same tokens again, and so does depth 0 afterwards.
pub fn a_prompt_at_depth_continues_as_one_long_prompt(model: &mut dyn tokbench_core::backend::LoadedModel) {
    let prompt = "\nQ: What is 12 times 7?\nA:";
    for depth in 48..80 {
        let filled = tokbench_core::prompts::depth_tokens(model, depth).unwrap();
        assert_eq!(filled.len(), depth);
        let whole = format!("{}{prompt}", model.detokenize(&filled).unwrap());
        let expected = [filled.clone(), model.tokenize(prompt).unwrap()].concat();
        if model.tokenize(&whole).unwrap() != expected {
            continue; // the cut merges with the prompt's first token: try another depth
        }
        model.fill_context(&[]).unwrap();
        let one = greedy_at(model, &whole, 0, 8);
        model.fill_context(&filled).unwrap();
        let two = greedy_at(model, prompt, depth, 8);
        assert_eq!(one, two, "depth {depth}: filled then prompted vs one prompt");
        assert_eq!(greedy_at(model, prompt, depth, 8), two, "a second run at depth {depth}");
        model.fill_context(&[]).unwrap();
        assert_eq!(greedy_at(model, &whole, 0, 8), one, "back at depth 0");
        return;
    }
    panic!("no depth in 48..80 tokenizes apart from the prompt");
}
