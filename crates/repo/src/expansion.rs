//! A bound on walks that expand every path of a snapshot (`ls`, restore's
//! plan). Trees are content-addressed, so a tree may name one subtree many
//! times, and a chain of such trees expands exponentially: forty levels of
//! two references each list 2^40 entries from forty trees. A snapshot made
//! by backup never does that (a directory's entries carry inode numbers, so
//! its tree is its own), so a walk that visits non-empty trees far more
//! often than there are distinct ones is refused as hostile or damaged.
//! Recently decoded trees are kept (up to [`CACHE_BYTES`]), so a folder
//! repeated many times (identical folders share a tree) costs one
//! decryption; the distinct trees are counted by id, which is all the
//! bound needs, so a walk's memory does not grow with the snapshot's size.

use std::collections::HashSet;
use std::sync::Arc;

use cairn_format::BlobId;
use cairn_format::tree::Tree;

use crate::lru::Lru;
use crate::{IndexedRepository, RepoError};

/// Decoded trees kept for a walk, by an estimate of their size in memory.
/// Only trees met again hit it (a backup gives every folder a tree of its
/// own), so it is kept small: at 8 MiB it filled with trees a depth-first
/// walk never revisits.
pub const CACHE_BYTES: u64 = 1 << 20;

/// Memory a decoded tree entry takes, about (the node, its name, owner
/// names and blob ids, and the allocator's share).
const BYTES_PER_NODE: u64 = 400;

/// Visits of non-empty trees allowed beyond [`PER_TREE`] per distinct one.
pub const BASE_VISITS: u64 = 100_000;
/// Visits allowed per distinct non-empty tree (a bind mount seen twice,
/// a folder copied a few times with its inode numbers: far below this).
pub const PER_TREE: u64 = 100;

/// Loads trees for one expanding walk and refuses a tree graph that
/// expands without bound.
pub struct ExpansionGuard {
    trees: Lru<BlobId, Tree>,
    /// Distinct non-empty trees loaded.
    seen: HashSet<BlobId>,
    /// Visits of non-empty trees.
    visits: u64,
}

impl Default for ExpansionGuard {
    fn default() -> Self {
        Self { trees: Lru::new(CACHE_BYTES), seen: HashSet::new(), visits: 0 }
    }
}

impl ExpansionGuard {
    /// The tree `id`, counted as one more visit.
    pub fn load(&mut self, repo: &IndexedRepository, id: &BlobId) -> Result<Arc<Tree>, RepoError> {
        let tree = match self.trees.get(id) {
            Some(t) => t,
            None => {
                let t = Arc::new(repo.load_tree(id)?);
                self.trees.insert(*id, t.clone(), 64 + BYTES_PER_NODE * t.nodes.len() as u64);
                if !t.nodes.is_empty() {
                    self.seen.insert(*id);
                }
                t
            }
        };
        if tree.nodes.is_empty() {
            return Ok(tree);
        }
        self.visits += 1;
        let distinct = self.seen.len() as u64;
        if self.visits > BASE_VISITS + PER_TREE * distinct {
            return Err(RepoError::corrupt(
                format!("tree {}", id.short()),
                format!(
                    "the snapshot's folders refer to the same trees over and over ({} visits of {distinct} distinct trees), \
                     which no backup writes: refused rather than expanded without end",
                    self.visits
                ),
            ));
        }
        Ok(tree)
    }
}
