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
    /// Stable key for baselines: built only from things that do not drift between boots (see [`class_key`]).
    pub class_key: String,
}

/// `amd-epyc-2c-23g-linux-x86_64`, `apple-m2-pro-10c-32g-macos-aarch64`: chip, physical cores, memory rounded to whole
/// GiB (the reported total moves by a few MiB between boots and kernel versions), OS family and architecture.
/// The OS *version* is left out on purpose: a point release should not orphan every baseline.
pub fn class_key(cpu: &str, physical_cores: usize, memory_bytes: u64, os_family: &str, arch: &str) -> String {
    let gib = (memory_bytes as f64 / (1u64 << 30) as f64).round() as u64;
    format!("{}-{physical_cores}c-{gib}g-{}-{}", slug(cpu), slug(os_family), slug(arch))
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

    #[test]
    fn class_key_is_stable_under_small_memory_drift_and_readable() {
        let a = class_key("Apple M2 Pro", 10, 32 * (1 << 30) - 3 * (1 << 20), "macos", "aarch64");
        let b = class_key("Apple M2 Pro", 10, 32 * (1 << 30) + 5 * (1 << 20), "macos", "aarch64");
        assert_eq!(a, "apple-m2-pro-10c-32g-macos-aarch64");
        assert_eq!(a, b);
        assert_ne!(a, class_key("Apple M2 Pro", 12, 32 << 30, "macos", "aarch64"));
        assert_eq!(
            class_key("  Intel(R) Core(TM) i7 ", 4, 16 << 30, "linux", "x86_64"),
            "intel-r-core-tm-i7-4c-16g-linux-x86_64"
        );
    }
}
