//! The machine's memory read bandwidth, for the roofline: decoding a token reads every weight once, so decode
//! speed is bounded by bandwidth / bytes per token.
//!
//! Probe: one buffer far larger than any last-level cache (1 GiB by default; the largest caches of current chips
//! are ≤ 256 MiB), written once so every page is mapped; then `passes` timed passes, each reading the whole buffer
//! with one thread per logical core, each thread summing its contiguous share with independent accumulators (a
//! streaming read the compiler turns into vector loads). A pass's clock starts when the first thread starts and
//! stops when the last one finishes; the figure is the best pass (bytes / seconds), as STREAM and mbw report: the
//! machine's capability, not its average under the noise of the moment. Unoptimised, the loop itself would be the
//! bottleneck: the workspace's Cargo.toml compiles this crate at opt-level 3 in every profile.
//!
//! Apple's published figures for M-series chips are in [`published`], for the "% of published" column.
use std::sync::Barrier;
use std::time::Instant;

use tokbench_record::machine::{BandwidthProbe, Machine};

pub const DEFAULT_BUFFER_BYTES: usize = 1 << 30;
pub const DEFAULT_PASSES: usize = 10;

/// Measures read bandwidth with `threads` threads over a `buffer_bytes` buffer, best of `passes`.
pub fn probe(threads: usize, buffer_bytes: usize, passes: usize) -> BandwidthProbe {
    let threads = threads.max(1);
    let words = (buffer_bytes / 8).max(threads * 64);
    // Written (not just allocated) so the passes read mapped, distinct pages rather than the shared zero page.
    let buffer: Vec<u64> = (0..words as u64).collect();
    let share = words.div_ceil(threads);
    let mut best = 0.0f64;
    let mut checksum = 0u64;
    for _ in 0..passes.max(1) {
        let barrier = Barrier::new(threads);
        let spans: Vec<(Instant, Instant, u64)> = std::thread::scope(|s| {
            let handles: Vec<_> = buffer
                .chunks(share)
                .map(|part| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        let start = Instant::now();
                        let sum = sum_words(part);
                        (start, Instant::now(), sum)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("probe threads do not panic")).collect()
        });
        let start = spans.iter().map(|s| s.0).min().expect("at least one thread");
        let end = spans.iter().map(|s| s.1).max().expect("at least one thread");
        checksum = spans.iter().fold(checksum, |c, s| c.wrapping_add(s.2));
        let secs = (end - start).as_secs_f64();
        if secs > 0.0 {
            best = best.max((words * 8) as f64 / secs);
        }
    }
    std::hint::black_box(checksum);
    BandwidthProbe { read_bytes_per_s: best as u64, buffer_bytes: (words * 8) as u64, threads, passes: passes.max(1) }
}

/// The probe's figure for this boot of this machine: measured on the first call after each boot (about 2 s, 1 GiB)
/// and kept in `~/.cache/tokbench/bandwidth.json` (keyed by machine class and boot time), so every `tokbench run`
/// between boots reports the same ceiling and a test suite of short runs does not pay for it each time. `fresh`
/// measures again.
pub fn for_this_boot(machine: &Machine, fresh: bool) -> BandwidthProbe {
    let boot = sysinfo::System::boot_time();
    let key = format!("{} boot {boot}", machine.class_key);
    let path = cache_file();
    let mut cache: std::collections::BTreeMap<String, BandwidthProbe> = path
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    if let Some(hit) = cache.get(&key).filter(|_| !fresh) {
        return hit.clone();
    }
    let measured = probe(machine.logical_cores, DEFAULT_BUFFER_BYTES, DEFAULT_PASSES);
    if let Some(path) = path {
        cache.retain(|k, _| !k.starts_with(&format!("{} boot ", machine.class_key))); // earlier boots
        cache.insert(key, measured.clone());
        // A cache: when it cannot be written, the next run measures again.
        let _ = tokbench_record::results::write_atomic(&path, &serde_json::to_vec_pretty(&cache).unwrap_or_default());
    }
    measured
}

fn cache_file() -> Option<std::path::PathBuf> {
    let home = std::env::var_os("HOME")?;
    Some(std::path::PathBuf::from(home).join(".cache/tokbench/bandwidth.json"))
}

/// Sums words with eight independent accumulators, so the loop is bound by loads, not by an add chain.
fn sum_words(words: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let chunks = words.chunks_exact(8);
    let tail: u64 = chunks.remainder().iter().fold(0, |a, &w| a.wrapping_add(w));
    for chunk in chunks {
        for (a, &w) in acc.iter_mut().zip(chunk) {
            *a = a.wrapping_add(w);
        }
    }
    acc.iter().fold(tail, |a, &w| a.wrapping_add(w))
}

/// Apple's published unified-memory bandwidth of an M-series chip in bytes/s, by chip name and, where one name
/// covers two memory configurations (M3 Max, M4 Max), by core count. `None` for other machines.
pub fn published(machine: &Machine) -> Option<(u64, &'static str)> {
    let chip = machine.cpu.trim();
    let performance = machine.core_kinds.map(|k| k.performance);
    // (chip, GB/s); the binned Max parts have fewer performance cores and fewer memory channels.
    let gbs = match chip {
        "Apple M1" => 68.25,
        "Apple M1 Pro" => 200.0,
        "Apple M1 Max" => 400.0,
        "Apple M1 Ultra" => 800.0,
        "Apple M2" => 100.0,
        "Apple M2 Pro" => 200.0,
        "Apple M2 Max" => 400.0,
        "Apple M2 Ultra" => 800.0,
        "Apple M3" => 100.0,
        "Apple M3 Pro" => 150.0,
        "Apple M3 Max" if performance == Some(10) => 300.0,
        "Apple M3 Max" => 400.0,
        "Apple M3 Ultra" => 819.0,
        "Apple M4" => 120.0,
        "Apple M4 Pro" => 273.0,
        "Apple M4 Max" if performance == Some(10) => 410.0,
        "Apple M4 Max" => 546.0,
        "Apple M5" => 153.0,
        _ => return None,
    };
    Some(((gbs * 1e9) as u64, "Apple's published unified-memory bandwidth"))
}

/// NVIDIA's published memory bandwidth of a GPU, by the name the driver reports (`nvidia-smi`, NVML).
pub fn published_gpu(name: &str) -> Option<(u64, &'static str)> {
    let name = name.trim();
    // (name as the driver reports it, GB/s), the most specific first: "H100 PCIe" before "H100".
    let table: [(&str, f64); 14] = [
        ("H200 NVL", 4800.0),
        ("H200", 4800.0),
        ("H100 NVL", 3900.0),
        ("H100 PCIe", 2000.0),
        ("H100 80GB HBM3", 3350.0), // SXM5
        ("A100-SXM4-80GB", 2039.0),
        ("A100 80GB PCIe", 1935.0),
        ("A100-SXM4-40GB", 1555.0),
        ("A100-PCIE-40GB", 1555.0),
        ("L40S", 864.0),
        ("L4", 300.0),
        ("RTX 5090", 1792.0),
        ("RTX 4090", 1008.0),
        ("RTX 3090", 936.2),
    ];
    let gbs = table.iter().find(|(n, _)| name.contains(n))?.1;
    Some(((gbs * 1e9) as u64, "NVIDIA's published memory bandwidth"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_reads_the_whole_buffer_and_reports_a_rate() {
        let p = probe(2, 8 << 20, 2);
        assert_eq!(p.buffer_bytes, 8 << 20);
        assert_eq!((p.threads, p.passes), (2, 2));
        assert!(p.read_bytes_per_s > 0);
        assert_eq!(sum_words(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), 55);
    }

    #[test]
    fn published_figures_follow_the_chip_and_its_binning() {
        let mut m = crate::machine::detect();
        m.cpu = "Apple M4 Max".into();
        m.core_kinds = Some(tokbench_record::machine::CoreKinds { performance: 12, efficiency: 4 });
        assert_eq!(published(&m).map(|p| p.0), Some(546_000_000_000));
        m.core_kinds = Some(tokbench_record::machine::CoreKinds { performance: 10, efficiency: 4 });
        assert_eq!(published(&m).map(|p| p.0), Some(410_000_000_000));
        m.cpu = "AMD EPYC".into();
        assert_eq!(published(&m), None);
    }
}
