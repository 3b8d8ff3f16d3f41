//! The one table of backends: every in-process engine tokbench knows (name, aliases, cargo feature, what it can do,
//! how to make one), whether or not this binary was built with it, and the servers of the config. The CLI, the
//! runner, `cargo bench` and `tokbench backends` all ask here; nothing else matches backend names.
use anyhow::{bail, Result};
use tokbench_core::backend::Backend;
use tokbench_core::config::ServerConfig;

/// What a backend can do beyond timed generation, so the runner plans around it instead of failing mid-matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Perplexity and KL-divergence (needs the logits: in-process engines only).
    pub scores_quality: bool,
    /// Several requests at once (`--concurrency`): servers only.
    pub concurrent_requests: bool,
}

const IN_PROCESS: Capabilities = Capabilities { scores_quality: true, concurrent_requests: false };
const SERVER: Capabilities = Capabilities { scores_quality: false, concurrent_requests: true };

/// An in-process engine.
pub struct Engine {
    pub name: &'static str,
    /// Other spellings accepted on the command line and in the config.
    pub aliases: &'static [&'static str],
    /// The cargo feature that builds it in.
    pub feature: &'static str,
    /// How to get it into a binary that lacks it.
    pub how_to_build: &'static str,
    pub capabilities: Capabilities,
    /// None when this binary was built without `feature`.
    create: Option<fn(&str) -> Result<Box<dyn Backend>>>,
}

pub const MLX_HOW: &str =
    "build with `--features mlx` (macOS, Metal), or on Linux run `cargo xtask run --mlx` / `cargo xtask \
                       test --mlx`, which prepare MLX's CPU build (docs/backends.md, MLX)";

#[cfg(feature = "llama-cpp")]
fn llama_cpp(_: &str) -> Result<Box<dyn Backend>> {
    Ok(Box::new(tokbench_llama::LlamaCpp::new()?))
}
#[cfg(feature = "mlx")]
fn mlx(name: &str) -> Result<Box<dyn Backend>> {
    Ok(Box::new(tokbench_mlx::Mlx::new(name)?))
}

macro_rules! built_with {
    ($feature:literal, $f:expr) => {{
        #[cfg(feature = $feature)]
        let f: Option<fn(&str) -> Result<Box<dyn Backend>>> = Some($f);
        #[cfg(not(feature = $feature))]
        let f: Option<fn(&str) -> Result<Box<dyn Backend>>> = None;
        f
    }};
}

/// Every in-process engine, in the order `tokbench backends` lists them.
pub fn engines() -> [Engine; 6] {
    let mlx_variant = |name, create| Engine {
        name,
        aliases: &[],
        feature: "mlx",
        how_to_build: MLX_HOW,
        capabilities: IN_PROCESS,
        create,
    };
    [
        Engine {
            name: "llama.cpp",
            aliases: &["llama-cpp", "llamacpp"],
            feature: "llama-cpp",
            how_to_build: "build with `--features llama-cpp` (on by default)",
            capabilities: IN_PROCESS,
            create: built_with!("llama-cpp", llama_cpp),
        },
        // MLX on the file's own types, computing in the weights' float type as mlx-lm does (float32 on MLX's CPU
        // device); mlx-native in the weights' type everywhere; mlx-f32 in float32; mlx-q4 / mlx-q8 quantize dense
        // weights with MLX on load.
        mlx_variant("mlx", built_with!("mlx", mlx)),
        mlx_variant("mlx-native", built_with!("mlx", mlx)),
        mlx_variant("mlx-f32", built_with!("mlx", mlx)),
        mlx_variant("mlx-q4", built_with!("mlx", mlx)),
        mlx_variant("mlx-q8", built_with!("mlx", mlx)),
    ]
}

impl Engine {
    pub fn is_built_in(&self) -> bool {
        self.create.is_some()
    }
    fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

/// The engine a name (or alias) stands for.
pub fn engine(name: &str) -> Option<Engine> {
    engines().into_iter().find(|e| e.answers_to(name))
}

/// Names of the in-process engines built into this binary.
pub fn built_in() -> Vec<&'static str> {
    engines().into_iter().filter(Engine::is_built_in).map(|e| e.name).collect()
}

/// Why `name` cannot run in this binary although tokbench knows it (None when it can, or is not an engine).
pub fn not_built_in(name: &str) -> Option<String> {
    let e = engine(name).filter(|e| !e.is_built_in())?;
    Some(format!("{} is not built into this tokbench: {}", e.name, e.how_to_build))
}

/// A server of the config (`[[server]]`, or `--backend openai|ollama --url`), else an engine.
pub fn capabilities(name: &str, servers: &[ServerConfig]) -> Option<Capabilities> {
    if servers.iter().any(|s| s.name == name) {
        return Some(SERVER);
    }
    engine(name).map(|e| e.capabilities)
}

pub fn create(name: &str, servers: &[ServerConfig]) -> Result<Box<dyn Backend>> {
    if let Some(server) = servers.iter().find(|s| s.name == name) {
        return Ok(Box::new(tokbench_http::HttpBackend::new(server)?));
    }
    if let Some(e) = engine(name) {
        return match e.create {
            Some(create) => create(e.name),
            None => bail!("backend {name:?}: {}", not_built_in(name).unwrap_or_default()),
        };
    }
    if name == "openai" || name == "ollama" {
        bail!(
            "backend {name:?} is a server: give its address with --url http://HOST:PORT (or add a [[server]] named \
             {name:?} to the config)"
        );
    }
    bail!(
        "backend {name:?} is neither an engine tokbench knows (built in: {}; known: {}) nor a [[server]] of the \
         config (servers: {})",
        built_in().join(", "),
        engines().iter().map(|e| e.name).collect::<Vec<_>>().join(", "),
        if servers.is_empty() {
            "none".to_string()
        } else {
            servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_resolve_to_one_engine_and_servers_come_first() {
        assert_eq!(engine("llamacpp").map(|e| e.name), Some("llama.cpp"));
        assert_eq!(engine("mlx-q8").map(|e| e.feature), Some("mlx"));
        assert!(engine("vllm").is_none());
        let server = ServerConfig::attached("llama.cpp", "completions", "http://127.0.0.1:1", None);
        // A [[server]] may take any name, even an engine's: the config's meaning wins.
        assert_eq!(capabilities("llama.cpp", &[server]), Some(SERVER));
        assert_eq!(capabilities("llama.cpp", &[]), Some(IN_PROCESS));
        let e = create("vllm", &[]).err().unwrap().to_string();
        assert!(e.contains("known: llama.cpp, mlx, mlx-native, mlx-f32, mlx-q4, mlx-q8"), "{e}");
    }

    #[cfg(not(feature = "mlx"))]
    #[test]
    fn an_engine_left_out_of_the_build_says_how_to_build_it() {
        let why = not_built_in("mlx-q4").unwrap();
        assert!(why.contains("--mlx") && why.contains("--features mlx"), "{why}");
        assert!(!built_in().contains(&"mlx"));
        assert!(create("mlx", &[]).err().unwrap().to_string().contains("cargo xtask run --mlx"));
    }
}
