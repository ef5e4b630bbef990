//! How much snapshots hold and what it costs to store (`cairn stats`): one
//! walk per snapshot with the shared walker, each distinct tree counted
//! once (its totals are remembered, so the unchanged folders every nightly
//! snapshot shares are not walked again), and the distinct blobs they need,
//! delta bases included, with their plaintext and stored sizes.

use std::collections::{HashMap, HashSet};

use cairn_format::BlobId;
use cairn_format::tree::{Bytes, Node, NodeKind};
use cairn_repo::{IndexedRepository, RepoError};
use serde::Serialize;

use crate::walk::{Step, Visitor, walk};

/// What a set of snapshots holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SnapshotStats {
    /// Snapshots counted.
    pub snapshots: u64,
    /// Files, summed over the snapshots (what restoring them all writes).
    pub files: u64,
    /// Directories, summed likewise.
    pub dirs: u64,
    /// Bytes of file content, summed likewise.
    pub restore_size: u64,
    /// Distinct blobs the snapshots need (content, trees, delta bases).
    pub blobs: u64,
    /// Their plaintext size: the data after deduplication.
    pub raw_size: u64,
    /// Their stored size (compressed, delta-coded, encrypted).
    pub stored_size: u64,
}

/// Files, dirs and bytes below a tree.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    files: u64,
    dirs: u64,
    bytes: u64,
}

impl Totals {
    fn add(&mut self, o: Totals) {
        self.files += o.files;
        self.dirs += o.dirs;
        self.bytes += o.bytes;
    }
}

struct Counter<'a> {
    repo: &'a IndexedRepository,
    totals: HashMap<BlobId, Totals>,
    blobs: HashSet<BlobId>,
    /// The trees being walked, innermost last, with what they hold so far.
    open: Vec<(BlobId, Totals)>,
}

impl Counter<'_> {
    /// Notes a blob as needed, and the bases of its delta chain.
    fn need(&mut self, id: BlobId) {
        self.repo.add_with_bases(id, &mut self.blobs);
    }

    fn add(&mut self, t: Totals) {
        if let Some((_, top)) = self.open.last_mut() {
            top.add(t);
        }
    }

    /// The totals of the tree `root`, walked unless already known.
    fn tree(&mut self, root: BlobId) -> Result<Totals, RepoError> {
        if let Some(t) = self.totals.get(&root) {
            return Ok(*t);
        }
        self.need(root);
        self.open.push((root, Totals::default()));
        walk(self.repo, &root, b"", self)?;
        let (_, t) = self.open.pop().unwrap_or_default();
        self.totals.insert(root, t);
        Ok(t)
    }
}

impl Visitor for Counter<'_> {
    type Error = RepoError;

    fn visit(&mut self, _path: &Bytes, n: &Node) -> Result<Step, RepoError> {
        match n.kind {
            NodeKind::File => {
                self.add(Totals { files: 1, dirs: 0, bytes: n.size });
                for b in &n.content {
                    self.need(*b);
                }
                Ok(Step::Skip)
            }
            NodeKind::Dir => {
                self.add(Totals { files: 0, dirs: 1, bytes: 0 });
                let Some(sub) = n.subtree else { return Ok(Step::Skip) };
                if let Some(known) = self.totals.get(&sub).copied() {
                    self.add(known);
                    return Ok(Step::Skip);
                }
                self.need(sub);
                self.open.push((sub, Totals::default()));
                Ok(Step::Descend)
            }
            _ => Ok(Step::Skip),
        }
    }

    fn leave(&mut self, _path: &Bytes, _n: &Node) -> Result<(), RepoError> {
        if let Some((id, t)) = self.open.pop() {
            self.totals.insert(id, t);
            self.add(t);
        }
        Ok(())
    }
}

/// What the snapshots with the root trees `roots` hold, together.
pub fn snapshot_stats(
    repo: &IndexedRepository,
    roots: impl IntoIterator<Item = BlobId>,
) -> Result<SnapshotStats, RepoError> {
    let mut c = Counter { repo, totals: HashMap::new(), blobs: HashSet::new(), open: Vec::new() };
    let mut s = SnapshotStats::default();
    for root in roots {
        let t = c.tree(root)?;
        s.snapshots += 1;
        s.files += t.files;
        s.dirs += t.dirs;
        s.restore_size += t.bytes;
    }
    s.blobs = c.blobs.len() as u64;
    for id in &c.blobs {
        if let Some(l) = repo.index().get(id) {
            s.raw_size += u64::from(l.raw_length);
            s.stored_size += u64::from(l.length);
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{dir, file, save_tree, test_repo};

    #[test]
    fn shared_trees_count_once_as_blobs_and_every_time_as_content() {
        let mut repo = test_repo();
        let sub = save_tree(&mut repo, vec![file("a", 1, 10), file("b", 2, 20)]);
        let first = save_tree(&mut repo, vec![dir("d", sub), file("c", 3, 5)]);
        let second = save_tree(&mut repo, vec![dir("d", sub), dir("e", sub)]);
        let one = snapshot_stats(&repo, [first]).expect("stats");
        assert_eq!((one.snapshots, one.files, one.dirs, one.restore_size), (1, 3, 1, 35));
        // Blobs: 2 trees + 3 content ids (not in the index: no sizes).
        assert_eq!(one.blobs, 5);
        let both = snapshot_stats(&repo, [first, second]).expect("stats");
        assert_eq!((both.snapshots, both.files, both.dirs, both.restore_size), (2, 7, 3, 95));
        assert_eq!(both.blobs, 6, "the shared subtree and its files are needed once");
        assert!(both.raw_size > 0 && both.stored_size > 0, "tree blobs have sizes in the index");
    }
}
