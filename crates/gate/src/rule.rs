//! The statistical decision: did one metric change between two sets of samples, and does the change matter?
//!
//! **Evidence.** The shift between baseline samples `x` (m of them) and current samples `y` (n) is estimated with
//! the Hodges–Lehmann estimator, the median of all m·n pairwise differences `y_j − x_i`, and bounded by the exact
//! distribution-free confidence interval that inverts the Mann–Whitney test: `[D(k), D(mn+1−k)]` of the sorted
//! differences, with k the largest integer such that `2·P(U ≤ k−1) ≤ α` under the null distribution of U.
//! Positive metrics (times, rates) are compared on the log scale, so the shift is a ratio, `exp(d) − 1`; metrics that
//! can be zero (RAM deltas) are compared as plain differences, made relative to the baseline median.
//! The change is *significant* when that interval excludes zero (i.e. a two-sided Mann–Whitney test rejects at
//! level ≤ α). No resampling: the same samples always give the same verdict.
//!
//! **Effect.** The change is *material* when the point estimate is at least the metric's relative threshold (and,
//! where set, an absolute floor in the metric's unit).
//!
//! **Verdict.** significant ∧ material ∧ worse → regressed; significant ∧ material ∧ better → improved; material but
//! not significant → inconclusive; anything else → unchanged. With too few samples for any interval at level α
//! (at the default α = 0.02: fewer than 5 + 4 runs) the verdict is inconclusive.
//!
//! With independent runs the rule's false-alarm rate per metric is at most α/2, whatever the noise's shape: the
//! interval is distribution-free. Drift between sessions (a busier machine) is not independent noise; that is what
//! `--confirm` (a fresh session) is for.
use serde::{Deserialize, Serialize};
use tokbench_record::metric::Better;

/// What a comparison concluded about one metric of one benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Regressed,
    Inconclusive,
    Improved,
    Unchanged,
    New,
    Missing,
}

impl Verdict {
    pub const ALL: [Verdict; 6] = [
        Verdict::Regressed,
        Verdict::Inconclusive,
        Verdict::Improved,
        Verdict::Unchanged,
        Verdict::New,
        Verdict::Missing,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Verdict::Regressed => "regressed",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Improved => "improved",
            Verdict::Unchanged => "unchanged",
            Verdict::New => "new",
            Verdict::Missing => "missing",
        }
    }

    pub fn emoji(self) -> &'static str {
        match self {
            Verdict::Regressed => "🔴",
            Verdict::Inconclusive => "🟡",
            Verdict::Improved => "🟢",
            Verdict::Unchanged => "⚪",
            Verdict::New => "🆕",
            Verdict::Missing => "⚫",
        }
    }
}

/// How to measure a shift: as a ratio (log scale, values must be positive) or as a difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    Ratio,
    Difference,
}

/// How large a change must be to matter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Relative change, e.g. 0.05 for 5%.
    pub rel: f64,
    /// Absolute floor in the metric's unit (0 = none); needed where the baseline can be near zero.
    pub abs: f64,
}

/// The rule's output for one metric: the change, its interval and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub verdict: Verdict,
    pub scale: Scale,
    /// Relative change of current vs baseline (+0.1 = 10% larger), None when the baseline median is 0.
    pub rel_change: Option<f64>,
    pub rel_low: Option<f64>,
    pub rel_high: Option<f64>,
    /// The Hodges–Lehmann shift and its interval in the metric's unit (current − baseline), for the difference scale
    /// and, converted at the baseline median, for the ratio scale.
    pub abs_change: f64,
    pub abs_low: f64,
    pub abs_high: f64,
    /// Coverage the exact interval actually has (≥ 1 − α); 0 when no interval was possible.
    pub confidence: f64,
    pub significant: bool,
    pub material: bool,
    pub baseline_median: f64,
    pub current_median: f64,
    pub n_baseline: usize,
    pub n_current: usize,
}

/// Judges `current` against `baseline` for a metric where `better` is the good direction.
pub fn judge(baseline: &[f64], current: &[f64], better: Better, threshold: Threshold, alpha: f64) -> Judgement {
    let base_med = tokbench_record::summary::median(baseline);
    let cur_med = tokbench_record::summary::median(current);
    let positive = baseline.iter().chain(current).all(|&v| v > 0.0);
    let scale = if positive { Scale::Ratio } else { Scale::Difference };
    let map = |v: f64| if scale == Scale::Ratio { v.ln() } else { v };

    let mut diffs = Vec::with_capacity(baseline.len() * current.len());
    for &y in current {
        for &x in baseline {
            diffs.push(map(y) - map(x));
        }
    }
    diffs.sort_by(f64::total_cmp);
    let est = tokbench_record::summary::median(&diffs);
    let k = mann_whitney_k(baseline.len(), current.len(), alpha);
    let interval = k.map(|(k, coverage)| (diffs[k - 1], diffs[diffs.len() - k], coverage));
    conclude(Shift { scale, est, interval }, better, threshold, base_med, cur_med, (baseline.len(), current.len()))
}

/// Judges paired samples: `baseline[i]` and `current[i]` were measured in the same round of an A/B run (one
/// generation of each build, in random order), so whatever drifts slower than a round — the machine getting busier,
/// a clock stepping down — moves both alike and cancels in their difference.
///
/// **Evidence.** `d_i = ln(current_i) − ln(baseline_i)` (plain differences where a value can be 0). The shift is the
/// Hodges–Lehmann estimator of the paired differences, the median of the n(n+1)/2 Walsh averages `(d_i + d_j)/2`,
/// `i ≤ j`; its interval `[W(k), W(N+1−k)]` inverts the Wilcoxon signed-rank test, k the largest integer with
/// `2·P(T ≤ k−1) ≤ α` under T's exact null distribution. Effect and verdict as in [`judge`].
///
/// The random order within each round is what makes this valid: whichever side runs second in a round gains or
/// loses the same on average, so with nothing changed each `d_i` is symmetric about 0, the signed-rank test's only
/// assumption, and the false-alarm rate per metric is at most α/2. Unpaired extras (a side that failed mid-way) are
/// dropped.
pub fn judge_paired(baseline: &[f64], current: &[f64], better: Better, threshold: Threshold, alpha: f64) -> Judgement {
    let n = baseline.len().min(current.len());
    let (baseline, current) = (&baseline[..n], &current[..n]);
    let positive = baseline.iter().chain(current).all(|&v| v > 0.0);
    let scale = if positive { Scale::Ratio } else { Scale::Difference };
    let map = |v: f64| if scale == Scale::Ratio { v.ln() } else { v };
    let d: Vec<f64> = baseline.iter().zip(current).map(|(&x, &y)| map(y) - map(x)).collect();
    let mut walsh = Vec::with_capacity(n * (n + 1) / 2);
    for i in 0..n {
        for j in i..n {
            walsh.push((d[i] + d[j]) / 2.0);
        }
    }
    walsh.sort_by(f64::total_cmp);
    let est = if walsh.is_empty() { 0.0 } else { tokbench_record::summary::median(&walsh) };
    let interval = signed_rank_k(n, alpha).map(|(k, coverage)| (walsh[k - 1], walsh[walsh.len() - k], coverage));
    let (base_med, cur_med) = (tokbench_record::summary::median(baseline), tokbench_record::summary::median(current));
    conclude(Shift { scale, est, interval }, better, threshold, base_med, cur_med, (n, n))
}

/// A shift on the rule's scale (log for ratios): the estimate and, when the sample sizes allow one at level α,
/// its exact interval and that interval's coverage.
struct Shift {
    scale: Scale,
    est: f64,
    interval: Option<(f64, f64, f64)>,
}

/// Effect and verdict, shared by the unpaired and the paired rule.
fn conclude(
    shift: Shift,
    better: Better,
    threshold: Threshold,
    base_med: f64,
    cur_med: f64,
    (n_baseline, n_current): (usize, usize),
) -> Judgement {
    let Shift { scale, est, interval } = shift;
    let (lo, hi, confidence) = interval.unwrap_or((f64::NEG_INFINITY, f64::INFINITY, 0.0));
    let significant = interval.is_some() && (lo > 0.0 || hi < 0.0);
    let (rel, abs) = match scale {
        Scale::Ratio => {
            let r = |d: f64| d.exp_m1();
            ((Some(r(est)), Some(r(lo)), Some(r(hi))), (r(est) * base_med, r(lo) * base_med, r(hi) * base_med))
        }
        Scale::Difference => {
            let r = |d: f64| (base_med != 0.0).then(|| d / base_med.abs());
            ((r(est), r(lo), r(hi)), (est, lo, hi))
        }
    };
    let material = rel.0.is_none_or(|r| r.abs() >= threshold.rel) && abs.0.abs() >= threshold.abs && est != 0.0;
    let worse = match better {
        Better::Higher => est < 0.0,
        Better::Lower => est > 0.0,
    };
    let verdict = match (interval.is_some(), significant, material) {
        (false, _, _) => Verdict::Inconclusive,
        (true, true, true) if worse => Verdict::Regressed,
        (true, true, true) => Verdict::Improved,
        (true, false, true) => Verdict::Inconclusive,
        _ => Verdict::Unchanged,
    };
    Judgement {
        verdict,
        scale,
        rel_change: rel.0,
        rel_low: rel.1,
        rel_high: rel.2,
        abs_change: abs.0,
        abs_low: abs.1,
        abs_high: abs.2,
        confidence,
        significant,
        material,
        baseline_median: base_med,
        current_median: cur_med,
        n_baseline,
        n_current,
    }
}

/// Judges a deterministic value (perplexity, KLD: the same on every run of the same build on one machine), where
/// there is no noise to test against: regressed or improved when the change is beyond the threshold, else unchanged.
pub fn judge_deterministic(baseline: f64, current: f64, better: Better, threshold: Threshold) -> Judgement {
    let est = current - baseline;
    let rel = (baseline != 0.0).then(|| est / baseline.abs());
    let material = rel.is_none_or(|r| r.abs() >= threshold.rel) && est.abs() >= threshold.abs && est != 0.0;
    let worse = match better {
        Better::Higher => est < 0.0,
        Better::Lower => est > 0.0,
    };
    let verdict = match (material, worse) {
        (true, true) => Verdict::Regressed,
        (true, false) => Verdict::Improved,
        _ => Verdict::Unchanged,
    };
    Judgement {
        verdict,
        scale: Scale::Difference,
        rel_change: rel,
        rel_low: rel,
        rel_high: rel,
        abs_change: est,
        abs_low: est,
        abs_high: est,
        confidence: 1.0,
        significant: est != 0.0,
        material,
        baseline_median: baseline,
        current_median: current,
        n_baseline: 1,
        n_current: 1,
    }
}

/// The order statistic k (1-based) of the exact Mann–Whitney shift interval and its actual coverage, or None when
/// the sample sizes cannot reach level α at all.
pub fn mann_whitney_k(m: usize, n: usize, alpha: f64) -> Option<(usize, f64)> {
    type Cache = std::collections::HashMap<(usize, usize, u64), Option<(usize, f64)>>;
    thread_local! {
        // Every benchmark × metric of a run has the same sizes; the exact distribution is worth computing once.
        static CACHE: std::cell::RefCell<Cache> = Default::default();
    }
    let key = (m, n, alpha.to_bits());
    if let Some(hit) = CACHE.with(|c| c.borrow().get(&key).copied()) {
        return hit;
    }
    let k = mann_whitney_k_uncached(m, n, alpha);
    CACHE.with(|c| c.borrow_mut().insert(key, k));
    k
}

fn mann_whitney_k_uncached(m: usize, n: usize, alpha: f64) -> Option<(usize, f64)> {
    if m == 0 || n == 0 {
        return None;
    }
    // Largest k with 2·P(U ≤ k−1) ≤ α; the interval [D(k), D(mn+1−k)] then has coverage 1 − 2·P(U ≤ k−1).
    largest_k(&u_cdf(m, n), (m * n).div_ceil(2), alpha)
}

/// The order statistic k (1-based) of the exact signed-rank interval for n pairs at level α, and its coverage; None
/// when n pairs cannot reach α (at α = 0.02: fewer than 7).
pub fn signed_rank_k(n: usize, alpha: f64) -> Option<(usize, f64)> {
    if n == 0 {
        return None;
    }
    largest_k(&signed_rank_cdf(n), (n * (n + 1) / 2).div_ceil(2), alpha)
}

/// The largest order statistic k ≤ `max_k` whose two-sided tail `2·cdf[k−1]` is within α, with the interval's
/// coverage `1 − 2·cdf[k−1]`; None when even k = 1 is not.
fn largest_k(cdf: &[f64], max_k: usize, alpha: f64) -> Option<(usize, f64)> {
    (1..=max_k).map_while(|k| (2.0 * cdf[k - 1] <= alpha).then(|| (k, 1.0 - 2.0 * cdf[k - 1]))).last()
}

/// Cumulative null distribution of the Wilcoxon signed-rank statistic T (the sum of the ranks of the positive
/// differences) for n pairs: `cdf[t] = P(T ≤ t)`, every one of the 2^n sign patterns equally likely. Exact (counting
/// the subsets of {1..n} with each sum) up to 300 pairs; the normal approximation beyond.
fn signed_rank_cdf(n: usize) -> Vec<f64> {
    let max_t = n * (n + 1) / 2;
    if n > 300 {
        let mu = max_t as f64 / 2.0;
        let sd = ((n * (n + 1) * (2 * n + 1)) as f64 / 24.0).sqrt();
        return (0..=max_t).map(|t| normal_cdf((t as f64 + 0.5 - mu) / sd)).collect();
    }
    let mut counts = vec![0.0f64; max_t + 1];
    counts[0] = 1.0;
    for rank in 1..=n {
        for t in (rank..=max_t).rev() {
            counts[t] += counts[t - rank];
        }
    }
    cumulative(&counts)
}

/// Cumulative null distribution of the Mann–Whitney U statistic for sizes m, n: `cdf[u] = P(U ≤ u)`. Exact (by the
/// recurrence over the largest observation) up to 2,500 pairs; the normal approximation with continuity correction
/// beyond, where it is accurate.
fn u_cdf(m: usize, n: usize) -> Vec<f64> {
    let max_u = m * n;
    if max_u > 2_500 {
        let mu = max_u as f64 / 2.0;
        let sd = ((m * n * (m + n + 1)) as f64 / 12.0).sqrt();
        return (0..=max_u).map(|u| normal_cdf((u as f64 + 0.5 - mu) / sd)).collect();
    }
    // counts[i][j][u]: arrangements of i x's and j y's with U = u. Built row by row over i, keeping j × u tables.
    // f(i, j, u) = f(i−1, j, u − j) + f(i, j−1, u): the largest value is either an x (beating all j y's) or a y.
    let mut prev: Vec<Vec<f64>> = (0..=n).map(|_| vec![1.0]).collect(); // i = 0: U is 0 for any j
    for i in 1..=m {
        let mut cur: Vec<Vec<f64>> = Vec::with_capacity(n + 1);
        cur.push(vec![1.0]); // j = 0: U is 0
        for j in 1..=n {
            let mut row = vec![0.0; i * j + 1];
            for (u, slot) in row.iter_mut().enumerate() {
                let from_x = if u >= j { prev[j].get(u - j).copied().unwrap_or(0.0) } else { 0.0 };
                let from_y = cur[j - 1].get(u).copied().unwrap_or(0.0);
                *slot = from_x + from_y;
            }
            cur.push(row);
        }
        prev = cur;
    }
    cumulative(&prev[n])
}

/// The cumulative distribution of equally likely arrangements counted per statistic value: `cdf[u] = P(S ≤ u)`.
fn cumulative(counts: &[f64]) -> Vec<f64> {
    let total: f64 = counts.iter().sum();
    let mut acc = 0.0;
    counts
        .iter()
        .map(|c| {
            acc += c;
            acc / total
        })
        .collect()
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' erfcc, |error| < 1.2e-7), enough for a tail probability.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_quality_values_are_judged_by_their_change_alone() {
        let t = Threshold { rel: 0.005, abs: 0.0 };
        // PPL 30.24 → 30.40 is +0.53%: regressed (lower is better); → 30.30 (+0.2%) unchanged; → 30.0 improved.
        let j = judge_deterministic(30.24, 30.40, Better::Lower, t);
        assert_eq!(j.verdict, Verdict::Regressed);
        assert!((j.rel_change.unwrap() - 0.16 / 30.24).abs() < 1e-12 && j.confidence == 1.0);
        assert_eq!(judge_deterministic(30.24, 30.30, Better::Lower, t).verdict, Verdict::Unchanged);
        assert_eq!(judge_deterministic(30.24, 30.0, Better::Lower, t).verdict, Verdict::Improved);
        assert_eq!(judge_deterministic(30.24, 30.24, Better::Lower, t).verdict, Verdict::Unchanged);
        // A KLD base's own KLD is 0: only the absolute floor can judge a change from it.
        let kld = Threshold { rel: 0.10, abs: 0.001 };
        assert_eq!(judge_deterministic(0.0, 0.0005, Better::Lower, kld).verdict, Verdict::Unchanged);
        assert_eq!(judge_deterministic(0.0, 0.002, Better::Lower, kld).verdict, Verdict::Regressed);
    }

    const T5: Threshold = Threshold { rel: 0.05, abs: 0.0 };

    #[test]
    fn exact_u_distribution_matches_tables() {
        // m = n = 5: C(10, 5) = 252 arrangements; U = 0, 1 have 1 each, U = 2 has 2, U = 3 has 3.
        let cdf = u_cdf(5, 5);
        assert_eq!(cdf.len(), 26);
        assert!((cdf[0] - 1.0 / 252.0).abs() < 1e-12);
        assert!((cdf[2] - 4.0 / 252.0).abs() < 1e-12);
        assert!((cdf[3] - 7.0 / 252.0).abs() < 1e-12);
        assert!((cdf[25] - 1.0).abs() < 1e-12);
        // Symmetric: P(U ≤ u) = P(U ≥ mn − u).
        assert!((cdf[10] - (1.0 - cdf[14])).abs() < 1e-12);
        // Unequal sizes: m = 2, n = 3 → 10 arrangements, U = 0 once.
        assert!((u_cdf(2, 3)[0] - 0.1).abs() < 1e-12);
    }

    #[test]
    fn interval_order_statistic() {
        // 5 vs 5 at α = 0.05: 2·P(U ≤ 2) = 8/252 ≈ 0.032 ≤ 0.05 < 2·P(U ≤ 3) = 14/252 → k = 3, coverage ≈ 0.968.
        let (k, cov) = mann_whitney_k(5, 5, 0.05).unwrap();
        assert_eq!(k, 3);
        assert!((cov - (1.0 - 8.0 / 252.0)).abs() < 1e-12);
        // 3 vs 3: the smallest two-sided level is 2/20 = 0.1 > 0.05 → no interval.
        assert_eq!(mann_whitney_k(3, 3, 0.05), None);
        assert_eq!(mann_whitney_k(0, 5, 0.05), None);
        // Large samples use the normal approximation: k near mn/2 − 1.96·sd.
        let (k, cov) = mann_whitney_k(60, 60, 0.05).unwrap();
        let sd = (60.0 * 60.0 * 121.0 / 12.0f64).sqrt();
        assert!((k as f64 - (1800.0 - 1.96 * sd)).abs() < 3.0, "k = {k}");
        assert!(cov >= 0.95);
    }

    #[test]
    fn clear_slowdown_regresses_and_speedup_improves() {
        let base = [100.0, 101.0, 99.0, 100.5, 99.5];
        let slow: Vec<f64> = base.iter().map(|v| v * 0.88).collect();
        let j = judge(&base, &slow, Better::Higher, T5, 0.05);
        assert_eq!(j.verdict, Verdict::Regressed);
        assert!((j.rel_change.unwrap() + 0.12).abs() < 1e-9, "{j:?}");
        assert!(j.rel_low.unwrap() < -0.12 && j.rel_high.unwrap() > -0.13 && j.rel_high.unwrap() < 0.0);
        // The same change on a lower-is-better metric is an improvement.
        assert_eq!(judge(&base, &slow, Better::Lower, T5, 0.05).verdict, Verdict::Improved);
    }

    #[test]
    fn significant_but_small_is_unchanged_and_large_but_noisy_is_inconclusive() {
        let base = [100.0, 100.2, 99.8, 100.1, 99.9];
        let small: Vec<f64> = base.iter().map(|v| v * 0.98).collect();
        let j = judge(&base, &small, Better::Higher, T5, 0.05);
        assert!(j.significant && !j.material);
        assert_eq!(j.verdict, Verdict::Unchanged);
        // Median drops ~10% but the samples overlap heavily.
        let noisy_base = [100.0, 60.0, 140.0, 95.0, 105.0];
        let noisy_cur = [90.0, 55.0, 130.0, 85.0, 150.0];
        let j = judge(&noisy_base, &noisy_cur, Better::Higher, T5, 0.05);
        assert!(!j.significant && j.material, "{j:?}");
        assert_eq!(j.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn too_few_samples_are_inconclusive_never_regressed() {
        let j = judge(&[100.0, 100.0], &[50.0, 50.0], Better::Higher, T5, 0.05);
        assert_eq!(j.verdict, Verdict::Inconclusive);
        assert!(!j.significant);
    }

    #[test]
    fn zero_heavy_ram_uses_differences_and_the_absolute_floor() {
        let t = Threshold { rel: 0.05, abs: 1024.0 * 1024.0 };
        // Real shape: mostly 0, one page-fault spike. A single spike is not evidence.
        let j = judge(&[577_536.0, 0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 4096.0, 0.0, 0.0], Better::Lower, t, 0.05);
        assert_eq!(j.scale, Scale::Difference);
        assert_eq!(j.verdict, Verdict::Unchanged);
        // Every run now needs 64 MiB more: a regression even though the baseline median is 0 (relative undefined).
        let mib = 1024.0 * 1024.0;
        let j = judge(&[0.0; 5], &[64.0 * mib, 65.0 * mib, 64.0 * mib, 66.0 * mib, 64.0 * mib], Better::Lower, t, 0.05);
        assert_eq!(j.verdict, Verdict::Regressed);
        assert_eq!(j.rel_change, None);
        assert_eq!(j.abs_change, 64.0 * mib);
        // Significant but under the floor: unchanged.
        let j = judge(&[0.0; 5], &[4096.0; 5], Better::Lower, t, 0.05);
        assert!(j.significant);
        assert_eq!(j.verdict, Verdict::Unchanged);
    }

    #[test]
    fn identical_samples_are_unchanged() {
        let xs = [5.0; 5];
        assert_eq!(judge(&xs, &xs, Better::Lower, T5, 0.05).verdict, Verdict::Unchanged);
    }

    #[test]
    fn signed_rank_distribution_and_interval_order_statistic() {
        // n = 3: 8 sign patterns; T = 0, 1, 2 once each, T = 3 twice ({3}, {1,2}).
        let cdf = signed_rank_cdf(3);
        assert_eq!(cdf.len(), 7);
        assert!((cdf[0] - 1.0 / 8.0).abs() < 1e-12 && (cdf[3] - 5.0 / 8.0).abs() < 1e-12);
        // n = 7 at α = 0.02: only "all the same sign" (2·1/128 ≈ 0.016) is extreme enough → k = 1.
        let (k, cov) = signed_rank_k(7, 0.02).unwrap();
        assert_eq!(k, 1);
        assert!((cov - (1.0 - 2.0 / 128.0)).abs() < 1e-12);
        // n = 6 cannot reach 0.02 (2/64 ≈ 0.031); n = 10: P(T ≤ 5) = 10/1024 → k = 6.
        assert_eq!(signed_rank_k(6, 0.02), None);
        assert_eq!(signed_rank_k(10, 0.02).unwrap().0, 6);
    }

    #[test]
    fn paired_rounds_see_through_drift_that_fools_the_unpaired_rule() {
        // The machine slows by 30% over the run, both builds alike; head is 10% slower in every round.
        let drift: Vec<f64> = (0..7).map(|i| 1.0 - 0.05 * i as f64).collect();
        let base: Vec<f64> = drift.iter().map(|d| 100.0 * d).collect();
        let head: Vec<f64> = drift.iter().map(|d| 90.0 * d).collect();
        let paired = judge_paired(&base, &head, Better::Higher, T5, 0.02);
        assert_eq!(paired.verdict, Verdict::Regressed, "{paired:?}");
        assert!((paired.rel_change.unwrap() + 0.10).abs() < 1e-9);
        // Unpaired, the drift swamps the 10%: the two sets overlap.
        assert_eq!(judge(&base, &head, Better::Higher, T5, 0.02).verdict, Verdict::Inconclusive);
        // Identical builds under the same drift: unchanged, whatever the drift.
        let same = judge_paired(&base, &base, Better::Higher, T5, 0.02);
        assert_eq!(same.verdict, Verdict::Unchanged);
        // Mixed signs are not significant: one round where head was faster.
        let mut mixed = head.clone();
        mixed[3] = base[3] * 1.01;
        assert!(!judge_paired(&base, &mixed, Better::Higher, T5, 0.02).significant);
        // Six pairs cannot reach α = 0.02.
        assert_eq!(judge_paired(&base[..6], &head[..6], Better::Higher, T5, 0.02).verdict, Verdict::Inconclusive);
    }

    #[test]
    fn erfc_is_accurate_enough() {
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(-3.0) - 0.001_349_9).abs() < 1e-6);
    }
}
