//! llama.cpp in-process, through `llama-cpp-2`. CPU everywhere, Metal on macOS (enabled by target in Cargo.toml),
//! CUDA with the `cuda` feature. Build flags are chosen in `.cargo/config.toml` (native CPU, as llama.cpp's own
//! tools build) and reported per result through llama.cpp's system-info line.
pub mod device_bandwidth;
pub mod quantize;

use std::ffi::CStr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, ensure, Context, Result};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;
use llama_cpp_2::token::LlamaToken;
use tokbench_core::backend::{
    Backend, GenerationRequest, LoadOptions, LoadedModel, LogitsAt, ModelDetails, ScoringRequest,
};
use tokbench_core::metrics::TraceRecorder;
use tokbench_record::setup::{EngineInfo, FlashAttn, Sampling};

/// Version of the sys crate that vendors llama.cpp; llama.cpp's own build number is not available from a crate
/// build (its CMake reads it from git), so the crate version and ggml's version identify the engine.
const SYS_CRATE_VERSION: &str = "llama-cpp-sys-2 0.1.161";

pub struct LlamaCpp {
    backend: &'static LlamaBackend,
}

/// llama.cpp's backend may be initialised once per process; everything that loads a model here shares this one.
pub fn shared_backend() -> Result<&'static LlamaBackend> {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    if let Some(b) = BACKEND.get() {
        return Ok(b);
    }
    let mut backend = LlamaBackend::init().map_err(|e| anyhow!("cannot initialise llama.cpp: {e}"))?;
    // llama.cpp logs every tensor while loading; keep the terminal readable unless the user asks for it.
    if std::env::var_os("TOKBENCH_LLAMA_LOG").is_none() {
        backend.void_logs();
    }
    Ok(BACKEND.get_or_init(|| backend))
}

impl LlamaCpp {
    pub fn new() -> Result<LlamaCpp> {
        Ok(LlamaCpp { backend: shared_backend()? })
    }

    /// llama.cpp's own account of its build, e.g. `CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | ...`.
    pub fn system_info() -> String {
        // SAFETY: returns a pointer to a static, NUL-terminated buffer owned by llama.cpp.
        let info = unsafe { CStr::from_ptr(llama_cpp_sys_2::llama_print_system_info()) };
        info.to_string_lossy().trim().trim_end_matches('|').trim().to_string()
    }

    pub fn version() -> String {
        // SAFETY: ggml_version returns a static string.
        let ggml = unsafe { CStr::from_ptr(llama_cpp_sys_2::ggml_version()) };
        format!("{SYS_CRATE_VERSION} (ggml {})", ggml.to_string_lossy())
    }
}

impl Backend for LlamaCpp {
    fn name(&self) -> &str {
        "llama.cpp"
    }

    fn engine_info(&self) -> EngineInfo {
        EngineInfo {
            backend: self.name().to_string(),
            version: Self::version(),
            build_info: Self::system_info(),
            server: None,
        }
    }

    fn load(&self, path: &Path, options: &LoadOptions) -> Result<Box<dyn LoadedModel>> {
        ensure!(
            path.is_file(),
            "model file {} does not exist: run `cargo xtask fetch` for the config's models, or pass --model PATH",
            path.display()
        );
        ensure!(options.threads > 0, "threads must be at least 1");
        ensure!(options.ctx_size > 0, "--ctx-size must be at least 1");
        ensure!(options.batch > 0 && options.ubatch > 0, "--batch and --ubatch must be at least 1");

        let model_params = LlamaModelParams::default()
            .with_n_gpu_layers(options.n_gpu_layers.max(0) as u32)
            .with_use_mmap(options.mmap);
        let model = LlamaModel::load_from_file(self.backend, path, &model_params).map_err(|e| {
            anyhow!(
                "llama.cpp could not load {} ({e}). Check that it is a complete GGUF of an architecture this llama.cpp \
                 ({}) supports; set TOKBENCH_LLAMA_LOG=1 to see llama.cpp's own explanation",
                path.display(),
                Self::version()
            )
        })?;
        let n_ctx_train = model.n_ctx_train();
        let eog_sorted: Vec<u32> = {
            let vocab = model.vocab();
            let mut eog: Vec<u32> = vocab.tokens().filter(|t| vocab.is_eog(*t)).map(|t| t.0 as u32).collect();
            eog.sort_unstable();
            eog
        };
        let eog = eog_sorted.iter().map(|&t| LlamaLogitBias::new(LlamaToken(t as i32), f32::NEG_INFINITY)).collect();
        let ctx_params = context_params(options, options.ctx_size, options.batch, 1)?;
        let backend = self.backend;
        let cell = ModelAndContext::try_new(model, |model| {
            model.new_context(backend, ctx_params).map_err(|e| {
                anyhow!(
                    "llama.cpp could not create a context of {} tokens for {} ({e}): try a smaller --ctx-size",
                    options.ctx_size,
                    path.display()
                )
            })
        })?;
        let n_ctx = cell.with_dependent(|_, ctx| ctx.n_ctx()) as usize;
        let n_batch = cell.with_dependent(|_, ctx| ctx.n_batch()) as usize;
        Ok(Box::new(LlamaLoaded {
            cell,
            backend,
            options: options.clone(),
            eog_bias: eog,
            eog_sorted,
            n_ctx,
            n_batch,
            n_ctx_train,
            depth: 0,
        }))
    }
}

fn context_params(options: &LoadOptions, n_ctx: u32, n_batch: u32, n_seq: u32) -> Result<LlamaContextParams> {
    let flash = match options.flash_attn {
        FlashAttn::Auto => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
        FlashAttn::On => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED,
        FlashAttn::Off => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
    };
    let threads = i32::try_from(options.threads).context("thread count too large")?;
    Ok(LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_batch)
        .with_n_ubatch(options.ubatch.min(n_batch))
        .with_n_seq_max(n_seq)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
        .with_flash_attention_policy(flash))
}

type ModelContext<'model> = LlamaContext<'model>;

self_cell::self_cell!(
    /// A llama.cpp context borrows its model; keeping both in one value lets a loaded model be handed around.
    struct ModelAndContext {
        owner: LlamaModel,
        #[not_covariant]
        dependent: ModelContext,
    }
);

struct LlamaLoaded {
    cell: ModelAndContext,
    backend: &'static LlamaBackend,
    /// What the model was loaded with; a scoring context reuses its threads, micro-batch and flash-attention policy.
    options: LoadOptions,
    /// −∞ logit bias on every end-of-generation token: runs always produce exactly the requested count.
    eog_bias: Vec<LlamaLogitBias>,
    /// The same tokens, sorted, for greedy decoding's own pick ([`greedy_pick`]).
    eog_sorted: Vec<u32>,
    n_ctx: usize,
    n_batch: usize,
    n_ctx_train: u32,
    /// Positions 0..depth of the KV cache hold `fill_context`'s tokens; generations keep them.
    depth: usize,
}

/// Greedy decoding's token, as llama.cpp's `logit_bias(−∞ on every end-of-generation token) + greedy` chain picks
/// it: the first index of the highest logit among tokens not in `eog_sorted` (sorted ascending). `None` when every
/// allowed logit is −∞ or NaN. tokbench picks greedy tokens itself because llama.cpp's sampler API first copies all
/// n_vocab logits into a candidate array (0.16–0.18 ms a token for SmolLM2's 49,152, measured): a cost of that
/// API, not of greedy decoding, and one llama-bench's decode does not pay. Sampled decoding keeps llama.cpp's chain.
pub fn greedy_pick(logits: &[f32], eog_sorted: &[u32]) -> Option<u32> {
    // Fast path: the maximum over all logits in lanes the compiler vectorises, then its first index; only when that
    // index is an end-of-generation token does the exact scan with exclusions run.
    const LANES: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = logits.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (m, &x) in lanes.iter_mut().zip(chunk) {
            *m = if x > *m { x } else { *m };
        }
    }
    let max = lanes.iter().chain(tail).fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    if max > f32::NEG_INFINITY {
        let first = logits.iter().position(|&x| x == max)?;
        if eog_sorted.binary_search(&(first as u32)).is_err() {
            return Some(first as u32);
        }
    }
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in logits.iter().enumerate() {
        if x > best.map_or(f32::NEG_INFINITY, |(_, b)| b) && eog_sorted.binary_search(&(i as u32)).is_err() {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| i as u32)
}

/// How a generation picks each token: tokbench's own argmax for greedy decoding, llama.cpp's sampler chain otherwise.
enum TokenPicker<'a> {
    Greedy { eog_sorted: &'a [u32] },
    Chain(LlamaSampler),
}

impl TokenPicker<'_> {
    /// The token for the logits of batch row `row` (the row must have been decoded with logits requested).
    fn pick(&mut self, ctx: &LlamaContext<'_>, row: i32) -> Result<LlamaToken> {
        match self {
            TokenPicker::Greedy { eog_sorted } => greedy_pick(ctx.get_logits_ith(row), eog_sorted)
                .map(|t| LlamaToken(t as i32))
                .ok_or_else(|| anyhow!("every logit that is not end-of-generation is -inf or NaN: the model diverged")),
            TokenPicker::Chain(sampler) => Ok(sampler.sample(ctx, row)),
        }
    }
}

/// The picker for a generation: greedy → [`greedy_pick`]; otherwise llama.cpp's chain (end-of-generation
/// suppressed, top-p, temperature, seeded draw).
fn token_picker<'a>(
    sampling: Sampling,
    eog_sorted: &'a [u32],
    eog_bias: &[LlamaLogitBias],
    n_vocab: i32,
) -> TokenPicker<'a> {
    if sampling.is_greedy() {
        return TokenPicker::Greedy { eog_sorted };
    }
    TokenPicker::Chain(LlamaSampler::chain_simple([
        LlamaSampler::logit_bias(n_vocab, eog_bias),
        LlamaSampler::top_p(sampling.top_p, 1),
        LlamaSampler::temp(sampling.temperature),
        LlamaSampler::dist(sampling.seed),
    ]))
}

/// llama.cpp's own greedy chain with every end-of-generation token at −∞, which [`greedy_pick`] stands in for;
/// public for the test that the two pick the same tokens.
pub fn llama_greedy_chain(n_vocab: i32, eog_sorted: &[u32]) -> LlamaSampler {
    let bias: Vec<LlamaLogitBias> =
        eog_sorted.iter().map(|&t| LlamaLogitBias::new(LlamaToken(t as i32), f32::NEG_INFINITY)).collect();
    LlamaSampler::chain_simple([LlamaSampler::logit_bias(n_vocab, &bias), LlamaSampler::greedy()])
}

impl LoadedModel for LlamaLoaded {
    fn details(&self) -> ModelDetails {
        let model = self.cell.borrow_owner();
        ModelDetails {
            n_params: Some(model.n_params()),
            n_ctx_train: Some(self.n_ctx_train),
            n_vocab: u32::try_from(model.n_vocab()).ok(),
            // tokbench leaves llama.cpp's cache type at its default.
            kv_cache_type: Some("f16"),
        }
    }

    fn context_size(&self) -> usize {
        self.n_ctx
    }

    fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let tokens = self.cell.borrow_owner().vocab().tokenize(text.as_bytes(), true, false);
        Ok(tokens.into_iter().map(|t| t.0 as u32).collect())
    }

    fn detokenize(&self, tokens: &[u32]) -> Result<String> {
        let tokens: Vec<LlamaToken> = tokens.iter().map(|&t| LlamaToken(t as i32)).collect();
        let bytes = self.cell.borrow_owner().vocab().detokenize(&tokens, true, false);
        String::from_utf8(bytes).map_err(|_| anyhow!("detokenized text is not UTF-8"))
    }

    fn fill_context(&mut self, tokens: &[u32]) -> Result<()> {
        let (n_ctx, n_batch) = (self.n_ctx, self.n_batch.max(1));
        ensure!(tokens.len() < n_ctx, "a depth of {} tokens does not fit the context of {n_ctx}", tokens.len());
        let mut batch = LlamaBatch::new(n_batch, 1);
        self.depth = 0;
        self.cell.with_dependent_mut(|_, ctx| -> Result<()> {
            ctx.clear_kv_cache();
            for (chunk_index, chunk) in tokens.chunks(n_batch).enumerate() {
                batch.clear();
                for (i, &token) in chunk.iter().enumerate() {
                    let pos = chunk_index * n_batch + i;
                    batch.add(LlamaToken(token as i32), pos as i32, &[0], pos + 1 == tokens.len())?;
                }
                ctx.decode(&mut batch)
                    .with_context(|| format!("llama.cpp failed to fill the context at {chunk_index}"))?;
            }
            ctx.synchronize();
            Ok(())
        })?;
        self.depth = tokens.len();
        Ok(())
    }

    fn generate(&mut self, request: &GenerationRequest<'_>, trace: &mut TraceRecorder) -> Result<()> {
        ensure!(
            request.depth == self.depth,
            "asked for a prompt at depth {} but the context holds {} tokens (fill_context first)",
            request.depth,
            self.depth
        );
        // Everything in here is inside the engine's clock: tokenization, prefill, sampling, decoding.
        let prompt = self.cell.borrow_owner().vocab().tokenize(request.prompt.as_bytes(), true, false);
        trace.tokenized(prompt.len());
        let (n_prompt, n_gen, n_ctx, n_batch) = (prompt.len(), request.gen_tokens, self.n_ctx, self.n_batch);
        let depth = self.depth;
        ensure!(n_prompt > 0, "the prompt tokenized to nothing");
        ensure!(n_gen > 0, "0 tokens requested: ask for at least 1");
        ensure!(
            depth + n_prompt + n_gen <= n_ctx,
            "prompt of {n_prompt} tokens + {n_gen} generated tokens{} does not fit the context of {n_ctx}: raise \
             --ctx-size",
            if depth > 0 { format!(" after a depth of {depth}") } else { String::new() }
        );
        let n_vocab = self.cell.borrow_owner().n_vocab();
        let mut picker = token_picker(request.sampling, &self.eog_sorted, &self.eog_bias, n_vocab);
        let mut batch = LlamaBatch::new(n_batch.max(1), 1);

        self.cell.with_dependent_mut(|_, ctx| -> Result<()> {
            if depth == 0 {
                ctx.clear_kv_cache();
            } else {
                // Keep the pre-filled positions; drop the previous run's prompt and tokens after them.
                ctx.clear_kv_cache_seq(Some(0), Some(depth as u32), None)?;
            }
            for (chunk_index, chunk) in prompt.chunks(n_batch).enumerate() {
                batch.clear();
                let base = chunk_index * n_batch;
                for (i, &token) in chunk.iter().enumerate() {
                    let pos = base + i;
                    batch.add(token, (depth + pos) as i32, &[0], pos + 1 == n_prompt)?;
                }
                ctx.decode(&mut batch)
                    .with_context(|| format!("llama.cpp failed to decode the prompt at token {base}"))?;
            }
            ctx.synchronize();
            trace.prefill_done();

            let mut token = picker.pick(ctx, batch.n_tokens() - 1)?;
            trace.token(token.0 as u32);
            for step in 1..n_gen {
                batch.clear();
                batch.add(token, (depth + n_prompt + step - 1) as i32, &[0], true)?;
                ctx.decode(&mut batch).with_context(|| format!("llama.cpp failed to decode generated token {step}"))?;
                token = picker.pick(ctx, 0)?;
                trace.token(token.0 as u32);
            }
            Ok(())
        })?;
        Ok(())
    }

    fn score_chunks(
        &mut self,
        request: &ScoringRequest<'_>,
        on_logits: &mut dyn FnMut(LogitsAt<'_>) -> Result<()>,
    ) -> Result<()> {
        request.check(Some(self.n_ctx_train))?;
        let ScoringRequest { tokens, n_ctx, n_chunks, first_scored } = *request;
        // As llama-perplexity: as many chunks per decode call as the logical batch holds, each its own sequence,
        // so a 512-token context is scored four chunks at a time with the default batch of 2048.
        let batch_limit = self.options.batch as usize;
        let n_seq = (batch_limit / n_ctx).max(1);
        let n_kv = n_seq * n_ctx;
        let n_batch = batch_limit.min(n_kv);
        let (model, backend) = (self.cell.borrow_owner(), self.backend);
        let params =
            context_params(&self.options, u32::try_from(n_kv)?, u32::try_from(n_batch)?, u32::try_from(n_seq)?)?;
        // A second context on the same weights: the model is not loaded twice, and this context (with room for
        // every position's logits) is freed when scoring ends, before any speed benchmark uses the model again.
        let mut ctx = model
            .new_context(backend, params)
            .map_err(|e| anyhow!("llama.cpp could not create a scoring context of {n_kv} tokens ({e})"))?;
        let bos = {
            let vocab = model.vocab();
            vocab.should_add_bos().then(|| vocab.bos())
        };
        let mut batch = LlamaBatch::new(n_batch, n_seq as i32);
        let batches_per_chunk = n_ctx.div_ceil(n_batch);
        // Positions whose logits predict a token inside the chunk, after the warm-up half.
        let scored = |pos: usize| pos >= first_scored && pos + 1 < n_ctx;
        for group_start in (0..n_chunks).step_by(n_seq) {
            let seqs_here = n_seq.min(n_chunks - group_start);
            ctx.clear_kv_cache();
            for part in 0..batches_per_chunk {
                let pos_start = part * n_batch;
                let part_len = n_batch.min(n_ctx - pos_start);
                batch.clear();
                for seq in 0..seqs_here {
                    let chunk = group_start + seq;
                    let chunk_tokens = &tokens[chunk * n_ctx..(chunk + 1) * n_ctx];
                    for (pos, &token) in chunk_tokens.iter().enumerate().skip(pos_start).take(part_len) {
                        let token = match (pos, bos) {
                            (0, Some(bos)) => bos,
                            _ => LlamaToken(token as i32),
                        };
                        batch.add(token, pos as i32, &[seq as i32], scored(pos))?;
                    }
                }
                ctx.decode(&mut batch).with_context(|| {
                    format!("llama.cpp failed to decode chunk {group_start} (positions from {pos_start})")
                })?;
                // Logits are looked up by batch index; walk the batch in the order it was filled.
                for seq in 0..seqs_here {
                    for pos in (pos_start..pos_start + part_len).filter(|&p| scored(p)) {
                        let batch_index = (seq * part_len + pos - pos_start) as i32;
                        let logits = ctx.get_logits_ith(batch_index);
                        on_logits(LogitsAt { chunk: group_start + seq, position: pos, logits })?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A GGUF's tokenizer alone (llama.cpp `vocab_only` load: no weights are read), so that another engine running the
/// same file sees exactly the tokens llama.cpp would.
pub struct Vocabulary {
    model: LlamaModel,
}

impl Vocabulary {
    pub fn load(path: &Path) -> Result<Vocabulary> {
        ensure!(path.is_file(), "model file {} does not exist", path.display());
        let params = LlamaModelParams::default().with_vocab_only(true);
        let model = LlamaModel::load_from_file(shared_backend()?, path, &params).map_err(|e| {
            anyhow!(
                "llama.cpp could not read the vocabulary of {} ({e}); set TOKBENCH_LLAMA_LOG=1 for why",
                path.display()
            )
        })?;
        Ok(Vocabulary { model })
    }

    /// As [`LoadedModel::tokenize`] of the llama.cpp backend: BOS added where the model asks for it.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        self.model.vocab().tokenize(text.as_bytes(), true, false).into_iter().map(|t| t.0 as u32).collect()
    }

    pub fn detokenize(&self, tokens: &[u32]) -> Result<String> {
        let tokens: Vec<LlamaToken> = tokens.iter().map(|&t| LlamaToken(t as i32)).collect();
        let bytes = self.model.vocab().detokenize(&tokens, true, false);
        String::from_utf8(bytes).map_err(|_| anyhow!("detokenized text is not UTF-8"))
    }

    /// Every end-of-generation token (EOS, EOT, …): suppressed so that runs generate exactly what was asked.
    pub fn end_of_generation(&self) -> Vec<u32> {
        let vocab = self.model.vocab();
        vocab.tokens().filter(|t| vocab.is_eog(*t)).map(|t| t.0 as u32).collect()
    }

    /// The BOS token where the model adds one (perplexity chunks start with it, as llama-perplexity's do).
    pub fn bos(&self) -> Option<u32> {
        let vocab = self.model.vocab();
        vocab.should_add_bos().then(|| vocab.bos().0 as u32)
    }

    pub fn n_vocab(&self) -> usize {
        self.model.n_vocab() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::greedy_pick;

    #[test]
    fn greedy_pick_is_the_first_highest_logit_that_may_be_generated() {
        // 37 logits: two full vectorised chunks and a tail of 5.
        let mut logits: Vec<f32> = (0..37).map(|i| (i % 7) as f32).collect();
        // Highest value 6 first at index 6; ties later (13, 20, …) lose to it, as in llama.cpp's greedy.
        assert_eq!(greedy_pick(&logits, &[]), Some(6));
        // The winner is end-of-generation: the next index holding the maximum wins.
        assert_eq!(greedy_pick(&logits, &[6]), Some(13));
        // A maximum in the tail, past the last full chunk.
        logits[35] = 9.0;
        assert_eq!(greedy_pick(&logits, &[]), Some(35));
        // Every copy of the maximum excluded: the best of the rest.
        assert_eq!(greedy_pick(&logits, &[6, 13, 20, 27, 34, 35]), Some(5));
    }

    #[test]
    fn greedy_pick_with_nothing_left_to_pick_is_none() {
        assert_eq!(greedy_pick(&[], &[]), None);
        assert_eq!(greedy_pick(&[f32::NEG_INFINITY; 20], &[]), None);
        assert_eq!(greedy_pick(&[1.0, 2.0], &[0, 1]), None);
        assert_eq!(greedy_pick(&[f32::NAN, f32::NAN], &[]), None);
        // NaN never wins against a number.
        assert_eq!(greedy_pick(&[f32::NAN, -3.0, f32::NAN], &[]), Some(1));
    }
}
