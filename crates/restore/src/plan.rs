//! Deciding what a restore writes: a stream of items in tree order, made by
//! a visitor of the one snapshot walk (cairn-view) and handed on as it
//! goes, so nothing holds every item of a large snapshot at once.

use std::collections::HashMap;
use std::path::PathBuf;

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
    /// A directory (created first, metadata set once all below it is written).
    Dir,
    /// A file whose content is written.
    File,
    /// A hard link to the file planned earlier at this path (below the target).
    HardLink(PathBuf),
    /// Symlink, fifo, device or socket.
    Special,
}

/// One thing to restore.
#[derive(Debug, Clone)]
pub struct Item {
    /// Path in the snapshot, e.g. `/home/me/a.txt`.
    pub snapshot_path: String,
    /// Where it is written, relative to the restore target: what restore
    /// resolves, beneath the target (beneath.rs).
    pub rel: PathBuf,
    /// How.
    pub kind: ItemKind,
    /// Its node (metadata and content).
    pub node: Node,
}

/// One step of a plan, in tree order.
#[derive(Debug, Clone)]
pub enum Planned {
    /// Something to write; a folder comes before what is in it.
    Item(Item),
    /// A folder planned earlier, everything below which has been planned
    /// since: once that is written, the folder can get its metadata.
    Done(Item),
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

/// A folder the walk is in. Its item is handed on only once it is
/// included or something below it is (with `--include`, a folder with
/// nothing matching below is left out), so until then it waits here.
struct Open {
    /// Its item; `None` when --strip-components takes its path.
    item: Option<Item>,
    /// Handed on already.
    emitted: bool,
    included: bool,
}

/// The restore plan as a visitor of the snapshot walk (cairn-view).
struct Planner<'a, 'f> {
    select: Select<'a>,
    /// First name of each hard-linked file (more than one link) planned so
    /// far: the only memory that grows with the snapshot, by its hard links.
    links: HashMap<(u64, u64), PathBuf>,
    /// Length of the start's own path: what is below it gives the target path.
    base: usize,
    included_at_start: bool,
    open: Vec<Open>,
    each: &'f mut dyn FnMut(Planned) -> Result<(), RestoreError>,
}

impl Planner<'_, '_> {
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

    /// Something below the open folders stays in the plan, so they stay
    /// too: those not handed on yet go first, outermost first.
    fn keep_folders(&mut self) -> Result<(), RestoreError> {
        for o in self.open.iter_mut().filter(|o| !o.emitted) {
            o.emitted = true;
            if let Some(item) = &o.item {
                (self.each)(Planned::Item(item.clone()))?;
            }
        }
        Ok(())
    }

    /// Hands on an item below the open folders (which stay, then).
    fn emit(&mut self, item: Item) -> Result<(), RestoreError> {
        self.keep_folders()?;
        (self.each)(Planned::Item(item))
    }
}

impl Visitor for Planner<'_, '_> {
    type Error = RestoreError;

    fn visit(&mut self, path: &Bytes, node: &Node) -> Result<Step, RestoreError> {
        let snapshot_path = path.display().into_owned();
        if self.select.exclude.matches(&snapshot_path) {
            return Ok(Step::Skip);
        }
        let above = self.open.last().map_or(self.included_at_start, |o| o.included);
        let included = above || self.select.include.is_empty() || self.select.include.matches(&snapshot_path);
        let rel = self.rel(path);
        let item = |rel, kind| Item { snapshot_path, rel, kind, node: node.clone() };
        match node.kind {
            NodeKind::Dir if node.subtree.is_some() => {
                self.open.push(Open { item: rel.map(|rel| item(rel, ItemKind::Dir)), emitted: false, included });
                if included {
                    self.keep_folders()?;
                }
                Ok(Step::Descend)
            }
            NodeKind::Dir => {
                // An empty folder: complete as soon as it is planned.
                if included {
                    self.keep_folders()?;
                    if let Some(rel) = rel {
                        let dir = item(rel, ItemKind::Dir);
                        (self.each)(Planned::Item(dir.clone()))?;
                        (self.each)(Planned::Done(dir))?;
                    }
                }
                Ok(Step::Skip)
            }
            _ if !included => Ok(Step::Skip),
            NodeKind::File => {
                let Some(rel) = rel else { return Ok(Step::Skip) };
                let mut kind = ItemKind::File;
                if node.links > 1 {
                    match self.links.get(&(node.device, node.inode)) {
                        Some(first) => kind = ItemKind::HardLink(first.clone()),
                        None => {
                            self.links.insert((node.device, node.inode), rel.clone());
                        }
                    }
                }
                self.emit(item(rel, kind))?;
                Ok(Step::Skip)
            }
            _ => {
                if let Some(rel) = rel {
                    self.emit(item(rel, ItemKind::Special))?;
                }
                Ok(Step::Skip)
            }
        }
    }

    fn leave(&mut self, _path: &Bytes, _node: &Node) -> Result<(), RestoreError> {
        if let Some(Open { item: Some(item), emitted: true, .. }) = self.open.pop() {
            (self.each)(Planned::Done(item))?;
        }
        Ok(())
    }
}

/// Where a restore starts in the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The snapshot's root or one of its folders, whose contents go
    /// straight into the target.
    Folder,
    /// One file, restored as `target/<name>`.
    File,
}

/// Plans restoring the part of the snapshot tree `root` that `select`
/// names, handing each step to `each` in tree order as the walk goes. A
/// folder restores its contents into the target; a file is restored
/// under its own name. An error of `each` stops the walk and is returned.
pub fn plan(
    repo: &IndexedRepository,
    root: &BlobId,
    select: &Select<'_>,
    each: &mut dyn FnMut(Planned) -> Result<(), RestoreError>,
) -> Result<Start, RestoreError> {
    let path = select.path.map(|s| s.trim_end_matches('/')).filter(|s| !s.is_empty());
    let mut p =
        Planner { select: *select, links: HashMap::new(), base: 0, included_at_start: false, open: Vec::new(), each };
    let Some(path) = path else {
        walk(repo, root, b"", &mut p)?;
        return Ok(Start::Folder);
    };
    let node =
        repo.find_node(root, path.as_bytes())?.ok_or_else(|| cairn_repo::RepoError::PathNotFound(path.to_string()))?;
    let snap_path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    match (node.kind, node.subtree) {
        (NodeKind::Dir, Some(sub)) => {
            p.base = snap_path.len();
            p.included_at_start = select.include.is_empty() || select.include.matches(&snap_path);
            walk(repo, &sub, snap_path.as_bytes(), &mut p)?;
            Ok(Start::Folder)
        }
        (NodeKind::Dir, None) => Ok(Start::Folder),
        _ => {
            // One file: restored under its own name, whatever --strip-components says.
            p.base = snap_path.len() - node.name.0.len();
            p.select.strip_components = 0;
            p.visit(&Bytes(snap_path.into_bytes()), &node)?;
            Ok(Start::File)
        }
    }
}

/// Bytes of file content the plan writes (hard links not counted): what a
/// progress display counts towards. One walk of the trees, without reading
/// any content.
pub fn total_bytes(repo: &IndexedRepository, root: &BlobId, select: &Select<'_>) -> Result<u64, RestoreError> {
    let mut total = 0;
    plan(repo, root, select, &mut |p| {
        if let Planned::Item(Item { kind: ItemKind::File, node, .. }) = p {
            total += node.size;
        }
        Ok(())
    })?;
    Ok(total)
}
