//! Linux builds link MLX as a shared library from the unpacked mlx-cpu wheel (see crates/mlx/linux-sys): this
//! crate's own tests get it on their run-time search path here, and tokbench's build script gets its directory
//! through `DEP_TOKBENCH_MLX_LIBDIR` to do the same for the tokbench binary, tests and benches. Upstream mlx-sys
//! (macOS) links MLX statically and publishes no library directory, so nothing is added there.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_MLX_LIBDIR");
    if let Ok(dir) = std::env::var("DEP_MLX_LIBDIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        // llama.cpp (static, in this binary) and libmlx.so both define `gguf_*` functions of different
        // signatures (ggml's GGUF API, gguflib's). An executable exports its definitions of symbols a shared
        // library also defines, and libmlx.so's GGUF reader would then call ggml's `gguf_get_key` and crash. Symbols
        // from static archives stay private to the executable instead.
        println!("cargo:rustc-link-arg=-Wl,--exclude-libs,ALL");
        println!("cargo::metadata=libdir={dir}");
    }
}
