//! The backends compiled into this binary, by the names used on the command line and in the config.
use anyhow::{bail, Result};
use tokbench_core::backend::Backend;

/// Names of every backend this build can run.
pub fn available() -> Vec<&'static str> {
    [
        #[cfg(feature = "llama-cpp")]
        "llama.cpp",
    ]
    .to_vec()
}

pub fn create(name: &str) -> Result<Box<dyn Backend>> {
    match name {
        #[cfg(feature = "llama-cpp")]
        "llama.cpp" | "llama-cpp" | "llamacpp" => Ok(Box::new(tokbench_llama::LlamaCpp::new()?)),
        other => bail!(
            "backend {other:?} is not built into this tokbench (available: {}); backends are cargo features, \
             e.g. `cargo run --release --features llama-cpp`",
            available().join(", ")
        ),
    }
}
