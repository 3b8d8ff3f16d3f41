//! Text ↔ tokens for the MLX backend. A GGUF is tokenized by llama.cpp itself (a vocabulary-only load through
//! llama-cpp-2), so that MLX and llama.cpp rows of the same file are fed identical tokens and their outputs can be
//! compared token for token. An MLX safetensors directory brings a Hugging Face `tokenizer.json`.
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

pub enum Tokenizer {
    Llama(tokbench_llama::Vocabulary),
    HuggingFace { tokenizer: Box<tokenizers::Tokenizer>, end_of_generation: Vec<u32>, bos: Option<u32> },
}

impl Tokenizer {
    pub fn from_gguf(path: &Path) -> Result<Tokenizer> {
        Ok(Tokenizer::Llama(tokbench_llama::Vocabulary::load(path)?))
    }

    /// `tokenizer.json`, with end-of-generation ids from `config.json` / `generation_config.json` (`eos_token_id`,
    /// a number or a list) and the BOS the tokenizer's post-processor adds, if any.
    pub fn from_hf_dir(dir: &Path) -> Result<Tokenizer> {
        let file = dir.join("tokenizer.json");
        let tokenizer = tokenizers::Tokenizer::from_file(&file)
            .map_err(|e| anyhow!("cannot read {} as a Hugging Face tokenizer: {e}", file.display()))?;
        let mut end_of_generation = Vec::new();
        for name in ["config.json", "generation_config.json"] {
            let Ok(text) = std::fs::read_to_string(dir.join(name)) else { continue };
            let json: Value =
                serde_json::from_str(&text).with_context(|| format!("{} is not JSON", dir.join(name).display()))?;
            match json.get("eos_token_id") {
                Some(Value::Number(n)) => end_of_generation.extend(n.as_u64().map(|v| v as u32)),
                Some(Value::Array(ids)) => {
                    end_of_generation.extend(ids.iter().filter_map(|v| v.as_u64()).map(|v| v as u32))
                }
                _ => {}
            }
        }
        end_of_generation.sort_unstable();
        end_of_generation.dedup();
        // The BOS is whatever the post-processor puts in front of an empty text.
        let bos = tokenizer.encode("", true).ok().and_then(|e| e.get_ids().first().copied());
        Ok(Tokenizer::HuggingFace { tokenizer: Box::new(tokenizer), end_of_generation, bos })
    }

    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Tokenizer::Llama(vocab) => Ok(vocab.tokenize(text)),
            Tokenizer::HuggingFace { tokenizer, .. } => Ok(tokenizer
                .encode(text, true)
                .map_err(|e| anyhow!("tokenizer.json could not encode the prompt: {e}"))?
                .get_ids()
                .to_vec()),
        }
    }

    pub fn detokenize(&self, tokens: &[u32]) -> Result<String> {
        match self {
            Tokenizer::Llama(vocab) => vocab.detokenize(tokens),
            Tokenizer::HuggingFace { tokenizer, .. } => {
                tokenizer.decode(tokens, false).map_err(|e| anyhow!("tokenizer.json could not decode: {e}"))
            }
        }
    }

    pub fn end_of_generation(&self) -> Vec<u32> {
        match self {
            Tokenizer::Llama(vocab) => vocab.end_of_generation(),
            Tokenizer::HuggingFace { end_of_generation, .. } => end_of_generation.clone(),
        }
    }

    pub fn bos(&self) -> Option<u32> {
        match self {
            Tokenizer::Llama(vocab) => vocab.bos(),
            Tokenizer::HuggingFace { bos, .. } => *bos,
        }
    }
}
