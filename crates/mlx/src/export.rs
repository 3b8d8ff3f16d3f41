//! `tokbench export-mlx`: a llama-family GGUF as an MLX-format model directory — `config.json`, `model.safetensors`,
//! `tokenizer.json`, `tokenizer_config.json`, the layout mlx-community publishes and mlx-lm (`mlx_lm.generate`,
//! `mlx_lm.server`) loads. Same weights, nothing re-quantized: GGUF Q4_0 / Q4_1 / Q8_0 tensors are already MLX affine
//! triples (u32-packed weight, scales, biases, groups of 32), written as they are; F16 / BF16 stay dense.
//!
//! What changes on the way:
//! - names become Hugging Face's (`blk.3.attn_q` → `model.layers.3.self_attn.q_proj`);
//! - Q and K rows go back to Hugging Face's order, undoing llama.cpp's converter permutation, so the split-halves
//!   RoPE (mlx-lm's default, `rope_traditional` false) applies;
//! - the F32 norm vectors take the weights' float type (float16 for the quantized types), as an mlx-lm conversion
//!   stores them; tokbench's MLX backend computes the GGUF in that type too, so both load the same numbers. `--dtype`
//!   stores scales, biases, norms and dense weights in another float type instead (float32: mlx-lm then computes in
//!   float32, the only fast type on MLX's CPU backend);
//! - the tokenizer (byte-level BPE only: `tokenizer.ggml.model = gpt2`) is rebuilt as a `tokenizers` BPE from the
//!   GGUF's own tokens and merges, with its pre-tokenizer, control tokens as special tokens and llama.cpp's
//!   end-of-generation set as `eos_token_id`.
//!
//! `crates/mlx/tests/safetensors_dir.rs` checks the result: it tokenizes like llama.cpp and generates exactly the
//! GGUF's greedy tokens.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use mlx_rs::io::{GgufFile, GgufMetadataValue};
use mlx_rs::{Array, Dtype};
use serde_json::{json, Value};

use crate::weights::mlx_err;

/// What was written.
#[derive(Debug)]
pub struct Exported {
    pub dir: PathBuf,
    pub tensors: usize,
    /// Bytes of model.safetensors.
    pub weight_bytes: u64,
    /// The float type of scales, dense weights and norms.
    pub dtype: &'static str,
    /// `{bits, group_size}` of the quantized tensors, the most common first; empty for a dense model.
    pub quantization: Vec<(i32, i32)>,
}

fn number(file: &GgufFile, key: &str) -> Result<Option<f64>> {
    match file.get_metadata(key).map_err(mlx_err)? {
        Some(GgufMetadataValue::Array(a)) => Ok(Some(a.item_cast::<f64>())),
        Some(_) => bail!("GGUF metadata {key} is not a number"),
        None => Ok(None),
    }
}

/// Rows of a llama.cpp-permuted Q or K projection (`n_head` heads of `head_dim` rows) in Hugging Face order. The
/// converter maps HF row `h·d + half·(d/2) + i` to GGUF row `h·d + 2i + half`; HF row r is therefore GGUF row `src[r]`.
fn unpermute_rows(n_head: i32, head_dim: i32) -> Array {
    let mut src = Vec::with_capacity((n_head * head_dim) as usize);
    for h in 0..n_head {
        for half in 0..2 {
            for i in 0..head_dim / 2 {
                src.push(h * head_dim + 2 * i + half);
            }
        }
    }
    Array::from_slice(&src, &[n_head * head_dim])
}

/// A GGUF tensor name (`blk.0.attn_q.weight`, `.scales`, `.biases`) in Hugging Face's naming.
fn hf_name(gguf: &str) -> Option<String> {
    let (stem, suffix) = gguf.rsplit_once('.')?;
    let stem = match stem {
        "token_embd" => "model.embed_tokens".to_string(),
        "output_norm" => "model.norm".to_string(),
        "output" => "lm_head".to_string(),
        _ => {
            let rest = stem.strip_prefix("blk.")?;
            let (layer, part) = rest.split_once('.')?;
            let hf = match part {
                "attn_norm" => "input_layernorm",
                "ffn_norm" => "post_attention_layernorm",
                "attn_q" => "self_attn.q_proj",
                "attn_k" => "self_attn.k_proj",
                "attn_v" => "self_attn.v_proj",
                "attn_output" => "self_attn.o_proj",
                "ffn_gate" => "mlp.gate_proj",
                "ffn_up" => "mlp.up_proj",
                "ffn_down" => "mlp.down_proj",
                _ => return None,
            };
            format!("model.layers.{layer}.{hf}")
        }
    };
    Some(format!("{stem}.{suffix}"))
}

fn dtype_name(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::Float16 => "float16",
        Dtype::Bfloat16 => "bfloat16",
        _ => "float32",
    }
}

/// Writes the MLX directory of `gguf` at `out`: into a temporary directory beside it, renamed into place when
/// complete, so an interrupted export leaves nothing half-written. An existing `out` is replaced only with `force`.
/// A float type by name, for `--dtype`.
pub fn parse_dtype(name: &str) -> Result<Dtype> {
    match name {
        "float16" | "f16" => Ok(Dtype::Float16),
        "bfloat16" | "bf16" => Ok(Dtype::Bfloat16),
        "float32" | "f32" => Ok(Dtype::Float32),
        other => bail!("--dtype {other:?} is not a float type: use float16, bfloat16 or float32"),
    }
}

/// `dtype`: the float type of scales, biases, norms and dense weights; None keeps the weights' own (that of the
/// embedding's scales, or of the embedding where it is dense). mlx-lm computes in the type stored.
pub fn export_gguf(gguf: &Path, out: &Path, force: bool, dtype: Option<Dtype>) -> Result<Exported> {
    ensure!(gguf.is_file(), "{} is not a file: give the GGUF to export", gguf.display());
    if out.exists() {
        ensure!(force, "{} exists: pass --force to replace it", out.display());
        ensure!(out.is_dir(), "{} exists and is not a directory", out.display());
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let name = out.file_name().ok_or_else(|| anyhow!("{} names no directory", out.display()))?.to_string_lossy();
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.partial-"))
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a temporary directory in {}", parent.display()))?;
    let mut exported = write_dir(gguf, staging.path(), dtype)?;
    let staged = staging.keep();
    if out.exists() {
        // Replaced only now that the new directory is complete.
        std::fs::remove_dir_all(out).with_context(|| format!("cannot remove the old {}", out.display()))?;
    }
    std::fs::rename(&staged, out).with_context(|| format!("cannot move the export into {}", out.display()))?;
    exported.dir = out.to_path_buf();
    Ok(exported)
}

fn write_dir(gguf_path: &Path, dir: &Path, dtype: Option<Dtype>) -> Result<Exported> {
    let source = gguf_path.display().to_string();
    let gguf = GgufFile::load(gguf_path).map_err(|e| anyhow!("MLX could not read {source} as GGUF: {e}"))?;
    let arch = gguf.get_metadata_string("general.architecture").map_err(mlx_err)?.unwrap_or_default();
    ensure!(arch == "llama", "{source} is a {arch:?} model; export-mlx writes llama-family models only");
    let need = |key: &str| -> Result<f64> {
        number(&gguf, key)?.ok_or_else(|| anyhow!("{source} lacks GGUF metadata {key}, which a llama model must have"))
    };
    let hidden = need("llama.embedding_length")? as i32;
    let n_head = need("llama.attention.head_count")? as i32;
    let n_kv = number(&gguf, "llama.attention.head_count_kv")?.map_or(n_head, |v| v as i32);
    let head_dim = hidden / n_head;
    ensure!(
        number(&gguf, "llama.rope.dimension_count")?.is_none_or(|d| d as i32 == head_dim),
        "{source}: partial RoPE is not exportable"
    );

    // The weights' float type: that of the embedding's scales, or of the embedding where it is dense.
    let mut arrays = gguf.arrays().map_err(mlx_err)?;
    let float = arrays
        .get("token_embd.scales")
        .or_else(|| arrays.get("token_embd.weight"))
        .map(Array::dtype)
        .ok_or_else(|| anyhow!("{source} has no token_embd.weight"))?;
    let float = if matches!(float, Dtype::Float16 | Dtype::Bfloat16) { float } else { Dtype::Float32 };
    let float = dtype.unwrap_or(float);
    let vocab = arrays["token_embd.weight"].shape()[0];
    let tied = !arrays.contains_key("output.weight");

    let mut tensors: HashMap<String, Array> = HashMap::new();
    let mut bits_of: BTreeMap<String, i32> = BTreeMap::new(); // quantized layer (HF name) → bits
    for (name, array) in arrays.drain() {
        let hf = hf_name(&name).ok_or_else(|| anyhow!("{source}: tensor {name} has no place in a llama model"))?;
        let rows = if hf.contains(".q_proj.") {
            Some(unpermute_rows(n_head, head_dim))
        } else if hf.contains(".k_proj.") {
            Some(unpermute_rows(n_kv, head_dim))
        } else {
            None
        };
        let array = match rows {
            Some(rows) => array.take_axis(&rows, 0).map_err(mlx_err)?,
            None => array,
        };
        // Norms (and F32 matrices of a quantized file) in the weights' float type; packed words stay as they are.
        let array = if array.dtype() == Dtype::Uint32 { array } else { array.as_dtype(float).map_err(mlx_err)? };
        tensors.insert(hf, array);
    }
    for (name, weight) in &tensors {
        let Some(layer) = name.strip_suffix(".weight") else { continue };
        let Some(scales) = tensors.get(&format!("{layer}.scales")) else { continue };
        let (packed, groups) = (*weight.shape().last().unwrap_or(&0), *scales.shape().last().unwrap_or(&0));
        ensure!(groups > 0, "{source}: {layer} has empty scales");
        bits_of.insert(layer.to_string(), packed * 32 / (groups * GROUP_SIZE));
    }
    let safetensors = dir.join("model.safetensors");
    let metadata = HashMap::from([("format".to_string(), "mlx".to_string())]);
    Array::save_safetensors(&tensors, Some(&metadata), &safetensors)
        .map_err(|e| anyhow!("cannot write {}: {e}", safetensors.display()))?;

    // mlx-lm quantizes every layer that has scales with the config's bits, unless the layer is named with its own.
    let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
    for bits in bits_of.values() {
        *counts.entry(*bits).or_default() += 1;
    }
    let mut by_count: Vec<(i32, usize)> = counts.into_iter().collect();
    by_count.sort_by_key(|(bits, n)| (std::cmp::Reverse(*n), *bits));
    let quantization = by_count.first().map(|&(bits, _)| {
        let mut q = json!({ "group_size": GROUP_SIZE, "bits": bits });
        for (layer, b) in &bits_of {
            if *b != bits {
                q[layer] = json!({ "group_size": GROUP_SIZE, "bits": b });
            }
        }
        q
    });

    let end_of_generation = crate::tokenizer::Tokenizer::from_gguf(gguf_path)?.end_of_generation();
    let meta_id = |key: &str| -> Result<Option<u32>> { Ok(number(&gguf, key)?.map(|v| v as u32)) };
    let bos = meta_id("tokenizer.ggml.bos_token_id")?;
    let eos = meta_id("tokenizer.ggml.eos_token_id")?;
    let add_bos = match gguf.get_metadata("tokenizer.ggml.add_bos_token").map_err(mlx_err)? {
        Some(GgufMetadataValue::Array(a)) => a.item_cast::<u32>() != 0,
        _ => false,
    };
    let n_ff = match number(&gguf, "llama.feed_forward_length")? {
        Some(n) => n as i32,
        None => tensors["model.layers.0.mlp.gate_proj.weight"].shape()[0],
    };
    let mut config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": n_ff,
        "num_hidden_layers": need("llama.block_count")? as i32,
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "head_dim": head_dim,
        "rms_norm_eps": need("llama.attention.layer_norm_rms_epsilon")?,
        "rope_theta": number(&gguf, "llama.rope.freq_base")?.unwrap_or(10_000.0),
        "rope_traditional": false,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
        "eos_token_id": end_of_generation,
        "torch_dtype": dtype_name(float),
        "exported_by": format!("tokbench export-mlx from {}", gguf_path.file_name().unwrap_or_default().to_string_lossy()),
    });
    if let Some(n) = number(&gguf, "llama.context_length")? {
        config["max_position_embeddings"] = json!(n as u32);
    }
    if let Some(bos) = bos {
        config["bos_token_id"] = json!(bos);
    }
    if let Some(q) = &quantization {
        config["quantization"] = q.clone();
    }
    write_json(&dir.join("config.json"), &config)?;

    let tokens = gguf
        .get_metadata_strings("tokenizer.ggml.tokens")
        .map_err(mlx_err)?
        .ok_or_else(|| anyhow!("{source} carries no tokenizer (tokenizer.ggml.tokens)"))?;
    write_tokenizer(&gguf, &source, dir, &tokens, add_bos.then_some(bos).flatten())?;
    let token_text = |id: Option<u32>| id.and_then(|i| tokens.get(i as usize).cloned());
    let mut tokenizer_config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": add_bos,
        "clean_up_tokenization_spaces": false,
    });
    if let Some(t) = token_text(bos) {
        tokenizer_config["bos_token"] = json!(t);
    }
    if let Some(t) = token_text(eos) {
        tokenizer_config["eos_token"] = json!(t);
    }
    if let Some(template) = gguf.get_metadata_string("tokenizer.chat_template").map_err(mlx_err)? {
        tokenizer_config["chat_template"] = json!(template);
    }
    if let Some(n) = config.get("max_position_embeddings") {
        tokenizer_config["model_max_length"] = n.clone();
    }
    write_json(&dir.join("tokenizer_config.json"), &tokenizer_config)?;

    let weight_bytes = std::fs::metadata(&safetensors)?.len();
    Ok(Exported {
        dir: dir.to_path_buf(),
        tensors: tensors.len(),
        weight_bytes,
        dtype: dtype_name(float),
        quantization: by_count.iter().map(|&(bits, _)| (bits, GROUP_SIZE)).collect(),
    })
}

/// GGUF quantized tensors as MLX's reader gives them: groups of 32.
const GROUP_SIZE: i32 = 32;

fn write_json(path: &Path, value: &Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `tokenizer.json`: byte-level BPE from the GGUF's tokens and merges, its pre-tokenizer, control tokens as special.
fn write_tokenizer(gguf: &GgufFile, source: &str, dir: &Path, tokens: &[String], bos: Option<u32>) -> Result<()> {
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::digits::Digits;
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::PreTokenizerWrapper;

    let model = gguf.get_metadata_string("tokenizer.ggml.model").map_err(mlx_err)?.unwrap_or_default();
    ensure!(
        model == "gpt2",
        "{source} has a {model:?} tokenizer; export-mlx rebuilds byte-level BPE tokenizers (tokenizer.ggml.model = \
         gpt2) only: convert the original Hugging Face model with `mlx_lm.convert` instead"
    );
    let pre = gguf.get_metadata_string("tokenizer.ggml.pre").map_err(mlx_err)?.unwrap_or_else(|| "default".into());
    let byte_level = ByteLevel::new(false, true, true);
    let pre_tokenizer: PreTokenizerWrapper = match pre.as_str() {
        // GPT-2's own split.
        "default" | "gpt2" => byte_level.into(),
        // SmolLM's (StarCoder's): every digit its own piece, then GPT-2's split.
        "smollm" | "starcoder" => Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into(),
        other => bail!(
            "{source} uses the {other:?} pre-tokenizer; export-mlx knows gpt2 and smollm only: convert the original \
             Hugging Face model with `mlx_lm.convert` instead"
        ),
    };
    let merges = gguf
        .get_metadata_strings("tokenizer.ggml.merges")
        .map_err(mlx_err)?
        .ok_or_else(|| anyhow!("{source} has no tokenizer.ggml.merges, which a BPE tokenizer needs"))?;
    let vocab: tokenizers::models::bpe::Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let merges: Vec<(String, String)> = merges
        .iter()
        .map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect::<Option<_>>()
        .ok_or_else(|| anyhow!("{source}: a merge is not two tokens separated by a space"))?;
    let bpe = tokenizers::models::bpe::BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| anyhow!("{source}: the tokens and merges make no BPE: {e}"))?;
    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
    // Control tokens (type 3) are matched whole in text, never split, as llama.cpp parses them.
    if let Some(GgufMetadataValue::Array(types)) = gguf.get_metadata("tokenizer.ggml.token_type").map_err(mlx_err)? {
        let types = types.as_dtype(Dtype::Int32).map_err(mlx_err)?;
        let types = types.try_as_slice::<i32>().map_err(mlx_err)?;
        let special: Vec<tokenizers::AddedToken> = types
            .iter()
            .zip(tokens)
            .filter(|(t, _)| **t == 3)
            .map(|(_, text)| tokenizers::AddedToken::from(text.clone(), true))
            .collect();
        tokenizer.add_special_tokens(&special);
    }
    if let Some(bos) = bos {
        let text =
            tokens.get(bos as usize).ok_or_else(|| anyhow!("{source}: BOS id {bos} is outside the vocabulary"))?;
        let processor = tokenizers::processors::template::TemplateProcessing::builder()
            .try_single(format!("{text} $A"))
            .map_err(|e| anyhow!("BOS template: {e}"))?
            .special_tokens(vec![(text.clone(), bos)])
            .build()
            .map_err(|e| anyhow!("BOS template: {e}"))?;
        tokenizer.with_post_processor(Some(processor));
    }
    let path = dir.join("tokenizer.json");
    tokenizer.save(&path, false).map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_names_map_to_hugging_face() {
        assert_eq!(hf_name("blk.3.attn_q.scales").as_deref(), Some("model.layers.3.self_attn.q_proj.scales"));
        assert_eq!(hf_name("token_embd.weight").as_deref(), Some("model.embed_tokens.weight"));
        assert_eq!(hf_name("output.weight").as_deref(), Some("lm_head.weight"));
        assert_eq!(hf_name("blk.0.ffn_norm.weight").as_deref(), Some("model.layers.0.post_attention_layernorm.weight"));
        assert_eq!(hf_name("blk.0.attn_rot_embd.weight"), None);
    }

    #[test]
    fn unpermuting_inverts_the_converter_permutation() {
        // HF row h·d + half·d/2 + i went to GGUF row h·d + 2i + half; 2 heads of 4 rows.
        let rows = unpermute_rows(2, 4);
        assert_eq!(rows.as_slice::<i32>(), &[0, 2, 1, 3, 4, 6, 5, 7]);
    }
}
