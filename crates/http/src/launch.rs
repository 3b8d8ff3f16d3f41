//! Starting and stopping a server for a benchmark: the config's `command`, with `{model}`, `{port}`, `{threads}`,
//! `{ctx_size}` … filled in, started in a process group of its own, its output captured to a log file, waited on
//! until its health endpoint answers 200, and stopped (SIGTERM, then SIGKILL after 10 s) when the benchmark group
//! ends, when tokbench fails, and on SIGINT/SIGTERM.
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tokbench_core::interrupt;

use crate::client::Client;

/// Process ids of the servers this process started and has not stopped yet: what a signal must clean up.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static ON_SIGNAL: Once = Once::new();

/// On SIGINT/SIGTERM (`tokbench_core::interrupt`), stop every server tokbench started, waiting for each (up to 10 s,
/// then SIGKILL) so that nothing still holds its port when tokbench exits. Registered for the process's lifetime.
fn on_signal_stop_servers() {
    ON_SIGNAL.call_once(|| {
        if let Err(e) = interrupt::install() {
            eprintln!("warning: {e:#}: a Ctrl-C will not stop the servers tokbench starts");
        }
        std::mem::forget(interrupt::on_signal("stopping the servers tokbench started", |_| {
            let pids = RUNNING.lock().map(|p| p.clone()).unwrap_or_default();
            for pid in &pids {
                terminate(*pid);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            for &pid in &pids {
                while unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), libc::WNOHANG) } == 0 {
                    if Instant::now() > deadline {
                        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            eprintln!("interrupted: stopped {} server(s) tokbench had started", pids.len());
        }));
    });
}

fn terminate(pid: u32) {
    // The server leads its own process group: signal the group, so helpers it spawned go too.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGTERM);
    }
}

pub struct ServerProcess {
    child: Child,
    pub log: PathBuf,
    /// The command as started, for the results (`EngineInfo.server.launched`).
    pub command_line: String,
}

impl ServerProcess {
    /// Starts `argv` with stdout and stderr appended to `log`.
    pub fn start(argv: &[String], log: &Path) -> Result<ServerProcess> {
        ensure!(!argv.is_empty(), "the server `command` is empty");
        on_signal_stop_servers();
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let out = File::create(log).with_context(|| format!("cannot create server log {}", log.display()))?;
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start the server {:?}: is it installed and on PATH? (command: {})",
                    argv[0],
                    argv.join(" ")
                )
            })?;
        RUNNING.lock().unwrap().push(child.id());
        Ok(ServerProcess { child, log: log.to_path_buf(), command_line: argv.join(" ") })
    }

    /// Polls `health_path` until it answers 2xx. Fails early, quoting the log, when the server exits.
    pub fn wait_healthy(&mut self, client: &Client, health_path: &str, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited ({status}) before it became healthy; the end of its log {}:\n{}",
                    self.log.display(),
                    self.log_tail(20)
                );
            }
            if let Ok(true) = client.is_ok(health_path) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                bail!(
                    "the server did not answer {}{health_path} with 200 within {timeout:?} (raise `startup_timeout_s`); \
                     the end of its log {}:\n{}",
                    client.base_url,
                    self.log.display(),
                    self.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, up to 10 s to exit, then SIGKILL.
    pub fn stop(&mut self) {
        let pid = self.child.id();
        if let Ok(None) = self.child.try_wait() {
            terminate(pid);
            let deadline = Instant::now() + Duration::from_secs(10);
            while let Ok(None) = self.child.try_wait() {
                if Instant::now() > deadline {
                    unsafe {
                        libc::kill(-(pid as i32), libc::SIGKILL);
                    }
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Ok(mut running) = RUNNING.lock() {
            running.retain(|&p| p != pid);
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Fills the placeholders of a command template.
pub fn fill(template: &[String], values: &[(&str, String)]) -> Result<Vec<String>> {
    template
        .iter()
        .map(|arg| {
            let mut out = arg.clone();
            for (key, value) in values {
                out = out.replace(&format!("{{{key}}}"), value);
            }
            if let Some(start) = out.find('{') {
                if let Some(len) = out[start..].find('}') {
                    let known: Vec<&str> = values.iter().map(|(k, _)| *k).collect();
                    bail!(
                        "unknown placeholder {} in the server command (known: {})",
                        &out[start..start + len + 1],
                        known.join(", ")
                    );
                }
            }
            Ok(out)
        })
        .collect()
}

/// A free TCP port on 127.0.0.1 (bound, read, released: another process could take it first, rarely).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_unknown_ones_named() {
        let t: Vec<String> = ["srv", "-m", "{model}", "--port={port}"].map(String::from).to_vec();
        let v = [("model", "/m.gguf".to_string()), ("port", "9".to_string())];
        assert_eq!(fill(&t, &v).unwrap(), vec!["srv", "-m", "/m.gguf", "--port=9"]);
        let e = fill(&["{modle}".to_string()], &v).unwrap_err().to_string();
        assert!(e.contains("{modle}") && e.contains("model, port"), "{e}");
    }

    #[test]
    fn a_server_that_dies_at_start_is_an_error_quoting_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let argv: Vec<String> = ["sh", "-c", "echo 'error: model not found' >&2; exit 3"].map(String::from).to_vec();
        let mut p = ServerProcess::start(&argv, &dir.path().join("s.log")).unwrap();
        let client = Client::new("http://127.0.0.1:9", crate::api::Api::Completions, None, None, Default::default());
        let e = p.wait_healthy(&client, "/health", Duration::from_secs(10)).unwrap_err().to_string();
        assert!(e.contains("exited") && e.contains("model not found"), "{e}");
    }

    #[test]
    fn stopping_ends_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let argv: Vec<String> = ["sh", "-c", "sleep 600 & sleep 600"].map(String::from).to_vec();
        let mut p = ServerProcess::start(&argv, &dir.path().join("s.log")).unwrap();
        let pgid = p.pid() as i32;
        std::thread::sleep(Duration::from_millis(100));
        p.stop();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(live_members_of_group(pgid), Vec::<String>::new(), "a process of the server's group survived");
        assert!(!RUNNING.lock().unwrap().contains(&(pgid as u32)));
    }

    /// Processes of process group `pgid` that are not zombies (an orphan's zombie waits for init to reap it).
    fn live_members_of_group(pgid: i32) -> Vec<String> {
        let mut live = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // pid (comm) state ppid pgrp ...: split after the last ')' since comm may hold spaces.
            let Some((_, rest)) = stat.rsplit_once(')') else { continue };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
                live.push(stat);
            }
        }
        live
    }
}
