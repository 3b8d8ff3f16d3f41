//! `tokbench synth`: a synthetic model of a given shape and type (see `tokbench_core::synth`).
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tokbench_core::config::{models_dir, Config};
use tokbench_core::machine::default_threads;
use tokbench_core::synth::{self, Shape};

use crate::cli::SynthArgs;

pub fn synth(args: &SynthArgs) -> Result<()> {
    let shape = shape(args)?;
    let label = args.shape.clone().unwrap_or_else(|| {
        format!("l{}-e{}-h{}-kv{}-ff{}", shape.n_layer, shape.n_embd, shape.n_head, shape.n_head_kv, shape.n_ff)
    });
    let label = label.to_ascii_lowercase();
    let type_name = args.weight_type.to_ascii_uppercase();
    let out = args.out.clone().unwrap_or_else(|| {
        models_dir().join("synthetic").join(format!("synth-{label}-{type_name}-s{}.gguf", args.seed))
    });
    if synth::direct_type(&type_name).is_none() && tokbench_core::gguf::ftype_id(&type_name).is_none() {
        bail!("--type {type_name} is not a llama.cpp type (e.g. Q4_0, Q8_0, F16, Q4_K_M, IQ4_XS)");
    }
    if out.exists() && !args.force {
        bail!("{} exists: pass --force to replace it, or --out for another file", out.display());
    }
    let tokenizer_from = match &args.tokenizer_from {
        Some(path) => path.clone(),
        None => default_tokenizer_source(args)?,
    };
    let started = std::time::Instant::now();
    let made = match synth::direct_type(&type_name) {
        Some(direct) => synth::write(&out, &shape, &label, direct, args.seed, &tokenizer_from)?,
        None => {
            // Other types: an F16 synthetic first, then llama.cpp's own quantization of it (its per-tensor mix).
            let f16 = synth::direct_type("F16").expect("F16 is written directly");
            let dir = out.parent().unwrap_or(std::path::Path::new("."));
            std::fs::create_dir_all(dir)?;
            let tmp = tempfile::Builder::new().suffix(".f16.gguf").tempfile_in(dir)?;
            let made = synth::write(tmp.path(), &shape, &label, f16, args.seed, &tokenizer_from)?;
            eprintln!("quantizing the F16 synthetic to {type_name} with llama.cpp…");
            let threads = args.threads.unwrap_or_else(default_threads);
            #[cfg(feature = "llama-cpp")]
            tokbench_llama::quantize::quantize(tmp.path(), &out, &type_name, threads, false)?;
            #[cfg(not(feature = "llama-cpp"))]
            bail!(
                "{type_name} is made with llama.cpp's quantize: build tokbench with the llama-cpp feature ({threads})"
            );
            synth::Written { file_bytes: std::fs::metadata(&out)?.len(), ..made }
        }
    };
    eprintln!(
        "{label} {type_name}: {:.3} B parameters, vocabulary {}, {} in {:.1} s",
        made.n_params as f64 / 1e9,
        made.n_vocab,
        tokbench_record::metric::format_bytes(made.file_bytes as f64),
        started.elapsed().as_secs_f64()
    );
    println!("{}", out.display());
    Ok(())
}

fn shape(args: &SynthArgs) -> Result<Shape> {
    let mut shape = match &args.shape {
        Some(name) => synth::named_shape(name)?,
        None => {
            let missing: Vec<&str> = [
                ("--n-layer", args.n_layer),
                ("--n-embd", args.n_embd),
                ("--n-head", args.n_head),
                ("--n-ff", args.n_ff),
            ]
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| *n)
            .collect();
            if !missing.is_empty() {
                bail!("give --shape (e.g. --shape 1b) or every dimension: {} missing", missing.join(", "));
            }
            Shape {
                n_layer: 0,
                n_embd: 0,
                n_head: 0,
                n_head_kv: 0,
                n_ff: 0,
                n_vocab: 0,
                context_length: 4096,
                rope_freq_base: 10000.0,
                tied_embeddings: false,
            }
        }
    };
    let set = |field: &mut u64, v: Option<u64>| {
        if let Some(v) = v {
            *field = v;
        }
    };
    set(&mut shape.n_layer, args.n_layer);
    set(&mut shape.n_embd, args.n_embd);
    set(&mut shape.n_head, args.n_head);
    set(&mut shape.n_ff, args.n_ff);
    set(&mut shape.n_vocab, args.n_vocab);
    set(&mut shape.context_length, args.context_length);
    shape.n_head_kv = args.n_head_kv.unwrap_or(if args.shape.is_some() { shape.n_head_kv } else { shape.n_head });
    Ok(shape)
}

/// The config's first model (the default model): its tokenizer is a real one and it is fetched by every set-up.
fn default_tokenizer_source(args: &SynthArgs) -> Result<PathBuf> {
    let config = Config::load(&args.config)
        .with_context(|| "no --tokenizer-from given, and the config that names the default model cannot be read")?;
    let first = config.run.models.first().context("the config's [run] models is empty: give --tokenizer-from")?;
    let path = config.resolve_model(first)?.path;
    if !path.exists() {
        bail!(
            "the tokenizer comes from {}, which is not fetched yet: run `cargo xtask fetch`, or give --tokenizer-from",
            path.display()
        );
    }
    Ok(path)
}
