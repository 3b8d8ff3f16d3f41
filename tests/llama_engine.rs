//! The measurement engine on the real llama.cpp and the real default model.
mod common;

use tokbench::registry;
use tokbench_core::config::RunConfig;
use tokbench_core::engine::{self, RunPlan};
use tokbench_core::prompts::{self, PromptSpec};
use tokbench_record::results::LoadMeasurement;
use tokbench_record::setup::Sampling;

fn load(ctx: u32) -> (Box<dyn tokbench_core::backend::LoadedModel>, LoadMeasurement) {
    let backend = registry::create("llama.cpp", &[]).unwrap();
    engine::load_model(backend.as_ref(), &common::default_model(), &common::options(ctx)).unwrap()
}

#[test]
fn metric_definitions_hold_on_a_real_trace() {
    let (mut model, load) = load(1024);
    let prompt = prompts::resolve(&PromptSpec::Length { prompt_tokens: 64, gen_tokens: 24 }, model.as_ref()).unwrap();
    let run = engine::measure_once(model.as_mut(), &load, &prompt, Sampling::GREEDY).unwrap();
    let t = &run.token_times_s;
    assert_eq!((run.prompt_tokens, run.generated_tokens, t.len()), (64, 24, 24));
    // TTFT is the first token's timestamp and contains tokenization and prefill.
    assert_eq!(run.ttft_s, t[0]);
    assert!(run.tokenize_s + run.prefill_s <= run.ttft_s);
    // Decode rate recomputed from the raw timestamps.
    let decode = (t.len() - 1) as f64 / (t[t.len() - 1] - t[0]);
    assert!((run.decode_tps.unwrap() - decode).abs() < 1e-9 * decode);
    assert!((run.prefill_tps - 64.0 / run.prefill_s).abs() < 1e-9 * run.prefill_tps);
    assert_eq!(run.e2e_s, t[t.len() - 1]);
    assert!(run.itl_p50_s.unwrap() <= run.itl_p90_s.unwrap() && run.itl_p90_s.unwrap() <= run.itl_p99_s.unwrap());
    assert!(run.rss_peak_bytes >= run.rss_start_bytes);
    // RAM Δ is what the model costs: its weights (98 MB, memory-mapped, resident once a generation has read them),
    // KV cache and compute buffers, counted from RSS before the load. Not the ~0 B of the in-generation delta.
    let file = std::fs::metadata(common::default_model()).unwrap().len();
    let ram = run.ram_delta_bytes.unwrap();
    assert!(ram >= file * 8 / 10 && ram < file + (512 << 20), "RAM Δ {ram} B for a {file} B model");
    assert!(run.peak_rss_delta_bytes < ram / 4, "in-generation delta {} vs RAM Δ {ram}", run.peak_rss_delta_bytes);
}

#[test]
fn exact_token_counts_on_the_real_tokenizer() {
    let (model, _) = load(2048);
    for n in [2, 3, 17, 128, 512, 1000] {
        let p = prompts::resolve(&PromptSpec::Length { prompt_tokens: n, gen_tokens: 1 }, model.as_ref()).unwrap();
        assert_eq!(model.tokenize(&p.text).unwrap().len(), n, "prompt of {n} tokens");
    }
}

#[test]
fn exactly_n_tokens_even_past_end_of_sequence() {
    let (mut model, load) = load(2048);
    // A chat turn that the instruct model answers briefly, then would end: EOS is suppressed, so it keeps going.
    let text = "<|im_start|>user\nReply with the single word: yes<|im_end|>\n<|im_start|>assistant\n";
    let prompt =
        prompts::resolve(&PromptSpec::Text { name: "eos".into(), text: text.into(), gen_tokens: 300 }, model.as_ref())
            .unwrap();
    let run = engine::measure_once(model.as_mut(), &load, &prompt, Sampling::GREEDY).unwrap();
    assert_eq!(run.generated_tokens, 300);
    assert_eq!(run.tokens.len(), 300);
}

#[test]
fn greedy_runs_are_deterministic_and_seeded_sampling_is_reproducible() {
    let (mut model, load) = load(1024);
    let prompt = prompts::resolve(&PromptSpec::builtin("short").unwrap(), model.as_ref()).unwrap();
    let a = engine::measure_once(model.as_mut(), &load, &prompt, Sampling::GREEDY).unwrap();
    let b = engine::measure_once(model.as_mut(), &load, &prompt, Sampling::GREEDY).unwrap();
    assert_eq!(a.tokens, b.tokens, "greedy decoding must not depend on the previous run");

    let warm = Sampling { temperature: 0.7, top_p: 0.9, seed: 7 };
    let c = engine::measure_once(model.as_mut(), &load, &prompt, warm).unwrap();
    let d = engine::measure_once(model.as_mut(), &load, &prompt, warm).unwrap();
    let e = engine::measure_once(model.as_mut(), &load, &prompt, Sampling { seed: 8, ..warm }).unwrap();
    assert_eq!(c.tokens, d.tokens, "same seed, same tokens");
    assert_ne!(c.tokens, e.tokens, "another seed should sample another continuation");
    assert_ne!(a.tokens, c.tokens, "temperature 0.7 should leave the greedy path somewhere in 50 tokens");
}

#[test]
fn warmup_is_discarded_and_every_metric_is_summarised() {
    let (mut model, load) = load(1024);
    let prompt = prompts::resolve(&PromptSpec::Length { prompt_tokens: 32, gen_tokens: 8 }, model.as_ref()).unwrap();
    let plan = RunPlan { warmup: 2, runs: 3, ..RunConfig::default().plan() };
    let mut calls = Vec::new();
    let runs = engine::measure(model.as_mut(), &load, &prompt, &plan, &mut |phase, done, total, _| {
        calls.push((phase, done, total))
    })
    .unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(calls.len(), 5);
    let (summary, _) = engine::summarize_runs(&runs, plan.cv_threshold);
    // Every metric, the energy ones where this machine has a counter (never a made-up number).
    use tokbench_record::metric::Metric;
    let energy = [Metric::PrefillJoulesPerToken, Metric::DecodeJoulesPerToken];
    let has_counter = tokbench_core::energy::meter().is_ok();
    // GPU memory only where the model runs on an NVIDIA GPU (NVML sees a context of this process).
    let on_gpu = tokbench_core::energy::gpu_memory_of_this_process().is_some();
    let expected: Vec<Metric> = Metric::ALL
        .into_iter()
        .filter(|m| has_counter || !energy.contains(m))
        .filter(|m| on_gpu || *m != Metric::GpuMemoryBytes)
        .collect();
    assert_eq!(summary.keys().copied().collect::<Vec<_>>(), expected);
    for s in summary.values() {
        assert_eq!(s.n, 3);
        assert!(s.min <= s.median && s.median <= s.max && s.ci95_low <= s.ci95_high);
    }
}

#[test]
fn bad_requests_are_clear_errors() {
    let (mut model, _) = load(128);
    // llama.cpp may round the context up (to 256 here); the limit is what the loaded model reports.
    let ctx = model.context_size();
    assert!(ctx >= 128);
    let long = PromptSpec::Length { prompt_tokens: ctx - 10, gen_tokens: 50 };
    let e = prompts::resolve(&long, model.as_ref()).unwrap_err().to_string();
    assert!(e.contains(&format!("raise --ctx-size to at least {}", ctx + 40)), "{e}");
    let zero = PromptSpec::Length { prompt_tokens: 16, gen_tokens: 0 };
    assert!(prompts::resolve(&zero, model.as_ref()).unwrap_err().to_string().contains("0 generated tokens"));
    // The backend itself also refuses, for callers that skip prompt resolution.
    let text = "word ".repeat(ctx);
    let request = tokbench_core::backend::GenerationRequest {
        prompt: &text,
        gen_tokens: 10,
        sampling: Sampling::GREEDY,
        depth: 0,
    };
    let mut trace = tokbench_core::metrics::TraceRecorder::start(10);
    let e = model.generate(&request, &mut trace).unwrap_err().to_string();
    assert!(e.contains(&format!("does not fit the context of {ctx}")), "{e}");
}

#[test]
fn a_prompt_at_depth_continues_as_one_long_prompt() {
    let (mut model, _) = load(512);
    common::a_prompt_at_depth_continues_as_one_long_prompt(model.as_mut());
}
