//! Stamps results with the project's own commit, branch and dirty state, read through libgit2.
use std::path::Path;

use tokbench_record::results::GitStamp;

/// None outside a git checkout (e.g. a source tarball): results are still written, just unstamped.
pub fn stamp(dir: &Path) -> Option<GitStamp> {
    let repo = git2::Repository::discover(dir).ok()?;
    let head = repo.head().ok()?;
    let commit = head.peel_to_commit().ok()?.id().to_string();
    let branch = head.is_branch().then(|| head.shorthand().map(str::to_string)).flatten();
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(false).include_ignored(false);
    let dirty = repo.statuses(Some(&mut opts)).map(|s| !s.is_empty()).unwrap_or(false);
    Some(GitStamp { commit, branch, dirty })
}
