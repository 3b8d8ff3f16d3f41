//! Synthetic models: a llama-architecture GGUF of a requested shape with seeded random weights, carrying the real
//! tokenizer of another GGUF, so model-size tables (0.5B … 13B) can be measured on any machine without downloads.
//!
//! Speed and memory only: the weights are noise, so the text is noise and quality is never scored (results say
//! `synthetic`). What makes the speed real: the tensor table is the one a converted model of that shape has (names,
//! shapes, types as llama.cpp's quantize lays them out for the simple types), the values are in the range a trained
//! model's are (no denormals, no infinities), and the tokenizer is a real one.
//!
//! Types written directly here: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (random quantized blocks with sane
//! scales: quantizing noise would only make other noise). K-quant and i-quant files are made from an F16 synthetic
//! by llama.cpp's quantize API (`tokbench synth` does that), so their per-tensor type mix is llama.cpp's own.
use std::io::Write;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::gguf::{self, write::TensorSpec, write::Value, GgufInfo};

/// Prefix of the metadata keys that mark a synthetic model (read back by [`stamp`]).
pub const KEY_PREFIX: &str = "tokbench.synthetic.";

/// The dimensions of a llama-architecture model.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub n_layer: u64,
    pub n_embd: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    pub n_ff: u64,
    /// Vocabulary of the model the shape is taken from; the tokenizer is padded with unused tokens up to it (a
    /// larger tokenizer is kept whole).
    pub n_vocab: u64,
    pub context_length: u64,
    pub rope_freq_base: f32,
    /// Output layer shares the token-embedding table (no `output.weight`).
    pub tied_embeddings: bool,
}

/// Named shapes: the dimensions of the public model each is named after.
pub const NAMED_SHAPES: &[(&str, &str, Shape)] = &[
    ("smollm2-135m", "SmolLM2-135M", shape(30, 576, 9, 3, 1536, 49152, 8192, 100000.0, true)),
    ("0.5b", "Qwen2.5-0.5B's dimensions", shape(24, 896, 14, 2, 4864, 151936, 32768, 1000000.0, true)),
    ("1b", "Llama-3.2-1B", shape(16, 2048, 32, 8, 8192, 128256, 131072, 500000.0, true)),
    ("3b", "Llama-3.2-3B", shape(28, 3072, 24, 8, 8192, 128256, 131072, 500000.0, true)),
    ("8b", "Llama-3.1-8B", shape(32, 4096, 32, 8, 14336, 128256, 131072, 500000.0, false)),
    ("13b", "Llama-2-13B", shape(40, 5120, 40, 40, 13824, 32000, 4096, 10000.0, false)),
];

#[allow(clippy::too_many_arguments)]
const fn shape(
    n_layer: u64,
    n_embd: u64,
    n_head: u64,
    n_head_kv: u64,
    n_ff: u64,
    n_vocab: u64,
    context_length: u64,
    rope_freq_base: f32,
    tied_embeddings: bool,
) -> Shape {
    Shape { n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab, context_length, rope_freq_base, tied_embeddings }
}

/// The named shape `name` (case-insensitive), or an error listing them.
pub fn named_shape(name: &str) -> Result<Shape> {
    NAMED_SHAPES.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(name)).map(|(_, _, s)| s.clone()).with_context(|| {
        let names: Vec<&str> = NAMED_SHAPES.iter().map(|(n, _, _)| *n).collect();
        format!("no shape named {name:?}: use one of {}, or give --n-layer, --n-embd, … explicitly", names.join(", "))
    })
}

impl Shape {
    pub fn head_dim(&self) -> u64 {
        self.n_embd / self.n_head
    }

    fn check(&self) -> Result<()> {
        ensure!(self.n_layer > 0 && self.n_embd > 0 && self.n_ff > 0, "a shape needs layers, width and FFN > 0");
        ensure!(
            self.n_head > 0 && self.n_embd % self.n_head == 0,
            "n_embd {} is not a multiple of n_head {}",
            self.n_embd,
            self.n_head
        );
        ensure!(
            self.n_head_kv > 0 && self.n_head % self.n_head_kv == 0,
            "n_head {} is not a multiple of n_head_kv {}",
            self.n_head,
            self.n_head_kv
        );
        Ok(())
    }
}

/// A weight type written directly: its llama.cpp file-type (`general.file_type`) and ggml tensor type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectType {
    pub name: &'static str,
    pub ftype: u32,
    pub ggml_type: u32,
}

pub const DIRECT_TYPES: &[DirectType] = &[
    DirectType { name: "F32", ftype: 0, ggml_type: 0 },
    DirectType { name: "F16", ftype: 1, ggml_type: 1 },
    DirectType { name: "BF16", ftype: 32, ggml_type: 30 },
    DirectType { name: "Q8_0", ftype: 7, ggml_type: 8 },
    DirectType { name: "Q4_0", ftype: 2, ggml_type: 2 },
    DirectType { name: "Q4_1", ftype: 3, ggml_type: 3 },
    DirectType { name: "Q5_0", ftype: 8, ggml_type: 6 },
    DirectType { name: "Q5_1", ftype: 9, ggml_type: 7 },
];

/// The type `name` if this module writes it directly; `None` for types that need llama.cpp's quantize API.
pub fn direct_type(name: &str) -> Option<DirectType> {
    DIRECT_TYPES.iter().copied().find(|t| t.name.eq_ignore_ascii_case(name))
}

const GGML_F32: u32 = 0;
const GGML_Q6_K: u32 = 14;
const GGML_Q8_0: u32 = 8;

/// What [`write`] made.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub n_params: u64,
    pub n_vocab: u64,
    pub file_bytes: u64,
}

/// Writes a synthetic model of `shape` in `weight_type` to `out`, with the tokenizer of `tokenizer_from` and weights
/// drawn from `seed`. `label` names the shape in `general.name` and the stamp.
pub fn write(
    out: &Path,
    shape: &Shape,
    label: &str,
    weight_type: DirectType,
    seed: u64,
    tokenizer_from: &Path,
) -> Result<Written> {
    shape.check()?;
    let source = gguf::validate(tokenizer_from)
        .with_context(|| format!("reading the tokenizer from {}", tokenizer_from.display()))?;
    let (tokenizer, n_vocab) = tokenizer_metadata(tokenizer_from, &source, shape.n_vocab)?;
    let tensors = tensor_table(shape, n_vocab, weight_type);
    let n_params = tensors.iter().map(TensorSpec::elements).sum();

    let arch = |k: &str| format!("llama.{k}");
    let mut metadata = vec![
        ("general.architecture".to_string(), Value::Str("llama".into())),
        ("general.name".into(), Value::Str(format!("tokbench synthetic {label} {}", weight_type.name))),
        ("general.file_type".into(), Value::U32(weight_type.ftype)),
        ("general.quantization_version".into(), Value::U32(2)),
        (arch("block_count"), Value::U32(shape.n_layer as u32)),
        (arch("context_length"), Value::U32(shape.context_length as u32)),
        (arch("embedding_length"), Value::U32(shape.n_embd as u32)),
        (arch("feed_forward_length"), Value::U32(shape.n_ff as u32)),
        (arch("attention.head_count"), Value::U32(shape.n_head as u32)),
        (arch("attention.head_count_kv"), Value::U32(shape.n_head_kv as u32)),
        (arch("rope.freq_base"), Value::F32(shape.rope_freq_base)),
        (arch("rope.dimension_count"), Value::U32(shape.head_dim() as u32)),
        (arch("attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
        (arch("vocab_size"), Value::U32(n_vocab as u32)),
        (format!("{KEY_PREFIX}shape"), Value::Str(label.into())),
        (format!("{KEY_PREFIX}seed"), Value::U64(seed)),
        (format!("{KEY_PREFIX}tokenizer_from"), Value::Str(source.name.clone().unwrap_or_default())),
    ];
    metadata.extend(tokenizer);

    gguf::write::write(out, &metadata, &tensors, |t, w| fill_random(t, seed, w))?;
    Ok(Written { n_params, n_vocab, file_bytes: std::fs::metadata(out)?.len() })
}

/// The tensor table of a converted llama model, with llama.cpp quantize's types: 1-D norms in F32; for a
/// quantized type the output layer (or the token embedding it shares) in Q6_K, or Q8_0 when rows are not whole
/// 256-blocks (`llama_tensor_get_type`); everything else in `weight_type`.
pub fn tensor_table(shape: &Shape, n_vocab: u64, weight_type: DirectType) -> Vec<TensorSpec> {
    let t = |name: String, dims: Vec<u64>, ggml_type: u32| TensorSpec { name, dims, ggml_type };
    let quantized = !matches!(weight_type.ggml_type, 0 | 1 | 30);
    let output_type = match weight_type.ggml_type {
        _ if !quantized => weight_type.ggml_type,
        GGML_Q8_0 => GGML_Q8_0,
        _ if shape.n_embd % 256 != 0 => GGML_Q8_0,
        _ => GGML_Q6_K,
    };
    let (e, kv, ff, w) = (shape.n_embd, shape.n_head_kv * shape.head_dim(), shape.n_ff, weight_type.ggml_type);
    let embd_type = if shape.tied_embeddings { output_type } else { w };
    let mut out = vec![t("token_embd.weight".into(), vec![e, n_vocab], embd_type)];
    for i in 0..shape.n_layer {
        let b = |n: &str| format!("blk.{i}.{n}.weight");
        out.extend([
            t(b("attn_norm"), vec![e], GGML_F32),
            t(b("attn_q"), vec![e, e], w),
            t(b("attn_k"), vec![e, kv], w),
            t(b("attn_v"), vec![e, kv], w),
            t(b("attn_output"), vec![e, e], w),
            t(b("ffn_norm"), vec![e], GGML_F32),
            t(b("ffn_gate"), vec![e, ff], w),
            t(b("ffn_up"), vec![e, ff], w),
            t(b("ffn_down"), vec![ff, e], w),
        ]);
    }
    out.push(t("output_norm.weight".into(), vec![e], GGML_F32));
    if !shape.tied_embeddings {
        out.push(t("output.weight".into(), vec![e, n_vocab], output_type));
    }
    out
}

/// The `tokenizer.*` entries of `source`, copied verbatim, and the vocabulary size: the tokenizer's own, or
/// `want_vocab` when that is larger, in which case the token list (and the token types and scores, where present)
/// is padded with unused tokens `<|synthetic_unused_N|>`.
fn tokenizer_metadata(path: &Path, source: &GgufInfo, want_vocab: u64) -> Result<(Vec<(String, Value)>, u64)> {
    let tokens = source.metadata.iter().find(|e| e.key == "tokenizer.ggml.tokens").with_context(|| {
        format!("{} has no tokenizer (tokenizer.ggml.tokens): take it from a GGUF model that has one", path.display())
    })?;
    let mut entries = Vec::new();
    let mut have = None;
    for entry in source.metadata.iter().filter(|e| e.key.starts_with("tokenizer.")) {
        let value = gguf::write::copy_value(path, entry)?;
        entries.push((entry.key.clone(), value));
        if entry.key == tokens.key {
            have = Some(array_header(&entries.last().unwrap().1)?.1);
        }
    }
    let have = have.expect("the tokens entry was copied");
    let n_vocab = have.max(want_vocab);
    if n_vocab > have {
        for (key, value) in &mut entries {
            let (element_type, len) = array_header(value)?;
            if len != have {
                continue; // merges and other arrays not indexed by token
            }
            let Value::Raw { bytes: b, .. } = value else { unreachable!("copied values are raw") };
            b[4..12].copy_from_slice(&n_vocab.to_le_bytes());
            for i in have..n_vocab {
                match (key.as_str(), element_type) {
                    ("tokenizer.ggml.tokens", 8) => {
                        let s = format!("<|synthetic_unused_{i}|>");
                        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
                        b.extend_from_slice(s.as_bytes());
                    }
                    ("tokenizer.ggml.token_type", 5) => b.extend_from_slice(&5i32.to_le_bytes()), // UNUSED
                    ("tokenizer.ggml.scores", 6) => b.extend_from_slice(&0f32.to_le_bytes()),
                    _ => bail!("{key} has one entry per token in an unexpected type: cannot pad it"),
                }
            }
        }
    }
    Ok((entries, n_vocab))
}

/// (element type, length) of an encoded array value.
fn array_header(value: &Value) -> Result<(u32, u64)> {
    match value {
        Value::Raw { value_type: 9, bytes } if bytes.len() >= 12 => Ok((
            u32::from_le_bytes(bytes[0..4].try_into().unwrap()),
            u64::from_le_bytes(bytes[4..12].try_into().unwrap()),
        )),
        _ => Ok((u32::MAX, u64::MAX)), // not an array: never matches a vocabulary length
    }
}

/// Streams a tensor's random data: each tensor from its own stream (seed and name), so a tensor's values do not
/// depend on the tensors before it. Values have the scale of a trained layer's, about ±1/√(row length).
fn fill_random(t: &TensorSpec, seed: u64, out: &mut dyn Write) -> std::io::Result<()> {
    let name_hash = t.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ name_hash);
    let row = t.dims.first().copied().unwrap_or(1).max(1);
    let scale = 1.0 / (row as f32).sqrt();
    let (block_elems, block_bytes) = gguf::ggml_type_size(t.ggml_type).expect("types of the table are known");
    let total_blocks = t.elements() / block_elems;
    let blocks_per_chunk = ((1 << 20) / block_bytes).max(1);
    let mut buf = Vec::new();
    let mut done = 0;
    while done < total_blocks {
        let n = blocks_per_chunk.min(total_blocks - done);
        buf.resize((n * block_bytes) as usize, 0);
        fill_blocks(t.ggml_type, scale, &mut rng, &mut buf);
        out.write_all(&buf)?;
        done += n;
    }
    Ok(())
}

/// Random blocks of `ggml_type`: random quants, then each block's scales set so values span about ±`scale`.
fn fill_blocks(ggml_type: u32, scale: f32, rng: &mut ChaCha8Rng, buf: &mut [u8]) {
    let f16 = |x: f32| half::f16::from_f32(x).to_le_bytes();
    match ggml_type {
        // F32 tensors are the RMS-norm weights: about 1, as trained ones are.
        0 => buf.chunks_exact_mut(4).for_each(|c| c.copy_from_slice(&rng.random_range(0.8f32..1.2).to_le_bytes())),
        1 => buf.chunks_exact_mut(2).for_each(|c| c.copy_from_slice(&f16(rng.random_range(-scale..scale)))),
        30 => buf
            .chunks_exact_mut(2)
            .for_each(|c| c.copy_from_slice(&half::bf16::from_f32(rng.random_range(-scale..scale)).to_le_bytes())),
        _ => {
            rng.fill_bytes(buf);
            // (block bytes, offsets of f16 multipliers d, offset of an f16 minimum m = -8d, quant half-range)
            let (size, d_at, m_at, range): (usize, usize, Option<usize>, f32) = match ggml_type {
                2 => (18, 0, None, 8.0),                    // Q4_0: d, 16 B of nibbles; w = d(q - 8)
                3 => (20, 0, Some(2), 8.0),                 // Q4_1: d, m, 16 B; w = dq + m
                6 => (22, 0, None, 16.0),                   // Q5_0: d, qh, qs; w = d(q - 16)
                7 => (24, 0, Some(2), 16.0),                // Q5_1: d, m, qh, qs
                8 => (34, 0, None, 128.0),                  // Q8_0: d, 32 i8
                GGML_Q6_K => (210, 208, None, 32.0 * 64.0), // ql, qh, 16 i8 scales, d; w = d·scale·(q - 32)
                other => unreachable!("ggml type {other} is not written directly"),
            };
            for block in buf.chunks_exact_mut(size) {
                let d = scale / range * rng.random_range(0.5f32..1.0);
                block[d_at..d_at + 2].copy_from_slice(&f16(d));
                if let Some(m) = m_at {
                    block[m..m + 2].copy_from_slice(&f16(-d * range));
                }
                if ggml_type == GGML_Q6_K {
                    // Sub-block scales are signed bytes: keep them in 1..64 so d·scale·32 stays about `scale`.
                    block[192..208].iter_mut().for_each(|s| *s = 1 + *s % 63);
                }
            }
        }
    }
}

/// A synthetic model's stamp, read from its header: `(shape, seed)`; `None` for real models.
pub fn stamp(info: &GgufInfo, path: &Path) -> Option<(String, u64)> {
    let shape_entry = info.metadata.iter().find(|e| e.key == format!("{KEY_PREFIX}shape"))?;
    let shape = match gguf::write::copy_value(path, shape_entry).ok()? {
        Value::Raw { value_type: 8, bytes } if bytes.len() >= 8 => String::from_utf8_lossy(&bytes[8..]).into_owned(),
        _ => return None,
    };
    Some((shape, info.int(&format!("{KEY_PREFIX}seed")).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small tokenizer-bearing source file, written with the writer itself.
    fn tokenizer_source(dir: &Path, vocab: u64) -> std::path::PathBuf {
        let path = dir.join("tok.gguf");
        let mut tokens = 8u32.to_le_bytes().to_vec();
        tokens.extend_from_slice(&vocab.to_le_bytes());
        let mut types = 5u32.to_le_bytes().to_vec();
        types.extend_from_slice(&vocab.to_le_bytes());
        for i in 0..vocab {
            let s = format!("t{i}");
            tokens.extend_from_slice(&(s.len() as u64).to_le_bytes());
            tokens.extend_from_slice(s.as_bytes());
            types.extend_from_slice(&1i32.to_le_bytes());
        }
        let md = vec![
            ("general.name".to_string(), Value::Str("source".into())),
            ("tokenizer.ggml.model".into(), Value::Str("gpt2".into())),
            ("tokenizer.ggml.tokens".into(), Value::Raw { value_type: 9, bytes: tokens }),
            ("tokenizer.ggml.token_type".into(), Value::Raw { value_type: 9, bytes: types }),
            ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
        ];
        gguf::write::write(&path, &md, &[], |_, _| Ok(())).unwrap();
        path
    }

    #[test]
    fn a_synthetic_model_has_the_shape_types_tokenizer_and_stamp_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let src = tokenizer_source(dir.path(), 100);
        let shape = shape(2, 256, 4, 2, 512, 160, 1024, 10000.0, false);
        let out = dir.path().join("s.gguf");
        let q4_1 = direct_type("q4_1").unwrap();
        let made = write(&out, &shape, "tiny", q4_1, 7, &src).unwrap();
        let info = gguf::validate(&out).unwrap();
        assert_eq!(info.quantization.as_deref(), Some("Q4_1"));
        assert_eq!(info.arch_int("block_count"), Some(2));
        assert_eq!(info.arch_int("attention.head_count_kv"), Some(2));
        assert_eq!(info.int("tokenizer.ggml.eos_token_id"), Some(2));
        assert_eq!(made.n_vocab, 160, "padded to the shape's vocabulary");
        assert_eq!(info.tensor("token_embd.weight").unwrap().dims, vec![256, 160]);
        assert_eq!(info.tensor("output.weight").unwrap().ggml_type, GGML_Q6_K, "rows of 256: Q6_K, as quantize does");
        assert_eq!(info.tensor("blk.1.attn_k.weight").unwrap().dims, vec![256, 128]);
        assert_eq!(info.tensor("blk.0.ffn_norm.weight").unwrap().ggml_type, 0);
        assert_eq!(info.tensors.len(), 1 + 2 * 9 + 2);
        assert_eq!(made.n_params, info.tensors.iter().map(|t| t.dims.iter().product::<u64>()).sum::<u64>());
        assert_eq!(stamp(&info, &out), Some(("tiny".to_string(), 7)));
        // KV cache per token: 2 layers × 2 KV heads × (64 + 64); a token reads one row of the untied embedding.
        assert_eq!(info.kv_elements_per_token(), Some(512));
        let embd = info.tensor("token_embd.weight").unwrap().bytes.unwrap();
        assert_eq!(info.decode_traffic().unwrap().weight_bytes, info.weight_bytes().unwrap() - embd + embd / 160);

        // The padded token list and types: 160 entries, the new ones unused.
        let tokens = info.metadata.iter().find(|e| e.key == "tokenizer.ggml.tokens").unwrap();
        let Value::Raw { bytes, .. } = gguf::write::copy_value(&out, tokens).unwrap() else { panic!() };
        assert_eq!(u64::from_le_bytes(bytes[4..12].try_into().unwrap()), 160);
        assert!(String::from_utf8_lossy(&bytes).ends_with("<|synthetic_unused_159|>"));
        let types = info.metadata.iter().find(|e| e.key == "tokenizer.ggml.token_type").unwrap();
        assert_eq!(types.value_span.end - types.value_span.start, 12 + 160 * 4);

        // Same seed, same bytes; another seed, other weights.
        let again = dir.path().join("again.gguf");
        write(&again, &shape, "tiny", q4_1, 7, &src).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
        write(&again, &shape, "tiny", q4_1, 8, &src).unwrap();
        assert_ne!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    }

    #[test]
    fn quantized_blocks_hold_finite_scales_of_the_layers_size() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (ggml_type, size) in [(2u32, 18usize), (3, 20), (8, 34), (GGML_Q6_K, 210)] {
            let mut buf = vec![0; size * 64];
            fill_blocks(ggml_type, 0.05, &mut rng, &mut buf);
            let d_at = if ggml_type == GGML_Q6_K { 208 } else { 0 };
            for block in buf.chunks_exact(size) {
                let d = half::f16::from_le_bytes([block[d_at], block[d_at + 1]]).to_f32();
                assert!(d.is_normal() && d > 0.0 && d < 0.05, "type {ggml_type}: d = {d}");
            }
        }
        let mut f16s = vec![0; 2 * 1000];
        fill_blocks(1, 0.05, &mut rng, &mut f16s);
        for c in f16s.chunks_exact(2) {
            let x = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
            assert!(x.abs() <= 0.05 && (x == 0.0 || x.abs() > 1e-6), "{x}");
        }
    }

    #[test]
    fn the_smollm2_shape_gives_the_real_files_tensor_table() {
        // The real SmolLM2-135M Q4_1: 272 tensors, Q4_1 matrices, the tied embedding in Q8_0 (576 is not whole
        // 256-blocks), F32 norms: 134,515,008 parameters.
        let shape = named_shape("SmolLM2-135M").unwrap();
        let table = tensor_table(&shape, 49152, direct_type("Q4_1").unwrap());
        assert_eq!(table.len(), 272);
        assert_eq!(table[0].ggml_type, GGML_Q8_0);
        assert_eq!(table.iter().filter(|t| t.ggml_type == 3).count(), 30 * 7);
        assert_eq!(table.iter().map(TensorSpec::elements).sum::<u64>(), 134_515_008);
        assert!(named_shape("2b").unwrap_err().to_string().contains("0.5b, 1b, 3b, 8b, 13b"));
    }
}
