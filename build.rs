//! With the `mlx` feature on Linux, MLX is a shared library in the unpacked mlx-cpu wheel under target/mlx: the
//! tokbench binary, its tests and benches carry that directory as their run-time search path (rpath), so they run
//! without LD_LIBRARY_PATH. Nothing happens otherwise (macOS links MLX statically).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TOKBENCH_MLX_LIBDIR");
    if let Ok(dir) = std::env::var("DEP_TOKBENCH_MLX_LIBDIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        // llama.cpp (static, in this binary) and libmlx.so both define `gguf_*` functions of different
        // signatures (ggml's GGUF API, gguflib's). An executable exports its definitions of symbols a shared
        // library also defines, and libmlx.so's GGUF reader would then call ggml's `gguf_get_key` and crash. Symbols
        // from static archives stay private to the executable instead.
        println!("cargo:rustc-link-arg=-Wl,--exclude-libs,ALL");
    }
}
