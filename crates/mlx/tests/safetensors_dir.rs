//! The MLX-format directory path (config.json + model.safetensors + tokenizer.json, Hugging Face tensor names and
//! layout), on a directory made here from the default GGUF: its tensors renamed to Hugging Face's names, Q and K put
//! back into Hugging Face's row order (undoing llama.cpp's converter permutation, so the split-halves RoPE applies),
//! and a byte-level BPE tokenizer.json built from the GGUF's own vocabulary and merges. Same weights, so greedy
//! decoding must give exactly the tokens the GGUF gives — through the other RoPE form, the safetensors reader, the
//! `tokenizers` crate and the config.json parser.
use std::collections::HashMap;
use std::path::PathBuf;

use mlx_rs::io::{GgufFile, GgufMetadataValue};
use mlx_rs::Array;
use tokbench_core::backend::{Backend, GenerationRequest, LoadOptions, LoadedModel};
use tokbench_core::metrics::TraceRecorder;
use tokbench_mlx::Mlx;
use tokbench_record::setup::{FlashAttn, Sampling};

fn default_model() -> PathBuf {
    let path = std::env::var_os("TOKBENCH_TEST_MODEL")
        .map(PathBuf::from)
        .expect("TOKBENCH_TEST_MODEL names the default model: run the tests with `cargo xtask test`");
    assert!(path.is_file(), "{} is missing: run `cargo xtask fetch`", path.display());
    path
}

fn number(file: &GgufFile, key: &str) -> f64 {
    match file.get_metadata(key).unwrap() {
        Some(GgufMetadataValue::Array(a)) => a.item_cast::<f64>(),
        other => panic!("{key}: {other:?}"),
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

fn hf_name(gguf: &str) -> Option<String> {
    let (stem, suffix) = gguf.rsplit_once('.')?;
    let stem = match stem {
        "token_embd" => "model.embed_tokens".to_string(),
        "output_norm" => "model.norm".to_string(),
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

fn greedy(model: &mut dyn LoadedModel, prompt: &str, n: usize) -> Vec<u32> {
    let mut trace = TraceRecorder::start(n);
    model
        .generate(&GenerationRequest { prompt, gen_tokens: n, sampling: Sampling::GREEDY, depth: 0 }, &mut trace)
        .unwrap();
    trace.finish().unwrap().tokens
}

#[test]
fn an_mlx_safetensors_directory_generates_what_the_same_gguf_generates() {
    let gguf_path = default_model();
    let gguf = GgufFile::load(&gguf_path).unwrap();
    let (n_head, n_kv) =
        (number(&gguf, "llama.attention.head_count") as i32, number(&gguf, "llama.attention.head_count_kv") as i32);
    let hidden = number(&gguf, "llama.embedding_length") as i32;
    let head_dim = hidden / n_head;
    let dir = tempfile::tempdir().unwrap();

    let mut tensors: HashMap<String, Array> = HashMap::new();
    for (name, array) in gguf.arrays().unwrap() {
        let hf = hf_name(&name).unwrap_or_else(|| panic!("unexpected GGUF tensor {name}"));
        let rows = if hf.contains("q_proj.") {
            Some(unpermute_rows(n_head, head_dim))
        } else if hf.contains("k_proj.") {
            Some(unpermute_rows(n_kv, head_dim))
        } else {
            None
        };
        let array = match rows {
            Some(rows) => array.take_axis(&rows, 0).unwrap(),
            None => array,
        };
        tensors.insert(hf, array);
    }
    Array::save_safetensors(&tensors, None, dir.path().join("model.safetensors")).unwrap();

    let config = serde_json::json!({
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": number(&gguf, "llama.block_count") as i32,
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "rms_norm_eps": number(&gguf, "llama.attention.layer_norm_rms_epsilon"),
        "rope_theta": number(&gguf, "llama.rope.freq_base"),
        "vocab_size": tensors["model.embed_tokens.weight"].shape()[0],
        "max_position_embeddings": number(&gguf, "llama.context_length") as u32,
        "tie_word_embeddings": true,
        "eos_token_id": number(&gguf, "tokenizer.ggml.eos_token_id") as u32,
        "quantization": { "group_size": 32, "bits": 4 },
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();

    // GPT-2-style byte-level BPE from the GGUF's own tokens and merges.
    let tokens = gguf.get_metadata_strings("tokenizer.ggml.tokens").unwrap().unwrap();
    let merges = gguf.get_metadata_strings("tokenizer.ggml.merges").unwrap().unwrap();
    let vocab: tokenizers::models::bpe::Vocab = tokens.into_iter().enumerate().map(|(i, t)| (t, i as u32)).collect();
    let merges: Vec<(String, String)> =
        merges.iter().map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())).unwrap()).collect();
    let bpe = tokenizers::models::bpe::BPE::builder().vocab_and_merges(vocab, merges).build().unwrap();
    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::byte_level::ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
    tokenizer.save(dir.path().join("tokenizer.json"), false).unwrap();

    let options = LoadOptions {
        threads: 2,
        batch: 2048,
        ubatch: 512,
        n_gpu_layers: 0,
        ctx_size: 256,
        flash_attn: FlashAttn::Auto,
        mmap: true,
    };
    let backend = Mlx::new("mlx").unwrap();
    let mut from_gguf = backend.load(&gguf_path, &options).unwrap();
    let mut from_dir = backend.load(dir.path(), &options).unwrap();
    let prompt = "The capital of France is";
    assert_eq!(from_dir.tokenize(prompt).unwrap(), from_gguf.tokenize(prompt).unwrap(), "tokenizer.json = llama.cpp's");
    let (a, b) = (greedy(from_gguf.as_mut(), prompt, 16), greedy(from_dir.as_mut(), prompt, 16));
    eprintln!("gguf: {:?}\ndir:  {:?}", from_gguf.detokenize(&a).unwrap(), from_dir.detokenize(&b).unwrap());
    assert_eq!(b, a, "the safetensors directory must generate what the GGUF generates");
    assert_eq!(from_dir.detokenize(&b).unwrap(), from_gguf.detokenize(&a).unwrap());
}
