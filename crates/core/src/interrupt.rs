//! SIGINT and SIGTERM for the whole process, whatever is running: an in-process engine deep in a C++ call cannot be
//! asked to stop, so nothing waits for it. A watcher thread takes the first signal, runs the registered clean-ups
//! (stop the servers tokbench started, write the results measured so far) and exits with 128 + the signal's number
//! (130 for SIGINT, 143 for SIGTERM), as a shell reports a process killed by it. A second signal exits at once.
//!
//! CI cancels a job the same way (a newer push with `cancel-in-progress` sends SIGINT, then SIGTERM, then SIGKILL a
//! few seconds apart), so the clean-ups must be quick: each writes one file or stops one process.
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

type Cleanup = Box<dyn Fn(i32) + Send>;

/// Registered clean-ups, run in registration order: `(id, what it is, the clean-up)`.
static CLEANUPS: Mutex<Vec<(u64, &'static str, Cleanup)>> = Mutex::new(Vec::new());
static NEXT_ID: Mutex<u64> = Mutex::new(0);
static INSTALL: Once = Once::new();
/// The signal that arrived first, 0 while none has.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Set once every clean-up has run.
static CLEANED_UP: AtomicBool = AtomicBool::new(false);

/// Starts the watcher (once per process; later calls do nothing). Called by every command that measures.
pub fn install() -> Result<()> {
    let mut outcome = Ok(());
    INSTALL.call_once(|| {
        outcome = Signals::new([SIGINT, SIGTERM]).context("cannot install the SIGINT/SIGTERM handler").and_then(
            |mut signals| {
                std::thread::Builder::new()
                    .name("tokbench-signals".into())
                    .spawn(move || {
                        for signal in signals.forever() {
                            if SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).is_err() {
                                exit_now(signal); // a second signal: leave now
                            }
                            eprintln!("\n{}: saving what was measured, then exiting", name(signal));
                            run_cleanups(signal);
                            exit_now(signal);
                        }
                    })
                    .map(drop)
                    .context("cannot start the signal watcher thread")
            },
        );
    });
    outcome
}

/// The signal that interrupted this process (SIGINT or SIGTERM), if one did.
pub fn signal() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

pub fn interrupted() -> bool {
    signal().is_some()
}

/// 128 + the signal's number: what a shell reports for a process the signal ended.
pub fn exit_code(signal: i32) -> u8 {
    (128 + signal) as u8
}

/// "SIGINT" / "SIGTERM", for messages.
pub fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// The error text a run records for the benchmark a signal cut short.
pub fn interrupted_by(signal: i32) -> String {
    format!("interrupted by {}", name(signal))
}

/// Runs `cleanup(signal)` when a signal arrives, until the returned guard is dropped.
pub fn on_signal(what: &'static str, cleanup: impl Fn(i32) + Send + 'static) -> CleanupGuard {
    let id = {
        let mut next = NEXT_ID.lock().unwrap_or_else(|e| e.into_inner());
        *next += 1;
        *next
    };
    CLEANUPS.lock().unwrap_or_else(|e| e.into_inner()).push((id, what, Box::new(cleanup)));
    CleanupGuard { id }
}

/// Unregisters its clean-up when dropped.
pub struct CleanupGuard {
    id: u64,
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        // A clean-up running right now holds the lock: then it is already too late to unregister, and that is fine.
        if let Ok(mut list) = CLEANUPS.try_lock() {
            list.retain(|(id, _, _)| *id != self.id);
        }
    }
}

/// For a thread that noticed the interrupt on its own (a server's request failed): waits, up to `limit`, until the
/// watcher's clean-ups are done, so the process does not exit before the results are written.
pub fn wait_for_cleanups(limit: Duration) {
    let deadline = Instant::now() + limit;
    while interrupted() && !CLEANED_UP.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_cleanups(signal: i32) {
    let list = CLEANUPS.lock().unwrap_or_else(|e| e.into_inner());
    for (_, what, cleanup) in list.iter() {
        // One failing clean-up must not keep the others from running.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cleanup(signal))).is_err() {
            eprintln!("on {}: {what} failed", name(signal));
        }
    }
    CLEANED_UP.store(true, Ordering::SeqCst);
}

/// Leaves without running atexit handlers or C++ static destructors: another thread may be inside llama.cpp or MLX,
/// and tearing their globals down under it can crash the exit. Everything worth keeping is written by now.
fn exit_now(signal: i32) -> ! {
    unsafe { libc::_exit(exit_code(signal) as i32) }
}
