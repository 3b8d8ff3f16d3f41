//! What a benchmark ran: the engine (and server), the model file, the settings and the prompt. Shared by the
//! benchmark record and the concurrency sweep.
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// Backend name as selected on the command line, e.g. `llama.cpp`.
    pub backend: String,
    /// Engine version, e.g. `llama-cpp-sys-2 0.1.161 (ggml 0.26.0)`.
    pub version: String,
    /// The engine's own account of how it was built, e.g. llama.cpp's system-info line (AVX2 = 1 | FMA = 1 ...).
    pub build_info: String,
    /// Set when the engine was reached over HTTP: which server and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerEndpoint>,
}

/// An inference server measured through its HTTP API. Never holds an API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerEndpoint {
    /// `completions` (`/v1/completions`), `chat` (`/v1/chat/completions`) or `ollama` (`/api/generate`).
    pub api: String,
    pub url: String,
    /// The `model` sent with each request.
    pub model_name: Option<String>,
    /// The command tokbench started the server with; None when it attached to a running server.
    pub launched: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Short name: the config's model name, or the file stem.
    pub name: String,
    pub file_name: String,
    pub size_bytes: u64,
    pub sha256: String,
    /// e.g. `Q4_1`, from the GGUF header; `unknown` when the file does not say.
    pub quantization: String,
    pub architecture: Option<String>,
    pub n_params: Option<u64>,
    /// Where a derived file came from (e.g. a quantization made from a dequantized base); None for originals.
    pub derived_from: Option<String>,
    /// Set for a model made by `tokbench synth` (seeded random weights): its shape and seed, e.g. `1b seed 0`.
    /// Speed and memory only: its quality is never scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<String>,
    /// What one decoded token reads from memory, from the file's tensor table (see [`crate::roofline`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_traffic: Option<crate::roofline::DecodeTraffic>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub threads: usize,
    pub batch: u32,
    pub ubatch: u32,
    pub n_gpu_layers: i32,
    pub ctx_size: u32,
    pub flash_attn: FlashAttn,
    pub mmap: bool,
    pub sampling: Sampling,
    /// Element type of the KV cache as the engine reports it (`f16` for llama.cpp's default, `f32` for MLX's
    /// float32 compute): sizes the cache's share of the roofline's bytes per token. None when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlashAttn {
    Auto,
    On,
    Off,
}

impl std::str::FromStr for FlashAttn {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(FlashAttn::Auto),
            "on" | "1" | "true" => Ok(FlashAttn::On),
            "off" | "0" | "false" => Ok(FlashAttn::Off),
            other => bail!("flash attention must be on, off or auto, not {other:?}"),
        }
    }
}

/// Greedy when `temperature` is 0. End-of-sequence tokens are always suppressed so every run does equal work.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u32,
}

impl Sampling {
    pub const GREEDY: Sampling = Sampling { temperature: 0.0, top_p: 1.0, seed: 42 };
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptInfo {
    /// `short`, `medium`, `long`, a config-defined name, or `p512-n128` for an exact-length prompt.
    pub name: String,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub text_sha256: String,
    /// Tokens already in the KV cache when the timed prompt starts (llama-bench's `-d`); 0 = an empty cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub depth: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}
