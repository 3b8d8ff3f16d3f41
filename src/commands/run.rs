//! `tokbench run`: the matrix through the engine, then the results written atomically and printed.
use std::path::PathBuf;

use anyhow::{bail, ensure, Result};
use tokbench_core::{export, interrupt};
use tokbench_record::results::{write_atomic, RunResults};

use crate::cli::RunArgs;
use crate::{options, runner};

/// Runs and writes results; returns them. On a failure mid-way, what was measured is written before the error; on
/// SIGINT or SIGTERM too, by the signal watcher (`tokbench_core::interrupt`), which then exits with 130 or 143.
pub fn run(args: &RunArgs) -> Result<RunResults> {
    let matrix = options::matrix(args)?;
    let mut results = runner::new_results();
    results.matrix = Some(options::stamp(args)?);
    if args.bandwidth_probe != "off" {
        let fresh = args.bandwidth_probe == "fresh";
        results.machine.bandwidth = Some(tokbench_core::bandwidth::for_this_boot(&results.machine, fresh));
    }
    // The GPU's ceiling, for models offloaded to one (measured each run: it takes under a second).
    let offloads = matrix.load.n_gpu_layers > 0 && matrix.backends.iter().any(|b| b == "llama.cpp");
    if offloads && args.bandwidth_probe != "off" {
        results.machine.gpu_bandwidth = gpu_bandwidth();
    }
    interrupt::install()?;
    let checkpoint = runner::Checkpoint::default();
    let _save_on_signal = {
        let (checkpoint, args, empty) = (checkpoint.clone(), args.clone(), results.clone());
        interrupt::on_signal("saving the results measured so far", move |signal| {
            let Some(saved) = checkpoint.interrupted(signal, &empty) else {
                return eprintln!("nothing was measured yet: no results file");
            };
            match write_outputs(&args, &saved) {
                Ok(path) => eprintln!(
                    "saved {} finished benchmark(s) and {} failed or interrupted in {}",
                    saved.benchmarks.len(),
                    saved.failures.len(),
                    path.display()
                ),
                Err(e) => eprintln!("could not save the results: {e:#}"),
            }
        })
    };
    let outcome = runner::run(&matrix, &mut results, runner::Progress::for_stderr(args.quiet), &checkpoint);
    if interrupt::interrupted() {
        // The watcher is writing the results and will exit with 128 + the signal; don't race it with a write.
        interrupt::wait_for_cleanups(std::time::Duration::from_secs(30));
    }
    let measured_something =
        !results.benchmarks.is_empty() || results.failures.iter().any(|f| !f.completed_runs.is_empty());
    if !measured_something {
        // Nothing measured: no results file, just the errors.
        let outcome = outcome.map(|_| ());
        outcome?;
        ensure!(results.failures.is_empty(), "{}", failure_list(&results));
        return Ok(results);
    }
    let written = write_outputs(args, &results)?;
    if let Err(e) = outcome {
        return Err(e.context(format!(
            "stopped after {} of {} benchmarks; those are saved in {}",
            results.benchmarks.len(),
            matrix.len(),
            written.display()
        )));
    }
    print!("{}", export::markdown::table(&results));
    print!("{}", export::overhead::table(&results));
    print!("{}", tokbench_core::sweep::table(&results.concurrency));
    for b in &results.benchmarks {
        for w in &b.warnings {
            eprintln!("warning: {}: {w}", b.id);
        }
    }
    eprintln!("results: {}", written.display());
    if !results.failures.is_empty() {
        bail!(
            "{} (the other {} are measured and saved in {})",
            failure_list(&results),
            results.benchmarks.len(),
            written.display()
        );
    }
    Ok(results)
}

/// "N benchmark(s) failed:" and one line per failure.
fn failure_list(results: &RunResults) -> String {
    let list: Vec<String> = results.failures.iter().map(|f| format!("  {}: {}", f.id, f.error)).collect();
    format!("{} benchmark(s) failed:\n{}", results.failures.len(), list.join("\n"))
}

fn write_outputs(args: &RunArgs, results: &RunResults) -> Result<PathBuf> {
    let path = match &args.output {
        Some(p) => p.clone(),
        None => {
            let stamp = results.created_at.replace(':', "-");
            let path = PathBuf::from("target/tokbench/runs").join(format!("{stamp}.json"));
            results.write(&PathBuf::from("target/tokbench/latest.json"))?;
            path
        }
    };
    results.write(&path)?;
    if let Some(csv_path) = &args.csv {
        let mut buf = Vec::new();
        export::csv::write(results, &mut buf)?;
        write_atomic(csv_path, &buf)?;
    }
    if let Some(md_path) = &args.markdown {
        write_atomic(md_path, export::markdown::table(results).as_bytes())?;
    }
    Ok(path)
}

/// The first GPU's copy bandwidth through llama.cpp's own device buffers (the roofline's ceiling for offloaded
/// models); `None` where llama.cpp has no GPU device. Not on macOS: Apple's GPU shares the host's memory, whose
/// probe and published figure already are the ceiling.
pub(crate) fn gpu_bandwidth() -> Option<tokbench_record::machine::GpuBandwidth> {
    #[cfg(all(feature = "llama-cpp", not(target_os = "macos")))]
    {
        use tokbench_llama::device_bandwidth::{copy_bandwidth, DeviceKind};
        // 1 GiB buffers (a copy of ~0.7 ms at 3 TB/s), best of 10: under a second in all.
        match copy_bandwidth(DeviceKind::Gpu, 1 << 30, 10) {
            Ok(devices) => devices.into_iter().next().map(|d| tokbench_record::machine::GpuBandwidth {
                device: d.device,
                copy_bytes_per_s: d.bytes_per_s as u64,
                buffer_bytes: d.buffer_bytes,
                passes: d.passes,
            }),
            Err(e) => {
                eprintln!("warning: the GPU's bandwidth was not measured ({e:#}): its roofline has no ceiling");
                None
            }
        }
    }
    #[cfg(not(all(feature = "llama-cpp", not(target_os = "macos"))))]
    None
}
