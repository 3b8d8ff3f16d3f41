"""Why tokbench's `mlx` computes in float32 on MLX's CPU device: MLX's own kernels, float16 against float32, side by
side in one process, on a real weight of the given GGUF (MLX's GGUF reader gives the Q4_1 triple: u32-packed weight,
f16 scales and biases). Run with mlx-lm's venv python:
    ~/.cache/tokbench/mlx-lm/venv-0.32.2/bin/python xtask/mlx_lm/cpu_float16.py MODEL.gguf
Each figure: 3 untimed calls, then the mean of R timed calls (mx.eval forces each).
"""
import sys
import time

import mlx.core as mx


def timed(f, reps):
    for _ in range(3):
        mx.eval(f())
    start = time.perf_counter()
    for _ in range(reps):
        mx.eval(f())
    return (time.perf_counter() - start) / reps * 1e3


def main():
    w = mx.load(sys.argv[1])
    weight, scales, biases = w["blk.0.ffn_up.weight"], w["blk.0.ffn_up.scales"], w["blk.0.ffn_up.biases"]
    n_in = scales.shape[1] * 32
    print(f"device {mx.default_device()}, MLX {mx.__version__}; blk.0.ffn_up: {weight.shape[0]} x {n_in}, 4-bit g32")
    rows = {}
    for dtype in (mx.float32, mx.float16):
        s, b = scales.astype(dtype), biases.astype(dtype)
        for n, reps in ((1, 50), (64, 5)):
            x = mx.random.normal((1, n, n_in)).astype(dtype)
            rows[(f"quantized_matmul, {n} row(s)", dtype)] = timed(
                lambda: mx.quantized_matmul(x, weight, s, b, True, 32, 4), reps)
        a, m = mx.random.normal((1, 64, n_in)).astype(dtype), mx.random.normal((n_in, n_in)).astype(dtype)
        rows[(f"dense matmul 64 x {n_in} x {n_in}", dtype)] = timed(lambda: a @ m, 10)
        q, k = mx.random.normal((1, 9, 64, 64)).astype(dtype), mx.random.normal((1, 3, 512, 64)).astype(dtype)
        rows[("attention, 64 queries x 512 keys", dtype)] = timed(
            lambda: mx.fast.scaled_dot_product_attention(q, k, k, scale=0.125, mask=None), 10)
    print("| operation | float32 ms | float16 ms | float16 / float32 |")
    print("|---|---:|---:|---:|")
    for name in dict.fromkeys(k[0] for k in rows):
        f32, f16 = rows[(name, mx.float32)], rows[(name, mx.float16)]
        print(f"| {name} | {f32:.2f} | {f16:.2f} | {f16 / f32:.1f}x |")


if __name__ == "__main__":
    main()
