//! `cairn diff`: what changed between two snapshots.
//!
//! Both trees are walked side by side in name order (trees are stored
//! sorted); subtrees with the same id are equal and skipped unread.

use std::io::Write;

use anyhow::Result;
use cairn_format::BlobId;
use cairn_format::tree::{Node, NodeKind};
use cairn_repo::IndexedRepository;
use serde::Serialize;

use crate::cli::{DiffArgs, Global};
use crate::output::bytes;

/// How one path differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Change {
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

impl Change {
    fn symbol(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
            Change::Type => 'T',
        }
    }
}

#[derive(Debug, Serialize)]
struct Entry {
    path: String,
    change: Change,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_before: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_after: Option<u64>,
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    added: u64,
    removed: u64,
    modified: u64,
    metadata: u64,
    type_changed: u64,
    bytes_added: u64,
    bytes_removed: u64,
}

struct Diff<'a> {
    repo: &'a IndexedRepository,
    metadata: bool,
    out: Vec<Entry>,
}

fn same_content(a: &Node, b: &Node) -> bool {
    a.content == b.content && a.target == b.target && a.rdev == b.rdev && a.size == b.size
}

fn same_metadata(a: &Node, b: &Node) -> bool {
    a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.mtime == b.mtime && a.xattrs == b.xattrs
}

impl Diff<'_> {
    fn push(&mut self, path: String, change: Change, before: Option<&Node>, after: Option<&Node>) {
        let size = |n: Option<&Node>| n.filter(|n| n.kind == NodeKind::File).map(|n| n.size);
        self.out.push(Entry { path, change, size_before: size(before), size_after: size(after) });
    }

    /// Everything below a node that exists on one side only.
    fn one_side(&mut self, path: &str, node: &Node, change: Change) -> Result<()> {
        let (before, after) = if change == Change::Added { (None, Some(node)) } else { (Some(node), None) };
        self.push(path.to_string(), change, before, after);
        if let Some(sub) = node.subtree {
            for n in self.repo.load_tree(&sub)?.nodes {
                self.one_side(&format!("{path}/{}", n.name.display()), &n, change)?;
            }
        }
        Ok(())
    }

    fn trees(&mut self, a: Option<BlobId>, b: Option<BlobId>, prefix: &str) -> Result<()> {
        if a == b {
            return Ok(());
        }
        let load = |t: Option<BlobId>| -> Result<Vec<Node>> {
            Ok(match t {
                Some(t) => self.repo.load_tree(&t)?.nodes,
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
                        self.push(path.clone(), Change::Type, Some(l), Some(r));
                        if let Some(sub) = l.subtree {
                            self.trees(Some(sub), None, &path)?;
                        }
                        if let Some(sub) = r.subtree {
                            self.trees(None, Some(sub), &path)?;
                        }
                    } else if l.kind == NodeKind::Dir {
                        if self.metadata && !same_metadata(l, r) {
                            self.push(path.clone(), Change::Metadata, Some(l), Some(r));
                        }
                        self.trees(l.subtree, r.subtree, &path)?;
                    } else if !same_content(l, r) {
                        self.push(path, Change::Modified, Some(l), Some(r));
                    } else if self.metadata && !same_metadata(l, r) {
                        self.push(path, Change::Metadata, Some(l), Some(r));
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(())
    }
}

pub fn run(g: &Global, a: &DiffArgs) -> Result<i32> {
    let repo = super::open(g)?;
    let (id1, s1) = super::find_snapshot(&repo, &a.first, &a.filter)?;
    let (id2, s2) = super::find_snapshot(&repo, &a.second, &a.filter)?;
    let repo = repo.load_index()?;
    let mut d = Diff { repo: &repo, metadata: a.metadata, out: Vec::new() };
    d.trees(Some(s1.tree), Some(s2.tree), "")?;
    let mut sum = Summary::default();
    for e in &d.out {
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
    if g.json {
        let v = serde_json::json!({ "first": id1, "second": id2, "changes": d.out, "summary": sum });
        writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(0);
    }
    writeln!(std::io::stdout(), "comparing snapshot {} to {}:", id1.short(), id2.short())?;
    for e in &d.out {
        let size = match (e.size_before, e.size_after) {
            (Some(b), Some(a)) if a != b => format!("  ({} -> {})", bytes(b), bytes(a)),
            (None, Some(a)) | (Some(a), None) => format!("  ({})", bytes(a)),
            _ => String::new(),
        };
        writeln!(std::io::stdout(), "{}  {}{size}", e.change.symbol(), e.path)?;
    }
    writeln!(
        std::io::stdout(),
        "{} added, {} removed, {} modified, {} metadata only, {} type changed; {} added, {} removed",
        sum.added,
        sum.removed,
        sum.modified,
        sum.metadata,
        sum.type_changed,
        bytes(sum.bytes_added),
        bytes(sum.bytes_removed)
    )?;
    Ok(0)
}
