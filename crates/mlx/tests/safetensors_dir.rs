//! The MLX-format directory path (config.json + model.safetensors + tokenizer.json, Hugging Face tensor names and
//! layout), on the directory `tokbench export-mlx` makes from the default GGUF (`tokbench_mlx::export`): its tensors
//! renamed to Hugging Face's names, Q and K put back into Hugging Face's row order (undoing llama.cpp's converter
//! permutation, so the split-halves RoPE applies), and a byte-level BPE tokenizer.json built from the GGUF's own
//! vocabulary and merges. Same weights, so greedy decoding must give exactly the tokens the GGUF gives — through the
//! other RoPE form, the safetensors reader, the `tokenizers` crate and the config.json parser.
use std::path::PathBuf;

use tokbench_core::backend::{Backend, GenerationRequest, LoadOptions, LoadedModel};
use tokbench_core::metrics::TraceRecorder;
use tokbench_mlx::export::export_gguf;
use tokbench_mlx::{Mlx, Numerics};
use tokbench_record::setup::{FlashAttn, Sampling};

fn default_model() -> PathBuf {
    let path = std::env::var_os("TOKBENCH_TEST_MODEL")
        .map(PathBuf::from)
        .expect("TOKBENCH_TEST_MODEL names the default model: run the tests with `cargo xtask test`");
    assert!(path.is_file(), "{} is missing: run `cargo xtask fetch`", path.display());
    path
}

fn greedy(model: &mut dyn LoadedModel, prompt: &str, n: usize) -> Vec<u32> {
    let mut trace = TraceRecorder::start(n);
    model
        .generate(&GenerationRequest { prompt, gen_tokens: n, sampling: Sampling::GREEDY, depth: 0 }, &mut trace)
        .unwrap();
    trace.finish().unwrap().tokens
}

/// Prompts whose tokenization must match llama.cpp's: words, digits (SmolLM's pre-tokenizer splits each), code,
/// non-ASCII. Not control tokens written in the text: tokbench tokenizes GGUF prompts with llama.cpp without parsing
/// special tokens (`<|im_start|>` is read as text), while tokenizer.json marks them special, as Hugging Face's own
/// does, so that mlx-lm's chat template yields the real control tokens.
const PROMPTS: [&str; 4] = [
    "The capital of France is",
    "Q: What is 12 times 7? 1984 and 3.14159\nA:",
    "def f(x):\n    return x ** 2  # square",
    "Ça coûte 5 € — naïve café",
];

#[test]
fn an_mlx_safetensors_directory_generates_what_the_same_gguf_generates() {
    let gguf_path = default_model();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("smollm2-mlx");
    let exported = export_gguf(&gguf_path, &dir, false, None).unwrap();
    eprintln!("{exported:?}");
    assert_eq!(exported.dtype, "float16", "Q4_1 scales are f16, so the export is float16");
    // SmolLM2's Q4_1 file keeps its embedding in Q8_0: 4 bits for most layers, 8 for the embedding.
    assert_eq!(exported.quantization.first(), Some(&(4, 32)));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["quantization"]["model.embed_tokens"]["bits"], 8, "{config}");
    for file in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    // Nothing but the result is left in the parent.
    let left: Vec<_> = std::fs::read_dir(scratch.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("smollm2-mlx")]);
    let tokenizer_config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer_config.json")).unwrap()).unwrap();
    assert_eq!(tokenizer_config["add_bos_token"], false, "SmolLM2 adds no BOS");

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
    let mut from_dir = backend.load(&dir, &options).unwrap();
    if !Numerics::Auto.uses_weight_type() {
        // `mlx` computes in float32 here (MLX's CPU device): the directory must hold the GGUF's float32 norms too,
        // which `--dtype float32` keeps exactly (and the f16 scales widen exactly).
        let dir32 = scratch.path().join("smollm2-mlx-f32");
        assert_eq!(export_gguf(&gguf_path, &dir32, false, Some(mlx_rs::Dtype::Float32)).unwrap().dtype, "float32");
        from_dir = backend.load(&dir32, &options).unwrap();
    }
    for prompt in PROMPTS {
        assert_eq!(
            from_dir.tokenize(prompt).unwrap(),
            from_gguf.tokenize(prompt).unwrap(),
            "tokenizer.json tokenizes {prompt:?} as llama.cpp does"
        );
    }
    let prompt = PROMPTS[0];
    let (a, b) = (greedy(from_gguf.as_mut(), prompt, 16), greedy(from_dir.as_mut(), prompt, 16));
    eprintln!("gguf: {:?}\ndir:  {:?}", from_gguf.detokenize(&a).unwrap(), from_dir.detokenize(&b).unwrap());
    assert_eq!(b, a, "the safetensors directory must generate what the GGUF generates");
    assert_eq!(from_dir.detokenize(&b).unwrap(), from_gguf.detokenize(&a).unwrap());
}

#[test]
fn export_never_replaces_a_directory_unasked_and_names_bad_input() {
    let gguf_path = default_model();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("out");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    let e = export_gguf(&gguf_path, &dir, false, None).unwrap_err().to_string();
    assert!(e.contains("exists") && e.contains("--force"), "{e}");
    assert_eq!(std::fs::read_to_string(dir.join("keep.txt")).unwrap(), "mine", "nothing was touched");

    let not_gguf = scratch.path().join("notes.gguf");
    std::fs::write(&not_gguf, "not a model").unwrap();
    let e = export_gguf(&not_gguf, &scratch.path().join("x"), false, None).unwrap_err().to_string();
    assert!(e.contains("notes.gguf"), "{e}");
    let mut left: Vec<_> = std::fs::read_dir(scratch.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(left, ["notes.gguf", "out"].map(std::ffi::OsString::from), "a failed export leaves nothing");

    // --force replaces it, whole.
    export_gguf(&gguf_path, &dir, true, None).unwrap();
    assert!(!dir.join("keep.txt").exists() && dir.join("model.safetensors").is_file());
}
