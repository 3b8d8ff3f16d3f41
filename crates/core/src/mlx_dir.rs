//! What identifies an MLX-format model directory (`config.json`, `*.safetensors`, `tokenizer.json`, as mlx-community
//! publishes and `tokbench export-mlx` writes) in results, read without MLX: the architecture and quantization from
//! config.json, the weights' shards in name order (their bytes and one SHA-256 over them).
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct MlxDir {
    /// config.json's `model_type`.
    pub architecture: Option<String>,
    /// `MLX-4bit-g64` (config.json `quantization`), else the stored float type (`F16`, `BF16`, `F32`).
    pub quantization: String,
    /// The safetensors shards, sorted by name.
    pub shards: Vec<PathBuf>,
    pub size_bytes: u64,
}

/// Reads `dir` as an MLX model directory; errors say what is missing.
pub fn describe(dir: &Path) -> Result<MlxDir> {
    let config_path = dir.join("config.json");
    ensure!(
        config_path.is_file(),
        "{} is a directory without config.json: a model directory holds config.json, model*.safetensors and \
         tokenizer.json (as mlx-community publishes; `tokbench export-mlx` writes one from a GGUF)",
        dir.display()
    );
    let text =
        std::fs::read_to_string(&config_path).with_context(|| format!("cannot read {}", config_path.display()))?;
    let config: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", config_path.display()))?;
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    shards.sort();
    ensure!(!shards.is_empty(), "{} has no *.safetensors weights", dir.display());
    let mut size_bytes = 0;
    for shard in &shards {
        size_bytes += std::fs::metadata(shard).with_context(|| format!("cannot read {}", shard.display()))?.len();
    }
    let quantization = match config.get("quantization").filter(|q| !q.is_null()) {
        Some(q) => format!(
            "MLX-{}bit-g{}",
            q.get("bits").and_then(Value::as_u64).unwrap_or(0),
            q.get("group_size").and_then(Value::as_u64).unwrap_or(0)
        ),
        None => match config.get("torch_dtype").or_else(|| config.get("dtype")).and_then(Value::as_str) {
            Some("float16") => "F16".into(),
            Some("bfloat16") => "BF16".into(),
            Some("float32") => "F32".into(),
            _ => "unknown".into(),
        },
    };
    Ok(MlxDir {
        architecture: config.get("model_type").and_then(Value::as_str).map(str::to_string),
        quantization,
        shards,
        size_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_quantization_and_shards_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_type":"llama","quantization":{"group_size":64,"bits":4}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("model-00002-of-00002.safetensors"), b"bb").unwrap();
        std::fs::write(dir.path().join("model-00001-of-00002.safetensors"), b"a").unwrap();
        let d = describe(dir.path()).unwrap();
        assert_eq!(
            (d.architecture.as_deref(), d.quantization.as_str(), d.size_bytes),
            (Some("llama"), "MLX-4bit-g64", 3)
        );
        assert!(d.shards[0].ends_with("model-00001-of-00002.safetensors"));
        // The digest covers the shards in that order.
        let digest = crate::digest::sha256_files(&d.shards, |_| {}).unwrap();
        let joined = dir.path().join("joined");
        std::fs::write(&joined, b"abb").unwrap();
        assert_eq!(digest, crate::digest::sha256_file(&joined, |_| {}).unwrap());
    }

    #[test]
    fn a_directory_without_config_or_weights_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = describe(dir.path()).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("export-mlx"), "{e}");
        std::fs::write(dir.path().join("config.json"), r#"{"torch_dtype":"bfloat16"}"#).unwrap();
        let e = describe(dir.path()).unwrap_err().to_string();
        assert!(e.contains("safetensors"), "{e}");
        std::fs::write(dir.path().join("model.safetensors"), b"x").unwrap();
        assert_eq!(describe(dir.path()).unwrap().quantization, "BF16");
    }
}
