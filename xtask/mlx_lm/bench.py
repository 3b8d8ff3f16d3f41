"""mlx-lm's side of `cargo xtask vs-mlx-lm`: mlx-lm's own loading and generation loop on an MLX model directory.

Speed: as `mlx_lm.benchmark` runs it — `stream_generate` on a prompt of random token ids (seeded), end-of-sequence
never stopping it — with one warmup generation, then timed ones. Each timed generation records, from this process's
clock (`time.perf_counter`):
  ttft_s     = call → first token yielded (prefill and the first sample, as mlx-lm's prompt_tps counts it);
  decode_tps = (generated − 1) / (last token yielded − first token yielded), tokbench's decode definition;
and mlx-lm's own prompt_tps / generation_tps as stream_generate reports them.
Greedy: the token ids greedy decoding produces from a text prompt, end-of-generation tokens masked (as tokbench does).
Perplexity: llama-perplexity's method on a corpus (chunks of n_ctx, first token of a chunk replaced by BOS when the
tokenizer adds one, the second half of each chunk scored), with mlx-lm's model computing the logits.
Prints one JSON object on stdout.
"""
import argparse
import json
import math
import sys
import time

import mlx.core as mx
from mlx_lm import load, stream_generate
from mlx_lm.generate import generate_step


def end_of_generation_bias(model_dir, vocab):
    with open(f"{model_dir}/config.json") as f:
        eos = json.load(f).get("eos_token_id", [])
    eos = eos if isinstance(eos, list) else [eos]
    bias = mx.zeros((vocab,))
    if eos:
        bias[mx.array(eos)] = -math.inf
    return bias


def speed(model, tokenizer, args, vocab):
    mx.random.seed(args.seed)
    prompt = mx.random.randint(0, vocab, (args.prompt_tokens,)).tolist()
    # As mlx_lm.benchmark: end-of-sequence does not stop the loop.
    tokenizer._eos_token_ids = set()
    runs = []
    for i in range(args.warmup + args.runs):
        stamps = []
        start = time.perf_counter()
        last = None
        for response in stream_generate(model, tokenizer, prompt, max_tokens=args.gen_tokens):
            stamps.append(time.perf_counter())
            last = response
        if i < args.warmup:
            continue
        n = len(stamps)
        runs.append({
            "ttft_s": stamps[0] - start,
            "decode_tps": (n - 1) / (stamps[-1] - stamps[0]) if n > 1 else None,
            "generated": n,
            "prompt_tps": last.prompt_tps,
            "generation_tps": last.generation_tps,
            "peak_memory_gb": last.peak_memory,
        })
    return runs


def greedy(model, tokenizer, args, bias):
    prompt = tokenizer.encode(args.greedy_prompt)
    sampler = lambda logprobs: mx.argmax(logprobs + bias.astype(logprobs.dtype), axis=-1)
    tokens = []
    for token, _ in generate_step(mx.array(prompt), model, max_tokens=args.greedy_tokens, sampler=sampler):
        tokens.append(int(token))
    return {"prompt_tokens": prompt, "tokens": tokens}


def perplexity(model, tokenizer, args):
    with open(args.corpus, encoding="utf-8") as f:
        tokens = tokenizer.encode(f.read())
    n_ctx = args.ctx
    n_chunks = len(tokens) // n_ctx
    if args.chunks is not None:
        n_chunks = min(n_chunks, args.chunks)
    if n_chunks == 0:
        sys.exit(f"{args.corpus}: {len(tokens)} tokens, fewer than one chunk of {n_ctx}")
    bos = tokenizer.bos_token_id if tokenizer.encode("")[:1] == [tokenizer.bos_token_id] else None
    first = n_ctx // 2
    nll, scored = 0.0, 0
    for c in range(n_chunks):
        ids = tokens[c * n_ctx:(c + 1) * n_ctx]
        if bos is not None:
            ids[0] = bos
        logits = model(mx.array(ids)[None])[0].astype(mx.float32)
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        targets = mx.array(ids[first + 1:])
        picked = mx.take_along_axis(logprobs[first:n_ctx - 1], targets[:, None], axis=-1)
        nll -= mx.sum(picked).item()
        scored += n_ctx - 1 - first
    return {"ppl": math.exp(nll / scored), "tokens_scored": scored, "n_chunks": n_chunks, "n_ctx": n_ctx}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--prompt-tokens", type=int, default=512)
    p.add_argument("--gen-tokens", type=int, default=128)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--runs", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--greedy-prompt")
    p.add_argument("--greedy-tokens", type=int, default=32)
    p.add_argument("--corpus")
    p.add_argument("--ctx", type=int, default=128)
    p.add_argument("--chunks", type=int)
    args = p.parse_args()

    model, tokenizer, config = load(args.model, return_config=True)
    vocab = config["vocab_size"]
    out = {"mlx_lm": __import__("mlx_lm").__version__, "mlx": mx.__version__, "device": str(mx.default_device())}
    if args.runs > 0:
        out["runs"] = speed(model, tokenizer, args, vocab)
    if args.greedy_prompt is not None:
        out["greedy"] = greedy(model, tokenizer, args, end_of_generation_bias(args.model, vocab))
    if args.corpus is not None:
        out["perplexity"] = perplexity(model, tokenizer, args)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
