// Intentionally empty. This crate has a build script only so that its [build-dependencies] (see Cargo.toml) take
// part in feature resolution for host code: they pin the features of crates llama.cpp's own build script uses.
fn main() {}
