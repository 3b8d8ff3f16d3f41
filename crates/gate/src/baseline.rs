//! The baseline store: `baselines/<machine class>/<benchmark file>.json`, one pretty JSON per benchmark, holding the
//! whole [`BenchmarkResult`] (raw samples included, so any rule can re-judge it) and where it came from.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokbench_record::id::BenchmarkId;
use tokbench_record::machine::Machine;
use tokbench_record::results::{write_json_atomic, BenchmarkResult, RunResults, SCHEMA_VERSION};

pub const FORMAT: &str = "tokbench-baseline";
/// Bump on any change an older reader would misread.
pub const BASELINE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub format: String,
    pub baseline_version: u32,
    /// The results schema version `benchmark` follows.
    pub schema_version: u32,
    pub provenance: Provenance,
    pub benchmark: BenchmarkResult,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The project's commit the samples were measured at (None outside git).
    pub commit: Option<String>,
    pub branch: Option<String>,
    pub dirty: Option<bool>,
    /// When the samples were measured (the results file's `created_at`), RFC 3339.
    pub measured_at: String,
    /// When they were blessed, RFC 3339.
    pub blessed_at: String,
    pub tokbench_version: String,
    pub machine: Machine,
}

/// Every baseline of one machine class, by benchmark id.
#[derive(Debug, Clone, Default)]
pub struct BaselineSet {
    /// Where they were read from, for messages: a directory or `<ref>:<path>`.
    pub source: String,
    pub by_id: BTreeMap<BenchmarkId, Baseline>,
}

/// A baseline directory must be a plain name: results files are input, and their class key becomes a path.
pub fn check_class_key(key: &str) -> Result<()> {
    ensure!(
        !key.is_empty()
            && !key.starts_with('.')
            && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')),
        "machine class key {key:?} is not a plain lowercase name; the results file is damaged"
    );
    Ok(())
}

/// File name for a benchmark id: readable and injective. `/` becomes `+`; letters, digits, `.`, `-`, `_` stay; any
/// other byte (including `+` and `%`) becomes `%XX`; a leading `.` is escaped too (no hidden files, no `..`).
/// Names that would exceed 200 bytes are cut and suffixed with a hash of the id.
pub fn file_name(id: &str) -> String {
    let mut out = String::with_capacity(id.len() + 5);
    for (i, b) in id.bytes().enumerate() {
        match b {
            b'/' => out.push('+'),
            b'.' if i == 0 => out.push_str("%2E"),
            b if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    if out.len() > 200 {
        let hash = Sha256::digest(id.as_bytes());
        let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
        out.truncate(180);
        out.push('~');
        out.push_str(&hex);
    }
    out.push_str(".json");
    out
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl Baseline {
    pub fn from_results(results: &RunResults, benchmark: &BenchmarkResult) -> Baseline {
        Baseline {
            format: FORMAT.into(),
            baseline_version: BASELINE_VERSION,
            schema_version: results.schema_version,
            provenance: Provenance {
                commit: results.git.as_ref().map(|g| g.commit.clone()),
                branch: results.git.as_ref().and_then(|g| g.branch.clone()),
                dirty: results.git.as_ref().map(|g| g.dirty),
                measured_at: results.created_at.clone(),
                blessed_at: now_rfc3339(),
                tokbench_version: results.tokbench_version.clone(),
                machine: results.machine.clone(),
            },
            benchmark: benchmark.clone(),
        }
    }

    /// Parses one baseline file's bytes; `label` names it in errors (a path, or `<ref>:<path>`).
    pub fn parse(label: &str, bytes: &[u8]) -> Result<Baseline> {
        let fix = "restore it (`git checkout -- <file>`) or re-bless on this machine with `cargo xtask bless`";
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .with_context(|| format!("baseline {label} is not valid JSON (corrupt?): {fix}"))?;
        if value.get("format").and_then(|v| v.as_str()) != Some(FORMAT) {
            bail!("{label} is not a tokbench baseline (no \"format\": \"{FORMAT}\"): remove it from the baseline directory or {fix}");
        }
        let bv = value.get("baseline_version").and_then(|v| v.as_u64());
        let sv = value.get("schema_version").and_then(|v| v.as_u64());
        if bv != Some(BASELINE_VERSION as u64) || sv != Some(SCHEMA_VERSION as u64) {
            bail!(
                "baseline {label} has baseline format {} and results schema {}, this tokbench reads format \
                 {BASELINE_VERSION} and schema {SCHEMA_VERSION}: re-bless it with `cargo xtask bless` (after \
                 `cargo xtask run`) on this machine",
                bv.map_or("?".into(), |v| v.to_string()),
                sv.map_or("?".into(), |v| v.to_string())
            );
        }
        let mut baseline: Baseline = serde_json::from_value(value).with_context(|| {
            format!("baseline {label} does not match the baseline schema (corrupt or edited?): {fix}")
        })?;
        baseline.benchmark.derive_missing_ram_delta(); // blessed before RAM Δ was recorded
        Ok(baseline)
    }
}

impl BaselineSet {
    /// Parses `(label, bytes)` pairs of one class directory; duplicate ids are an error.
    pub fn from_files(source: String, files: Vec<(String, Vec<u8>)>) -> Result<BaselineSet> {
        let mut set = BaselineSet { source, by_id: BTreeMap::new() };
        for (label, bytes) in files {
            let b = Baseline::parse(&label, &bytes)?;
            let id = b.benchmark.id.clone();
            ensure!(
                !set.by_id.contains_key(&id),
                "two baseline files in {} hold benchmark {id:?}; remove one",
                set.source
            );
            set.by_id.insert(id, b);
        }
        Ok(set)
    }

    /// Reads `dir` (every `*.json` directly in it). A directory that does not exist is an empty set.
    pub fn load_dir(dir: &Path) -> Result<BaselineSet> {
        let mut files = Vec::new();
        if dir.exists() {
            for path in json_files(dir)? {
                let bytes = std::fs::read(&path).with_context(|| format!("cannot read baseline {}", path.display()))?;
                files.push((path.display().to_string(), bytes));
            }
        }
        Self::from_files(dir.display().to_string(), files)
    }

    /// Machine classes the baselines were measured on (normally exactly one).
    pub fn classes(&self) -> Vec<String> {
        let mut c: Vec<String> = self.by_id.values().map(|b| b.provenance.machine.class_key.clone()).collect();
        c.sort();
        c.dedup();
        c
    }
}

/// `*.json` files directly in `dir`, sorted.
pub fn json_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read directory {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Class directories present under a baselines root.
pub fn classes_in(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect();
    out.sort();
    out
}

/// What [`bless`] did.
#[derive(Debug, Default, PartialEq)]
pub struct BlessOutcome {
    pub dir: PathBuf,
    pub written: Vec<BenchmarkId>,
    pub kept: Vec<BenchmarkId>,
    pub pruned: Vec<BenchmarkId>,
}

/// Writes every benchmark of `results` as the baseline of its id under `root/<class>/`, each file atomically.
/// Baselines of benchmarks not in `results` are kept unless `prune`.
pub fn bless(results: &RunResults, root: &Path, prune: bool) -> Result<BlessOutcome> {
    check_class_key(&results.machine.class_key)?;
    ensure!(!results.benchmarks.is_empty(), "the results file has no benchmarks to bless");
    let dir = root.join(&results.machine.class_key);
    // Read what is there first: a corrupt existing baseline is reported, never silently overwritten or pruned.
    let existing = BaselineSet::load_dir(&dir)?;
    let mut out = BlessOutcome { dir: dir.clone(), ..Default::default() };
    for b in &results.benchmarks {
        ensure!(!b.runs.is_empty(), "benchmark {} has no runs to bless", b.id);
        write_json_atomic(&dir.join(file_name(&b.id.to_string())), &Baseline::from_results(results, b))?;
        out.written.push(b.id.clone());
    }
    for (id, _) in existing.by_id {
        if results.benchmarks.iter().any(|b| b.id == id) {
            continue;
        }
        if prune {
            let path = dir.join(file_name(&id.to_string()));
            std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            out.pruned.push(id);
        } else {
            out.kept.push(id);
        }
    }
    Ok(out)
}

/// One class directory renamed by [`migrate`].
#[derive(Debug, PartialEq)]
pub struct Migrated {
    pub from: String,
    pub to: String,
    pub features: Vec<String>,
    pub files: usize,
}

/// The SIMD level and accelerators a llama.cpp system-info line shows (`AVX512 = 1`, `AVX2 = 1`, `NEON = 1`,
/// `SVE = 1`, a Metal device), as `tokbench_core::machine` detects them; empty when the line says nothing.
pub fn features_of_build_info(build_info: &str, os_family: &str, arch: &str) -> Vec<String> {
    // Parts look like `AVX2 = 1`; the first carries the backend's name too (`CPU : SSE3 = 1`).
    let on = |flag: &str| {
        build_info
            .split('|')
            .map(|p| p.rsplit(" : ").next().unwrap_or(p).trim())
            .any(|p| p.eq_ignore_ascii_case(&format!("{flag} = 1")))
    };
    let mut out = Vec::new();
    if let Some(level) = ["AVX512", "AVX2", "AVX", "SSE3"].into_iter().find(|f| on(f)) {
        out.push(if level == "SSE3" { "sse".to_string() } else { level.to_ascii_lowercase() });
    }
    if on("NEON") {
        out.push("neon".into());
        if on("SVE") {
            out.push("sve".into());
        }
    }
    if os_family == "macos" && arch == "aarch64" {
        out.push("metal".into());
    }
    out
}

/// Renames every class directory under `root` whose baselines predate SIMD features in the key (their machine has
/// none recorded) to the key their own evidence gives: the SIMD level in the llama.cpp system-info line each
/// baseline carries. The baselines are rewritten with the features and the new key, atomically, before the old files
/// go. Baselines of one directory that disagree (an AVX2 and an AVX-512 host blessed together) are an error.
pub fn migrate(root: &Path) -> Result<Vec<Migrated>> {
    let mut out = Vec::new();
    for class in classes_in(root) {
        let dir = root.join(&class);
        let set = BaselineSet::load_dir(&dir)?;
        if set.by_id.is_empty() || set.by_id.values().any(|b| !b.provenance.machine.features.is_empty()) {
            continue; // current key already
        }
        let parts: Vec<&str> = class.rsplitn(3, '-').collect();
        ensure!(parts.len() == 3, "{}: not a class key of the form <chip>-<cores>-<memory>-<os>-<arch>", dir.display());
        let (arch, os_family) = (parts[0], parts[1]);
        let mut found: Vec<(Vec<String>, BenchmarkId)> = Vec::new();
        for (id, b) in &set.by_id {
            let f = features_of_build_info(&b.benchmark.engine.build_info, os_family, arch);
            ensure!(!f.is_empty(), "baseline {id} in {} records no SIMD level in its engine's system info: re-bless this class on its machine", dir.display());
            if !found.iter().any(|(g, _)| *g == f) {
                found.push((f, id.clone()));
            }
        }
        ensure!(
            found.len() == 1,
            "the baselines in {} were measured on different hardware ({}): re-bless this class on one machine",
            dir.display(),
            found.iter().map(|(f, id)| format!("{} ({id})", f.join(" "))).collect::<Vec<_>>().join(" vs ")
        );
        let features = found.remove(0).0;
        let mut machine = set.by_id.values().next().expect("not empty").provenance.machine.clone();
        machine.features = features.clone();
        let to = tokbench_record::machine::class_key(&machine, os_family);
        let new_dir = root.join(&to);
        ensure!(
            !new_dir.exists(),
            "cannot migrate {} to {}: that directory exists already",
            dir.display(),
            new_dir.display()
        );
        let mut written = Vec::new();
        for (id, b) in &set.by_id {
            let mut b = b.clone();
            b.provenance.machine.features = features.clone();
            b.provenance.machine.class_key = to.clone();
            let path = new_dir.join(file_name(&id.to_string()));
            write_json_atomic(&path, &b)?;
            written.push(path);
        }
        for path in json_files(&dir)? {
            std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
        std::fs::remove_dir(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        out.push(Migrated { from: class, to, features, files: written.len() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_renames_legacy_classes_by_the_simd_level_their_baselines_recorded() {
        let results: RunResults = serde_json::from_str(include_str!("../tests/data/results.json")).unwrap();
        assert!(results.machine.features.is_empty(), "the test data predates features");
        let root = tempfile::tempdir().unwrap();
        let legacy = root.path().join("amd-epyc-2c-24g-linux-x86_64");
        let mut r = results.clone();
        r.machine.class_key = "amd-epyc-2c-24g-linux-x86_64".into();
        bless(&r, root.path(), false).unwrap();
        let done = migrate(root.path()).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(
            (done[0].to.as_str(), done[0].features.clone()),
            ("amd-epyc-2c-24g-avx2-linux-x86_64", vec!["avx2".into()])
        );
        assert!(!legacy.exists());
        let moved = BaselineSet::load_dir(&root.path().join(&done[0].to)).unwrap();
        assert_eq!(moved.by_id.len(), r.benchmarks.len());
        assert!(moved.by_id.values().all(|b| b.provenance.machine.class_key == done[0].to));
        assert!(migrate(root.path()).unwrap().is_empty(), "a second migration changed something");

        // An AVX2 and an AVX-512 host blessed into one legacy class: refused, nothing moved.
        let mixed = root.path().join("mixed");
        let mut a = r.clone();
        a.machine.class_key = "x-2c-24g-linux-x86_64".into();
        let mut b = a.clone();
        b.benchmarks[0].id = "llama.cpp/other/Q4_1/short/t2".parse().unwrap();
        b.benchmarks[0].engine.build_info =
            b.benchmarks[0].engine.build_info.replace("AVX2 = 1", "AVX2 = 1 | AVX512 = 1");
        b.benchmarks.truncate(1);
        bless(&a, root.path(), false).unwrap();
        bless(&b, root.path(), false).unwrap();
        let e = migrate(root.path()).unwrap_err().to_string();
        assert!(e.contains("different hardware") && e.contains("avx512") && e.contains("avx2"), "{e}");
        assert!(root.path().join("x-2c-24g-linux-x86_64").is_dir() && !mixed.exists());
    }

    #[test]
    fn simd_features_are_read_from_llama_cpps_system_info() {
        let line = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | OPENMP = 1";
        assert_eq!(features_of_build_info(line, "linux", "x86_64"), vec!["avx512".to_string()]);
        assert_eq!(
            features_of_build_info(&line.replace(" | AVX512 = 1", ""), "linux", "x86_64"),
            vec!["avx2".to_string()]
        );
        assert_eq!(
            features_of_build_info("CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1", "macos", "aarch64"),
            vec!["neon".to_string(), "metal".to_string()]
        );
        assert!(features_of_build_info("", "linux", "x86_64").is_empty());
    }

    #[test]
    fn file_names_are_safe_readable_and_distinct() {
        assert_eq!(
            file_name("llama.cpp/smollm2-135m-instruct-q4_1/Q4_1/short/t2"),
            "llama.cpp+smollm2-135m-instruct-q4_1+Q4_1+short+t2.json"
        );
        assert_eq!(file_name("../../etc/passwd"), "%2E.+..+etc+passwd.json");
        assert_eq!(file_name("a+b"), "a%2Bb.json");
        assert_ne!(file_name("a/b"), file_name("a+b"));
        assert_eq!(file_name("<script>"), "%3Cscript%3E.json");
        assert_eq!(file_name(""), "%00.json");
        let long = file_name(&"x/".repeat(300));
        assert!(long.len() <= 200 + 5 + 17 && long.ends_with(".json"), "{long}");
        assert_ne!(long, file_name(&"x/".repeat(301)));
        for name in [file_name("a\\b:c*d?e\"f|g"), file_name("é/ü")] {
            assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_+%~".contains(&b)), "{name}");
        }
    }

    #[test]
    fn class_keys_must_be_plain_names() {
        assert!(check_class_key("amd-epyc-2c-24g-linux-x86_64").is_ok());
        for bad in ["", "..", "../x", "a/b", "A B"] {
            assert!(check_class_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_rejects_garbage_foreign_and_other_versions_with_the_fix() {
        let e = format!("{:#}", Baseline::parse("b.json", b"{not json").unwrap_err());
        assert!(e.contains("b.json") && e.contains("corrupt") && e.contains("cargo xtask bless"), "{e}");
        let e = format!("{:#}", Baseline::parse("b.json", br#"{"x": 1}"#).unwrap_err());
        assert!(e.contains("not a tokbench baseline"), "{e}");
        let e = format!(
            "{:#}",
            Baseline::parse(
                "b.json",
                br#"{"format": "tokbench-baseline", "baseline_version": 1, "schema_version": 7}"#
            )
            .unwrap_err()
        );
        assert!(e.contains("schema 7") && e.contains("re-bless"), "{e}");
        let e = format!(
            "{:#}",
            Baseline::parse(
                "b.json",
                br#"{"format": "tokbench-baseline", "baseline_version": 1, "schema_version": 1}"#
            )
            .unwrap_err()
        );
        assert!(e.contains("does not match the baseline schema"), "{e}");
    }
}
