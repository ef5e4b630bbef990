//! Deciding what a restore writes: a flat list in tree order, made by a
//! visitor of the one snapshot walk (cairn-view).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use cairn_format::BlobId;
use cairn_format::tree::{Bytes, Node, NodeKind};
use cairn_repo::IndexedRepository;
use cairn_view::walk::{Step, Visitor, walk};

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
    /// The restore's start is a folder (the snapshot's root or one of its
    /// folders), whose contents go straight into the target.
    pub root_is_folder: bool,
    /// What `--delete` removes from the target (`delete::extras`), after
    /// everything was written and before folders get their times.
    pub delete: Vec<crate::delete::Extra>,
}

impl Plan {
    /// Bytes of file content to write.
    pub fn total_bytes(&self) -> u64 {
        self.items.iter().filter(|i| i.kind == ItemKind::File).map(|i| i.node.size).sum()
    }
}

/// Which part of a snapshot a restore takes, and how its paths are laid
/// out below the target.
#[derive(Debug, Clone, Copy)]
pub struct Select<'a> {
    /// A folder or file of the snapshot (`/etc/nginx`); `None` for all.
    pub path: Option<&'a str>,
    /// Only paths matching these (and the folders above them); none: all.
    pub include: &'a Matcher,
    /// Never paths matching these, nor anything below them.
    pub exclude: &'a Matcher,
    /// Leading path components dropped below the restore's start, as `tar
    /// --strip-components`: entries with no more components than this are
    /// not restored (their contents are, one level up per component).
    pub strip_components: usize,
}

/// A folder the walk is in: where its item sits in the plan, whether it
/// was included, and whether anything was kept below it.
struct Open {
    at: usize,
    included: bool,
    kept: bool,
}

/// The restore plan as a visitor of the snapshot walk (cairn-view).
struct Planner<'a> {
    select: Select<'a>,
    links: HashMap<(u64, u64), usize>,
    target: &'a Path,
    /// Length of the start's own path: what is below it gives the target path.
    base: usize,
    included_at_start: bool,
    open: Vec<Open>,
    items: Vec<Item>,
}

impl Planner<'_> {
    /// The path below the target for snapshot path `path`, or `None` when
    /// --strip-components takes all of it.
    fn rel(&self, path: &Bytes) -> Option<PathBuf> {
        let below = &path.0[self.base.min(path.0.len())..];
        let mut parts = below.split(|b| *b == b'/').filter(|c| !c.is_empty()).skip(self.select.strip_components);
        let first = parts.next()?;
        let mut rel = PathBuf::from(OsStr::from_bytes(first));
        rel.extend(parts.map(OsStr::from_bytes));
        Some(rel)
    }

    fn push(&mut self, snapshot_path: String, rel: PathBuf, kind: ItemKind, node: &Node) {
        let target = self.target.join(&rel);
        self.items.push(Item { snapshot_path, target, rel, kind, node: node.clone() });
    }

    /// Something below the current folder stays in the plan, so it stays too.
    fn keep_folder(&mut self) {
        if let Some(o) = self.open.last_mut() {
            o.kept = true;
        }
    }
}

impl Visitor for Planner<'_> {
    type Error = RestoreError;

    fn visit(&mut self, path: &Bytes, node: &Node) -> Result<Step, RestoreError> {
        let snap_path = path.display().into_owned();
        if self.select.exclude.matches(&snap_path) {
            return Ok(Step::Skip);
        }
        let above = self.open.last().map_or(self.included_at_start, |o| o.included);
        let included = above || self.select.include.is_empty() || self.select.include.matches(&snap_path);
        let rel = self.rel(path);
        match node.kind {
            NodeKind::Dir => {
                let at = self.items.len();
                if let Some(rel) = rel {
                    self.push(snap_path, rel, ItemKind::Dir, node);
                }
                if node.subtree.is_some() {
                    // Kept if included or if anything below is (`leave`).
                    self.open.push(Open { at, included, kept: included });
                } else if included {
                    self.keep_folder();
                } else {
                    self.items.truncate(at);
                }
                Ok(Step::Descend)
            }
            _ if !included => Ok(Step::Skip),
            NodeKind::File => {
                let Some(rel) = rel else { return Ok(Step::Skip) };
                let mut kind = ItemKind::File;
                if node.links > 1 {
                    match self.links.get(&(node.device, node.inode)) {
                        Some(first) => kind = ItemKind::HardLink(*first),
                        None => {
                            self.links.insert((node.device, node.inode), self.items.len());
                        }
                    }
                }
                self.push(snap_path, rel, kind, node);
                self.keep_folder();
                Ok(Step::Skip)
            }
            _ => {
                if let Some(rel) = rel {
                    self.push(snap_path, rel, ItemKind::Special, node);
                    self.keep_folder();
                }
                Ok(Step::Skip)
            }
        }
    }

    fn leave(&mut self, _path: &Bytes, _node: &Node) -> Result<(), RestoreError> {
        if let Some(done) = self.open.pop() {
            if done.kept {
                self.keep_folder();
            } else {
                self.items.truncate(done.at);
            }
        }
        Ok(())
    }
}

/// Plans restoring the part of the snapshot tree `root` that `select`
/// names into `target`. A folder restores its contents into `target`; a
/// file is restored as `target/<name>`.
pub fn plan(repo: &IndexedRepository, root: &BlobId, select: &Select<'_>, target: &Path) -> Result<Plan, RestoreError> {
    let path = select.path.map(|s| s.trim_end_matches('/')).filter(|s| !s.is_empty());
    let mut p = Planner {
        select: *select,
        links: HashMap::new(),
        target,
        base: 0,
        included_at_start: false,
        open: Vec::new(),
        items: Vec::new(),
    };
    let Some(path) = path else {
        walk(repo, root, b"", &mut p)?;
        return Ok(Plan { items: p.items, root_is_folder: true, delete: Vec::new() });
    };
    let node =
        repo.find_node(root, path.as_bytes())?.ok_or_else(|| cairn_repo::RepoError::PathNotFound(path.to_string()))?;
    let snap_path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    let root_is_folder = node.kind == NodeKind::Dir;
    match (node.kind, node.subtree) {
        (NodeKind::Dir, Some(sub)) => {
            p.base = snap_path.len();
            p.included_at_start = select.include.is_empty() || select.include.matches(&snap_path);
            walk(repo, &sub, snap_path.as_bytes(), &mut p)?;
        }
        _ => {
            // One file: restored under its own name, whatever --strip-components says.
            p.base = snap_path.len() - node.name.0.len();
            p.select.strip_components = 0;
            p.visit(&Bytes(snap_path.into_bytes()), &node)?;
        }
    }
    Ok(Plan { items: p.items, root_is_folder, delete: Vec::new() })
}
