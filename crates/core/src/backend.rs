//! The contract between the measurement engine and an inference engine. A new engine is one file implementing
//! [`Backend`] (load a model) and [`LoadedModel`] (tokenize, generate while marking a [`TraceRecorder`]).
//! Backends know nothing of statistics, reports or baselines; the engine knows nothing of any backend.
use std::path::Path;

use anyhow::{bail, ensure, Result};

use crate::metrics::TraceRecorder;
use crate::sweep::ConcurrentBatch;
use tokbench_record::setup::{EngineInfo, FlashAttn, Sampling, Settings};

/// Everything a backend needs to load a model and its context. Engines ignore what does not apply to them
/// (and say so in their docs), but the results always record the values that were asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    pub threads: usize,
    /// Logical batch: the most prompt tokens submitted in one decode call (llama.cpp `-b`).
    pub batch: u32,
    /// Physical micro-batch (llama.cpp `-ub`).
    pub ubatch: u32,
    /// Layers offloaded to the GPU; 0 = CPU only. Ignored where there is no GPU backend.
    pub n_gpu_layers: i32,
    pub ctx_size: u32,
    pub flash_attn: FlashAttn,
    pub mmap: bool,
}

impl LoadOptions {
    pub fn settings(&self, sampling: Sampling) -> Settings {
        Settings {
            threads: self.threads,
            batch: self.batch,
            ubatch: self.ubatch,
            n_gpu_layers: self.n_gpu_layers,
            ctx_size: self.ctx_size,
            flash_attn: self.flash_attn,
            mmap: self.mmap,
            sampling,
            kv_cache_type: None,
        }
    }
}

/// What a backend learned about a model while loading it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelDetails {
    pub n_params: Option<u64>,
    pub n_ctx_train: Option<u32>,
    pub n_vocab: Option<u32>,
    /// Element type of the KV cache (`f16`, `f32`, `q8_0`…), for the roofline.
    pub kv_cache_type: Option<&'static str>,
}

pub struct GenerationRequest<'a> {
    pub prompt: &'a str,
    /// Exactly this many tokens are generated: end-of-sequence is suppressed.
    pub gen_tokens: usize,
    pub sampling: Sampling,
    /// The prompt follows this many tokens the backend holds in its KV cache from [`LoadedModel::fill_context`]
    /// (0: an empty cache). The backend keeps them and drops everything after them before the prompt.
    pub depth: usize,
}

/// One perplexity pass over a tokenized corpus, chunked the way llama.cpp's `llama-perplexity` chunks it (see
/// `quality::perplexity`): chunk `i` is `tokens[i*n_ctx .. (i+1)*n_ctx]`, evaluated as a fresh sequence.
pub struct ScoringRequest<'a> {
    pub tokens: &'a [u32],
    pub n_ctx: usize,
    pub n_chunks: usize,
    /// Logits are handed out for positions `first_scored ..= n_ctx - 2` of each chunk: the ones that predict a token
    /// inside the chunk, after the first half has warmed the context up.
    pub first_scored: usize,
}

impl ScoringRequest<'_> {
    /// What every backend checks before scoring: the chunks fit the model's training context and the corpus, and
    /// the first scored position lies inside a chunk.
    pub fn check(&self, n_ctx_train: Option<u32>) -> Result<()> {
        let Self { tokens, n_ctx, n_chunks, first_scored } = *self;
        if let Some(trained) = n_ctx_train {
            ensure!(
                n_ctx as u64 <= u64::from(trained),
                "a perplexity context of {n_ctx} tokens is larger than the {trained} this model was trained with: \
                 lower --ctx"
            );
        }
        ensure!(
            tokens.len() >= n_ctx * n_chunks,
            "{n_chunks} chunks of {n_ctx} tokens need more than {} tokens",
            tokens.len()
        );
        ensure!(first_scored < n_ctx, "first scored position {first_scored} is outside a chunk of {n_ctx}");
        Ok(())
    }
}

/// The logits a model produced at one position of one chunk (length = vocabulary size).
pub struct LogitsAt<'a> {
    pub chunk: usize,
    pub position: usize,
    pub logits: &'a [f32],
}

pub trait Backend {
    /// Name used on the command line and in benchmark ids, e.g. `llama.cpp`.
    fn name(&self) -> &str;
    fn engine_info(&self) -> EngineInfo;
    /// A backend attached to a server that is already running serves the one model that server loaded: its name.
    /// None for backends that load the matrix's model files themselves.
    fn attached_model(&self) -> Option<String> {
        None
    }
    /// Loads a model ready to generate. The engine times this call as the model's load time.
    fn load(&self, model: &Path, options: &LoadOptions) -> Result<Box<dyn LoadedModel>>;
}

pub trait LoadedModel {
    fn details(&self) -> ModelDetails;
    /// Context size actually in effect (prompt + generated tokens must fit in it).
    fn context_size(&self) -> usize;
    /// Tokenizes as `generate` will, including any BOS token the model adds.
    fn tokenize(&self, text: &str) -> Result<Vec<u32>>;
    fn detokenize(&self, tokens: &[u32]) -> Result<String>;
    /// Generates `request.gen_tokens` tokens from an empty cache, marking `trace` as it goes: `tokenized` after
    /// tokenizing `request.prompt`, `prefill_done` once the prompt's logits are ready, `token` after each sample.
    /// Must fail (not truncate) when prompt + generation do not fit the context.
    fn generate(&mut self, request: &GenerationRequest<'_>, trace: &mut TraceRecorder) -> Result<()>;

    /// Puts `tokens` in the KV cache (outside any clock), replacing what was there, so that the next generations
    /// with `depth = tokens.len()` start their prompt after them: llama-bench's `-d`. Empty = back to an empty
    /// cache. Backends that cannot keep a context between requests refuse a non-empty one.
    fn fill_context(&mut self, tokens: &[u32]) -> Result<()> {
        ensure!(
            tokens.is_empty(),
            "this backend cannot pre-fill its context: --depth needs an in-process engine (llama.cpp, mlx)"
        );
        Ok(())
    }

    /// Evaluates every chunk of `request` (its first token replaced by BOS when the model adds one, as
    /// llama-perplexity does) and calls `on_logits` for each scored position, in chunk then position order. Must
    /// not load the model a second time; a backend may create and free a scoring context of its own.
    fn score_chunks(
        &mut self,
        request: &ScoringRequest<'_>,
        on_logits: &mut dyn FnMut(LogitsAt<'_>) -> Result<()>,
    ) -> Result<()> {
        let _ = (request, on_logits);
        bail!("this backend cannot score perplexity yet")
    }

    /// Counts the prompt tokens that `generate` will feed for `text`. In-process engines tokenize; a server whose
    /// API applies a chat template counts what it actually evaluates.
    fn count_prompt_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.tokenize(text)?.len())
    }

    /// Servers: `streams` clients each send `requests_per_stream` requests back to back (see [`crate::sweep`]).
    /// Failed requests are reported in the batch, not as an error.
    fn generate_concurrently(
        &self,
        request: &GenerationRequest<'_>,
        streams: usize,
        requests_per_stream: usize,
    ) -> Result<ConcurrentBatch> {
        let _ = (request, streams, requests_per_stream);
        bail!("this backend runs in-process and serves one request at a time: concurrency sweeps are for servers")
    }
}
