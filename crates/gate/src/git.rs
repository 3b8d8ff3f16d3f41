//! Baselines as git stores them (feature `git`, libgit2 — C, no C++): read a class directory at any ref straight
//! from the object database, without a checkout, and walk the commits that changed it.
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use git2::{ObjectType, Oid, Repository, Sort, Tree};
use tokbench_record::metric::Metric;

use crate::baseline::BaselineSet;
use crate::history::{History, HistoryPoint};

/// The repository around `dir` and `path` relative to its work tree, with `/` separators, as git trees name it.
pub fn open(dir: &Path, path: &Path) -> Result<(Repository, String)> {
    let repo =
        Repository::discover(dir).with_context(|| format!("{} is not inside a git repository", dir.display()))?;
    let workdir = repo.workdir().ok_or_else(|| anyhow!("the git repository is bare; run from a checkout"))?;
    let workdir = workdir.canonicalize().unwrap_or_else(|_| workdir.to_path_buf());
    let abs = if path.is_absolute() { path.to_path_buf() } else { dir.join(path) };
    // The directory may not exist in this checkout (only at the ref): canonicalize its nearest existing parent.
    let abs = canonical_lenient(&abs);
    let rel = abs
        .strip_prefix(&workdir)
        .with_context(|| format!("{} is outside the git work tree {}", abs.display(), workdir.display()))?;
    let rel = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/");
    Ok((repo, rel))
}

fn canonical_lenient(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => canonical_lenient(parent).join(name),
        _ => p.to_path_buf(),
    }
}

fn subtree<'r>(repo: &'r Repository, tree: &Tree<'r>, rel: &str) -> Result<Option<Tree<'r>>> {
    if rel.is_empty() {
        return Ok(Some(tree.clone()));
    }
    match tree.get_path(Path::new(rel)) {
        Ok(entry) if entry.kind() == Some(ObjectType::Tree) => Ok(Some(repo.find_tree(entry.id())?)),
        Ok(_) => Ok(None),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn set_from_tree(repo: &Repository, tree: &Tree, label: &str) -> Result<BaselineSet> {
    let mut files = Vec::new();
    for entry in tree.iter() {
        let Some(name) = entry.name() else { continue };
        if entry.kind() != Some(ObjectType::Blob) || !name.ends_with(".json") {
            continue;
        }
        let blob = repo.find_blob(entry.id())?;
        files.push((format!("{label}/{name}"), blob.content().to_vec()));
    }
    BaselineSet::from_files(label.to_string(), files)
}

/// Baselines of `class` under `root` (a path in the work tree) as of `rev`, plus the classes present there.
pub fn read_at(dir: &Path, root: &Path, rev: &str, class: &str) -> Result<(BaselineSet, Vec<String>)> {
    let (repo, rel) = open(dir, root)?;
    let commit = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .with_context(|| format!("git cannot resolve {rev:?}: fetch it first (e.g. `git fetch origin main`)"))?;
    let tree = commit.tree()?;
    let Some(root_tree) = subtree(&repo, &tree, &rel)? else {
        return Ok((BaselineSet { source: format!("{rev}:{rel}/{class}"), ..Default::default() }, Vec::new()));
    };
    let classes: Vec<String> = root_tree
        .iter()
        .filter(|e| e.kind() == Some(ObjectType::Tree))
        .filter_map(|e| e.name().map(String::from))
        .collect();
    let label = format!("{rev}:{}{class}", if rel.is_empty() { String::new() } else { format!("{rel}/") });
    let set = match subtree(&repo, &root_tree, class)? {
        Some(t) => set_from_tree(&repo, &t, &label)?,
        None => BaselineSet { source: label, ..Default::default() },
    };
    Ok((set, classes))
}

/// Commits reachable from `rev` that changed `root/class`, oldest first, at most `limit` (the newest ones).
/// A commit whose baselines no longer parse (an older format) is skipped with a warning on stderr.
pub fn history(dir: &Path, root: &Path, rev: &str, class: &str, metrics: &[Metric], limit: usize) -> Result<History> {
    let (repo, rel) = open(dir, root)?;
    let path = if rel.is_empty() { class.to_string() } else { format!("{rel}/{class}") };
    let start = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .with_context(|| format!("git cannot resolve {rev:?}"))?;
    let mut walk = repo.revwalk()?;
    walk.push(start.id())?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)?;
    let tree_id = |c: &git2::Commit| -> Result<Option<Oid>> {
        match c.tree()?.get_path(Path::new(&path)) {
            Ok(e) => Ok(Some(e.id())),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    };
    let mut points = Vec::new();
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        let Some(id) = tree_id(&commit)? else { continue };
        let parent_id = match commit.parent(0) {
            Ok(p) => tree_id(&p)?,
            Err(_) => None,
        };
        if parent_id == Some(id) {
            continue;
        }
        let tree = repo.find_tree(id)?;
        let hash = commit.id().to_string();
        match set_from_tree(&repo, &tree, &format!("{}:{path}", &hash[..10])) {
            Ok(set) => {
                let secs = commit.time().seconds().max(0) as u64;
                let date =
                    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
                let subject = commit.summary().unwrap_or("").to_string();
                points.push(HistoryPoint::from_set(hash, date.to_string(), subject, &set, metrics));
            }
            Err(e) => eprintln!("warning: skipping {} in the history: {e:#}", &hash[..10]),
        }
        if points.len() >= limit {
            break;
        }
    }
    points.reverse();
    Ok(History { class: class.to_string(), points })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::bless;
    use tokbench_record::results::RunResults;

    fn commit_all(repo: &Repository, message: &str) {
        let mut index = repo.index().unwrap();
        index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents).unwrap();
    }

    #[test]
    fn baselines_at_a_ref_and_their_history_come_from_the_object_database() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/results.json");
        let mut results = RunResults::read(&fixture).unwrap();
        let class = results.machine.class_key.clone();
        let root = dir.path().join("baselines");
        std::fs::write(dir.path().join("README"), "x").unwrap();
        commit_all(&repo, "no baselines yet");
        bless(&results, &root, false).unwrap();
        commit_all(&repo, "first baselines");
        for r in &mut results.benchmarks[0].runs {
            r.decode_tps = r.decode_tps.map(|v| v * 2.0);
        }
        bless(&results, &root, false).unwrap();
        commit_all(&repo, "faster");
        std::fs::write(dir.path().join("README"), "y").unwrap();
        commit_all(&repo, "unrelated");
        // The work tree changes after the last commit must not leak into what a ref reads.
        std::fs::remove_dir_all(&root).unwrap();

        let id = &results.benchmarks[0].id;
        let decode = |set: &BaselineSet| crate::compare::samples(&set.by_id[id].benchmark, Metric::DecodeTps)[0];
        let (old, classes) = read_at(dir.path(), Path::new("baselines"), "HEAD~2", &class).unwrap();
        let (new, _) = read_at(dir.path(), Path::new("baselines"), "HEAD", &class).unwrap();
        assert_eq!(classes, vec![class.clone()]);
        assert!((decode(&new) / decode(&old) - 2.0).abs() < 1e-9);
        assert!(new.source.starts_with("HEAD:baselines/"), "{}", new.source);
        let (none, _) = read_at(dir.path(), Path::new("baselines"), "HEAD~3", &class).unwrap();
        assert!(none.by_id.is_empty());
        assert!(format!("{:#}", read_at(dir.path(), Path::new("baselines"), "nope", &class).unwrap_err())
            .contains("git fetch"));

        let h = history(dir.path(), Path::new("baselines"), "HEAD", &class, &[Metric::DecodeTps], 10).unwrap();
        let subjects: Vec<&str> = h.points.iter().map(|p| p.subject.as_str()).collect();
        assert_eq!(subjects, ["first baselines", "faster"]);
        let series = h.series(&[Metric::DecodeTps]);
        assert_eq!(series.len(), results.benchmarks.len());
        let s = series.iter().find(|s| &s.id == id).unwrap();
        assert!((s.values[1].1 / s.values[0].1 - 2.0).abs() < 1e-9);
        let text = h.render_text(&[Metric::DecodeTps]);
        assert!(text.contains("+100.0%") && text.contains("faster"), "{text}");
    }
}
