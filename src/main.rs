use std::process::ExitCode;

fn main() -> ExitCode {
    match tokbench::commands::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // A signal stopped the run: its watcher saves what was measured and exits with 128 + the signal.
            if let Some(signal) = tokbench_core::interrupt::signal() {
                tokbench_core::interrupt::wait_for_cleanups(std::time::Duration::from_secs(30));
                return ExitCode::from(tokbench_core::interrupt::exit_code(signal));
            }
            ExitCode::from(2)
        }
    }
}
