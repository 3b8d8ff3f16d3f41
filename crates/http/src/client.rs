//! One streamed generation over HTTP, timed on the client: the clock reads are taken on the request's own reader
//! thread as each line arrives (see `stream`), so parsing and bookkeeping never delay a timestamp.
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::Value;
use tokbench_record::results::ServerTimings;
use tokbench_record::setup::Sampling;

use crate::api::{Api, Usage};
use crate::stream::{clip, deadline, EventStream, Payload};

/// How long tokbench waits before calling a server broken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Request sent → first content delta (covers queueing and prefill).
    pub first_token: Duration,
    /// Longest silence between two events once tokens flow.
    pub gap: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_token: Duration::from_secs(120),
            gap: Duration::from_secs(60),
        }
    }
}

/// An OpenAI-compatible or Ollama server at `base_url`.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    pub base_url: String,
    pub api: Api,
    pub model: Option<String>,
    /// Sent as `Authorization: Bearer …`; never logged or written to results.
    api_key: Option<String>,
    pub timeouts: Timeouts,
    /// A `[[server]]`'s `extra_body`: fields added to every generation request.
    pub extra_body: serde_json::Map<String, Value>,
}

/// What one streamed request produced, with arrival times.
#[derive(Debug, Clone)]
pub struct Streamed {
    /// Just before the request was handed to the connection.
    pub sent_at: Instant,
    /// Arrival of each delta that carried text (empty deltas, role headers and pings are not tokens).
    pub deltas: Vec<Instant>,
    pub text: String,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    pub timings: Option<ServerTimings>,
}

impl Streamed {
    /// Tokens generated: the server's count when it gave one, else one per text delta.
    pub fn generated_tokens(&self) -> usize {
        self.usage.and_then(|u| u.completion_tokens).map_or(self.deltas.len(), |n| n as usize)
    }
}

impl Client {
    pub fn new(base_url: &str, api: Api, model: Option<String>, api_key: Option<String>, timeouts: Timeouts) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeouts.connect))
            // Servers close idle keep-alive connections (llama-server after 5 s): don't reuse one that old.
            .max_idle_age(Duration::from_secs(2))
            .build()
            .into();
        let base_url = base_url.trim_end_matches('/').to_string();
        Client { agent, base_url, api, model, api_key, timeouts, extra_body: serde_json::Map::new() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Streams a generation of `max_tokens` tokens. Errors name the URL and what went wrong, and say how many
    /// deltas had arrived when it did.
    pub fn stream(&self, prompt: &str, max_tokens: usize, sampling: Sampling) -> Result<Streamed> {
        let url = self.url(self.api.path());
        let mut body = self.api.request(self.model.as_deref(), prompt, max_tokens, sampling);
        if let Some(fields) = body.as_object_mut() {
            fields.extend(self.extra_body.clone());
        }
        let body = serde_json::to_vec(&body)?;
        let request = self.post_stream(&url);
        let mut sent_at = Instant::now();
        let response = match request.send(&body[..]) {
            // A kept-alive connection the server had closed meanwhile: nothing reached it, so send again on a new
            // connection, restarting the clock.
            Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                sent_at = Instant::now();
                self.post_stream(&url).send(&body[..])
            }
            other => other,
        }
        .map_err(|e| transport_error(&url, e, self.timeouts))?;
        let response = check_status(&url, response)?;
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        if self.api != Api::Ollama && !content_type.contains("event-stream") {
            bail!(
                "{url} answered with Content-Type {content_type:?}, not a stream of server-sent events: the server \
                 ignored `stream: true`, so time to first token cannot be measured"
            );
        }
        let mut events = EventStream::spawn(response.into_body().into_reader(), self.api.framing());
        let mut out = Streamed {
            sent_at,
            deltas: Vec::with_capacity(max_tokens),
            text: String::new(),
            usage: None,
            finish_reason: None,
            timings: None,
        };
        let mut last_event = None;
        loop {
            let until = deadline(sent_at, self.timeouts.first_token, self.timeouts.gap, last_event);
            let waiting_for = if out.deltas.is_empty() {
                format!("the first token from {url} (first-token timeout {:?})", self.timeouts.first_token)
            } else {
                format!(
                    "the next event from {url} after {} deltas (gap timeout {:?})",
                    out.deltas.len(),
                    self.timeouts.gap
                )
            };
            let event = events.next(until, &waiting_for).with_context(|| after(&out))?;
            let Some((at, payload)) = event else { break };
            last_event = Some(at);
            let chunk = match payload {
                Payload::Done => break,
                Payload::Json(json) => self.api.parse_chunk(&json).with_context(|| after(&out))?,
            };
            if !chunk.text.is_empty() {
                out.deltas.push(at);
                out.text.push_str(&chunk.text);
            }
            out.finish_reason = chunk.finish_reason.or(out.finish_reason);
            out.usage = chunk.usage.or(out.usage);
            out.timings = chunk.timings.or(out.timings);
            if self.api == Api::Ollama && out.finish_reason.is_some() {
                break;
            }
        }
        ensure!(
            out.finish_reason.is_some(),
            "the stream from {url} ended after {} deltas without a finish reason: the server closed the connection \
             mid-generation",
            out.deltas.len()
        );
        Ok(out)
    }

    fn post_stream(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        let mut request = self
            .agent
            .post(url)
            .header("content-type", "application/json")
            .config()
            .timeout_recv_response(Some(self.timeouts.first_token))
            .build();
        if let Some(key) = &self.api_key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        request
    }

    pub fn get_json(&self, path: &str) -> Result<Value> {
        let url = self.url(path);
        let mut request = self.agent.get(&url);
        if let Some(key) = &self.api_key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let response = request.call().map_err(|e| transport_error(&url, e, self.timeouts))?;
        let mut response = check_status(&url, response)?;
        let text = response.body_mut().read_to_string().with_context(|| format!("reading {url}"))?;
        serde_json::from_str(&text).with_context(|| format!("{url} did not answer JSON: {:?}", clip(&text)))
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        let url = self.url(path);
        let mut request = self.agent.post(&url).header("content-type", "application/json");
        if let Some(key) = &self.api_key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let response =
            request.send(&serde_json::to_vec(body)?[..]).map_err(|e| transport_error(&url, e, self.timeouts))?;
        let mut response = check_status(&url, response)?;
        let text = response.body_mut().read_to_string().with_context(|| format!("reading {url}"))?;
        serde_json::from_str(&text).with_context(|| format!("{url} did not answer JSON: {:?}", clip(&text)))
    }

    /// GET `path`, true on a 2xx answer (health checks); transport errors are errors.
    pub fn is_ok(&self, path: &str) -> Result<bool> {
        let url = self.url(path);
        let response = self.agent.get(&url).call().map_err(|e| transport_error(&url, e, self.timeouts))?;
        Ok(response.status().is_success())
    }
}

fn after(out: &Streamed) -> String {
    format!("streaming stopped after {} text deltas", out.deltas.len())
}

/// A non-2xx answer as an error that quotes the server and says what usually fixes it.
fn check_status(url: &str, mut response: ureq::http::Response<ureq::Body>) -> Result<ureq::http::Response<ureq::Body>> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after =
        response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(|s| format!(" (Retry-After: {s})"));
    let body = response.body_mut().with_config().limit(64 * 1024).read_to_string().unwrap_or_default();
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message").or_else(|| v.get("error")).or_else(|| v.get("message")).map(|m| match m {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        })
        .unwrap_or_else(|| clip(body.trim()));
    let hint = match status.as_u16() {
        401 | 403 => " — check the API key (the `api_key_env` variable of the server config)",
        404 => " — wrong URL or API? (`--api completions|chat|ollama`; the URL is the server root, without /v1)",
        429 => " — the server is rate-limiting: lower the concurrency or raise its limits",
        503 => " — the server is not ready (still loading the model?) or has no free slot",
        _ => "",
    };
    Err(anyhow!("HTTP {status} from {url}{}: {message}{hint}", retry_after.unwrap_or_default()))
}

fn transport_error(url: &str, e: ureq::Error, timeouts: Timeouts) -> anyhow::Error {
    let refused = matches!(&e, ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused);
    if refused {
        return anyhow!(
            "cannot connect to {url}: connection refused — is the server running and listening there? (or give the \
             server config a `command` so tokbench starts it)"
        );
    }
    if let ureq::Error::Timeout(which) = &e {
        return anyhow!(
            "{url}: timed out ({which}); connect timeout {:?}, first-token timeout {:?}",
            timeouts.connect,
            timeouts.first_token
        );
    }
    anyhow!("request to {url} failed: {e}")
}
