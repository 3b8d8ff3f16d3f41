//! The chart code both HTML reports share (the gate's and `tokbench report`'s): data → SVG coordinates, here in
//! Rust, so only numbers and escaped labels reach the templates; `charts.html.tera` draws them.
//!
//! An [`XyChart`] is points (median with min–max whiskers), lines through them and dashed ceilings on linear or
//! log axes; a [`BoxChart`] is one horizontal box plot per row (a distribution, e.g. inter-token latency).
use serde::Serialize;
use tokbench_record::metric::{format_value, Unit};

// Plot area (px), shared with the templates' SVG viewBoxes.
pub const W: f64 = 560.0;
pub const H: f64 = 300.0;
pub const ML: f64 = 60.0;
pub const MR: f64 = 16.0;
pub const MT: f64 = 12.0;
pub const MB: f64 = 40.0;

/// Series colours, in order: distinguishable, and readable on white.
pub const PALETTE: [&str; 8] = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#1b7c83", "#bc4c00", "#59636e"];

pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// `v` from `lo..hi` to `p0..p1`, clamped, to 0.1 px.
pub fn lin(v: f64, lo: f64, hi: f64, p0: f64, p1: f64) -> f64 {
    if hi <= lo {
        return (p0 + p1) / 2.0;
    }
    let t = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
    ((p0 + t * (p1 - p0)) * 10.0).round() / 10.0
}

/// A tick's text: times, bytes and energies in their units; other numbers as short as they are exact.
pub fn tick_label(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Seconds | Unit::Bytes | Unit::JoulesPerToken => format_value(unit, v),
        _ => {
            let s = format!("{:.3}", (v * 1000.0).round() / 1000.0);
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    }
}

/// The smallest and largest of the finite `values`; (∞, −∞) when there are none.
pub fn extent(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)))
}

/// Axis range with a little padding, and ~5 round ticks.
pub fn axis(values: impl Iterator<Item = f64>, unit: Unit) -> (f64, f64, Vec<(f64, String)>) {
    let (mut lo, mut hi) = extent(values);
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-12 * hi.abs().max(1.0) {
        let pad = hi.abs().max(1e-9) * 0.1;
        (lo, hi) = (lo - pad, hi + pad);
    }
    let pad = (hi - lo) * 0.08;
    // Times, rates and bytes are never negative: do not pad the axis below zero.
    (lo, hi) = (if lo >= 0.0 { (lo - pad).max(0.0) } else { lo - pad }, hi + pad);
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let mut ticks = Vec::new();
    let mut t = (lo / step).ceil() * step;
    while t <= hi + step * 1e-9 && ticks.len() < 12 {
        ticks.push((t, tick_label(unit, t)));
        t += step;
    }
    (lo, hi, ticks)
}

/// A log axis over the positive values: padded by a few percent, ticks at 1, 2, 5 × 10^k (thinned to ≤ 8).
fn log_axis(values: impl Iterator<Item = f64>, unit: Unit) -> (f64, f64, Vec<(f64, String)>) {
    let (mut lo, mut hi) = extent(values.filter(|v| *v > 0.0));
    if !lo.is_finite() {
        (lo, hi) = (1.0, 10.0);
    }
    if hi / lo < 1.5 {
        (lo, hi) = (lo / 1.25, hi * 1.25);
    }
    let pad = (hi / lo).powf(0.05);
    (lo, hi) = (lo / pad, hi * pad);
    let mut ticks = Vec::new();
    if unit == Unit::Bytes {
        // Bytes print in binary units: ticks at powers of two (every second or third one when there are many).
        let (k0, k1) = (lo.log2().ceil() as i32, hi.log2().floor() as i32);
        let every = ((k1 - k0 + 1) as usize).div_ceil(8).max(1);
        for k in (k0..=k1).step_by(every) {
            let t = 2f64.powi(k);
            ticks.push((t, tick_label(unit, t)));
        }
        return (lo, hi, ticks);
    }
    for k in lo.log10().floor() as i32..=hi.log10().ceil() as i32 {
        for m in [1.0, 2.0, 5.0] {
            let t = m * 10f64.powi(k);
            if t >= lo && t <= hi {
                ticks.push((t, tick_label(unit, t)));
            }
        }
    }
    if ticks.len() > 8 {
        ticks.retain(|(t, _)| (t.log10().fract().abs() < 1e-9) || (t.log10().fract() - 1.0).abs() < 1e-9);
    }
    (lo, hi, ticks)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    Log,
}

impl Scale {
    /// Log when the values span a factor of 8 or more (prompt lengths 16…8192, model sizes 0.1…13 B).
    pub fn fit(values: impl Iterator<Item = f64>) -> Scale {
        let (lo, hi) = extent(values.filter(|v| *v > 0.0));
        if lo.is_finite() && hi / lo >= 8.0 {
            Scale::Log
        } else {
            Scale::Linear
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    pub pos: f64,
    pub label: String,
}

/// A point in pixels: the median, whiskers from the smallest to the largest value.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub x_lo: f64,
    pub x_hi: f64,
    pub y_lo: f64,
    pub y_hi: f64,
    /// Hover text.
    pub label: String,
    /// A CSS class for the point's group (the gate's `cur`, `base`, `opt`); empty: the series' colour.
    pub class: String,
    pub hollow: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub label: String,
    pub colour: String,
    /// `x,y x,y …` through the points in x order; empty: points only.
    pub line: String,
    pub dashed: bool,
    pub points: Vec<Point>,
}

/// A dashed reference line (a bandwidth ceiling), labelled at its right end.
#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    pub label: String,
    pub colour: String,
    pub points: String,
    pub label_x: f64,
    pub label_y: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct XyChart {
    /// The figure's element id.
    pub id: String,
    pub title: String,
    pub caption: String,
    pub x_label: String,
    pub y_label: String,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    pub series: Vec<Series>,
    pub ceilings: Vec<Ceiling>,
    /// Draw a legend (several series).
    pub legend: bool,
}

/// A value with its spread: median, min, max.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub mid: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Spread {
    pub fn exact(v: f64) -> Spread {
        Spread { mid: v, lo: v, hi: v }
    }

    /// Median, min and max of `xs` (None when empty).
    pub fn of(xs: &[f64]) -> Option<Spread> {
        let xs: Vec<f64> = xs.iter().copied().filter(|v| v.is_finite()).collect();
        if xs.is_empty() {
            return None;
        }
        let (lo, hi) = extent(xs.iter().copied());
        Some(Spread { mid: tokbench_record::summary::median(&xs), lo, hi })
    }
}

/// A data point before layout.
#[derive(Debug, Clone)]
pub struct DataPoint {
    pub x: Spread,
    pub y: Spread,
    pub label: String,
    pub class: String,
    pub hollow: bool,
}

impl DataPoint {
    pub fn new(x: Spread, y: Spread, label: String) -> DataPoint {
        DataPoint { x, y, label, class: String::new(), hollow: false }
    }
}

#[derive(Debug, Clone)]
pub struct DataSeries {
    pub label: String,
    pub colour: String,
    /// Join the points with a line, in x order.
    pub joined: bool,
    pub dashed: bool,
    /// Draw each point (false: the line alone, e.g. one point per generated token).
    pub markers: bool,
    pub points: Vec<DataPoint>,
}

impl DataSeries {
    /// Points joined by a solid line, each drawn.
    pub fn line(label: String, colour: &str, points: Vec<DataPoint>) -> DataSeries {
        DataSeries { label, colour: colour.to_string(), joined: true, dashed: false, markers: true, points }
    }

    /// Points alone.
    pub fn points(label: String, colour: &str, points: Vec<DataPoint>) -> DataSeries {
        DataSeries { label, colour: colour.to_string(), joined: false, dashed: false, markers: true, points }
    }
}

/// An axis: its unit (tick labels), scale and title.
#[derive(Debug, Clone)]
pub struct AxisSpec {
    pub label: String,
    pub unit: Unit,
    pub scale: Scale,
}

/// Data-space chart; [`Plot::layout`] turns it into pixels.
#[derive(Debug, Clone)]
pub struct Plot {
    pub id: String,
    pub title: String,
    pub caption: String,
    pub x: AxisSpec,
    pub y: AxisSpec,
    pub series: Vec<DataSeries>,
    /// Reference lines as data points (drawn dashed, labelled); they widen the axes to fit.
    pub ceilings: Vec<(String, String, Vec<(f64, f64)>)>,
}

impl Plot {
    pub fn is_empty(&self) -> bool {
        self.series.iter().all(|s| s.points.is_empty())
    }

    pub fn layout(&self) -> XyChart {
        let finite_pts = || self.series.iter().flat_map(|s| &s.points);
        let xs = || {
            finite_pts()
                .flat_map(|p| [p.x.mid, p.x.lo, p.x.hi])
                .chain(self.ceilings.iter().flat_map(|c| c.2.iter().map(|p| p.0)))
                .collect::<Vec<_>>()
        };
        let ys = || {
            finite_pts()
                .flat_map(|p| [p.y.mid, p.y.lo, p.y.hi])
                .chain(self.ceilings.iter().flat_map(|c| c.2.iter().map(|p| p.1)))
                .collect::<Vec<_>>()
        };
        let range = |values: Vec<f64>, spec: &AxisSpec| match spec.scale {
            Scale::Linear => axis(values.into_iter(), spec.unit),
            Scale::Log => log_axis(values.into_iter(), spec.unit),
        };
        let (x0, x1, xt) = range(xs(), &self.x);
        let (y0, y1, yt) = range(ys(), &self.y);
        let map = |v: f64, lo: f64, hi: f64, scale: Scale, p0: f64, p1: f64| match scale {
            Scale::Linear => lin(v, lo, hi, p0, p1),
            Scale::Log => lin(v.max(lo).log10(), lo.log10(), hi.log10(), p0, p1),
        };
        let sx = |v: f64| map(v, x0, x1, self.x.scale, ML, W - MR);
        let sy = |v: f64| map(v, y0, y1, self.y.scale, H - MB, MT);
        let series = self
            .series
            .iter()
            .map(|s| {
                let mut pts: Vec<&DataPoint> = s.points.iter().collect();
                pts.sort_by(|a, b| a.x.mid.total_cmp(&b.x.mid));
                let line = if s.joined && pts.len() >= 2 {
                    pts.iter().map(|p| format!("{},{}", sx(p.x.mid), sy(p.y.mid))).collect::<Vec<_>>().join(" ")
                } else {
                    String::new()
                };
                Series {
                    label: s.label.clone(),
                    colour: s.colour.clone(),
                    line,
                    dashed: s.dashed,
                    points: pts
                        .into_iter()
                        .filter(|_| s.markers)
                        .map(|p| Point {
                            x: sx(p.x.mid),
                            y: sy(p.y.mid),
                            x_lo: sx(p.x.lo),
                            x_hi: sx(p.x.hi),
                            y_lo: sy(p.y.lo),
                            y_hi: sy(p.y.hi),
                            label: p.label.clone(),
                            class: p.class.clone(),
                            hollow: p.hollow,
                        })
                        .collect(),
                }
            })
            .collect::<Vec<_>>();
        let ceilings = self
            .ceilings
            .iter()
            .map(|(label, colour, pts)| {
                let px: Vec<(f64, f64)> = pts.iter().map(|&(x, y)| (sx(x), sy(y))).collect();
                let (lx, ly) = px.last().copied().unwrap_or((W - MR, MT));
                Ceiling {
                    label: label.clone(),
                    colour: colour.clone(),
                    points: px.iter().map(|(x, y)| format!("{x},{y}")).collect::<Vec<_>>().join(" "),
                    label_x: lx.min(W - MR),
                    label_y: (ly - 4.0).max(MT + 8.0),
                }
            })
            .collect();
        XyChart {
            id: self.id.clone(),
            title: self.title.clone(),
            caption: self.caption.clone(),
            x_label: self.x.label.clone(),
            y_label: self.y.label.clone(),
            x_ticks: xt.into_iter().map(|(v, label)| Tick { pos: sx(v), label }).collect(),
            y_ticks: yt.into_iter().map(|(v, label)| Tick { pos: sy(v), label }).collect(),
            legend: series.len() > 1,
            series,
            ceilings,
        }
    }
}

/// Horizontal box plots, one row each: whiskers p5…p95, box p25…p75, the median, the maximum as a dot.
#[derive(Debug, Clone, Serialize)]
pub struct BoxChart {
    pub id: String,
    pub title: String,
    pub caption: String,
    pub x_label: String,
    pub height: f64,
    pub axis_y: f64,
    pub x_ticks: Vec<Tick>,
    pub rows: Vec<BoxRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BoxRow {
    pub label: String,
    pub title: String,
    pub colour: String,
    pub y: f64,
    pub p5: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p95: f64,
    pub max: f64,
}

/// The `q` quantile (0..=1) of sorted values, interpolated linearly.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    let next = sorted[(i + 1).min(sorted.len() - 1)];
    sorted[i] + frac * (next - sorted[i])
}

/// Rows of (label, hover text, colour, values) → box plots on one shared axis (log when the values span ≥ 8×).
pub fn box_chart(
    id: &str,
    title: &str,
    caption: &str,
    x_label: &str,
    unit: Unit,
    rows: Vec<(String, String, String, Vec<f64>)>,
) -> Option<BoxChart> {
    const ROW: f64 = 34.0;
    let rows: Vec<_> = rows
        .into_iter()
        .filter_map(|(l, t, c, mut v)| {
            v.retain(|x| x.is_finite());
            v.sort_by(f64::total_cmp);
            (!v.is_empty()).then_some((l, t, c, v))
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let all = || rows.iter().flat_map(|r| r.3.iter().copied());
    let scale = Scale::fit(all());
    let (lo, hi, ticks) = match scale {
        Scale::Linear => axis(all().chain([0.0]), unit),
        Scale::Log => log_axis(all(), unit),
    };
    let sx = |v: f64| match scale {
        Scale::Linear => lin(v, lo, hi, ML, W - MR),
        Scale::Log => lin(v.max(lo).log10(), lo.log10(), hi.log10(), ML, W - MR),
    };
    let axis_y = MT + ROW * rows.len() as f64 + 4.0;
    Some(BoxChart {
        id: id.into(),
        title: title.into(),
        caption: caption.into(),
        x_label: x_label.into(),
        height: axis_y + 36.0,
        axis_y,
        x_ticks: ticks.into_iter().map(|(v, label)| Tick { pos: sx(v), label }).collect(),
        rows: rows
            .into_iter()
            .enumerate()
            .map(|(i, (label, title, colour, v))| BoxRow {
                label,
                title,
                colour,
                y: MT + ROW * i as f64 + 22.0,
                p5: sx(quantile(&v, 0.05)),
                p25: sx(quantile(&v, 0.25)),
                p50: sx(quantile(&v, 0.5)),
                p75: sx(quantile(&v, 0.75)),
                p95: sx(quantile(&v, 0.95)),
                max: sx(v[v.len() - 1]),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axes_map_decades_evenly_and_tick_round_numbers() {
        let plot = Plot {
            id: "t".into(),
            title: String::new(),
            caption: String::new(),
            x: AxisSpec { label: "x".into(), unit: Unit::Number, scale: Scale::Log },
            y: AxisSpec { label: "y".into(), unit: Unit::Number, scale: Scale::Linear },
            series: vec![DataSeries {
                label: "s".into(),
                colour: colour(0).into(),
                joined: true,
                dashed: false,
                markers: true,
                points: [10.0, 100.0, 1000.0]
                    .iter()
                    .map(|&x| DataPoint::new(Spread::exact(x), Spread::exact(1.0), String::new()))
                    .collect(),
            }],
            ceilings: vec![],
        };
        let c = plot.layout();
        let xs: Vec<f64> = c.series[0].points.iter().map(|p| p.x).collect();
        assert!(((xs[1] - xs[0]) - (xs[2] - xs[1])).abs() < 0.2, "{xs:?}");
        let labels: Vec<&str> = c.x_ticks.iter().map(|t| t.label.as_str()).collect();
        assert!(labels.contains(&"100") && labels.contains(&"1000"), "{labels:?}");
        assert_eq!(c.series[0].line.split(' ').count(), 3);
    }

    #[test]
    fn quantiles_interpolate_and_boxes_order_left_to_right() {
        let v: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.05), 5.0);
        assert_eq!(quantile(&[1.0, 2.0], 0.5), 1.5);
        let c = box_chart("b", "", "", "ms", Unit::Number, vec![("a".into(), "".into(), "#000".into(), v)]).unwrap();
        let r = &c.rows[0];
        assert!(r.p5 < r.p25 && r.p25 < r.p50 && r.p50 < r.p75 && r.p75 < r.p95 && r.p95 < r.max, "{r:?}");
        assert!(box_chart("b", "", "", "ms", Unit::Number, vec![("a".into(), "".into(), "".into(), vec![])]).is_none());
    }
}
