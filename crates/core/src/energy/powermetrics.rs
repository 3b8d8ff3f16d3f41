//! macOS: Apple's `powermetrics` as an energy counter. It has no counter to read: it prints a sample every
//! `INTERVAL_MS` (a plist per sample, NUL-terminated) with the energy the CPU, GPU and Neural Engine used over that
//! interval (`processor.cpu_energy` / `gpu_energy` / `ane_energy`, millijoules; where those are missing,
//! `combined_power` in milliwatts × `elapsed_ns`). A thread adds the samples up as they arrive; a reading is that sum.
//! So a reading lags by up to one interval, and a window shorter than a few intervals (a prefill of tens of ms) is
//! coarse: the decode window of a run of seconds is what this counter is for.
//!
//! `powermetrics` needs root: tokbench runs it directly as root, else through `sudo -n` (passwordless sudo for
//! `/usr/bin/powermetrics`), else reports why there is no counter. `$TOKBENCH_POWERMETRICS` names another program
//! printing the same format (the tests' stand-in).
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sampling interval asked of powermetrics.
pub const INTERVAL_MS: u64 = 100;

/// A running powermetrics and the energy it has reported so far.
#[derive(Debug)]
pub struct Feed {
    total_uj: Arc<AtomicU64>,
    samples: Arc<AtomicU64>,
    // Kept so the child lives as long as the feed; it ends when tokbench does (its next write hits a closed pipe).
    _child: Mutex<Child>,
    pub command: String,
}

impl Feed {
    /// Starts `program` (powermetrics or a stand-in) and waits for its first sample. `Err` says why not.
    pub fn start(program: &str, via_sudo: bool) -> Result<Feed, String> {
        let mut cmd = if via_sudo {
            let mut c = Command::new("sudo");
            c.args(["-n", program]);
            c
        } else {
            Command::new(program)
        };
        cmd.args(["--samplers", "cpu_power,gpu_power,ane_power", "-i", &INTERVAL_MS.to_string(), "-f", "plist"]);
        let command = format!(
            "{}{program} --samplers cpu_power,gpu_power,ane_power -i {INTERVAL_MS} -f plist",
            if via_sudo { "sudo -n " } else { "" }
        );
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start `{command}`: {e}"))?;
        let stdout = child.stdout.take().ok_or("powermetrics has no stdout")?;
        let (total_uj, samples) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (total, count) = (total_uj.clone(), samples.clone());
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut sample = Vec::new();
            while reader.read_until(0, &mut sample).is_ok_and(|n| n > 0) {
                if let Some(uj) = sample_microjoules(sample.strip_suffix(&[0]).unwrap_or(&sample)) {
                    total.fetch_add(uj, Ordering::SeqCst);
                    count.fetch_add(1, Ordering::SeqCst);
                }
                sample.clear();
            }
        });
        let feed = Feed { total_uj, samples, _child: Mutex::new(child), command };
        // The first sample proves it works (and that sudo did not want a password).
        let deadline = Instant::now() + Duration::from_millis(20 * INTERVAL_MS);
        while feed.samples.load(Ordering::SeqCst) == 0 {
            if Instant::now() > deadline || feed.exited() {
                return Err(format!("`{}` gave no sample (macOS powermetrics needs root)", feed.command));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(feed)
    }

    fn exited(&self) -> bool {
        self._child.lock().map(|mut c| c.try_wait().ok().flatten().is_some()).unwrap_or(true)
    }

    /// Microjoules reported so far.
    pub fn read_uj(&self) -> u64 {
        self.total_uj.load(Ordering::SeqCst)
    }

    pub fn samples(&self) -> u64 {
        self.samples.load(Ordering::SeqCst)
    }
}

/// One sample's energy in microjoules: CPU + GPU + ANE energy (mJ), else combined power (mW) × elapsed time.
pub fn sample_microjoules(plist_xml: &[u8]) -> Option<u64> {
    let start = plist_xml.iter().position(|&b| b == b'<')?;
    let value = plist::Value::from_reader_xml(&plist_xml[start..]).ok()?;
    let sample = value.as_dictionary()?;
    let processor = sample.get("processor")?.as_dictionary()?;
    let number =
        |key: &str| processor.get(key).and_then(|v| v.as_real().or_else(|| v.as_signed_integer().map(|i| i as f64)));
    let energies: Vec<f64> = ["cpu_energy", "gpu_energy", "ane_energy"].iter().filter_map(|k| number(k)).collect();
    let mj = if !energies.is_empty() {
        energies.iter().sum::<f64>()
    } else {
        let elapsed_ns = sample.get("elapsed_ns")?.as_unsigned_integer()? as f64;
        number("combined_power")? * elapsed_ns / 1e9
    };
    (mj >= 0.0).then(|| (mj * 1000.0).round() as u64)
}

/// This machine's powermetrics feed, when tokbench may run it. `Err` says why not.
pub fn start_for_this_machine() -> Result<Feed, String> {
    if let Some(program) = std::env::var_os("TOKBENCH_POWERMETRICS") {
        return Feed::start(&program.to_string_lossy(), false);
    }
    if !cfg!(target_os = "macos") {
        return Err("powermetrics is macOS only".to_string());
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let sudo_ok =
        || Command::new("sudo").args(["-n", "true"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if root || sudo_ok() {
        Feed::start("/usr/bin/powermetrics", !root)
    } else {
        Err("macOS powermetrics needs root: run tokbench with sudo, or allow passwordless sudo for \
             /usr/bin/powermetrics"
            .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(keys: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
             \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\"><dict>\
             <key>elapsed_ns</key><integer>100000000</integer><key>processor</key><dict>{keys}</dict></dict></plist>\n"
        )
    }

    #[test]
    fn a_sample_is_cpu_gpu_and_ane_energy_or_else_power_times_time() {
        let energies = "<key>cpu_energy</key><integer>150</integer><key>gpu_energy</key><integer>45</integer>\
                        <key>ane_energy</key><integer>5</integer><key>combined_power</key><real>9999.0</real>";
        assert_eq!(sample_microjoules(sample(energies).as_bytes()), Some(200_000));
        // 2 W for 0.1 s = 0.2 J.
        let power = "<key>combined_power</key><real>2000.0</real>";
        assert_eq!(sample_microjoules(sample(power).as_bytes()), Some(200_000));
        assert_eq!(sample_microjoules(b"not a plist"), None);
        assert_eq!(sample_microjoules(sample("").as_bytes()), None);
    }

    #[test]
    fn a_feed_adds_up_the_samples_of_a_stand_in_powermetrics() {
        let dir = tempfile::tempdir().unwrap();
        let one = sample("<key>cpu_energy</key><integer>150</integer><key>gpu_energy</key><integer>50</integer>");
        std::fs::write(dir.path().join("sample.plist"), &one).unwrap();
        let script = dir.path().join("powermetrics");
        // Like powermetrics -f plist: a NUL after each sample, one every 20 ms.
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nwhile true; do cat '{}'; printf '\\0'; sleep 0.02; done\n",
                dir.path().join("sample.plist").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let feed = Feed::start(script.to_str().unwrap(), false).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while feed.samples() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let (n, uj) = (feed.samples(), feed.read_uj());
        assert!(n >= 3, "{n} samples");
        // Each sample is 0.2 J; the two loads are not atomic together, so allow one sample in between.
        assert!(uj == n * 200_000 || uj == (n + 1) * 200_000, "{uj} µJ after {n} samples");

        let missing = Feed::start(dir.path().join("absent").to_str().unwrap(), false).unwrap_err();
        assert!(missing.contains("cannot start"), "{missing}");
        let silent = dir.path().join("silent");
        std::fs::write(&silent, "#!/bin/sh\nexit 1\n").unwrap();
        std::fs::set_permissions(&silent, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        assert!(Feed::start(silent.to_str().unwrap(), false).unwrap_err().contains("gave no sample"));
    }
}
