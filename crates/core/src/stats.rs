//! Summary statistics for repeated measurements: mean, spread, a bootstrap confidence interval of the mean, robust
//! outlier counting, and the warnings a user should see when a result is too noisy to trust.
//!
//! Everything here is deterministic: the bootstrap uses a fixed-seed ChaCha8 generator, so the same samples always
//! give the same interval (results files can be diffed, CI gates do not flap on resampling noise).
use std::fmt;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokbench_record::summary::percentile_sorted;
pub use tokbench_record::summary::{median, percentile, Summary};

pub const BOOTSTRAP_RESAMPLES: usize = 10_000;
/// "tokbench" in ASCII. Fixed so that a summary is a pure function of its samples.
pub const BOOTSTRAP_SEED: u64 = 0x746F_6B62_656E_6368;

/// Iglewicz & Hoaglin's recommended cut-off for the modified z-score.
const OUTLIER_Z: f64 = 3.5;
/// Φ⁻¹(0.75): turns a MAD into a standard-deviation estimate for normal data.
const MAD_TO_Z: f64 = 0.6745;
/// √(π/2): turns a mean absolute deviation into a standard-deviation estimate for normal data.
const MEAN_AD_TO_SIGMA: f64 = 1.253_314;

/// Summarizes `samples`. None for an empty slice or any non-finite sample (a NaN or ∞ means the measurement itself
/// failed; averaging it away would hide that).
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() || samples.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mean = mean(samples);
    let std = sample_std(samples);
    let cv = if mean == 0.0 { 0.0 } else { std / mean.abs() };
    let (ci95_low, ci95_high) = bootstrap_ci(samples, self::mean, 0.95, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED);
    Some(Summary {
        n: samples.len(),
        mean,
        std,
        median: percentile_sorted(&sorted, 50.0),
        min: sorted[0],
        max: sorted[sorted.len() - 1],
        cv,
        ci95_low,
        ci95_high,
        outliers: count_outliers(samples),
    })
}

/// Arithmetic mean; NaN for an empty slice.
pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample standard deviation (n − 1 denominator); 0 for fewer than two samples.
pub fn sample_std(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    // Two passes: subtracting the mean first avoids the cancellation of the sum-of-squares formula.
    let m = mean(xs);
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    (ss / (xs.len() - 1) as f64).sqrt()
}

/// Percentile bootstrap: resample `xs` with replacement `resamples` times using ChaCha8Rng seeded with `seed`, apply
/// `statistic` to each resample, and return the (α/2, 1 − α/2) percentiles of the statistic, α = 1 − `confidence`.
/// Deterministic for a given seed. (NaN, NaN) for an empty slice or zero resamples.
///
/// # Panics
/// If `confidence` is not strictly between 0 and 1.
pub fn bootstrap_ci(
    xs: &[f64],
    statistic: impl Fn(&[f64]) -> f64,
    confidence: f64,
    resamples: usize,
    seed: u64,
) -> (f64, f64) {
    assert!(confidence > 0.0 && confidence < 1.0, "confidence must be in (0, 1), got {confidence}");
    if xs.is_empty() || resamples == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut resample = vec![0.0; xs.len()];
    let mut stats: Vec<f64> = (0..resamples)
        .map(|_| {
            for slot in resample.iter_mut() {
                *slot = xs[rng.random_range(0..xs.len())];
            }
            statistic(&resample)
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    let alpha = 1.0 - confidence;
    (percentile_sorted(&stats, 100.0 * alpha / 2.0), percentile_sorted(&stats, 100.0 * (1.0 - alpha / 2.0)))
}

/// Counts samples with |modified z-score| > 3.5 (Iglewicz & Hoaglin): z = 0.6745 (x − median) / MAD.
///
/// When more than half the samples are identical the MAD is 0 and z is undefined; then the scale falls back to the
/// mean absolute deviation × √(π/2) (both estimate σ for normal data), and when that is 0 too every sample is equal
/// and none is an outlier. Use [`summarize`] to reject non-finite data first.
pub fn count_outliers(xs: &[f64]) -> usize {
    if xs.is_empty() {
        return 0;
    }
    let med = median(xs);
    let deviations: Vec<f64> = xs.iter().map(|x| (x - med).abs()).collect();
    let mad = median(&deviations);
    let sigma = if mad > 0.0 {
        mad / MAD_TO_Z
    } else {
        let mean_ad = mean(&deviations);
        if mean_ad <= 0.0 {
            return 0;
        }
        mean_ad * MEAN_AD_TO_SIGMA
    };
    deviations.iter().filter(|&&d| d / sigma > OUTLIER_Z).count()
}

/// A user-facing warning, as a type (like hyperfine's): the summary is too noisy to trust.
#[derive(Debug, Clone, PartialEq)]
pub enum StatWarning {
    HighVariation { cv: f64, threshold: f64 },
    Outliers { count: usize, n: usize },
    TooFewSamples { n: usize },
}

impl fmt::Display for StatWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatWarning::HighVariation { cv, threshold } => write!(
                f,
                "coefficient of variation {:.1}% is above {:.1}%: close other programs, pin the CPU governor, \
                 or raise --runs",
                cv * 100.0,
                threshold * 100.0
            ),
            StatWarning::Outliers { count, n } => write!(
                f,
                "{count} of {n} samples {} (modified z-score above 3.5): something else was probably using the \
                 machine; rerun on an idle system or raise --runs",
                if *count == 1 { "is a statistical outlier" } else { "are statistical outliers" }
            ),
            StatWarning::TooFewSamples { n } => write!(
                f,
                "only {n} sample{}: too few for a meaningful spread or confidence interval; use --runs 3 or more",
                if *n == 1 { "" } else { "s" }
            ),
        }
    }
}

/// Above this coefficient of variation a result is flagged as noisy.
pub const DEFAULT_CV_THRESHOLD: f64 = 0.10;

/// The warnings `summary` deserves: too few samples (n < 3), cv strictly above `cv_threshold`, any outliers.
pub fn warnings(summary: &Summary, cv_threshold: f64) -> Vec<StatWarning> {
    let mut out = Vec::new();
    if summary.n < 3 {
        out.push(StatWarning::TooFewSamples { n: summary.n });
    }
    if summary.cv > cv_threshold {
        out.push(StatWarning::HighVariation { cv: summary.cv, threshold: cv_threshold });
    }
    if summary.outliers > 0 {
        out.push(StatWarning::Outliers { count: summary.outliers, n: summary.n });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
    }

    // The textbook set. Sum 40, n 8 → mean 5. Squared deviations 9+1+1+1+0+0+4+16 = 32 → sample variance 32/7.
    // Sorted, the middle pair is (4, 5) → median 4.5.
    const TEXTBOOK: [f64; 8] = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];

    #[test]
    fn mean_std_median_of_small_sets() {
        assert_eq!(mean(&TEXTBOOK), 5.0);
        assert!(close(sample_std(&TEXTBOOK), (32.0f64 / 7.0).sqrt()));
        assert_eq!(median(&TEXTBOOK), 4.5);
        // Unsorted, odd count: sorted [1, 2, 3] → median 2. Mean 2; deviations −1, 0, 1 → variance 2/2 = 1.
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(sample_std(&[3.0, 1.0, 2.0]), 1.0);
        // Degenerate inputs.
        assert_eq!(sample_std(&[42.0]), 0.0);
        assert!(mean(&[]).is_nan());
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn percentile_matches_numpy_linear() {
        let xs: Vec<f64> = (1..=10).map(f64::from).collect();
        // rank = p/100 · (n − 1) = p/100 · 9, then interpolate between sorted[floor] and sorted[floor + 1]:
        // p0 → rank 0 → 1; p50 → 4.5 → 5 + 0.5·1 = 5.5; p90 → 8.1 → 9 + 0.1·1 = 9.1; p99 → 8.91 → 9.91;
        // p100 → rank 9 → 10.
        assert_eq!(percentile(&xs, 0.0), 1.0);
        assert_eq!(percentile(&xs, 50.0), 5.5);
        assert!(close(percentile(&xs, 90.0), 9.1));
        assert!(close(percentile(&xs, 99.0), 9.91));
        assert_eq!(percentile(&xs, 100.0), 10.0);
        // Order must not matter. numpy.percentile([4, 1, 3, 2], 25): rank 0.75 → 1 + 0.75·1 = 1.75.
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 25.0), 1.75);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    #[should_panic(expected = "percentile must be in [0, 100]")]
    fn percentile_rejects_out_of_range_p() {
        percentile(&[1.0, 2.0], 101.0);
    }

    #[test]
    fn single_sample_summary() {
        let s = summarize(&[3.25]).unwrap();
        assert_eq!(s.n, 1);
        assert_eq!((s.mean, s.std, s.median, s.min, s.max, s.cv), (3.25, 0.0, 3.25, 3.25, 3.25, 0.0));
        // Every resample of one value is that value, so the interval is a point.
        assert_eq!((s.ci95_low, s.ci95_high), (3.25, 3.25));
        assert_eq!(s.outliers, 0);
    }

    #[test]
    fn summarize_textbook_set() {
        let s = summarize(&TEXTBOOK).unwrap();
        assert_eq!((s.n, s.mean, s.median, s.min, s.max), (8, 5.0, 4.5, 2.0, 9.0));
        assert!(close(s.std, (32.0f64 / 7.0).sqrt()));
        // cv = √(32/7) / 5 ≈ 0.4276.
        assert!(close(s.cv, (32.0f64 / 7.0).sqrt() / 5.0));
        assert!(s.ci95_low < 5.0 && 5.0 < s.ci95_high, "{s:?}");
        assert!(s.ci95_low >= 2.0 && s.ci95_high <= 9.0);
        // Median 4.5; |x − 4.5| = 2.5, 0.5 ×5, 2.5, 4.5 → MAD = 0.5. z(9) = 0.6745·4.5/0.5 ≈ 6.07 > 3.5;
        // z(2) = z(7) = 0.6745·2.5/0.5 ≈ 3.37 < 3.5. So exactly one outlier.
        assert_eq!(s.outliers, 1);
        // Survives a JSON round trip (results files store it).
        let back: Summary = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn summarize_rejects_empty_and_non_finite() {
        assert_eq!(summarize(&[]), None);
        assert_eq!(summarize(&[1.0, f64::NAN, 3.0]), None);
        assert_eq!(summarize(&[1.0, f64::INFINITY]), None);
        assert_eq!(summarize(&[f64::NEG_INFINITY]), None);
    }

    #[test]
    fn zero_mean_gives_zero_cv() {
        let s = summarize(&[-1.0, 1.0]).unwrap();
        assert_eq!(s.mean, 0.0);
        assert_eq!(s.cv, 0.0);
    }

    #[test]
    fn bootstrap_is_deterministic() {
        let xs = [12.1, 11.8, 12.6, 13.0, 11.5, 12.2, 12.9, 12.4];
        let a = bootstrap_ci(&xs, mean, 0.95, 2_000, 7);
        let b = bootstrap_ci(&xs, mean, 0.95, 2_000, 7);
        assert_eq!(a, b);
        // A different seed draws different resamples (fixed seeds, so this is not flaky).
        assert_ne!(a, bootstrap_ci(&xs, mean, 0.95, 2_000, 8));
        // summarize uses the published seed and count.
        let s = summarize(&xs).unwrap();
        assert_eq!((s.ci95_low, s.ci95_high), bootstrap_ci(&xs, mean, 0.95, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED));
    }

    #[test]
    fn bootstrap_sanity() {
        let xs = [12.1, 11.8, 12.6, 13.0, 11.5, 12.2, 12.9, 12.4];
        let m = mean(&xs);
        let (lo, hi) = bootstrap_ci(&xs, mean, 0.95, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED);
        assert!(lo < m && m < hi, "({lo}, {hi}) should contain {m}");
        // A wider confidence gives a wider (nested) interval.
        let (lo99, hi99) = bootstrap_ci(&xs, mean, 0.99, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED);
        assert!(lo99 <= lo && hi <= hi99);
        // Constant data: every resample mean is the constant.
        assert_eq!(bootstrap_ci(&[4.0; 20], mean, 0.95, 1_000, 1), (4.0, 4.0));
        // Other statistics work too.
        let (mlo, mhi) = bootstrap_ci(&xs, median, 0.95, 1_000, 1);
        assert!(mlo <= median(&xs) && median(&xs) <= mhi);
        assert!(bootstrap_ci(&[], mean, 0.95, 100, 1).0.is_nan());
    }

    #[test]
    fn bootstrap_narrows_with_more_samples() {
        // Same distribution (uniform on [10, 20)), 10 vs 1000 samples: the CI of the mean should shrink ~√100 = 10×.
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let draws: Vec<f64> = (0..1000).map(|_| rng.random_range(10.0..20.0)).collect();
        let width = |xs: &[f64]| {
            let (lo, hi) = bootstrap_ci(xs, mean, 0.95, 2_000, BOOTSTRAP_SEED);
            hi - lo
        };
        let (small, large) = (width(&draws[..10]), width(&draws));
        assert!(large * 4.0 < small, "n=10 width {small}, n=1000 width {large}");
    }

    #[test]
    fn outliers_counted() {
        // Sorted [10, 10, 11, 11, 11, 12, 12, 100] → median 11. |x − 11| sorted [0, 0, 0, 1, 1, 1, 1, 89] → MAD 1.
        // z(100) = 0.6745·89 ≈ 60 → outlier; every other |z| ≤ 0.6745.
        assert_eq!(count_outliers(&[10.0, 11.0, 12.0, 11.0, 10.0, 12.0, 11.0, 100.0]), 1);
        // Low outliers count too: mirror image of the above.
        assert_eq!(count_outliers(&[10.0, 11.0, 12.0, 11.0, 10.0, 12.0, 11.0, -78.0]), 1);
    }

    #[test]
    fn no_outliers_in_uniform_data() {
        // 1..=20: median 10.5, |x − 10.5| = 0.5, 0.5, 1.5, 1.5, … 9.5, 9.5 → MAD = (4.5 + 5.5)/2 = 5.
        // Largest |z| = 0.6745·9.5/5 ≈ 1.28.
        let xs: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(count_outliers(&xs), 0);
        assert_eq!(count_outliers(&[]), 0);
        assert_eq!(count_outliers(&[1.0]), 0);
        assert_eq!(count_outliers(&[1.0, 1000.0]), 0);
    }

    #[test]
    fn outliers_when_mad_is_zero() {
        // All equal: MAD 0 and mean absolute deviation 0 → no outliers, no 0/0.
        assert_eq!(count_outliers(&[5.0; 10]), 0);
        // Nine 5s and a 100: median 5, MAD 0. Fallback: mean |x − 5| = 95/10 = 9.5, σ ≈ 9.5·1.2533 ≈ 11.9,
        // z(100) = 95/11.9 ≈ 7.98 > 3.5 → one outlier.
        let mut xs = vec![5.0; 9];
        xs.push(100.0);
        assert_eq!(count_outliers(&xs), 1);
        // Three 10s and an 11: mean |dev| = 0.25, σ ≈ 0.313, z(11) = 1/0.313 ≈ 3.19 → not an outlier.
        assert_eq!(count_outliers(&[10.0, 10.0, 10.0, 11.0]), 0);
    }

    fn summary_with(n: usize, cv: f64, outliers: usize) -> Summary {
        Summary { n, mean: 1.0, std: cv, median: 1.0, min: 1.0, max: 1.0, cv, ci95_low: 1.0, ci95_high: 1.0, outliers }
    }

    #[test]
    fn warnings_fire_at_thresholds() {
        assert!(warnings(&summary_with(10, 0.05, 0), DEFAULT_CV_THRESHOLD).is_empty());
        // "Above" means strictly above: cv equal to the threshold is fine.
        assert!(warnings(&summary_with(10, 0.10, 0), 0.10).is_empty());
        assert_eq!(
            warnings(&summary_with(10, 0.1001, 0), 0.10),
            vec![StatWarning::HighVariation { cv: 0.1001, threshold: 0.10 }]
        );
        assert_eq!(warnings(&summary_with(10, 0.0, 1), 0.10), vec![StatWarning::Outliers { count: 1, n: 10 }]);
        assert!(warnings(&summary_with(3, 0.0, 0), 0.10).is_empty());
        assert_eq!(warnings(&summary_with(2, 0.0, 0), 0.10), vec![StatWarning::TooFewSamples { n: 2 }]);
        assert_eq!(
            warnings(&summary_with(2, 0.5, 0), 0.10),
            vec![StatWarning::TooFewSamples { n: 2 }, StatWarning::HighVariation { cv: 0.5, threshold: 0.10 }]
        );
        // End to end: the textbook set has cv ≈ 0.43 and one outlier.
        let w = warnings(&summarize(&TEXTBOOK).unwrap(), DEFAULT_CV_THRESHOLD);
        assert!(matches!(w[..], [StatWarning::HighVariation { .. }, StatWarning::Outliers { count: 1, n: 8 }]));
    }

    #[test]
    fn warning_messages() {
        let hv = StatWarning::HighVariation { cv: 0.142, threshold: 0.10 };
        assert_eq!(
            hv.to_string(),
            "coefficient of variation 14.2% is above 10.0%: close other programs, pin the CPU governor, or raise --runs"
        );
        assert!(StatWarning::Outliers { count: 2, n: 10 }.to_string().starts_with("2 of 10 samples are statistical"));
        assert!(StatWarning::Outliers { count: 1, n: 10 }.to_string().starts_with("1 of 10 samples is a statistical"));
        assert!(StatWarning::TooFewSamples { n: 1 }.to_string().starts_with("only 1 sample:"));
        assert!(StatWarning::TooFewSamples { n: 2 }.to_string().starts_with("only 2 samples:"));
    }
}
