//! Perplexity exactly as llama.cpp's `llama-perplexity` computes it.
//!
//! The corpus is tokenized once. Chunk `i` is tokens `i*n_ctx .. (i+1)*n_ctx`, evaluated as a fresh sequence whose
//! first token is replaced by BOS when the model adds one. The logits at positions `first_scored ..= n_ctx-2`
//! (`first_scored = n_ctx/2`) predict tokens `first_scored+1 ..= n_ctx-1`, and only those are scored: the first
//! half of each chunk gives every scored token at least `n_ctx/2` tokens of context.
use std::fmt;
use std::ops::Range;

use anyhow::{bail, ensure, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlan {
    pub n_ctx: usize,
    pub n_chunks: usize,
    pub first_scored: usize,
}

impl ChunkPlan {
    pub fn chunk_range(&self, i: usize) -> Range<usize> {
        i * self.n_ctx..(i + 1) * self.n_ctx
    }

    pub fn scored_per_chunk(&self) -> usize {
        self.n_ctx - 1 - self.first_scored
    }

    pub fn tokens_scored(&self) -> usize {
        self.n_chunks * self.scored_per_chunk()
    }
}

/// llama-perplexity's rules: at least `2 * n_ctx` tokens, `n_tokens / n_ctx` chunks (a partial last chunk is dropped),
/// optionally capped.
pub fn chunk_plan(n_tokens: usize, n_ctx: usize, max_chunks: Option<usize>) -> Result<ChunkPlan> {
    ensure!(n_ctx >= 16, "--ctx {n_ctx} is too small: it must be at least 16");
    if n_tokens < 2 * n_ctx {
        bail!(
            "the corpus is {n_tokens} tokens but a context of {n_ctx} needs at least {} (two chunks, as \
             llama-perplexity requires): use a longer corpus or a smaller --ctx",
            2 * n_ctx
        );
    }
    let mut n_chunks = n_tokens / n_ctx;
    if let Some(max) = max_chunks {
        ensure!(max > 0, "--chunks 0 scores nothing: ask for at least 1 chunk");
        n_chunks = n_chunks.min(max);
    }
    Ok(ChunkPlan { n_ctx, n_chunks, first_scored: n_ctx / 2 })
}

/// Log-probability of `target` under softmax(`logits`), and the most likely token. In f64 with the maximum
/// subtracted, as llama.cpp's `log_softmax` does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenLogprob {
    pub logprob_target: f64,
    pub argmax: u32,
    pub logprob_argmax: f64,
}

pub fn log_softmax_at(logits: &[f32], target: usize) -> TokenLogprob {
    let (mut argmax, mut max) = (0usize, f32::NEG_INFINITY);
    for (i, &l) in logits.iter().enumerate() {
        if l > max {
            (argmax, max) = (i, l);
        }
    }
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let log_sum = sum.ln();
    TokenLogprob {
        logprob_target: f64::from(logits[target] - max) - log_sum,
        argmax: argmax as u32,
        logprob_argmax: -log_sum,
    }
}

#[derive(Debug, Clone, Default)]
pub struct PerplexityAccumulator {
    sum_nll: f64,
    sum_nll2: f64,
    count: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Perplexity {
    pub ppl: f64,
    /// What llama-perplexity prints after `+/-`: the standard error of the mean NLL, times PPL.
    pub std_error: f64,
    pub tokens_scored: usize,
    pub mean_nll: f64,
}

impl PerplexityAccumulator {
    pub fn add(&mut self, logprob_target: f64) {
        self.sum_nll -= logprob_target;
        self.sum_nll2 += logprob_target * logprob_target;
        self.count += 1;
    }

    pub fn finish(&self) -> Perplexity {
        let n = self.count as f64;
        let mean_nll = if self.count > 0 { self.sum_nll / n } else { 0.0 };
        let ppl = mean_nll.exp();
        let var = if self.count > 0 { self.sum_nll2 / n - mean_nll * mean_nll } else { 0.0 };
        let std_error = if var > 0.0 && self.count > 1 { (var / (n - 1.0)).sqrt() * ppl } else { 0.0 };
        Perplexity { ppl, std_error, tokens_scored: self.count, mean_nll }
    }
}

impl fmt::Display for Perplexity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PPL = {:.4} +/- {:.5}", self.ppl, self.std_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_and_perplexity_match_a_hand_computed_case() {
        // logits [0, ln 2, ln 3] → probabilities 1/6, 2/6, 3/6.
        let logits = [0.0f32, 2f32.ln(), 3f32.ln()];
        let lp = log_softmax_at(&logits, 0);
        assert!((lp.logprob_target - (1.0f64 / 6.0).ln()).abs() < 1e-6);
        assert_eq!(lp.argmax, 2);
        assert!((lp.logprob_argmax - 0.5f64.ln()).abs() < 1e-6);

        // Targets 2, 1, 2: NLLs ln 2, ln 3, ln 2 → mean (2 ln 2 + ln 3)/3 = ln(12)/3, PPL = 12^(1/3) = 2.2894.
        // mean 0.828302; mean of squares (2·0.480453 + 1.206949)/3 = 0.722618; var = 0.722618 − 0.828302² = 0.036534;
        // se of the mean NLL = sqrt(0.036534/2) = 0.135155; llama.cpp's ± = 0.135155 × 2.289428 = 0.309428.
        let mut acc = PerplexityAccumulator::default();
        for t in [2, 1, 2] {
            acc.add(log_softmax_at(&logits, t).logprob_target);
        }
        let p = acc.finish();
        assert_eq!(p.tokens_scored, 3);
        assert!((p.ppl - 12f64.powf(1.0 / 3.0)).abs() < 1e-5, "{p:?}");
        assert!((p.std_error - 0.309428).abs() < 1e-5, "{p:?}");
        assert_eq!(p.to_string(), format!("PPL = {:.4} +/- {:.5}", p.ppl, p.std_error));
    }

    #[test]
    fn a_certain_model_has_perplexity_one_and_no_error() {
        let mut acc = PerplexityAccumulator::default();
        acc.add(0.0);
        acc.add(0.0);
        let p = acc.finish();
        assert_eq!((p.ppl, p.std_error), (1.0, 0.0));
    }

    #[test]
    fn chunking_follows_llama_perplexity() {
        let plan = chunk_plan(256, 128, None).unwrap();
        assert_eq!((plan.n_chunks, plan.first_scored, plan.scored_per_chunk()), (2, 64, 63));
        assert_eq!(plan.tokens_scored(), 126);
        assert_eq!(plan.chunk_range(1), 128..256);
        assert_eq!(chunk_plan(1000, 128, None).unwrap().n_chunks, 7);
        assert_eq!(chunk_plan(1000, 128, Some(3)).unwrap().n_chunks, 3);
        let e = chunk_plan(255, 128, None).unwrap_err().to_string();
        assert!(e.contains("255 tokens") && e.contains("256") && e.contains("smaller --ctx"), "{e}");
        assert!(chunk_plan(1000, 8, None).unwrap_err().to_string().contains("at least 16"));
        assert!(chunk_plan(1000, 128, Some(0)).unwrap_err().to_string().contains("--chunks 0"));
    }
}
