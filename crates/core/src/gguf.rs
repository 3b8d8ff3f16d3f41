//! A small GGUF header reader.
//!
//! tokbench reads a model's GGUF header for two reasons: to say what the model is (architecture, quantization,
//! context length) in every result, and to reject a file that llama.cpp would choke on (not a GGUF file, an old
//! version, a download cut short) with an error that names the file and the fix, before any backend loads it.
//!
//! Only the header is read: the magic, the metadata key/value pairs and the tensor descriptions. Tensor data is never
//! read; [`validate`] compares the file's size with the end of the last tensor that the header describes.
//!
//! The reader treats every file as hostile: each length and count is checked against the bytes left in the file
//! before anything is allocated or skipped, so a corrupt header gives [`GgufError::Malformed`], never a huge
//! allocation or a panic. Arrays longer than [`MAX_STORED_ARRAY_LEN`] elements (tokenizer vocabularies, merges) are
//! skipped and kept only as a length.
//!
//! Format reference: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>. All numbers are little-endian.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// The first four bytes of every GGUF file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// Tensor data starts at the end of the header rounded up to this many bytes unless `general.alignment` says otherwise.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Arrays with more elements than this are not stored in [`GgufInfo::metadata`]: only their element type and length
/// are, so that tokenizer vocabularies (tens of thousands of strings) stay out of memory and out of result files.
pub const MAX_STORED_ARRAY_LEN: u64 = 64;

/// Longest string value accepted; anything longer is taken as a corrupt header.
const MAX_STRING_LEN: u64 = 64 << 20;
/// Longest metadata key accepted (the GGUF spec limits keys to 65535 bytes).
const MAX_KEY_LEN: u64 = 65_535;
/// Longest tensor name accepted (ggml itself allows 63 bytes; this is only a guard against corrupt lengths).
const MAX_TENSOR_NAME_LEN: u64 = 65_535;
/// ggml's GGML_MAX_DIMS: llama.cpp rejects tensors with more dimensions.
const MAX_DIMS: u32 = 4;
/// Arrays of arrays are allowed by the spec; deeper nesting than this is taken as a corrupt header.
const MAX_ARRAY_DEPTH: u32 = 4;

/// The fewest bytes one metadata key/value pair can take: key length (8), value type (4), a one-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// The fewest bytes one tensor description can take: name length (8), n_dims (4), ggml type (4), offset (8).
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// What a GGUF file says about itself, read from its header without loading tensors.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GgufInfo {
    /// GGUF format version (2 or 3).
    pub version: u32,
    /// Number of tensors the header describes.
    pub tensor_count: u64,
    /// Every metadata key/value pair. Arrays longer than [`MAX_STORED_ARRAY_LEN`] elements are kept as
    /// `MetaValue::Array { len, values: [] }` only.
    pub metadata: BTreeMap<String, MetaValue>,
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
    /// Byte offset where tensor data starts: the end of the header rounded up to `general.alignment` (default 32).
    pub data_offset: u64,
    /// The end of the last tensor's data, i.e. the smallest size a complete file can have. `None` when a tensor has a
    /// ggml type this reader does not know the size of (then no truncation verdict is possible). For a file with no
    /// tensors it is the end of the header.
    pub expected_file_size: Option<u64>,
}

/// One metadata value.
///
/// Integers are stored by value, not by their GGUF width: every non-negative integer (whatever its GGUF type) is
/// `U64` and only negative ones are `I64`; `f32` values become the `F64` nearest to their shortest decimal form
/// (1e-5f32 reads as 1e-5, not 9.99999974e-6). This keeps the untagged JSON form plain (`"llama.context_length":
/// 8192`) and makes it round-trip exactly. An array's `element_type` still names the GGUF element type ("u32",
/// "string", ...). Non-finite floats are written to JSON as `null` (JSON has no NaN) and read back as NaN.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum MetaValue {
    U64(u64),
    I64(i64),
    F64(#[serde(deserialize_with = "f64_or_nan")] f64),
    Bool(bool),
    Str(String),
    Array {
        /// GGUF element type: "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64",
        /// "i64" or "f64".
        element_type: String,
        /// Number of elements in the file.
        len: u64,
        /// The elements, or nothing when `len` > [`MAX_STORED_ARRAY_LEN`].
        values: Vec<MetaValue>,
    },
}

impl MetaValue {
    /// The value as an unsigned integer, if it is one.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            MetaValue::U64(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

fn f64_or_nan<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value: Option<f64> = serde::Deserialize::deserialize(deserializer)?;
    Ok(value.unwrap_or(f64::NAN))
}

/// Why a file could not be read as a GGUF model. Every message names the file and says what to do about it; the
/// messages are complete on their own (the I/O error's text is part of [`GgufError::Io`]'s message), so print them
/// with `{}`.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or read.
    #[error("{}", io_message(.path, .error))]
    Io { path: PathBuf, error: io::Error },
    /// The file does not start with "GGUF". `found_magic` holds its first bytes (fewer than 4 if the file is shorter).
    #[error("{}", not_gguf_message(.path, .found_magic))]
    NotGguf { path: PathBuf, found_magic: Vec<u8> },
    /// A GGUF version other than 2 or 3.
    #[error("{}", version_message(.path, *.version))]
    UnsupportedVersion { path: PathBuf, version: u32 },
    /// The file is shorter than its header says (`expected` is the end of the last tensor's data).
    #[error(
        "{} is truncated: its header describes {} of header and tensor data but the file has only {}: {} are missing. \
         The download was probably interrupted: delete the file and download it again (for tokbench's own models, \
         run `cargo xtask fetch` again).",
        .path.display(), human_bytes(*.expected), human_bytes(*.actual), human_bytes(.expected.saturating_sub(*.actual))
    )]
    Truncated { path: PathBuf, expected: u64, actual: u64 },
    /// The header is inconsistent or ends early; `what` says where.
    #[error(
        "{} has a malformed GGUF header: {what}. The file is corrupt or was cut short: delete it and download it \
         again (for tokbench's own models, run `cargo xtask fetch` again), or reconvert the model with a current \
         llama.cpp.",
        .path.display()
    )]
    Malformed { path: PathBuf, what: String },
}

fn io_message(path: &Path, error: &io::Error) -> String {
    let p = path.display();
    match error.kind() {
        io::ErrorKind::NotFound => format!(
            "{p} does not exist. Check the path given to --model (tokbench's own test models are downloaded by \
             `cargo xtask fetch`)."
        ),
        io::ErrorKind::PermissionDenied => {
            format!(
                "cannot read {p}: permission denied. Make the file readable by this user, or copy it somewhere \
                 that is."
            )
        }
        io::ErrorKind::IsADirectory => {
            format!("{p} is a directory, not a GGUF file. Point --model at the .gguf file inside it.")
        }
        _ => format!("could not read {p}: {error}. Check that the file exists, is readable and is a regular file."),
    }
}

fn not_gguf_message(path: &Path, found: &[u8]) -> String {
    let p = path.display();
    if found.is_empty() {
        return format!(
            "{p} is empty (0 bytes), so it is not a GGUF model. The download probably failed: delete it and download \
             it again (for tokbench's own models, run `cargo xtask fetch` again), or point --model at a .gguf file."
        );
    }
    let hint = if found.starts_with(b"PK\x03\x04") {
        " It is a zip archive (a Python wheel, or a PyTorch .pt/.bin checkpoint): extract the .gguf file from it, or \
         convert the model with llama.cpp's convert_hf_to_gguf.py."
    } else if found.starts_with(b"<") {
        " It looks like an HTML or XML page, probably an error page saved in place of the model: check the download \
         URL and download it again."
    } else if found.starts_with(b"vers") {
        " It looks like a Git LFS pointer file: run `git lfs pull` in the model's repository to fetch the real file."
    } else if matches!(found, b"lmgg" | b"fmgg" | b"tjgg" | b"algg") {
        " It is a file in the old GGML/GGJT format, which llama.cpp no longer reads: convert the original model again \
         with llama.cpp's convert_hf_to_gguf.py."
    } else {
        " Point --model at a .gguf file, or convert the model with llama.cpp's convert_hf_to_gguf.py."
    };
    format!(
        "{p} is not a GGUF file (it starts with \"{}\", a GGUF file starts with \"GGUF\").{hint}",
        found.escape_ascii()
    )
}

fn version_message(path: &Path, version: u32) -> String {
    let p = path.display();
    if version == 1 {
        format!(
            "{p} is a GGUF version 1 file (from 2023), which tokbench and current llama.cpp do not read. Convert the \
             original model again with a current llama.cpp's convert_hf_to_gguf.py, or download a newer GGUF."
        )
    } else if matches!(version.swap_bytes(), 2 | 3) {
        format!(
            "{p} is a big-endian GGUF file (version {} in big-endian byte order), which tokbench does not read. Use \
             the little-endian GGUF of the model, or convert it again without --bigendian.",
            version.swap_bytes()
        )
    } else {
        format!(
            "{p} says it is GGUF version {version}, but tokbench reads versions 2 and 3 only. If the file is new, \
             update tokbench; otherwise it is corrupt: download it again."
        )
    }
}

/// `98362432` -> "98362432 bytes (93.8 MiB)".
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut s = format!("{n} bytes");
    if n >= 1024 {
        let mut v = n as f64 / 1024.0;
        let mut unit = 0;
        while v >= 1024.0 && unit + 1 < UNITS.len() {
            v /= 1024.0;
            unit += 1;
        }
        let _ = write!(s, " ({v:.1} {})", UNITS[unit]);
    }
    s
}

/// Reads a GGUF file's header: what the model is, where its tensor data starts and where it should end.
///
/// Reads only the header (through a buffered reader), never tensor data. Does not check that the file is complete:
/// use [`validate`] for that.
pub fn read_info(path: &Path) -> Result<GgufInfo, GgufError> {
    read_header(path).map(|(info, _)| info)
}

/// Reads the header and checks that the file is complete (file size >= expected_file_size). Same errors as read_info
/// plus Truncated.
///
/// When a tensor's ggml type is unknown to this reader, `expected_file_size` is `None` and no truncation verdict is
/// given: the file passes.
pub fn validate(path: &Path) -> Result<GgufInfo, GgufError> {
    let (info, file_len) = read_header(path)?;
    if let Some(expected) = info.expected_file_size {
        if file_len < expected {
            return Err(GgufError::Truncated { path: path.to_path_buf(), expected, actual: file_len });
        }
    }
    Ok(info)
}

/// The inverse of [`ftype_name`], ignoring case: `Q4_K_M` → 15.
pub fn ftype_id(name: &str) -> Option<u32> {
    (0..64).find(|&n| ftype_name(n).is_some_and(|known| known.eq_ignore_ascii_case(name)))
}

/// llama.cpp's name for a `general.file_type` (`llama_ftype`) number, e.g. 3 -> "Q4_1", 15 -> "Q4_K_M".
pub fn ftype_name(file_type: u32) -> Option<&'static str> {
    Some(match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

/// (elements per block, bytes per block) of a ggml tensor type, or `None` for a type this reader does not know.
fn ggml_type_size(ggml_type: u32) -> Option<(u64, u64)> {
    Some(match ggml_type {
        0 => (1, 4),      // F32
        1 => (1, 2),      // F16
        2 => (32, 18),    // Q4_0
        3 => (32, 20),    // Q4_1
        6 => (32, 22),    // Q5_0
        7 => (32, 24),    // Q5_1
        8 => (32, 34),    // Q8_0
        9 => (32, 36),    // Q8_1
        10 => (256, 84),  // Q2_K
        11 => (256, 110), // Q3_K
        12 => (256, 144), // Q4_K
        13 => (256, 176), // Q5_K
        14 => (256, 210), // Q6_K
        15 => (256, 292), // Q8_K
        16 => (256, 66),  // IQ2_XXS
        17 => (256, 74),  // IQ2_XS
        18 => (256, 98),  // IQ3_XXS
        19 => (256, 50),  // IQ1_S
        20 => (32, 18),   // IQ4_NL
        21 => (256, 110), // IQ3_S
        22 => (256, 82),  // IQ2_S
        23 => (256, 136), // IQ4_XS
        24 => (1, 1),     // I8
        25 => (1, 2),     // I16
        26 => (1, 4),     // I32
        27 => (1, 8),     // I64
        28 => (1, 8),     // F64
        29 => (256, 56),  // IQ1_M
        30 => (1, 2),     // BF16
        34 => (256, 54),  // TQ1_0
        35 => (256, 66),  // TQ2_0
        39 => (32, 17),   // MXFP4
        _ => return None,
    })
}

// GGUF metadata value types.
const T_U8: u32 = 0;
const T_I8: u32 = 1;
const T_U16: u32 = 2;
const T_I16: u32 = 3;
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;
const T_I64: u32 = 11;
const T_F64: u32 = 12;

fn value_type_name(value_type: u32) -> Option<&'static str> {
    Some(match value_type {
        T_U8 => "u8",
        T_I8 => "i8",
        T_U16 => "u16",
        T_I16 => "i16",
        T_U32 => "u32",
        T_I32 => "i32",
        T_F32 => "f32",
        T_BOOL => "bool",
        T_STRING => "string",
        T_ARRAY => "array",
        T_U64 => "u64",
        T_I64 => "i64",
        T_F64 => "f64",
        _ => return None,
    })
}

/// Size in bytes of a fixed-size value type; `None` for strings and arrays.
fn fixed_size(value_type: u32) -> Option<u64> {
    match value_type {
        T_U8 | T_I8 | T_BOOL => Some(1),
        T_U16 | T_I16 => Some(2),
        T_U32 | T_I32 | T_F32 => Some(4),
        T_U64 | T_I64 | T_F64 => Some(8),
        _ => None,
    }
}

/// The fewest bytes one value of this type can take (a string is at least its 8-byte length, an array at least its
/// element type and count).
fn min_size(value_type: u32) -> u64 {
    match value_type {
        T_STRING => 8,
        T_ARRAY => 4 + 8,
        other => fixed_size(other).unwrap_or(1),
    }
}

fn int_value(v: i64) -> MetaValue {
    match u64::try_from(v) {
        Ok(u) => MetaValue::U64(u),
        Err(_) => MetaValue::I64(v),
    }
}

/// The f64 nearest to the shortest decimal that reads back as this f32 (so 1e-5f32 becomes 1e-5, not 9.99999974e-6).
fn f32_value(v: f32) -> MetaValue {
    MetaValue::F64(v.to_string().parse::<f64>().unwrap_or(f64::from(v)))
}

/// A buffered reader that knows its position and the file's length, so every read is checked against the bytes left
/// before it is made, and errors can say where the header ended.
struct HeaderReader<'p> {
    inner: BufReader<File>,
    path: &'p Path,
    pos: u64,
    len: u64,
    /// What is being read, for error messages ("the value of metadata \"general.name\"").
    context: String,
}

impl HeaderReader<'_> {
    fn malformed(&self, what: impl Into<String>) -> GgufError {
        GgufError::Malformed { path: self.path.to_path_buf(), what: what.into() }
    }

    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Fails with Malformed unless `n` more bytes are left in the file.
    fn need(&self, n: u64) -> Result<(), GgufError> {
        if n > self.remaining() {
            return Err(self.malformed(format!(
                "the file ends (at byte {}) in the middle of {}, which needs {} more bytes",
                self.len,
                self.context,
                n - self.remaining()
            )));
        }
        Ok(())
    }

    fn read_error(&self, error: io::Error) -> GgufError {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            // The length was checked before the read, so the file shrank while it was being read.
            self.malformed(format!(
                "the file ended at byte {} while reading {} (was it being written or downloaded at the same time?)",
                self.pos, self.context
            ))
        } else {
            GgufError::Io { path: self.path.to_path_buf(), error }
        }
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        self.need(N as u64)?;
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf).map_err(|e| self.read_error(e))?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u8(&mut self) -> Result<u8, GgufError> {
        Ok(self.bytes::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, GgufError> {
        Ok(u16::from_le_bytes(self.bytes()?))
    }
    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    fn skip(&mut self, n: u64) -> Result<(), GgufError> {
        self.need(n)?;
        // `need` bounds n by the file length, which fits in i64 for any real file.
        let offset = i64::try_from(n).map_err(|_| self.malformed(format!("{} is too large to skip", self.context)))?;
        self.inner.seek_relative(offset).map_err(|e| self.read_error(e))?;
        self.pos += n;
        Ok(())
    }

    /// Reads a string's length and checks it against `max` and the bytes left.
    fn string_len(&mut self, max: u64) -> Result<u64, GgufError> {
        let n = self.u64()?;
        if n > max {
            return Err(
                self.malformed(format!("{} is a string of {n} bytes, longer than the {max} allowed", self.context))
            );
        }
        self.need(n)?;
        Ok(n)
    }

    /// Reads a GGUF string (u64 length + bytes). Invalid UTF-8 is replaced rather than rejected, as llama.cpp does not
    /// check it either.
    fn string(&mut self, max: u64) -> Result<String, GgufError> {
        let n = self.string_len(max)?;
        // n <= remaining bytes of the file and <= max, so this allocation is bounded.
        let mut buf = vec![0u8; n as usize];
        self.inner.read_exact(&mut buf).map_err(|e| self.read_error(e))?;
        self.pos += n;
        Ok(match String::from_utf8(buf) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    fn skip_string(&mut self) -> Result<(), GgufError> {
        let n = self.string_len(MAX_STRING_LEN)?;
        self.skip(n)
    }

    /// Reads one metadata value of type `value_type`. `depth` counts enclosing arrays.
    fn value(&mut self, value_type: u32, depth: u32) -> Result<MetaValue, GgufError> {
        Ok(match value_type {
            T_U8 => MetaValue::U64(self.u8()?.into()),
            T_I8 => int_value(i8::from_le_bytes(self.bytes()?).into()),
            T_U16 => MetaValue::U64(self.u16()?.into()),
            T_I16 => int_value(i16::from_le_bytes(self.bytes()?).into()),
            T_U32 => MetaValue::U64(self.u32()?.into()),
            T_I32 => int_value(i32::from_le_bytes(self.bytes()?).into()),
            T_F32 => f32_value(f32::from_bits(self.u32()?)),
            T_BOOL => MetaValue::Bool(self.u8()? != 0),
            T_STRING => MetaValue::Str(self.string(MAX_STRING_LEN)?),
            T_ARRAY => self.array(depth, true)?,
            T_U64 => MetaValue::U64(self.u64()?),
            T_I64 => int_value(i64::from_le_bytes(self.bytes()?)),
            T_F64 => MetaValue::F64(f64::from_bits(self.u64()?)),
            other => return Err(self.malformed(format!("{} has unknown value type {other}", self.context))),
        })
    }

    /// Skips one metadata value of type `value_type` without storing it.
    fn skip_value(&mut self, value_type: u32, depth: u32) -> Result<(), GgufError> {
        match value_type {
            T_STRING => self.skip_string(),
            T_ARRAY => self.array(depth, false).map(drop),
            other => match fixed_size(other) {
                Some(n) => self.skip(n),
                None => Err(self.malformed(format!("{} has unknown value type {other}", self.context))),
            },
        }
    }

    /// Reads an array (element type, count, elements). Its elements are stored only when `store` is set and there are
    /// at most [`MAX_STORED_ARRAY_LEN`] of them; otherwise they are skipped.
    fn array(&mut self, depth: u32, store: bool) -> Result<MetaValue, GgufError> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(self.malformed(format!("{} nests arrays more than {MAX_ARRAY_DEPTH} deep", self.context)));
        }
        let element_type = self.u32()?;
        let Some(type_name) = value_type_name(element_type) else {
            return Err(self.malformed(format!("{} is an array of unknown value type {element_type}", self.context)));
        };
        let len = self.u64()?;
        let fits = len.checked_mul(min_size(element_type)).is_some_and(|n| n <= self.remaining());
        if !fits {
            return Err(self.malformed(format!(
                "{} claims {len} elements of type {type_name}, more than the {} bytes left in the file can hold",
                self.context,
                self.remaining()
            )));
        }
        let mut values = Vec::new();
        if store && len <= MAX_STORED_ARRAY_LEN {
            values.reserve(len as usize);
            for _ in 0..len {
                values.push(self.value(element_type, depth + 1)?);
            }
        } else if let Some(size) = fixed_size(element_type) {
            // Checked above: len * size <= remaining.
            self.skip(len * size)?;
        } else {
            for _ in 0..len {
                self.skip_value(element_type, depth + 1)?;
            }
        }
        Ok(MetaValue::Array { element_type: type_name.to_string(), len, values })
    }
}

/// Reads the header; returns it with the file's length.
fn read_header(path: &Path) -> Result<(GgufInfo, u64), GgufError> {
    let io_err = |error: io::Error| GgufError::Io { path: path.to_path_buf(), error };
    let file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(io_err(io::Error::from(io::ErrorKind::IsADirectory)));
    }
    let len = meta.len();
    let mut r = HeaderReader {
        inner: BufReader::with_capacity(64 * 1024, file),
        path,
        pos: 0,
        len,
        context: "the magic number".to_string(),
    };

    // Magic. A file shorter than 4 bytes is not a GGUF file, unless what it has is the start of "GGUF".
    let head_len = len.min(4) as usize;
    let mut head = vec![0u8; head_len];
    r.inner.read_exact(&mut head).map_err(|e| r.read_error(e))?;
    r.pos = head_len as u64;
    if head.as_slice() != GGUF_MAGIC.as_slice() {
        if !head.is_empty() && GGUF_MAGIC.starts_with(&head) {
            return Err(r.malformed(format!("the file is only {len} bytes long and ends inside the \"GGUF\" magic")));
        }
        return Err(GgufError::NotGguf { path: path.to_path_buf(), found_magic: head });
    }

    r.context = "the version number".to_string();
    let version = r.u32()?;
    if version != 2 && version != 3 {
        return Err(GgufError::UnsupportedVersion { path: path.to_path_buf(), version });
    }

    r.context = "the tensor and metadata counts".to_string();
    let tensor_count = r.u64()?;
    let kv_count = r.u64()?;
    let fits = kv_count
        .checked_mul(MIN_KV_BYTES)
        .zip(tensor_count.checked_mul(MIN_TENSOR_INFO_BYTES))
        .and_then(|(a, b)| a.checked_add(b))
        .is_some_and(|n| n <= r.remaining());
    if !fits {
        return Err(r.malformed(format!(
            "it claims {kv_count} metadata entries and {tensor_count} tensors, which cannot fit in a {len}-byte file"
        )));
    }

    let mut metadata = BTreeMap::new();
    for i in 0..kv_count {
        r.context = format!("the key of metadata entry {i}");
        let key = r.string(MAX_KEY_LEN)?;
        r.context = format!("metadata \"{key}\"");
        let value_type = r.u32()?;
        let value = r.value(value_type, 0)?;
        if metadata.contains_key(&key) {
            return Err(r.malformed(format!("metadata key \"{key}\" appears twice")));
        }
        metadata.insert(key, value);
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(MetaValue::U64(a)) if a.is_power_of_two() && *a <= u64::from(u32::MAX) => *a,
        Some(other) => {
            return Err(r.malformed(format!("general.alignment is {other:?}, not a power of two that fits in a u32")));
        }
    };

    // Tensor descriptions. Only their names (to catch duplicates) and the end of their data are kept.
    let mut names = HashSet::new();
    let mut data_end: u64 = 0;
    let mut all_sizes_known = true;
    for i in 0..tensor_count {
        r.context = format!("the name of tensor {i}");
        let name = r.string(MAX_TENSOR_NAME_LEN)?;
        r.context = format!("tensor \"{name}\"");
        let n_dims = r.u32()?;
        if n_dims > MAX_DIMS {
            return Err(r.malformed(format!("tensor \"{name}\" has {n_dims} dimensions, more than ggml's {MAX_DIMS}")));
        }
        let mut first_dim = 1;
        let mut n_elements: u64 = 1;
        for d in 0..n_dims {
            let dim = r.u64()?;
            if d == 0 {
                first_dim = dim;
            }
            n_elements = n_elements
                .checked_mul(dim)
                .filter(|&n| n <= i64::MAX as u64)
                .ok_or_else(|| r.malformed(format!("tensor \"{name}\" has a shape whose element count overflows")))?;
        }
        let ggml_type = r.u32()?;
        let offset = r.u64()?;
        if let Some((block, type_size)) = ggml_type_size(ggml_type) {
            let rem = first_dim % block;
            if rem != 0 {
                return Err(r.malformed(format!(
                    "tensor \"{name}\" has rows of {first_dim} elements, not a multiple of its type's block of {block}"
                )));
            }
            let end = (n_elements / block)
                .checked_mul(type_size)
                .and_then(|size| size.checked_add(offset))
                .ok_or_else(|| r.malformed(format!("tensor \"{name}\" ends beyond 2^64 bytes")))?;
            data_end = data_end.max(end);
        } else {
            all_sizes_known = false;
        }
        if !names.insert(name) {
            return Err(r.malformed(format!("{} appears twice", r.context)));
        }
    }

    let header_end = r.pos;
    let data_offset = header_end
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| r.malformed("the header ends beyond 2^64 bytes"))?;
    let expected_file_size = if tensor_count == 0 {
        Some(header_end)
    } else if all_sizes_known {
        Some(data_offset.checked_add(data_end).ok_or_else(|| r.malformed("its tensors end beyond 2^64 bytes"))?)
    } else {
        None
    };

    let architecture = metadata.get("general.architecture").and_then(MetaValue::as_str).map(str::to_string);
    let name = metadata.get("general.name").and_then(MetaValue::as_str).map(str::to_string);
    let file_type = metadata.get("general.file_type").and_then(MetaValue::as_u64).and_then(|v| u32::try_from(v).ok());
    let quantization = file_type.and_then(ftype_name).map(str::to_string);
    let context_length = architecture
        .as_ref()
        .and_then(|arch| metadata.get(&format!("{arch}.context_length")))
        .and_then(MetaValue::as_u64);

    let info = GgufInfo {
        version,
        tensor_count,
        metadata,
        architecture,
        name,
        file_type,
        quantization,
        context_length,
        data_offset,
        expected_file_size,
    };
    Ok((info, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- A small GGUF writer, for tests only ----

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
    /// Magic, version, tensor count, metadata count.
    fn preamble(version: u32, tensor_count: u64, kv_count: u64) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        put_u32(&mut out, version);
        put_u64(&mut out, tensor_count);
        put_u64(&mut out, kv_count);
        out
    }

    /// A metadata value with its GGUF type, as the writer encodes it.
    #[derive(Clone)]
    enum Raw {
        U8(u8),
        I8(i8),
        U16(u16),
        I16(i16),
        U32(u32),
        I32(i32),
        F32(f32),
        Bool(bool),
        Str(String),
        Arr(u32, Vec<Raw>),
        U64(u64),
        I64(i64),
        F64(f64),
    }

    impl Raw {
        fn value_type(&self) -> u32 {
            match self {
                Raw::U8(_) => T_U8,
                Raw::I8(_) => T_I8,
                Raw::U16(_) => T_U16,
                Raw::I16(_) => T_I16,
                Raw::U32(_) => T_U32,
                Raw::I32(_) => T_I32,
                Raw::F32(_) => T_F32,
                Raw::Bool(_) => T_BOOL,
                Raw::Str(_) => T_STRING,
                Raw::Arr(..) => T_ARRAY,
                Raw::U64(_) => T_U64,
                Raw::I64(_) => T_I64,
                Raw::F64(_) => T_F64,
            }
        }
        fn put(&self, out: &mut Vec<u8>) {
            match self {
                Raw::U8(v) => out.push(*v),
                Raw::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
                Raw::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
                Raw::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
                Raw::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
                Raw::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
                Raw::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
                Raw::Bool(v) => out.push(u8::from(*v)),
                Raw::Str(s) => put_str(out, s),
                Raw::Arr(element_type, values) => {
                    put_u32(out, *element_type);
                    put_u64(out, values.len() as u64);
                    for v in values {
                        assert_eq!(v.value_type(), *element_type, "test array with mixed types");
                        v.put(out);
                    }
                }
                Raw::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
                Raw::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
                Raw::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
            }
        }
    }

    fn s(v: &str) -> Raw {
        Raw::Str(v.to_string())
    }

    struct Tensor {
        name: &'static str,
        dims: Vec<u64>,
        ggml_type: u32,
        offset: u64,
    }

    struct Gguf {
        version: u32,
        kvs: Vec<(String, Raw)>,
        tensors: Vec<Tensor>,
        /// Alignment used to pad the header (the writer does not look at general.alignment).
        alignment: usize,
        /// Bytes of tensor data written after the padding.
        data_len: usize,
    }

    impl Gguf {
        fn new() -> Self {
            Gguf { version: 3, kvs: Vec::new(), tensors: Vec::new(), alignment: 32, data_len: 0 }
        }
        fn kv(mut self, key: &str, value: Raw) -> Self {
            self.kvs.push((key.to_string(), value));
            self
        }
        fn tensor(mut self, name: &'static str, dims: &[u64], ggml_type: u32, offset: u64) -> Self {
            self.tensors.push(Tensor { name, dims: dims.to_vec(), ggml_type, offset });
            self
        }
        /// Everything up to the end of the tensor descriptions.
        fn header(&self) -> Vec<u8> {
            let mut out = preamble(self.version, self.tensors.len() as u64, self.kvs.len() as u64);
            for (key, value) in &self.kvs {
                put_str(&mut out, key);
                put_u32(&mut out, value.value_type());
                value.put(&mut out);
            }
            for t in &self.tensors {
                put_str(&mut out, t.name);
                put_u32(&mut out, t.dims.len() as u32);
                for d in &t.dims {
                    put_u64(&mut out, *d);
                }
                put_u32(&mut out, t.ggml_type);
                put_u64(&mut out, t.offset);
            }
            out
        }
        /// The whole file: header, padding to the alignment, `data_len` bytes of tensor data.
        fn bytes(&self) -> Vec<u8> {
            let mut out = self.header();
            out.resize(out.len().next_multiple_of(self.alignment), 0);
            out.resize(out.len() + self.data_len, 0xAB);
            out
        }
    }

    /// A temporary directory holding one file; keep it alive while the file is used.
    fn write_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    fn read_bytes(bytes: &[u8]) -> Result<GgufInfo, GgufError> {
        let (_dir, path) = write_file("model.gguf", bytes);
        validate(&path)
    }

    fn expect_malformed(bytes: &[u8], needle: &str) {
        match read_bytes(bytes) {
            Err(e @ GgufError::Malformed { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(needle), "message {msg:?} should contain {needle:?}");
                assert!(msg.contains("model.gguf"), "message {msg:?} should name the file");
            }
            other => panic!("expected Malformed ({needle}), got {other:?}"),
        }
    }

    // ---- Parsing ----

    #[test]
    fn reads_every_metadata_type() {
        let many_u32: Vec<Raw> = (0..100).map(Raw::U32).collect();
        let many_strings: Vec<Raw> = (0..100).map(|i| s(&format!("tok{i}"))).collect();
        let exactly_64: Vec<Raw> = (0..64).map(Raw::U8).collect();
        let exactly_65: Vec<Raw> = (0..65).map(Raw::U8).collect();
        let g = Gguf::new()
            .kv("general.architecture", s("llama"))
            .kv("general.name", s("Tiny Test ✓"))
            .kv("general.file_type", Raw::U32(15))
            .kv("llama.context_length", Raw::U32(4096))
            .kv("t.u8", Raw::U8(200))
            .kv("t.i8.neg", Raw::I8(-5))
            .kv("t.i8.pos", Raw::I8(5))
            .kv("t.u16", Raw::U16(60_000))
            .kv("t.i16", Raw::I16(-30_000))
            .kv("t.u32", Raw::U32(4_000_000_000))
            .kv("t.i32", Raw::I32(-2_000_000_000))
            .kv("t.f32", Raw::F32(1e-5))
            .kv("t.bool.true", Raw::Bool(true))
            .kv("t.bool.false", Raw::Bool(false))
            .kv("t.string.empty", s(""))
            .kv("t.u64", Raw::U64(u64::MAX))
            .kv("t.i64", Raw::I64(i64::MIN))
            .kv("t.f64", Raw::F64(-2.5e300))
            .kv("t.arr.i16", Raw::Arr(T_I16, vec![Raw::I16(-1), Raw::I16(2)]))
            .kv("t.arr.str", Raw::Arr(T_STRING, vec![s("a"), s("bc")]))
            .kv("t.arr.empty", Raw::Arr(T_F32, vec![]))
            .kv(
                "t.arr.nested",
                Raw::Arr(T_ARRAY, vec![Raw::Arr(T_BOOL, vec![Raw::Bool(true)]), Raw::Arr(T_BOOL, vec![])]),
            )
            .kv("t.arr.64", Raw::Arr(T_U8, exactly_64))
            .kv("t.arr.65", Raw::Arr(T_U8, exactly_65))
            .kv("t.arr.many_u32", Raw::Arr(T_U32, many_u32))
            .kv("t.arr.many_strings", Raw::Arr(T_STRING, many_strings))
            .kv(
                "t.arr.many_arrays",
                Raw::Arr(T_ARRAY, (0..70).map(|i| Raw::Arr(T_STRING, vec![s(&i.to_string())])).collect()),
            )
            .kv("t.after", s("still in sync after skipped arrays"));
        let info = read_bytes(&g.bytes()).unwrap();

        assert_eq!(info.version, 3);
        assert_eq!(info.tensor_count, 0);
        assert_eq!(info.architecture.as_deref(), Some("llama"));
        assert_eq!(info.name.as_deref(), Some("Tiny Test ✓"));
        assert_eq!(info.file_type, Some(15));
        assert_eq!(info.quantization.as_deref(), Some("Q4_K_M"));
        assert_eq!(info.context_length, Some(4096));

        let m = &info.metadata;
        let arr = |element_type: &str, len: u64, values: Vec<MetaValue>| MetaValue::Array {
            element_type: element_type.to_string(),
            len,
            values,
        };
        let expected = [
            ("t.u8", MetaValue::U64(200)),
            ("t.i8.neg", MetaValue::I64(-5)),
            ("t.i8.pos", MetaValue::U64(5)),
            ("t.u16", MetaValue::U64(60_000)),
            ("t.i16", MetaValue::I64(-30_000)),
            ("t.u32", MetaValue::U64(4_000_000_000)),
            ("t.i32", MetaValue::I64(-2_000_000_000)),
            ("t.f32", MetaValue::F64(1e-5)),
            ("t.bool.true", MetaValue::Bool(true)),
            ("t.bool.false", MetaValue::Bool(false)),
            ("t.string.empty", MetaValue::Str(String::new())),
            ("t.u64", MetaValue::U64(u64::MAX)),
            ("t.i64", MetaValue::I64(i64::MIN)),
            ("t.f64", MetaValue::F64(-2.5e300)),
            ("t.arr.i16", arr("i16", 2, vec![MetaValue::I64(-1), MetaValue::U64(2)])),
            ("t.arr.str", arr("string", 2, vec![MetaValue::Str("a".into()), MetaValue::Str("bc".into())])),
            ("t.arr.empty", arr("f32", 0, vec![])),
            (
                "t.arr.nested",
                arr("array", 2, vec![arr("bool", 1, vec![MetaValue::Bool(true)]), arr("bool", 0, vec![])]),
            ),
            ("t.arr.64", arr("u8", 64, (0..64).map(MetaValue::U64).collect())),
            ("t.arr.65", arr("u8", 65, vec![])),
            ("t.arr.many_u32", arr("u32", 100, vec![])),
            ("t.arr.many_strings", arr("string", 100, vec![])),
            ("t.arr.many_arrays", arr("array", 70, vec![])),
            ("t.after", MetaValue::Str("still in sync after skipped arrays".into())),
        ];
        for (key, value) in expected {
            assert_eq!(m.get(key), Some(&value), "metadata {key}");
        }
        assert_eq!(m.len(), g.kvs.len());

        // The whole record survives JSON.
        let json = serde_json::to_string(&info).unwrap();
        let back: GgufInfo = serde_json::from_str(&json).unwrap();
        assert_eq!(back, info);
        // Plain numbers in JSON, as promised.
        assert!(json.contains(r#""llama.context_length":4096"#), "{json}");
        assert!(json.contains(r#""t.i8.neg":-5"#), "{json}");
    }

    #[test]
    fn data_offset_and_expected_size_by_hand() {
        // Byte count of the header:
        //   magic 4 + version 4 + tensor count 8 + kv count 8                          =  24
        //   "general.architecture" (20 bytes): 8 + 20, type 4, "llama": 8 + 5           =  45 ->  69
        //   "general.alignment" (17 bytes): 8 + 17, type 4, u32 4                       =  33 -> 102
        //   tensor "b": name 8 + 1, n_dims 4, 1 dim 8, type 4, offset 8                 =  33 -> 135
        //   tensor "a": name 8 + 1, n_dims 4, 2 dims 16, type 4, offset 8               =  41 -> 176
        // data_offset = 176 rounded up to 64 = 192.
        // "a": 64 x 2 F32 = 128 elements * 4 bytes = 512 bytes at offset 0 -> ends at 512.
        // "b": 256 Q4_K = 1 block of 144 bytes at offset 512 -> ends at 656 (listed first: the end is a max, not the
        // last tensor's).
        // expected_file_size = 192 + 656 = 848.
        let mut g = Gguf::new()
            .kv("general.architecture", s("llama"))
            .kv("general.alignment", Raw::U32(64))
            .tensor("b", &[256], 12, 512)
            .tensor("a", &[64, 2], 0, 0);
        g.alignment = 64;
        g.data_len = 656;
        assert_eq!(g.header().len(), 176);
        let bytes = g.bytes();
        assert_eq!(bytes.len(), 848);
        let info = read_bytes(&bytes).unwrap();
        assert_eq!(info.data_offset, 192);
        assert_eq!(info.expected_file_size, Some(848));
        assert_eq!(info.tensor_count, 2);
        assert_eq!(info.file_type, None);
        assert_eq!(info.quantization, None);
        assert_eq!(info.context_length, None);
    }

    #[test]
    fn default_alignment_is_32() {
        // Header: 24 + "general.architecture"="llama" 45 = 69
        //   tensor "w": 8 + 1 + 4 + 8 (1 dim) + 4 + 8 = 33 -> 102
        //   tensor "x": 8 + 1 + 4 + 16 (2 dims) + 4 + 8 = 41 -> 143
        // data_offset = 143 rounded up to 32 = 160.
        // "w": 4096 Q8_0 = 128 blocks * 34 = 4352 bytes at 0; "x": 10 x 3 F16 = 60 bytes at 4352 -> ends at 4412.
        // expected_file_size = 160 + 4412 = 4572.
        let mut g = Gguf::new().kv("general.architecture", s("llama")).tensor("w", &[4096], 8, 0).tensor(
            "x",
            &[10, 3],
            1,
            4352,
        );
        g.data_len = 4412;
        assert_eq!(g.header().len(), 143);
        let info = read_bytes(&g.bytes()).unwrap();
        assert_eq!(info.data_offset, 160);
        assert_eq!(info.expected_file_size, Some(4572));
    }

    #[test]
    fn every_known_ggml_type_has_a_size() {
        // One tensor of 256 x 2 elements per type: size = 512 / block * type_size.
        for (ty, block, type_size) in [(0, 1, 4), (2, 32, 18), (14, 256, 210), (23, 256, 136), (30, 1, 2), (39, 32, 17)]
        {
            let mut g = Gguf::new().tensor("t", &[256, 2], ty, 0);
            g.data_len = 512 / block * type_size;
            let bytes = g.bytes();
            let info = read_bytes(&bytes).unwrap();
            // Header 24 + tensor 41 = 65 -> data at 96.
            assert_eq!(info.data_offset, 96, "type {ty}");
            assert_eq!(info.expected_file_size, Some(96 + (512 / block * type_size) as u64), "type {ty}");
            assert_eq!(info.expected_file_size, Some(bytes.len() as u64));
        }
    }

    #[test]
    fn unknown_tensor_type_gives_no_size_verdict() {
        let g = Gguf::new().tensor("a", &[32], 0, 0).tensor("odd", &[32], 200, 128);
        // No tensor data at all, yet validate() passes: the size of type 200 is unknown.
        let info = read_bytes(&g.bytes()).unwrap();
        assert_eq!(info.expected_file_size, None);
    }

    #[test]
    fn file_without_tensors_ends_at_its_header() {
        let g = Gguf::new().kv("general.architecture", s("llama"));
        let header = g.header();
        assert_eq!(header.len(), 69);
        let info = read_bytes(&header).unwrap();
        assert_eq!(info.tensor_count, 0);
        assert_eq!(info.data_offset, 96);
        assert_eq!(info.expected_file_size, Some(69));
    }

    #[test]
    fn version_2_is_read() {
        let mut g = Gguf::new().kv("general.architecture", s("llama"));
        g.version = 2;
        assert_eq!(read_bytes(&g.bytes()).unwrap().version, 2);
    }

    #[test]
    fn ftype_names() {
        assert_eq!(ftype_name(0), Some("F32"));
        assert_eq!(ftype_name(3), Some("Q4_1"));
        assert_eq!(ftype_name(7), Some("Q8_0"));
        assert_eq!(ftype_name(15), Some("Q4_K_M"));
        assert_eq!(ftype_name(18), Some("Q6_K"));
        assert_eq!(ftype_name(32), Some("BF16"));
        assert_eq!(ftype_name(38), Some("MXFP4_MOE"));
        // Numbers llama.cpp retired (Q4_1_SOME_F16, Q4_2, Q4_3) or never used.
        for n in [4, 5, 6, 33, 34, 35, 39, 1024] {
            assert_eq!(ftype_name(n), None, "{n}");
        }
    }

    #[test]
    fn unknown_ftype_has_no_quantization_name() {
        let g = Gguf::new().kv("general.file_type", Raw::U32(999));
        let info = read_bytes(&g.bytes()).unwrap();
        assert_eq!(info.file_type, Some(999));
        assert_eq!(info.quantization, None);
    }

    #[test]
    fn json_round_trip_of_non_finite_floats() {
        let g = Gguf::new().kv("nan", Raw::F32(f32::NAN)).kv("inf", Raw::F64(f64::INFINITY));
        let info = read_bytes(&g.bytes()).unwrap();
        let json = serde_json::to_string(&info).unwrap();
        let back: GgufInfo = serde_json::from_str(&json).unwrap();
        // JSON has no NaN or infinity: both are written as null and read back as NaN.
        for key in ["nan", "inf"] {
            assert!(matches!(back.metadata[key], MetaValue::F64(v) if v.is_nan()), "{key}: {:?}", back.metadata[key]);
        }
    }

    // ---- Files that are not GGUF, or not whole ----

    #[test]
    fn text_file_is_not_gguf() {
        let (_dir, path) = write_file("notes.txt", b"hello, this is not a model\n");
        let err = read_info(&path).unwrap_err();
        assert!(
            matches!(&err, GgufError::NotGguf { path: p, found_magic } if *p == path && found_magic == b"hell"),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(r#"it starts with "hell""#), "{msg}");
        assert!(msg.contains("convert_hf_to_gguf.py"), "{msg}");
    }

    #[test]
    fn not_gguf_messages_recognise_common_mistakes() {
        let cases: [(&[u8], &str); 4] = [
            (b"PK\x03\x04rest of a zip", "zip archive"),
            (b"<!DOCTYPE html><html>", "HTML"),
            (b"version https://git-lfs.github.com/spec/v1\n", "git lfs pull"),
            (b"tjgg\x01\x00\x00\x00", "old GGML/GGJT format"),
        ];
        for (bytes, needle) in cases {
            let (_dir, path) = write_file("model.bin", bytes);
            let msg = read_info(&path).unwrap_err().to_string();
            assert!(msg.contains(needle) && msg.contains("model.bin"), "{msg}");
        }
        // Binary bytes are shown escaped.
        let (_dir, path) = write_file("model.bin", b"\x00\xff\x10Z");
        let msg = read_info(&path).unwrap_err().to_string();
        assert!(msg.contains(r#"it starts with "\x00\xff\x10Z""#), "{msg}");
    }

    #[test]
    fn empty_file_is_rejected_clearly() {
        let (_dir, path) = write_file("empty.gguf", b"");
        let err = validate(&path).unwrap_err();
        assert!(matches!(&err, GgufError::NotGguf { found_magic, .. } if found_magic.is_empty()), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("empty.gguf") && msg.contains("is empty (0 bytes)"), "{msg}");
    }

    #[test]
    fn missing_file_and_directory_are_io_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.gguf");
        let err = read_info(&missing).unwrap_err();
        assert!(matches!(&err, GgufError::Io { error, .. } if error.kind() == io::ErrorKind::NotFound), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("nope.gguf") && msg.contains("does not exist"), "{msg}");

        let err = read_info(dir.path()).unwrap_err();
        assert!(matches!(&err, GgufError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn unsupported_versions() {
        for (version, needle) in [(1, "version 1"), (4, "versions 2 and 3"), (0x0300_0000, "big-endian")] {
            let mut g = Gguf::new().kv("general.architecture", s("llama"));
            g.version = version;
            let err = read_bytes(&g.bytes()).unwrap_err();
            assert!(matches!(err, GgufError::UnsupportedVersion { version: v, .. } if v == version), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains(needle) && msg.contains("model.gguf"), "{msg}");
        }
    }

    /// The test file used for cutting: metadata of several kinds, two tensors, 848 bytes in all (see
    /// data_offset_and_expected_size_by_hand for the arithmetic of the same layout).
    fn cut_test_file() -> Gguf {
        let mut g = Gguf::new()
            .kv("general.architecture", s("llama"))
            .kv("general.alignment", Raw::U32(64))
            .tensor("b", &[256], 12, 512)
            .tensor("a", &[64, 2], 0, 0);
        g.alignment = 64;
        g.data_len = 656;
        g
    }

    #[test]
    fn header_cut_anywhere_is_malformed_never_a_panic() {
        let mut g = cut_test_file()
            .kv("tokens", Raw::Arr(T_STRING, (0..80).map(|i| s(&format!("t{i}"))).collect()))
            .kv("small", Raw::Arr(T_I32, vec![Raw::I32(-1), Raw::I32(1)]))
            .kv("eps", Raw::F32(1e-6));
        g.kvs.rotate_right(3); // put the arrays before the alignment key, the tensors stay last
        let full = g.bytes();
        let header_len = g.header().len();
        let expected = full.len() as u64;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.gguf");
        std::fs::write(&path, &full).unwrap();
        validate(&path).unwrap();
        // Cut the file shorter one byte at a time (set_len rather than rewriting: much faster on ext4).
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        for cut in (0..full.len()).rev() {
            file.set_len(cut as u64).unwrap();
            if cut >= header_len {
                // From the end of the header on, the header reads and only validate() objects.
                let info = read_info(&path).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
                assert_eq!(info.expected_file_size, Some(expected));
                match validate(&path) {
                    Err(GgufError::Truncated { expected: e, actual: a, .. }) => {
                        assert_eq!((e, a), (expected, cut as u64), "cut at {cut}")
                    }
                    other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
                }
                continue;
            }
            let err = validate(&path).expect_err("a cut header must not read");
            match (&err, cut) {
                (GgufError::NotGguf { found_magic, .. }, 0) => assert!(found_magic.is_empty()),
                (GgufError::Malformed { .. }, 1..) => {}
                _ => panic!("cut at {cut}: unexpected {err:?}"),
            }
            let msg = err.to_string();
            assert!(msg.contains("cut.gguf"), "cut at {cut}: {msg}");
            if cut == header_len - 3 {
                // A cut in the middle says where the file ends and what it was reading.
                assert!(msg.contains(&format!("ends (at byte {cut})")) && msg.contains("tensor \"a\""), "{msg}");
            }
        }
    }

    #[test]
    fn truncated_tensor_data() {
        let bytes = cut_test_file().bytes();
        assert_eq!(bytes.len(), 848);
        let (_dir, path) = write_file("partial.gguf", &bytes[..800]);
        let info = read_info(&path).unwrap();
        assert_eq!(info.expected_file_size, Some(848));
        let err = validate(&path).unwrap_err();
        assert!(matches!(err, GgufError::Truncated { expected: 848, actual: 800, .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("partial.gguf is truncated"), "{msg}");
        assert!(
            msg.contains("848 bytes") && msg.contains("800 bytes") && msg.contains(": 48 bytes are missing"),
            "{msg}"
        );
        assert!(msg.contains("cargo xtask fetch"), "{msg}");

        // Extra bytes after the last tensor (padding, or anything else) are fine.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 100]);
        assert_eq!(read_bytes(&longer).unwrap().expected_file_size, Some(848));
    }

    #[test]
    fn human_bytes_formats() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1023), "1023 bytes");
        assert_eq!(human_bytes(98_362_432), "98362432 bytes (93.8 MiB)");
    }

    // ---- Hostile headers: a clear Malformed, no huge allocation, no panic ----

    #[test]
    fn hostile_lengths_and_counts() {
        // A metadata key claiming u64::MAX bytes.
        let mut b = preamble(3, 0, 1);
        put_u64(&mut b, u64::MAX);
        b.extend_from_slice(&[0; 64]);
        expect_malformed(&b, "longer than the 65535 allowed");

        // A string value claiming 1 TiB (within no limit of memory, beyond the file).
        let mut b = preamble(3, 0, 1);
        put_str(&mut b, "k");
        put_u32(&mut b, T_STRING);
        put_u64(&mut b, 1 << 40);
        b.extend_from_slice(b"short");
        expect_malformed(&b, "longer than the 67108864 allowed");
        let mut b = preamble(3, 0, 1);
        put_str(&mut b, "k");
        put_u32(&mut b, T_STRING);
        put_u64(&mut b, 1000);
        b.extend_from_slice(b"short");
        expect_malformed(&b, "needs 995 more bytes");

        // Arrays whose count cannot fit: u8 (skipped in one go) and strings (skipped one by one).
        for (element_type, count) in
            [(T_U8, u64::MAX), (T_U8, 1000), (T_STRING, 1 << 60), (T_ARRAY, 10), (T_U64, 1 << 61)]
        {
            let mut b = preamble(3, 0, 1);
            put_str(&mut b, "k");
            put_u32(&mut b, T_ARRAY);
            put_u32(&mut b, element_type);
            put_u64(&mut b, count);
            b.extend_from_slice(&[0; 16]);
            expect_malformed(&b, &format!("claims {count} elements"));
        }

        // Counts in the preamble that cannot fit in the file.
        expect_malformed(&preamble(3, 0, u64::MAX), "cannot fit");
        expect_malformed(&preamble(3, u64::MAX / 2, 0), "cannot fit");
        let mut b = preamble(3, 1_000, 1);
        b.extend_from_slice(&[0; 1000]);
        expect_malformed(&b, "claims 1 metadata entries and 1000 tensors");
    }

    #[test]
    fn hostile_values() {
        let kv = |value_type: u32, payload: &[u8]| {
            let mut b = preamble(3, 0, 1);
            put_str(&mut b, "k");
            put_u32(&mut b, value_type);
            b.extend_from_slice(payload);
            b.extend_from_slice(&[0; 32]);
            b
        };
        expect_malformed(&kv(13, &[]), "unknown value type 13");
        expect_malformed(&kv(u32::MAX, &[]), "unknown value type 4294967295");
        expect_malformed(&kv(T_ARRAY, &[77, 0, 0, 0]), "array of unknown value type 77");

        // Arrays nested 5 deep.
        let mut nested = Raw::Arr(T_U8, vec![Raw::U8(1)]);
        for _ in 0..4 {
            nested = Raw::Arr(T_ARRAY, vec![nested]);
        }
        expect_malformed(&Gguf::new().kv("deep", nested).bytes(), "nests arrays more than 4 deep");
        // 4 deep is fine.
        let mut nested = Raw::Arr(T_U8, vec![Raw::U8(1)]);
        for _ in 0..3 {
            nested = Raw::Arr(T_ARRAY, vec![nested]);
        }
        read_bytes(&Gguf::new().kv("deep", nested).bytes()).unwrap();

        for bad in [0, 48] {
            let g = Gguf::new().kv("general.alignment", Raw::U32(bad));
            expect_malformed(&g.bytes(), "general.alignment");
        }
        expect_malformed(&Gguf::new().kv("general.alignment", s("32")).bytes(), "general.alignment");

        let g = Gguf::new().kv("a", Raw::U8(1)).kv("a", Raw::U8(2));
        expect_malformed(&g.bytes(), "metadata key \"a\" appears twice");
    }

    #[test]
    fn hostile_tensor_infos() {
        let g = Gguf::new().tensor("t", &[1, 1, 1, 1, 1], 0, 0);
        expect_malformed(&g.bytes(), "5 dimensions");

        let g = Gguf::new().tensor("t", &[1 << 40, 1 << 40], 0, 0);
        expect_malformed(&g.bytes(), "overflows");

        let g = Gguf::new().tensor("t", &[33], 2, 0);
        expect_malformed(&g.bytes(), "rows of 33 elements, not a multiple of its type's block of 32");

        let g = Gguf::new().tensor("t", &[32], 0, u64::MAX - 10);
        expect_malformed(&g.bytes(), "ends beyond 2^64 bytes");

        let g = Gguf::new().tensor("t", &[32], 0, 0).tensor("t", &[32], 0, 128);
        expect_malformed(&g.bytes(), "tensor \"t\" appears twice");

        let mut b = preamble(3, 1, 0);
        put_u64(&mut b, 1 << 20); // tensor name of 1 MiB, beyond the file
        b.extend_from_slice(&[0; 40]);
        expect_malformed(&b, "the name of tensor 0");
    }

    // ---- The real model ----

    /// Set TOKBENCH_TEST_MODEL to the path of SmolLM2-135M-Instruct.Q4_1.gguf to run this.
    #[test]
    fn real_model() {
        let Some(path) = std::env::var_os("TOKBENCH_TEST_MODEL") else {
            eprintln!("skipping real_model: set TOKBENCH_TEST_MODEL to SmolLM2-135M-Instruct.Q4_1.gguf to run it");
            return;
        };
        let path = PathBuf::from(path);
        let info = validate(&path).unwrap_or_else(|e| panic!("{e}"));
        let file_len = std::fs::metadata(&path).unwrap().len();
        eprintln!(
            "{}: version {}, {} tensors, {} metadata keys, architecture {:?}, name {:?}, file type {:?} ({:?}), \
             context {:?}, data at {}, expected size {:?}, file size {file_len}",
            path.display(),
            info.version,
            info.tensor_count,
            info.metadata.len(),
            info.architecture,
            info.name,
            info.file_type,
            info.quantization,
            info.context_length,
            info.data_offset,
            info.expected_file_size,
        );
        assert_eq!(info.architecture.as_deref(), Some("llama"));
        assert_eq!(info.file_type, Some(3));
        assert_eq!(info.quantization.as_deref(), Some("Q4_1"));
        assert_eq!(info.expected_file_size, Some(file_len));
        // The vocabulary is summarised, not stored.
        match &info.metadata["tokenizer.ggml.tokens"] {
            MetaValue::Array { element_type, len, values } => {
                assert_eq!(element_type, "string");
                assert!(*len > MAX_STORED_ARRAY_LEN && values.is_empty());
            }
            other => panic!("tokenizer.ggml.tokens is {other:?}"),
        }
        let json = serde_json::to_string(&info).unwrap();
        assert_eq!(serde_json::from_str::<GgufInfo>(&json).unwrap(), info);
    }
}
