//! The worker protocol: how the A/B gate (`cargo xtask compare --ab REF`) drives two builds of tokbench — the base
//! ref's and the head's — side by side, one generation at a time, each with its models kept loaded.
//!
//! `tokbench worker [run flags]` resolves the matrix exactly as `tokbench run` would, writes one [`Hello`] line on
//! stdout, then answers each [`Request`] line on stdin with one [`Reply`] line, until [`Request::Finish`] (or end of
//! input). Lines are JSON, UTF-8, `\n`-terminated, at most [`MAX_LINE_BYTES`]. Only protocol lines go to stdout;
//! everything else the worker or its engines print goes to stderr.
//!
//! **Versioning.** [`PROTOCOL_VERSION`] changes whenever a message changes in a way an older peer would misread. A
//! driver that meets another version, or a binary without the `worker` command (a base ref older than the
//! protocol), does not guess: the gate falls back to the committed baselines and says so in its report.
use std::io::{BufRead, Read};

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

use crate::id::BenchmarkId;
use crate::results::{GitStamp, RunResults, RunSample};

/// The `protocol` field of every [`Hello`]: tells a worker's first line from anything else a program might print.
pub const PROTOCOL: &str = "tokbench-worker";
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest line either side sends. The largest message is the final [`Reply::Results`]: a whole run's raw samples
/// (per-token times included), a few hundred KB for the committed matrix.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// One protocol line without its newline, read with the length bound; None at end of input.
pub fn read_line(input: &mut dyn BufRead) -> Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    input.take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut line)?;
    ensure!(line.len() <= MAX_LINE_BYTES, "a worker protocol line longer than {MAX_LINE_BYTES} bytes");
    if line.is_empty() {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(Some(line))
}

/// The worker's first line: who it is, and the benchmarks it can run, in matrix order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: String,
    pub version: u32,
    pub tokbench_version: String,
    /// The commit the worker was built from, when it runs inside a checkout.
    pub git: Option<GitStamp>,
    /// The matrix's `[run] warmup` and `runs`: the driver runs that many warmups, and that many rounds.
    pub warmup: usize,
    pub runs: usize,
    pub benchmarks: Vec<BenchmarkId>,
}

impl Hello {
    pub fn new(
        tokbench_version: &str,
        git: Option<GitStamp>,
        warmup: usize,
        runs: usize,
        benchmarks: Vec<BenchmarkId>,
    ) -> Hello {
        Hello {
            protocol: PROTOCOL.into(),
            version: PROTOCOL_VERSION,
            tokbench_version: tokbench_version.into(),
            git,
            warmup,
            runs,
            benchmarks,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// `runs` untimed generations of benchmark `id`. The worker first loads its model (timed, as `tokbench run`
    /// does) if another one is loaded, and scores the model's quality the first time it loads it.
    Warmup { id: BenchmarkId, runs: usize },
    /// One timed generation of `id`; the worker keeps the sample for its results and sends it back.
    Measure { id: BenchmarkId },
    /// Every benchmark measured so far, summarised as `tokbench run` would write it (failures included); the worker
    /// then exits.
    Finish,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// A warmup finished.
    Done,
    Sample {
        sample: Box<RunSample>,
    },
    Results {
        results: Box<RunResults>,
    },
    /// The request failed; the worker records the benchmark as failed and goes on serving.
    Error {
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_lines_and_unknown_ops_are_refused() {
        let id: BenchmarkId = "llama.cpp/m/Q4_1/short/t2".parse().unwrap();
        let line = serde_json::to_string(&Request::Warmup { id: id.clone(), runs: 2 }).unwrap();
        assert_eq!(line, r#"{"op":"warmup","id":"llama.cpp/m/Q4_1/short/t2","runs":2}"#);
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), Request::Warmup { id, runs: 2 });
        assert_eq!(serde_json::to_string(&Request::Finish).unwrap(), r#"{"op":"finish"}"#);
        assert!(serde_json::from_str::<Request>(r#"{"op":"sleep"}"#).is_err());
    }

    #[test]
    fn a_hello_names_the_protocol_and_its_version() {
        let hello = Hello::new("0.1.0", None, 2, 7, vec![]);
        let v: serde_json::Value = serde_json::to_value(&hello).unwrap();
        assert_eq!(v["protocol"], PROTOCOL);
        assert_eq!(v["version"], PROTOCOL_VERSION);
        let error = serde_json::to_string(&Reply::Error { message: "no".into() }).unwrap();
        assert_eq!(error, r#"{"reply":"error","message":"no"}"#);
    }
}
