//! tokbench's greedy pick against llama.cpp's own greedy sampler chain, on the real default model's logits.
use std::num::NonZeroU32;
use std::path::Path;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use tokbench_core::config::Config;
use tokbench_llama::{greedy_pick, llama_greedy_chain, shared_backend};

#[test]
fn greedy_pick_is_llama_cpp_greedy_sampler_chain_token_for_token() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config = Config::load(&root.join("tokbench.toml")).expect("tokbench.toml loads");
    let path = config.model(&config.run.models[0]).unwrap().cached_path();
    assert!(path.is_file(), "{} is missing: run `cargo xtask fetch` (or `cargo xtask test`)", path.display());

    let backend = shared_backend().unwrap();
    let model = LlamaModel::load_from_file(backend, &path, &LlamaModelParams::default()).unwrap();
    let params = LlamaContextParams::default().with_n_ctx(NonZeroU32::new(512)).with_n_threads(2);
    let mut ctx = model.new_context(backend, params).unwrap();
    let vocab = model.vocab();
    let mut eog: Vec<u32> = vocab.tokens().filter(|t| vocab.is_eog(*t)).map(|t| t.0 as u32).collect();
    eog.sort_unstable();
    assert!(!eog.is_empty(), "SmolLM2 has end-of-generation tokens");
    let mut chain = llama_greedy_chain(model.n_vocab(), &eog);

    // A chat turn the instruct model answers in a word and then wants to end: its raw argmax is an
    // end-of-generation token at some steps, which both picks must skip the same way.
    let text = "<|im_start|>user\nReply with the single word: yes<|im_end|>\n<|im_start|>assistant\n";
    let prompt = vocab.tokenize(text.as_bytes(), true, false);
    let mut batch = LlamaBatch::new(512, 1);
    batch.add_sequence(&prompt, 0, false).unwrap();
    ctx.decode(&mut batch).unwrap();
    let mut row = batch.n_tokens() - 1;
    let (mut pos, mut eog_was_argmax) = (prompt.len() as i32, 0);
    for step in 0..48 {
        let logits = ctx.get_logits_ith(row).to_vec();
        let ours = greedy_pick(&logits, &eog).expect("a token to pick");
        let theirs = chain.sample(&ctx, row);
        assert_eq!(ours, theirs.0 as u32, "step {step}: tokbench's greedy pick and llama.cpp's chain disagree");
        let raw_argmax = greedy_pick(&logits, &[]).unwrap();
        eog_was_argmax += usize::from(eog.binary_search(&raw_argmax).is_ok());
        batch.clear();
        batch.add(theirs, pos, &[0], true).unwrap();
        ctx.decode(&mut batch).unwrap();
        (row, pos) = (0, pos + 1);
    }
    assert!(eog_was_argmax > 0, "the test never exercised the end-of-generation exclusion");
}
