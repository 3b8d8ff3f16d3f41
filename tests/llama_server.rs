//! Against a real llama-server (llama.cpp's own, built from the llama-cpp-python sdist's `tools/server` by
//! `cargo xtask test`, path in $TOKBENCH_LLAMA_SERVER), started on 127.0.0.1 the way users start it, and driven
//! by the real `tokbench run` binary.
mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokbench_record::metric::Metric;
use tokbench_record::results::RunResults;

fn llama_server() -> PathBuf {
    let path = std::env::var_os("TOKBENCH_LLAMA_SERVER").map(PathBuf::from).expect(
        "$TOKBENCH_LLAMA_SERVER is not set: run the tests with `cargo xtask test`, which builds llama-server from the \
         llama-cpp-python sdist and sets it",
    );
    assert!(path.is_file(), "{} does not exist", path.display());
    path
}

fn tokbench(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tokbench"));
    c.current_dir(dir);
    c
}

/// A config whose `llama-server` backend is started by tokbench for each model × thread count; its model is the
/// repository config's default model (same cache).
fn launching_config(dir: &Path) -> PathBuf {
    let repo = std::fs::read_to_string(common::repo_root().join("tokbench.toml")).unwrap();
    let start = repo.find("[[model]]").unwrap();
    let end = start + repo[start..].find("\n\n").unwrap();
    let config = format!(
        r#"[run]
backends = ["llama.cpp", "llama-server"]
models = ["smollm2-135m-instruct-q4_1"]
prompts = ["short"]

{model_entry}

[[server]]
name = "llama-server"
url = "http://127.0.0.1:{{port}}"
command = [{server:?}, "-m", "{{model}}", "--host", "127.0.0.1", "--port", "{{port}}", "-t", "{{threads}}",
           "-c", "8192", "-np", "8", "--no-webui"]
"#,
        server = llama_server().display().to_string(),
        model_entry = &repo[start..end]
    );
    let path = dir.join("servers.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// Ports of the servers tokbench started, from their log names (`<name>-<model>-t<threads>-<port>.log`).
fn launched_ports(dir: &Path) -> Vec<u16> {
    let logs = dir.join("target/tokbench/servers");
    std::fs::read_dir(&logs)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".log")?.rsplit('-').next()?.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn launched_llama_server_exact_tokens_concurrency_sweep_and_overhead_table() {
    let model = common::default_model();
    let dir = tempfile::tempdir().unwrap();
    let config = launching_config(dir.path());
    let out = tokbench(dir.path())
        .args(["run", "--quiet", "--no-quality", "--config"])
        .arg(&config)
        .arg("-m")
        .arg(&model)
        .args(["--prompt-tokens", "32", "-n", "24", "--threads", "2", "--warmup", "1", "--runs", "3"])
        .args(["--concurrency", "1,2,4,8", "--requests-per-stream", "2", "-o", "results.json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let results = RunResults::read(&dir.path().join("results.json")).unwrap();
    assert_eq!(results.benchmarks.len(), 2, "{:?}", results.failures);

    let server = results.benchmarks.iter().find(|b| b.engine.backend == "llama-server").unwrap();
    let endpoint = server.engine.server.as_ref().expect("a server benchmark says which server");
    assert!(endpoint.launched.as_deref().unwrap().contains("llama-server -m"), "{endpoint:?}");
    assert_eq!(server.model.sha256, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53");
    for run in &server.runs {
        assert_eq!((run.prompt_tokens, run.generated_tokens), (32, 24), "exactly N tokens, prompt sized by /tokenize");
        assert!(run.ttft_s > 0.0 && run.decode_tps.unwrap() > 0.0 && run.itl_p99_s.unwrap() > 0.0);
        let t = run.server.as_ref().expect("llama-server reports its own timings");
        assert_eq!((t.prompt_tokens, t.generated_tokens, t.cached_tokens), (Some(32), Some(24), Some(0)));
        // The client sees the first token after the server finished the prompt.
        assert!(run.ttft_s >= t.prompt_s.unwrap(), "TTFT {} < server prompt time {:?}", run.ttft_s, t.prompt_s);
    }
    for m in [Metric::TtftS, Metric::DecodeTps, Metric::ItlP50S, Metric::E2eS] {
        assert!(server.summary.contains_key(&m), "{m:?}");
    }

    let sweep = &results.concurrency[0];
    assert_eq!(sweep.levels.iter().map(|l| l.streams).collect::<Vec<_>>(), [1, 2, 4, 8]);
    for level in &sweep.levels {
        assert_eq!((level.completed, level.errors), (level.streams * 2, 0), "{:?}", level.error_examples);
        let t = level.ttft_s.unwrap();
        assert!(t.p50 <= t.p90 && t.p90 <= t.p99, "{t:?}");
        assert!(level.aggregate_tps > 0.0 && level.requests_per_s > 0.0);
        assert!(level.records.iter().all(|r| r.generated_tokens == 24));
    }
    assert!(stdout.contains("server overhead: llama-server vs llama.cpp in-process"), "{stdout}");
    assert!(stdout.contains("| decode t/s (server-reported) |"), "{stdout}");
    assert!(stdout.contains("| 8 | 16 | 0 |"), "sweep table row for 8 streams:\n{stdout}");

    let ports = launched_ports(dir.path());
    assert_eq!(ports.len(), 1, "one server for one model × thread count");
    assert!(!listening(ports[0]), "the server tokbench started must be stopped when the run ends");
}

#[test]
fn ctrl_c_stops_the_server_tokbench_started() {
    let model = common::default_model();
    let dir = tempfile::tempdir().unwrap();
    let config = launching_config(dir.path());
    let mut child: Child = tokbench(dir.path())
        .args(["run", "--quiet", "--no-quality", "--backend", "llama-server", "--config"])
        .arg(&config)
        .arg("-m")
        .arg(&model)
        .args(["-n", "256", "--runs", "1000", "-o", "results.json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the server is up and serving tokbench's requests.
    let start = Instant::now();
    let port = loop {
        if let Some(&p) = launched_ports(dir.path()).first() {
            if listening(p) {
                break p;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the server did not come up");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(1));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: stopped 1 server(s)"), "{stderr}");
    assert!(!listening(port), "llama-server still listens on {port} after Ctrl-C");
}

/// A llama-server started by the test, as a user runs one, and tokbench attached to it with `--backend openai`.
#[test]
fn attached_to_a_running_llama_server_completions_and_chat() {
    let model = common::default_model();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(llama_server())
        .arg("-m")
        .arg(&model)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "-t", "2", "-c", "2048", "--no-webui"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(&mut server);
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while ureq::get(&format!("{url}/health")).call().is_err() {
        assert!(start.elapsed() < Duration::from_secs(60), "llama-server did not become healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
    let dir = tempfile::tempdir().unwrap();
    for (api, prompt_args) in [("completions", &["--prompt-tokens", "16"][..]), ("chat", &["--prompt", "short"][..])] {
        let out = tokbench(dir.path())
            .args(["run", "--quiet", "--no-quality", "--backend", "openai", "--url", &url, "--api", api, "-m"])
            .arg(&model)
            .args(prompt_args)
            .args(["-n", "8", "--warmup", "0", "--runs", "2", "-o", "r.json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{api}: {}", String::from_utf8_lossy(&out.stderr));
        let r = RunResults::read(&dir.path().join("r.json")).unwrap();
        let b = &r.benchmarks[0];
        let endpoint = b.engine.server.as_ref().unwrap();
        assert_eq!((endpoint.api.as_str(), endpoint.launched.as_deref()), (api, None));
        assert!(b.runs.iter().all(|run| run.generated_tokens == 8), "{api}");
        if api == "completions" {
            assert!(b.runs.iter().all(|run| run.prompt_tokens == 16));
        } else {
            // The chat template wraps the prompt: sized by the server's own count (the raw `short` text is 15
            // tokens of this model; the template adds its role markers).
            assert!(b.prompt.prompt_tokens > 15, "{}", b.prompt.prompt_tokens);
            assert!(b.runs.iter().all(|run| run.prompt_tokens == b.prompt.prompt_tokens));
        }
    }
}
