//! The one walk over a snapshot's tree: depth first, entries in a tree's
//! (sorted) order, every path built once. `ls`, `find` and the other
//! readers of whole trees are visitors; the walk loads trees through an
//! [`ExpansionGuard`], so a hostile tree graph that expands without bound
//! is refused for every one of them alike.

use cairn_format::BlobId;
use cairn_format::tree::{Bytes, Node, NodeKind, Tree};
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

    /// Called instead of going below a folder whose tree cannot be read
    /// (damaged, missing, or refused as expanding without end). By default
    /// the walk stops with that error; a visitor that reports damage
    /// (`check`) notes it and lets the walk go on with the next entry.
    fn unreadable(&mut self, _path: &Bytes, _node: &Node, error: RepoError) -> Result<(), Self::Error> {
        Err(error.into())
    }
}

/// Walks the tree `root`, whose own path is `prefix` (empty for a snapshot's
/// root), calling `visitor` for every entry below it. A root tree that
/// cannot be read is the walk's error.
pub fn walk<V: Visitor>(
    repo: &IndexedRepository,
    root: &BlobId,
    prefix: &[u8],
    visitor: &mut V,
) -> Result<(), V::Error> {
    let mut guard = ExpansionGuard::default();
    let mut path = Bytes(prefix.to_vec());
    let tree = guard.load(repo, root)?;
    walk_nodes(repo, &mut guard, &tree, &mut path, visitor)
}

fn walk_nodes<V: Visitor>(
    repo: &IndexedRepository,
    guard: &mut ExpansionGuard,
    tree: &Tree,
    path: &mut Bytes,
    visitor: &mut V,
) -> Result<(), V::Error> {
    let len = path.0.len();
    for node in &tree.nodes {
        path.0.truncate(len);
        path.0.push(b'/');
        path.0.extend_from_slice(&node.name.0);
        let step = visitor.visit(path, node)?;
        if let Some(sub) = node.subtree.filter(|_| node.kind == NodeKind::Dir && step == Step::Descend) {
            match guard.load(repo, &sub) {
                Ok(subtree) => {
                    walk_nodes(repo, guard, &subtree, path, visitor)?;
                    visitor.leave(path, node)?;
                }
                Err(e) => visitor.unreadable(path, node, e)?,
            }
        }
    }
    path.0.truncate(len);
    Ok(())
}
