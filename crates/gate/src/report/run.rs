//! `tokbench report`: one self-contained HTML page of one or several runs (results JSON files): the table of every
//! benchmark and the scaling charts — the Pareto chart, TTFT against prompt length, decode against depth, the
//! roofline, model size against decode speed and inter-token latency distributions. Same templates, CSS, sorting
//! script and chart code as the gate's report (`chart.rs`, `charts.html.tera`), autoescaped the same way.
use std::collections::BTreeMap;

use serde::Serialize;
use tokbench_record::metric::{format_bytes, format_value, Metric, Unit};
use tokbench_record::quality::ParetoVerdict;
use tokbench_record::results::{BenchmarkResult, RunResults};

use crate::compare::samples;
use crate::report::chart::{self, box_chart, AxisSpec, BoxChart, DataPoint, DataSeries, Plot, Scale, Spread, XyChart};

const TEMPLATE: &str = include_str!("run.html.tera");

/// One results file and the name it goes by in the page.
pub struct RunInput {
    pub label: String,
    pub results: RunResults,
}

/// Labels for `paths`: the file names, or the paths when two share a name.
pub fn labels(paths: &[std::path::PathBuf]) -> Vec<String> {
    let names: Vec<String> =
        paths.iter().map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()).collect();
    let unique = names.iter().all(|n| !n.is_empty() && names.iter().filter(|m| *m == n).count() == 1);
    if unique {
        names
    } else {
        paths.iter().map(|p| p.display().to_string()).collect()
    }
}

#[derive(Serialize)]
struct Ctx {
    title: String,
    generated_at: String,
    runs: Vec<RunHeader>,
    several: bool,
    rows: Vec<Row>,
    failures: Vec<String>,
    charts: Vec<XyChart>,
    boxes: Option<BoxChart>,
    /// Charts that could not be drawn from these results, and what would draw them.
    missing: Vec<String>,
}

#[derive(Serialize)]
struct RunHeader {
    label: String,
    created_at: String,
    tokbench: String,
    commit: String,
    machine: String,
    bandwidth: String,
    energy: String,
    engines: Vec<String>,
    benchmarks: usize,
    failures: usize,
}

#[derive(Serialize)]
struct Row {
    run: String,
    id: String,
    model: String,
    quant: String,
    backend: String,
    threads: usize,
    pp: usize,
    tg: usize,
    depth: usize,
    temperature: String,
    ttft: Cell,
    prefill: Cell,
    decode: Cell,
    itl: String,
    itl_v: String,
    ram: Cell,
    gbs: Cell,
    pct_measured: Cell,
    pct_published: Cell,
    joules: Cell,
    ppl: Cell,
    pareto: String,
}

/// A table cell: the text shown and the number it sorts by (empty: sorts last).
#[derive(Serialize)]
struct Cell {
    text: String,
    v: String,
}

impl Cell {
    fn none(text: &str) -> Cell {
        Cell { text: text.into(), v: String::new() }
    }
    fn num(text: String, v: f64) -> Cell {
        Cell { text, v: if v.is_finite() { format!("{v}") } else { String::new() } }
    }
}

fn median_of(b: &BenchmarkResult, m: Metric) -> Option<f64> {
    let xs = samples(b, m);
    (!xs.is_empty()).then(|| tokbench_record::summary::median(&xs))
}

fn metric_cell(b: &BenchmarkResult, m: Metric) -> Cell {
    match median_of(b, m) {
        Some(v) => Cell::num(format_value(m.unit(), v), v),
        None => Cell::none("—"),
    }
}

fn model_text(b: &BenchmarkResult) -> String {
    match &b.model.synthetic {
        Some(_) => format!("{} (synthetic)", b.model.name),
        None => b.model.name.clone(),
    }
}

fn row(run: &str, b: &BenchmarkResult) -> Row {
    let r = b.roofline.as_ref();
    let pct = |p: Option<f64>| match p {
        Some(p) => Cell::num(format!("{p:.0}%"), p),
        None => Cell::none("n/a"),
    };
    let (p50, p99) = (median_of(b, Metric::ItlP50S), median_of(b, Metric::ItlP99S));
    let joules = match (median_of(b, Metric::DecodeJoulesPerToken), b.engine.server.is_some()) {
        (Some(j), _) => Cell::num(format_value(Unit::JoulesPerToken, j), j),
        (None, true) => Cell::none("n/a (server)"),
        (None, false) => Cell::none("n/a (no energy counter)"),
    };
    let ram = if b.engine.server.is_some() {
        Cell::none("n/a (server)")
    } else {
        match b.summary.get(&Metric::RamDeltaBytes) {
            Some(s) => Cell::num(format_bytes(s.max), s.max),
            None => Cell::none("—"),
        }
    };
    Row {
        run: run.to_string(),
        id: b.id.to_string(),
        model: model_text(b),
        quant: b.model.quantization.clone(),
        backend: b.engine.backend.clone(),
        threads: b.settings.threads,
        pp: b.prompt.prompt_tokens,
        tg: b.prompt.gen_tokens,
        depth: b.prompt.depth,
        temperature: format!("{}", b.settings.sampling.temperature),
        ttft: metric_cell(b, Metric::TtftS),
        prefill: metric_cell(b, Metric::PrefillTps),
        decode: metric_cell(b, Metric::DecodeTps),
        itl: match (p50, p99) {
            (Some(a), Some(c)) => format!("{} / {}", format_value(Unit::Seconds, a), format_value(Unit::Seconds, c)),
            _ => "—".into(),
        },
        itl_v: p50.map(|v| format!("{v}")).unwrap_or_default(),
        ram,
        gbs: match r {
            Some(r) => Cell::num(format!("{:.2}", r.achieved_bytes_per_s / 1e9), r.achieved_bytes_per_s / 1e9),
            None => Cell::none("—"),
        },
        pct_measured: pct(r.and_then(|r| r.percent_of_measured)),
        pct_published: pct(r.and_then(|r| r.percent_of_published)),
        joules,
        ppl: match &b.quality {
            Some(q) => Cell::num(format!("{:.3} ± {:.3}", q.ppl, q.ppl_std_error), q.ppl),
            None if b.model.synthetic.is_some() => Cell::none("not scored (synthetic)"),
            None => Cell::none("—"),
        },
        pareto: match b.pareto.as_ref().map(|p| &p.decode_vs_ppl) {
            Some(ParetoVerdict::Optimal) => "optimal".into(),
            Some(ParetoVerdict::Dominated { by }) => format!("dominated by {by}"),
            None => String::new(),
        },
    }
}

fn header(input: &RunInput) -> RunHeader {
    let r = &input.results;
    let m = &r.machine;
    let mut engines: Vec<String> = r
        .benchmarks
        .iter()
        .map(|b| format!("{} {}: {}", b.engine.backend, b.engine.version, b.engine.build_info))
        .collect();
    engines.sort();
    engines.dedup();
    let bandwidth = {
        let measured = m.bandwidth.as_ref().map(|p| {
            format!(
                "{:.2} GB/s measured (best of {} passes, {} threads)",
                p.read_bytes_per_s as f64 / 1e9,
                p.passes,
                p.threads
            )
        });
        let published = m.published_bandwidth_bytes_per_s.map(|b| format!("{:.0} GB/s published", b as f64 / 1e9));
        match [measured, published].into_iter().flatten().collect::<Vec<_>>() {
            v if v.is_empty() => "not measured".to_string(),
            v => v.join(" · "),
        }
    };
    RunHeader {
        label: input.label.clone(),
        created_at: r.created_at.clone(),
        tokbench: r.tokbench_version.clone(),
        commit: r
            .git
            .as_ref()
            .map(|g| format!("{}{}", &g.commit[..g.commit.len().min(12)], if g.dirty { " (dirty)" } else { "" }))
            .unwrap_or_else(|| "unknown".into()),
        machine: format!(
            "{} · {} physical / {} logical cores · {} · {} {} {}",
            m.cpu,
            m.physical_cores,
            m.logical_cores,
            format_bytes(m.memory_bytes as f64),
            m.os,
            m.os_version,
            m.arch
        ),
        bandwidth,
        energy: m.energy_counter.clone().unwrap_or_else(|| "no energy counter".into()),
        engines,
        benchmarks: r.benchmarks.len(),
        failures: r.failures.len(),
    }
}

/// Every benchmark of every run, with its run's label and its machine.
struct Item<'a> {
    run: &'a str,
    several: bool,
    results: &'a RunResults,
    b: &'a BenchmarkResult,
}

impl Item<'_> {
    /// The series a benchmark belongs to, with `parts` of its identity (run label first when there are several).
    fn key(&self, parts: &[&str]) -> String {
        let mut all: Vec<&str> = Vec::new();
        if self.several {
            all.push(self.run);
        }
        all.extend_from_slice(parts);
        all.join(" · ")
    }

    fn model(&self) -> String {
        format!("{} {}", self.b.model.name, self.b.model.quantization)
    }

    fn prompt_base(&self) -> &str {
        self.b.prompt.name.split('@').next().unwrap_or(&self.b.prompt.name)
    }

    fn threads(&self) -> String {
        format!("t{}", self.b.settings.threads)
    }

    fn temperature(&self) -> String {
        format!("T{}", self.b.settings.sampling.temperature)
    }
}

/// Points grouped into coloured series by key, in first-seen order.
fn series_of(groups: Vec<(String, DataPoint)>, joined: bool) -> Vec<DataSeries> {
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, Vec<DataPoint>> = BTreeMap::new();
    for (k, p) in groups {
        if !by.contains_key(&k) {
            order.push(k.clone());
        }
        by.entry(k).or_default().push(p);
    }
    order
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            let points = by.remove(&k).unwrap_or_default();
            if joined {
                DataSeries::line(k, chart::colour(i), points)
            } else {
                DataSeries::points(k, chart::colour(i), points)
            }
        })
        .collect()
}

fn spread(b: &BenchmarkResult, m: Metric) -> Option<Spread> {
    Spread::of(&samples(b, m))
}

/// Decode tok/s against perplexity, the frontier in green (`tokbench_core::quality::pareto` marks it).
fn pareto(items: &[Item]) -> Option<XyChart> {
    let pts: Vec<(String, DataPoint)> = items
        .iter()
        .filter_map(|it| {
            let q = it.b.quality.as_ref()?;
            let y = spread(it.b, Metric::DecodeTps)?;
            let optimal = it.b.pareto.as_ref().is_some_and(|p| p.decode_vs_ppl.is_optimal());
            let x = Spread { mid: q.ppl, lo: q.ppl - q.ppl_std_error, hi: q.ppl + q.ppl_std_error };
            let label = format!("{}: {}", it.b.id, if optimal { "Pareto-optimal" } else { "dominated" });
            let key = it.key(&[if optimal { "on the frontier" } else { "dominated" }]);
            Some((key, DataPoint::new(x, y, label)))
        })
        .collect();
    if pts.is_empty() {
        return None;
    }
    let mut series = series_of(pts, false);
    for s in &mut series {
        if s.label.ends_with("on the frontier") {
            s.colour = "#1a7f37".into();
        }
    }
    Some(
        Plot {
            id: "pareto".into(),
            title: "Speed against quality: the Pareto chart".into(),
            caption: "Decode tok/s (median, min–max whiskers) against perplexity (± its standard error). Green: on \
                      the frontier (nothing else is both faster and better). Hover a point for its benchmark."
                .into(),
            x: AxisSpec { label: "perplexity (lower is better)".into(), unit: Unit::Number, scale: Scale::Linear },
            y: AxisSpec { label: "decode tok/s".into(), unit: Unit::TokensPerSecond, scale: Scale::Linear },
            series,
            ceilings: Vec::new(),
        }
        .layout(),
    )
}

/// TTFT against prompt tokens: one line per backend × model × depth × threads × temperature.
fn ttft_vs_prompt(items: &[Item]) -> Option<XyChart> {
    let pts: Vec<(String, DataPoint)> = items
        .iter()
        .filter_map(|it| {
            let y = spread(it.b, Metric::TtftS)?;
            let mut parts = vec![it.b.engine.backend.clone(), it.model(), it.threads()];
            if it.b.prompt.depth > 0 {
                parts.push(format!("depth {}", it.b.prompt.depth));
            }
            if it.b.settings.sampling.temperature > 0.0 {
                parts.push(it.temperature());
            }
            let key = it.key(&parts.iter().map(String::as_str).collect::<Vec<_>>());
            let x = Spread::exact(it.b.prompt.prompt_tokens as f64);
            Some((key, DataPoint::new(x, y, format!("{}: {} prompt tokens", it.b.id, it.b.prompt.prompt_tokens))))
        })
        .collect();
    if pts.is_empty() {
        return None;
    }
    let scale = Scale::fit(pts.iter().map(|p| p.1.x.mid));
    Some(
        Plot {
            id: "ttft-vs-prompt".into(),
            title: "Time to first token against prompt length".into(),
            caption: "TTFT (median, min–max whiskers) at each prompt length: tokenizing and prefilling the prompt and \
                      sampling the first token."
                .into(),
            x: AxisSpec { label: "prompt tokens".into(), unit: Unit::Number, scale },
            y: AxisSpec { label: "time to first token".into(), unit: Unit::Seconds, scale: Scale::Linear },
            series: series_of(pts, true),
            ceilings: Vec::new(),
        }
        .layout(),
    )
}

/// Decode tok/s against depth: one line per backend × model × prompt × threads × temperature. None unless some
/// series has two depths or more.
fn decode_vs_depth(items: &[Item]) -> Option<XyChart> {
    let pts: Vec<(String, DataPoint)> = items
        .iter()
        .filter_map(|it| {
            let y = spread(it.b, Metric::DecodeTps)?;
            let t = it.temperature();
            let key = it.key(&[it.b.engine.backend.as_str(), &it.model(), it.prompt_base(), &it.threads(), t.as_str()]);
            let x = Spread::exact(it.b.prompt.depth as f64);
            Some((key, DataPoint::new(x, y, format!("{}: depth {}", it.b.id, it.b.prompt.depth))))
        })
        .collect();
    let series: Vec<DataSeries> = series_of(pts, true)
        .into_iter()
        .filter(|s| {
            let mut depths: Vec<u64> = s.points.iter().map(|p| p.x.mid as u64).collect();
            depths.sort();
            depths.dedup();
            depths.len() >= 2
        })
        .collect();
    if series.is_empty() {
        return None;
    }
    Some(
        Plot {
            id: "decode-vs-depth".into(),
            title: "Decode speed against context depth".into(),
            caption: "Decode tok/s (median, min–max whiskers) with that many tokens already in the KV cache before \
                      the prompt (--depth): each token attends over a longer context."
                .into(),
            x: AxisSpec { label: "depth (tokens in the KV cache)".into(), unit: Unit::Number, scale: Scale::Linear },
            y: AxisSpec { label: "decode tok/s".into(), unit: Unit::TokensPerSecond, scale: Scale::Linear },
            series: series
                .into_iter()
                .enumerate()
                .map(|(i, s)| DataSeries { colour: chart::colour(i).into(), ..s })
                .collect(),
            ceilings: Vec::new(),
        }
        .layout(),
    )
}

/// Each run's ceilings: its measured and its published bandwidth, in bytes/s.
fn bandwidths(items: &[Item]) -> Vec<(String, f64)> {
    let mut seen: Vec<*const RunResults> = Vec::new();
    let mut out = Vec::new();
    for it in items {
        if seen.contains(&(it.results as *const _)) {
            continue;
        }
        seen.push(it.results as *const _);
        let run = if it.several { format!(" ({})", it.run) } else { String::new() };
        if let Some(p) = &it.results.machine.bandwidth {
            out.push((format!("measured {:.1} GB/s{run}", p.read_bytes_per_s as f64 / 1e9), p.read_bytes_per_s as f64));
        }
        if let Some(b) = it.results.machine.published_bandwidth_bytes_per_s {
            out.push((format!("published {:.0} GB/s{run}", b as f64 / 1e9), b as f64));
        }
    }
    out
}

/// The roofline: achieved GB/s against bytes read per decoded token, the machine's bandwidth as the ceiling.
fn roofline(items: &[Item]) -> Option<XyChart> {
    let pts: Vec<(String, DataPoint)> = items
        .iter()
        .filter_map(|it| {
            let r = it.b.roofline.as_ref()?;
            let key = it.key(&[it.b.engine.backend.as_str()]);
            let pct = r.percent_of_measured.map(|p| format!(", {p:.0}% of measured")).unwrap_or_default();
            let label = format!(
                "{}: {} per token, {:.2} GB/s{pct}",
                it.b.id,
                format_bytes(r.bytes_per_token),
                r.achieved_bytes_per_s / 1e9
            );
            Some((
                key,
                DataPoint::new(Spread::exact(r.bytes_per_token), Spread::exact(r.achieved_bytes_per_s / 1e9), label),
            ))
        })
        .collect();
    if pts.is_empty() {
        return None;
    }
    let xs: Vec<f64> = pts.iter().map(|p| p.1.x.mid).collect();
    let (x_lo, x_hi) = chart::extent(xs.iter().copied());
    let scale = Scale::fit(xs.iter().copied());
    let ceilings = bandwidths(items)
        .into_iter()
        .enumerate()
        .map(|(i, (label, bps))| (label, ceiling_colour(i), vec![(x_lo, bps / 1e9), (x_hi, bps / 1e9)]))
        .collect();
    Some(
        Plot {
            id: "roofline".into(),
            title: "The roofline: bandwidth achieved while decoding".into(),
            caption: "Bytes a decoded token reads (weights as stored in the GGUF + the KV cache at that context) × \
                      decode tok/s, against those bytes. Dashed: the machine's memory bandwidth, measured by the \
                      probe and (Apple chips) as published. Decode is bandwidth-bound when points sit near it."
                .into(),
            x: AxisSpec { label: "bytes read per decoded token".into(), unit: Unit::Bytes, scale },
            y: AxisSpec { label: "achieved GB/s".into(), unit: Unit::Number, scale: Scale::Linear },
            series: series_of(pts, false),
            ceilings,
        }
        .layout(),
    )
}

fn ceiling_colour(i: usize) -> String {
    ["#cf222e", "#bc4c00", "#8250df", "#bf8700"][i % 4].to_string()
}

/// Decode tok/s against the model's weight bytes (depth-0 benchmarks), with each bandwidth's bound
/// tok/s = bandwidth ÷ bytes per token drawn as a dashed curve.
fn size_vs_speed(items: &[Item]) -> Option<XyChart> {
    let pts: Vec<(String, DataPoint)> = items
        .iter()
        .filter(|it| it.b.prompt.depth == 0)
        .filter_map(|it| {
            let bytes = it.b.roofline.as_ref().map(|r| r.weight_bytes).unwrap_or(it.b.model.size_bytes) as f64;
            if bytes <= 0.0 {
                return None;
            }
            let y = spread(it.b, Metric::DecodeTps)?;
            let key = it.key(&[it.b.engine.backend.as_str(), &it.threads()]);
            let label = format!("{}: {} of weights", it.b.id, format_bytes(bytes));
            Some((key, DataPoint::new(Spread::exact(bytes), y, label)))
        })
        .collect();
    let mut sizes: Vec<u64> = pts.iter().map(|p| p.1.x.mid as u64).collect();
    sizes.sort();
    sizes.dedup();
    if sizes.len() < 2 {
        return None; // one model size: nothing to scale against
    }
    let (x_lo, x_hi) = (sizes[0] as f64, sizes[sizes.len() - 1] as f64);
    let ys: Vec<f64> = pts.iter().map(|p| p.1.y.mid).collect();
    let y_max = ys.iter().copied().fold(0.0, f64::max);
    // The bound curve over the plotted sizes, clipped to 4× the fastest point so it does not flatten the chart.
    let ceilings = bandwidths(items)
        .into_iter()
        .enumerate()
        .map(|(i, (label, bps))| {
            let curve: Vec<(f64, f64)> = (0..=24)
                .map(|k| x_lo * (x_hi / x_lo).powf(k as f64 / 24.0))
                .map(|x| (x, (bps / x).min(4.0 * y_max)))
                .collect();
            (format!("bound at {label}"), ceiling_colour(i), curve)
        })
        .collect();
    Some(
        Plot {
            id: "size-vs-speed".into(),
            title: "Model size against decode speed".into(),
            caption: "Decode tok/s (median, min–max whiskers) at depth 0 against the bytes of weights a token reads. \
                      Dashed: the bandwidth bound, bandwidth ÷ weight bytes (KV traffic left out), clipped at 4× the \
                      fastest point."
                .into(),
            x: AxisSpec { label: "weight bytes per decoded token".into(), unit: Unit::Bytes, scale: Scale::Log },
            y: AxisSpec { label: "decode tok/s".into(), unit: Unit::TokensPerSecond, scale: Scale::Log },
            series: series_of(pts, true),
            ceilings,
        }
        .layout(),
    )
}

/// The distribution of every inter-token gap of every timed run, one box per benchmark (at most 24).
fn itl(items: &[Item]) -> Option<BoxChart> {
    let rows: Vec<(String, String, String, Vec<f64>)> = items
        .iter()
        .filter_map(|it| {
            let gaps: Vec<f64> =
                it.b.runs
                    .iter()
                    .flat_map(|r| r.token_times_s.windows(2).map(|w| w[1] - w[0]))
                    .filter(|g| g.is_finite() && *g >= 0.0)
                    .collect();
            (gaps.len() >= 2).then(|| {
                let label = if it.several { format!("{} · {}", it.run, it.b.id) } else { it.b.id.to_string() };
                let title = format!("{label}: {} gaps", gaps.len());
                (label, title, chart::colour(0).to_string(), gaps)
            })
        })
        .take(24)
        .collect();
    box_chart(
        "itl",
        "Inter-token latency distributions",
        "Every gap between consecutive generated tokens of every timed run: whiskers p5–p95, box p25–p75, bar the \
         median, dot the largest gap.",
        "gap between tokens",
        Unit::Seconds,
        rows,
    )
}

pub fn render(runs: &[RunInput], generated_at: String) -> anyhow::Result<String> {
    anyhow::ensure!(!runs.is_empty(), "no results to report: name one or more results JSON files");
    let several = runs.len() > 1;
    let items: Vec<Item> = runs
        .iter()
        .flat_map(|r| r.results.benchmarks.iter().map(move |b| Item { run: &r.label, several, results: &r.results, b }))
        .collect();
    let mut charts = Vec::new();
    let mut missing = Vec::new();
    let mut add = |c: Option<XyChart>, why: &str| match c {
        Some(c) => charts.push(c),
        None => missing.push(why.to_string()),
    };
    let pareto_why = if items.iter().all(|it| it.b.model.synthetic.is_some()) {
        "The Pareto chart needs perplexities, and synthetic models are never scored (their text is noise)."
    } else {
        "The Pareto chart needs perplexities: add a [quality] section to the config (not --no-quality)."
    };
    add(pareto(&items), pareto_why);
    add(ttft_vs_prompt(&items), "TTFT against prompt length needs a benchmark with a TTFT.");
    add(
        decode_vs_depth(&items),
        "Decode against depth needs two depths or more of one benchmark: run with --depth 0,512,2048.",
    );
    add(roofline(&items), "The roofline needs decode runs of GGUF models with the tensor table (not servers).");
    add(
        size_vs_speed(&items),
        "Model size against decode speed needs two model sizes or more: e.g. synthetic models from `tokbench synth`.",
    );
    let boxes = itl(&items);
    if boxes.is_none() {
        missing.push("Inter-token latency needs runs with per-token times.".into());
    }
    let rows = items.iter().map(|it| row(it.run, it.b)).collect();
    let failures = runs
        .iter()
        .flat_map(|r| {
            r.results.failures.iter().map(move |f| {
                format!("{}{}: {}", if several { format!("{} · ", r.label) } else { String::new() }, f.id, f.error)
            })
        })
        .collect();
    let title = if several {
        format!("tokbench report: {} runs", runs.len())
    } else {
        format!("tokbench report: {}", runs[0].label)
    };
    let ctx = Ctx {
        title,
        generated_at,
        runs: runs.iter().map(header).collect(),
        several,
        rows,
        failures,
        charts,
        boxes,
        missing,
    };
    let tera = crate::report::html::tera_with_shared("run.html", TEMPLATE)?;
    Ok(tera.render("run.html", &tera::Context::from_serialize(&ctx)?)?)
}

/// Reads `paths` (results JSON), renders them and writes the page atomically to `out` (default: the first file
/// with `.html` for `.json`). Returns where it went.
pub fn write_report(paths: &[std::path::PathBuf], out: Option<&std::path::Path>) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    anyhow::ensure!(
        !paths.is_empty(),
        "no results to report: name one or more results JSON files (e.g. target/tokbench/latest.json)"
    );
    let labels = labels(paths);
    let mut runs = Vec::new();
    for (path, label) in paths.iter().zip(labels) {
        anyhow::ensure!(
            path.is_file(),
            "results file {} does not exist: run `tokbench run` (or `cargo xtask run`) first, or name a results JSON",
            path.display()
        );
        let results = RunResults::read(path).with_context(|| format!("reading {}", path.display()))?;
        runs.push(RunInput { label, results });
    }
    let html = render(&runs, humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string())?;
    let out = out.map(std::path::Path::to_path_buf).unwrap_or_else(|| paths[0].with_extension("html"));
    tokbench_record::results::write_atomic(&out, html.as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}
