//! The roofline of decoding: a decoded token must read every weight once and the KV cache of its context, so
//! decode tokens/s × bytes per token is the memory bandwidth the engine achieved, and the machine's bandwidth is
//! the ceiling. "% of measured" compares it with the probe (`tokbench_core::bandwidth`), "% of published" with
//! the chip maker's figure.
//!
//! Bytes per decoded token = weight bytes + KV bytes per context token × mean context, where
//! - weight bytes are every tensor's bytes as stored in the GGUF, except the token-embedding table when the model
//!   has a separate output layer (a token then reads one row of it; a tied table is read whole by the output);
//! - KV bytes per context token = K and V of every layer and KV head at the cache's element size (F16 unless the
//!   engine reports another type);
//! - the mean context is depth + prompt tokens + generated tokens / 2: decode step i attends over
//!   depth + prompt + i cached tokens, i = 1 … generated - 1.
//!
//! Achieved bytes/s is computed per timed run (its bytes per token × its decode tokens/s) and summarised by the
//! median, like every speed metric.
use serde::{Deserialize, Serialize};

use crate::machine::Machine;

/// What a model's file says a decoded token reads (independent of the engine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodeTraffic {
    pub weight_bytes: u64,
    /// K and V elements per token of context, over all layers.
    pub kv_elements_per_context_token: u64,
}

/// A benchmark's place under the roofline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Roofline {
    /// Mean bytes a decoded token read, over the timed runs.
    pub bytes_per_token: f64,
    pub weight_bytes: u64,
    pub kv_bytes_per_context_token: f64,
    /// Median over timed runs of bytes per token × decode tokens/s.
    pub achieved_bytes_per_s: f64,
    /// The probe's figure for this machine, and achieved as a percentage of it.
    pub measured_bytes_per_s: Option<u64>,
    pub percent_of_measured: Option<f64>,
    pub published_bytes_per_s: Option<u64>,
    pub percent_of_published: Option<f64>,
    /// The ceiling is the GPU's (the model's layers were offloaded), not the host's memory.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gpu: bool,
}

/// Bytes per element of a KV-cache type; F16 when unknown.
pub fn kv_element_bytes(cache_type: Option<&str>) -> f64 {
    match cache_type.map(str::to_ascii_lowercase).as_deref() {
        Some("f32") => 4.0,
        Some("q8_0") => 34.0 / 32.0,
        Some("q4_0") => 18.0 / 32.0,
        Some("q4_1") => 20.0 / 32.0,
        Some("q5_0") => 22.0 / 32.0,
        Some("q5_1") => 24.0 / 32.0,
        _ => 2.0, // f16, bf16, unknown
    }
}

/// One timed run as the roofline reads it: prompt tokens, generated tokens, decode tokens/s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeRun {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub decode_tps: Option<f64>,
}

/// The roofline of a benchmark's runs (see `BenchmarkResult::roofline_at`); `None` without a decode speed.
pub fn compute(
    traffic: &DecodeTraffic,
    kv_cache_type: Option<&str>,
    runs: &[DecodeRun],
    depth: u64,
    machine: &Machine,
    on_gpu: bool,
) -> Option<Roofline> {
    let element = kv_element_bytes(kv_cache_type);
    let kv_per_token = traffic.kv_elements_per_context_token as f64 * element;
    let per_run: Vec<(f64, f64)> = runs
        .iter()
        .filter_map(|run| {
            let context = depth as f64 + run.prompt_tokens as f64 + run.generated_tokens as f64 / 2.0;
            let bytes = traffic.weight_bytes as f64 + kv_per_token * context;
            Some((bytes, bytes * run.decode_tps?))
        })
        .collect();
    if per_run.is_empty() {
        return None;
    }
    let bytes_per_token = per_run.iter().map(|r| r.0).sum::<f64>() / per_run.len() as f64;
    let median = crate::summary::median(&per_run.iter().map(|r| r.1).collect::<Vec<_>>());
    // An offloaded model reads its weights from GPU memory: the GPU's figures are the ceiling (none known: none
    // printed, rather than the host's, which would say nothing about it).
    let (measured, published) = if on_gpu {
        (machine.gpu_bandwidth.as_ref().map(|g| g.copy_bytes_per_s), machine.gpu_published_bandwidth_bytes_per_s)
    } else {
        (machine.bandwidth.as_ref().map(|p| p.read_bytes_per_s), machine.published_bandwidth_bytes_per_s)
    };
    let (measured, published) = (measured.filter(|&b| b > 0), published.filter(|&b| b > 0));
    Some(Roofline {
        bytes_per_token,
        weight_bytes: traffic.weight_bytes,
        kv_bytes_per_context_token: kv_per_token,
        achieved_bytes_per_s: median,
        measured_bytes_per_s: measured,
        percent_of_measured: measured.map(|m| 100.0 * median / m as f64),
        published_bytes_per_s: published,
        percent_of_published: published.map(|p| 100.0 * median / p as f64),
        gpu: on_gpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::BandwidthProbe;

    fn run(prompt_tokens: usize, generated_tokens: usize, decode_tps: f64) -> DecodeRun {
        DecodeRun { prompt_tokens, generated_tokens, decode_tps: Some(decode_tps) }
    }

    #[test]
    fn achieved_bandwidth_is_weights_plus_the_mean_contexts_cache_times_decode_speed() {
        let traffic = DecodeTraffic { weight_bytes: 1_000_000, kv_elements_per_context_token: 1000 };
        let mut machine: Machine = serde_json::from_str(
            r#"{"cpu":"x","physical_cores":2,"logical_cores":2,"memory_bytes":1,"os":"l","os_version":"1","arch":"x86_64","class_key":"k"}"#,
        )
        .unwrap();
        machine.bandwidth =
            Some(BandwidthProbe { read_bytes_per_s: 400_000_000, buffer_bytes: 1 << 30, threads: 2, passes: 5 });
        // Depth 100 + prompt 20 + 80 generated / 2 = a mean context of 160 tokens; F16 cache: 2 bytes an element.
        let runs = [run(20, 80, 100.0), run(20, 80, 120.0), run(20, 80, 110.0)];
        let r = compute(&traffic, Some("f16"), &runs, 100, &machine, false).unwrap();
        assert_eq!(r.bytes_per_token, 1_000_000.0 + 2000.0 * 160.0);
        assert_eq!(r.achieved_bytes_per_s, 1_320_000.0 * 110.0, "the median run");
        assert!((r.percent_of_measured.unwrap() - 100.0 * 145_200_000.0 / 400_000_000.0).abs() < 1e-9);
        assert_eq!(r.percent_of_published, None, "no published figure for this chip");
        // An f32 cache doubles the cache's share.
        let f32 = compute(&traffic, Some("f32"), &runs, 100, &machine, false).unwrap();
        assert_eq!(f32.kv_bytes_per_context_token, 4000.0);
        assert!(compute(&traffic, None, &[], 0, &machine, false).is_none());
        // Offloaded to a GPU: the GPU's figures are the ceiling; without them, none (never the host's).
        let gpu = compute(&traffic, Some("f16"), &runs, 100, &machine, true).unwrap();
        assert!(gpu.gpu && gpu.percent_of_measured.is_none() && gpu.percent_of_published.is_none());
        machine.gpu_bandwidth = Some(crate::machine::GpuBandwidth {
            device: "NVIDIA H100 80GB HBM3".into(),
            copy_bytes_per_s: 2_904_000_000,
            buffer_bytes: 1 << 30,
            passes: 10,
        });
        machine.gpu_published_bandwidth_bytes_per_s = Some(3_350_000_000);
        let gpu = compute(&traffic, Some("f16"), &runs, 100, &machine, true).unwrap();
        assert_eq!(gpu.achieved_bytes_per_s, r.achieved_bytes_per_s, "the same runs, another ceiling");
        assert!((gpu.percent_of_measured.unwrap() - 100.0 * 145_200_000.0 / 2_904_000_000.0).abs() < 1e-9);
        assert!((gpu.percent_of_published.unwrap() - 100.0 * 145_200_000.0 / 3_350_000_000.0).abs() < 1e-9);
    }
}
