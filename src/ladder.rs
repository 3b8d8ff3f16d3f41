//! `tokbench quantize`: the quantization ladder of the config, made with llama.cpp's own quantize API.
//! An F16/BF16/F32 base is quantized directly. A quantized base (here, the Q4_1 default model is all there is) is
//! first dequantized to F16 and every rung is made from that F16; each rung's results say so (`derived_from`).
//! Files are written beside their final name and renamed when complete, and skipped when already up to date.
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, ensure, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tokbench_core::config::{ladder_path, Config};
use tokbench_core::gguf;

const FULL_PRECISION: [&str; 3] = ["F16", "BF16", "F32"];

/// Makes the given rungs (names as in `[ladder] types`). Returns the paths, in the order asked.
pub fn make(
    config: &Config,
    types: &[String],
    threads: usize,
    force: bool,
    show_progress: bool,
) -> Result<Vec<PathBuf>> {
    let Some(ladder) = &config.ladder else { bail!("the config has no [ladder] section: nothing to quantize") };
    let base = config.model(&ladder.base).expect("validated by Config");
    let base_path = base.cached_path();
    ensure!(base_path.is_file(), "the ladder's base {} is missing: run `cargo xtask fetch`", base_path.display());
    let base_quant = gguf::validate(&base_path)?.quantization.unwrap_or_default();

    let bar = if show_progress { ProgressBar::new(types.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("{bar:24} {pos}/{len} {msg}").expect("valid template"));
    let source = if FULL_PRECISION.iter().any(|t| t.eq_ignore_ascii_case(&base_quant)) {
        base_path.clone()
    } else {
        let f16 = ladder_path(base, "F16");
        bar.set_message(format!("dequantizing {base_quant} → F16"));
        make_rung(&base_path, &f16, "F16", threads, true, force)?;
        f16
    };
    let mut out = Vec::new();
    for t in types {
        ensure!(
            ladder.types.iter().any(|l| l.eq_ignore_ascii_case(t)),
            "{t} is not in [ladder] types ({}): add it there first",
            ladder.types.join(", ")
        );
        let path = ladder_path(base, t);
        bar.set_message(format!("{t} ← {}", source.file_name().unwrap_or_default().to_string_lossy()));
        if path != source {
            make_rung(&source, &path, t, threads, false, force)?;
        }
        bar.inc(1);
        out.push(path);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Quantizes `source` to `output` unless `output` is a complete GGUF of that type newer than `source`.
fn make_rung(source: &Path, output: &Path, quant: &str, threads: usize, requantize: bool, force: bool) -> Result<()> {
    if !force && up_to_date(source, output, quant) {
        return Ok(());
    }
    let dir = output.parent().expect("ladder paths have a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let part = output.with_extension("gguf.part");
    #[cfg(feature = "llama-cpp")]
    tokbench_llama::quantize::quantize(source, &part, quant, threads, requantize)?;
    #[cfg(not(feature = "llama-cpp"))]
    bail!("quantizing uses llama.cpp: build tokbench with the llama-cpp feature ({threads} {requantize})");
    let made = gguf::validate(&part)?;
    ensure!(
        made.quantization.as_deref().is_some_and(|q| q.eq_ignore_ascii_case(quant)),
        "llama.cpp wrote {} as {:?}, not {quant}",
        part.display(),
        made.quantization
    );
    std::fs::rename(&part, output).with_context(|| format!("cannot move {} into place", part.display()))?;
    Ok(())
}

fn up_to_date(source: &Path, output: &Path, quant: &str) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
    output.is_file()
        && modified(output) >= modified(source)
        && gguf::validate(output).is_ok_and(|i| i.quantization.is_some_and(|q| q.eq_ignore_ascii_case(quant)))
}
