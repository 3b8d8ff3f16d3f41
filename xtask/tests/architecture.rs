//! The architecture invariants of docs/ARCHITECTURE.md, checked on the sources so that a change that breaks one
//! fails the test suite instead of slowly eroding the layout:
//! - the record crate depends on no crate of ours, and the gate on the record alone;
//! - no crate's modules import each other in a circle.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The `tokbench-*` crates a manifest's `[dependencies]` name (not dev- or build-dependencies).
fn our_dependencies(manifest: &Path) -> BTreeSet<String> {
    let table: toml::Table = toml::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    let deps = table.get("dependencies").and_then(|d| d.as_table()).cloned().unwrap_or_default();
    deps.keys().filter(|k| k.starts_with("tokbench")).cloned().collect()
}

#[test]
fn the_record_is_a_leaf_and_the_gate_reads_only_the_record() {
    assert_eq!(our_dependencies(&root().join("crates/record/Cargo.toml")), BTreeSet::new());
    let gate = our_dependencies(&root().join("crates/gate/Cargo.toml"));
    assert_eq!(gate, BTreeSet::from(["tokbench-record".to_string()]));
}

/// Every `.rs` file of a crate's `src/`, as its module path (`quality::measure`), with its code up to its unit
/// tests: a test module may reach anywhere, and a comment's link to another module is not an import.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let text: String =
                code.lines().filter(|l| !l.trim_start().starts_with("//")).map(|l| format!("{l}\n")).collect();
            out.insert(parts.join("::"), text);
        }
    }
    out
}

/// The modules `text` (of module `from`) refers to through `crate::…` and `super::…` paths, resolved to the
/// longest module path that exists.
fn references(from: &str, text: &str, known: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let parent: Vec<&str> = from.split("::").filter(|p| !p.is_empty()).collect();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent[..parent.len().saturating_sub(1)].to_vec())] {
        for (i, _) in text.match_indices(prefix) {
            if text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &text[i + prefix.len()..];
            let path: Vec<&str> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or_default()
                .split("::")
                .filter(|p| !p.is_empty())
                .collect();
            let mut full: Vec<&str> = base.clone();
            full.extend(path);
            while !full.is_empty() && !known.contains_key(&full.join("::")) {
                full.pop();
            }
            let target = full.join("::");
            if !target.is_empty() && target != from && !from.starts_with(&format!("{target}::")) {
                out.insert(target);
            }
        }
    }
    out
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|p| p == next).unwrap();
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_crate_has_modules_that_import_each_other_in_a_circle() {
    let mut crates: Vec<PathBuf> = vec![root().join("src"), root().join("xtask/src")];
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() {
            crates.push(src);
        }
    }
    let mut checked = 0;
    for src in crates {
        let modules = modules(&src);
        let graph: BTreeMap<String, BTreeSet<String>> =
            modules.iter().map(|(m, text)| (m.clone(), references(m, text, &modules))).collect();
        if let Some(cycle) = find_cycle(&graph) {
            panic!("modules of {} import each other in a circle: {}", src.display(), cycle.join(" → "));
        }
        checked += modules.len();
    }
    assert!(checked > 50, "only {checked} modules found: is the walk broken?");
}

#[test]
fn a_circle_is_found() {
    let known: BTreeMap<String, String> =
        [("a", "use crate::b::X;"), ("b", "fn f() { crate::a::y(); }"), ("c", "use super::a;")]
            .into_iter()
            .map(|(m, t)| (m.to_string(), t.to_string()))
            .collect();
    let graph = known.iter().map(|(m, t)| (m.clone(), references(m, t, &known))).collect();
    assert_eq!(find_cycle(&graph), Some(vec!["a".to_string(), "b".to_string(), "a".to_string()]));
    assert_eq!(references("c", "use super::a;", &known), BTreeSet::from(["a".to_string()]));
}
