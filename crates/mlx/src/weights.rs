//! Model files into [`LlamaModel`]: a GGUF through MLX's own GGUF reader (the same file llama.cpp runs), or an
//! MLX-format safetensors directory (`config.json`, `model*.safetensors`, `tokenizer.json`, as mlx-community
//! publishes). Quantized weights stay quantized: GGUF Q4_0 / Q4_1 / Q8_0 arrive from MLX's reader as an MLX
//! affine-quantized triple (u32-packed weight, scales, biases; groups of 32), mlx-community files carry the same
//! triple (usually groups of 64). F16 / BF16 / F32 weights are dense unless [`quantize_dense`] is asked to make
//! them MLX 4-bit or 8-bit.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use mlx_rs::io::{GgufFile, GgufMetadataValue};
use mlx_rs::ops::quantize;
use mlx_rs::{Array, Dtype};
use serde::Deserialize;

use crate::llama::{Attention, Block, Linear, LlamaConfig, LlamaModel, Mlp};
use crate::Numerics;

/// GGUF quantized tensors as MLX's reader returns them: one scale and bias per 32 weights.
const GGUF_GROUP_SIZE: i32 = 32;

/// How a dense (F16/BF16/F32) weight matrix is held: as it is, or quantized to MLX's own format on load (the
/// "MLX 4-bit / 8-bit" rows). Quantized files are never re-quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DenseWeights {
    #[default]
    AsStored,
    Quantize {
        bits: i32,
        group_size: i32,
    },
}

pub fn mlx_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("MLX: {e}")
}

/// Takes weights out of a name → array map, naming what is missing.
struct Tensors {
    map: HashMap<String, Array>,
    source: String,
    dense: DenseWeights,
}

impl Tensors {
    fn take(&mut self, name: &str) -> Result<Array> {
        self.map.remove(name).ok_or_else(|| anyhow!("{} has no tensor {name:?}", self.source))
    }

    /// `name.weight`, with `name.scales` / `name.biases` where it is quantized.
    fn linear(&mut self, name: &str, default_group: i32, compute: Dtype) -> Result<Linear> {
        let weight = self.take(&format!("{name}.weight"))?;
        let Some(scales) = self.map.remove(&format!("{name}.scales")) else {
            return self.dense_linear(weight, compute, name);
        };
        let biases = self.take(&format!("{name}.biases")).context("MLX affine quantization stores biases")?;
        let packed = *weight.shape().last().unwrap_or(&0);
        let groups = *scales.shape().last().unwrap_or(&0);
        ensure!(weight.dtype() == Dtype::Uint32 && groups > 0, "{name}: quantized weight is not u32-packed");
        // in = groups · group_size and packed = in · bits / 32; GGUF mixes widths (SmolLM2's Q4_1 file keeps its
        // embedding in Q8_0), so the width is read off each tensor.
        let group_size = default_group;
        let bits = packed * 32 / (groups * group_size);
        ensure!(
            [2, 3, 4, 5, 6, 8].contains(&bits) && packed * 32 == groups * group_size * bits,
            "{name}: a {packed}-word packed row with {groups} groups of {group_size} is no MLX quantization"
        );
        let (scales, biases) = (scales.as_dtype(compute).map_err(mlx_err)?, biases.as_dtype(compute).map_err(mlx_err)?);
        Ok(Linear::Quantized { weight, scales, biases, group_size, bits })
    }

    fn dense_linear(&self, weight: Array, compute: Dtype, name: &str) -> Result<Linear> {
        ensure!(
            matches!(weight.dtype(), Dtype::Float16 | Dtype::Bfloat16 | Dtype::Float32),
            "{name}: weight of type {:?} is neither dense floating point nor MLX-quantized",
            weight.dtype()
        );
        match self.dense {
            DenseWeights::AsStored => Ok(Linear::Dense { weight: weight.as_dtype(compute).map_err(mlx_err)? }),
            DenseWeights::Quantize { bits, group_size } => {
                let (weight, scales, biases) =
                    quantize(weight.as_dtype(compute).map_err(mlx_err)?, group_size, bits).map_err(mlx_err)?;
                Ok(Linear::Quantized { weight, scales, biases, group_size, bits })
            }
        }
    }

    fn norm(&mut self, name: &str, compute: Dtype) -> Result<Array> {
        self.take(name)?.as_dtype(compute).map_err(mlx_err)
    }
}

/// A block's parts: (role in [`assemble`], GGUF name, Hugging Face name), within `blk.N.` / `model.layers.N.`.
const BLOCK_PARTS: [(&str, &str, &str); 9] = [
    ("attn_norm", "attn_norm", "input_layernorm"),
    ("ffn_norm", "ffn_norm", "post_attention_layernorm"),
    ("q", "attn_q", "self_attn.q_proj"),
    ("k", "attn_k", "self_attn.k_proj"),
    ("v", "attn_v", "self_attn.v_proj"),
    ("o", "attn_output", "self_attn.o_proj"),
    ("gate", "ffn_gate", "mlp.gate_proj"),
    ("up", "ffn_up", "mlp.up_proj"),
    ("down", "ffn_down", "mlp.down_proj"),
];

/// Tensor names of one file format.
struct Names {
    embed: &'static str,
    norm: &'static str,
    head: &'static str,
    /// `blk` or `model.layers`.
    layers: &'static str,
    hugging_face: bool,
}

impl Names {
    fn block(&self, layer: usize, role: &str) -> String {
        let (_, gguf, hf) = BLOCK_PARTS.iter().find(|p| p.0 == role).expect("a known block part");
        format!("{}.{layer}.{}", self.layers, if self.hugging_face { hf } else { gguf })
    }
}

const GGUF_NAMES: Names =
    Names { embed: "token_embd", norm: "output_norm.weight", head: "output", layers: "blk", hugging_face: false };

const HF_NAMES: Names = Names {
    embed: "model.embed_tokens",
    norm: "model.norm.weight",
    head: "lm_head",
    layers: "model.layers",
    hugging_face: true,
};

/// The float type a model computes in: float32 where `numerics` says so, else the weights' own, as mlx-lm computes —
/// the type of the embedding's quantization scales, or of the embedding itself where it is dense (a GGUF's norms are
/// F32 even in an F16 file, so they do not decide).
fn compute_dtype(t: &Tensors, names: &Names, numerics: Numerics) -> Result<Dtype> {
    if !numerics.uses_weight_type() {
        return Ok(Dtype::Float32);
    }
    let (scales, weight) = (format!("{}.scales", names.embed), format!("{}.weight", names.embed));
    let decides = t
        .map
        .get(&scales)
        .or_else(|| t.map.get(&weight))
        .ok_or_else(|| anyhow!("{} has no tensor {weight:?}", t.source))?;
    Ok(match decides.dtype() {
        Dtype::Float16 => Dtype::Float16,
        Dtype::Bfloat16 => Dtype::Bfloat16,
        _ => Dtype::Float32,
    })
}

fn assemble(mut t: Tensors, names: &Names, config: LlamaConfig, group: i32, numerics: Numerics) -> Result<LlamaModel> {
    let compute = compute_dtype(&t, names, numerics)?;
    let embed = t.linear(names.embed, group, compute)?;
    let head = if t.map.contains_key(&format!("{}.weight", names.head)) {
        Some(t.linear(names.head, group, compute)?)
    } else {
        None
    };
    let norm = t.norm(names.norm, compute)?;
    let mut blocks = Vec::with_capacity(config.n_layers);
    for i in 0..config.n_layers {
        let n = |part: &str| names.block(i, part);
        blocks.push(Block {
            attn_norm: t.norm(&format!("{}.weight", n("attn_norm")), compute)?,
            attn: Attention {
                q: t.linear(&n("q"), group, compute)?,
                k: t.linear(&n("k"), group, compute)?,
                v: t.linear(&n("v"), group, compute)?,
                o: t.linear(&n("o"), group, compute)?,
            },
            ffn_norm: t.norm(&format!("{}.weight", n("ffn_norm")), compute)?,
            mlp: Mlp {
                gate: t.linear(&n("gate"), group, compute)?,
                up: t.linear(&n("up"), group, compute)?,
                down: t.linear(&n("down"), group, compute)?,
            },
        });
    }
    Ok(LlamaModel { config, embed, blocks, norm, head, dtype: compute })
}

/// A GGUF of a llama-architecture model.
pub fn load_gguf(path: &Path, dense: DenseWeights, numerics: Numerics) -> Result<LlamaModel> {
    let source = path.display().to_string();
    let file = GgufFile::load(path).map_err(|e| {
        anyhow!(
            "MLX could not read {source} as GGUF ({e}). MLX {} reads F32, F16, BF16, Q4_0, Q4_1 and Q8_0 tensors \
             (and dequantizes Q4_K / Q6_K / Q2_K); other llama.cpp types (Q3_K, Q5_K, IQ*) are not readable by MLX",
            crate::MLX_VERSION
        )
    })?;
    let string = |key: &str| -> Result<Option<String>> { file.get_metadata_string(key).map_err(mlx_err) };
    let number = |key: &str| -> Result<Option<f64>> {
        match file.get_metadata(key).map_err(mlx_err)? {
            Some(GgufMetadataValue::Array(a)) => Ok(Some(a.item_cast::<f64>())),
            Some(_) => bail!("{source}: metadata {key} is not a number"),
            None => Ok(None),
        }
    };
    let arch = string("general.architecture")?.unwrap_or_default();
    ensure!(
        arch == "llama",
        "{source} is a {arch:?} model; tokbench's MLX forward pass implements the llama family (general.architecture \
         = \"llama\": Llama, SmolLM, Mistral-style) only"
    );
    let need = |key: &str| -> Result<f64> {
        number(key)?.ok_or_else(|| anyhow!("{source} lacks GGUF metadata {key}, which a llama model must have"))
    };
    let hidden = need("llama.embedding_length")? as i32;
    let n_heads = need("llama.attention.head_count")? as i32;
    let n_kv_heads = number("llama.attention.head_count_kv")?.map_or(n_heads, |v| v as i32);
    let head_dim = number("llama.rope.dimension_count")?.map_or(hidden / n_heads, |v| v as i32);
    ensure!(
        head_dim * n_heads == hidden,
        "{source}: partial RoPE (rope.dimension_count {head_dim}) is not implemented"
    );
    ensure!(
        number("llama.rope.scaling.factor")?.is_none_or(|f| f == 1.0)
            && string("llama.rope.scaling.type")?.is_none_or(|t| t == "none"),
        "{source} uses RoPE scaling, which tokbench's MLX forward pass does not implement"
    );
    let map = file.arrays().map_err(mlx_err)?;
    let vocab = map
        .get("token_embd.weight")
        .map(|w| w.shape()[0])
        .ok_or_else(|| anyhow!("{source} has no token_embd.weight"))?;
    let config = LlamaConfig {
        hidden,
        n_layers: need("llama.block_count")? as usize,
        n_heads,
        n_kv_heads,
        head_dim,
        rms_eps: need("llama.attention.layer_norm_rms_epsilon")? as f32,
        rope_base: number("llama.rope.freq_base")?.unwrap_or(10_000.0) as f32,
        // llama.cpp's converter permuted Q/K for pairwise RoPE (see LlamaConfig::rope_traditional).
        rope_traditional: true,
        vocab,
        n_ctx_train: number("llama.context_length")?.map(|v| v as u32),
    };
    assemble(Tensors { map, source, dense }, &GGUF_NAMES, config, GGUF_GROUP_SIZE, numerics)
}

/// Hugging Face `config.json` fields a llama model needs (mlx-community adds `quantization`).
#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    hidden_size: i32,
    num_hidden_layers: usize,
    num_attention_heads: i32,
    num_key_value_heads: Option<i32>,
    head_dim: Option<i32>,
    rms_norm_eps: f32,
    rope_theta: Option<f32>,
    vocab_size: i32,
    max_position_embeddings: Option<u32>,
    rope_scaling: Option<serde_json::Value>,
    quantization: Option<HfQuantization>,
}

#[derive(Deserialize)]
struct HfQuantization {
    group_size: i32,
    bits: i32,
}

/// The files of an MLX-format model directory.
pub fn safetensors_files(dir: &Path) -> Result<(PathBuf, Vec<PathBuf>)> {
    let config = dir.join("config.json");
    ensure!(
        config.is_file(),
        "{} has no config.json: an MLX model directory holds config.json, model*.safetensors and tokenizer.json",
        dir.display()
    );
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    shards.sort();
    ensure!(!shards.is_empty(), "{} has no *.safetensors weights", dir.display());
    Ok((config, shards))
}

pub fn load_safetensors_dir(dir: &Path, dense: DenseWeights, numerics: Numerics) -> Result<LlamaModel> {
    let (config_path, shards) = safetensors_files(dir)?;
    let text = std::fs::read_to_string(&config_path)?;
    let hf: HfConfig =
        serde_json::from_str(&text).with_context(|| format!("{} is not a llama config.json", config_path.display()))?;
    let model_type = hf.model_type.as_deref().unwrap_or("llama");
    ensure!(
        matches!(model_type, "llama" | "mistral"),
        "{} describes a {model_type:?} model; tokbench's MLX forward pass implements the llama family only",
        config_path.display()
    );
    ensure!(
        hf.rope_scaling.as_ref().is_none_or(serde_json::Value::is_null),
        "{} uses rope_scaling, which tokbench's MLX forward pass does not implement",
        config_path.display()
    );
    let mut map = HashMap::new();
    for shard in &shards {
        map.extend(Array::load_safetensors(shard).map_err(|e| anyhow!("MLX could not read {}: {e}", shard.display()))?);
    }
    let config = LlamaConfig {
        hidden: hf.hidden_size,
        n_layers: hf.num_hidden_layers,
        n_heads: hf.num_attention_heads,
        n_kv_heads: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
        head_dim: hf.head_dim.unwrap_or(hf.hidden_size / hf.num_attention_heads),
        rms_eps: hf.rms_norm_eps,
        rope_base: hf.rope_theta.unwrap_or(10_000.0),
        rope_traditional: false,
        vocab: hf.vocab_size,
        n_ctx_train: hf.max_position_embeddings,
    };
    let group = hf.quantization.as_ref().map_or(64, |q| q.group_size);
    if let Some(q) = &hf.quantization {
        ensure!([2, 3, 4, 5, 6, 8].contains(&q.bits), "{}: quantization bits {}", config_path.display(), q.bits);
    }
    let source = dir.display().to_string();
    assemble(Tensors { map, source, dense }, &HF_NAMES, config, group, numerics)
}
