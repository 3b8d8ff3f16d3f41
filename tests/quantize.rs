//! The quantization ladder on the real default model, through llama.cpp's quantize API.
mod common;

use tokbench_core::config::ladder_path;
use tokbench_core::gguf;

#[test]
fn the_ladder_makes_valid_ggufs_of_each_type_in_size_order_and_skips_up_to_date_rungs() {
    let real = common::default_model();
    let (_cache, config, base) = common::private_ladder_cache();

    // Largest to smallest by bits per weight. Q4_0 / IQ4_XS are left out of the chain: this model's 576-wide rows
    // are not a multiple of the K-quants' 256-block, so llama.cpp falls back to larger types for many tensors
    // of Q3_K_L (its Q3_K becomes IQ4_NL), putting Q3_K_L above Q4_0 here.
    let types: Vec<String> = ["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_L"].map(String::from).to_vec();
    let paths = tokbench::ladder::make(&config, &types, 2, false, false).unwrap();
    let mut sizes = Vec::new();
    for (path, t) in paths.iter().zip(&types) {
        assert_eq!(path, &ladder_path(&base, t));
        let info = gguf::validate(path).unwrap();
        assert_eq!(info.quantization.as_deref(), Some(t.as_str()), "{}", path.display());
        assert_eq!(info.architecture.as_deref(), Some("llama"));
        sizes.push(std::fs::metadata(path).unwrap().len());
    }
    assert!(sizes.windows(2).all(|w| w[0] > w[1]), "sizes must fall with the bits: {types:?} {sizes:?}");
    let q4_1 = std::fs::metadata(&real).unwrap().len();
    assert!(sizes[0] > 2 * q4_1, "F16 of the base is over twice the Q4_1 file");

    // Up to date: a second call rewrites nothing.
    let before: Vec<_> = paths.iter().map(|p| std::fs::metadata(p).unwrap().modified().unwrap()).collect();
    tokbench::ladder::make(&config, &types[1..2], 2, false, false).unwrap();
    assert_eq!(std::fs::metadata(&paths[1]).unwrap().modified().unwrap(), before[1]);

    let e = tokbench::ladder::make(&config, &["Q9_9".to_string()], 2, false, false).unwrap_err().to_string();
    assert!(e.contains("Q9_9") && e.contains("[ladder] types"), "{e}");
}
