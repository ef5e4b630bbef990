//! What changed between two snapshot trees (`cairn diff`). Both trees are
//! walked side by side in name order (trees are stored sorted); subtrees
//! with the same id are equal and skipped unread. What exists on one side
//! only is walked with the shared walker. Every tree is loaded through one
//! [`ExpansionGuard`], so a hostile tree graph is refused here too.

use cairn_format::BlobId;
use cairn_format::tree::{Bytes, Node, NodeKind};
use cairn_repo::expansion::ExpansionGuard;
use cairn_repo::{IndexedRepository, RepoError};
use serde::Serialize;

use crate::walk::{Step, Visitor, walk};

/// How one path differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the second snapshot.
    Added,
    /// Only in the first.
    Removed,
    /// Content (or link target) differs.
    Modified,
    /// Same content, other metadata (mode, owner, mtime, xattrs).
    Metadata,
    /// A different kind of entry (file became a folder ...).
    Type,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The path, `/a/b`.
    pub path: String,
    /// How it changed.
    pub change: Change,
    /// A file's size before, if it was a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_before: Option<u64>,
    /// A file's size after, if it is a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_after: Option<u64>,
}

/// Counts of the differences.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiffSummary {
    pub added: u64,
    pub removed: u64,
    pub modified: u64,
    pub metadata: u64,
    pub type_changed: u64,
    /// Bytes files grew or appeared with.
    pub bytes_added: u64,
    /// Bytes files shrank or disappeared with.
    pub bytes_removed: u64,
}

impl DiffSummary {
    /// The counts of `diffs`.
    pub fn of(diffs: &[Difference]) -> Self {
        let mut sum = Self::default();
        for e in diffs {
            match e.change {
                Change::Added => sum.added += 1,
                Change::Removed => sum.removed += 1,
                Change::Modified => sum.modified += 1,
                Change::Metadata => sum.metadata += 1,
                Change::Type => sum.type_changed += 1,
            }
            let (before, after) = (e.size_before.unwrap_or(0), e.size_after.unwrap_or(0));
            sum.bytes_added += after.saturating_sub(before);
            sum.bytes_removed += before.saturating_sub(after);
        }
        sum
    }
}

fn same_content(a: &Node, b: &Node) -> bool {
    a.content == b.content && a.target == b.target && a.rdev == b.rdev && a.size == b.size
}

fn same_metadata(a: &Node, b: &Node) -> bool {
    a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.mtime == b.mtime && a.xattrs == b.xattrs
}

fn file_size(n: Option<&Node>) -> Option<u64> {
    n.filter(|n| n.kind == NodeKind::File).map(|n| n.size)
}

struct Diff<'a> {
    repo: &'a IndexedRepository,
    guard: ExpansionGuard,
    metadata: bool,
    out: Vec<Difference>,
}

/// Everything below a folder that exists on one side only.
struct OneSide<'a> {
    out: &'a mut Vec<Difference>,
    change: Change,
}

impl Visitor for OneSide<'_> {
    type Error = RepoError;
    fn visit(&mut self, path: &Bytes, node: &Node) -> Result<Step, RepoError> {
        let (before, after) = if self.change == Change::Added { (None, Some(node)) } else { (Some(node), None) };
        self.out.push(Difference {
            path: path.display().into_owned(),
            change: self.change,
            size_before: file_size(before),
            size_after: file_size(after),
        });
        Ok(Step::Descend)
    }
}

impl Diff<'_> {
    fn push(&mut self, path: &str, change: Change, before: Option<&Node>, after: Option<&Node>) {
        self.out.push(Difference {
            path: path.to_string(),
            change,
            size_before: file_size(before),
            size_after: file_size(after),
        });
    }

    fn one_side(&mut self, path: &str, node: &Node, change: Change) -> Result<(), RepoError> {
        let (before, after) = if change == Change::Added { (None, Some(node)) } else { (Some(node), None) };
        self.push(path, change, before, after);
        if let Some(sub) = node.subtree.filter(|_| node.kind == NodeKind::Dir) {
            walk(self.repo, &sub, path.as_bytes(), &mut OneSide { out: &mut self.out, change })?;
        }
        Ok(())
    }

    fn trees(&mut self, a: Option<BlobId>, b: Option<BlobId>, prefix: &str) -> Result<(), RepoError> {
        if a == b {
            return Ok(());
        }
        let mut load = |t: Option<BlobId>| -> Result<Vec<Node>, RepoError> {
            Ok(match t {
                Some(t) => self.guard.load(self.repo, &t)?.nodes.clone(),
                None => Vec::new(),
            })
        };
        let (left, right) = (load(a)?, load(b)?);
        let (mut i, mut j) = (0, 0);
        while i < left.len() || j < right.len() {
            let order = match (left.get(i), right.get(j)) {
                (Some(l), Some(r)) => l.name.0.cmp(&r.name.0),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    let n = &left[i];
                    self.one_side(&format!("{prefix}/{}", n.name.display()), n, Change::Removed)?;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    let n = &right[j];
                    self.one_side(&format!("{prefix}/{}", n.name.display()), n, Change::Added)?;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let (l, r) = (&left[i], &right[j]);
                    let path = format!("{prefix}/{}", l.name.display());
                    if l.kind != r.kind {
                        self.push(&path, Change::Type, Some(l), Some(r));
                        let dir = |n: &Node| n.subtree.filter(|_| n.kind == NodeKind::Dir);
                        if let Some(sub) = dir(l) {
                            self.trees(Some(sub), None, &path)?;
                        }
                        if let Some(sub) = dir(r) {
                            self.trees(None, Some(sub), &path)?;
                        }
                    } else if l.kind == NodeKind::Dir {
                        if self.metadata && !same_metadata(l, r) {
                            self.push(&path, Change::Metadata, Some(l), Some(r));
                        }
                        self.trees(l.subtree, r.subtree, &path)?;
                    } else if !same_content(l, r) {
                        self.push(&path, Change::Modified, Some(l), Some(r));
                    } else if self.metadata && !same_metadata(l, r) {
                        self.push(&path, Change::Metadata, Some(l), Some(r));
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(())
    }
}

/// The differences from the tree `first` to the tree `second`, in path
/// order; with `metadata`, changes of mode, owner, mtime and xattrs too.
pub fn diff(
    repo: &IndexedRepository,
    first: &BlobId,
    second: &BlobId,
    metadata: bool,
) -> Result<Vec<Difference>, RepoError> {
    let mut d = Diff { repo, guard: ExpansionGuard::default(), metadata, out: Vec::new() };
    d.trees(Some(*first), Some(*second), "")?;
    Ok(d.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{dir, file, save_tree, test_repo};
    use cairn_format::tree::Time;

    #[test]
    fn added_removed_modified_metadata_and_type_changes() {
        let mut repo = test_repo();
        let sub1 = save_tree(&mut repo, vec![file("y", 1, 10)]);
        let sub2 = save_tree(&mut repo, vec![file("y", 1, 10), file("z", 2, 5)]);
        let gone = save_tree(&mut repo, vec![file("inner", 3, 7)]);
        let first = save_tree(
            &mut repo,
            vec![file("x", 1, 100), dir("d", sub1), dir("old", gone), file("t", 4, 1), file("m", 5, 3)],
        );
        let touched = Node { mtime: Time(99, 0), ..file("m", 5, 3) };
        let second =
            save_tree(&mut repo, vec![file("x", 9, 150), dir("d", sub2), dir("t", sub1), touched, file("w", 6, 20)]);
        let d = diff(&repo, &first, &second, true).expect("diff");
        let got: Vec<(&str, Change)> = d.iter().map(|e| (e.path.as_str(), e.change)).collect();
        assert_eq!(
            got,
            [
                ("/d/z", Change::Added),
                ("/m", Change::Metadata),
                ("/old", Change::Removed),
                ("/old/inner", Change::Removed),
                ("/t", Change::Type),
                ("/t/y", Change::Added),
                ("/w", Change::Added),
                ("/x", Change::Modified),
            ]
        );
        let sum = DiffSummary::of(&d);
        assert_eq!((sum.added, sum.removed, sum.modified, sum.metadata, sum.type_changed), (3, 2, 1, 1, 1));
        // Files: z +5, inner -7, t was 1 byte (now a folder) -1, y +10, w +20, x +50.
        assert_eq!((sum.bytes_added, sum.bytes_removed), (85, 8));
        // Without --metadata, the touched file is not a change.
        assert!(diff(&repo, &first, &second, false).expect("diff").iter().all(|e| e.change != Change::Metadata));
        assert!(diff(&repo, &first, &first, true).expect("diff").is_empty());
    }
}
