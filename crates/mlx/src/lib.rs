//! Apple MLX in-process, through mlx-rs 0.33 (MLX 0.32.2): Metal on macOS, MLX's CPU backend (the PyPI `mlx-cpu`
//! wheel) on Linux. The forward pass is [`llama`]; weights come through [`weights`] from the same GGUF file
//! llama.cpp runs (or an MLX safetensors directory); [`tokenizer`] makes sure a GGUF is tokenized with llama.cpp's
//! own vocabulary, so both engines see identical tokens.
//!
//! Measured the MLX way (see `generate`): weights are evaluated at load, so no run pays for lazy loading; the engine's
//! warmup generations come first; decode is pipelined as mlx-lm pipelines it — step `i+1`'s graph is built and
//! handed to MLX (`async_eval`) before the host waits for token `i` — and the host time spent building and
//! dispatching, MLX's own peak memory (reset before every run) are reported beside the clocks.
pub mod export;
pub mod llama;
pub mod tokenizer;
pub mod weights;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Result};
use mlx_rs::ops::indexing::{argmax_axis, IndexOp};
use mlx_rs::transforms::{async_eval, eval};
use mlx_rs::{Array, Dtype};
use tokbench_core::backend::{
    Backend, GenerationRequest, LoadOptions, LoadedModel, LogitsAt, ModelDetails, ScoringRequest,
};
use tokbench_core::metrics::TraceRecorder;
use tokbench_record::results::EngineRunReport;
use tokbench_record::setup::{EngineInfo, Sampling};

use crate::llama::{KvCache, LlamaModel};
use crate::tokenizer::Tokenizer;
use crate::weights::{mlx_err, DenseWeights};

/// The MLX version mlx-rs 0.33 / mlx-sys 0.7.0 pin (and the mlx-cpu wheel that Linux builds link).
pub const MLX_VERSION: &str = "0.32.2";
const MLX_RS_VERSION: &str = "0.33.0";

/// The float type activations, KV cache, norms and quantization scales are computed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numerics {
    /// `mlx`: the weights' own float type on a GPU (Metal), as mlx-lm computes — float16 for GGUF F16 and the
    /// quantized types (their scales are f16), bfloat16 for BF16 models; float32 on MLX's CPU device, whose float16
    /// kernels run in software (quantized matmul measured 30–36× slower in float16 than in float32 there,
    /// docs/measurements.md), so a CPU row in float16 would measure that emulation, not the engine.
    Auto,
    /// `mlx-native`: the weights' own float type on every device, as mlx-lm computes, also on the CPU.
    AsWeights,
    /// `mlx-f32`: float32 throughout, as llama.cpp's CPU path computes: the closest match to llama.cpp's numbers, at
    /// twice the KV-cache and activation traffic of float16.
    Float32,
}

impl Numerics {
    /// Whether a model computes in its weights' float type on MLX's default device.
    pub fn uses_weight_type(self) -> bool {
        match self {
            Numerics::Auto => mlx_rs::Device::default().get_type().is_ok_and(|t| matches!(t, mlx_rs::DeviceType::Gpu)),
            Numerics::AsWeights => true,
            Numerics::Float32 => false,
        }
    }
}

/// The backend. `mlx` runs weights as stored (numerics: [`Numerics::Auto`]); `mlx-native` and `mlx-f32` the same in
/// the weights' float type and in float32; `mlx-q4` / `mlx-q8` quantize dense (F16/BF16/F32) weight matrices to MLX's
/// own 4-bit / 8-bit format (groups of 64, mlx-lm's default) on load — the "MLX 4-bit / 8-bit" rows.
pub struct Mlx {
    name: &'static str,
    dense: DenseWeights,
    numerics: Numerics,
}

impl Mlx {
    /// Backend names this crate answers to.
    pub const NAMES: [&'static str; 5] = ["mlx", "mlx-native", "mlx-f32", "mlx-q4", "mlx-q8"];

    pub fn new(name: &str) -> Result<Mlx> {
        let (name, dense, numerics) = match name {
            "mlx" => ("mlx", DenseWeights::AsStored, Numerics::Auto),
            "mlx-native" => ("mlx-native", DenseWeights::AsStored, Numerics::AsWeights),
            "mlx-f32" => ("mlx-f32", DenseWeights::AsStored, Numerics::Float32),
            "mlx-q4" => ("mlx-q4", DenseWeights::Quantize { bits: 4, group_size: 64 }, Numerics::Auto),
            "mlx-q8" => ("mlx-q8", DenseWeights::Quantize { bits: 8, group_size: 64 }, Numerics::Auto),
            other => bail!("no MLX backend variant {other:?}: use one of {}", Self::NAMES.join(", ")),
        };
        Ok(Mlx { name, dense, numerics })
    }

    /// Where MLX computes: its default device (Metal GPU on Apple silicon, the CPU elsewhere).
    pub fn device() -> String {
        mlx_rs::Device::default().to_string()
    }
}

impl Backend for Mlx {
    fn name(&self) -> &str {
        self.name
    }

    fn engine_info(&self) -> EngineInfo {
        let build = if cfg!(target_os = "macos") { "upstream build, Metal" } else { "PyPI mlx-cpu wheel, CPU backend" };
        let weights = match self.dense {
            DenseWeights::AsStored => "weights as stored".to_string(),
            DenseWeights::Quantize { bits, group_size } => {
                format!("dense weights quantized to MLX {bits}-bit (group {group_size}) on load")
            }
        };
        let numerics = match (self.numerics, self.numerics.uses_weight_type()) {
            (Numerics::Float32, _) => "activations float32",
            (_, true) => "activations in the weights' float type",
            (_, false) => "activations float32 (MLX's CPU device runs float16 in software)",
        };
        EngineInfo {
            backend: self.name.to_string(),
            version: format!("mlx-rs {MLX_RS_VERSION} (MLX {MLX_VERSION})"),
            build_info: format!("device = {} | {build} | {numerics} | {weights}", Self::device()),
            server: None,
        }
    }

    fn load(&self, path: &Path, options: &LoadOptions) -> Result<Box<dyn LoadedModel>> {
        ensure!(options.ctx_size > 0, "--ctx-size must be at least 1");
        let (model, tokenizer) = if path.is_dir() {
            (weights::load_safetensors_dir(path, self.dense, self.numerics)?, Tokenizer::from_hf_dir(path)?)
        } else if path.is_file() {
            (weights::load_gguf(path, self.dense, self.numerics)?, Tokenizer::from_gguf(path)?)
        } else {
            bail!(
                "model {} does not exist: give a GGUF file or an MLX model directory (config.json, *.safetensors, \
                 tokenizer.json); `cargo xtask fetch` fetches the config's models",
                path.display()
            );
        };
        // MLX is lazy: evaluate every weight now, so that reading and converting the file counts as load time and
        // never as a run's.
        eval(model.arrays()).map_err(mlx_err)?;
        let vocab = model.config.vocab as usize;
        let mut bias = vec![0f32; vocab];
        for id in tokenizer.end_of_generation() {
            if let Some(b) = bias.get_mut(id as usize) {
                *b = f32::NEG_INFINITY;
            }
        }
        let eog_bias = Array::from_slice(&bias, &[vocab as i32]).as_dtype(model.dtype).map_err(mlx_err)?;
        eval([&eog_bias]).map_err(mlx_err)?;
        Ok(Box::new(MlxLoaded { model, tokenizer, eog_bias, options: options.clone(), depth: 0, depth_cache: None }))
    }
}

struct MlxLoaded {
    model: LlamaModel,
    tokenizer: Tokenizer,
    /// 0, or −∞ on every end-of-generation token: runs always produce exactly the requested count.
    eog_bias: Array,
    options: LoadOptions,
    /// `fill_context`'s `depth` tokens, kept in this cache; generations at that depth continue it, truncated back
    /// to it first (no copy: later positions are overwritten).
    depth: usize,
    depth_cache: Option<KvCache>,
}

impl MlxLoaded {
    /// The next token from last-position logits (`[1, 1, vocab]`): greedy, or temperature sampling.
    fn sample(&self, logits: &Array, sampling: Sampling) -> Result<Array> {
        let logits = logits.add(&self.eog_bias).map_err(mlx_err)?;
        let token = if sampling.is_greedy() {
            argmax_axis(&logits, -1, None)
        } else {
            let scaled = logits.multiply(Array::from_f32(1.0 / sampling.temperature)).map_err(mlx_err)?;
            mlx_rs::random::categorical(&scaled, -1, None, None)
        };
        token.map_err(mlx_err)
    }

    /// Builds one decode step's graph from the previous token (evaluated or still pending) and hands it to MLX.
    /// Returns the step's token (pending) and the host time spent building the graph: the work outside MLX's
    /// evaluation. (`async_eval` itself is not counted: MLX's scheduler applies back-pressure there, so on the CPU
    /// backend it waits for earlier work to drain and would count evaluation as host time.)
    fn queue_step(&self, previous: &Array, cache: &mut KvCache, sampling: Sampling) -> Result<(Array, Duration)> {
        let start = Instant::now();
        let input = previous.reshape(&[1, 1]).map_err(mlx_err)?;
        let logits = self.model.forward(&input, cache, true).map_err(mlx_err)?;
        let next = self.sample(&logits, sampling)?;
        let built = start.elapsed();
        async_eval([&next]).map_err(mlx_err)?;
        Ok((next, built))
    }

    /// Feeds `tokens` in pieces of the logical batch (llama.cpp's `-b`, mlx-lm's prefill step), evaluating the cache
    /// after each piece so that no graph spans the whole prompt; returns the last position's logits, unevaluated.
    /// Prefill and decode of one generation, continuing `cache` (empty, or holding the depth's tokens).
    fn generate_with(
        &mut self,
        request: &GenerationRequest<'_>,
        trace: &mut TraceRecorder,
        prompt: &[u32],
        cache: &mut KvCache,
    ) -> Result<()> {
        let n_gen = request.gen_tokens;
        let logits = self.prefill(prompt, cache)?;
        eval([&logits]).map_err(mlx_err)?;
        trace.prefill_done();
        let first = self.sample(&logits, request.sampling)?;
        trace.token(token_id(&first)?);

        // Pipelined decode: token i+1's graph is queued before the host waits for token i.
        let mut host = Duration::ZERO;
        let mut pending = None;
        if n_gen > 1 {
            let (next, built) = self.queue_step(&first, cache, request.sampling)?;
            host += built;
            pending = Some(next);
        }
        for step in 1..n_gen {
            let current = pending.take().expect("queued one step ahead");
            if step + 1 < n_gen {
                let (next, built) = self.queue_step(&current, cache, request.sampling)?;
                host += built;
                pending = Some(next);
            }
            trace.token(token_id(&current)?);
        }
        trace.engine_report(EngineRunReport {
            device_peak_bytes: mlx_rs::memory::peak_memory().ok().map(|b| b as u64),
            decode_host_s: (n_gen > 1).then(|| host.as_secs_f64()),
        });
        Ok(())
    }

    fn prefill(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Array> {
        let step = (self.options.batch as usize).max(1);
        let mut logits = None;
        for (i, piece) in tokens.chunks(step).enumerate() {
            let ids: Vec<i32> = piece.iter().map(|&t| t as i32).collect();
            let input = Array::from_slice(&ids, &[1, ids.len() as i32]);
            let last = (i + 1) * step >= tokens.len();
            let out = self.model.forward(&input, cache, true).map_err(mlx_err)?;
            if !last {
                eval(cache.arrays()).map_err(mlx_err)?;
            }
            logits = Some(out);
        }
        logits.ok_or_else(|| anyhow!("the prompt tokenized to nothing"))
    }
}

/// Waits for a sampled token and reads it (argmax gives u32, categorical i32).
fn token_id(token: &Array) -> Result<u32> {
    token.eval().map_err(mlx_err)?;
    Ok(token.item_cast::<u32>())
}

impl LoadedModel for MlxLoaded {
    fn details(&self) -> ModelDetails {
        ModelDetails {
            n_params: Some(self.model.n_params()),
            n_ctx_train: self.model.config.n_ctx_train,
            n_vocab: Some(self.model.config.vocab as u32),
            // Keys and values are kept in the compute type.
            kv_cache_type: Some(match self.model.dtype {
                Dtype::Float16 => "f16",
                Dtype::Bfloat16 => "bf16",
                _ => "f32",
            }),
        }
    }

    fn context_size(&self) -> usize {
        self.options.ctx_size as usize
    }

    fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.tokenize(text)
    }

    fn detokenize(&self, tokens: &[u32]) -> Result<String> {
        self.tokenizer.detokenize(tokens)
    }

    fn generate(&mut self, request: &GenerationRequest<'_>, trace: &mut TraceRecorder) -> Result<()> {
        // Everything in here is inside the engine's clock: tokenization, prefill, sampling, decoding.
        let prompt = self.tokenizer.tokenize(request.prompt)?;
        trace.tokenized(prompt.len());
        let (n_prompt, n_gen, n_ctx) = (prompt.len(), request.gen_tokens, self.context_size());
        ensure!(n_prompt > 0, "the prompt tokenized to nothing");
        ensure!(n_gen > 0, "0 tokens requested: ask for at least 1");
        ensure!(
            request.sampling.is_greedy() || request.sampling.top_p >= 1.0,
            "the MLX backend samples greedily or by temperature alone: set top_p = 1.0 (asked {})",
            request.sampling.top_p
        );
        if !request.sampling.is_greedy() {
            mlx_rs::random::seed(request.sampling.seed as u64).map_err(mlx_err)?;
        }
        mlx_rs::memory::reset_peak_memory().map_err(mlx_err)?;
        let depth = self.depth;
        ensure!(
            request.depth == depth,
            "asked for a prompt at depth {} but the context holds {depth} tokens (fill_context first)",
            request.depth
        );
        ensure!(
            depth + n_prompt + n_gen <= n_ctx,
            "prompt of {n_prompt} tokens + {n_gen} generated tokens{} does not fit the context of {n_ctx}: raise \
             --ctx-size",
            if depth > 0 { format!(" after a depth of {depth}") } else { String::new() }
        );
        let mut fresh = None;
        let cache = match self.depth_cache.take() {
            Some(mut filled) => {
                filled.truncate(depth as i32);
                fresh.insert(filled)
            }
            None => fresh.insert(KvCache::new(self.model.blocks.len())),
        };
        let outcome = self.generate_with(request, trace, &prompt, cache);
        if depth > 0 {
            self.depth_cache = fresh;
        }
        outcome
    }

    fn fill_context(&mut self, tokens: &[u32]) -> Result<()> {
        (self.depth, self.depth_cache) = (0, None);
        if tokens.is_empty() {
            return Ok(());
        }
        ensure!(tokens.len() < self.context_size(), "a depth of {} tokens does not fit the context", tokens.len());
        let mut cache = KvCache::new(self.model.blocks.len());
        let logits = self.prefill(tokens, &mut cache)?;
        eval([&logits]).map_err(mlx_err)?;
        eval(cache.arrays()).map_err(mlx_err)?;
        (self.depth, self.depth_cache) = (tokens.len(), Some(cache));
        Ok(())
    }

    fn score_chunks(
        &mut self,
        request: &ScoringRequest<'_>,
        on_logits: &mut dyn FnMut(LogitsAt<'_>) -> Result<()>,
    ) -> Result<()> {
        request.check(self.model.config.n_ctx_train)?;
        let ScoringRequest { tokens, n_ctx, n_chunks, first_scored } = *request;
        let vocab = self.model.config.vocab as usize;
        let bos = self.tokenizer.bos();
        for chunk in 0..n_chunks {
            // As llama-perplexity: each chunk a fresh sequence, its first token replaced by BOS where the model adds one.
            let mut ids: Vec<i32> = tokens[chunk * n_ctx..(chunk + 1) * n_ctx].iter().map(|&t| t as i32).collect();
            if let Some(bos) = bos {
                ids[0] = bos as i32;
            }
            let mut cache = KvCache::new(self.model.blocks.len());
            let input = Array::from_slice(&ids, &[1, n_ctx as i32]);
            let logits = self.model.forward(&input, &mut cache, false).map_err(mlx_err)?;
            let scored = logits.index((0, first_scored as i32..(n_ctx - 1) as i32, ..));
            let scored = scored.as_dtype(Dtype::Float32).map_err(mlx_err)?;
            eval([&scored]).map_err(mlx_err)?;
            let values = scored.try_as_slice::<f32>().map_err(mlx_err)?;
            for (i, row) in values.chunks_exact(vocab).enumerate() {
                on_logits(LogitsAt { chunk, position: first_scored + i, logits: row })?;
            }
        }
        Ok(())
    }
}
