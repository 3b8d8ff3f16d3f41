//! RAM of the current process: resident memory now, and the peak over a window (one generation) that must not miss
//! a short spike such as a transient compute buffer.
//!
//! The peak uses the most exact source each OS offers and says which one it used ([`PeakMethod`]):
//! - Linux: the kernel's high-water mark (VmHWM), reset at the window's start through `/proc/self/clear_refs`.
//! - macOS: the task's lifetime maximum `phys_footprint`, which is exact whenever it rose inside the window.
//! - Otherwise, or when those are unavailable: a thread sampling RSS every millisecond.
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tokbench_record::results::PeakMethod;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;
mod sampler;

use sampler::Sampler;

/// How often the fallback sampler reads RSS.
const FALLBACK_INTERVAL_US: u64 = 1000;

/// Resident memory of this process in bytes. Linux: VmRSS from /proc/self/status. macOS: phys_footprint (what
/// Activity Monitor shows as "Memory"), which unlike resident size counts compressed pages and excludes shared
/// clean ones. Other OSes: an error.
pub fn current_rss_bytes() -> Result<u64> {
    #[cfg(target_os = "linux")]
    {
        linux::current_rss_bytes()
    }
    #[cfg(target_os = "macos")]
    {
        macos::current_rss_bytes()
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        anyhow::bail!("measuring process memory is not supported on {}", std::env::consts::OS)
    }
}

/// Tracks peak memory from `start()` to `finish()`.
///
/// On Linux the high-water mark is process-wide, so only one window at a time can own it; a window started while
/// another is open uses the sampler instead of resetting the mark under the first one.
pub struct PeakWindow {
    probe: Probe,
}

enum Probe {
    #[cfg(target_os = "linux")]
    HighWaterMark {
        start_rss: u64,
        _claim: linux::HwmClaim,
    },
    #[cfg(target_os = "macos")]
    PhysFootprint {
        lifetime_max_at_start: u64,
        sampler: Sampler,
    },
    Sampler(Sampler),
}

impl PeakWindow {
    /// Opens a window. Linux: resets the high-water mark; if that fails (permissions, old kernel, a sandbox that
    /// ignores it), falls back to the 1 ms sampler, which the reading's `method` records. macOS: the lifetime-max
    /// footprint plus the sampler.
    pub fn start() -> Result<PeakWindow> {
        #[cfg(target_os = "linux")]
        if let Some(claim) = linux::HwmClaim::try_take() {
            if let Ok(start_rss) = linux::reset_high_water_mark() {
                return Ok(PeakWindow { probe: Probe::HighWaterMark { start_rss, _claim: claim } });
            }
        }
        // Read the lifetime max before the sampler's first sample, so a rise during start-up counts as inside.
        // It needs RUSAGE_INFO_V4 (macOS 10.14+); without it only the sampler is left.
        #[cfg(target_os = "macos")]
        if let Ok(lifetime_max_at_start) = macos::lifetime_max_footprint_bytes() {
            let sampler = Sampler::start(FALLBACK_INTERVAL_US)?;
            return Ok(PeakWindow { probe: Probe::PhysFootprint { lifetime_max_at_start, sampler } });
        }
        Ok(PeakWindow { probe: Probe::Sampler(Sampler::start(FALLBACK_INTERVAL_US)?) })
    }

    /// Closes the window and reports the memory at its start and the peak inside it.
    pub fn finish(self) -> Result<PeakReading> {
        match self.probe {
            #[cfg(target_os = "linux")]
            Probe::HighWaterMark { start_rss, _claim } => {
                let peak = linux::high_water_mark_bytes()?;
                Ok(PeakReading {
                    start_rss_bytes: start_rss,
                    peak_rss_bytes: peak,
                    method: PeakMethod::LinuxHighWaterMark,
                })
            }
            #[cfg(target_os = "macos")]
            Probe::PhysFootprint { lifetime_max_at_start, sampler } => {
                let start = sampler.start_bytes();
                let interval_us = sampler.interval_us();
                let sampled_peak = sampler.finish()?;
                let lifetime_max = macos::lifetime_max_footprint_bytes()?;
                // A lifetime max that grew was set inside the window, so it is this window's exact peak; otherwise
                // the window stayed below an older peak and only the sampler saw it, and the reading says so.
                let (peak, method) = if lifetime_max > lifetime_max_at_start {
                    (lifetime_max.max(sampled_peak), PeakMethod::MacPhysFootprint)
                } else {
                    (sampled_peak, PeakMethod::Sampler { interval_us })
                };
                Ok(PeakReading { start_rss_bytes: start, peak_rss_bytes: peak, method })
            }
            Probe::Sampler(sampler) => {
                let start = sampler.start_bytes();
                let interval_us = sampler.interval_us();
                let peak = sampler.finish()?;
                Ok(PeakReading {
                    start_rss_bytes: start,
                    peak_rss_bytes: peak,
                    method: PeakMethod::Sampler { interval_us },
                })
            }
        }
    }
}

/// Memory at a window's start and its peak inside the window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PeakReading {
    pub start_rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub method: PeakMethod,
}

impl PeakReading {
    /// How far memory rose above the window's starting point.
    pub fn peak_delta_bytes(&self) -> u64 {
        self.peak_rss_bytes.saturating_sub(self.start_rss_bytes)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::sync::{Mutex, MutexGuard};
    use std::thread;
    use std::time::Duration;

    use super::*;

    const MIB: u64 = 1 << 20;

    // Peaks are process-wide: a spike in one test would show up in another test's window, so these run one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Allocates `bytes`, makes every 4 KiB page resident, holds it for `hold`, then frees it.
    fn spike(bytes: usize, hold: Duration) {
        let mut buf = vec![0u8; bytes];
        for i in (0..bytes).step_by(4096) {
            buf[i] = 1;
        }
        // Keeps the optimizer from dropping the writes (or the allocation) in release test builds.
        std::hint::black_box(&mut buf);
        thread::sleep(hold);
        drop(buf);
    }

    fn mib(bytes: u64) -> f64 {
        bytes as f64 / MIB as f64
    }

    #[test]
    fn current_rss_is_plausible() {
        let rss = current_rss_bytes().unwrap();
        // SAFETY: sysconf has no preconditions.
        let total = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) as u64 * libc::sysconf(libc::_SC_PAGESIZE) as u64 };
        println!("rss {:.1} MiB of {:.1} MiB", mib(rss), mib(total));
        assert!(rss > MIB && rss < total, "rss {rss}, total {total}");
    }

    #[test]
    fn window_catches_a_freed_spike() {
        let _serial = serial();
        let window = PeakWindow::start().unwrap();
        spike(256 * MIB as usize, Duration::ZERO);
        let r = window.finish().unwrap();
        println!(
            "spike window: start {:.1} MiB, peak {:.1} MiB, delta {:.1} MiB, method {:?}",
            mib(r.start_rss_bytes),
            mib(r.peak_rss_bytes),
            mib(r.peak_delta_bytes()),
            r.method
        );
        assert!(r.peak_delta_bytes() >= 200 * MIB, "{r:?}");
        // clear_refs works on this machine; elsewhere this line is what tells us the fallback kicked in.
        assert_eq!(r.method, PeakMethod::LinuxHighWaterMark);
        // The spike is gone after the window.
        assert!(current_rss_bytes().unwrap() < r.peak_rss_bytes - 200 * MIB);
    }

    #[test]
    fn idle_window_has_small_delta() {
        let _serial = serial();
        // An earlier, larger peak must not leak into this window: that is what the reset is for.
        spike(128 * MIB as usize, Duration::ZERO);
        let window = PeakWindow::start().unwrap();
        thread::sleep(Duration::from_millis(20));
        let r = window.finish().unwrap();
        println!("idle window: delta {:.2} MiB, method {:?}", mib(r.peak_delta_bytes()), r.method);
        assert!(r.peak_delta_bytes() < 32 * MIB, "{r:?}");
    }

    #[test]
    fn sampler_alone_catches_a_50ms_spike() {
        let _serial = serial();
        let sampler = Sampler::start(FALLBACK_INTERVAL_US).unwrap();
        let start = sampler.start_bytes();
        spike(256 * MIB as usize, Duration::from_millis(50));
        let peak = sampler.finish().unwrap();
        println!("sampler: start {:.1} MiB, peak {:.1} MiB, delta {:.1} MiB", mib(start), mib(peak), mib(peak - start));
        assert!(peak - start >= 200 * MIB, "start {start}, peak {peak}");
    }

    #[test]
    fn overlapping_windows_do_not_reset_each_other() {
        let _serial = serial();
        let outer = PeakWindow::start().unwrap();
        let inner = PeakWindow::start().unwrap();
        spike(256 * MIB as usize, Duration::from_millis(50));
        let inner = inner.finish().unwrap();
        // Opened after the inner one closed: must not erase the spike from the outer window.
        let late = PeakWindow::start().unwrap();
        let late = late.finish().unwrap();
        let outer = outer.finish().unwrap();
        assert_eq!(outer.method, PeakMethod::LinuxHighWaterMark);
        assert_eq!(inner.method, PeakMethod::Sampler { interval_us: FALLBACK_INTERVAL_US });
        assert!(matches!(late.method, PeakMethod::Sampler { .. }));
        assert!(outer.peak_delta_bytes() >= 200 * MIB, "{outer:?}");
        assert!(inner.peak_delta_bytes() >= 200 * MIB, "{inner:?}");
        // Once the outer window is closed the high-water mark is free again, and dropping a window releases it too.
        drop(PeakWindow::start().unwrap());
        assert_eq!(PeakWindow::start().unwrap().finish().unwrap().method, PeakMethod::LinuxHighWaterMark);
    }

    #[test]
    fn dropping_an_unfinished_sampler_stops_its_thread() {
        let sampler = Sampler::start(FALLBACK_INTERVAL_US).unwrap();
        thread::sleep(Duration::from_millis(5));
        drop(sampler); // joins; a hang here would time the test out
    }
}
