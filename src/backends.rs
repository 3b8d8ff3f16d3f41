//! The backends this binary can run, by the names used on the command line and in the config: the in-process
//! engines compiled in, and every server of the config (`[[server]]`, or `--backend openai|ollama --url …`).
use anyhow::{bail, Result};
use tokbench_core::backend::Backend;
use tokbench_core::config::ServerConfig;

/// Names of the in-process backends built into this binary.
pub fn available() -> Vec<&'static str> {
    [
        #[cfg(feature = "llama-cpp")]
        "llama.cpp",
    ]
    .to_vec()
}

pub fn create(name: &str, servers: &[ServerConfig]) -> Result<Box<dyn Backend>> {
    if let Some(server) = servers.iter().find(|s| s.name == name) {
        return Ok(Box::new(tokbench_http::HttpBackend::new(server)?));
    }
    match name {
        #[cfg(feature = "llama-cpp")]
        "llama.cpp" | "llama-cpp" | "llamacpp" => Ok(Box::new(tokbench_llama::LlamaCpp::new()?)),
        "openai" | "ollama" => bail!(
            "backend {name:?} is a server: give its address with --url http://HOST:PORT (or add a [[server]] named \
             {name:?} to the config)"
        ),
        other => bail!(
            "backend {other:?} is neither built into this tokbench (in-process: {}) nor a [[server]] of the config \
             (servers: {}); in-process backends are cargo features, e.g. `cargo run --release --features llama-cpp`",
            available().join(", "),
            if servers.is_empty() {
                "none".to_string()
            } else {
                servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            }
        ),
    }
}
