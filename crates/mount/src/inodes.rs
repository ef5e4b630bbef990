//! Inode numbers for what the kernel has seen: each (parent, name) gets
//! one number for the life of the mount, so `ls -i` and `find` see stable
//! numbers. A snapshot's entries never change; a layout name (`latest`,
//! a time name after a forget) may come to mean something else, and then
//! gets a new number. The names of one hard-link group in a snapshot share
//! one number, as on the disk they came from, so `tar`, `rsync -H` and
//! `find -samefile` see the group.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_format::tree::{Node, NodeKind};
use cairn_view::SnapshotRef;

/// The root's inode number (FUSE's).
pub const ROOT: u64 = 1;

/// What an inode is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A name of the layout (folder or `latest` link), looked up again in
    /// the current layout on each use.
    Layout,
    /// A snapshot's root folder.
    Snapshot(SnapshotRef),
    /// An entry of a snapshot's tree.
    Node(Arc<Node>),
}

/// One inode: where it is and what it is.
#[derive(Debug, Clone)]
pub struct Inode {
    pub parent: u64,
    pub name: Vec<u8>,
    pub kind: Kind,
    /// The snapshot root it lies below (0 for the layout's names).
    pub snapshot: u64,
}

/// Every inode handed out so far.
pub struct Inodes {
    list: Vec<Inode>,
    by_name: HashMap<(u64, Vec<u8>), u64>,
    /// Hard-link groups: (snapshot root, device, inode on that device).
    links: HashMap<(u64, u64, u64), u64>,
}

impl Inodes {
    /// A table holding only the root.
    pub fn new() -> Self {
        let root = Inode { parent: ROOT, name: Vec::new(), kind: Kind::Layout, snapshot: 0 };
        Self { list: vec![root], by_name: HashMap::new(), links: HashMap::new() }
    }

    /// The inode `ino`.
    pub fn get(&self, ino: u64) -> Option<&Inode> {
        self.list.get(usize::try_from(ino.checked_sub(1)?).ok()?)
    }

    /// The number for `name` in `parent` being `kind`: the one it had if it
    /// is still the same thing, else a new one.
    pub fn intern(&mut self, parent: u64, name: &[u8], kind: Kind) -> u64 {
        let key = (parent, name.to_vec());
        if let Some(&ino) = self.by_name.get(&key)
            && self.get(ino).is_some_and(|i| same(&i.kind, &kind))
        {
            return ino;
        }
        let snapshot = match self.get(parent) {
            Some(Inode { kind: Kind::Snapshot(_), .. }) => parent,
            Some(i) => i.snapshot,
            None => 0,
        };
        let group = match &kind {
            Kind::Node(n) if snapshot != 0 && n.kind == NodeKind::File && n.links > 1 => {
                Some((snapshot, n.device, n.inode))
            }
            _ => None,
        };
        if let Some(&ino) = group.as_ref().and_then(|g| self.links.get(g)) {
            self.by_name.insert(key, ino);
            return ino;
        }
        self.list.push(Inode { parent, name: name.to_vec(), kind, snapshot });
        let ino = self.list.len() as u64;
        self.by_name.insert(key, ino);
        if let Some(g) = group {
            self.links.insert(g, ino);
        }
        ino
    }

    /// The names from the root down to `ino`.
    pub fn path(&self, mut ino: u64) -> Vec<Vec<u8>> {
        let mut names = Vec::new();
        while ino != ROOT {
            let Some(i) = self.get(ino) else { break };
            names.push(i.name.clone());
            ino = i.parent;
        }
        names.reverse();
        names
    }
}

/// Whether two kinds are the same thing (a snapshot by id, a node whole).
fn same(a: &Kind, b: &Kind) -> bool {
    match (a, b) {
        (Kind::Layout, Kind::Layout) => true,
        (Kind::Snapshot(x), Kind::Snapshot(y)) => x.id == y.id,
        (Kind::Node(x), Kind::Node(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_format::tree::NodeKind;

    #[test]
    fn a_name_keeps_its_number_until_it_means_something_else() {
        let mut t = Inodes::new();
        let ids = t.intern(ROOT, b"ids", Kind::Layout);
        assert_eq!(t.intern(ROOT, b"ids", Kind::Layout), ids);
        let f = Arc::new(Node::new(b"f", NodeKind::File));
        let a = t.intern(ids, b"f", Kind::Node(f.clone()));
        assert_eq!(t.intern(ids, b"f", Kind::Node(f)), a);
        let g = Arc::new(Node { size: 1, ..Node::new(b"f", NodeKind::File) });
        let b = t.intern(ids, b"f", Kind::Node(g));
        assert_ne!(a, b);
        assert_eq!(t.path(b), [b"ids".to_vec(), b"f".to_vec()]);
        assert!(t.get(0).is_none() && t.get(99).is_none());
    }

    #[test]
    fn hard_links_in_one_snapshot_share_a_number() {
        use cairn_format::{BlobId, SnapshotId};
        let mut t = Inodes::new();
        let snap = |n| SnapshotRef {
            id: SnapshotId::from_bytes([n; 32]),
            time: jiff::Timestamp::UNIX_EPOCH,
            tree: BlobId::from_bytes([n; 32]),
        };
        let (s1, s2) = (t.intern(ROOT, b"s1", Kind::Snapshot(snap(1))), t.intern(ROOT, b"s2", Kind::Snapshot(snap(2))));
        let linked = |name: &[u8]| Arc::new(Node { links: 2, device: 7, inode: 42, ..Node::new(name, NodeKind::File) });
        let a = t.intern(s1, b"a", Kind::Node(linked(b"a")));
        let dir = t.intern(s1, b"d", Kind::Node(Arc::new(Node::new(b"d", NodeKind::Dir))));
        assert_eq!(t.intern(dir, b"b", Kind::Node(linked(b"b"))), a);
        assert_ne!(t.intern(s2, b"a", Kind::Node(linked(b"a"))), a, "another snapshot, another file");
        let single = Arc::new(Node { links: 1, device: 7, inode: 42, ..Node::new(b"c", NodeKind::File) });
        assert_ne!(t.intern(s1, b"c", Kind::Node(single)), a);
    }
}
