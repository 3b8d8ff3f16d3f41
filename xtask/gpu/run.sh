#!/usr/bin/env bash
# tokbench on an NVIDIA GPU machine that has a C/C++/CUDA toolchain but no Rust and no network. Run from the
# repository root with the bundle of `cargo xtask gpu-bundle` in target/gpu-bundle (docs/gpu.md):
#   bash xtask/gpu/run.sh build     compile the bundled llama.cpp tree with CUDA (shared libraries + llama-bench)
#   bash xtask/gpu/run.sh measure   synthetic 1B/3B/8B models, the matrix on the GPU, llama-bench beside it, a report
#   bash xtask/gpu/run.sh all       both, in one go
# Results go to target/gpu-work/out, packed at the end into $RESULTS/gpu-run.tar.gz when $OUT is set.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUNDLE=target/gpu-bundle
WORK=target/gpu-work
RESULTS=$WORK/out
mkdir -p "$WORK" "$RESULTS"
[ -x "$BUNDLE/bin/tokbench" ] || { echo "no bundle in $BUNDLE: run \`cargo xtask gpu-bundle\` where Rust is" >&2; exit 2; }

build() {
  rm -rf "$WORK/llama.cpp"
  tar -xJf "$BUNDLE/llama.cpp.tar.xz" -C "$WORK"
  # The same tree llama-cpp-sys-2 compiled for the bundle, as shared libraries, now with CUDA; GGML_NATIVE for this
  # machine's CPU (as llama.cpp's own tools build). CUDA_ARCH: 90 is Hopper (H100, H200).
  local generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cmake -S "$WORK/llama.cpp" -B "$WORK/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
    -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" -DGGML_NATIVE=ON -DGGML_OPENMP=ON \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON \
    > "$RESULTS/cmake-configure.log"
  cmake --build "$WORK/build" -j "$(nproc)" --target llama llama-bench > "$RESULTS/cmake-build.log" 2>&1 \
    || { tail -40 "$RESULTS/cmake-build.log"; exit 1; }
  ls -l "$WORK/build/bin" | tee "$RESULTS/build-bin.txt"
}

measure() {
  local libs="$WORK/build/bin" tb="$BUNDLE/bin/tokbench"
  [ -e "$libs/llama-bench" ] || { echo "no CUDA build in $libs: run \`bash xtask/gpu/run.sh build\` first" >&2; exit 2; }
  # The binary finds llama.cpp through LD_LIBRARY_PATH: here the CUDA build (the bundle's bin/lib is the CPU one).
  export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  "$tb" backends | tee "$RESULTS/backends.txt"
  grep -q CUDA "$RESULTS/backends.txt" || { echo "the CUDA libraries were not loaded" >&2; exit 1; }
  nvidia-smi > "$RESULTS/nvidia-smi.txt" || true
  "$tb" machine > "$RESULTS/machine.json"
  # An established tool's figure beside tokbench's GPU copy bandwidth (machine.json, gpu_bandwidth): PyTorch's
  # device-to-device copy of 1 GiB, (read + write) bytes over the best of 10, where PyTorch is installed.
  python3 - > "$RESULTS/torch-copy.txt" 2>&1 <<'PY' || true
import time, torch
n = 1 << 30
src = torch.ones(n, dtype=torch.uint8, device="cuda"); dst = torch.empty_like(src)
dst.copy_(src); torch.cuda.synchronize()
best = float("inf")
for _ in range(10):
    t = time.perf_counter(); dst.copy_(src); torch.cuda.synchronize(); best = min(best, time.perf_counter() - t)
print(f"torch {torch.__version__} {torch.cuda.get_device_name()}: copy {2 * n / best / 1e9:.0f} GB/s (best of 10, 1 GiB)")
PY
  cat "$RESULTS/torch-copy.txt"

  mkdir -p "$WORK/models"
  local models=()
  for shape in ${SHAPES:-1b 3b 8b}; do
    local m="$WORK/models/synth-$shape-Q4_0.gguf"
    [ -f "$m" ] || "$tb" synth --shape "$shape" --type Q4_0 --tokenizer-from "$BUNDLE/tokenizer.gguf" --out "$m"
    models+=("$m")
  done
  local list
  list=$(IFS=,; echo "${models[*]}")

  # nvidia-smi's own view beside tokbench's (power and memory every 200 ms): a cross-check, not an input.
  nvidia-smi --query-gpu=timestamp,power.draw,memory.used,utilization.gpu --format=csv -lms 200 > "$RESULTS/smi.csv" &
  local smi=$!
  "$tb" run --backend llama.cpp --model "$list" --n-gpu-layers 99 -p 512 -n 128 --depth "${DEPTHS:-0,4096}" \
    --warmup 2 --runs "${RUNS:-5}" --no-quality --output "$RESULTS/gpu-matrix.json" | tee "$RESULTS/gpu-matrix.md"
  kill "$smi" 2>/dev/null || true
  "$tb" report "$RESULTS/gpu-matrix.json" -o "$RESULTS/gpu-matrix.html"

  # The peer: llama-bench of the same CUDA build, same file and settings, alternating with tokbench; on the smallest
  # and the largest model (a small model's tokens are the shortest, so per-token host costs show most there).
  for i in ${PEER_MODELS:-0 $((${#models[@]} - 1))}; do
    local name
    name=$(basename "${models[$i]}" .gguf)
    "$BUNDLE/bin/xtask" vs-llama-bench --model "${models[$i]}" --tokbench "$tb" \
      --llama-bench "$libs/llama-bench" --n-gpu-layers 99 --depths "${DEPTHS:-0,4096}" \
      --rounds "${ROUNDS:-3}" --out "$RESULTS/vs-llama-bench-$name" | tee "$RESULTS/vs-llama-bench-$name.md"
  done
}

pack() {
  if [ -n "${OUT:-}" ]; then tar -czf "$OUT/gpu-run.tar.gz" -C "$WORK" out; fi
}

case "${1:-}" in
  build) trap pack EXIT; build ;;
  measure) trap pack EXIT; measure ;;
  all) trap pack EXIT; build; measure ;;
  *) echo "usage: bash xtask/gpu/run.sh build|measure|all" >&2; exit 2 ;;
esac
