//! A server as a [`Backend`]: `load` attaches to it (or starts it), `generate` streams one request and turns the
//! arrival times into the engine's trace.
//!
//! How the trace is read off a stream (client clock throughout, see `tokbench_core::metrics`):
//! - `tokenized` = the request about to be sent (tokenizing is the server's work, inside TTFT);
//! - `prefill_done` = `token[0]` = arrival of the first delta that carries text: TTFT covers connection, queueing,
//!   prefill and the first sample, the way an application sees it;
//! - `token[i]` = arrival of the i-th text delta. When the server reports more tokens than it sent deltas (it packed
//!   several tokens into one delta), the extra tokens are recorded at the last delta's arrival, so decode tok/s
//!   and end-to-end stay exact while ITL shows the bursts.
//! - prompt and generated token counts come from the server's `usage` when present.
//!
//! The RAM the engine measures is tokbench's own process, not the server's; results say so through
//! `EngineInfo.server`.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::{json, Value};
use tokbench_core::backend::{Backend, GenerationRequest, LoadOptions, LoadedModel, ModelDetails};
use tokbench_core::config::ServerConfig;
use tokbench_core::metrics::{TraceRecorder, UNKNOWN_TOKEN};
use tokbench_core::sweep::ConcurrentBatch;
use tokbench_record::setup::{EngineInfo, ServerEndpoint};
use tokbench_record::sweep::RequestRecord;

use crate::api::Api;
use crate::client::{Client, Streamed, Timeouts};
use crate::launch::{fill, free_port, ServerProcess};

pub struct HttpBackend {
    config: ServerConfig,
    api: Api,
    /// Where launched servers write their logs.
    log_dir: PathBuf,
}

/// A warning when an API key would travel unencrypted: over `http://` to anything but this machine.
pub fn cleartext_key_warning(server: &str, url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| {
        format!(
            "server {server:?} gets its API key over plain http:// ({url}): anyone on the network path can read it; \
             use https://"
        )
    })
}

impl HttpBackend {
    pub fn new(config: &ServerConfig) -> Result<HttpBackend> {
        let api: Api = config.api.parse().with_context(|| format!("server {:?}", config.name))?;
        ensure!(
            config.url.starts_with("http://") || config.url.starts_with("https://"),
            "server {:?}: url {:?} must start with http:// or https://",
            config.name,
            config.url
        );
        ensure!(
            config.command.is_some() || !config.url.contains("{port}"),
            "server {:?}: `{{port}}` in the url needs a `command` that starts the server on that port",
            config.name
        );
        ensure!(
            api != Api::Ollama || config.model_name.is_some(),
            "server {:?}: Ollama needs `model_name` (or --model-name), e.g. smollm2:135m",
            config.name
        );
        if !api.exact_length() {
            eprintln!(
                "warning: server {:?} ({} API) cannot be told to ignore end-of-sequence: a run that stops before the \
                 requested tokens fails; prefer prompts that make the model write at length",
                config.name,
                api.name()
            );
        }
        Ok(HttpBackend { config: config.clone(), api, log_dir: PathBuf::from("target/tokbench/servers") })
    }

    /// Server logs go here (default target/tokbench/servers).
    pub fn with_log_dir(mut self, dir: PathBuf) -> Self {
        self.log_dir = dir;
        self
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            first_token: Duration::from_secs_f64(self.config.first_token_timeout_s),
            gap: Duration::from_secs_f64(self.config.gap_timeout_s),
            ..Timeouts::default()
        }
    }

    fn api_key(&self) -> Result<Option<String>> {
        match &self.config.api_key_env {
            None => Ok(None),
            Some(var) => {
                let key = std::env::var(var).map_err(|_| {
                    anyhow!("server {:?} takes its API key from ${var}, which is not set", self.config.name)
                })?;
                if let Some(warning) = cleartext_key_warning(&self.config.name, &self.config.url) {
                    static WARNED: std::sync::Once = std::sync::Once::new();
                    WARNED.call_once(|| eprintln!("warning: {warning}"));
                }
                Ok(Some(key))
            }
        }
    }

    fn client(&self, url: &str) -> Result<Client> {
        let mut client = Client::new(url, self.api, self.config.model_name.clone(), self.api_key()?, self.timeouts());
        client.extra_body = self.config.extra_body.clone();
        Ok(client)
    }
}

impl Backend for HttpBackend {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn engine_info(&self) -> EngineInfo {
        EngineInfo {
            backend: self.config.name.clone(),
            version: format!("{} API over HTTP", self.api.name()),
            build_info: String::new(),
            server: Some(ServerEndpoint {
                api: self.api.name().to_string(),
                url: self.config.url.clone(),
                model_name: self.config.model_name.clone(),
                launched: self.config.command.as_ref().map(|c| c.join(" ")),
            }),
        }
    }

    fn attached_model(&self) -> Option<String> {
        if self.config.command.is_some() {
            return None;
        }
        let served = self.config.model_name.clone().or_else(|| {
            let client = self.client(&self.config.url).ok()?;
            first_listed_model(&client).ok()
        });
        Some(served.unwrap_or_else(|| "served-model".to_string()))
    }

    fn load(&self, model: &Path, options: &LoadOptions) -> Result<Box<dyn LoadedModel>> {
        let (client, process) = match &self.config.command {
            None => {
                let client = self.client(&self.config.url)?;
                client
                    .get_json(models_path(self.api))
                    .with_context(|| format!("no usable server at {}", client.base_url))?;
                (client, None)
            }
            Some(template) => {
                let port = free_port()?.to_string();
                let values = [
                    ("model", model.display().to_string()),
                    ("port", port.clone()),
                    ("threads", options.threads.to_string()),
                    ("ctx_size", options.ctx_size.to_string()),
                    ("batch", options.batch.to_string()),
                    ("ubatch", options.ubatch.to_string()),
                    ("n_gpu_layers", options.n_gpu_layers.to_string()),
                ];
                let argv = fill(template, &values)?;
                let url = self.config.url.replace("{port}", &port);
                let stem = model.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
                let log = self.log_dir.join(format!("{}-{stem}-t{}-{port}.log", self.config.name, options.threads));
                let mut process = ServerProcess::start(&argv, &log)?;
                let client = self.client(&url)?;
                process
                    .wait_healthy(&client, &self.config.health, Duration::from_secs_f64(self.config.startup_timeout_s))
                    .with_context(|| format!("starting server {:?}: {}", self.config.name, argv.join(" ")))?;
                (client, Some(process))
            }
        };
        let mut client = client;
        if client.model.is_none() && self.api != Api::Ollama {
            client.model = first_listed_model(&client).ok();
        }
        let listing = client.get_json(models_path(self.api)).unwrap_or(Value::Null);
        let meta = listing.pointer("/data/0/meta").cloned().unwrap_or(Value::Null);
        let details = ModelDetails {
            n_params: meta.get("n_params").and_then(Value::as_u64),
            n_ctx_train: meta.get("n_ctx_train").and_then(Value::as_u64).map(|n| n as u32),
            n_vocab: meta.get("n_vocab").and_then(Value::as_u64).map(|n| n as u32),
            kv_cache_type: None,
        };
        // llama-server: per-slot context from /props; else what the matrix asked for.
        let context_size = client
            .get_json("/props")
            .ok()
            .and_then(|p| p.pointer("/default_generation_settings/n_ctx").and_then(Value::as_u64))
            .map_or(options.ctx_size as usize, |n| n as usize);
        // llama-server's /tokenize gives exact token counts and exact-length prompts.
        let tokenizes = self.api == Api::Completions
            && client
                .post_json("/tokenize", &json!({"content": "a", "add_special": true}))
                .is_ok_and(|v| v["tokens"].is_array());
        Ok(Box::new(HttpModel { client, process, details, context_size, tokenizes, name: self.config.name.clone() }))
    }
}

fn models_path(api: Api) -> &'static str {
    match api {
        Api::Ollama => "/api/tags",
        _ => "/v1/models",
    }
}

fn first_listed_model(client: &Client) -> Result<String> {
    let v = client.get_json("/v1/models")?;
    v.pointer("/data/0/id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the server lists no model"))
}

pub struct HttpModel {
    client: Client,
    /// The server tokbench started, stopped when this is dropped.
    process: Option<ServerProcess>,
    details: ModelDetails,
    context_size: usize,
    tokenizes: bool,
    name: String,
}

impl HttpModel {
    fn check_length(&self, s: &Streamed, wanted: usize) -> Result<()> {
        let got = s.generated_tokens();
        if got != wanted {
            let why = match s.finish_reason.as_deref() {
                Some("stop") => format!(
                    "it stopped at end-of-sequence (finish reason \"stop\"): this server does not honour \
                     `ignore_eos`{}",
                    if self.client.api == Api::Ollama { " (Ollama has no such option)" } else { "" }
                ),
                Some(other) => format!("finish reason {other:?}"),
                None => "no finish reason".into(),
            };
            bail!("server {:?} generated {got} tokens where {wanted} were requested: {why}", self.name);
        }
        Ok(())
    }
}

impl LoadedModel for HttpModel {
    fn details(&self) -> ModelDetails {
        self.details.clone()
    }

    fn context_size(&self) -> usize {
        self.context_size
    }

    fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        ensure!(
            self.tokenizes,
            "server {:?} cannot tokenize for tokbench: exact-length prompts (pN, --prompt-tokens) need llama-server's \
             /tokenize and the completions API; use text prompts (short, medium, long, or [[prompt]] entries)",
            self.name
        );
        let v = self.client.post_json("/tokenize", &json!({"content": text, "add_special": true}))?;
        v["tokens"]
            .as_array()
            .context("/tokenize answered without `tokens`")?
            .iter()
            .map(|t| t.as_u64().map(|t| t as u32).context("/tokenize answered a token that is not a number"))
            .collect()
    }

    fn detokenize(&self, tokens: &[u32]) -> Result<String> {
        ensure!(self.tokenizes, "server {:?} cannot detokenize", self.name);
        let v = self.client.post_json("/detokenize", &json!({ "tokens": tokens }))?;
        v["content"].as_str().map(str::to_string).context("/detokenize answered without `content`")
    }

    fn count_prompt_tokens(&self, text: &str) -> Result<usize> {
        if self.tokenizes {
            return Ok(self.tokenize(text)?.len());
        }
        // Chat templates and servers without a tokenizer endpoint: ask for one token and read the server's count.
        let s = self.client.stream(text, 1, tokbench_record::setup::Sampling::GREEDY)?;
        s.usage.and_then(|u| u.prompt_tokens).map(|n| n as usize).ok_or_else(|| {
            anyhow!(
                "server {:?} reports no prompt token count (`usage.prompt_tokens`), so prompts cannot be sized",
                self.name
            )
        })
    }

    fn generate(&mut self, request: &GenerationRequest<'_>, trace: &mut TraceRecorder) -> Result<()> {
        let s = self.client.stream(request.prompt, request.gen_tokens, request.sampling)?;
        self.check_length(&s, request.gen_tokens)?;
        let prompt_tokens = match s.usage.and_then(|u| u.prompt_tokens) {
            Some(n) => n as usize,
            None => self.count_prompt_tokens(request.prompt)?,
        };
        ensure!(!s.deltas.is_empty(), "server {:?} streamed no text", self.name);
        trace.tokenized_at(prompt_tokens, s.sent_at);
        trace.prefill_done_at(s.deltas[0]);
        let n = s.generated_tokens();
        for i in 0..n {
            let at = s.deltas[i.min(s.deltas.len() - 1)];
            // More deltas than tokens (a server splitting one token's text): the last token ends at the last delta.
            let at = if i == n - 1 { *s.deltas.last().unwrap() } else { at };
            trace.token_at(UNKNOWN_TOKEN, at);
        }
        if let Some(t) = s.timings {
            trace.server_timings(t);
        }
        Ok(())
    }

    fn generate_concurrently(
        &self,
        request: &GenerationRequest<'_>,
        streams: usize,
        requests_per_stream: usize,
    ) -> Result<ConcurrentBatch> {
        ensure!(streams > 0 && requests_per_stream > 0, "a concurrency level needs at least 1 stream and 1 request");
        let start = Instant::now();
        let results: Vec<Vec<Result<RequestRecord, String>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..streams)
                .map(|stream| {
                    let client = self.client.clone();
                    scope.spawn(move || {
                        (0..requests_per_stream)
                            .map(|_| {
                                let s = client
                                    .stream(request.prompt, request.gen_tokens, request.sampling)
                                    .map_err(|e| format!("{e:#}"))?;
                                self.check_length(&s, request.gen_tokens).map_err(|e| format!("{e:#}"))?;
                                let first = *s.deltas.first().ok_or("no text streamed")?;
                                let last = *s.deltas.last().unwrap();
                                Ok(RequestRecord {
                                    stream,
                                    sent_s: (s.sent_at - start).as_secs_f64(),
                                    ttft_s: (first - s.sent_at).as_secs_f64(),
                                    e2e_s: (last - s.sent_at).as_secs_f64(),
                                    prompt_tokens: s.usage.and_then(|u| u.prompt_tokens).unwrap_or(0) as usize,
                                    generated_tokens: s.generated_tokens(),
                                })
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a request thread panicked")).collect()
        });
        let wall_s = start.elapsed().as_secs_f64();
        let (mut completed, mut errors) = (Vec::new(), Vec::new());
        for r in results.into_iter().flatten() {
            match r {
                Ok(record) => completed.push(record),
                Err(e) => errors.push(e),
            }
        }
        Ok(ConcurrentBatch { streams, wall_s, completed, errors })
    }
}

impl Drop for HttpModel {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cleartext_key_warning;

    #[test]
    fn an_api_key_over_plain_http_to_another_host_is_warned_about() {
        for url in ["http://gpu-box.lan:8080/v1", "http://10.0.0.7:11434", "http://user@example.com/v1"] {
            let w = cleartext_key_warning("remote", url).unwrap_or_else(|| panic!("no warning for {url}"));
            assert!(w.contains("plain http://") && w.contains("https://"), "{w}");
        }
        for url in
            ["https://api.example.com/v1", "http://127.0.0.1:8080", "http://localhost:11434/", "http://[::1]:8080"]
        {
            assert_eq!(cleartext_key_warning("local", url), None, "{url}");
        }
    }
}
