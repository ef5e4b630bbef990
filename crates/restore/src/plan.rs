//! Deciding what a restore writes: a flat list in tree order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cairn_format::BlobId;
use cairn_format::tree::{Node, NodeKind};
use cairn_repo::IndexedRepository;
use cairn_repo::expansion::ExpansionGuard;

use crate::RestoreError;
use cairn_repo::pattern::Matcher;

/// What an item is restored as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKind {
    /// A directory (created first, metadata set last).
    Dir,
    /// A file whose content is written.
    File,
    /// A hard link to the earlier item with this index.
    HardLink(usize),
    /// Symlink, fifo, device or socket.
    Special,
}

/// One thing to restore.
#[derive(Debug, Clone)]
pub struct Item {
    /// Path in the snapshot, e.g. `/home/me/a.txt`.
    pub snapshot_path: String,
    /// Where it is written (for messages).
    pub target: PathBuf,
    /// Where it is written, relative to the restore target: what restore
    /// resolves, beneath the target (beneath.rs).
    pub rel: PathBuf,
    /// How.
    pub kind: ItemKind,
    /// Its node (metadata and content).
    pub node: Node,
}

/// Everything a restore will write, directories before their contents.
#[derive(Debug, Default)]
pub struct Plan {
    /// Items in tree order.
    pub items: Vec<Item>,
}

impl Plan {
    /// Bytes of file content to write.
    pub fn total_bytes(&self) -> u64 {
        self.items.iter().filter(|i| i.kind == ItemKind::File).map(|i| i.node.size).sum()
    }
}

struct Planner<'a> {
    repo: &'a IndexedRepository,
    include: &'a Matcher,
    exclude: &'a Matcher,
    links: HashMap<(u64, u64), usize>,
    target: &'a Path,
    items: Vec<Item>,
    guard: ExpansionGuard,
}

impl Planner<'_> {
    fn push(&mut self, snapshot_path: String, target: PathBuf, kind: ItemKind, node: &Node) {
        let rel = target.strip_prefix(self.target).map(Path::to_path_buf).unwrap_or_default();
        self.items.push(Item { snapshot_path, target, rel, kind, node: node.clone() });
    }

    /// Adds `node` (and below); returns whether anything was added.
    fn add(
        &mut self,
        node: &Node,
        snap_path: String,
        target: PathBuf,
        included_above: bool,
    ) -> Result<bool, RestoreError> {
        if self.exclude.matches(&snap_path) {
            return Ok(false);
        }
        let included = included_above || self.include.is_empty() || self.include.matches(&snap_path);
        match node.kind {
            NodeKind::Dir => {
                let at = self.items.len();
                self.push(snap_path.clone(), target.clone(), ItemKind::Dir, node);
                let mut any = included;
                if let Some(sub) = node.subtree {
                    any |= self.add_tree(&sub, &snap_path, &target, included)?;
                }
                if !any {
                    self.items.truncate(at);
                }
                Ok(any)
            }
            _ if !included => Ok(false),
            NodeKind::File => {
                let mut kind = ItemKind::File;
                if node.links > 1 {
                    match self.links.get(&(node.device, node.inode)) {
                        Some(first) => kind = ItemKind::HardLink(*first),
                        None => {
                            self.links.insert((node.device, node.inode), self.items.len());
                        }
                    }
                }
                self.push(snap_path, target, kind, node);
                Ok(true)
            }
            _ => {
                self.push(snap_path, target, ItemKind::Special, node);
                Ok(true)
            }
        }
    }

    fn add_tree(
        &mut self,
        tree: &BlobId,
        snap_dir: &str,
        target_dir: &Path,
        included: bool,
    ) -> Result<bool, RestoreError> {
        let tree = self.guard.load(self.repo, tree)?;
        let mut any = false;
        for n in &tree.nodes {
            let name = String::from_utf8_lossy(&n.name.0);
            let snap_path =
                if snap_dir.ends_with('/') { format!("{snap_dir}{name}") } else { format!("{snap_dir}/{name}") };
            let target = target_dir.join(std::ffi::OsStr::from_bytes(&n.name.0));
            any |= self.add(n, snap_path, target, included)?;
        }
        Ok(any)
    }
}

use std::os::unix::ffi::OsStrExt;

/// Plans restoring the snapshot tree `root`, or only `path` inside it, into
/// `target`. A directory path restores its contents into `target`; a file
/// path restores that file as `target/<name>`.
pub fn plan(
    repo: &IndexedRepository,
    root: &BlobId,
    path: Option<&str>,
    target: &Path,
    include: &Matcher,
    exclude: &Matcher,
) -> Result<Plan, RestoreError> {
    let mut p = Planner {
        repo,
        include,
        exclude,
        links: HashMap::new(),
        target,
        items: Vec::new(),
        guard: ExpansionGuard::default(),
    };
    let path = path.map(|s| s.trim_end_matches('/')).filter(|s| !s.is_empty());
    match path {
        None => {
            p.add_tree(root, "/", target, false)?;
        }
        Some(path) => {
            let node = repo
                .find_node(root, path.as_bytes())?
                .ok_or_else(|| cairn_repo::RepoError::PathNotFound(path.to_string()))?;
            let snap_path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(sub)) => {
                    let included = include.is_empty() || include.matches(&snap_path);
                    p.add_tree(&sub, &snap_path, target, included)?;
                }
                _ => {
                    let t = target.join(std::ffi::OsStr::from_bytes(&node.name.0));
                    p.add(&node, snap_path, t, false)?;
                }
            }
        }
    }
    Ok(Plan { items: p.items })
}
