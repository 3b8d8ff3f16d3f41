//! Reading a streamed response: a thread per response reads it line by line and timestamps each line the moment it
//! arrives; the caller waits on a channel with its own deadlines (first token, gap between tokens), so a server that
//! goes silent is a timeout error rather than a hang. Lines are framed here as server-sent events (OpenAI APIs) or
//! newline-delimited JSON (Ollama); what the JSON means is `api`'s business.
use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`: `data: <json>` lines, events separated by blank lines, `:` comments (pings).
    ServerSentEvents,
    /// One JSON object per line.
    JsonLines,
}

/// The longest line (and the longest event) a stream may send: a token event is a few hundred bytes, a final usage
/// event a few KB. Anything longer is not a token stream, and reading it whole could exhaust memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// One complete payload of the stream and when its last byte arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Json(String),
    /// SSE's `data: [DONE]`.
    Done,
}

enum Line {
    Text(Instant, String),
    End,
    Failed(String),
}

/// A response body being read on its own thread.
pub struct EventStream {
    lines: Receiver<Line>,
    framing: Framing,
    /// `data:` lines of an event not yet closed by a blank line.
    pending: Option<(Instant, String)>,
    finished: bool,
}

impl EventStream {
    pub fn spawn(body: impl Read + Send + 'static, framing: Framing) -> EventStream {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(body);
            loop {
                let mut buf = Vec::new();
                match reader.by_ref().take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut buf) {
                    Ok(0) => {
                        let _ = tx.send(Line::End);
                        return;
                    }
                    Ok(_) if buf.len() > MAX_LINE_BYTES => {
                        let _ = tx.send(Line::Failed(format!(
                            "the stream sent a line longer than {} MiB: not a token stream",
                            MAX_LINE_BYTES >> 20
                        )));
                        return;
                    }
                    Ok(_) => {
                        let at = Instant::now();
                        let line = match String::from_utf8(buf) {
                            Ok(s) => Line::Text(at, s),
                            Err(e) => Line::Failed(format!("the stream is not UTF-8 text ({e})")),
                        };
                        let stop = matches!(line, Line::Failed(_));
                        if tx.send(line).is_err() || stop {
                            return; // the reader gave up waiting (timeout): stop reading
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Line::Failed(format!("reading the stream failed: {e}")));
                        return;
                    }
                }
            }
        });
        EventStream { lines: rx, framing, pending: None, finished: false }
    }

    /// The next payload, or None at a clean end of the body. `deadline` bounds the wait: past it, an error that
    /// says what was being waited for (`waiting_for`, e.g. "the first token").
    pub fn next(&mut self, deadline: Instant, waiting_for: &str) -> Result<Option<(Instant, Payload)>> {
        loop {
            if self.finished {
                return Ok(None);
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(wait) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => bail!("timed out waiting for {waiting_for}"),
                Err(RecvTimeoutError::Disconnected) => Line::End,
            };
            match line {
                Line::Failed(e) => bail!("{e}"),
                Line::End => {
                    self.finished = true;
                    // An event not closed by a blank line still counts (some servers end with `data: ...\n`).
                    return Ok(self.pending.take().map(|(at, data)| (at, payload(data))));
                }
                Line::Text(at, text) => {
                    if let Some(event) = self.frame(at, text.trim_end_matches(['\n', '\r']))? {
                        return Ok(Some(event));
                    }
                }
            }
        }
    }

    fn frame(&mut self, at: Instant, line: &str) -> Result<Option<(Instant, Payload)>> {
        match self.framing {
            Framing::JsonLines => Ok((!line.trim().is_empty()).then(|| (at, Payload::Json(line.to_string())))),
            Framing::ServerSentEvents => {
                if line.is_empty() {
                    return Ok(self.pending.take().map(|(at, data)| (at, payload(data))));
                }
                if line.starts_with(':') {
                    return Ok(None); // comment: keep-alive ping
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "data" => {
                        match &mut self.pending {
                            Some((_, data)) if data.len() + value.len() > MAX_LINE_BYTES => {
                                bail!(
                                    "the stream sent an event longer than {} MiB: not a token stream",
                                    MAX_LINE_BYTES >> 20
                                )
                            }
                            Some((t, data)) => {
                                data.push('\n');
                                data.push_str(value);
                                *t = at;
                            }
                            None => self.pending = Some((at, value.to_string())),
                        }
                        Ok(None)
                    }
                    "event" | "id" | "retry" => Ok(None),
                    _ => Err(anyhow!("garbled event stream: {:?} is not a server-sent-events line", clip(line))),
                }
            }
        }
    }
}

fn payload(data: String) -> Payload {
    if data.trim() == "[DONE]" {
        Payload::Done
    } else {
        Payload::Json(data)
    }
}

/// The first 120 characters of `s`, for error messages.
pub fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(120).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Deadline for the next event: the first token gets `first`, every later one `gap` after the previous.
pub fn deadline(started: Instant, first: Duration, gap: Duration, last_event: Option<Instant>) -> Instant {
    match last_event {
        None => started + first,
        Some(t) => t + gap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(body: &'static str, framing: Framing) -> Result<Vec<Payload>> {
        let mut s = EventStream::spawn(body.as_bytes(), framing);
        let mut out = Vec::new();
        while let Some((_, p)) = s.next(Instant::now() + Duration::from_secs(5), "an event")? {
            out.push(p);
        }
        Ok(out)
    }

    #[test]
    fn sse_events_pings_and_done() {
        let body = ": ping\n\ndata: {\"a\":1}\n\nevent: x\ndata: {\"b\":\ndata: 2}\n\ndata: [DONE]\n\n";
        assert_eq!(
            events(body, Framing::ServerSentEvents).unwrap(),
            vec![Payload::Json("{\"a\":1}".into()), Payload::Json("{\"b\":\n2}".into()), Payload::Done]
        );
        // CRLF line ends and a last event without its blank line.
        assert_eq!(
            events("data: {}\r\n\r\ndata: {\"z\":0}", Framing::ServerSentEvents).unwrap(),
            vec![Payload::Json("{}".into()), Payload::Json("{\"z\":0}".into())]
        );
    }

    #[test]
    fn garbage_is_an_error_naming_the_line() {
        let e = events("data: {}\n\nHTTP/1.1 oops\n", Framing::ServerSentEvents).unwrap_err().to_string();
        assert!(e.contains("garbled event stream") && e.contains("HTTP/1.1 oops"), "{e}");
        let e = events("data: \u{0}\n", Framing::ServerSentEvents).map(|v| v.len());
        assert_eq!(e.unwrap(), 1, "NUL is valid UTF-8 text; JSON parsing judges it later");
    }

    #[test]
    fn an_endless_line_is_an_error_not_a_memory_hog() {
        // 3 MiB without a newline, then a valid line that must never be reached.
        let mut body = vec![b'x'; 3 << 20];
        body.extend_from_slice(b"\n{\"ok\":1}\n");
        let mut s = EventStream::spawn(std::io::Cursor::new(body), Framing::JsonLines);
        let e = s.next(Instant::now() + Duration::from_secs(5), "a token").unwrap_err().to_string();
        assert!(e.contains("longer than 1 MiB"), "{e}");
        // Many data lines adding up to one huge event, too.
        let line = format!("data: {}\n", "y".repeat(100_000));
        let mut s = EventStream::spawn(std::io::Cursor::new(line.repeat(20).into_bytes()), Framing::ServerSentEvents);
        let e = s.next(Instant::now() + Duration::from_secs(5), "a token").unwrap_err().to_string();
        assert!(e.contains("event longer than 1 MiB"), "{e}");
    }

    #[test]
    fn json_lines() {
        assert_eq!(
            events("{\"x\":1}\n\n{\"y\":2}\n", Framing::JsonLines).unwrap(),
            vec![Payload::Json("{\"x\":1}".into()), Payload::Json("{\"y\":2}".into())]
        );
    }

    #[test]
    fn silence_is_a_timeout_not_a_hang() {
        struct Silent;
        impl Read for Silent {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_secs(3600));
                Ok(0)
            }
        }
        let mut s = EventStream::spawn(Silent, Framing::ServerSentEvents);
        let e = s.next(Instant::now() + Duration::from_millis(50), "the first token").unwrap_err();
        assert_eq!(e.to_string(), "timed out waiting for the first token");
    }
}
