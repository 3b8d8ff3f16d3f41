//! Broken servers, each of our own making on 127.0.0.1, in one matrix with a well-behaved one: every fault is a
//! clear error for its benchmark, the rest of the matrix runs on, and runs measured before a fault are kept.
//! Drives the real `tokbench run` binary, as a user would.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokbench_record::results::RunResults;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    None,
    Http500,
    Http429,
    /// The n-th generation request (0-based, counting warmup) stops after 3 deltas; earlier ones are fine.
    StopsMidway {
        at_request: usize,
    },
    Garbled,
    NeverFirstToken,
}

/// A one-model OpenAI-compatible server that streams `max_tokens` deltas, or misbehaves as told.
fn fake_server(fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let generations = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let generations = generations.clone();
            std::thread::spawn(move || {
                let _ = serve(conn, fault, &generations);
            });
        }
    });
    url
}

/// The request line and body of one HTTP/1.1 request (Content-Length bodies only, as ureq sends them).
fn read_request(conn: &TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        if h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok((request_line, body))
}

fn serve(mut conn: TcpStream, fault: Fault, generations: &AtomicUsize) -> std::io::Result<()> {
    let (request_line, body) = read_request(&conn)?;
    if request_line.starts_with("GET /v1/models") {
        let json = r#"{"object":"list","data":[{"id":"fake-model","object":"model"}]}"#;
        return write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}", json.len());
    }
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let max_tokens = request["max_tokens"].as_u64().unwrap() as usize;
    // Prompt sizing asks for one token; only real generations count towards StopsMidway.
    let nth = if max_tokens > 1 { generations.fetch_add(1, Ordering::SeqCst) } else { usize::MAX };
    let error = |status: &str, extra: &str, message: &str| {
        let json = format!(r#"{{"error":{{"message":"{message}","type":"server_error"}}}}"#);
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{json}",
            json.len()
        )
    };
    match fault {
        Fault::Http500 => {
            return conn.write_all(error("500 Internal Server Error", "", "boom: out of memory").as_bytes())
        }
        Fault::Http429 => {
            return conn
                .write_all(error("429 Too Many Requests", "Retry-After: 7\r\n", "rate limit reached").as_bytes())
        }
        _ => {}
    }
    conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")?;
    conn.flush()?;
    if fault == Fault::NeverFirstToken && max_tokens > 1 {
        std::thread::sleep(Duration::from_secs(30));
        return Ok(());
    }
    let delta =
        |text: &str| format!("data: {{\"choices\":[{{\"text\":\"{text}\",\"index\":0,\"finish_reason\":null}}]}}\n\n");
    for i in 0..max_tokens {
        if matches!(fault, Fault::StopsMidway { at_request } if at_request == nth) && i == 3 {
            return Ok(()); // connection closed mid-generation
        }
        if fault == Fault::Garbled && max_tokens > 1 && i == 2 {
            conn.write_all(b"data: {\"choices\":[{\"text\":\"x\"\n\n")?;
            continue;
        }
        conn.write_all(delta(" tok").as_bytes())?;
        std::thread::sleep(Duration::from_millis(1));
    }
    let last = format!(
        "data: {{\"choices\":[{{\"text\":\"\",\"index\":0,\"finish_reason\":\"length\"}}],\"usage\":{{\"prompt_tokens\":12,\"completion_tokens\":{max_tokens}}}}}\n\ndata: [DONE]\n\n"
    );
    conn.write_all(last.as_bytes())
}

#[test]
fn each_fault_fails_its_own_benchmark_and_the_matrix_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let closed_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(); // dropped: refused
    let servers = [
        ("good", fake_server(Fault::None)),
        ("refused", format!("http://127.0.0.1:{closed_port}")),
        ("http500", fake_server(Fault::Http500)),
        ("http429", fake_server(Fault::Http429)),
        // warmup is request 0, timed runs 1..=3: the third timed run breaks, two are already measured.
        ("midway", fake_server(Fault::StopsMidway { at_request: 3 })),
        ("garbled", fake_server(Fault::Garbled)),
        ("silent", fake_server(Fault::NeverFirstToken)),
        ("good2", fake_server(Fault::None)),
    ];
    let mut config = String::from("[run]\nbackends = [");
    config += &servers.iter().map(|(n, _)| format!("{n:?}")).collect::<Vec<_>>().join(", ");
    config += "]\nmodels = []\nprompts = [\"short\"]\nthreads = [2]\nwarmup = 1\nruns = 3\n";
    for (name, url) in &servers {
        config += &format!("\n[[server]]\nname = {name:?}\nurl = {url:?}\nfirst_token_timeout_s = 1.5\n");
    }
    let config_path = dir.path().join("tokbench.toml");
    std::fs::write(&config_path, config).unwrap();
    let out_path = dir.path().join("results.json");

    let out = Command::new(env!("CARGO_BIN_EXE_tokbench"))
        .args(["run", "--quiet", "--config"])
        .arg(&config_path)
        .arg("-o")
        .arg(&out_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "failures must fail the command:\n{stderr}");
    assert!(stderr.contains("6 benchmark(s) failed:") && stderr.contains("(the other 2 are measured"), "{stderr}");

    let results = RunResults::read(&out_path).expect("results are written despite the failures");
    let ok: Vec<&str> = results.benchmarks.iter().map(|b| b.engine.backend.as_str()).collect();
    assert_eq!(ok, ["good", "good2"], "the good servers before and after the broken ones are measured");
    for b in &results.benchmarks {
        assert_eq!(b.runs.len(), 3);
        assert!(b.runs.iter().all(|r| r.generated_tokens == 50 && r.prompt_tokens == 12));
        assert!(b.summary.contains_key(&tokbench_record::metric::Metric::TtftS));
    }
    let failure = |backend: &str| {
        results
            .failures
            .iter()
            .find(|f| f.id.backend() == backend)
            .unwrap_or_else(|| panic!("no failure recorded for {backend}: {:?}", results.failures))
    };
    let expect = [
        ("refused", "connection refused"),
        ("http500", "HTTP 500 Internal Server Error"),
        ("http500", "boom: out of memory"),
        ("http429", "HTTP 429 Too Many Requests"),
        ("http429", "Retry-After: 7"),
        ("midway", "ended after 3 deltas without a finish reason"),
        ("midway", "timed run 3 of 3"),
        ("garbled", "garbled event stream"),
        ("silent", "timed out waiting for the first token"),
    ];
    for (backend, text) in expect {
        let f = failure(backend);
        assert!(f.error.contains(text), "{backend}: {:?} lacks {text:?}", f.error);
    }
    // Nothing measured is lost: the two timed runs before the broken one are in the failure record.
    assert_eq!(failure("midway").completed_runs.len(), 2);
    assert!(failure("midway").completed_runs.iter().all(|r| r.generated_tokens == 50));
}

/// An Ollama-style server (`/api/generate`, newline-delimited JSON) that stops at end-of-sequence after `stop_at`
/// tokens when it is told to generate more, as Ollama does: it has no `ignore_eos`.
fn fake_ollama(stop_at: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = serve_ollama(conn, stop_at);
            });
        }
    });
    url
}

fn serve_ollama(mut conn: TcpStream, stop_at: usize) -> std::io::Result<()> {
    let (request_line, body) = read_request(&conn)?;
    if request_line.starts_with("GET /api/tags") {
        let json = r#"{"models":[{"name":"fake:1b"}]}"#;
        return write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}", json.len());
    }
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(request["raw"], true, "tokbench sends the prompt untemplated");
    let wanted = request["options"]["num_predict"].as_u64().unwrap() as usize;
    let n = wanted.min(stop_at);
    conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n")?;
    for _ in 0..n {
        conn.write_all(b"{\"model\":\"fake:1b\",\"response\":\" tok\",\"done\":false}\n")?;
        std::thread::sleep(Duration::from_millis(1));
    }
    let reason = if n < wanted { "stop" } else { "length" };
    // Server-side: 9 prompt tokens in 30 ms, n tokens at 4 ms each.
    let last = format!(
        "{{\"model\":\"fake:1b\",\"response\":\"\",\"done\":true,\"done_reason\":\"{reason}\",\"prompt_eval_count\":9,\
         \"prompt_eval_duration\":30000000,\"eval_count\":{n},\"eval_duration\":{}}}\n",
        n * 4_000_000
    );
    conn.write_all(last.as_bytes())
}

#[test]
fn ollama_streams_are_timed_with_the_servers_own_figures_and_an_early_stop_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let run = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_tokbench"))
            .current_dir(dir.path())
            .args(["run", "--quiet", "--no-quality", "--backend", "ollama", "--url", url, "--model-name", "fake:1b"])
            .args(["--prompt", "short", "-n", "16", "--warmup", "0", "--runs", "2", "-o", "r.json"])
            .output()
            .unwrap()
    };
    let out = run(&fake_ollama(usize::MAX));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("cannot be told to ignore end-of-sequence"), "the warning is shown: {stderr}");
    let r = RunResults::read(&dir.path().join("r.json")).unwrap();
    let b = &r.benchmarks[0];
    assert_eq!(b.engine.server.as_ref().unwrap().api, "ollama");
    assert_eq!(b.model.name, "fake:1b");
    for run in &b.runs {
        assert_eq!((run.prompt_tokens, run.generated_tokens), (9, 16), "counts from prompt_eval_count / eval_count");
        let t = run.server.as_ref().unwrap();
        assert!((t.decode_tps().unwrap() - 250.0).abs() < 1e-9 && (t.prefill_tps().unwrap() - 300.0).abs() < 1e-9);
        assert!(run.ttft_s > 0.0 && run.decode_tps.unwrap() > 0.0);
    }

    let out = run(&fake_ollama(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("generated 5 tokens where 16 were requested") && stderr.contains("Ollama has no such option"),
        "{stderr}"
    );
}
