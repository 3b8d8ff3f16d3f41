//! This machine: its description for the record (cores, memory, OS; the class key baselines are keyed by, defined in
//! `tokbench_record::machine`) and the default thread count.
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
use tokbench_record::machine::{class_key, Machine};

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
    let class_key = class_key(&cpu, physical_cores, memory_bytes, std::env::consts::OS, &arch);
    Machine { cpu, physical_cores, logical_cores, memory_bytes, os, os_version, arch, class_key }
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
        assert!(m.class_key.contains(&format!("-{}c-", m.physical_cores)), "{}", m.class_key);
    }
}
