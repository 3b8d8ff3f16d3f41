// Appended to mlx-sys's lib.rs by tokbench's Linux build (see build.rs beside it).

/// mlx-rs seeds its default random key from `mach_approximate_time` (through mach-sys) on every target, but that
/// is a Darwin call. Off Apple the same role — a cheap monotonic nanosecond count — is CLOCK_MONOTONIC's.
#[cfg(not(target_vendor = "apple"))]
#[no_mangle]
pub extern "C" fn mach_approximate_time() -> u64 {
    let mut ts = std::mem::MaybeUninit::<[i64; 2]>::uninit();
    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut [i64; 2]) -> i32;
    }
    const CLOCK_MONOTONIC: i32 = 1;
    // SAFETY: clock_gettime writes a struct timespec (two 64-bit fields on 64-bit Linux) into `ts`.
    let ts = unsafe {
        clock_gettime(CLOCK_MONOTONIC, ts.as_mut_ptr());
        ts.assume_init()
    };
    (ts[0] as u64).wrapping_mul(1_000_000_000).wrapping_add(ts[1] as u64)
}
