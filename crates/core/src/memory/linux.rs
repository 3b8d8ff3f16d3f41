//! Linux: RSS and the kernel's RSS high-water mark from /proc/self/status; the mark is reset through
//! /proc/self/clear_refs (value 5, Linux 4.0+).
//!
//! The kernel updates the mark just before it unmaps pages, so a spike that is freed again before anyone looks is
//! still recorded: no sampling interval to fall between.
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};

/// How far VmHWM may sit above VmRSS right after a reset for the reset to count as done. The two are read a few
/// microseconds apart, so anything beyond small allocator noise means the write was ignored.
const RESET_TOLERANCE_BYTES: u64 = 4 << 20;

pub(super) fn current_rss_bytes() -> Result<u64> {
    field_bytes(&read_status()?, "VmRSS:")
}

pub(super) fn high_water_mark_bytes() -> Result<u64> {
    field_bytes(&read_status()?, "VmHWM:")
}

/// Resets VmHWM to the current RSS and returns that RSS, or says why the mark cannot be trusted.
pub(super) fn reset_high_water_mark() -> Result<u64> {
    // Not fs::write: that would also ask for O_CREAT | O_TRUNC, which a proc file has no use for.
    OpenOptions::new()
        .write(true)
        .open("/proc/self/clear_refs")
        .and_then(|mut f| f.write_all(b"5"))
        .context("writing 5 to /proc/self/clear_refs")?;
    // Some sandboxes (gVisor, older kernels) accept the write and do nothing; then VmHWM still holds an older peak.
    let status = read_status()?;
    let (rss, hwm) = (field_bytes(&status, "VmRSS:")?, field_bytes(&status, "VmHWM:")?);
    if hwm > rss + RESET_TOLERANCE_BYTES {
        bail!("the VmHWM reset did not take effect: VmHWM {hwm} B is still above VmRSS {rss} B");
    }
    Ok(rss)
}

/// Exclusive use of the process-wide high-water mark: a second reset would erase the first window's peak.
pub(super) struct HwmClaim(());

static HWM_CLAIMED: AtomicBool = AtomicBool::new(false);

impl HwmClaim {
    pub(super) fn try_take() -> Option<HwmClaim> {
        HWM_CLAIMED.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).ok().map(|_| HwmClaim(()))
    }
}

impl Drop for HwmClaim {
    fn drop(&mut self) {
        HWM_CLAIMED.store(false, Ordering::Release);
    }
}

fn read_status() -> Result<String> {
    fs::read_to_string("/proc/self/status").context("reading /proc/self/status")
}

/// Parses a line such as `VmRSS:  123456 kB` (the kernel always reports these in KiB).
fn field_bytes(status: &str, key: &str) -> Result<u64> {
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .with_context(|| format!("/proc/self/status has no {key} line"))?;
    let kib: u64 = value
        .trim()
        .strip_suffix("kB")
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("cannot parse {key}{value} in /proc/self/status"))?;
    Ok(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let status = "Name:\ttokbench\nVmPeak:\t  900000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t4\n";
        assert_eq!(field_bytes(status, "VmRSS:").unwrap(), 10240 * 1024);
        assert_eq!(field_bytes(status, "VmHWM:").unwrap(), 20480 * 1024);
        assert!(field_bytes(status, "VmSwap:").is_err());
        assert!(field_bytes("VmRSS:\tlots kB\n", "VmRSS:").is_err());
        assert!(field_bytes("VmRSS:\t12 MB\n", "VmRSS:").is_err());
    }
}
