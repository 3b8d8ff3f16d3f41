//! A base model's distribution over the next token at every scored position, saved once so that each
//! quantization can be scored against it (KL-divergence) without running the base again.
//!
//! llama-perplexity saves the whole vocabulary per token; tokbench keeps the base's **top-k** log-probabilities
//! (default 32) plus the target's. KL-divergence is then computed over those k tokens and one "rest" bucket
//! holding the remaining mass of each distribution (see [`crate::quality::kld`]): by the log-sum inequality that is
//! a lower bound of the full KL, equal to it when the top-k holds all of the base's mass. For a 49k-token
//! vocabulary that is 264 bytes per token instead of ~100 KB.
//!
//! File layout (little-endian): magic `TKBLOGP1`, u32 format version, u32 n_vocab, u32 k, u32 n_ctx, u32 n_chunks,
//! u64 tokens scored, u32 header length + JSON [`BaseHeader`], then per scored token: u32 target, f32 base
//! log-probability of the target, k × (u32 token, f32 log-probability), most likely first.
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use super::perplexity::ChunkPlan;
use tokbench_record::results::write_atomic;

const MAGIC: &[u8; 8] = b"TKBLOGP1";
const FORMAT_VERSION: u32 = 1;

/// Where a base came from, so a report can name it and a mismatch can be explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseHeader {
    pub model_file: String,
    pub model_sha256: String,
    pub corpus_file: String,
    pub corpus_sha256: String,
    pub engine: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScoredToken {
    pub target: u32,
    pub base_logprob_target: f32,
    /// The k most likely tokens and their log-probabilities, most likely first.
    pub top: Vec<(u32, f32)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BaseLogprobs {
    pub header: BaseHeader,
    pub n_vocab: u32,
    pub k: u32,
    pub n_ctx: u32,
    pub n_chunks: u32,
    pub records: Vec<ScoredToken>,
}

/// Collects records in memory and writes the file atomically on [`BaseLogprobsWriter::finish`], so an interrupted
/// run never leaves a half-written base behind.
pub struct BaseLogprobsWriter {
    path: PathBuf,
    bytes: Vec<u8>,
    k: usize,
    count: u64,
    count_offset: usize,
}

impl BaseLogprobsWriter {
    pub fn create(path: &Path, header: BaseHeader, n_vocab: u32, k: u32, plan: &ChunkPlan) -> Result<Self> {
        ensure!(k > 0, "top-k must be at least 1");
        let mut bytes = Vec::with_capacity(64 + plan.tokens_scored() * (8 + 8 * k as usize));
        bytes.extend_from_slice(MAGIC);
        for v in [FORMAT_VERSION, n_vocab, k, plan.n_ctx as u32, plan.n_chunks as u32] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let count_offset = bytes.len();
        bytes.extend_from_slice(&0u64.to_le_bytes());
        let json = serde_json::to_vec(&header)?;
        bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&json);
        Ok(BaseLogprobsWriter { path: path.to_path_buf(), bytes, k: k as usize, count: 0, count_offset })
    }

    pub fn push(&mut self, token: &ScoredToken) -> Result<()> {
        ensure!(token.top.len() == self.k, "a record has {} top tokens, not {}", token.top.len(), self.k);
        self.bytes.extend_from_slice(&token.target.to_le_bytes());
        self.bytes.extend_from_slice(&token.base_logprob_target.to_le_bytes());
        for &(id, lp) in &token.top {
            self.bytes.extend_from_slice(&id.to_le_bytes());
            self.bytes.extend_from_slice(&lp.to_le_bytes());
        }
        self.count += 1;
        Ok(())
    }

    pub fn finish(mut self) -> Result<()> {
        self.bytes[self.count_offset..self.count_offset + 8].copy_from_slice(&self.count.to_le_bytes());
        write_atomic(&self.path, &self.bytes)
    }
}

impl BaseLogprobs {
    pub fn read(path: &Path) -> Result<BaseLogprobs> {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "cannot read the KL-divergence base {}: make it with `tokbench perplexity --model BASE --save-base {}`",
                path.display(),
                path.display()
            )
        })?;
        Self::parse(&bytes).with_context(|| format!("{} is not a usable KL-divergence base", path.display()))
    }

    fn parse(bytes: &[u8]) -> Result<BaseLogprobs> {
        let mut r = Cursor::new(bytes);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).ok();
        ensure!(&magic == MAGIC, "not a tokbench base-logprobs file (wrong magic)");
        let u32_at = |r: &mut Cursor<&[u8]>| -> Result<u32> {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).context("truncated")?;
            Ok(u32::from_le_bytes(b))
        };
        let version = u32_at(&mut r)?;
        ensure!(version == FORMAT_VERSION, "format version {version} is not supported (this tokbench reads 1)");
        let (n_vocab, k, n_ctx, n_chunks) = (u32_at(&mut r)?, u32_at(&mut r)?, u32_at(&mut r)?, u32_at(&mut r)?);
        let mut count = [0u8; 8];
        r.read_exact(&mut count).context("truncated")?;
        let count = u64::from_le_bytes(count) as usize;
        let header_len = u32_at(&mut r)? as usize;
        let start = r.position() as usize;
        let json = bytes.get(start..start + header_len).context("truncated header")?;
        let header: BaseHeader = serde_json::from_slice(json).context("unreadable header")?;
        let records_start = start + header_len;
        let record_len = 8 + 8 * k as usize;
        let expected = records_start + count * record_len;
        if bytes.len() != expected {
            bail!(
                "truncated or damaged: {} bytes where {count} records of top-{k} need {expected}; make it again",
                bytes.len()
            );
        }
        let f32_at = |b: &[u8], o: usize| f32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u32_le = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let records = bytes[records_start..]
            .chunks_exact(record_len)
            .map(|rec| ScoredToken {
                target: u32_le(rec, 0),
                base_logprob_target: f32_at(rec, 4),
                top: (0..k as usize).map(|i| (u32_le(rec, 8 + 8 * i), f32_at(rec, 12 + 8 * i))).collect(),
            })
            .collect();
        Ok(BaseLogprobs { header, n_vocab, k, n_ctx, n_chunks, records })
    }

    /// A current run can be scored against this base only with the same vocabulary and the same chunks.
    pub fn check_compatible(&self, n_vocab: u32, n_ctx: u32, n_chunks: u32) -> Result<()> {
        ensure!(
            self.n_vocab == n_vocab,
            "the base ({}) has a vocabulary of {} tokens and this model {n_vocab}: KL-divergence needs the same \
             tokenizer (a quantization of the same model)",
            self.header.model_file,
            self.n_vocab
        );
        ensure!(
            self.n_ctx == n_ctx && self.n_chunks == n_chunks,
            "the base was scored with --ctx {} over {} chunks, this run with --ctx {n_ctx} over {n_chunks}: use the \
             same --ctx and --chunks (and corpus), or make the base again",
            self.n_ctx,
            self.n_chunks
        );
        Ok(())
    }
}

/// Log-probabilities of the `k` largest logits, most likely first (ties: lower token id first). O(n) selection.
pub fn top_k(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_sum = logits.iter().map(|&l| f64::from(l - max).exp()).sum::<f64>().ln();
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    let order = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]).then(a.cmp(b));
    let k = k.min(ids.len());
    if k < ids.len() {
        ids.select_nth_unstable_by(k, order);
        ids.truncate(k);
    }
    ids.sort_by(order);
    ids.into_iter().map(|id| (id, (f64::from(logits[id as usize] - max) - log_sum) as f32)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn header() -> BaseHeader {
        BaseHeader {
            model_file: "base.gguf".into(),
            model_sha256: "ab".into(),
            corpus_file: "c.txt".into(),
            corpus_sha256: "cd".into(),
            engine: "test".into(),
        }
    }

    #[test]
    fn top_k_agrees_with_a_full_sort() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..20 {
            let mut logits: Vec<f32> = (0..500).map(|_| rng.random_range(-10.0..10.0)).collect();
            logits[3] = logits[9]; // a tie
            let got = top_k(&logits, 8);
            let mut ids: Vec<u32> = (0..500).collect();
            ids.sort_by(|a, b| logits[*b as usize].total_cmp(&logits[*a as usize]).then(a.cmp(b)));
            assert_eq!(got.iter().map(|t| t.0).collect::<Vec<_>>(), ids[..8].to_vec());
            let total: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
            for &(id, lp) in &got {
                assert!((f64::from(lp) - (f64::from(logits[id as usize]).exp() / total).ln()).abs() < 1e-4);
            }
        }
        // Ties: the lower id first.
        assert_eq!(top_k(&[1.0, 2.0, 2.0, 0.0], 2).iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(top_k(&[1.0, 2.0], 5).len(), 2);
    }

    #[test]
    fn a_base_file_round_trips_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("base.tklp");
        let plan = ChunkPlan { n_ctx: 32, n_chunks: 2, first_scored: 16 };
        let mut w = BaseLogprobsWriter::create(&path, header(), 100, 2, &plan).unwrap();
        let recs = vec![
            ScoredToken { target: 5, base_logprob_target: -1.5, top: vec![(5, -0.5), (7, -1.25)] },
            ScoredToken { target: 9, base_logprob_target: -3.0, top: vec![(1, -0.1), (9, -3.0)] },
        ];
        for r in &recs {
            w.push(r).unwrap();
        }
        assert!(w.push(&ScoredToken { target: 1, base_logprob_target: 0.0, top: vec![] }).is_err());
        w.finish().unwrap();
        let base = BaseLogprobs::read(&path).unwrap();
        assert_eq!((base.n_vocab, base.k, base.n_ctx, base.n_chunks), (100, 2, 32, 2));
        assert_eq!(base.records, recs);
        assert_eq!(base.header, header());
        base.check_compatible(100, 32, 2).unwrap();
        let e = base.check_compatible(200, 32, 2).unwrap_err().to_string();
        assert!(e.contains("100") && e.contains("200") && e.contains("same tokenizer"), "{e}");
        let e = base.check_compatible(100, 64, 2).unwrap_err().to_string();
        assert!(e.contains("--ctx 32") && e.contains("--ctx 64"), "{e}");

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let e = format!("{:#}", BaseLogprobs::read(&path).unwrap_err());
        assert!(e.contains("truncated") && e.contains("base.tklp"), "{e}");
        std::fs::write(&path, b"GGUFxxxxxxxxxxxxxxxxxxxxxxxx").unwrap();
        assert!(format!("{:#}", BaseLogprobs::read(&path).unwrap_err()).contains("wrong magic"));
        let e = format!("{:#}", BaseLogprobs::read(&dir.path().join("missing")).unwrap_err());
        assert!(e.contains("--save-base"), "{e}");
    }
}
