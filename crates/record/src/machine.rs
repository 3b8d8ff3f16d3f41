//! Which machine a result came from, and the stable *machine class* that baselines are keyed by. Detecting it is
//! `tokbench_core::machine::detect`.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU or chip name as the OS reports it, e.g. `Apple M2 Pro` or `AMD EPYC`.
    pub cpu: String,
    pub physical_cores: usize,
    pub logical_cores: usize,
    pub memory_bytes: u64,
    pub os: String,
    pub os_version: String,
    pub arch: String,
    /// What the CPU and the platform offer that changes inference speed: the widest SIMD level (`avx512`, `avx2`,
    /// `avx`, `sse`; `neon`, `sve`) and accelerators (`metal` on Apple silicon). Empty in results made before
    /// tokbench recorded them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// Apple silicon: performance and efficiency cores (their sum is `physical_cores`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_kinds: Option<CoreKinds>,
    /// GPUs the driver reports (NVIDIA's `nvidia-smi`), e.g. `NVIDIA H200`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<String>,
    /// Stable key for baselines: built only from things that do not drift between boots (see [`class_key`]).
    pub class_key: String,
    /// Memory read bandwidth measured by `tokbench_core::bandwidth::probe` at the start of the run (the roofline's
    /// ceiling); absent when the run skipped the probe. Not part of the class: it is a measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<BandwidthProbe>,
    /// The chip maker's published memory bandwidth, bytes/s (Apple M-series), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_bandwidth_bytes_per_s: Option<u64>,
    /// The GPU's memory bandwidth, measured where a benchmark offloads layers to a GPU (`tokbench_llama::
    /// device_bandwidth`): the roofline's ceiling for those benchmarks instead of the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_bandwidth: Option<GpuBandwidth>,
    /// The GPU maker's published memory bandwidth of the first GPU, bytes/s, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_published_bandwidth_bytes_per_s: Option<u64>,
    /// The energy counter runs were measured with (e.g. `RAPL package-0 (powercap)`); None where there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_counter: Option<String>,
}

/// One run of the memory-bandwidth probe: best of `passes` multi-threaded streaming reads of a `buffer_bytes` buffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BandwidthProbe {
    pub read_bytes_per_s: u64,
    pub buffer_bytes: u64,
    pub threads: usize,
    pub passes: usize,
}

/// A GPU's copy bandwidth: (read + write) bytes over the fastest of `passes` device-to-device copies of
/// `buffer_bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuBandwidth {
    pub device: String,
    pub copy_bytes_per_s: u64,
    pub buffer_bytes: u64,
    pub passes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreKinds {
    pub performance: usize,
    pub efficiency: usize,
}

/// `amd-epyc-2c-24g-avx2-linux-x86_64`, `apple-m2-pro-6p4e-32g-neon-metal-macos-aarch64`,
/// `intel-xeon-8c-64g-avx512-nvidia-h200-linux-x86_64`: chip; physical cores (performance `p` and efficiency `e`
/// where they differ); memory rounded to whole GiB (the reported total moves by a few MiB between boots); SIMD and
/// accelerator features; the first GPU; OS family and architecture. Everything here changes the numbers: an AVX2-only
/// and an AVX-512 host of the same CPU name decode tens of percent apart. The OS *version* is left out on purpose: a
/// point release should not orphan every baseline.
pub fn class_key(m: &Machine, os_family: &str) -> String {
    let gib = (m.memory_bytes as f64 / (1u64 << 30) as f64).round() as u64;
    let cores = match m.core_kinds {
        Some(k) if k.efficiency > 0 => format!("{}p{}e", k.performance, k.efficiency),
        _ => format!("{}c", m.physical_cores),
    };
    let mut parts = vec![slug(&m.cpu), cores, format!("{gib}g")];
    parts.extend(m.features.iter().map(|f| slug(f)));
    parts.extend(m.gpus.first().map(|g| slug(g)));
    parts.push(slug(os_family));
    parts.push(slug(&m.arch));
    parts.retain(|p| !p.is_empty());
    parts.join("-")
}

/// The key of tokbench's first machine classes (chip, cores, GiB, OS, arch: no features), which baselines committed
/// before features were part of the key still carry. See `tokbench_gate::baseline::migrate`.
pub fn legacy_class_key(cpu: &str, physical_cores: usize, memory_bytes: u64, os_family: &str, arch: &str) -> String {
    let gib = (memory_bytes as f64 / (1u64 << 30) as f64).round() as u64;
    format!("{}-{physical_cores}c-{gib}g-{}-{}", slug(cpu), slug(os_family), slug(arch))
}

/// The parts in which two machines' classes differ, each as `what: a ≠ b`, for messages.
pub fn class_differences(a: &Machine, b: &Machine) -> Vec<String> {
    let mut out = Vec::new();
    let mut differ = |what: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{what}: {x} ≠ {y}"));
        }
    };
    differ("CPU", a.cpu.clone(), b.cpu.clone());
    differ("cores", a.physical_cores.to_string(), b.physical_cores.to_string());
    differ("P/E cores", format!("{:?}", a.core_kinds), format!("{:?}", b.core_kinds));
    let gib = |m: &Machine| format!("{} GiB", (m.memory_bytes as f64 / (1u64 << 30) as f64).round());
    differ("memory", gib(a), gib(b));
    let list = |v: &[String]| if v.is_empty() { "none recorded".to_string() } else { v.join(" ") };
    differ("SIMD/accelerators", list(&a.features), list(&b.features));
    differ("GPU", list(&a.gpus), list(&b.gpus));
    differ("OS", a.os.clone(), b.os.clone());
    differ("arch", a.arch.clone(), b.arch.clone());
    out
}

fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(cpu: &str, cores: usize, memory_bytes: u64, features: &[&str], arch: &str) -> Machine {
        Machine {
            cpu: cpu.into(),
            physical_cores: cores,
            logical_cores: cores,
            memory_bytes,
            os: "Debian".into(),
            os_version: "12".into(),
            arch: arch.into(),
            features: features.iter().map(|f| f.to_string()).collect(),
            core_kinds: None,
            gpus: vec![],
            class_key: String::new(),
            bandwidth: None,
            published_bandwidth_bytes_per_s: None,
            gpu_bandwidth: None,
            gpu_published_bandwidth_bytes_per_s: None,
            energy_counter: None,
        }
    }

    #[test]
    fn the_class_separates_what_changes_the_numbers_and_ignores_drift() {
        let epyc = |features: &[&str], mem: u64| machine("AMD EPYC", 2, mem, features, "x86_64");
        let avx2 = class_key(&epyc(&["avx2"], 24 * (1 << 30) - 3 * (1 << 20)), "linux");
        assert_eq!(avx2, "amd-epyc-2c-24g-avx2-linux-x86_64");
        assert_eq!(avx2, class_key(&epyc(&["avx2"], 24 * (1 << 30) + 5 * (1 << 20)), "linux"));
        assert_eq!(class_key(&epyc(&["avx512"], 24 << 30), "linux"), "amd-epyc-2c-24g-avx512-linux-x86_64");
        let mut m2 = machine("Apple M2 Pro", 10, 32 << 30, &["neon", "metal"], "aarch64");
        m2.core_kinds = Some(CoreKinds { performance: 6, efficiency: 4 });
        assert_eq!(class_key(&m2, "macos"), "apple-m2-pro-6p4e-32g-neon-metal-macos-aarch64");
        let mut gpu = machine("  Intel(R) Xeon(R) ", 16, 128 << 30, &["avx512"], "x86_64");
        gpu.gpus = vec!["NVIDIA H200".into()];
        assert_eq!(class_key(&gpu, "linux"), "intel-r-xeon-r-16c-128g-avx512-nvidia-h200-linux-x86_64");
        assert_eq!(legacy_class_key("AMD EPYC", 2, 24 << 30, "linux", "x86_64"), "amd-epyc-2c-24g-linux-x86_64");
    }

    #[test]
    fn differences_are_named_part_by_part() {
        let a = machine("AMD EPYC", 2, 24 << 30, &["avx2"], "x86_64");
        let b = machine("AMD EPYC", 2, 24 << 30, &["avx512"], "x86_64");
        assert_eq!(class_differences(&a, &b), vec!["SIMD/accelerators: avx2 ≠ avx512".to_string()]);
        assert!(class_differences(&a, &a).is_empty());
    }
}
