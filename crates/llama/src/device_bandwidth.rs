//! Memory bandwidth of the devices llama.cpp computes on, measured through ggml's own buffers: the roofline's ceiling
//! for a model offloaded to a GPU (the CPU's comes from `tokbench_core::bandwidth`, which reads host memory).
//!
//! Definition: two buffers of `buffer_bytes` on the device (ggml's buffer type for it, as llama.cpp allocates weights),
//! one copied into the other with `ggml_backend_tensor_copy` (CUDA: `cudaMemcpyAsync` device-to-device, then a stream
//! synchronisation, so the clock stops when the copy is done). Bytes moved = read + write = 2 × `buffer_bytes`;
//! bandwidth = that / the fastest of `passes` timed copies, after one untimed copy. This is the usual "copy
//! bandwidth" (PyTorch's `dst.copy_(src)`, nvbandwidth's device-local copy), a little below the read-only peak.
use std::ffi::CStr;
use std::time::Instant;

use anyhow::{ensure, Result};
use llama_cpp_sys_2 as sys;

/// One device's measured copy bandwidth.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceBandwidth {
    /// ggml's description of the device, e.g. `NVIDIA H100 80GB HBM3`.
    pub device: String,
    pub bytes_per_s: f64,
    pub buffer_bytes: u64,
    pub passes: usize,
}

/// Which devices to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Gpu,
    /// The CPU device: a host memcpy through the same code (for tests on machines without a GPU).
    Cpu,
}

/// Copy bandwidth of every ggml device of `kind` (none: an empty list). Needs `buffer_bytes` free twice on each.
pub fn copy_bandwidth(kind: DeviceKind, buffer_bytes: usize, passes: usize) -> Result<Vec<DeviceBandwidth>> {
    ensure!(buffer_bytes > 0 && passes > 0, "buffer size and passes must be positive");
    crate::shared_backend()?;
    let want = match kind {
        DeviceKind::Gpu => sys::GGML_BACKEND_DEVICE_TYPE_GPU,
        DeviceKind::Cpu => sys::GGML_BACKEND_DEVICE_TYPE_CPU,
    };
    let mut found = Vec::new();
    // SAFETY: ggml's device registry is initialised by the shared backend; every pointer below is checked for null
    // and freed before returning.
    unsafe {
        for i in 0..sys::ggml_backend_dev_count() {
            let dev = sys::ggml_backend_dev_get(i);
            if dev.is_null() || sys::ggml_backend_dev_type(dev) != want {
                continue;
            }
            let description = CStr::from_ptr(sys::ggml_backend_dev_description(dev)).to_string_lossy().into_owned();
            let best_s = time_copies(sys::ggml_backend_dev_buffer_type(dev), buffer_bytes, passes)
                .map_err(|e| e.context(format!("measuring the copy bandwidth of {description}")))?;
            found.push(DeviceBandwidth {
                device: description,
                bytes_per_s: 2.0 * buffer_bytes as f64 / best_s,
                buffer_bytes: buffer_bytes as u64,
                passes,
            });
        }
    }
    Ok(found)
}

/// The fastest of `passes` timed copies between two buffers of `buft`, in seconds.
unsafe fn time_copies(buft: sys::ggml_backend_buffer_type_t, bytes: usize, passes: usize) -> Result<f64> {
    ensure!(!buft.is_null(), "the device has no buffer type");
    let a = sys::ggml_backend_buft_alloc_buffer(buft, bytes);
    let b = sys::ggml_backend_buft_alloc_buffer(buft, bytes);
    let ctx = sys::ggml_init(sys::ggml_init_params {
        mem_size: 2 * sys::ggml_tensor_overhead() + 1024,
        mem_buffer: std::ptr::null_mut(),
        no_alloc: true,
    });
    let result = (|| -> Result<f64> {
        ensure!(!a.is_null() && !b.is_null(), "could not allocate two buffers of {bytes} bytes");
        ensure!(!ctx.is_null(), "ggml_init failed");
        let src = sys::ggml_new_tensor_1d(ctx, sys::GGML_TYPE_I8, bytes as i64);
        let dst = sys::ggml_new_tensor_1d(ctx, sys::GGML_TYPE_I8, bytes as i64);
        ensure!(!src.is_null() && !dst.is_null(), "ggml could not describe the tensors");
        ensure!(
            sys::ggml_backend_tensor_alloc(a, src, sys::ggml_backend_buffer_get_base(a)) == sys::GGML_STATUS_SUCCESS
                && sys::ggml_backend_tensor_alloc(b, dst, sys::ggml_backend_buffer_get_base(b))
                    == sys::GGML_STATUS_SUCCESS,
            "could not place the tensors in their buffers"
        );
        // Written once so that no page is untouched (a lazily mapped page would time the OS, not memory).
        sys::ggml_backend_buffer_clear(a, 1);
        sys::ggml_backend_buffer_clear(b, 0);
        sys::ggml_backend_tensor_copy(src, dst);
        let mut best = f64::INFINITY;
        for _ in 0..passes {
            let start = Instant::now();
            sys::ggml_backend_tensor_copy(src, dst);
            best = best.min(start.elapsed().as_secs_f64());
        }
        Ok(best)
    })();
    if !ctx.is_null() {
        sys::ggml_free(ctx);
    }
    for buffer in [a, b] {
        if !buffer.is_null() {
            sys::ggml_backend_buffer_free(buffer);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_device_copies_at_a_plausible_rate_and_bad_sizes_are_refused() {
        // 64 MiB: larger than any last-level cache of the test machines, small enough to be quick.
        let cpu = copy_bandwidth(DeviceKind::Cpu, 64 << 20, 3).unwrap();
        assert_eq!(cpu.len(), 1, "ggml has one CPU device");
        let gbs = cpu[0].bytes_per_s / 1e9;
        // Between a slow VM's memcpy and anything DRAM delivers today.
        assert!((0.5..2000.0).contains(&gbs), "{gbs} GB/s on {}", cpu[0].device);
        assert!(copy_bandwidth(DeviceKind::Cpu, 0, 3).is_err());
    }
}
