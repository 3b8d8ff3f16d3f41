//! The quantization ladder through llama.cpp's own quantize API (what `llama-quantize` calls).
use std::ffi::CString;
use std::path::Path;

use anyhow::{anyhow, ensure, Context, Result};
use tokbench_core::gguf;

/// llama.cpp's file-type number for a quantization name such as `Q4_K_M` (the names `llama-quantize` accepts).
pub fn ftype_from_name(name: &str) -> Result<u32> {
    gguf::ftype_id(name).ok_or_else(|| {
        let known: Vec<&str> = (0..64).filter_map(gguf::ftype_name).collect();
        anyhow!("unknown quantization {name:?}: use one of {}", known.join(", "))
    })
}

/// Writes `output` as `input` quantized to `ftype`. `allow_requantize` lets an already-quantized input be
/// dequantized and re-quantized (how an F16 base is made from a quantized file when nothing better exists).
pub fn quantize(input: &Path, output: &Path, quantization: &str, threads: usize, allow_requantize: bool) -> Result<()> {
    let ftype = ftype_from_name(quantization)?;
    gguf::validate(input)?;
    crate::LlamaCpp::new()?; // llama.cpp's backend must be initialised before quantizing
    let c = |p: &Path| {
        CString::new(p.to_str().ok_or_else(|| anyhow!("{} is not valid UTF-8", p.display()))?)
            .context("path contains a NUL byte")
    };
    let (inp, out) = (c(input)?, c(output)?);
    // SAFETY: default params are plain data; the two paths outlive the call; nothing else is borrowed.
    let status = unsafe {
        let mut params = llama_cpp_sys_2::llama_model_quantize_default_params();
        params.nthread = i32::try_from(threads).unwrap_or(0);
        params.ftype = ftype as llama_cpp_sys_2::llama_ftype;
        params.allow_requantize = allow_requantize;
        llama_cpp_sys_2::llama_model_quantize(inp.as_ptr(), out.as_ptr(), &params)
    };
    ensure!(
        status == 0,
        "llama.cpp could not quantize {} to {quantization} (status {status}); set TOKBENCH_LLAMA_LOG=1 for its log",
        input.display()
    );
    Ok(())
}
