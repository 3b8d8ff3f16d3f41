//! The fallback peak probe: a thread that reads RSS every `interval_us` µs and keeps the maximum. It can miss a
//! spike shorter than the interval, which is why [`super::PeakMethod::Sampler`] records the interval.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

use super::current_rss_bytes;

struct Shared {
    stop: AtomicBool,
    max: AtomicU64,
}

pub(crate) struct Sampler {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<()>>>,
    interval_us: u64,
    start_bytes: u64,
}

impl Sampler {
    /// Takes a first sample here (so an unsupported OS fails now, not in the thread) and starts sampling.
    pub(crate) fn start(interval_us: u64) -> Result<Sampler> {
        let start_bytes = current_rss_bytes()?;
        let shared = Arc::new(Shared { stop: AtomicBool::new(false), max: AtomicU64::new(start_bytes) });
        let interval = Duration::from_micros(interval_us);
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("tokbench-rss-sampler".into())
            .spawn(move || -> Result<()> {
                while !thread_shared.stop.load(Ordering::Acquire) {
                    thread_shared.max.fetch_max(current_rss_bytes()?, Ordering::Relaxed);
                    // park rather than sleep, so stop() can wake it at once instead of waiting out the interval.
                    thread::park_timeout(interval);
                }
                Ok(())
            })
            .context("starting the RSS sampler thread")?;
        Ok(Sampler { shared, thread: Some(thread), interval_us, start_bytes })
    }

    pub(crate) fn start_bytes(&self) -> u64 {
        self.start_bytes
    }

    pub(crate) fn interval_us(&self) -> u64 {
        self.interval_us
    }

    /// Stops and joins the thread; returns the largest RSS seen, including a last sample taken now.
    pub(crate) fn finish(mut self) -> Result<u64> {
        self.stop()?;
        let last = current_rss_bytes()?;
        // join() ordered the thread's writes before this load.
        Ok(self.shared.max.load(Ordering::Relaxed).max(last))
    }

    fn stop(&mut self) -> Result<()> {
        let Some(thread) = self.thread.take() else { return Ok(()) };
        self.shared.stop.store(true, Ordering::Release);
        thread.thread().unpark();
        thread.join().map_err(|_| anyhow!("the RSS sampler thread panicked"))?.context("sampling RSS")
    }
}

impl Drop for Sampler {
    /// A window abandoned by an error path must not leave a thread polling /proc forever.
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
