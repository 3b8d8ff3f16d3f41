//! SHA-256 of model files: what identifies a model in results and what `fetch` verifies.
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// Streams the file in 1 MiB blocks (models are gigabytes); `progress` gets the bytes hashed so far.
pub fn sha256_file(path: &Path, progress: impl FnMut(u64)) -> Result<String> {
    sha256_files(&[path], progress)
}

/// One digest of several files read one after the other, in the order given: a model stored in shards (an MLX
/// directory's `model-0000N-of-0000M.safetensors`, in name order).
pub fn sha256_files<P: AsRef<Path>>(paths: &[P], mut progress: impl FnMut(u64)) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    for path in paths {
        let path = path.as_ref();
        let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        loop {
            let n = file.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            done += n as u64;
            progress(done);
        }
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        // FIPS 180-2 test vector for "abc".
        assert_eq!(
            super::sha256_file(&p, |_| {}).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
