//! A llama-family decoder (Llama 2/3, SmolLM, Mistral-style GQA) in MLX: token embedding, then per block
//! RMSNorm → grouped-query attention with RoPE and a growing KV cache → residual, RMSNorm → SwiGLU MLP → residual;
//! a final RMSNorm and the output head (tied to the embedding or separate). Weights arrive through
//! [`crate::weights`] already in this layout, dense or MLX-quantized.
//!
//! Everything here builds lazy MLX graphs; nothing is evaluated until the caller asks (see `generate` in lib.rs).
use mlx_rs::error::Exception;
use mlx_rs::fast::{rms_norm, rope, scaled_dot_product_attention, ScaledDotProductAttentionMask};
use mlx_rs::ops::indexing::{Ellipsis, IndexOp, TryIndexMutOp};
use mlx_rs::ops::{concatenate, dequantize, matmul, quantized_matmul, sigmoid, zeros_dtype};
use mlx_rs::{Array, Dtype};

type Result<T> = std::result::Result<T, Exception>;

/// Hyper-parameters, from GGUF metadata (`llama.*`) or a Hugging Face `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub hidden: i32,
    pub n_layers: usize,
    pub n_heads: i32,
    pub n_kv_heads: i32,
    pub head_dim: i32,
    pub rms_eps: f32,
    pub rope_base: f32,
    /// RoPE over adjacent pairs (MLX "traditional", llama.cpp's default) rather than over the two halves of each
    /// head (GPT-NeoX / Hugging Face). llama.cpp's GGUF converter permutes Q and K of llama models so that the pairwise
    /// form gives Hugging Face's results: GGUF weights need `true`, Hugging Face-layout safetensors `false`.
    pub rope_traditional: bool,
    pub vocab: i32,
    pub n_ctx_train: Option<u32>,
}

/// `x @ Wᵀ` for a weight of shape `[out, in]`: dense, or quantized MLX-style (per group of `group_size` inputs one
/// scale and one bias: `w = scale · q + bias`, `q` packed `bits` at a time into u32 words).
pub enum Linear {
    Dense { weight: Array },
    Quantized { weight: Array, scales: Array, biases: Array, group_size: i32, bits: i32 },
}

impl Linear {
    pub fn forward(&self, x: &Array) -> Result<Array> {
        match self {
            Linear::Dense { weight } => matmul(x, weight.t()),
            Linear::Quantized { weight, scales, biases, group_size, bits } => {
                quantized_matmul(x, weight, scales, biases, true, *group_size, *bits)
            }
        }
    }

    /// Rows `ids` of the weight, dequantized: the embedding lookup (llama.cpp's `get_rows`).
    pub fn rows(&self, ids: &Array) -> Result<Array> {
        match self {
            Linear::Dense { weight } => weight.take_axis(ids, 0),
            Linear::Quantized { weight, scales, biases, group_size, bits } => dequantize(
                weight.take_axis(ids, 0)?,
                scales.take_axis(ids, 0)?,
                &biases.take_axis(ids, 0)?,
                *group_size,
                *bits,
            ),
        }
    }

    /// Every array the layer holds (for evaluating weights up front and for counting parameters).
    pub fn arrays(&self) -> Vec<&Array> {
        match self {
            Linear::Dense { weight } => vec![weight],
            Linear::Quantized { weight, scales, biases, .. } => vec![weight, scales, biases],
        }
    }

    /// Logical `[out, in]` element count.
    pub fn n_params(&self) -> u64 {
        match self {
            Linear::Dense { weight } => weight.size() as u64,
            Linear::Quantized { scales, group_size, .. } => (scales.size() as u64) * (*group_size as u64),
        }
    }
}

pub struct Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
}

pub struct Mlp {
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

pub struct Block {
    pub attn_norm: Array,
    pub attn: Attention,
    pub ffn_norm: Array,
    pub mlp: Mlp,
}

pub struct LlamaModel {
    pub config: LlamaConfig,
    pub embed: Linear,
    pub blocks: Vec<Block>,
    pub norm: Array,
    /// None: the head is the embedding matrix (tied weights, as SmolLM2's).
    pub head: Option<Linear>,
    /// Activations and KV cache are kept in this type.
    pub dtype: Dtype,
}

/// Keys and values of every layer for one sequence, `[1, n_kv_heads, capacity, head_dim]`, written in place as the
/// sequence grows. Capacity grows in steps (as mlx-lm's cache does), so a decode step writes one position instead of
/// copying the whole cache.
pub struct KvCache {
    layers: Vec<Option<(Array, Array)>>,
    /// Positions filled so far.
    offset: i32,
}

const CACHE_STEP: i32 = 256;

impl KvCache {
    pub fn new(n_layers: usize) -> KvCache {
        KvCache { layers: (0..n_layers).map(|_| None).collect(), offset: 0 }
    }

    pub fn offset(&self) -> i32 {
        self.offset
    }

    /// Writes `k`, `v` (`[1, h, n, d]`) at the current offset of `layer` and returns the keys and values of every
    /// position so far. The offset moves on in [`KvCache::advance`], once every layer has been written.
    fn update(&mut self, layer: usize, k: &Array, v: &Array) -> Result<(Array, Array)> {
        let n = k.shape()[2];
        let end = self.offset + n;
        let slot = &mut self.layers[layer];
        let capacity = slot.as_ref().map_or(0, |(keys, _)| keys.shape()[2]);
        if end > capacity {
            let (h, d) = (k.shape()[1], k.shape()[3]);
            let grow = ((end - capacity + CACHE_STEP - 1) / CACHE_STEP) * CACHE_STEP;
            let fresh = zeros_dtype(&[1, h, grow, d], k.dtype())?;
            *slot = Some(match slot.take() {
                None => (fresh.clone(), fresh),
                Some((keys, values)) => (concatenate(&[keys, fresh.clone()], 2)?, concatenate(&[values, fresh], 2)?),
            });
        }
        let (keys, values) = slot.as_mut().expect("allocated above");
        keys.try_index_mut((Ellipsis, self.offset..end, ..), k)?;
        values.try_index_mut((Ellipsis, self.offset..end, ..), v)?;
        Ok((keys.index((Ellipsis, ..end, ..)), values.index((Ellipsis, ..end, ..))))
    }

    /// The cache's arrays, to be evaluated between prefill pieces.
    pub fn arrays(&self) -> Vec<&Array> {
        self.layers.iter().flatten().flat_map(|(k, v)| [k, v]).collect()
    }

    fn advance(&mut self, n: i32) {
        self.offset += n;
    }

    /// Forgets every position from `n` on (they are overwritten by the next writes, never read before).
    pub fn truncate(&mut self, n: i32) {
        self.offset = self.offset.min(n);
    }
}

impl Attention {
    fn forward(&self, x: &Array, cache: &mut KvCache, layer: usize, config: &LlamaConfig) -> Result<Array> {
        let (batch, len) = (x.shape()[0], x.shape()[1]);
        let heads = |t: Array, n: i32| t.reshape(&[batch, len, n, config.head_dim])?.transpose_axes(&[0, 2, 1, 3]);
        let q = heads(self.q.forward(x)?, config.n_heads)?;
        let k = heads(self.k.forward(x)?, config.n_kv_heads)?;
        let v = heads(self.v.forward(x)?, config.n_kv_heads)?;
        let offset = cache.offset();
        let q = rope(&q, config.head_dim, config.rope_traditional, config.rope_base, 1.0, offset, None)?;
        let k = rope(&k, config.head_dim, config.rope_traditional, config.rope_base, 1.0, offset, None)?;
        let (keys, values) = cache.update(layer, &k, &v)?;
        // Several new positions (prefill) attend causally; MLX aligns the causal mask to the end of the keys, so a
        // prompt fed in pieces after earlier positions is masked correctly. One new position sees everything.
        let mask = (len > 1).then_some(ScaledDotProductAttentionMask::Causal);
        let scale = 1.0 / (config.head_dim as f32).sqrt();
        let out = scaled_dot_product_attention(&q, &keys, &values, scale, mask, None)?;
        self.o.forward(&out.transpose_axes(&[0, 2, 1, 3])?.reshape(&[batch, len, config.n_heads * config.head_dim])?)
    }
}

impl Mlp {
    /// SwiGLU: down(silu(gate(x)) · up(x)).
    fn forward(&self, x: &Array) -> Result<Array> {
        let gate = self.gate.forward(x)?;
        let silu = gate.multiply(sigmoid(&gate)?)?;
        self.down.forward(&silu.multiply(self.up.forward(x)?)?)
    }
}

impl LlamaModel {
    /// Logits `[1, len, vocab]` for `tokens` (`[1, len]`, int32) following the cache's positions; the cache takes
    /// their keys and values. Only `last_only` positions' logits are computed when set (generation needs the last).
    pub fn forward(&self, tokens: &Array, cache: &mut KvCache, last_only: bool) -> Result<Array> {
        let config = &self.config;
        let mut h = self.embed.rows(tokens)?.as_dtype(self.dtype)?;
        for (layer, block) in self.blocks.iter().enumerate() {
            let attn =
                block.attn.forward(&rms_norm(&h, Some(&block.attn_norm), config.rms_eps)?, cache, layer, config)?;
            h = h.add(attn)?;
            let mlp = block.mlp.forward(&rms_norm(&h, Some(&block.ffn_norm), config.rms_eps)?)?;
            h = h.add(mlp)?;
        }
        cache.advance(tokens.shape()[1]);
        if last_only {
            h = h.index((.., -1.., ..));
        }
        let h = rms_norm(&h, Some(&self.norm), config.rms_eps)?;
        self.head.as_ref().unwrap_or(&self.embed).forward(&h)
    }

    /// Every weight array, to be evaluated at load so that no run pays for reading the file.
    pub fn arrays(&self) -> Vec<&Array> {
        let mut all = self.embed.arrays();
        all.push(&self.norm);
        if let Some(head) = &self.head {
            all.extend(head.arrays());
        }
        for b in &self.blocks {
            all.extend([&b.attn_norm, &b.ffn_norm]);
            for l in [&b.attn.q, &b.attn.k, &b.attn.v, &b.attn.o, &b.mlp.gate, &b.mlp.up, &b.mlp.down] {
                all.extend(l.arrays());
            }
        }
        all
    }

    pub fn n_params(&self) -> u64 {
        let norms = (self.blocks.len() as u64 * 2 + 1) * self.config.hidden as u64;
        let blocks: u64 = self
            .blocks
            .iter()
            .flat_map(|b| [&b.attn.q, &b.attn.k, &b.attn.v, &b.attn.o, &b.mlp.gate, &b.mlp.up, &b.mlp.down])
            .map(Linear::n_params)
            .sum();
        self.embed.n_params() + self.head.as_ref().map_or(0, Linear::n_params) + blocks + norms
    }
}
