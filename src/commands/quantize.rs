//! `tokbench quantize`: the config's quantization ladder with llama.cpp's quantize API.
use std::io::IsTerminal;

use anyhow::Result;
use tokbench_core::config::Config;
use tokbench_core::machine::default_threads;

use crate::cli::QuantizeArgs;

pub fn quantize(args: &QuantizeArgs) -> Result<()> {
    let config = Config::load(&args.config)?;
    let mut types = args.types.clone();
    if types.is_empty() {
        let ladder = config.ladder.as_ref().map(|l| l.types.clone()).unwrap_or_default();
        types = if args.needed {
            // The matrix's rungs, and the KL-divergence base when it is one.
            let kld_base = config.quality.as_ref().and_then(|q| q.kld_base.as_ref());
            let used: Vec<String> = config
                .run
                .models
                .iter()
                .chain(kld_base)
                .filter_map(|m| m.split_once('@'))
                .map(|(_, t)| t.to_string())
                .collect();
            ladder.into_iter().filter(|t| used.iter().any(|u| u.eq_ignore_ascii_case(t))).collect()
        } else {
            ladder
        };
    }
    let threads = args.threads.unwrap_or_else(default_threads);
    for path in crate::ladder::make(&config, &types, threads, args.force, std::io::stderr().is_terminal())? {
        let size = std::fs::metadata(&path)?.len();
        println!("{}\t{}", tokbench_record::metric::format_bytes(size as f64), path.display());
    }
    Ok(())
}
