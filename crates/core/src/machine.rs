//! This machine: its description for the record (cores, memory, OS; the class key baselines are keyed by, defined in
//! `tokbench_record::machine`) and the default thread count.
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
use tokbench_record::machine::{class_key, CoreKinds, Machine};

/// This machine, as the OS describes it.
pub fn detect() -> Machine {
    let sys = System::new_with_specifics(
        RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()).with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    let cpu = sys.cpus().first().map(|c| c.brand().trim().to_string()).filter(|b| !b.is_empty());
    let cpu = cpu.unwrap_or_else(|| "unknown-cpu".to_string());
    let logical_cores = sys.cpus().len().max(1);
    let physical_cores = System::physical_core_count().unwrap_or(logical_cores).max(1);
    let memory_bytes = sys.total_memory();
    let os = System::name().unwrap_or_else(|| std::env::consts::OS.to_string());
    let os_version = System::os_version().unwrap_or_default();
    let arch = std::env::consts::ARCH.to_string();
    let mut machine = Machine {
        cpu,
        physical_cores,
        logical_cores,
        memory_bytes,
        os,
        os_version,
        arch,
        features: features(),
        core_kinds: apple_core_kinds(),
        gpus: nvidia_gpus(),
        class_key: String::new(),
        bandwidth: None,
        published_bandwidth_bytes_per_s: None,
        gpu_bandwidth: None,
        gpu_published_bandwidth_bytes_per_s: None,
        energy_counter: crate::energy::meter().ok().map(|m| m.describe()),
    };
    machine.class_key = class_key(&machine, std::env::consts::OS);
    machine.published_bandwidth_bytes_per_s = crate::bandwidth::published(&machine).map(|(bytes, _)| bytes);
    machine.gpu_published_bandwidth_bytes_per_s =
        machine.gpus.first().and_then(|gpu| crate::bandwidth::published_gpu(gpu)).map(|(bytes, _)| bytes);
    machine
}

/// The widest SIMD level this CPU runs (what llama.cpp's kernels are chosen by) and the platform's accelerator.
fn features() -> Vec<String> {
    #[allow(unused_mut)]
    let mut out: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    out.push(if std::arch::is_x86_feature_detected!("avx512f") {
        "avx512"
    } else if std::arch::is_x86_feature_detected!("avx2") {
        "avx2"
    } else if std::arch::is_x86_feature_detected!("avx") {
        "avx"
    } else {
        "sse"
    });
    #[cfg(target_arch = "aarch64")]
    {
        out.push("neon");
        if std::arch::is_aarch64_feature_detected!("sve") {
            out.push("sve");
        }
    }
    // Apple silicon: llama.cpp and MLX both run on Metal there.
    if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
        out.push("metal");
    }
    out.into_iter().map(String::from).collect()
}

/// Performance and efficiency cores of an Apple chip (`sysctl hw.perflevel0/1.physicalcpu`); None elsewhere.
fn apple_core_kinds() -> Option<CoreKinds> {
    if !cfg!(target_os = "macos") {
        return None;
    }
    let read = |key: &str| -> Option<usize> {
        let out = std::process::Command::new("sysctl").args(["-n", key]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some(CoreKinds {
        performance: read("hw.perflevel0.physicalcpu")?,
        efficiency: read("hw.perflevel1.physicalcpu").unwrap_or(0),
    })
}

/// NVIDIA GPUs by name, when the driver's `nvidia-smi` is installed; empty otherwise.
fn nvidia_gpus() -> Vec<String> {
    let out = std::process::Command::new("nvidia-smi").args(["--query-gpu=name", "--format=csv,noheader"]).output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// Threads to use when the user says nothing: physical cores, as llama.cpp and llama-bench default to.
pub fn default_threads() -> usize {
    System::physical_core_count().unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_reports_this_machine() {
        let m = detect();
        assert!(m.physical_cores >= 1 && m.logical_cores >= m.physical_cores);
        assert!(m.memory_bytes > 0);
        assert!(m.class_key.contains(&format!("-{}c-", m.physical_cores)) || m.core_kinds.is_some(), "{}", m.class_key);
        // The SIMD level is in the key: AVX2-only and AVX-512 hosts of one CPU name are different classes.
        assert!(!m.features.is_empty() && m.class_key.contains(&format!("-{}-", m.features[0])), "{}", m.class_key);
    }
}
