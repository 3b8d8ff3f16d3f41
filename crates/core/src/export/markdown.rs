//! The terminal table: a GitHub-flavoured markdown table, one row per benchmark.
use std::fmt::Write;

use super::mean_with_ci;
use tokbench_record::metric::{format_bytes, format_value, Metric, Unit};
use tokbench_record::quality::ParetoVerdict;
use tokbench_record::results::RunResults;

pub fn table(results: &RunResults) -> String {
    let mut out = String::new();
    let with_quality = results.benchmarks.iter().any(|b| b.quality.is_some());
    let with_roofline = results.benchmarks.iter().any(|b| b.roofline.is_some());
    let with_depth = results.benchmarks.iter().any(|b| b.prompt.depth > 0);
    let with_gpu_memory = results.benchmarks.iter().any(|b| b.summary.contains_key(&Metric::GpuMemoryBytes));
    // (title, right-aligned): numbers align right, names left, as llama-bench prints them.
    let columns = [
        ("model", false),
        ("quant", false),
        ("backend", false),
        ("threads", true),
        ("prompt", false),
        ("pp", true),
        ("tg", true),
        ("depth", true),
        ("TTFT [95% CI]", true),
        ("prefill t/s", true),
        ("decode t/s", true),
        ("ITL p50 / p90 / p99", true),
        ("load", true),
        ("RSS after load", true),
        ("RAM Δ", true),
        ("gen. RAM Δ", true),
        ("GPU memory", true),
        ("J/token: prefill / decode", true),
    ];
    let quality_columns = [("PPL ± se", true), ("KLD", true), ("Pareto: decode / TTFT vs PPL", false)];
    let roofline_columns = [("decode GB/s: % of measured / published", true)];
    let columns: Vec<(&str, bool)> = columns
        .iter()
        .filter(|c| with_depth || c.0 != "depth")
        .filter(|c| with_gpu_memory || c.0 != "GPU memory")
        .chain(if with_roofline { &roofline_columns[..] } else { &[] })
        .chain(if with_quality { &quality_columns[..] } else { &[] })
        .copied()
        .collect();
    let _ = writeln!(out, "| {} |", columns.iter().map(|c| c.0).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(out, "|{}", columns.iter().map(|c| if c.1 { "---:|" } else { "---|" }).collect::<String>());
    for b in &results.benchmarks {
        let itl = [Metric::ItlP50S, Metric::ItlP90S, Metric::ItlP99S]
            .iter()
            .map(|m| b.summary.get(m).map_or("-".into(), |s| format_value(Unit::Seconds, s.median)))
            .collect::<Vec<_>>()
            .join(" / ");
        let model = match &b.model.synthetic {
            Some(_) => format!("{} (synthetic)", b.model.name),
            None => b.model.name.clone(),
        };
        let mut row = vec![
            escape(&model),
            escape(&b.model.quantization),
            escape(&b.engine.backend),
            b.settings.threads.to_string(),
            escape(&b.prompt.name),
            b.prompt.prompt_tokens.to_string(),
            b.prompt.gen_tokens.to_string(),
        ];
        if with_depth {
            row.push(b.prompt.depth.to_string());
        }
        row.extend([
            mean_with_ci(b, Metric::TtftS),
            mean_with_ci(b, Metric::PrefillTps),
            mean_with_ci(b, Metric::DecodeTps),
            itl,
            format_value(Unit::Seconds, b.load.load_s),
        ]);
        if b.engine.server.is_some() {
            // tokbench's RSS says nothing about a server's memory: don't print it as if it did.
            row.extend(["n/a (server)".to_string(), "n/a (server)".to_string(), "n/a (server)".to_string()]);
            if with_gpu_memory {
                row.push("n/a (server)".to_string());
            }
        } else {
            row.push(format!(
                "{} (+{})",
                format_bytes(b.load.rss_after_bytes as f64),
                format_bytes(b.load.rss_after_bytes.saturating_sub(b.load.rss_before_bytes) as f64)
            ));
            for m in [Metric::RamDeltaBytes, Metric::PeakRssDeltaBytes] {
                row.push(b.summary.get(&m).map_or("-".into(), |s| format_bytes(s.max)));
            }
            if with_gpu_memory {
                let gpu = b.summary.get(&Metric::GpuMemoryBytes);
                row.push(gpu.map_or("n/a (no GPU context)".into(), |s| format_bytes(s.max)));
            }
        }
        let joules = [Metric::PrefillJoulesPerToken, Metric::DecodeJoulesPerToken].map(|m| b.summary.get(&m));
        row.push(match joules {
            [Some(p), Some(d)] => {
                format!(
                    "{} / {}",
                    format_value(Unit::JoulesPerToken, p.median),
                    format_value(Unit::JoulesPerToken, d.median)
                )
            }
            _ if b.engine.server.is_some() => "n/a (server)".to_string(),
            _ => crate::energy::NO_COUNTER.to_string(),
        });
        if with_roofline {
            row.push(b.roofline.as_ref().map_or("-".into(), |r| {
                let pct = |p: Option<f64>| p.map_or("n/a".to_string(), |p| format!("{p:.0}%"));
                let gbs = r.achieved_bytes_per_s / 1e9;
                format!("{gbs:.2}: {} / {}", pct(r.percent_of_measured), pct(r.percent_of_published))
            }));
        }
        if with_quality {
            let q = b.quality.as_ref();
            row.push(q.map_or("-".into(), |q| format!("{:.3} ± {:.3}", q.ppl, q.ppl_std_error)));
            row.push(q.and_then(|q| q.kld.as_ref()).map_or("-".into(), |k| format!("{:.4}", k.summary.mean_kld)));
            row.push(b.pareto.as_ref().map_or("-".into(), |p| {
                let mark = |v: &ParetoVerdict| match v {
                    ParetoVerdict::Optimal => "optimal".to_string(),
                    ParetoVerdict::Dominated { by } => format!("dominated by {}", escape(by)),
                };
                format!("{} / {}", mark(&p.decode_vs_ppl), mark(&p.ttft_vs_ppl))
            }));
        }
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push_str(&engine_reports(results));
    if with_roofline {
        out.push_str(&bandwidth_line(&results.machine));
    }
    out
}

/// The roofline's ceilings, under the table.
fn bandwidth_line(machine: &tokbench_record::machine::Machine) -> String {
    let measured = match &machine.bandwidth {
        Some(p) => format!(
            "{:.2} GB/s measured (best of {} multi-threaded reads of {} with {} threads)",
            p.read_bytes_per_s as f64 / 1e9,
            p.passes,
            format_bytes(p.buffer_bytes as f64),
            p.threads,
        ),
        None => "not measured (--bandwidth-probe off)".to_string(),
    };
    let published = machine
        .published_bandwidth_bytes_per_s
        .map_or("no published figure for this chip".to_string(), |b| format!("{:.0} GB/s published", b as f64 / 1e9));
    format!("memory bandwidth: {measured}; {published}\n")
}

/// Below the table, for engines that report on their own runs (MLX): the engine allocator's peak and the share of
/// decode spent building graphs on the host, medians over the timed runs.
fn engine_reports(results: &RunResults) -> String {
    let mut out = String::new();
    for b in &results.benchmarks {
        let peaks: Vec<f64> =
            b.runs.iter().filter_map(|r| r.engine.and_then(|e| e.device_peak_bytes)).map(|v| v as f64).collect();
        let host: Vec<f64> = b.runs.iter().filter_map(|r| r.decode_host_fraction()).collect();
        if peaks.is_empty() && host.is_empty() {
            continue;
        }
        let mut parts = Vec::new();
        if !peaks.is_empty() {
            parts.push(format!("engine peak memory {}", format_bytes(crate::stats::median(&peaks))));
        }
        if !host.is_empty() {
            parts.push(format!("host graph building {:.1}% of decode", 100.0 * crate::stats::median(&host)));
        }
        let _ = writeln!(out, "{}: {} (medians of {} runs)", b.id, parts.join(", "), b.runs.len());
    }
    out
}

/// Model names and prompts are user text: keep a `|` from breaking the table.
fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::summarize;

    fn results() -> RunResults {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../gate/tests/data/sessions/quiet/2026-11-23-quiet-1.json");
        RunResults::read(std::path::Path::new(path)).unwrap()
    }

    #[test]
    fn a_gpu_memory_column_appears_only_where_a_benchmark_held_gpu_memory() {
        let mut r = results();
        assert!(!table(&r).contains("GPU memory"), "no benchmark ran on a GPU");
        let gib = 5.0 * 1024.0 * 1024.0 * 1024.0;
        r.benchmarks[0].summary.insert(Metric::GpuMemoryBytes, summarize(&[gib, gib]).unwrap());
        let t = table(&r);
        let header = t.lines().next().unwrap();
        let columns: Vec<&str> = header.split(" | ").collect();
        let at = columns.iter().position(|c| *c == "GPU memory").expect("a GPU memory column");
        let row = |i: usize| t.lines().nth(2 + i).unwrap().split(" | ").nth(at).unwrap().to_string();
        assert_eq!(row(0), "5.00 GiB");
        // Another benchmark of the run (no GPU context) says so rather than a number.
        if r.benchmarks.len() > 1 && r.benchmarks[1].engine.server.is_none() {
            assert_eq!(row(1), "n/a (no GPU context)");
        }
    }
}
