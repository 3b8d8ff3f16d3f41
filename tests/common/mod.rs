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
