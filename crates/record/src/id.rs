//! The identity of a benchmark: which backend ran which model, quantization, prompt set and thread count.
//!
//! In JSON, in criterion and on the command line it is one string, `backend/model/quantization/prompt/tN`
//! (e.g. `llama.cpp/smollm2-135m-instruct-q4_1/Q4_1/short/t2`); in code it is this struct, so nothing parses or
//! formats ids by hand. A `/` inside a part becomes `_` so that the five parts always split back.
use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BenchmarkId {
    backend: String,
    model: String,
    quantization: String,
    prompt: String,
    threads: usize,
}

impl BenchmarkId {
    pub fn new(backend: &str, model: &str, quantization: &str, prompt: &str, threads: usize) -> BenchmarkId {
        let part = |s: &str| s.replace('/', "_");
        BenchmarkId {
            backend: part(backend),
            model: part(model),
            quantization: part(quantization),
            prompt: part(prompt),
            threads,
        }
    }

    pub fn backend(&self) -> &str {
        &self.backend
    }
    pub fn model(&self) -> &str {
        &self.model
    }
    pub fn quantization(&self) -> &str {
        &self.quantization
    }
    pub fn prompt(&self) -> &str {
        &self.prompt
    }
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// `--filter`'s rule: the id's string form contains `pattern` (e.g. `short/t2`, `Q4_K_M`).
    pub fn matches(&self, pattern: &str) -> bool {
        self.to_string().contains(pattern)
    }
}

impl fmt::Display for BenchmarkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}/t{}", self.backend, self.model, self.quantization, self.prompt, self.threads)
    }
}

/// As the string form, quoted: error messages that print `{id:?}` read as they did when ids were strings.
impl fmt::Debug for BenchmarkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl FromStr for BenchmarkId {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<BenchmarkId> {
        let parts: Vec<&str> = s.split('/').collect();
        let [backend, model, quantization, prompt, threads] = parts[..] else {
            bail!("benchmark id {s:?} does not have the form backend/model/quantization/prompt/tN");
        };
        let threads = threads
            .strip_prefix('t')
            .and_then(|t| t.parse().ok())
            .with_context(|| format!("benchmark id {s:?} does not end in a thread count like t4"))?;
        if [backend, model, quantization, prompt].iter().any(|p| p.is_empty()) {
            bail!("benchmark id {s:?} has an empty part");
        }
        Ok(BenchmarkId::new(backend, model, quantization, prompt, threads))
    }
}

impl Serialize for BenchmarkId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BenchmarkId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BenchmarkId, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(|e: anyhow::Error| serde::de::Error::custom(format!("{e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_form_round_trips_and_slashes_inside_parts_cannot_break_it() {
        let id = BenchmarkId::new("llama.cpp", "smollm2@Q8_0", "Q8_0", "p512-n128", 2);
        assert_eq!(id.to_string(), "llama.cpp/smollm2@Q8_0/Q8_0/p512-n128/t2");
        assert_eq!(id.to_string().parse::<BenchmarkId>().unwrap(), id);
        let odd = BenchmarkId::new("my/server", "a/b", "Q4_1", "short", 8);
        assert_eq!(odd.to_string(), "my_server/a_b/Q4_1/short/t8");
        assert_eq!(odd.to_string().parse::<BenchmarkId>().unwrap(), odd);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"llama.cpp/smollm2@Q8_0/Q8_0/p512-n128/t2\"");
        assert_eq!(serde_json::from_str::<BenchmarkId>(&json).unwrap(), id);
        assert!(id.matches("p512-n128/t2") && !id.matches("t4"));
    }

    #[test]
    fn malformed_ids_are_refused_with_the_expected_form() {
        for bad in ["a/b/c/d", "a/b/c/d/e/t1", "a/b/c/d/x1", "a/b//d/t1", "a/b/c/d/t"] {
            let e = bad.parse::<BenchmarkId>().unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
        assert!(serde_json::from_str::<BenchmarkId>("\"nope\"").unwrap_err().to_string().contains("backend/model"));
    }
}
