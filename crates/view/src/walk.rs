//! The one walk over a snapshot's tree: depth first, entries in a tree's
//! (sorted) order, every path built once. `ls`, `find` and the other
//! readers of whole trees are visitors; the walk loads trees through an
//! [`ExpansionGuard`], so a hostile tree graph that expands without bound
//! is refused for every one of them alike.

use cairn_format::BlobId;
use cairn_format::tree::{Bytes, Node, NodeKind};
use cairn_repo::expansion::ExpansionGuard;
use cairn_repo::{IndexedRepository, RepoError};

/// What the walk does below a folder just visited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Visit its entries.
    Descend,
    /// Leave them out (the visitor already knows what is there).
    Skip,
}

/// What a walk calls for each entry.
pub trait Visitor {
    /// The visitor's error; a repository failure must convert into it.
    type Error: From<RepoError>;

    /// Called for every entry, `path` being its full path from the walk's
    /// start (`/a/b`). For a folder, the answer says whether to go below.
    fn visit(&mut self, path: &Bytes, node: &Node) -> Result<Step, Self::Error>;

    /// Called after the entries below a folder were visited.
    fn leave(&mut self, _path: &Bytes, _node: &Node) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Walks the tree `root`, whose own path is `prefix` (empty for a snapshot's
/// root), calling `visitor` for every entry below it.
pub fn walk<V: Visitor>(
    repo: &IndexedRepository,
    root: &BlobId,
    prefix: &[u8],
    visitor: &mut V,
) -> Result<(), V::Error> {
    let mut guard = ExpansionGuard::default();
    let mut path = Bytes(prefix.to_vec());
    walk_tree(repo, &mut guard, root, &mut path, visitor)
}

fn walk_tree<V: Visitor>(
    repo: &IndexedRepository,
    guard: &mut ExpansionGuard,
    tree: &BlobId,
    path: &mut Bytes,
    visitor: &mut V,
) -> Result<(), V::Error> {
    let tree = guard.load(repo, tree)?;
    let len = path.0.len();
    for node in &tree.nodes {
        path.0.truncate(len);
        path.0.push(b'/');
        path.0.extend_from_slice(&node.name.0);
        let step = visitor.visit(path, node)?;
        if let Some(sub) = node.subtree.filter(|_| node.kind == NodeKind::Dir && step == Step::Descend) {
            walk_tree(repo, guard, &sub, path, visitor)?;
            visitor.leave(path, node)?;
        }
    }
    path.0.truncate(len);
    Ok(())
}
