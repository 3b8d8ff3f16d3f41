//! Build script for mlx-sys 0.7.0 on Linux, against MLX's CPU backend from the PyPI wheel `mlx-cpu==0.32.2`
//! (the MLX version mlx-sys 0.7.0 pins). Written for tokbench, not part of upstream mlx-sys: `cargo xtask
//! prepare-mlx` copies the registry's own mlx-sys 0.7.0 sources under `target/mlx/`, puts this file in place of its
//! `build.rs` (upstream's builds MLX from git with Metal and links Apple frameworks) and adds `linux_compat.h` /
//! `linux_compat.rs`. Everything else, mlx-c's sources and bindgen's configuration included, is upstream's, unchanged.
//!
//! What differs from upstream's build, and why (see README.md beside this file in the tokbench repository):
//! - mlx-c is compiled against the wheel (`MLX_C_USE_SYSTEM_MLX=ON`, `MLX_DIR` = the wheel's CMake config) instead
//!   of fetching and compiling MLX; `mlxc` is linked static, `mlx` shared from the wheel's `mlx/lib`.
//! - `stdc++` instead of `c++`; no objc / Foundation / Metal / Accelerate / clang_rt.osx.
//! - `linux_compat.h` is force-included in the C++ build and in bindgen: storage types for `float16_t` /
//!   `bfloat16_t` (mlx-c's `half.h` declares them only on aarch64, mlx-rs uses them everywhere), and a minimal
//!   `std::format` where the C++ library lacks it (GCC 12; used by mlx-c's `private/io.h`).
extern crate cmake;

use std::env;
use std::path::{Path, PathBuf};

#[path = "src/bindgen_config.rs"]
mod bindgen_config;

/// The unpacked `mlx-cpu` wheel: holds `mlx/lib/libmlx.so`, `mlx/include` and `mlx/share/cmake/MLX`.
const WHEEL_ENV: &str = "TOKBENCH_MLX_CPU_ROOT";
const MLX_VERSION: &str = "0.32.2";

fn wheel_root() -> PathBuf {
    let root = env::var_os(WHEEL_ENV).map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "{WHEEL_ENV} is not set: this Linux build of mlx-sys needs MLX's CPU backend from the PyPI wheel \
             mlx-cpu=={MLX_VERSION}. Run `cargo xtask prepare-mlx` and build through the config it writes \
             (`cargo --config target/mlx/cargo-config.toml ...`), or use `cargo xtask run` / `cargo xtask test`."
        )
    });
    let config = root.join("mlx/share/cmake/MLX/MLXConfig.cmake");
    let version_h = root.join("mlx/include/mlx/version.h");
    if !config.is_file() || !root.join("mlx/lib/libmlx.so").is_file() {
        panic!(
            "{WHEEL_ENV}={} is not an unpacked mlx-cpu=={MLX_VERSION} wheel (no {} or mlx/lib/libmlx.so): run \
             `cargo xtask prepare-mlx` again",
            root.display(),
            config.display()
        );
    }
    // version.h: `#define MLX_VERSION_MAJOR 0` and so on.
    let header = std::fs::read_to_string(&version_h).unwrap_or_default();
    let defined = |name: &str| {
        header.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("#define") && words.next() == Some(name)).then(|| words.next().map(str::to_owned))?
        })
    };
    let found: Vec<String> = ["MLX_VERSION_MAJOR", "MLX_VERSION_MINOR", "MLX_VERSION_PATCH"]
        .iter()
        .map(|name| defined(name).unwrap_or_else(|| "?".into()))
        .collect();
    if found.join(".") != MLX_VERSION {
        panic!(
            "{} says MLX {}, but mlx-rs 0.33 / mlx-sys 0.7.0 need exactly MLX {MLX_VERSION}: run `cargo xtask \
             prepare-mlx` again",
            version_h.display(),
            found.join(".")
        );
    }
    root
}

fn main() {
    println!("cargo:rerun-if-env-changed={WHEEL_ENV}");
    println!("cargo:rerun-if-changed=src/linux_compat.h");
    let wheel = wheel_root();
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let compat = manifest.join("src/linux_compat.h");
    let mlx_c_root = Path::new("src/mlx-c");

    let dst = cmake::Config::new(mlx_c_root)
        .define("MLX_C_USE_SYSTEM_MLX", "ON")
        .define("MLX_DIR", wheel.join("mlx/share/cmake/MLX"))
        .define("MLX_C_BUILD_EXAMPLES", "OFF")
        .define("BUILD_SHARED_LIBS", "OFF")
        // mlx-c is thin C wrappers; its speed does not follow the Rust profile (MLX itself is the wheel's build).
        .define("CMAKE_BUILD_TYPE", "Release")
        .profile("Release")
        .cxxflag(format!("-include {}", compat.display()))
        .build_target("mlxc")
        .build();

    let wheel_lib = wheel.join("mlx/lib");
    println!("cargo:rustc-link-search=native={}/build", dst.display());
    println!("cargo:rustc-link-lib=static=mlxc");
    println!("cargo:rustc-link-search=native={}", wheel_lib.display());
    println!("cargo:rustc-link-lib=dylib=mlx");
    println!("cargo:rustc-link-lib=dylib=stdc++");
    // For dependents (DEP_MLX_*): the same contract as upstream's build, pointing at the wheel's headers, plus the
    // library directory a binary needs on its run-time search path (tokbench's build script adds it as an rpath).
    let include = env::join_paths([wheel.join("mlx/include"), manifest.join(mlx_c_root)]).unwrap();
    println!("cargo::metadata=include={}", include.display());
    println!("cargo::metadata=defines=");
    println!("cargo::metadata=version={MLX_VERSION}");
    println!("cargo::metadata=libdir={}", wheel_lib.display());

    let headers = bindgen_config::discover_headers(mlx_c_root).expect("Unable to discover mlx-c headers");
    for header in &headers {
        let relative = bindgen_config::relative_header(mlx_c_root, header).expect("Unable to record header");
        println!("cargo:rerun-if-changed={}", mlx_c_root.join(relative).display());
    }
    let bindings = bindgen_config::builder(mlx_c_root, &headers)
        .clang_arg("-include")
        .clang_arg(compat.display().to_string())
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("Unable to generate mlx-c bindings");
    bindings.write_to_file(PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs")).unwrap();
}
