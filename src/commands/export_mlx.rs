//! `tokbench export-mlx`: a GGUF as an MLX-format directory (see `tokbench_mlx::export`), for mlx-lm and for
//! tokbench's own MLX backend on the layout MLX users download.
use anyhow::Result;

use crate::cli::ExportMlxArgs;
use crate::options;

pub fn export_mlx(args: &ExportMlxArgs) -> Result<()> {
    let config_file = args.config.is_file().then_some(args.config.as_path());
    let (config, _, _) = options::load_config(config_file)?;
    let gguf = options::resolve_model(&config, &args.model)?.path;
    tokbench_core::gguf::validate(&gguf)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = gguf.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
        tokbench_core::config::models_dir().join("mlx").join(stem)
    });
    export(&gguf, &out, args.force, args.dtype.as_deref())
}

#[cfg(feature = "mlx")]
fn export(gguf: &std::path::Path, out: &std::path::Path, force: bool, dtype: Option<&str>) -> Result<()> {
    let dtype = dtype.map(tokbench_mlx::export::parse_dtype).transpose()?;
    let made = tokbench_mlx::export::export_gguf(gguf, out, force, dtype)?;
    let quantization: Vec<String> =
        made.quantization.iter().map(|(bits, group)| format!("{bits}-bit/g{group}")).collect();
    println!(
        "{}: {} tensors, {:.1} MB of weights, {}{}",
        made.dir.display(),
        made.tensors,
        made.weight_bytes as f64 / 1e6,
        made.dtype,
        if quantization.is_empty() { String::new() } else { format!(", quantized {}", quantization.join(" + ")) }
    );
    Ok(())
}

#[cfg(not(feature = "mlx"))]
fn export(_: &std::path::Path, _: &std::path::Path, _: bool, _: Option<&str>) -> Result<()> {
    anyhow::bail!("export-mlx needs the MLX backend, which this binary was built without: {}", crate::registry::MLX_HOW)
}
