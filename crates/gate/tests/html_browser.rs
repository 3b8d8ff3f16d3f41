//! The HTML report in a real browser: headless Chromium driven through chromedriver's W3C WebDriver HTTP API on
//! 127.0.0.1. It must render with no console errors, sort its table on a header click, and show a benchmark named
//! `<script>…` as text. Chromium missing is a failure, not a skip: `.ci/run` installs it.
mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The first of: the file named by `env_var`, then `candidates`, that exists.
fn find(env_var: &str, candidates: &[String]) -> Option<PathBuf> {
    std::env::var_os(env_var)
        .map(PathBuf::from)
        .into_iter()
        .chain(candidates.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

struct Driver {
    child: Child,
    base: String,
    agent: ureq::Agent,
    session: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        let hint = "install them with `bash .ci/run` (CI does) or `apt-get install chromium chromium-driver`, or name \
                    them with TOKBENCH_CHROME and TOKBENCH_CHROMEDRIVER";
        // Debian's packages; on macOS, Google Chrome and (GitHub's runners) the chromedriver in $CHROMEWEBDRIVER.
        let browsers = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
            .map(String::from)
            .into_iter()
            .chain(["/Applications/Google Chrome.app/Contents/MacOS/Google Chrome".to_string()])
            .collect::<Vec<_>>();
        let drivers = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver", "/opt/homebrew/bin/chromedriver"]
            .map(String::from)
            .into_iter()
            .chain(std::env::var("CHROMEWEBDRIVER").ok().map(|d| format!("{d}/chromedriver")))
            .collect::<Vec<_>>();
        let chromium =
            find("TOKBENCH_CHROME", &browsers).unwrap_or_else(|| panic!("headless Chromium is not installed: {hint}"));
        let driver =
            find("TOKBENCH_CHROMEDRIVER", &drivers).unwrap_or_else(|| panic!("chromedriver is not installed: {hint}"));
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let t = Instant::now();
        loop {
            let ready = agent
                .get(format!("{base}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "chromedriver did not become ready on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let mut d = Driver { child, base, agent, session: String::new(), _profile: profile };
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", d._profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let v = d.call("POST", "/session", Some(caps));
        d.session = v["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
        d
    }

    /// One WebDriver command; returns the response's `value`, panicking on a WebDriver error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = self.try_call(method, path, body);
        assert!(v.get("error").is_none(), "{method} {path}: {v}");
        v
    }

    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let resp = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, b) => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(b.unwrap_or_else(|| json!({})).to_string()),
        };
        let text = resp.unwrap_or_else(|e| panic!("{method} {path}: {e}")).body_mut().read_to_string().unwrap();
        serde_json::from_str::<Value>(&text).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"))["value"]
            .clone()
    }

    fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    fn script(&self, js: &str) -> Value {
        self.call("POST", &self.s("/execute/sync"), Some(json!({"script": js, "args": []})))
    }

    fn click(&self, css: &str) {
        let el = self.call("POST", &self.s("/element"), Some(json!({"using": "css selector", "value": css})));
        let id = el[ELEMENT].as_str().unwrap().to_string();
        self.call("POST", &self.s(&format!("/element/{id}/click")), Some(json!({})));
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.try_call("DELETE", &self.s(""), None);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn report(dir: &Path) -> PathBuf {
    let evil = short_id("<script>alert(1)</script>");
    let mut base = many(4, |i| (i == 3).then(|| evil.clone()));
    base.benchmarks[2].model.name = "<img src=x onerror=alert(2)>".into();
    let base_file = write(&base, &dir.join("base.json"));
    assert_eq!(bless(&base_file, &dir.join("baselines"), false).code, 0);
    let mut cur = base.clone();
    scale_decode(&mut cur.benchmarks[1], 0.5);
    scale_decode(&mut cur.benchmarks[2], 1.6);
    scale_decode(&mut cur.benchmarks[3], 0.9);
    let e = compare(dir, &write(&cur, &dir.join("cur.json")), &[]);
    assert_eq!(e.code, 1, "{}", e.message);
    dir.join("out/gate.html")
}

fn column(d: &Driver, col: usize, attr: bool) -> Vec<Value> {
    let js = if attr {
        format!("return Array.from(document.querySelectorAll('#results tbody tr')).map(r => {{ const v = r.cells[{col}].getAttribute('data-v'); return v === '' ? null : parseFloat(v); }});")
    } else {
        format!("return Array.from(document.querySelectorAll('#results tbody tr')).map(r => r.cells[{col}].textContent.trim().toLowerCase());")
    };
    d.script(&js).as_array().unwrap().clone()
}

fn sorted_nums(vals: &[Value], asc: bool) -> bool {
    let nums: Vec<f64> = vals.iter().filter_map(Value::as_f64).collect();
    // Blanks sort last in either direction.
    let first_blank = vals.iter().position(Value::is_null).unwrap_or(vals.len());
    vals[first_blank..].iter().all(Value::is_null)
        && nums.windows(2).all(|w| if asc { w[0] <= w[1] } else { w[0] >= w[1] })
}

#[test]
fn report_renders_sorts_and_keeps_hostile_names_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let html = report(dir.path());
    let d = Driver::start();
    d.call("POST", &d.s("/url"), Some(json!({"url": format!("file://{}", html.display())})));

    // Rendered, and our one script ran to its end.
    assert_eq!(d.script("return document.title;"), json!("tokbench regression gate: fail"));
    assert_eq!(d.script("return document.body.getAttribute('data-ready');"), json!("1"));
    // Regressed and inconclusive rows lead, open; the other rows wait in a closed <details>: 16 in all.
    let lead = d.script(
        "return Array.from(document.querySelectorAll('#lead tbody tr')).map(r => r.cells[2].textContent.trim());",
    );
    let lead: Vec<&str> = lead.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(!lead.is_empty() && lead.iter().all(|v| *v == "regressed" || *v == "inconclusive"), "{lead:?}");
    assert_eq!(lead[0], "regressed");
    let rest = d.script("return document.querySelectorAll('#results tbody tr').length;").as_u64().unwrap();
    assert_eq!(lead.len() as u64 + rest, 16);
    assert_eq!(d.script("return document.querySelector('#rest').open;"), json!(false));
    assert_eq!(d.script("return document.querySelector('#results').checkVisibility();"), json!(false));
    d.click("#rest > summary");
    assert_eq!(d.script("return document.querySelector('#rest').open;"), json!(true));
    assert_eq!(d.script("return document.querySelector('#results').checkVisibility();"), json!(true));
    assert!(d.script("return document.querySelectorAll('svg').length;").as_u64().unwrap() >= 3);

    // Hostile names stay text: no extra script, no injected element, no alert, the literal text is shown.
    assert_eq!(d.script("return document.scripts.length;"), json!(1));
    assert_eq!(d.script("return document.querySelectorAll('img').length;"), json!(0));
    let texts = d.script("return Array.from(document.querySelectorAll('td.id')).map(td => td.textContent);");
    assert!(texts.as_array().unwrap().iter().any(|t| t == "x/m/q/<script>alert(1)<_script>/t1"), "{texts}");
    let titles = d.script("return Array.from(document.querySelectorAll('td.id')).map(td => td.title).join(' ');");
    assert!(titles.as_str().unwrap().contains("<img src=x onerror=alert(2)>"), "{titles}");
    let alert = d.try_call("GET", &d.s("/alert/text"), None);
    assert_eq!(alert["error"], "no such alert", "a dialog opened: {alert}");

    // Sorting: Δ (column 5) ascending, then descending; benchmark (column 0) as text.
    let before = column(&d, 5, true);
    d.click("#results th:nth-child(6)");
    let asc = column(&d, 5, true);
    assert!(sorted_nums(&asc, true), "ascending: {asc:?}");
    assert_ne!(before, asc, "clicking the header changed nothing: {before:?}");
    assert_eq!(
        d.script("return document.querySelector('#results th:nth-child(6)').getAttribute('aria-sort');"),
        json!("ascending")
    );
    d.click("#results th:nth-child(6)");
    let desc = column(&d, 5, true);
    assert!(sorted_nums(&desc, false), "descending: {desc:?}");
    d.click("#results th:nth-child(1)");
    let ids: Vec<String> = column(&d, 0, false).iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "{ids:?}");

    // No console errors (chromedriver keeps the browser log for goog:loggingPrefs).
    let log = d.call("POST", &d.s("/se/log"), Some(json!({"type": "browser"})));
    let severe: Vec<&Value> = log.as_array().unwrap().iter().filter(|e| e["level"] == "SEVERE").collect();
    assert!(severe.is_empty(), "console errors: {severe:?}");
}

#[test]
fn the_pareto_chart_renders_when_results_carry_perplexity() {
    let dir = tempfile::tempdir().unwrap();
    let quality: tokbench_record::quality::QualityResult =
        serde_json::from_str(&std::fs::read_to_string(data("quality.json")).unwrap()).unwrap();
    // Three configurations: m0 best PPL; m1 as fast as m0 but worse (dominated by m0); m2 worst PPL but fastest.
    let mut base = many(3, |_| None);
    for (i, b) in base.benchmarks.iter_mut().enumerate() {
        let mut q = quality.clone();
        q.ppl += i as f64;
        b.quality = Some(q);
        b.model.name = format!("m{i}<b>bold</b>");
    }
    scale_decode(&mut base.benchmarks[2], 1.5);
    base.benchmarks[2].summary.get_mut(&tokbench_record::metric::Metric::DecodeTps).unwrap().median *= 1.5;
    // The frontier as tokbench run marks it (`tokbench_core::quality::pareto`): m1 is dominated by m0, m0 and m2
    // are optimal.
    use tokbench_record::quality::{ParetoMarks, ParetoVerdict};
    let m0 = format!("{}/{}", base.benchmarks[0].engine.backend, base.benchmarks[0].model.name);
    for (i, b) in base.benchmarks.iter_mut().enumerate() {
        let verdict = if i == 1 { ParetoVerdict::Dominated { by: m0.clone() } } else { ParetoVerdict::Optimal };
        b.pareto = Some(ParetoMarks { decode_vs_ppl: verdict.clone(), ttft_vs_ppl: verdict });
    }
    let file = write(&base, &dir.path().join("base.json"));
    assert_eq!(bless(&file, &dir.path().join("baselines"), false).code, 0);
    let e = compare(dir.path(), &file, &[]);
    assert_eq!(e.code, 0, "{}", e.message);

    let d = Driver::start();
    let html = dir.path().join("out/gate.html");
    d.call("POST", &d.s("/url"), Some(json!({"url": format!("file://{}", html.display())})));
    let title = d.script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent).join('|');");
    assert!(title.as_str().unwrap().contains("the Pareto chart"), "{title}");
    assert_eq!(d.script("return document.querySelectorAll('svg g.opt').length;"), json!(2));
    assert_eq!(d.script("return document.querySelectorAll('svg g.cur').length;"), json!(1));
    let tips =
        d.script("return Array.from(document.querySelectorAll('svg g.cur title')).map(t => t.textContent).join(' ');");
    assert!(tips.as_str().unwrap().contains("dominated by llama.cpp/m0<b>bold</b>"), "{tips}");
    assert_eq!(d.script("return document.querySelectorAll('b').length;"), json!(0), "a model name became markup");
    let log = d.call("POST", &d.s("/se/log"), Some(json!({"type": "browser"})));
    let severe: Vec<&Value> = log.as_array().unwrap().iter().filter(|e| e["level"] == "SEVERE").collect();
    assert!(severe.is_empty(), "console errors: {severe:?}");
}

/// Pixels of a PNG whose colour is saturated (a series or a ceiling), not white, grey or black (grid, axes, text).
fn coloured_pixels(png_bytes: &[u8]) -> usize {
    let decoder = png::Decoder::new(png_bytes);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    assert!(step >= 3, "not an RGB screenshot: {:?}", info.color_type);
    buf[..info.buffer_size()]
        .chunks(step)
        .filter(|p| {
            let (max, min) = (p[0].max(p[1]).max(p[2]), p[0].min(p[1]).min(p[2]));
            max - min > 60
        })
        .count()
}

#[test]
fn the_run_report_draws_its_charts_in_a_browser() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let mut run = scaling_run();
    run.benchmarks[1].model.name = "<script>alert(3)</script>".into();
    let results = write(&run, &dir.path().join("latest.json"));
    let html = tokbench_gate::report::run::write_report(&[results], None).unwrap();

    let d = Driver::start();
    d.call("POST", &d.s("/window/rect"), Some(json!({"width": 1400, "height": 1000})));
    d.call("POST", &d.s("/url"), Some(json!({"url": format!("file://{}", html.display())})));
    assert_eq!(d.script("return document.title;"), json!("tokbench report: latest.json"));
    assert_eq!(d.script("return document.body.getAttribute('data-ready');"), json!("1"));
    assert_eq!(d.script("return document.scripts.length;"), json!(1));

    // Every chart is drawn: a screenshot of each shows its coloured series (grid, axes and text are grey or black;
    // an empty plot has no coloured pixel).
    let ids = d.script("return Array.from(document.querySelectorAll('figure.chart')).map(f => f.id);");
    let ids: Vec<String> = ids.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(ids, ["ttft-vs-prompt", "decode-vs-depth", "roofline", "size-vs-speed", "itl"]);
    for id in &ids {
        let el =
            d.call("POST", &d.s("/element"), Some(json!({"using": "css selector", "value": format!("#{id} svg")})));
        let el = el[ELEMENT].as_str().unwrap().to_string();
        let shot = d.call("GET", &d.s(&format!("/element/{el}/screenshot")), None);
        let png = base64::engine::general_purpose::STANDARD.decode(shot.as_str().unwrap()).unwrap();
        let n = coloured_pixels(&png);
        assert!(n > 150, "chart {id}: only {n} coloured pixels in its screenshot");
    }
    // The control: the table's header row is grey and black, no series colour.
    let el = d.call("POST", &d.s("/element"), Some(json!({"using": "css selector", "value": "#benchmarks thead"})));
    let shot = d.call("GET", &d.s(&format!("/element/{}/screenshot", el[ELEMENT].as_str().unwrap())), None);
    let png = base64::engine::general_purpose::STANDARD.decode(shot.as_str().unwrap()).unwrap();
    assert_eq!(coloured_pixels(&png), 0, "the control has coloured pixels: the count tells nothing");

    // Sorting the table by decode t/s (column 13), descending after two clicks.
    d.click("#benchmarks th:nth-child(13)");
    d.click("#benchmarks th:nth-child(13)");
    let v = d.script(
        "return Array.from(document.querySelectorAll('#benchmarks tbody tr')).map(r => parseFloat(r.cells[12].getAttribute('data-v')));",
    );
    let v: Vec<f64> = v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert!(v.len() == 12 && v.windows(2).all(|w| w[0] >= w[1]), "{v:?}");
    // The hostile model name is text, in the table and the legends.
    assert_eq!(d.script("return document.scripts.length;"), json!(1));
    let alert = d.try_call("GET", &d.s("/alert/text"), None);
    assert_eq!(alert["error"], "no such alert", "a dialog opened: {alert}");
    let log = d.call("POST", &d.s("/se/log"), Some(json!({"type": "browser"})));
    let severe: Vec<&Value> = log.as_array().unwrap().iter().filter(|e| e["level"] == "SEVERE").collect();
    assert!(severe.is_empty(), "console errors: {severe:?}");
}
