//! The Pareto frontier of two objectives (e.g. decode tok/s ↑ against PPL ↓): a configuration is *dominated* when
//! another is at least as good on both and strictly better on one; the rest are the sane choices.
use anyhow::{ensure, Result};
use tokbench_record::quality::{ParetoMarks, ParetoVerdict};

use tokbench_record::metric::{Better, Metric};
use tokbench_record::results::RunResults;

#[derive(Debug, Clone, PartialEq)]
pub struct ParetoPoint {
    pub id: String,
    pub x: f64,
    pub y: f64,
}

/// Marks every benchmark that has a perplexity; a dominated one names the dominating configuration as
/// `backend/model`.
pub fn mark_run(results: &mut RunResults) -> Result<()> {
    let mut groups: std::collections::BTreeMap<(String, usize), Vec<usize>> = Default::default();
    for (i, b) in results.benchmarks.iter().enumerate() {
        if b.quality.is_some() && b.summary.contains_key(&Metric::DecodeTps) && b.summary.contains_key(&Metric::TtftS) {
            groups.entry((b.prompt.name.clone(), b.settings.threads)).or_default().push(i);
        }
    }
    for members in groups.values() {
        let points = |m: Metric| -> Vec<ParetoPoint> {
            members
                .iter()
                .map(|&i| {
                    let b = &results.benchmarks[i];
                    ParetoPoint {
                        id: format!("{}/{}", b.engine.backend, b.model.name),
                        x: b.summary[&m].median,
                        y: b.quality.as_ref().expect("filtered").ppl,
                    }
                })
                .collect()
        };
        let decode = frontier(&points(Metric::DecodeTps), Better::Higher, Better::Lower)?;
        let ttft = frontier(&points(Metric::TtftS), Better::Lower, Better::Lower)?;
        for ((&i, d), t) in members.iter().zip(decode).zip(ttft) {
            results.benchmarks[i].pareto = Some(ParetoMarks { decode_vs_ppl: d, ttft_vs_ppl: t });
        }
    }
    Ok(())
}

/// One verdict per point, in input order. Equal points do not dominate each other.
pub fn frontier(points: &[ParetoPoint], x_better: Better, y_better: Better) -> Result<Vec<ParetoVerdict>> {
    for p in points {
        ensure!(p.x.is_finite() && p.y.is_finite(), "{} has no finite value to rank ({}, {})", p.id, p.x, p.y);
    }
    // Orient both objectives so that larger is better.
    let sign = |b: Better| if b == Better::Higher { 1.0 } else { -1.0 };
    let (sx, sy) = (sign(x_better), sign(y_better));
    let dominates = |a: &ParetoPoint, b: &ParetoPoint| {
        let (ax, ay, bx, by) = (sx * a.x, sy * a.y, sx * b.x, sy * b.y);
        ax >= bx && ay >= by && (ax > bx || ay > by)
    };
    Ok(points
        .iter()
        .map(|p| {
            points
                .iter()
                .filter(|q| dominates(q, p))
                .max_by(|a, b| (sx * a.x).total_cmp(&(sx * b.x)).then_with(|| b.id.cmp(&a.id)))
                .map_or(ParetoVerdict::Optimal, |q| ParetoVerdict::Dominated { by: q.id.clone() })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(id: &str, x: f64, y: f64) -> ParetoPoint {
        ParetoPoint { id: id.into(), x, y }
    }

    #[test]
    fn speed_against_perplexity() {
        // x = decode tok/s (higher is better), y = PPL (lower is better).
        let points = [
            pt("q8", 60.0, 10.0),  // best PPL: optimal
            pt("q4", 90.0, 10.5),  // faster, a little worse: optimal
            pt("q3", 85.0, 12.0),  // slower and worse than q4: dominated by q4
            pt("q5", 55.0, 10.4),  // slower than q8 and worse: dominated by q8 (the only one)
            pt("f16", 40.0, 10.0), // same PPL as q8 but slower: dominated by q8
        ];
        let v = frontier(&points, Better::Higher, Better::Lower).unwrap();
        let by = |s: &str| ParetoVerdict::Dominated { by: s.into() };
        assert_eq!(v, vec![ParetoVerdict::Optimal, ParetoVerdict::Optimal, by("q4"), by("q8"), by("q8")]);
    }

    #[test]
    fn the_dominator_named_is_the_best_on_x() {
        let points = [pt("slow", 1.0, 9.0), pt("a", 5.0, 1.0), pt("b", 7.0, 2.0)];
        let v = frontier(&points, Better::Higher, Better::Lower).unwrap();
        assert_eq!(v[0], ParetoVerdict::Dominated { by: "b".into() });
        // TTFT (lower) against PPL (lower).
        let v = frontier(&[pt("x", 0.1, 9.0), pt("y", 0.2, 9.5)], Better::Lower, Better::Lower).unwrap();
        assert_eq!(v, vec![ParetoVerdict::Optimal, ParetoVerdict::Dominated { by: "x".into() }]);
    }

    #[test]
    fn equal_points_are_both_optimal_and_nan_is_refused() {
        let v = frontier(&[pt("a", 1.0, 1.0), pt("b", 1.0, 1.0)], Better::Higher, Better::Lower).unwrap();
        assert!(v.iter().all(ParetoVerdict::is_optimal));
        let e = frontier(&[pt("bad", f64::NAN, 1.0)], Better::Higher, Better::Lower).unwrap_err().to_string();
        assert!(e.contains("bad"), "{e}");
        let json = serde_json::to_string(&ParetoVerdict::Dominated { by: "q4".into() }).unwrap();
        assert_eq!(json, r#"{"status":"dominated","by":"q4"}"#);
    }
}
