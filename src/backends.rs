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
        #[cfg(feature = "mlx")]
        "mlx",
        #[cfg(feature = "mlx")]
        "mlx-q4",
        #[cfg(feature = "mlx")]
        "mlx-q8",
    ]
    .to_vec()
}

/// In-process backends this tokbench knows but was built without, with how to get them. A config that lists one
/// (the committed matrix lists MLX) still runs the rest with a plain `cargo build` / `cargo bench`.
pub fn not_built_in(name: &str) -> Option<&'static str> {
    match name {
        #[cfg(not(feature = "mlx"))]
        "mlx" | "mlx-q4" | "mlx-q8" => Some(
            "Apple MLX is not built into this tokbench: build with `--features mlx` (macOS), or on Linux run through \
             `cargo xtask run` / `cargo xtask test`, which prepare MLX's CPU build (see README, MLX)",
        ),
        #[cfg(not(feature = "llama-cpp"))]
        "llama.cpp" | "llama-cpp" | "llamacpp" => Some("llama.cpp is not built in: build with `--features llama-cpp`"),
        _ => None,
    }
}

pub fn create(name: &str, servers: &[ServerConfig]) -> Result<Box<dyn Backend>> {
    if let Some(server) = servers.iter().find(|s| s.name == name) {
        return Ok(Box::new(tokbench_http::HttpBackend::new(server)?));
    }
    match name {
        #[cfg(feature = "llama-cpp")]
        "llama.cpp" | "llama-cpp" | "llamacpp" => Ok(Box::new(tokbench_llama::LlamaCpp::new()?)),
        #[cfg(feature = "mlx")]
        "mlx" | "mlx-q4" | "mlx-q8" => Ok(Box::new(tokbench_mlx::Mlx::new(name)?)),
        other if not_built_in(other).is_some() => bail!("backend {other:?}: {}", not_built_in(other).unwrap_or_default()),
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
