//! Energy counters, where the machine has one: Linux RAPL through powercap sysfs (Intel, and AMD Zen through the
//! same driver), and NVIDIA GPUs through NVML (the driver's `libnvidia-ml.so.1`, loaded at run time; each GPU's
//! total-energy counter, in millijoules). Where both exist they are summed: the figure is what the CPU packages and
//! the GPUs drew together, and the record's `energy_counter` names every source. A run's energy is the counter's difference over its prefill window (from the start of the run to
//! prefill done) and its decode window (prefill done to the last token); joules per token divide them by the
//! prompt tokens and by the decoded tokens (generated − 1). No counter, no number: results then carry none and
//! tables print `n/a (no energy counter)`.
//!
//! RAPL counts the whole package (every core, the uncore, for `psys` the platform), not tokbench alone: on a busy
//! machine the figure includes others' work. It updates about every millisecond, so windows of a few ms are coarse.
//! NVML's counter covers the whole board (every process on the GPU, and its idle draw when tokbench runs on the CPU
//! alone). On macOS, Apple's `powermetrics` (CPU + GPU + Neural Engine energy, root only) when tokbench may run it:
//! see [`powermetrics`].
pub mod powermetrics;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// One RAPL zone: a top-level powercap zone (`intel-rapl:N`) and the range its counter wraps at.
#[derive(Debug, Clone, PartialEq)]
pub struct RaplZone {
    pub name: String,
    pub energy_uj: PathBuf,
    pub max_energy_range_uj: u64,
}

/// One NVIDIA GPU's energy counter (NVML `nvmlDeviceGetTotalEnergyConsumption`: millijoules since the driver
/// loaded; it does not wrap in practice, being 64-bit).
#[derive(Debug, Clone, PartialEq)]
pub struct NvmlGpu {
    pub index: u32,
    pub name: String,
}

/// The machine's energy counter: the sum of its RAPL package zones (or its `psys` zone where there are none) and of
/// its NVIDIA GPUs' counters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EnergyMeter {
    pub zones: Vec<RaplZone>,
    pub gpus: Vec<NvmlGpu>,
    /// macOS: a running powermetrics, summing its samples.
    pub powermetrics: Option<PowermetricsSource>,
}

/// A shared [`powermetrics::Feed`]; two are equal when they are the same feed.
#[derive(Debug, Clone)]
pub struct PowermetricsSource(pub Arc<powermetrics::Feed>);

impl PartialEq for PowermetricsSource {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A reading of every zone, then every GPU, then powermetrics' sum, in microjoules.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading(pub Vec<u64>);

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
        Ok(EnergyMeter { zones, ..EnergyMeter::default() })
    }

    pub fn read(&self) -> Option<Reading> {
        let mut uj: Vec<u64> = Vec::with_capacity(self.zones.len() + self.gpus.len());
        for zone in &self.zones {
            uj.push(read_u64(&zone.energy_uj).ok()?);
        }
        if !self.gpus.is_empty() {
            let nvml = nvml().ok()?;
            for gpu in &self.gpus {
                uj.push(nvml.device_by_index(gpu.index).ok()?.total_energy_consumption().ok()?.checked_mul(1000)?);
            }
        }
        if let Some(feed) = &self.powermetrics {
            uj.push(feed.0.read_uj());
        }
        Some(Reading(uj))
    }

    /// Joules between two readings, each RAPL zone's counter unwrapped once (it wraps at `max_energy_range_uj`);
    /// a GPU or powermetrics counter that went backwards (a driver reload) counts nothing.
    pub fn joules(&self, from: &Reading, to: &Reading) -> f64 {
        let (zones_from, gpus_from) = from.0.split_at(self.zones.len().min(from.0.len()));
        let (zones_to, gpus_to) = to.0.split_at(self.zones.len().min(to.0.len()));
        let rapl: u64 = self
            .zones
            .iter()
            .zip(zones_from.iter().zip(zones_to))
            .map(|(z, (&a, &b))| if b >= a { b - a } else { z.max_energy_range_uj.saturating_sub(a) + b })
            .sum();
        // NVML GPUs and powermetrics' sum: counters that only grow.
        let gpu: u64 = gpus_from.iter().zip(gpus_to).map(|(&a, &b)| b.saturating_sub(a)).sum();
        (rapl + gpu) as f64 / 1e6
    }

    /// e.g. `RAPL package-0 + package-1 (powercap) + NVML GPU 0 (NVIDIA H100 80GB HBM3)`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.zones.is_empty() {
            let names: Vec<&str> = self.zones.iter().map(|z| z.name.as_str()).collect();
            parts.push(format!("RAPL {} (powercap)", names.join(" + ")));
        }
        parts.extend(self.gpus.iter().map(|g| format!("NVML GPU {} ({})", g.index, g.name)));
        if self.powermetrics.is_some() {
            parts.push(format!("powermetrics CPU + GPU + ANE (sampled every {} ms)", powermetrics::INTERVAL_MS));
        }
        parts.join(" + ")
    }
}

/// NVML, loaded once per process from `$TOKBENCH_NVML_LIB` or the driver's `libnvidia-ml.so.1` (nothing is linked at
/// build time: a machine without an NVIDIA driver runs the same binary). `Err` says why it is not there.
pub fn nvml() -> Result<&'static nvml_wrapper::Nvml, &'static str> {
    static NVML: OnceLock<Result<nvml_wrapper::Nvml, String>> = OnceLock::new();
    let loaded = NVML.get_or_init(|| {
        let result = match std::env::var_os("TOKBENCH_NVML_LIB") {
            Some(lib) => nvml_wrapper::Nvml::builder().lib_path(&lib).init(),
            None => nvml_wrapper::Nvml::init(),
        };
        result.map_err(|e| format!("NVML not available ({e})"))
    });
    loaded.as_ref().map_err(String::as_str)
}

/// The NVIDIA GPUs whose energy counter NVML reads. `Err` says why there are none.
pub fn nvml_gpus() -> Result<Vec<NvmlGpu>, String> {
    let nvml = nvml()?;
    let count = nvml.device_count().map_err(|e| format!("NVML device count: {e}"))?;
    let mut gpus = Vec::new();
    let mut unreadable = None;
    for index in 0..count {
        let Ok(device) = nvml.device_by_index(index) else { continue };
        // Energy counters exist from Volta on; older boards are skipped, with the reason kept.
        match device.total_energy_consumption() {
            Ok(_) => gpus.push(NvmlGpu { index, name: device.name().unwrap_or_else(|_| "NVIDIA GPU".into()) }),
            Err(e) => unreadable = Some(format!("NVML GPU {index} has no energy counter ({e})")),
        }
    }
    if gpus.is_empty() {
        return Err(unreadable.unwrap_or_else(|| "NVML found no GPU".to_string()));
    }
    Ok(gpus)
}

/// GPU memory this process holds, summed over NVIDIA GPUs (NVML's per-process used memory: the CUDA context,
/// weights, KV cache and compute buffers, and whatever a pool keeps). `None` without NVML, without a GPU, or when
/// the process has no context on any GPU. A query costs on the order of a millisecond: call it outside timed spans.
pub fn gpu_memory_of_this_process() -> Option<u64> {
    use nvml_wrapper::enums::device::UsedGpuMemory;
    let nvml = nvml().ok()?;
    let pid = std::process::id();
    let mut total = None;
    for index in 0..nvml.device_count().ok()? {
        let Ok(device) = nvml.device_by_index(index) else { continue };
        for process in device.running_compute_processes().unwrap_or_default() {
            if let (true, UsedGpuMemory::Used(bytes)) = (process.pid == pid, process.used_gpu_memory) {
                *total.get_or_insert(0) += bytes;
            }
        }
    }
    total
}

/// The meter from whatever was found: RAPL, NVML and powermetrics each either a source or the reason there is none.
pub fn combine(
    rapl: Result<EnergyMeter, String>,
    gpus: Result<Vec<NvmlGpu>, String>,
    powermetrics: Result<PowermetricsSource, String>,
) -> Result<EnergyMeter, String> {
    let mut reasons = Vec::new();
    let mut meter = rapl.unwrap_or_else(|why| {
        reasons.push(why);
        EnergyMeter::default()
    });
    match gpus {
        Ok(gpus) => meter.gpus = gpus,
        Err(why) => reasons.push(why),
    }
    match powermetrics {
        Ok(feed) => meter.powermetrics = Some(feed),
        Err(why) => reasons.push(why),
    }
    if meter.zones.is_empty() && meter.gpus.is_empty() && meter.powermetrics.is_none() {
        return Err(reasons.join("; "));
    }
    Ok(meter)
}

fn read_u64(path: &Path) -> std::io::Result<u64> {
    std::fs::read_to_string(path)?.trim().parse().map_err(std::io::Error::other)
}

/// This machine's meter, found once per process (`$TOKBENCH_POWERCAP_ROOT` replaces `/sys/class/powercap`, and
/// `$TOKBENCH_NVML_LIB` the NVML library, for tests). `Err` says why there is none.
pub fn meter() -> Result<&'static EnergyMeter, &'static str> {
    static METER: OnceLock<Result<EnergyMeter, String>> = OnceLock::new();
    let found = METER.get_or_init(|| {
        let root = std::env::var_os("TOKBENCH_POWERCAP_ROOT")
            .map_or_else(|| PathBuf::from("/sys/class/powercap"), PathBuf::from);
        let rapl = if cfg!(target_os = "linux") || std::env::var_os("TOKBENCH_POWERCAP_ROOT").is_some() {
            EnergyMeter::rapl_in(&root)
        } else {
            Err("no energy counter tokbench reads on this OS yet".to_string())
        };
        let powermetrics = powermetrics::start_for_this_machine().map(|feed| PowermetricsSource(Arc::new(feed)));
        combine(rapl, nvml_gpus(), powermetrics)
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

    #[test]
    fn gpu_counters_add_to_rapl_and_never_wrap() {
        let dir = tempfile::tempdir().unwrap();
        zone(dir.path(), "intel-rapl:0", "package-0", 0, 1_000_000);
        let rapl = EnergyMeter::rapl_in(dir.path());
        let gpus = Ok(vec![NvmlGpu { index: 0, name: "NVIDIA H100 80GB HBM3".into() }]);
        let meter = combine(rapl, gpus, Err("no powermetrics".into())).unwrap();
        assert_eq!(meter.describe(), "RAPL package-0 (powercap) + NVML GPU 0 (NVIDIA H100 80GB HBM3)");
        // RAPL wraps (900,000 → 100,000 µJ: 0.2 J); the GPU adds 350 J (mJ × 1000 in the reading).
        let (from, to) = (Reading(vec![900_000, 1_000_000_000]), Reading(vec![100_000, 1_350_000_000]));
        assert!((meter.joules(&from, &to) - 350.2).abs() < 1e-9, "{}", meter.joules(&from, &to));
        // A GPU counter that went back (driver reloaded) adds nothing rather than a huge number.
        assert!((meter.joules(&to, &from) - 0.8).abs() < 1e-9, "{}", meter.joules(&to, &from));
    }

    #[test]
    fn without_rapl_or_nvml_the_reasons_of_both_are_given() {
        let empty = tempfile::tempdir().unwrap();
        let no_mac = || Err("powermetrics is macOS only".to_string());
        let err =
            combine(EnergyMeter::rapl_in(empty.path()), Err("NVML not available (x)".into()), no_mac()).unwrap_err();
        assert!(err.contains("no RAPL package zone") && err.contains("NVML not available"), "{err}");
        assert!(err.contains("macOS only"), "{err}");
        let gpu_only =
            combine(Err("no RAPL".into()), Ok(vec![NvmlGpu { index: 1, name: "GPU".into() }]), no_mac()).unwrap();
        assert_eq!(gpu_only.describe(), "NVML GPU 1 (GPU)");
    }

    #[test]
    fn nvml_from_a_library_that_is_not_there_is_a_reason_not_a_crash() {
        // TOKBENCH_NVML_LIB is read once per process; this test binary sets it before anything reads NVML.
        std::env::set_var("TOKBENCH_NVML_LIB", "/nonexistent/libnvidia-ml.so.1");
        let err = nvml().unwrap_err();
        assert!(err.starts_with("NVML not available"), "{err}");
        assert!(nvml_gpus().unwrap_err().starts_with("NVML not available"));
        assert_eq!(gpu_memory_of_this_process(), None);
    }
}
