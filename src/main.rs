use std::process::ExitCode;

fn main() -> ExitCode {
    match tokbench::commands::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // Ctrl-C stopped the servers and the run; what was measured has been saved.
            if tokbench_http::launch::interrupted() {
                tokbench_http::launch::wait_for_servers_stopped();
                return ExitCode::from(130);
            }
            ExitCode::from(2)
        }
    }
}
