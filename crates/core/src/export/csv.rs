//! CSV: one row per benchmark × metric, every summary statistic in its own column.
use anyhow::Result;

use tokbench_record::metric::Metric;
use tokbench_record::results::RunResults;

pub fn write(results: &RunResults, out: impl std::io::Write) -> Result<()> {
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record([
        "benchmark",
        "model",
        "quantization",
        "backend",
        "threads",
        "prompt",
        "prompt_tokens",
        "gen_tokens",
        "metric",
        "n",
        "mean",
        "std",
        "median",
        "min",
        "max",
        "cv",
        "ci95_low",
        "ci95_high",
    ])?;
    for b in &results.benchmarks {
        for metric in Metric::ALL {
            let Some(s) = b.summary.get(&metric) else { continue };
            let mut row = vec![
                b.id.to_string(),
                b.model.name.clone(),
                b.model.quantization.clone(),
                b.engine.backend.clone(),
                b.settings.threads.to_string(),
                b.prompt.name.clone(),
                b.prompt.prompt_tokens.to_string(),
                b.prompt.gen_tokens.to_string(),
                metric.key().to_string(),
                s.n.to_string(),
            ];
            row.extend([s.mean, s.std, s.median, s.min, s.max, s.cv, s.ci95_low, s.ci95_high].map(|v| v.to_string()));
            w.write_record(&row)?;
        }
    }
    w.flush()?;
    Ok(())
}
