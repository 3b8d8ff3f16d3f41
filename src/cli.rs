//! The command line, as clap types only: what each command and flag means. Flags override the config (merged in
//! `options.rs`); comma lists sweep, as in llama-bench. What each command does is in `commands/`.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tokbench_core::config::DEFAULT_CONFIG_FILE;
use tokbench_record::setup::FlashAttn;

#[derive(Parser, Debug)]
#[command(
    name = "tokbench",
    version,
    about = "Benchmark local LLM inference: TTFT, tokens/s and peak RAM, with statistics"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the benchmark matrix of the config, or an ad hoc one from flags.
    Run(Box<RunArgs>),
    /// The matrix of `run` (same flags), driven one generation at a time over stdin/stdout by the A/B gate
    /// (`cargo xtask compare --ab REF`); speaks the versioned JSON-lines protocol of tokbench_record::worker.
    Worker(Box<RunArgs>),
    /// List the backends built into this binary, with engine versions and build flags.
    Backends,
    /// This machine as results record it (class key, SIMD features, energy counter), with a fresh memory-bandwidth
    /// probe, as JSON.
    Machine,
    /// Make the config's quantization ladder with llama.cpp's quantize API (up-to-date rungs are skipped).
    Quantize(QuantizeArgs),
    /// Perplexity of a model on a corpus, computed as llama.cpp's llama-perplexity does; optionally saves the
    /// model's top-k log-probabilities as a KL-divergence base, or scores KL-divergence against one.
    Perplexity(PerplexityArgs),
    /// Write a synthetic llama model of a given size (seeded random weights, a real tokenizer) for speed and memory
    /// tables without downloads. Its results are marked synthetic and never scored for quality.
    Synth(SynthArgs),
    /// Write a GGUF as an MLX-format model directory (config.json, model.safetensors, tokenizer.json), the layout
    /// mlx-lm and mlx-community use: same weights, nothing re-quantized. Needs the MLX backend (`--features mlx`).
    ExportMlx(ExportMlxArgs),
    /// One self-contained HTML page of one or several results files: the table, the Pareto chart, TTFT against
    /// prompt length, decode against depth, the roofline, model size against speed, inter-token latency.
    Report(ReportArgs),
}

#[derive(Args, Debug)]
pub struct ExportMlxArgs {
    /// GGUF file, or a model name from the config (llama family, byte-level BPE tokenizer).
    #[arg(long, short = 'm')]
    pub model: String,
    /// The directory to write. Default: <models dir>/mlx/<file stem>.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Replace an existing directory.
    #[arg(long)]
    pub force: bool,
    /// Float type of scales, norms and dense weights (mlx-lm computes in it): float16, bfloat16 or float32.
    /// Default: the weights' own (float16 for GGUF quantized types).
    #[arg(long)]
    pub dtype: Option<String>,
    #[arg(long, default_value = DEFAULT_CONFIG_FILE)]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Results JSON files written by `tokbench run` (e.g. target/tokbench/latest.json).
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// The HTML file. Default: the first results file with .html for .json.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// A named shape: smollm2-135m, 0.5b, 1b, 3b, 8b, 13b (the dimensions of SmolLM2-135M, Qwen2.5-0.5B,
    /// Llama-3.2-1B/3B, Llama-3.1-8B, Llama-2-13B). The --n-* flags override its dimensions, or give them all.
    #[arg(long)]
    pub shape: Option<String>,
    /// Weight type: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 are written directly; any other llama.cpp type
    /// (Q4_K_M, Q3_K_L, IQ4_XS, …) is quantized from an F16 synthetic with llama.cpp's quantize API.
    #[arg(long = "type", short = 't', default_value = "Q4_0")]
    pub weight_type: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// GGUF whose tokenizer the model carries (copied verbatim; padded with unused tokens up to the shape's
    /// vocabulary). Default: the config's first model, fetched by `cargo xtask fetch`.
    #[arg(long)]
    pub tokenizer_from: Option<PathBuf>,
    /// Output file. Default: <models dir>/synthetic/synth-<shape>-<TYPE>-s<seed>.gguf.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    /// Threads for llama.cpp's quantize (K-quant types). Default: physical cores.
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long)]
    pub n_layer: Option<u64>,
    #[arg(long)]
    pub n_embd: Option<u64>,
    #[arg(long)]
    pub n_head: Option<u64>,
    #[arg(long)]
    pub n_head_kv: Option<u64>,
    #[arg(long)]
    pub n_ff: Option<u64>,
    #[arg(long)]
    pub n_vocab: Option<u64>,
    #[arg(long)]
    pub context_length: Option<u64>,
    #[arg(long, default_value = DEFAULT_CONFIG_FILE)]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct PerplexityArgs {
    /// GGUF file, or a model name from the config (`name` or `name@TYPE` for a ladder rung).
    #[arg(long, short = 'm')]
    pub model: String,
    /// Text corpus, e.g. WikiText-2's wiki.test.raw (`cargo xtask fetch-corpus`) or any UTF-8 file.
    #[arg(long, short = 'f')]
    pub corpus: PathBuf,
    /// Tokens per chunk (llama-perplexity -c). Default: the config's `[quality] ctx`, else 512.
    #[arg(long, short = 'c')]
    pub ctx: Option<usize>,
    /// Score only the first K chunks.
    #[arg(long)]
    pub chunks: Option<usize>,
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// Logical batch; chunks are scored batch / ctx at a time, as llama-perplexity does. Default: `[run] batch`.
    #[arg(long, short = 'b')]
    pub batch: Option<u32>,
    /// Default: `[run] ubatch`.
    #[arg(long)]
    pub ubatch: Option<u32>,
    /// Save this model's top-k log-probabilities here, as the base for `--kld-base`.
    #[arg(long)]
    pub save_base: Option<PathBuf>,
    /// Also report KL-divergence, top-token agreement and ΔPPL against this saved base.
    #[arg(long)]
    pub kld_base: Option<PathBuf>,
    /// Log-probabilities kept per token in a saved base. Default: the config's `[quality] top_k`, else 32.
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long, default_value = "llama.cpp")]
    pub backend: String,
    /// Write the result as JSON.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Config whose model names `--model` may use and whose `[run]` / `[quality]` give the defaults (used when it
    /// exists).
    #[arg(long, default_value = DEFAULT_CONFIG_FILE)]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct QuantizeArgs {
    #[arg(long, default_value = DEFAULT_CONFIG_FILE)]
    pub config: PathBuf,
    /// Rungs to make (comma list). Default: every `[ladder] types` entry.
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// Only the rungs that `[run] models` uses.
    #[arg(long)]
    pub needed: bool,
    /// Remake rungs even when up to date.
    #[arg(long)]
    pub force: bool,
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
}

#[derive(Args, Debug, Default, Clone)]
pub struct RunArgs {
    /// Benchmark config; flags below override it. Without one, --model is required.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model files, or model names from the config (comma list).
    #[arg(long, short = 'm', value_delimiter = ',')]
    pub model: Vec<String>,
    /// Backends (comma list), e.g. llama.cpp.
    #[arg(long, short = 'b', value_delimiter = ',')]
    pub backend: Vec<String>,
    /// Thread counts to sweep (comma list). Default: physical cores.
    #[arg(long, short = 't', value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Prompt sets: short, medium, long, config [[prompt]] names, or pN for an exact N-token prompt (comma list).
    #[arg(long, value_delimiter = ',')]
    pub prompt: Vec<String>,
    /// Exact prompt lengths in tokens, like llama-bench -p (comma list). Replaces --prompt.
    #[arg(long, short = 'p', value_delimiter = ',')]
    pub prompt_tokens: Vec<usize>,
    /// Tokens to generate, like llama-bench -n (comma list). Overrides the prompt sets' own lengths.
    #[arg(long, short = 'n', value_delimiter = ',')]
    pub gen_tokens: Vec<usize>,
    /// Warmup generations per benchmark, discarded (default: `[run] warmup`).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Timed generations per benchmark (default: `[run] runs`).
    #[arg(long, short = 'r')]
    pub runs: Option<usize>,
    /// Tokens already in the KV cache before the timed prompt (comma list; llama-bench's -d), e.g. 0,512,2048.
    /// The context grows by the largest depth.
    #[arg(long, value_delimiter = ',')]
    pub depth: Vec<usize>,
    #[arg(long)]
    pub ctx_size: Option<u32>,
    #[arg(long)]
    pub batch: Option<u32>,
    #[arg(long)]
    pub ubatch: Option<u32>,
    #[arg(long, short = 'g')]
    pub n_gpu_layers: Option<i32>,
    /// on, off or auto.
    #[arg(long)]
    pub flash_attn: Option<FlashAttn>,
    #[arg(long)]
    pub mmap: Option<bool>,
    /// Sampling temperature, 0 = greedy (default). A comma list sweeps it (0,0.3,0.7); ids then carry `@T<t>`.
    #[arg(long, value_delimiter = ',')]
    pub temperature: Vec<f32>,
    #[arg(long)]
    pub top_p: Option<f32>,
    #[arg(long)]
    pub seed: Option<u32>,
    /// Results JSON. Default: target/tokbench/runs/<time>.json, copied to target/tokbench/latest.json.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Also write the results as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Also write the results table as markdown.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Run only benchmarks whose id contains one of these substrings (comma list), e.g. `short/t2`.
    #[arg(long, value_delimiter = ',')]
    pub filter: Vec<String>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Skip the config's [quality] section (perplexity, KL-divergence, Pareto frontier).
    #[arg(long)]
    pub no_quality: bool,
    /// Root URL of a running server, for `--backend openai` (OpenAI-compatible: llama-server, vLLM, mlx_lm.server,
    /// MLC-LLM …) or `--backend ollama`, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: Option<String>,
    /// The `model` sent to the server (default: the first model it lists; required for Ollama).
    #[arg(long)]
    pub model_name: Option<String>,
    /// OpenAI-compatible endpoint: completions (raw prompt, default) or chat (the server applies its template).
    #[arg(long)]
    pub api: Option<String>,
    /// Environment variable holding the server's API key (sent as a bearer token, never logged or saved).
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// Server backends: concurrent streams to sweep after each benchmark (comma list), e.g. 1,2,4,8.
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Vec<usize>,
    /// Requests each stream sends, back to back, at every concurrency level (default: `[run] requests_per_stream`).
    #[arg(long)]
    pub requests_per_stream: Option<usize>,
    /// Seconds a server may take to send the first token before the run fails (default: `[[server]]
    /// first_token_timeout_s`).
    #[arg(long)]
    pub first_token_timeout: Option<f64>,
    /// The memory-bandwidth probe, the roofline's ceiling: `boot` (measured once per boot and cached), `fresh`
    /// (measure now) or `off`. Where llama.cpp offloads to a GPU (not on macOS), that GPU's copy bandwidth is
    /// measured too, unless `off`.
    #[arg(long, default_value = "boot", value_parser = ["boot", "fresh", "off"])]
    pub bandwidth_probe: String,
}
