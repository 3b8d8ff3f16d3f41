//! Energy counters, where the machine has one: Linux RAPL through powercap sysfs (Intel, and AMD Zen through the
//! same driver). A run's energy is the counter's difference over its prefill window (from the start of the run to
//! prefill done) and its decode window (prefill done to the last token); joules per token divide them by the
//! prompt tokens and by the decoded tokens (generated − 1). No counter, no number: results then carry none and
//! tables print `n/a (no energy counter)`.
//!
//! RAPL counts the whole package (every core, the uncore, for `psys` the platform), not tokbench alone: on a busy
//! machine the figure includes others' work. It updates about every millisecond, so windows of a few ms are coarse.
//! Not covered yet: NVIDIA NVML (CUDA builds) and macOS `powermetrics` (needs root).
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One RAPL zone: a top-level powercap zone (`intel-rapl:N`) and the range its counter wraps at.
#[derive(Debug, Clone, PartialEq)]
pub struct RaplZone {
    pub name: String,
    pub energy_uj: PathBuf,
    pub max_energy_range_uj: u64,
}

/// The machine's energy counter: the sum of its RAPL package zones (or its `psys` zone where there are none).
#[derive(Debug, Clone, PartialEq)]
pub struct EnergyMeter {
    pub zones: Vec<RaplZone>,
}

/// A reading of every zone, in microjoules.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading(Vec<u64>);

/// Why there is no meter, for the record and the table.
pub const NO_COUNTER: &str = "n/a (no energy counter)";

impl EnergyMeter {
    /// Finds RAPL zones under a powercap root (`/sys/class/powercap` on Linux). `Err` says why there is no meter.
    pub fn rapl_in(root: &Path) -> Result<EnergyMeter, String> {
        let entries = std::fs::read_dir(root).map_err(|e| format!("{}: {e}", root.display()))?;
        let mut packages = Vec::new();
        let mut platform = Vec::new();
        let mut unreadable = None;
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        dirs.sort();
        for dir in dirs {
            let file = dir.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            // Top-level zones only (`intel-rapl:0`, not its sub-zone `intel-rapl:0:0`): sub-zones are inside them.
            if !file.starts_with("intel-rapl:") || file.matches(':').count() != 1 {
                continue;
            }
            let name = std::fs::read_to_string(dir.join("name")).unwrap_or_default().trim().to_string();
            let energy_uj = dir.join("energy_uj");
            if let Err(e) = read_u64(&energy_uj) {
                unreadable = Some(format!("{}: {e}", energy_uj.display()));
                continue;
            }
            let max_energy_range_uj = read_u64(&dir.join("max_energy_range_uj")).unwrap_or(u64::MAX);
            let zone = RaplZone { name: name.clone(), energy_uj, max_energy_range_uj };
            if name.starts_with("package") {
                packages.push(zone);
            } else if name == "psys" {
                platform.push(zone);
            }
        }
        let zones = if packages.is_empty() { platform } else { packages };
        if zones.is_empty() {
            return Err(unreadable.map_or_else(
                || format!("no RAPL package zone under {}", root.display()),
                |e| format!("RAPL counters not readable ({e}): since Linux 5.10 energy_uj is root-only"),
            ));
        }
        Ok(EnergyMeter { zones })
    }

    pub fn read(&self) -> Option<Reading> {
        self.zones.iter().map(|z| read_u64(&z.energy_uj).ok()).collect::<Option<Vec<_>>>().map(Reading)
    }

    /// Joules between two readings, each zone's counter unwrapped once (it wraps at `max_energy_range_uj`).
    pub fn joules(&self, from: &Reading, to: &Reading) -> f64 {
        let uj: u64 = self
            .zones
            .iter()
            .zip(from.0.iter().zip(&to.0))
            .map(|(z, (&a, &b))| if b >= a { b - a } else { z.max_energy_range_uj.saturating_sub(a) + b })
            .sum();
        uj as f64 / 1e6
    }

    /// e.g. `RAPL package-0 + package-1 (powercap)`.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self.zones.iter().map(|z| z.name.as_str()).collect();
        format!("RAPL {} (powercap)", names.join(" + "))
    }
}

fn read_u64(path: &Path) -> std::io::Result<u64> {
    std::fs::read_to_string(path)?.trim().parse().map_err(std::io::Error::other)
}

/// This machine's meter, found once per process (`$TOKBENCH_POWERCAP_ROOT` replaces `/sys/class/powercap`, for
/// tests). `Err` says why there is none.
pub fn meter() -> Result<&'static EnergyMeter, &'static str> {
    static METER: OnceLock<Result<EnergyMeter, String>> = OnceLock::new();
    let found = METER.get_or_init(|| {
        let root = std::env::var_os("TOKBENCH_POWERCAP_ROOT")
            .map_or_else(|| PathBuf::from("/sys/class/powercap"), PathBuf::from);
        if cfg!(target_os = "linux") || std::env::var_os("TOKBENCH_POWERCAP_ROOT").is_some() {
            EnergyMeter::rapl_in(&root)
        } else {
            Err("no energy counter tokbench reads on this OS yet".to_string())
        }
    });
    found.as_ref().map_err(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(root: &Path, dir: &str, name: &str, uj: u64, max: u64) {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("name"), format!("{name}\n")).unwrap();
        std::fs::write(d.join("energy_uj"), format!("{uj}\n")).unwrap();
        std::fs::write(d.join("max_energy_range_uj"), format!("{max}\n")).unwrap();
    }

    #[test]
    fn package_zones_are_summed_sub_zones_skipped_and_wraps_unwound() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        zone(root, "intel-rapl:0", "package-0", 1_000_000, 262_143_328_850);
        zone(root, "intel-rapl:0:0", "core", 5, 100);
        zone(root, "intel-rapl:1", "package-1", 262_143_000_000, 262_143_328_850);
        zone(root, "intel-rapl:2", "psys", 7, 100);
        let meter = EnergyMeter::rapl_in(root).unwrap();
        assert_eq!(meter.describe(), "RAPL package-0 + package-1 (powercap)");
        let before = meter.read().unwrap();
        // Package 0 uses 2.5 J; package 1 uses 0.5 J and wraps past its range.
        zone(root, "intel-rapl:0", "package-0", 3_500_000, 262_143_328_850);
        zone(root, "intel-rapl:1", "package-1", 171_150, 262_143_328_850);
        let after = meter.read().unwrap();
        assert!((meter.joules(&before, &after) - 3.0).abs() < 1e-9, "{}", meter.joules(&before, &after));
    }

    #[test]
    fn without_packages_psys_is_used_and_without_zones_the_reason_is_given() {
        let dir = tempfile::tempdir().unwrap();
        zone(dir.path(), "intel-rapl:0", "psys", 10, 1000);
        assert_eq!(EnergyMeter::rapl_in(dir.path()).unwrap().describe(), "RAPL psys (powercap)");
        let empty = tempfile::tempdir().unwrap();
        assert!(EnergyMeter::rapl_in(empty.path()).unwrap_err().contains("no RAPL package zone"));
        assert!(EnergyMeter::rapl_in(&empty.path().join("absent")).is_err());
    }
}
