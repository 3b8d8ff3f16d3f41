//! A small GGUF header reader: what a model is (architecture, quantization, context length, tensor table) and
//! whether the file is whole, read without loading tensor data.
//!
//! Every file is treated as hostile: each length and count is checked against the bytes left in the file before
//! anything is allocated or skipped, arrays are skipped without being stored and their nesting is bounded, so a
//! corrupt header gives [`GgufError::Malformed`], never a huge allocation or a panic.
//!
//! Format: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>. All numbers are little-endian.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

pub mod write;

/// Longest string value, and longest metadata key or tensor name, accepted.
const MAX_STRING_LEN: u64 = 64 << 20;
const MAX_NAME_LEN: u64 = 65_535;
/// ggml's GGML_MAX_DIMS.
const MAX_DIMS: u32 = 4;
/// Arrays of arrays nested deeper than this are taken as a corrupt header.
const MAX_ARRAY_DEPTH: u32 = 4;
/// The fewest bytes a metadata pair (key length, type, one byte) and a tensor description can take.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
const MIN_TENSOR_BYTES: u64 = 8 + 4 + 4 + 8;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;

/// What a GGUF file says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufInfo {
    /// GGUF format version (2 or 3).
    pub version: u32,
    /// `general.architecture`, e.g. "llama".
    pub architecture: Option<String>,
    /// `general.name`.
    pub name: Option<String>,
    /// `general.file_type`: llama.cpp's `llama_ftype` number.
    pub file_type: Option<u32>,
    /// [`file_type`](Self::file_type) under llama.cpp's name for it, e.g. 3 -> "Q4_1", 15 -> "Q4_K_M".
    pub quantization: Option<String>,
    /// `{architecture}.context_length`: the context the model was trained for.
    pub context_length: Option<u64>,
    /// Where tensor data starts: the end of the header rounded up to `general.alignment` (default 32).
    pub data_offset: u64,
    /// The end of the last tensor's data (the end of the header when there are no tensors): the smallest size a
    /// whole file can have. `None` when a tensor's ggml type is unknown to this reader.
    pub expected_file_size: Option<u64>,
    /// Every metadata entry, in header order: its key, value type, where its value lies in the file and, for
    /// non-negative integers, the value.
    pub metadata: Vec<MetadataEntry>,
    /// The tensors, in header order.
    pub tensors: Vec<TensorInfo>,
}

/// One metadata entry. `value_span` is the byte range of the encoded value (after the type field), so a writer can
/// copy the value verbatim (how `tokbench synth` takes a tokenizer from another model).
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataEntry {
    pub key: String,
    pub value_type: u32,
    pub value_span: std::ops::Range<u64>,
    pub int: Option<u64>,
}

/// One tensor's description: its `ggml_type` number (0 = F32, 12 = Q4_K...), dimensions (row length first), the
/// offset of its data from [`GgufInfo::data_offset`], and the bytes its data takes as stored (`None` for a ggml type
/// this reader does not know).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub ggml_type: u32,
    pub dims: Vec<u64>,
    pub offset: u64,
    pub bytes: Option<u64>,
}

impl GgufInfo {
    /// Bytes of all tensor data as stored (one pass over the weights); `None` if a tensor's size is unknown.
    pub fn weight_bytes(&self) -> Option<u64> {
        self.tensors.iter().try_fold(0u64, |sum, t| sum.checked_add(t.bytes?))
    }

    /// A non-negative integer metadata value, e.g. `int("llama.block_count")`.
    pub fn int(&self, key: &str) -> Option<u64> {
        self.metadata.iter().find(|e| e.key == key).and_then(|e| e.int)
    }

    /// An integer of the model's architecture, e.g. `arch_int("attention.head_count_kv")` reads
    /// `llama.attention.head_count_kv` for a llama model.
    pub fn arch_int(&self, suffix: &str) -> Option<u64> {
        self.int(&format!("{}.{suffix}", self.architecture.as_deref()?))
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// K and V elements one token of context puts in the KV cache: layers × KV heads × (key + value head size),
    /// the head sizes from `attention.key_length` / `value_length` when the model sets them, else embedding /
    /// heads. `None` when the header lacks the shape.
    pub fn kv_elements_per_token(&self) -> Option<u64> {
        let layers = self.arch_int("block_count")?;
        let heads = self.arch_int("attention.head_count").filter(|&h| h > 0)?;
        let kv_heads = self.arch_int("attention.head_count_kv").unwrap_or(heads);
        let head_dim = self.arch_int("embedding_length")? / heads;
        let k = self.arch_int("attention.key_length").unwrap_or(head_dim);
        let v = self.arch_int("attention.value_length").unwrap_or(head_dim);
        Some(layers * kv_heads * (k + v))
    }

    /// What a decoded token reads (see `tokbench_record::roofline`): every tensor as stored, except that of the
    /// token-embedding table only one row is read when a separate `output.weight` exists.
    pub fn decode_traffic(&self) -> Option<tokbench_record::roofline::DecodeTraffic> {
        let mut weight_bytes = self.weight_bytes()?;
        if let (Some(embd), true) = (self.tensor("token_embd.weight"), self.tensor("output.weight").is_some()) {
            let rows = embd.dims.get(1).copied().unwrap_or(1).max(1);
            weight_bytes -= embd.bytes? - embd.bytes? / rows;
        }
        Some(tokbench_record::roofline::DecodeTraffic {
            weight_bytes,
            kv_elements_per_context_token: self.kv_elements_per_token()?,
        })
    }
}

/// Why a file could not be read as a GGUF model. Each message names the file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error(
        "could not read {}: {error}. Check the path given to --model (tokbench's own models are downloaded by \
         `cargo xtask fetch`).",
        .path.display()
    )]
    Io { path: PathBuf, error: io::Error },
    /// The file does not start with "GGUF"; `found_magic` holds its first (up to 4) bytes.
    #[error(
        "{} is not a GGUF file: it starts with \"{}\", not \"GGUF\". An empty file, an HTML page or a Git LFS \
         pointer means the download failed: download it again (`cargo xtask fetch` for tokbench's own models, `git \
         lfs pull` in a Git LFS repository); other formats convert with llama.cpp's convert_hf_to_gguf.py.",
        .path.display(), .found_magic.escape_ascii()
    )]
    NotGguf { path: PathBuf, found_magic: Vec<u8> },
    #[error(
        "{} is GGUF version {version} (0x{version:08x}), but tokbench reads versions 2 and 3 (little-endian): \
         download a current GGUF of the model (or update tokbench if the file is newer than it).",
        .path.display()
    )]
    UnsupportedVersion { path: PathBuf, version: u32 },
    /// The file is shorter than its header says (`expected` is the end of the last tensor's data).
    #[error(
        "{} is truncated: its header describes {} of header and tensor data but the file has only {}. The download \
         was probably interrupted: delete the file and download it again (for tokbench's own models, run \
         `cargo xtask fetch` again).",
        .path.display(), human_bytes(*.expected), human_bytes(*.actual)
    )]
    Truncated { path: PathBuf, expected: u64, actual: u64 },
    #[error(
        "{} has a malformed GGUF header: {what}. The file is corrupt or was cut short: delete it and download it \
         again (for tokbench's own models, run `cargo xtask fetch` again), or reconvert it with a current llama.cpp.",
        .path.display()
    )]
    Malformed { path: PathBuf, what: String },
}

/// `98362432` -> "98362432 bytes (93.8 MiB)".
fn human_bytes(n: u64) -> String {
    format!("{n} bytes ({:.1} MiB)", n as f64 / (1024.0 * 1024.0))
}

/// Reads a GGUF file's header. Does not check that the file is complete: use [`validate`] for that.
pub fn read_info(path: &Path) -> Result<GgufInfo, GgufError> {
    read_header(path).map(|(info, _)| info)
}

/// Reads the header and checks that the file is at least as long as the header says (when a tensor's ggml type is
/// unknown no verdict is possible and the file passes).
pub fn validate(path: &Path) -> Result<GgufInfo, GgufError> {
    let (info, actual) = read_header(path)?;
    match info.expected_file_size {
        Some(expected) if actual < expected => Err(GgufError::Truncated { path: path.into(), expected, actual }),
        _ => Ok(info),
    }
}

/// llama.cpp's `llama_ftype` names, indexed by number ("" where a number is unused or retired).
#[rustfmt::skip]
const FTYPE_NAMES: [&str; 42] = [
    "F32", "F16", "Q4_0", "Q4_1", "", "", "", "Q8_0", "Q5_0", "Q5_1",                          // 0..=9
    "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",     // 10..=18
    "IQ2_XXS", "IQ2_XS", "Q2_K_S", "IQ3_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ3_M",  // 19..=27
    "IQ2_S", "IQ2_M", "IQ4_XS", "IQ1_M", "BF16", "", "", "",                                  // 28..=35
    "TQ1_0", "TQ2_0", "MXFP4_MOE", "NVFP4", "Q1_0", "Q2_0",                                   // 36..=41
];

/// llama.cpp's name for a `general.file_type` number, e.g. 3 -> "Q4_1", 15 -> "Q4_K_M".
pub fn ftype_name(file_type: u32) -> Option<&'static str> {
    FTYPE_NAMES.get(file_type as usize).copied().filter(|name| !name.is_empty())
}

/// The inverse of [`ftype_name`], ignoring case: "q4_k_m" -> 15.
pub fn ftype_id(name: &str) -> Option<u32> {
    (0..FTYPE_NAMES.len() as u32).find(|&n| ftype_name(n).is_some_and(|known| known.eq_ignore_ascii_case(name)))
}

/// (elements per block, bytes per block) of a `ggml_type`, from ggml.c's `type_traits`; `None` if unknown.
#[rustfmt::skip]
pub fn ggml_type_size(ggml_type: u32) -> Option<(u64, u64)> {
    Some(match ggml_type {
        0 => (1, 4), 1 => (1, 2), 30 => (1, 2), 28 => (1, 8),                      // F32 F16 BF16 F64
        24 => (1, 1), 25 => (1, 2), 26 => (1, 4), 27 => (1, 8),                    // I8 I16 I32 I64
        2 => (32, 18), 3 => (32, 20), 6 => (32, 22), 7 => (32, 24),                // Q4_0 Q4_1 Q5_0 Q5_1
        8 => (32, 34), 9 => (32, 36), 20 => (32, 18), 39 => (32, 17),              // Q8_0 Q8_1 IQ4_NL MXFP4
        10 => (256, 84), 11 => (256, 110), 12 => (256, 144), 13 => (256, 176),     // Q2_K Q3_K Q4_K Q5_K
        14 => (256, 210), 15 => (256, 292), 34 => (256, 54), 35 => (256, 66),      // Q6_K Q8_K TQ1_0 TQ2_0
        16 => (256, 66), 17 => (256, 74), 18 => (256, 98), 19 => (256, 50),        // IQ2_XXS IQ2_XS IQ3_XXS IQ1_S
        21 => (256, 110), 22 => (256, 82), 23 => (256, 136), 29 => (256, 56),      // IQ3_S IQ2_S IQ4_XS IQ1_M
        40 => (64, 36), 41 => (128, 18), 42 => (64, 18),                           // NVFP4 Q1_0 Q2_0
        _ => return None,
    })
}

/// ggml's name for a `ggml_type` number, e.g. 8 -> "Q8_0", 14 -> "Q6_K".
#[rustfmt::skip]
pub fn ggml_type_name(ggml_type: u32) -> Option<&'static str> {
    const NAMES: [&str; 43] = [
        "F32", "F16", "Q4_0", "Q4_1", "", "", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
        "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16",
        "I32", "I64", "F64", "IQ1_M", "BF16", "", "", "", "TQ1_0", "TQ2_0", "", "", "", "MXFP4", "NVFP4", "Q1_0",
        "Q2_0",
    ];
    NAMES.get(ggml_type as usize).copied().filter(|name| !name.is_empty())
}

/// Size of a fixed-size value type (types 0..=12 are u8 i8 u16 i16 u32 i32 f32 bool string array u64 i64 f64);
/// `None` for strings, arrays and unknown types.
fn fixed_size(value_type: u32) -> Option<u64> {
    [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8].get(value_type as usize).copied().filter(|&n| n > 0)
}

/// A metadata value as kept: a non-negative integer, a string, or anything else (skipped).
enum Value {
    Int(u64),
    Str(String),
    Other,
}

/// A buffered reader that checks every read or skip against the bytes left in the file before making it.
struct Reader<'p> {
    inner: BufReader<File>,
    path: &'p Path,
    left: u64,
    /// What is being read, for error messages.
    context: String,
}

impl Reader<'_> {
    fn malformed(&self, what: String) -> GgufError {
        GgufError::Malformed { path: self.path.into(), what }
    }

    fn need(&self, n: u64) -> Result<(), GgufError> {
        match n.checked_sub(self.left) {
            Some(more @ 1..) => Err(self.malformed(format!("the file ends in {}, {more} bytes short", self.context))),
            _ => Ok(()),
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), GgufError> {
        self.need(buf.len() as u64)?;
        self.inner.read_exact(buf).map_err(|error| GgufError::Io { path: self.path.into(), error })?;
        self.left -= buf.len() as u64;
        Ok(())
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut buf = [0; N];
        self.fill(&mut buf).map(|()| buf)
    }
    fn u32(&mut self) -> Result<u32, GgufError> {
        self.bytes().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, GgufError> {
        self.bytes().map(u64::from_le_bytes)
    }

    fn skip(&mut self, n: u64) -> Result<(), GgufError> {
        self.need(n)?; // so n <= the file's length, which fits in an i64
        self.inner.seek_relative(n as i64).map_err(|error| GgufError::Io { path: self.path.into(), error })?;
        self.left -= n;
        Ok(())
    }

    /// A string's length, checked against `max` and the bytes left.
    fn string_len(&mut self, max: u64) -> Result<u64, GgufError> {
        let n = self.u64()?;
        if n > max {
            return Err(self.malformed(format!("{} is a string of {n} bytes, over the {max} allowed", self.context)));
        }
        self.need(n).map(|()| n)
    }

    /// A GGUF string (u64 length, bytes); invalid UTF-8 is replaced, as llama.cpp does not check it either.
    fn string(&mut self, max: u64) -> Result<String, GgufError> {
        let mut buf = vec![0; self.string_len(max)? as usize]; // bounded by max and the bytes left
        self.fill(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Reads a value of `value_type`, returning it if `keep` and it is an integer or a string; skips anything else.
    fn value(&mut self, value_type: u32, depth: u32, keep: bool) -> Result<Value, GgufError> {
        match (value_type, fixed_size(value_type)) {
            (T_STRING, _) if keep => return Ok(Value::Str(self.string(MAX_STRING_LEN)?)),
            (T_STRING, _) => self.string_len(MAX_STRING_LEN).and_then(|n| self.skip(n))?,
            (T_ARRAY, _) => self.skip_array(depth)?,
            // u8 i8 u16 i16 u32 i32 u64 i64; a negative signed one is not kept.
            (0..=5 | 10 | 11, Some(n)) if keep => {
                let mut b = [0; 8];
                self.fill(&mut b[..n as usize])?;
                if !matches!(value_type, 1 | 3 | 5 | 11) || b[n as usize - 1] < 0x80 {
                    return Ok(Value::Int(u64::from_le_bytes(b)));
                }
            }
            (_, Some(n)) => self.skip(n)?,
            (other, None) => return Err(self.malformed(format!("{} has unknown value type {other}", self.context))),
        }
        Ok(Value::Other)
    }

    /// Skips an array (element type, count, elements).
    fn skip_array(&mut self, depth: u32) -> Result<(), GgufError> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(self.malformed(format!("{} nests arrays more than {MAX_ARRAY_DEPTH} deep", self.context)));
        }
        let (element_type, len) = (self.u32()?, self.u64()?);
        let min_size = match element_type {
            T_STRING => 8,
            T_ARRAY => 4 + 8,
            t => fixed_size(t)
                .ok_or_else(|| self.malformed(format!("{} is an array of unknown type {t}", self.context)))?,
        };
        match len.checked_mul(min_size).filter(|&n| n <= self.left) {
            None => Err(self.malformed(format!("{} claims {len} elements, more than the file can hold", self.context))),
            Some(n) if fixed_size(element_type).is_some() => self.skip(n),
            Some(_) => (0..len).try_for_each(|_| self.value(element_type, depth + 1, false).map(drop)),
        }
    }

    fn tensor(&mut self, i: u64) -> Result<TensorInfo, GgufError> {
        self.context = format!("the name of tensor {i}");
        let name = self.string(MAX_NAME_LEN)?;
        self.context = format!("tensor \"{name}\"");
        let n_dims = self.u32()?;
        if n_dims > MAX_DIMS {
            return Err(self.malformed(format!("{} has {n_dims} dimensions, more than {MAX_DIMS}", self.context)));
        }
        let dims = (0..n_dims).map(|_| self.u64()).collect::<Result<Vec<_>, _>>()?;
        let (ggml_type, offset) = (self.u32()?, self.u64()?);
        let elements = dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d).filter(|&n| n <= i64::MAX as u64));
        let bytes = match (elements, ggml_type_size(ggml_type)) {
            (None, _) => return Err(self.malformed(format!("{}'s element count overflows", self.context))),
            (_, None) => None,
            (_, Some((block, _))) if dims.first().is_some_and(|row| row % block != 0) => {
                let what = format!("{}'s rows are not a multiple of its type's block of {block}", self.context);
                return Err(self.malformed(what));
            }
            (Some(n), Some((block, size))) => match (n / block).checked_mul(size) {
                Some(b) if offset.checked_add(b).is_some() => Some(b),
                _ => return Err(self.malformed(format!("{} ends beyond 2^64 bytes", self.context))),
            },
        };
        Ok(TensorInfo { name, ggml_type, dims, offset, bytes })
    }
}

/// Reads the header; returns it with the file's length.
fn read_header(path: &Path) -> Result<(GgufInfo, u64), GgufError> {
    let io_err = |error: io::Error| GgufError::Io { path: path.into(), error };
    let file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(io_err(io::Error::other("it is a directory")));
    }
    let len = meta.len();
    let inner = BufReader::with_capacity(64 << 10, file);
    let mut r = Reader { inner, path, left: len, context: "the magic number".into() };

    let mut magic = vec![0; len.min(4) as usize];
    r.fill(&mut magic)?;
    if magic != b"GGUF" {
        if !magic.is_empty() && b"GGUF".starts_with(&magic) {
            return Err(r.malformed(format!("the file is only {len} bytes long")));
        }
        return Err(GgufError::NotGguf { path: path.into(), found_magic: magic });
    }
    r.context = "the version number".into();
    let version = r.u32()?;
    if version != 2 && version != 3 {
        return Err(GgufError::UnsupportedVersion { path: path.into(), version });
    }
    r.context = "the tensor and metadata counts".into();
    let (tensor_count, kv_count) = (r.u64()?, r.u64()?);
    let least = kv_count.checked_mul(MIN_KV_BYTES).zip(tensor_count.checked_mul(MIN_TENSOR_BYTES));
    if least.and_then(|(a, b)| a.checked_add(b)).is_none_or(|n| n > r.left) {
        return Err(r.malformed(format!(
            "{kv_count} metadata entries and {tensor_count} tensors are too many for {len} bytes"
        )));
    }

    // Metadata: keep what GgufInfo reports, skip the rest.
    let (mut architecture, mut name, mut file_type, mut alignment) = (None, None, None, None);
    let mut context_lengths = Vec::new(); // (architecture, length)
    let mut metadata = Vec::with_capacity(kv_count.min(1024) as usize);
    for i in 0..kv_count {
        r.context = format!("the key of metadata entry {i}");
        let key = r.string(MAX_NAME_LEN)?;
        r.context = format!("metadata \"{key}\"");
        let value_type = r.u32()?;
        let general = ["general.architecture", "general.name", "general.file_type", "general.alignment"];
        // Strings only when named (some are megabytes); integers always (they are small and shape the model).
        let keep = general.contains(&key.as_str()) || matches!(value_type, 0..=5 | 10 | 11);
        let start = len - r.left;
        let value = r.value(value_type, 0, keep)?;
        let int = match value {
            Value::Int(n) => Some(n),
            _ => None,
        };
        metadata.push(MetadataEntry { key: key.clone(), value_type, value_span: start..len - r.left, int });
        match (key.as_str(), value) {
            ("general.architecture", Value::Str(s)) => architecture = Some(s),
            ("general.name", Value::Str(s)) => name = Some(s),
            ("general.file_type", Value::Int(n)) => file_type = u32::try_from(n).ok(),
            ("general.alignment", value) => alignment = Some(value),
            (k, Value::Int(n)) => context_lengths.extend(k.strip_suffix(".context_length").map(|a| (a.to_owned(), n))),
            _ => {}
        }
    }
    let alignment = match alignment {
        None => 32,
        Some(Value::Int(a)) if a.is_power_of_two() && a <= u32::MAX.into() => a,
        Some(_) => return Err(r.malformed("general.alignment is not a power of two that fits in a u32".into())),
    };

    let tensors = (0..tensor_count).map(|i| r.tensor(i)).collect::<Result<Vec<_>, _>>()?;
    let header_end = len - r.left;
    let data_offset = header_end.next_multiple_of(alignment); // header_end < 2^63 and alignment <= 2^32
    let data_end = tensors.iter().try_fold(0u64, |end, t| Some(end.max(t.offset + t.bytes?)));
    let expected_file_size = match data_end {
        _ if tensors.is_empty() => Some(header_end),
        Some(end) => Some(data_offset.checked_add(end).ok_or_else(|| r.malformed("tensors end beyond 2^64".into()))?),
        None => None,
    };
    let context_length = context_lengths.into_iter().find(|(a, _)| Some(a) == architecture.as_ref()).map(|(_, n)| n);
    let quantization = file_type.and_then(ftype_name).map(str::to_string);
    let info = GgufInfo {
        version,
        architecture,
        name,
        file_type,
        quantization,
        context_length,
        data_offset,
        expected_file_size,
        metadata,
        tensors,
    };
    Ok((info, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_u32(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(out: &mut Vec<u8>, v: u64) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    fn put_str(out: &mut Vec<u8>, s: &str) {
        put_u64(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    fn preamble(version: u32, tensor_count: u64, kv_count: u64) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        put_u32(&mut out, version);
        put_u64(&mut out, tensor_count);
        put_u64(&mut out, kv_count);
        out
    }
    /// A metadata pair: key, value type, encoded value.
    fn kv(out: &mut Vec<u8>, key: &str, value_type: u32, value: &[u8]) {
        put_str(out, key);
        put_u32(out, value_type);
        out.extend_from_slice(value);
    }
    fn put_tensor(out: &mut Vec<u8>, name: &str, dims: &[u64], ggml_type: u32, offset: u64) {
        put_str(out, name);
        put_u32(out, dims.len() as u32);
        dims.iter().for_each(|&d| put_u64(out, d));
        put_u32(out, ggml_type);
        put_u64(out, offset);
    }

    /// A small model: architecture, name, file type Q4_K_M, context length (as an i32), a skipped vocabulary and
    /// float, and two tensors: "b" 256 x Q4_K (one 144-byte block) at offset 512, "a" 64 x 2 F32 (512 bytes) at offset 0.
    /// Returns the header alone and the whole file (header, padding to 32, 656 bytes of data).
    fn model() -> (Vec<u8>, Vec<u8>) {
        let mut h = preamble(3, 2, 6);
        kv(&mut h, "general.architecture", T_STRING, &[5u64.to_le_bytes().as_slice(), b"llama"].concat());
        kv(&mut h, "general.name", T_STRING, &[4u64.to_le_bytes().as_slice(), b"Tiny"].concat());
        kv(&mut h, "general.file_type", 4, &15u32.to_le_bytes());
        let mut vocab = Vec::new();
        put_u32(&mut vocab, T_STRING);
        put_u64(&mut vocab, 100);
        (0..100).for_each(|i| put_str(&mut vocab, &format!("tok{i}")));
        kv(&mut h, "tokenizer.ggml.tokens", T_ARRAY, &vocab);
        kv(&mut h, "llama.rope.eps", 6, &1e-5f32.to_le_bytes());
        kv(&mut h, "llama.context_length", 5, &4096i32.to_le_bytes());
        put_tensor(&mut h, "b", &[256], 12, 512);
        put_tensor(&mut h, "a", &[64, 2], 0, 0);
        let mut file = h.clone();
        file.resize(h.len().next_multiple_of(32) + 656, 0xAB);
        (h, file)
    }

    fn write(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }
    fn check(bytes: &[u8]) -> Result<GgufInfo, GgufError> {
        let (_dir, path) = write("model.gguf", bytes);
        validate(&path)
    }
    fn expect_malformed(bytes: &[u8], needle: &str) {
        match check(bytes) {
            Err(e @ GgufError::Malformed { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(needle) && msg.contains("model.gguf"), "{msg:?} should contain {needle:?}");
            }
            other => panic!("expected Malformed ({needle}), got {other:?}"),
        }
    }

    #[test]
    fn reads_a_minimal_model() {
        let (header, file) = model();
        let info = check(&file).unwrap();
        assert_eq!(info.version, 3);
        assert_eq!(info.architecture.as_deref(), Some("llama"));
        assert_eq!(info.name.as_deref(), Some("Tiny"));
        assert_eq!((info.file_type, info.quantization.as_deref()), (Some(15), Some("Q4_K_M")));
        assert_eq!(info.context_length, Some(4096));
        assert_eq!(info.data_offset, header.len().next_multiple_of(32) as u64);
        assert_eq!(info.expected_file_size, Some(file.len() as u64));
        let b = TensorInfo { name: "b".into(), ggml_type: 12, dims: vec![256], offset: 512, bytes: Some(144) };
        let a = TensorInfo { name: "a".into(), ggml_type: 0, dims: vec![64, 2], offset: 0, bytes: Some(512) };
        assert_eq!(info.tensors, [b, a]);
        assert_eq!(info.weight_bytes(), Some(656));

        // A tensor of an unknown type has no size, so there is no truncation verdict (the file has no data at all).
        let mut b = preamble(2, 1, 0);
        put_tensor(&mut b, "odd", &[32], 200, 0);
        let info = check(&b).unwrap();
        assert_eq!(
            (info.version, info.tensors[0].bytes, info.weight_bytes(), info.expected_file_size),
            (2, None, None, None)
        );
    }

    #[test]
    fn truncated_file_names_the_sizes() {
        let (_, file) = model();
        let (_dir, path) = write("partial.gguf", &file[..file.len() - 48]);
        let expected = file.len() as u64;
        assert_eq!(read_info(&path).unwrap().expected_file_size, Some(expected));
        let err = validate(&path).unwrap_err();
        assert!(matches!(err, GgufError::Truncated { expected: e, actual, .. } if e == expected && actual == e - 48));
        let msg = err.to_string();
        assert!(msg.contains("partial.gguf is truncated"), "{msg}");
        assert!(msg.contains(&format!("{expected} bytes")) && msg.contains(&format!("{} bytes", expected - 48)));
        assert!(msg.contains("cargo xtask fetch"), "{msg}");
        // Extra bytes after the last tensor are fine.
        check(&[file.as_slice(), &[0; 100]].concat()).unwrap();
    }

    #[test]
    fn header_cut_anywhere_is_an_error_never_a_panic() {
        let (header, _) = model();
        let (_dir, path) = write("model.gguf", &header);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        for cut in (0..header.len()).rev() {
            file.set_len(cut as u64).unwrap(); // much faster than a new file per cut
            match validate(&path) {
                Err(GgufError::NotGguf { found_magic, .. }) if cut == 0 => assert!(found_magic.is_empty()),
                Err(GgufError::Malformed { .. }) if cut > 0 => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn wrong_magic_bad_version_and_missing_file() {
        let (_dir, path) = write("notes.txt", b"hello, this is not a model\n");
        let err = read_info(&path).unwrap_err();
        assert!(matches!(&err, GgufError::NotGguf { found_magic, .. } if found_magic == b"hell"), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("notes.txt") && msg.contains(r#"it starts with "hell""#), "{msg}");
        assert!(matches!(check(b""), Err(GgufError::NotGguf { found_magic, .. }) if found_magic.is_empty()));
        let missing = read_info(Path::new("/nonexistent/nope.gguf")).unwrap_err().to_string();
        assert!(missing.contains("could not read /nonexistent/nope.gguf: No such file"), "{missing}");
        assert!(read_info(&std::env::temp_dir()).unwrap_err().to_string().contains("it is a directory"));
        for (version, needle) in [(1, "version 1 "), (4, "reads versions 2 and 3"), (0x0300_0000, "0x03000000")] {
            let err = check(&preamble(version, 0, 0)).unwrap_err();
            assert!(matches!(err, GgufError::UnsupportedVersion { version: v, .. } if v == version), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains(needle) && msg.contains("model.gguf"), "{msg}");
        }
    }

    #[test]
    fn huge_counts_and_lengths_are_malformed() {
        expect_malformed(&preamble(3, 0, u64::MAX), "too many");
        expect_malformed(&preamble(3, u64::MAX / 2, 1), "too many");
        let one_kv = |value_type: u32, payload: &[u8]| {
            let mut b = preamble(3, 0, 1);
            kv(&mut b, "k", value_type, payload);
            b.extend_from_slice(&[0; 32]);
            b
        };
        expect_malformed(&one_kv(T_STRING, &u64::MAX.to_le_bytes()), "over the 67108864 allowed");
        expect_malformed(&one_kv(T_STRING, &1000u64.to_le_bytes()), "968 bytes short");
        for (element_type, count) in [(0, u64::MAX), (T_STRING, 1 << 60), (T_ARRAY, 10), (10, 1 << 61)] {
            let payload = [element_type.to_le_bytes().as_slice(), &count.to_le_bytes()].concat();
            expect_malformed(&one_kv(T_ARRAY, &payload), &format!("claims {count} elements"));
        }
        expect_malformed(&one_kv(13, &[]), "unknown value type 13");
        // Arrays nested 5 deep (each holding one array, the innermost empty).
        let mut nested = [0u32.to_le_bytes().as_slice(), &0u64.to_le_bytes()].concat();
        for _ in 0..4 {
            nested = [T_ARRAY.to_le_bytes().as_slice(), &1u64.to_le_bytes(), &nested].concat();
        }
        expect_malformed(&one_kv(T_ARRAY, &nested), "nests arrays more than 4 deep");
        let mut b = preamble(3, 0, 1);
        kv(&mut b, "general.alignment", 4, &48u32.to_le_bytes());
        expect_malformed(&b, "general.alignment is not a power of two");

        let tensor = |dims: &[u64], ggml_type: u32, offset: u64| {
            let mut b = preamble(3, 1, 0);
            put_tensor(&mut b, "t", dims, ggml_type, offset);
            b
        };
        expect_malformed(&tensor(&[1; 5], 0, 0), "5 dimensions");
        expect_malformed(&tensor(&[1 << 40, 1 << 40], 0, 0), "overflows");
        expect_malformed(&tensor(&[33], 2, 0), "not a multiple of its type's block of 32");
        expect_malformed(&tensor(&[32], 0, u64::MAX - 10), "beyond 2^64");
        expect_malformed(&tensor(&[1 << 62], 28, 0), "beyond 2^64"); // 2^62 F64s are 2^65 bytes
        let mut b = preamble(3, 1, 0);
        put_u64(&mut b, 1 << 20);
        b.extend_from_slice(&[0; 40]);
        expect_malformed(&b, "the name of tensor 0");
    }

    #[test]
    fn ftype_names_round_trip() {
        let known: Vec<u32> = (0..1100).filter(|&n| ftype_name(n).is_some()).collect();
        assert_eq!(known.len(), 36);
        assert!(known.iter().all(|&n| ftype_id(ftype_name(n).unwrap()) == Some(n)));
        assert_eq!((ftype_name(3), ftype_name(15), ftype_name(32)), (Some("Q4_1"), Some("Q4_K_M"), Some("BF16")));
        assert_eq!((ftype_id("q4_k_m"), ftype_id("IQ4_XS"), ftype_id("Q9_9")), (Some(15), Some(30), None));
        assert_eq!((ftype_name(4), ftype_name(33), ftype_name(1024)), (None, None, None));
    }
}
