//! Output quality next to speed: perplexity computed the way llama.cpp's `llama-perplexity` computes it,
//! KL-divergence against a base model's saved distribution, and the Pareto frontier of speed against quality.
//!
//! - [`perplexity`]: chunking, log-softmax, PPL and its standard error.
//! - [`base_logprobs`]: the compact file of a base model's top-k log-probabilities, for KL-divergence later.
//! - [`kld`]: KL-divergence, top-token agreement and ΔPPL of a model against that base.
//! - [`measure`]: one scoring pass through any backend, and the [`measure::QualityResult`] it records.
//! - [`pareto`]: which configurations are worth choosing, and which are dominated by what.
pub mod base_logprobs;
pub mod kld;
pub mod measure;
pub mod pareto;
pub mod perplexity;
