//! macOS: the task's phys_footprint (Activity Monitor's "Memory" column, what jetsam judges a process by) from
//! proc_pid_rusage. Resident size would undercount: it leaves out compressed pages.
use std::io;
use std::mem::MaybeUninit;

use anyhow::{Context, Result};

/// phys_footprint now. RUSAGE_INFO_V0 has it and works on every macOS release.
pub(super) fn current_rss_bytes() -> Result<u64> {
    // SAFETY: flavor V0 fills a rusage_info_v0.
    let info: libc::rusage_info_v0 =
        unsafe { pid_rusage(libc::RUSAGE_INFO_V0) }.context("proc_pid_rusage(RUSAGE_INFO_V0)")?;
    Ok(info.ri_phys_footprint)
}

/// The highest phys_footprint this process has ever had (needs RUSAGE_INFO_V4, macOS 10.14+).
pub(super) fn lifetime_max_footprint_bytes() -> Result<u64> {
    // SAFETY: flavor V4 fills a rusage_info_v4.
    let info: libc::rusage_info_v4 =
        unsafe { pid_rusage(libc::RUSAGE_INFO_V4) }.context("proc_pid_rusage(RUSAGE_INFO_V4)")?;
    Ok(info.ri_lifetime_max_phys_footprint)
}

/// Calls proc_pid_rusage for this process.
///
/// # Safety
/// `T` must be the `rusage_info_vN` struct that `flavor` names (plain integers, so all-zero is a valid value).
unsafe fn pid_rusage<T>(flavor: libc::c_int) -> io::Result<T> {
    let mut info = MaybeUninit::<T>::zeroed();
    // The C prototype says `rusage_info_t *` (a `void **`), but the kernel writes the struct itself through it, so
    // the struct's address goes in, cast to that type.
    let rc = unsafe { libc::proc_pid_rusage(libc::getpid(), flavor, info.as_mut_ptr().cast::<libc::rusage_info_t>()) };
    if rc == 0 {
        // SAFETY: zero-initialised and then filled by the kernel; valid for T per the contract above.
        Ok(unsafe { info.assume_init() })
    } else {
        Err(io::Error::last_os_error())
    }
}
