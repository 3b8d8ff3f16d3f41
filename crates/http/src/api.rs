//! The three HTTP APIs tokbench speaks, as request bodies and parsed stream chunks. Nothing here does I/O.
//!
//! | api | endpoint | exactly N tokens | server timings |
//! |---|---|---|---|
//! | `completions` | `POST /v1/completions` | `max_tokens` + `ignore_eos` (llama-server, vLLM) | llama-server `timings` |
//! | `chat` | `POST /v1/chat/completions` | `max_tokens` + `ignore_eos` | llama-server `timings` |
//! | `ollama` | `POST /api/generate` (`raw`, no template) | `num_predict` only: EOS can stop it early | `*_duration` |
//!
//! `cache_prompt: false` is sent to OpenAI-compatible servers: llama-server otherwise keeps the previous request's
//! prompt in its KV cache, and every repeated run would skip its prefill. Servers ignore fields they do not know.
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tokbench_record::results::ServerTimings;
use tokbench_record::setup::Sampling;

use crate::stream::{clip, Framing};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Completions,
    Chat,
    Ollama,
}

impl std::str::FromStr for Api {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Api> {
        match s {
            "completions" => Ok(Api::Completions),
            "chat" => Ok(Api::Chat),
            "ollama" => Ok(Api::Ollama),
            other => {
                bail!("unknown server API {other:?}: use one of {}", tokbench_core::config::SERVER_APIS.join(", "))
            }
        }
    }
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::Completions => "completions",
            Api::Chat => "chat",
            Api::Ollama => "ollama",
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Api::Completions => "/v1/completions",
            Api::Chat => "/v1/chat/completions",
            Api::Ollama => "/api/generate",
        }
    }

    pub fn framing(self) -> Framing {
        match self {
            Api::Ollama => Framing::JsonLines,
            _ => Framing::ServerSentEvents,
        }
    }

    /// Whether the API can be told to ignore end-of-sequence, so that every run generates exactly N tokens.
    pub fn exact_length(self) -> bool {
        self != Api::Ollama
    }

    /// A streamed generation of exactly `max_tokens` tokens (where the server allows it) from `prompt`.
    pub fn request(self, model: Option<&str>, prompt: &str, max_tokens: usize, sampling: Sampling) -> Value {
        let temperature = if sampling.is_greedy() { 0.0 } else { sampling.temperature };
        match self {
            Api::Completions | Api::Chat => {
                let mut body = json!({
                    "max_tokens": max_tokens,
                    "stream": true,
                    "stream_options": {"include_usage": true},
                    "temperature": temperature,
                    "top_p": sampling.top_p,
                    "seed": sampling.seed,
                    "ignore_eos": true,
                    "cache_prompt": false,
                });
                if self == Api::Chat {
                    body["messages"] = json!([{"role": "user", "content": prompt}]);
                } else {
                    body["prompt"] = json!(prompt);
                }
                if let Some(m) = model {
                    body["model"] = json!(m);
                }
                body
            }
            Api::Ollama => json!({
                "model": model.unwrap_or_default(),
                "prompt": prompt,
                "raw": true,
                "stream": true,
                "options": {
                    "num_predict": max_tokens,
                    "temperature": temperature,
                    "top_p": sampling.top_p,
                    "seed": sampling.seed,
                },
            }),
        }
    }

    /// Parses one streamed payload.
    pub fn parse_chunk(self, payload: &str) -> Result<Chunk> {
        let v: Value = serde_json::from_str(payload)
            .map_err(|e| anyhow!("garbled event stream: event is not JSON ({e}): {:?}", clip(payload)))?;
        if let Some(err) = v.get("error") {
            let message = err.get("message").and_then(Value::as_str).map_or_else(|| err.to_string(), str::to_string);
            bail!("the server reported an error mid-stream: {message}");
        }
        let mut chunk = Chunk::default();
        match self {
            Api::Completions | Api::Chat => {
                if let Some(choice) = v.get("choices").and_then(Value::as_array).and_then(|c| c.first()) {
                    let text = match self {
                        Api::Chat => choice.pointer("/delta/content"),
                        _ => choice.get("text"),
                    };
                    chunk.text = text.and_then(Value::as_str).unwrap_or_default().to_string();
                    chunk.finish_reason = choice.get("finish_reason").and_then(Value::as_str).map(str::to_string);
                } else if v.get("choices").is_none() && v.get("usage").is_none() {
                    bail!(
                        "unexpected event from an OpenAI-compatible server (no choices, no usage): {}",
                        clip(payload)
                    );
                }
                if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
                    chunk.usage = Some(Usage {
                        prompt_tokens: u.get("prompt_tokens").and_then(Value::as_u64),
                        completion_tokens: u.get("completion_tokens").and_then(Value::as_u64),
                    });
                }
                if let Some(t) = v.get("timings") {
                    let n = |k: &str| t.get(k).and_then(Value::as_u64);
                    let ms = |k: &str| t.get(k).and_then(Value::as_f64).map(|ms| ms / 1e3);
                    chunk.timings = Some(ServerTimings {
                        prompt_tokens: n("prompt_n"),
                        prompt_s: ms("prompt_ms"),
                        cached_tokens: n("cache_n"),
                        generated_tokens: n("predicted_n"),
                        generation_s: ms("predicted_ms"),
                    });
                }
            }
            Api::Ollama => {
                chunk.text = v.get("response").and_then(Value::as_str).unwrap_or_default().to_string();
                if v.get("done").and_then(Value::as_bool).context("an Ollama chunk without `done`")? {
                    chunk.finish_reason =
                        Some(v.get("done_reason").and_then(Value::as_str).unwrap_or("stop").to_string());
                    let n = |k: &str| v.get(k).and_then(Value::as_u64);
                    let ns = |k: &str| v.get(k).and_then(Value::as_f64).map(|ns| ns / 1e9);
                    chunk.usage =
                        Some(Usage { prompt_tokens: n("prompt_eval_count"), completion_tokens: n("eval_count") });
                    chunk.timings = Some(ServerTimings {
                        prompt_tokens: n("prompt_eval_count"),
                        prompt_s: ns("prompt_eval_duration"),
                        cached_tokens: None,
                        generated_tokens: n("eval_count"),
                        generation_s: ns("eval_duration"),
                    });
                }
            }
        }
        Ok(chunk)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chunk {
    pub text: String,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    pub timings: Option<ServerTimings>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_ask_for_exact_length_and_no_prompt_cache() {
        let b = Api::Completions.request(Some("m"), "hi", 16, Sampling::GREEDY);
        assert_eq!((b["prompt"].as_str(), b["max_tokens"].as_u64()), (Some("hi"), Some(16)));
        assert_eq!((b["ignore_eos"].as_bool(), b["cache_prompt"].as_bool()), (Some(true), Some(false)));
        assert_eq!(b["temperature"].as_f64(), Some(0.0));
        let c = Api::Chat.request(None, "hi", 4, Sampling::GREEDY);
        assert_eq!(c["messages"][0]["content"], "hi");
        assert!(c.get("model").is_none() && c.get("prompt").is_none());
        let o = Api::Ollama.request(Some("smollm2"), "hi", 8, Sampling::GREEDY);
        assert_eq!((o["raw"].as_bool(), o["options"]["num_predict"].as_u64()), (Some(true), Some(8)));
    }

    #[test]
    fn llama_server_chunks() {
        let c = Api::Completions
            .parse_chunk(r#"{"choices":[{"text":" Paris","index":0,"finish_reason":null}],"object":"text_completion"}"#)
            .unwrap();
        assert_eq!((c.text.as_str(), c.finish_reason, c.usage), (" Paris", None, None));
        let last = Api::Completions
            .parse_chunk(
                r#"{"choices":[{"text":"","finish_reason":"length"}],"usage":{"completion_tokens":5,"prompt_tokens":6},
                "timings":{"cache_n":0,"prompt_n":6,"prompt_ms":23.75,"predicted_n":5,"predicted_ms":31.5}}"#,
            )
            .unwrap();
        assert_eq!(last.finish_reason.as_deref(), Some("length"));
        assert_eq!(last.usage, Some(Usage { prompt_tokens: Some(6), completion_tokens: Some(5) }));
        let t = last.timings.unwrap();
        assert!((t.decode_tps().unwrap() - 5.0 / 0.0315).abs() < 1e-9);
        let chat = Api::Chat.parse_chunk(r#"{"choices":[{"delta":{"content":"Hi"},"finish_reason":null}]}"#).unwrap();
        assert_eq!(chat.text, "Hi");
        let usage_only = Api::Chat.parse_chunk(r#"{"choices":[],"usage":{"completion_tokens":3}}"#).unwrap();
        assert_eq!(usage_only.usage.unwrap().completion_tokens, Some(3));
    }

    #[test]
    fn ollama_chunks() {
        let c = Api::Ollama.parse_chunk(r#"{"model":"m","response":"Hi","done":false}"#).unwrap();
        assert_eq!((c.text.as_str(), c.finish_reason), ("Hi", None));
        let last = Api::Ollama
            .parse_chunk(
                r#"{"response":"","done":true,"done_reason":"length","prompt_eval_count":7,"prompt_eval_duration":70000000,
                "eval_count":8,"eval_duration":400000000}"#,
            )
            .unwrap();
        assert_eq!(last.finish_reason.as_deref(), Some("length"));
        let t = last.timings.unwrap();
        assert!((t.prefill_tps().unwrap() - 100.0).abs() < 1e-9 && (t.decode_tps().unwrap() - 20.0).abs() < 1e-9);
    }

    #[test]
    fn errors_and_garbage_are_named() {
        let e = Api::Completions.parse_chunk(r#"{"error":{"message":"slot unavailable","code":503}}"#).unwrap_err();
        assert!(e.to_string().contains("mid-stream: slot unavailable"), "{e}");
        let e = Api::Completions.parse_chunk("{\"choices\": [").unwrap_err().to_string();
        assert!(e.contains("garbled event stream") && e.contains("not JSON"), "{e}");
        let e = Api::Completions.parse_chunk(r#"{"hello":"world"}"#).unwrap_err().to_string();
        assert!(e.contains("no choices"), "{e}");
        assert!("vllm".parse::<Api>().unwrap_err().to_string().contains("use one of completions, chat, ollama"));
    }
}
