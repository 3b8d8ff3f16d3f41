//! A GGUF (version 3) writer: metadata, the tensor table, then each tensor's data as a callback streams it, every
//! tensor aligned to `general.alignment` (32). The file appears whole or not at all: it is written to a temporary
//! file beside the target and renamed into place.
//!
//! Format: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>. All numbers are little-endian.
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{ensure, Context, Result};

use super::ggml_type_size;

const ALIGNMENT: u64 = 32;

/// A metadata value to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U32(u32),
    U64(u64),
    F32(f32),
    Bool(bool),
    Str(String),
    /// An already-encoded value of `value_type` (the bytes after the type field), e.g. copied from another file.
    Raw {
        value_type: u32,
        bytes: Vec<u8>,
    },
}

impl Value {
    fn value_type(&self) -> u32 {
        match self {
            Value::U32(_) => 4,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::Str(_) => 8,
            Value::U64(_) => 10,
            Value::Raw { value_type, .. } => *value_type,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Bool(v) => out.push(u8::from(*v)),
            Value::Str(s) => put_str(out, s),
            Value::Raw { bytes, .. } => out.extend_from_slice(bytes),
        }
    }
}

/// A tensor to write: name, dimensions (row length first, as ggml's `ne`) and `ggml_type`.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
}

impl TensorSpec {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Bytes of the tensor's data; an error when the type is unknown or a row is not whole blocks.
    pub fn bytes(&self) -> Result<u64> {
        let (block, size) = ggml_type_size(self.ggml_type)
            .with_context(|| format!("tensor {}: unknown ggml type {}", self.name, self.ggml_type))?;
        let row = self.dims.first().copied().unwrap_or(1);
        ensure!(
            row % block == 0,
            "tensor {}: rows of {row} elements are not whole blocks of {block} for ggml type {}",
            self.name,
            super::ggml_type_name(self.ggml_type).unwrap_or("?")
        );
        Ok(self.elements() / block * size)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Writes `path`. `fill(tensor, out)` must write exactly [`TensorSpec::bytes`] bytes of the tensor's data; it is
/// called once per tensor in order.
pub fn write(
    path: &Path,
    metadata: &[(String, Value)],
    tensors: &[TensorSpec],
    mut fill: impl FnMut(&TensorSpec, &mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    let mut header = b"GGUF".to_vec();
    header.extend_from_slice(&3u32.to_le_bytes());
    header.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    header.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        put_str(&mut header, key);
        header.extend_from_slice(&value.value_type().to_le_bytes());
        value.encode(&mut header);
    }
    let mut offset = 0u64;
    let mut sizes = Vec::with_capacity(tensors.len());
    for t in tensors {
        let bytes = t.bytes()?;
        put_str(&mut header, &t.name);
        header.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            header.extend_from_slice(&d.to_le_bytes());
        }
        header.extend_from_slice(&t.ggml_type.to_le_bytes());
        header.extend_from_slice(&offset.to_le_bytes());
        sizes.push(bytes);
        offset = (offset + bytes).next_multiple_of(ALIGNMENT);
    }
    header.resize((header.len() as u64).next_multiple_of(ALIGNMENT) as usize, 0);

    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("creating a file in {}", dir.display()))?;
    let mut out = CountingWriter { inner: BufWriter::with_capacity(1 << 20, tmp.as_file()), written: 0 };
    out.write_all(&header)?;
    for (t, &size) in tensors.iter().zip(&sizes) {
        let start = out.written;
        fill(t, &mut out).with_context(|| format!("writing tensor {}", t.name))?;
        let wrote = out.written - start;
        ensure!(wrote == size, "tensor {}: {wrote} bytes written, {size} expected", t.name);
        let pad = size.next_multiple_of(ALIGNMENT) - size;
        out.write_all(&vec![0; pad as usize])?;
    }
    out.inner.flush()?;
    drop(out);
    tmp.as_file().sync_all()?;
    tmp.persist(path).with_context(|| format!("renaming the new file to {}", path.display()))?;
    Ok(())
}

struct CountingWriter<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The encoded value of a metadata entry of another file, to write verbatim.
pub fn copy_value(path: &Path, entry: &super::MetadataEntry) -> Result<Value> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    file.seek(SeekFrom::Start(entry.value_span.start))?;
    let mut bytes = vec![0; (entry.value_span.end - entry.value_span.start) as usize];
    file.read_exact(&mut bytes).with_context(|| format!("reading {} from {}", entry.key, path.display()))?;
    Ok(Value::Raw { value_type: entry.value_type, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf;

    #[test]
    fn a_written_file_reads_back_whole_with_its_metadata_and_aligned_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        let metadata = vec![
            ("general.architecture".to_string(), Value::Str("llama".into())),
            ("general.file_type".to_string(), Value::U32(2)),
            ("llama.block_count".to_string(), Value::U32(3)),
            ("llama.rope.freq_base".to_string(), Value::F32(10000.0)),
            ("x.flag".to_string(), Value::Bool(true)),
        ];
        let tensors = vec![
            TensorSpec { name: "norm".into(), dims: vec![7], ggml_type: 0 },
            TensorSpec { name: "w".into(), dims: vec![64, 3], ggml_type: 2 },
        ];
        write(&path, &metadata, &tensors, |t, out| out.write_all(&vec![0xAB; t.bytes().unwrap() as usize])).unwrap();
        let info = gguf::validate(&path).unwrap();
        assert_eq!(info.architecture.as_deref(), Some("llama"));
        assert_eq!(info.quantization.as_deref(), Some("Q4_0"));
        assert_eq!(info.arch_int("block_count"), Some(3));
        assert_eq!(info.tensors[1].offset, 32, "28 bytes of F32 padded to 32");
        assert_eq!(info.tensors[1].bytes, Some(2 * 3 * 18));
        assert_eq!(info.data_offset % 32, 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), info.expected_file_size.unwrap().next_multiple_of(32));

        // A value copied verbatim from the file reads back the same.
        let entry = info.metadata.iter().find(|e| e.key == "llama.rope.freq_base").unwrap();
        let copy = dir.path().join("copy.gguf");
        let value = copy_value(&path, entry).unwrap();
        write(&copy, &[("y".into(), value)], &[], |_, _| Ok(())).unwrap();
        let copied = gguf::read_info(&copy).unwrap();
        let span = &copied.metadata[0].value_span;
        let bytes = std::fs::read(&copy).unwrap()[span.start as usize..span.end as usize].to_vec();
        assert_eq!(bytes, 10000f32.to_le_bytes());
    }

    #[test]
    fn a_fill_of_the_wrong_length_or_a_partial_block_is_refused_and_nothing_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        let t = vec![TensorSpec { name: "w".into(), dims: vec![64, 1], ggml_type: 2 }];
        let err = write(&path, &[], &t, |_, out| out.write_all(&[0; 5])).unwrap_err();
        assert!(err.to_string().contains("5 bytes written, 36 expected"), "{err}");
        assert!(!path.exists());
        let t = vec![TensorSpec { name: "w".into(), dims: vec![48, 1], ggml_type: 2 }];
        let err = write(&path, &[], &t, |_, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("not whole blocks of 32"), "{err}");
    }
}
