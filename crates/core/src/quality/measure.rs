//! A perplexity pass over a corpus through any backend, and the record it leaves in the results.
//!
//! Definitions (as llama.cpp's `llama-perplexity`): the corpus is tokenized once (with the model's BOS), split into
//! `n_ctx`-token chunks; each chunk is a fresh sequence whose first token becomes BOS; the second half of each
//! chunk is scored. `eval tokens/s` = chunks × n_ctx / wall time of the scoring pass (from the backend's scoring
//! call to its return: context creation, batched decoding and our log-softmax per scored token included; corpus
//! reading and tokenization excluded).
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context, Result};

use super::base_logprobs::{top_k, BaseHeader, BaseLogprobs, BaseLogprobsWriter, ScoredToken};
use super::kld::{kl_divergence_topk, KldAccumulator};
use super::perplexity::{chunk_plan, log_softmax_at, PerplexityAccumulator};
use crate::backend::{LoadedModel, ScoringRequest};
use crate::digest::sha256_file;
use tokbench_record::quality::{CorpusInfo, KldVsBase, QualityResult};

/// What a perplexity pass was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityOptions {
    pub corpus: PathBuf,
    pub n_ctx: usize,
    pub max_chunks: Option<usize>,
    /// Save this model's top-k log-probabilities as the base for later KL-divergence runs.
    pub save_base: Option<PathBuf>,
    /// Score KL-divergence against a saved base.
    pub kld_base: Option<PathBuf>,
    pub top_k: usize,
}

/// Reads a corpus, rejecting what cannot be scored with a message that names the file and the fix.
pub fn read_corpus(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| {
        format!("cannot read the corpus {}: pass an existing text file to --corpus", path.display())
    })?;
    ensure!(!bytes.is_empty(), "the corpus {} is empty: give it some text to score", path.display());
    String::from_utf8(bytes).map_err(|e| {
        anyhow!(
            "the corpus {} is not UTF-8 text (invalid byte at offset {}): convert it to UTF-8 first",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// Scores `options.corpus` with `model` (tokenizing it once), saving and/or comparing against a KLD base.
pub fn score_corpus(
    model: &mut dyn LoadedModel,
    model_file: &Path,
    engine: &str,
    options: &QualityOptions,
) -> Result<QualityResult> {
    let text = read_corpus(&options.corpus)?;
    let tokens = model.tokenize(&text)?;
    if let Some(train) = model.details().n_ctx_train {
        ensure!(
            options.n_ctx <= train as usize,
            "--ctx {} is larger than the {train} tokens this model was trained with: lower --ctx",
            options.n_ctx
        );
    }
    let plan = chunk_plan(tokens.len(), options.n_ctx, options.max_chunks)
        .with_context(|| format!("cannot score the corpus {}", options.corpus.display()))?;
    let n_vocab = model.details().n_vocab.map(|v| v as usize);
    let corpus = CorpusInfo {
        file_name: file_name(&options.corpus),
        sha256: sha256_file(&options.corpus, |_| {})?,
        bytes: text.len() as u64,
        tokens: tokens.len(),
    };
    let base = match &options.kld_base {
        Some(path) => {
            let base = BaseLogprobs::read(path)?;
            base.check_compatible(n_vocab.unwrap_or(0) as u32, plan.n_ctx as u32, plan.n_chunks as u32)?;
            Some(base)
        }
        None => None,
    };
    let mut writer = match &options.save_base {
        Some(path) => Some(BaseLogprobsWriter::create(
            path,
            BaseHeader {
                model_file: file_name(model_file),
                model_sha256: sha256_file(model_file, |_| {})?,
                corpus_file: corpus.file_name.clone(),
                corpus_sha256: corpus.sha256.clone(),
                engine: engine.to_string(),
            },
            n_vocab.ok_or_else(|| anyhow!("the backend does not report its vocabulary size"))? as u32,
            options.top_k as u32,
            &plan,
        )?),
        None => None,
    };

    let mut ppl = PerplexityAccumulator::default();
    let mut kld = KldAccumulator::default();
    let mut scored = 0usize;
    let request =
        ScoringRequest { tokens: &tokens, n_ctx: plan.n_ctx, n_chunks: plan.n_chunks, first_scored: plan.first_scored };
    let started = Instant::now();
    model.score_chunks(&request, &mut |at| {
        let target = tokens[at.chunk * plan.n_ctx + at.position + 1];
        let lp = log_softmax_at(at.logits, target as usize);
        if let Some(base) = &base {
            let record = base
                .records
                .get(scored)
                .ok_or_else(|| anyhow!("the KLD base holds fewer scored tokens than this run"))?;
            if record.target != target {
                bail!(
                    "scored token {scored} is {target} here but {} in the KLD base: the base was made from another \
                     corpus or tokenizer; make it again with --save-base on this corpus",
                    record.target
                );
            }
            kld.add(kl_divergence_topk(record, at.logits), lp.logprob_target);
        }
        ppl.add(lp.logprob_target);
        if let Some(w) = writer.as_mut() {
            w.push(&ScoredToken {
                target,
                base_logprob_target: lp.logprob_target as f32,
                top: top_k(at.logits, options.top_k),
            })?;
        }
        scored += 1;
        Ok(())
    })?;
    let eval_seconds = started.elapsed().as_secs_f64();
    ensure!(
        scored == plan.tokens_scored(),
        "the backend scored {scored} tokens, not the {} planned",
        plan.tokens_scored()
    );
    if let Some(w) = writer {
        w.finish()?;
    }
    let summary = ppl.finish();
    ensure!(
        summary.ppl.is_finite(),
        "the perplexity of {} is {} (not a number a gate can compare): the model produced non-finite logits — a \
         damaged file or a broken quantization; check it with `tokbench perplexity --model {}`",
        model_file.display(),
        summary.ppl,
        model_file.display()
    );
    let eval_tokens = plan.n_chunks * plan.n_ctx;
    let kld = match base {
        Some(base) => {
            let summary = kld.finish();
            ensure!(
                summary.mean_kld.is_finite(),
                "the KL-divergence of {} from {} is {}: the model produced non-finite logits — a damaged file or a \
                 broken quantization",
                model_file.display(),
                base.header.model_file,
                summary.mean_kld
            );
            Some(KldVsBase { base_model: base.header.model_file.clone(), top_k: base.k as usize, summary })
        }
        None => None,
    };
    Ok(QualityResult {
        corpus,
        n_ctx: plan.n_ctx,
        n_chunks: plan.n_chunks,
        tokens_scored: summary.tokens_scored,
        ppl: summary.ppl,
        ppl_std_error: summary.std_error,
        eval_tokens,
        eval_seconds,
        eval_tps: eval_tokens as f64 / eval_seconds,
        kld,
    })
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{GenerationRequest, LogitsAt, ModelDetails};
    use crate::metrics::TraceRecorder;

    /// A byte-level "model" whose logits are all `logit`: NaN stands for a damaged file.
    struct Constant {
        logit: f32,
    }

    impl LoadedModel for Constant {
        fn details(&self) -> ModelDetails {
            ModelDetails { n_ctx_train: Some(64), n_vocab: Some(256), ..ModelDetails::default() }
        }
        fn context_size(&self) -> usize {
            64
        }
        fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
            Ok(text.bytes().map(u32::from).collect())
        }
        fn detokenize(&self, tokens: &[u32]) -> Result<String> {
            Ok(tokens.iter().map(|&t| t as u8 as char).collect())
        }
        fn generate(&mut self, _: &GenerationRequest<'_>, _: &mut TraceRecorder) -> Result<()> {
            bail!("not for generation")
        }
        fn score_chunks(
            &mut self,
            request: &ScoringRequest<'_>,
            on_logits: &mut dyn FnMut(LogitsAt<'_>) -> Result<()>,
        ) -> Result<()> {
            let logits = vec![self.logit; 256];
            for chunk in 0..request.n_chunks {
                for position in request.first_scored..request.n_ctx - 1 {
                    on_logits(LogitsAt { chunk, position, logits: &logits })?;
                }
            }
            Ok(())
        }
    }

    #[test]
    fn a_non_finite_perplexity_is_an_error_naming_the_model_not_a_number_in_the_results() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = dir.path().join("corpus.txt");
        std::fs::write(&corpus, "the quick brown fox jumps over the lazy dog. ".repeat(8)).unwrap();
        let options = QualityOptions { corpus, n_ctx: 32, max_chunks: None, save_base: None, kld_base: None, top_k: 8 };
        let model_file = Path::new("broken-Q4_K_M.gguf");
        // Uniform logits: PPL is the vocabulary size, exactly.
        let ok = score_corpus(&mut Constant { logit: 0.0 }, model_file, "test", &options).unwrap();
        assert!((ok.ppl - 256.0).abs() < 1e-6, "{}", ok.ppl);
        let e = score_corpus(&mut Constant { logit: f32::NAN }, model_file, "test", &options).unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("perplexity of broken-Q4_K_M.gguf is NaN") && e.contains("non-finite logits"), "{e}");
    }
}
