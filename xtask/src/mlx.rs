//! `cargo xtask prepare-mlx`: what a Linux build of the MLX backend needs, under `target/mlx/` (never in the repo).
//!
//! mlx-rs 0.33 pins MLX 0.32.2 through mlx-sys 0.7.0, whose build script knows only Apple platforms (it builds MLX
//! from git with Metal and links Apple frameworks). On Linux tokbench instead uses MLX's CPU backend from the PyPI
//! wheel `mlx-cpu==0.32.2` and builds mlx-sys from the registry's own 0.7.0 sources with a build script of ours
//! (`crates/mlx/linux-sys/`, see its README). This step:
//! 1. downloads the wheel with pip, checks its SHA-256 where it is pinned, unpacks it into `target/mlx/mlx-cpu-0.32.2`;
//! 2. copies mlx-sys 0.7.0 from cargo's registry into `target/mlx/mlx-sys-0.7.0` and puts our files in;
//! 3. writes `target/mlx/cargo-config.toml`: a `[patch.crates-io]` entry pointing mlx-sys at that copy and the
//!    wheel's location in `[env]`. Builds with the `mlx` feature pass it as `cargo --config <it>`.
//!
//! On macOS nothing is prepared: upstream mlx-sys builds MLX with Metal as it is.
//!
//! MLX is opt-in on Linux (`--mlx`): a llama.cpp-only build runs no pip and passes no patch.
//!
//! Passing the patch alters Cargo.lock's mlx-sys entry (path instead of registry). No cargo mechanism avoids it:
//! `[patch]` is recorded in the lock by design, `--locked` then refuses the build, source replacement requires a
//! full vendored registry whose checksums match the lock, and the lock file's path cannot be moved on stable cargo.
//! So [`status_keeping_lock`] runs each patched cargo command and puts the committed lock back afterwards, and it
//! does so also when the user presses Ctrl-C or the job is cancelled (SIGINT / SIGTERM reach cargo, which stops;
//! xtask itself stays to restore the lock). Any plain cargo command also re-resolves the lock by itself.
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, bail, ensure, Context, Result};
use tokbench_core::digest::sha256_file;

use crate::Engines;

pub const MLX_VERSION: &str = "0.32.2";
const MLX_SYS_VERSION: &str = "0.7.0";
/// SHA-256 of the wheels this was measured with, by file name; pip checks the index's own hash for any other.
const PINNED_WHEELS: &[(&str, &str)] = &[(
    "mlx_cpu-0.32.2-py3-none-manylinux_2_35_x86_64.whl",
    "fc5d31b90fc4f457b2f9614ed45651a567d22a6a11a03d114a90a4e10bdd8878",
)];

/// Our files for the Linux build of mlx-sys, put into the registry copy: (file in crates/mlx/linux-sys, place in
/// the copy).
const OVERLAY: &[(&str, &str)] =
    &[("build.rs", "build.rs"), ("linux_compat.h", "src/linux_compat.h"), ("linux_compat.rs", "src/linux_compat.rs")];
const LIB_RS_LINE: &str = "include!(\"linux_compat.rs\"); // tokbench's Linux build: see linux_compat.rs";

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// Prepares the Linux build and returns the cargo config to pass with `--config`; None on macOS.
pub fn prepare() -> Result<Option<PathBuf>> {
    if cfg!(target_os = "macos") {
        eprintln!("mlx: macOS builds upstream mlx-sys (MLX with Metal) as it is; nothing to prepare");
        return Ok(None);
    }
    ensure!(
        cfg!(target_os = "linux"),
        "the MLX backend builds on macOS (Metal) and on Linux (CPU, from the mlx-cpu wheel); not on this OS"
    );
    let dir = workspace_root().join("target/mlx");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let wheel = unpacked_wheel(&dir)?;
    let sys = patched_mlx_sys(&dir)?;
    let config = dir.join("cargo-config.toml");
    let text = format!(
        "# Written by `cargo xtask prepare-mlx`: the Linux build of tokbench's MLX backend.\n\
         [patch.crates-io]\nmlx-sys = {{ path = {sys:?} }}\n\n[env]\nTOKBENCH_MLX_CPU_ROOT = {wheel:?}\n",
        sys = sys.display().to_string(),
        wheel = wheel.display().to_string(),
    );
    write_if_changed(&config, text.as_bytes())?;
    Ok(Some(config))
}

/// `cargo SUBCOMMAND…`, with the MLX backend when `engines` asks for it: the `mlx` feature and, on Linux, the
/// prepared patch config (prepared once per xtask run). The config goes after the subcommand, where nextest forwards
/// it to cargo too.
pub fn cargo(engines: Engines, subcommand: &[&str]) -> Result<Command> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(subcommand).current_dir(workspace_root());
    if !engines.mlx() {
        return Ok(cmd);
    }
    static CONFIG: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let config = match CONFIG.get() {
        Some(config) => config.clone(),
        None => {
            let config = prepare()?;
            let _ = CONFIG.set(config.clone());
            config
        }
    };
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.args(["--features", "tokbench/mlx"]);
    Ok(cmd)
}

/// Runs `cmd` to its end and puts Cargo.lock back as it was, so that a Linux MLX build leaves the committed lock
/// (registry mlx-sys, which macOS builds) untouched — also when Ctrl-C or SIGTERM stops the run: the signal stops
/// the child, and xtask, whose handler only notes it, restores the lock before it exits.
pub fn status_keeping_lock(cmd: &mut Command) -> Result<ExitStatus> {
    status_restoring(cmd, &workspace_root().join("Cargo.lock"))
}

fn status_restoring(cmd: &mut Command, lock: &Path) -> Result<ExitStatus> {
    static SIGNALLED: AtomicBool = AtomicBool::new(false);
    static HANDLER: std::sync::Once = std::sync::Once::new();
    HANDLER.call_once(|| {
        // A handler, not SIG_IGN: handlers are reset on exec, so the child keeps the default disposition.
        let _ = ctrlc::set_handler(|| SIGNALLED.store(true, Ordering::SeqCst));
    });
    let before = std::fs::read(lock).with_context(|| format!("cannot read {}", lock.display()))?;
    let status = cmd.status().with_context(|| format!("cannot start {cmd:?}"));
    if std::fs::read(lock).ok().as_deref() != Some(&before[..]) {
        write_atomic(lock, &before)?;
    }
    // The handler runs on a thread of its own and may not have run yet: a child killed by a signal says it too.
    #[cfg(unix)]
    let child_signalled = status.as_ref().ok().and_then(std::os::unix::process::ExitStatusExt::signal).is_some();
    #[cfg(not(unix))]
    let child_signalled = false;
    ensure!(!SIGNALLED.load(Ordering::SeqCst) && !child_signalled, "interrupted; {} is as committed", lock.display());
    status
}

fn unpacked_wheel(dir: &Path) -> Result<PathBuf> {
    let dest = dir.join(format!("mlx-cpu-{MLX_VERSION}"));
    let done = dest.join(".tokbench-unpacked");
    if done.is_file() {
        return Ok(dest);
    }
    let download = dir.join("download");
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download)?;
    eprintln!("mlx: fetching PyPI mlx-cpu=={MLX_VERSION} (MLX's CPU backend) with pip");
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--only-binary", ":all:", "-d"])
        .arg(&download)
        .arg(format!("mlx-cpu=={MLX_VERSION}"))
        .status()
        .context("cannot run python3 -m pip: install Python 3 with pip")?;
    ensure!(
        status.success(),
        "pip could not download mlx-cpu=={MLX_VERSION} ({status}): the MLX backend needs that wheel on Linux (it has \
         builds for x86-64 and aarch64 with glibc 2.35 or newer)"
    );
    let wheel = std::fs::read_dir(&download)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| anyhow!("pip downloaded no wheel for mlx-cpu=={MLX_VERSION}"))?;
    let name = wheel.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    if let Some((_, expected)) = PINNED_WHEELS.iter().find(|(file, _)| *file == name) {
        let digest = sha256_file(&wheel, |_| {})?;
        ensure!(
            digest.eq_ignore_ascii_case(expected),
            "{} has sha256 {digest}, not the pinned {expected}: the download is corrupt or the package changed",
            wheel.display()
        );
    } else {
        eprintln!("mlx: {name} has no pinned sha256 here; pip checked the index's hash");
    }
    // Unpacked beside the destination, then renamed: an interrupted unpack never looks finished.
    let staging = dir.join(format!("mlx-cpu-{MLX_VERSION}.partial"));
    let _ = std::fs::remove_dir_all(&staging);
    let status = Command::new("python3").args(["-m", "zipfile", "-e"]).arg(&wheel).arg(&staging).status()?;
    ensure!(status.success(), "cannot unpack {}", wheel.display());
    ensure!(
        staging.join("mlx/lib/libmlx.so").is_file(),
        "{} has no mlx/lib/libmlx.so: not the mlx-cpu wheel tokbench expects",
        wheel.display()
    );
    std::fs::write(staging.join(".tokbench-unpacked"), &name)?;
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&staging, &dest)?;
    let _ = std::fs::remove_dir_all(&download);
    eprintln!("mlx: {name} unpacked into {}", dest.display());
    Ok(dest)
}

/// The registry's mlx-sys 0.7.0 sources with our Linux build files; rewritten only where they differ, so that an
/// unchanged copy does not rebuild mlx-c.
fn patched_mlx_sys(dir: &Path) -> Result<PathBuf> {
    let dest = dir.join(format!("mlx-sys-{MLX_SYS_VERSION}"));
    if !dest.join("src/mlx-c/CMakeLists.txt").is_file() {
        let source = registry_source()?;
        let staging = dir.join(format!("mlx-sys-{MLX_SYS_VERSION}.partial"));
        let _ = std::fs::remove_dir_all(&staging);
        let status = Command::new("cp").arg("-R").arg(&source).arg(&staging).status()?;
        ensure!(status.success(), "cannot copy {} to {}", source.display(), staging.display());
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&staging, &dest)?;
    }
    let overlay = workspace_root().join("crates/mlx/linux-sys");
    for (ours, place) in OVERLAY {
        let text = std::fs::read(overlay.join(ours))
            .with_context(|| format!("cannot read {}", overlay.join(ours).display()))?;
        write_if_changed(&dest.join(place), &text)?;
    }
    let lib_rs = dest.join("src/lib.rs");
    let lib = std::fs::read_to_string(&lib_rs)?;
    if !lib.contains(LIB_RS_LINE) {
        write_if_changed(&lib_rs, format!("{lib}\n{LIB_RS_LINE}\n").as_bytes())?;
    }
    Ok(dest)
}

/// mlx-sys 0.7.0 as cargo downloaded and checked it (against Cargo.lock's checksum) into `$CARGO_HOME/registry/src`.
fn registry_source() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The committed lock names mlx-sys from the registry; fetching makes sure its sources are unpacked.
    let status = Command::new(&cargo).arg("fetch").current_dir(workspace_root()).status()?;
    ensure!(status.success(), "cargo fetch failed ({status})");
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or_else(|| anyhow!("neither CARGO_HOME nor HOME is set"))?;
    let registry = home.join("registry/src");
    for index in std::fs::read_dir(&registry).with_context(|| format!("cannot read {}", registry.display()))? {
        let candidate = index?.path().join(format!("mlx-sys-{MLX_SYS_VERSION}"));
        if candidate.join("src/mlx-c/CMakeLists.txt").is_file() {
            return Ok(candidate);
        }
    }
    bail!("mlx-sys {MLX_SYS_VERSION} is not in {} after `cargo fetch`", registry.display())
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    write_atomic(path, bytes)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tokbench-tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move {} into place", tmp.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As a Ctrl-C in a terminal does: the child (cargo) has rewritten the lock when SIGINT reaches both it and
    /// xtask. The child dies of it; xtask survives, puts the lock back and reports the interruption.
    #[test]
    fn the_lock_is_put_back_when_the_run_is_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("Cargo.lock");
        std::fs::write(&lock, "committed\n").unwrap();
        let script = format!("echo patched > '{}'; kill -INT $PPID; kill -INT $$; sleep 5", lock.display());
        let e = status_restoring(Command::new("sh").args(["-c", &script]), &lock).unwrap_err();
        assert!(e.to_string().contains("interrupted"), "{e}");
        assert_eq!(std::fs::read_to_string(&lock).unwrap(), "committed\n");
    }

    /// A Linux MLX build run outside xtask (`cargo --config target/mlx/cargo-config.toml …`) leaves Cargo.lock pointing
    /// mlx-sys at the local copy; committed like that, every other machine's build would fail to find it. (The
    /// working tree's lock is patched while `cargo xtask test` runs, so the committed one is read.)
    #[test]
    fn the_committed_lock_takes_mlx_sys_from_the_registry() {
        let out = Command::new("git")
            .args(["show", "HEAD:Cargo.lock"])
            .current_dir(workspace_root())
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git show HEAD:Cargo.lock: {}", String::from_utf8_lossy(&out.stderr));
        let lock = String::from_utf8(out.stdout).unwrap();
        let entry = lock.split("[[package]]").find(|p| p.contains("name = \"mlx-sys\"")).expect("mlx-sys is locked");
        assert!(
            entry.contains("source = \"registry+") && entry.contains(&format!("version = \"{MLX_SYS_VERSION}\"")),
            "Cargo.lock's mlx-sys entry is not registry {MLX_SYS_VERSION}: run `cargo metadata` (without the MLX \
             config) to restore it before committing:\n{entry}"
        );
    }
}
