//! Against mlx-lm's own `mlx_lm.server` (pinned mlx-lm in the venv `cargo xtask test --mlx` makes, path in
//! $TOKBENCH_MLX_LM_VENV), started by tokbench from a `[[server]]` entry the way docs/backends.md documents it, on the
//! default model exported with `tokbench export-mlx`, beside tokbench's MLX backend on the same directory: the
//! "direct vs server" comparison for MLX.
#![cfg(feature = "mlx")]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use tokbench_record::metric::Metric;
use tokbench_record::results::RunResults;

fn mlx_lm_server() -> PathBuf {
    let venv = std::env::var_os("TOKBENCH_MLX_LM_VENV").map(PathBuf::from).expect(
        "$TOKBENCH_MLX_LM_VENV is not set: run the tests with `cargo xtask test --mlx`, which installs mlx-lm into a \
         venv and sets it",
    );
    let server = venv.join("bin/mlx_lm.server");
    assert!(server.is_file(), "{} does not exist", server.display());
    server
}

fn tokbench(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tokbench"));
    c.current_dir(dir);
    c
}

/// The documented `[[server]]` entry for mlx_lm.server (docs/backends.md), with the venv's program.
fn config(dir: &Path, model: &Path, eog: &[u64]) -> PathBuf {
    let bias: Vec<String> = eog.iter().map(|id| format!("\"{id}\" = -1000.0")).collect();
    let text = format!(
        r#"[run]
backends = ["mlx", "mlx-lm-server"]
models = [{model:?}]
prompts = ["short"]

[[server]]
name = "mlx-lm-server"
url = "http://127.0.0.1:{{port}}"
command = [{server:?}, "--model", "{{model}}", "--host", "127.0.0.1", "--port", "{{port}}",
           "--prompt-cache-size", "0", "--log-level", "WARNING"]
extra_body = {{ logit_bias = {{ {bias} }} }}
"#,
        model = model.display().to_string(),
        server = mlx_lm_server().display().to_string(),
        bias = bias.join(", "),
    );
    let path = dir.join("mlx-server.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn mlx_lm_server_launched_by_tokbench_beside_mlx_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("smollm2-mlx");
    // Off macOS in float32: mlx_lm.server computes in the stored type, and MLX's CPU device runs float16 in software
    // (~20× slower); `mlx` computes in float32 there too.
    let dtype: &[&str] = if cfg!(target_os = "macos") { &[] } else { &["--dtype", "float32"] };
    let export = tokbench(dir.path())
        .arg("export-mlx")
        .arg("-m")
        .arg(common::default_model())
        .arg("-o")
        .arg(&model)
        .args(dtype)
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let exported: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    let eog: Vec<u64> = exported["eos_token_id"].as_array().unwrap().iter().filter_map(|v| v.as_u64()).collect();
    assert!(!eog.is_empty());

    let config = config(dir.path(), &model, &eog);
    let out = tokbench(dir.path())
        .args(["run", "--quiet", "--no-quality", "--config"])
        .arg(&config)
        .args(["-n", "24", "--warmup", "1", "--runs", "3", "--bandwidth-probe", "off", "-o", "results.json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let results = RunResults::read(&dir.path().join("results.json")).unwrap();
    assert_eq!(results.benchmarks.len(), 2, "{:?}", results.failures);

    let direct = results.benchmarks.iter().find(|b| b.engine.backend == "mlx").unwrap();
    let server = results.benchmarks.iter().find(|b| b.engine.backend == "mlx-lm-server").unwrap();
    let endpoint = server.engine.server.as_ref().expect("a server benchmark says which server");
    assert!(endpoint.launched.as_deref().unwrap().contains("mlx_lm.server --model"), "{endpoint:?}");
    // Both are the same weights, identified alike.
    assert_eq!(server.model.sha256, direct.model.sha256);
    assert!(direct.model.quantization.starts_with("MLX-4bit-g32"), "{}", direct.model.quantization);
    assert_eq!(direct.prompt, server.prompt, "the same prompt, sized alike by both");
    for run in &server.runs {
        // No ignore_eos in mlx_lm.server: the end tokens biased away give exactly N tokens.
        assert_eq!(run.generated_tokens, 24);
        assert!(run.ttft_s > 0.0 && run.decode_tps.unwrap() > 0.0);
    }
    for m in [Metric::TtftS, Metric::DecodeTps, Metric::ItlP50S, Metric::E2eS] {
        assert!(server.summary.contains_key(&m), "{m:?}");
    }
    assert!(stdout.contains("server overhead: mlx-lm-server vs mlx in-process"), "{stdout}");
}
