//! KL-divergence of a model's next-token distribution from a base's, per scored token, and the summary
//! llama-perplexity's `--kl-divergence` prints: mean KLD, its 99th percentile, how often the most likely token is the
//! same, the mean change in the probability of the right token, and ΔPPL.
//!
//! With a top-k base (see [`crate::quality::base_logprobs`]): KL(P‖Q) ≈ Σ_{i∈topk} p_i (ln p_i − ln q_i) +
//! p_rest (ln p_rest − ln q_rest), where p_rest = 1 − Σ_{topk} p_i and q_rest = 1 − Σ_{topk} q_i are the masses
//! outside the base's top-k. A lower bound of the full KL (log-sum inequality), exact when the top-k holds all of P.
use tokbench_record::quality::KldSummary;

use super::base_logprobs::ScoredToken;
use super::perplexity::{log_softmax_at, PerplexityAccumulator};
use crate::stats::percentile;

/// Masses below this are treated as this, so an empty rest bucket does not give ln 0.
const MIN_MASS: f64 = 1e-12;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenKld {
    pub kld: f64,
    /// The current model's most likely token is the base's.
    pub same_top: bool,
    pub p_base_target: f64,
    pub p_current_target: f64,
}

pub fn kl_divergence_topk(base: &ScoredToken, logits: &[f32]) -> TokenKld {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_sum = logits.iter().map(|&l| f64::from(l - max).exp()).sum::<f64>().ln();
    let current = |id: u32| f64::from(logits[id as usize] - max) - log_sum;
    let (mut kld, mut p_top, mut q_top) = (0.0, 0.0, 0.0);
    for &(id, lp) in &base.top {
        let (lp, lq) = (f64::from(lp), current(id));
        let p = lp.exp();
        kld += p * (lp - lq);
        p_top += p;
        q_top += lq.exp();
    }
    let (p_rest, q_rest) = ((1.0 - p_top).max(MIN_MASS), (1.0 - q_top).max(MIN_MASS));
    if 1.0 - p_top > MIN_MASS {
        kld += p_rest * (p_rest.ln() - q_rest.ln());
    }
    let argmax = log_softmax_at(logits, 0).argmax;
    TokenKld {
        // Rounding can leave a hair below 0; NaN (from NaN logits) must stay NaN, which `f64::max` would hide as 0.
        kld: if kld < 0.0 { 0.0 } else { kld },
        same_top: base.top.first().is_some_and(|t| t.0 == argmax),
        p_base_target: f64::from(base.base_logprob_target).exp(),
        p_current_target: current(base.target).exp(),
    }
}

#[derive(Debug, Clone, Default)]
pub struct KldAccumulator {
    klds: Vec<f64>,
    same_top: usize,
    delta_p: f64,
    base_ppl: PerplexityAccumulator,
    current_ppl: PerplexityAccumulator,
}

impl KldAccumulator {
    pub fn add(&mut self, token: TokenKld, current_logprob_target: f64) {
        self.klds.push(token.kld);
        self.same_top += usize::from(token.same_top);
        self.delta_p += token.p_current_target - token.p_base_target;
        self.base_ppl.add(token.p_base_target.ln());
        self.current_ppl.add(current_logprob_target);
    }

    pub fn finish(&self) -> KldSummary {
        let n = self.klds.len();
        let nf = n.max(1) as f64;
        let mean = self.klds.iter().sum::<f64>() / nf;
        let var = if n > 1 { self.klds.iter().map(|k| (k - mean).powi(2)).sum::<f64>() / (nf - 1.0) } else { 0.0 };
        let (base, current) = (self.base_ppl.finish().ppl, self.current_ppl.finish().ppl);
        let pct = |p| if n > 0 { percentile(&self.klds, p) } else { 0.0 };
        KldSummary {
            mean_kld: mean,
            kld_std_error: (var / nf).sqrt(),
            kld_median: pct(50.0),
            kld_p99: pct(99.0),
            kld_max: self.klds.iter().copied().fold(0.0, f64::max),
            same_top_pct: 100.0 * self.same_top as f64 / nf,
            mean_delta_p: 100.0 * self.delta_p / nf,
            ppl_base: base,
            ppl_current: current,
            delta_ppl: current - base,
            ppl_ratio: current / base,
            tokens: n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::base_logprobs::top_k;
    use rand::{Rng, SeedableRng};

    fn base_of(logits: &[f32], k: usize, target: u32) -> ScoredToken {
        ScoredToken {
            target,
            base_logprob_target: log_softmax_at(logits, target as usize).logprob_target as f32,
            top: top_k(logits, k),
        }
    }

    fn full_kl(p_logits: &[f32], q_logits: &[f32]) -> f64 {
        (0..p_logits.len())
            .map(|i| {
                let (lp, lq) = (log_softmax_at(p_logits, i).logprob_target, log_softmax_at(q_logits, i).logprob_target);
                lp.exp() * (lp - lq)
            })
            .sum()
    }

    #[test]
    fn identical_distributions_diverge_by_nothing() {
        let logits = [0.5f32, 2.0, -1.0, 0.0];
        let t = kl_divergence_topk(&base_of(&logits, 2, 1), &logits);
        assert!(t.kld.abs() < 1e-7 && t.same_top, "{t:?}");
        assert!((t.p_base_target - t.p_current_target).abs() < 1e-6);
    }

    #[test]
    fn two_token_vocabulary_by_hand() {
        // Base P = (0.8, 0.2): logits (ln 4, 0). Current Q = (0.5, 0.5). k = 1: top = token 0, rest = token 1,
        // which is the whole distribution, so the result is the exact KL:
        // 0.8 ln(0.8/0.5) + 0.2 ln(0.2/0.5) = 0.8·0.470004 − 0.2·0.916291 = 0.192745.
        let base = base_of(&[4f32.ln(), 0.0], 1, 1);
        let t = kl_divergence_topk(&base, &[0.0, 0.0]);
        assert!((t.kld - 0.192745).abs() < 1e-5, "{t:?}");
        assert!(t.same_top); // ties go to the lower id: token 0 in both
        assert!((t.p_base_target - 0.2).abs() < 1e-6 && (t.p_current_target - 0.5).abs() < 1e-6);
    }

    #[test]
    fn top_k_kld_is_non_negative_and_a_lower_bound_of_the_full_kl() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for _ in 0..50 {
            let p: Vec<f32> = (0..200).map(|_| rng.random_range(-4.0..4.0)).collect();
            let q: Vec<f32> = p.iter().map(|l| l + rng.random_range(-1.0..1.0)).collect();
            let full = full_kl(&p, &q);
            let t = kl_divergence_topk(&base_of(&p, 16, 3), &q);
            assert!(t.kld >= 0.0 && t.kld <= full + 1e-9, "top-k {} vs full {full}", t.kld);
            // With every token in the "top-k", it is the full KL.
            let all = kl_divergence_topk(&base_of(&p, 200, 3), &q);
            assert!((all.kld - full).abs() < 1e-5, "{} vs {full}", all.kld);
        }
    }

    #[test]
    fn nan_logits_give_a_nan_divergence_not_zero() {
        let base = base_of(&[1.0, 0.5, 0.0], 2, 0);
        let t = kl_divergence_topk(&base, &[f32::NAN, 0.5, 0.0]);
        assert!(t.kld.is_nan(), "NaN logits were hidden as {}", t.kld);
    }

    #[test]
    fn the_summary_adds_up() {
        let mut acc = KldAccumulator::default();
        let tok =
            |kld, same, pb: f64, pc: f64| TokenKld { kld, same_top: same, p_base_target: pb, p_current_target: pc };
        acc.add(tok(0.1, true, 0.5, 0.25), 0.25f64.ln());
        acc.add(tok(0.3, false, 0.5, 0.5), 0.5f64.ln());
        let s = acc.finish();
        assert!((s.mean_kld - 0.2).abs() < 1e-12);
        assert_eq!(s.same_top_pct, 50.0);
        assert!((s.mean_delta_p - (-12.5)).abs() < 1e-9);
        assert!((s.ppl_base - 2.0).abs() < 1e-9); // both base NLLs ln 2
        assert!((s.ppl_current - 8f64.sqrt()).abs() < 1e-9); // NLLs ln 4, ln 2 → exp(1.5 ln 2)
        assert!((s.delta_ppl - (8f64.sqrt() - 2.0)).abs() < 1e-9);
        assert!((s.kld_std_error - (0.02f64 / 2.0).sqrt()).abs() < 1e-9); // sample var 0.02, n = 2
        assert_eq!(s.tokens, 2);
    }
}
