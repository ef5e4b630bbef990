//! Walking the sources and building trees bottom-up.
//!
//! The walker visits directories depth-first and, for each finished
//! directory, sends its entries to the tree builder, whose files may still be
//! being read. The builder takes directories in that (post-)order, waits for
//! each entry's content, stores the tree blob and answers the parent with the
//! subtree id. Both queues are bounded, so the walker runs at most a bounded
//! distance ahead of the readers.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_format::tree::{Node, NodeKind, Tree};
use cairn_format::{BlobId, BlobKind};
use crossbeam_channel::{Receiver, Sender, bounded};

use crate::Progress;
use crate::archiver::Stats;
use crate::delta::Choice;
use crate::exclude::Excludes;
use crate::metadata::{self, NameCache, Stat};
use crate::pipeline::BlobSink;
use crate::place::{OpenError, Place};
use crate::reader::{FileOutcome, FileToRead, ReadJob};
use crate::stream::{StreamSlot, stream_node};

/// An entry of a directory whose content may not be known yet.
pub enum Pending {
    /// Complete.
    Ready(Node),
    /// A file exactly as the parent snapshot's folder has it, at this
    /// position of its tree: no node is built for it, and a folder of
    /// such entries keeps its parent's tree as it is.
    Same(usize),
    /// A file being read: its outcome is the next one of the directory's
    /// reads. `is_new` when the parent snapshot did not have it.
    File { node: Node, is_new: bool },
    /// A stream being read (`--stdin`, `--stdin-from-command`).
    Stream { node: Node, rx: Receiver<FileOutcome>, is_new: bool },
    /// A directory whose tree is being built.
    Dir { node: Node, rx: Receiver<Option<BlobId>> },
}

/// A directory whose entries are all known or pending.
pub struct DirDone {
    pub entries: Vec<Pending>,
    /// The outcomes of its files being read, batch after batch, in the
    /// order of its [`Pending::File`] entries.
    pub reads: Vec<Receiver<Vec<FileOutcome>>>,
    /// The directory in the parent snapshot: when nothing in it changed,
    /// its tree is taken as it is instead of being encoded and hashed again.
    pub parent: Option<ParentDir>,
    pub reply: Sender<Option<BlobId>>,
}

/// A directory's tree in the parent snapshot, and the tree's id (`None`
/// for the snapshot's root, whose tree the archiver read).
pub struct ParentDir {
    pub id: Option<BlobId>,
    pub tree: Tree,
}

/// Everything the walker reads from.
pub struct Walker<'a> {
    pub sink: &'a BlobSink,
    pub excludes: &'a Excludes,
    pub names: &'a NameCache,
    pub force: bool,
    pub progress: &'a dyn Progress,
    pub stats: &'a Stats,
    /// Batches of small files ([`SMALL_FILE`]), for the many small-file readers.
    pub small_files: Sender<ReadJob>,
    /// Larger files one at a time, for the few readers that may hold a
    /// chunk of the largest size each.
    pub large_files: Sender<ReadJob>,
    pub dir_tx: Sender<DirDone>,
    /// The streams being read, by their index in the trie.
    pub streams: &'a [StreamSlot],
}

/// A batch of small files to read is handed to a reader when it holds this
/// many bytes or files: enough that the hand-off costs little beside
/// reading them, few enough that the readers share a folder of small files.
const BATCH_BYTES: u64 = 1 << 20;
const BATCH_FILES: usize = 128;

/// Files up to this size are read in batches by the small-file readers.
pub const SMALL_FILE: u64 = 1 << 20;

/// Where the walk found an entry.
#[derive(Clone, Copy)]
enum Found {
    /// Named on the command line: followed if a symlink, never excluded.
    Source,
    /// In a directory being walked, on this device.
    In { dev: u64 },
}

/// The files of one directory queued for reading, and the batches sent.
#[derive(Default)]
struct Reads {
    batch: Vec<FileToRead>,
    bytes: u64,
    sent: Vec<Receiver<Vec<FileOutcome>>>,
}

/// The outcomes of a directory's reads, one file after another.
struct Outcomes {
    batches: std::vec::IntoIter<Receiver<Vec<FileOutcome>>>,
    batch: std::vec::IntoIter<FileOutcome>,
}

impl Outcomes {
    /// The next file's outcome; `None` when its reader has gone.
    fn next(&mut self) -> Option<FileOutcome> {
        loop {
            if let Some(o) = self.batch.next() {
                return Some(o);
            }
            self.batch = self.batches.next()?.recv().ok()?.into_iter();
        }
    }
}

/// The source paths as a tree of path components, so the snapshot's root
/// holds the full absolute paths (`/home/me/docs` as `home` > `me` > `docs`);
/// streams are leaves naming their index.
#[derive(Default, Debug)]
pub struct SourceTrie {
    pub is_source: bool,
    pub stream: Option<usize>,
    pub children: BTreeMap<Vec<u8>, SourceTrie>,
}

impl SourceTrie {
    /// Builds the trie of `paths` (a path below another is covered by it)
    /// and of the stream paths `streams` (checked apart not to overlap them).
    pub fn new(paths: &[PathBuf], streams: &[&Path]) -> Self {
        let mut root = SourceTrie::default();
        for p in paths {
            let mut node = &mut root;
            for c in p.components() {
                if let std::path::Component::Normal(name) = c {
                    if node.is_source {
                        break;
                    }
                    node = node.children.entry(name.as_bytes().to_vec()).or_default();
                }
            }
            node.is_source = true;
            node.children.clear();
        }
        for (i, p) in streams.iter().enumerate() {
            let mut node = &mut root;
            for c in p.components() {
                if let std::path::Component::Normal(name) = c {
                    node = node.children.entry(name.as_bytes().to_vec()).or_default();
                }
            }
            node.stream = Some(i);
        }
        root
    }
}

impl Walker<'_> {
    fn warn(&self, msg: String) {
        self.stats.add_error();
        self.progress.warning(&msg);
    }

    fn load_parent_tree(&self, node: Option<&Node>) -> Option<ParentDir> {
        let id = node.filter(|n| n.kind == NodeKind::Dir)?.subtree?;
        match self.sink.repo().load_tree(&id) {
            Ok(tree) => Some(ParentDir { id: Some(id), tree }),
            Err(e) => {
                // Without the parent tree the directory is simply read again.
                self.progress.warning(&format!("parent tree {}: {e}; reading the directory in full", id.short()));
                None
            }
        }
    }

    /// Queues a file for reading; false when the readers are gone (the
    /// backup is failing).
    fn read(&self, reads: &mut Reads, file: FileToRead, size: u64) -> bool {
        if size > SMALL_FILE {
            // The batch before it first: outcomes are taken in entry order.
            return self.send_batch(reads) && self.send(&self.large_files, reads, vec![file]);
        }
        reads.batch.push(file);
        reads.bytes += size;
        reads.bytes < BATCH_BYTES && reads.batch.len() < BATCH_FILES || self.send_batch(reads)
    }

    fn send_batch(&self, reads: &mut Reads) -> bool {
        if reads.batch.is_empty() {
            return true;
        }
        reads.bytes = 0;
        let files = std::mem::take(&mut reads.batch);
        self.send(&self.small_files, reads, files)
    }

    fn send(&self, readers: &Sender<ReadJob>, reads: &mut Reads, files: Vec<FileToRead>) -> bool {
        let (reply, rx) = bounded(1);
        reads.sent.push(rx);
        readers.send(ReadJob { files, reply }).is_ok()
    }

    fn send_dir(&self, entries: Vec<Pending>, mut reads: Reads, parent: Option<ParentDir>) -> Receiver<Option<BlobId>> {
        let (reply, rx) = bounded(1);
        // A failed send closes the batch's reply: the builder sees the failure.
        self.send_batch(&mut reads);
        if self.dir_tx.send(DirDone { entries, reads: reads.sent, parent, reply }).is_err() {
            // The builder has gone (the backup is failing); the closed reply says so.
        }
        rx
    }

    /// Walks the virtual directories above and including the sources. When
    /// `/` itself is a source, the snapshot's root is the root directory.
    pub fn walk_virtual(&self, trie: &SourceTrie, path: &Path, parent: Option<ParentDir>) -> Receiver<Option<BlobId>> {
        if trie.is_source {
            return match path.metadata() {
                Ok(md) => {
                    let (place, md) = (Place::source(path), Stat::from(&md));
                    self.walk_opened(&place, place.open_dir(&md), parent, md.dev)
                }
                Err(e) => {
                    self.warn(format!("{}: {e}", path.display()));
                    self.send_dir(Vec::new(), Reads::default(), None)
                }
            };
        }
        let mut entries = Vec::new();
        let mut reads = Reads::default();
        for (name, child) in &trie.children {
            let child_path = path.join(std::ffi::OsStr::from_bytes(name));
            let parent_node = parent.as_ref().and_then(|p| p.tree.find(name));
            if let Some(i) = child.stream {
                let slot = &self.streams[i];
                let taken = slot.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(rx) = taken {
                    entries.push(Pending::Stream { node: stream_node(name), rx, is_new: slot.is_new });
                }
                continue;
            }
            if child.is_source {
                // A source named on the command line is followed when it is
                // a symlink (as `cp -H`, `tar -H`): the user asked for what it
                // points to. Below it, symlinks are stored as links.
                match child_path.metadata() {
                    Ok(md) => {
                        let place = Place::source(&child_path);
                        let md = Stat::from(&md);
                        if let Some(p) = self.entry(name, &place, &md, parent_node, Found::Source, &mut reads) {
                            entries.push(p);
                        }
                    }
                    Err(e) => self.warn(format!("{}: {e}", child_path.display())),
                }
                continue;
            }
            let mut node = match child_path.symlink_metadata() {
                Ok(md) if md.is_dir() => {
                    let xattrs = metadata::xattrs_of_path(&child_path, false);
                    metadata::node(name, &Stat::from(&md), self.names, None, xattrs)
                }
                _ => synthetic_dir(name),
            };
            let parent_tree = self.load_parent_tree(parent_node);
            let rx = self.walk_virtual(child, &child_path, parent_tree);
            node.kind = NodeKind::Dir;
            entries.push(Pending::Dir { node, rx });
        }
        self.send_dir(entries, reads, parent)
    }

    /// Walks the directory at `place` if it could be opened; warns and
    /// stores it empty if not.
    fn walk_opened(
        &self,
        place: &Place,
        opened: Result<OwnedFd, OpenError>,
        parent: Option<ParentDir>,
        dev: u64,
    ) -> Receiver<Option<BlobId>> {
        match opened {
            Ok(fd) => self.walk_dir(place, Arc::new(fd), parent, dev),
            Err(e) => {
                self.warn(format!("{}: cannot list directory: {e}", place.logical.display()));
                self.send_dir(Vec::new(), Reads::default(), None)
            }
        }
    }

    /// Walks one real directory, open as `fd`.
    fn walk_dir(&self, dir: &Place, fd: Arc<OwnedFd>, parent: Option<ParentDir>, dev: u64) -> Receiver<Option<BlobId>> {
        let mut entries = Vec::new();
        let mut reads = Reads::default();
        match list(&fd) {
            Ok((mut names, errors)) => {
                for e in errors {
                    self.warn(format!("{}: reading directory: {e}", dir.logical.display()));
                }
                names.sort_unstable();
                for name in names {
                    let child = dir.child(&fd, &name);
                    if self.excludes.is_excluded(&child.logical) {
                        continue;
                    }
                    // Relative to the open directory, not following symlinks.
                    let at = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
                    match nix::sys::stat::fstatat(fd.as_fd(), std::ffi::OsStr::from_bytes(&name), at) {
                        Ok(st) => {
                            let md = Stat::from(st);
                            let at =
                                parent.as_ref().and_then(|p| p.tree.position(&name).map(|i| (i, &p.tree.nodes[i])));
                            if let Some((i, old)) = at
                                && self.same_as_parent(old, &md)
                            {
                                self.stats.add_total(old.size);
                                self.stats.add_unchanged();
                                self.progress.bytes_skipped(old.size);
                                self.progress.file_done(&child.logical, old.size);
                                entries.push(Pending::Same(i));
                                continue;
                            }
                            if let Some(p) =
                                self.entry(&name, &child, &md, at.map(|(_, n)| n), Found::In { dev }, &mut reads)
                            {
                                entries.push(p);
                            }
                        }
                        // Vanished between listing and stat: not an error of the user's.
                        Err(nix::errno::Errno::ENOENT) => {}
                        Err(e) => self.warn(format!("{}: {}", child.logical.display(), std::io::Error::from(e))),
                    }
                }
            }
            Err(e) => self.warn(format!("{}: cannot list directory: {e}", dir.logical.display())),
        }
        self.send_dir(entries, reads, parent)
    }

    /// Whether a regular file is exactly as the parent snapshot has it
    /// (metadata and content still indexed): most files of a no-change
    /// backup, whose nodes (a name, two owner names and the content list
    /// each) were a fifth of its CPU in allocations.
    fn same_as_parent(&self, old: &Node, md: &Stat) -> bool {
        !self.force
            && !self.excludes.too_large(md.size)
            && metadata::same_file(old, md, self.names)
            && old.content.iter().all(|id| self.sink.repo().index().contains(id))
    }

    /// One entry: a file is queued for reading (or taken from the parent),
    /// a directory is walked. `None` when excluded.
    fn entry(
        &self,
        name: &[u8],
        place: &Place,
        md: &Stat,
        parent: Option<&Node>,
        found: Found,
        reads: &mut Reads,
    ) -> Option<Pending> {
        let is_source = matches!(found, Found::Source);
        let crosses_device = matches!(found, Found::In { dev } if md.dev != dev);
        let path = &place.logical;
        if !is_source && self.excludes.is_excluded(path) {
            return None;
        }
        let inherited = metadata::parent_xattrs(parent, md);
        match md.kind() {
            NodeKind::Dir => {
                let opened = place.open_dir(md);
                let xattrs = inherited.unwrap_or_else(|| match &opened {
                    Ok(fd) => metadata::xattrs_of_fd(fd.as_fd()),
                    Err(_) => place.xattrs(),
                });
                let node = metadata::node(name, md, self.names, None, xattrs);
                if let Ok(fd) = &opened
                    && self.excludes.has_marker(fd.as_fd())
                {
                    return None;
                }
                self.stats.add_dir();
                let rx = match opened {
                    Ok(fd) if crosses_device && (self.excludes.one_file_system || pseudo_fs(&fd)) => {
                        self.send_dir(Vec::new(), Reads::default(), None)
                    }
                    opened => {
                        let parent_tree = if opened.is_ok() { self.load_parent_tree(parent) } else { None };
                        self.walk_opened(place, opened, parent_tree, md.dev)
                    }
                };
                Some(Pending::Dir { node, rx })
            }
            NodeKind::File if !is_source && self.excludes.too_large(md.size) => None,
            NodeKind::File => {
                let read_xattrs = inherited.is_none();
                let mut node = metadata::node(name, md, self.names, None, inherited.unwrap_or_default());
                self.stats.add_total(node.size);
                if !self.force
                    && let Some(old) = parent
                    && metadata::unchanged(old, &node)
                    && old.content.iter().all(|id| self.sink.repo().index().contains(id))
                {
                    node.content = old.content.clone();
                    // Same inode and ctime: the attributes were taken over.
                    self.stats.add_unchanged();
                    self.progress.bytes_skipped(node.size);
                    self.progress.file_done(path, node.size);
                    return Some(Pending::Ready(node));
                }
                let parent_content =
                    parent.filter(|p| p.kind == NodeKind::File).map(|p| p.content.clone()).unwrap_or_default();
                let file = FileToRead { place: place.clone(), expected: *md, read_xattrs, parent_content };
                if !self.read(reads, file, node.size) {
                    return None;
                }
                Some(Pending::File { node, is_new: parent.is_none() })
            }
            kind => {
                let target = match kind {
                    NodeKind::Symlink => match place.read_link() {
                        Ok(target) => Some(target),
                        // Gone since the walk's look, as if never listed.
                        Err(OpenError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return None,
                        // A link without its target could not be restored.
                        Err(e) => {
                            self.warn(format!("{}: cannot read the link: {e}", path.display()));
                            return None;
                        }
                    },
                    _ => None,
                };
                let xattrs = inherited.unwrap_or_else(|| place.xattrs());
                Some(Pending::Ready(metadata::node(name, md, self.names, target, xattrs)))
            }
        }
    }
}

/// The names in the open directory `fd` (without `.` and `..`), and the
/// errors met reading them.
fn list(fd: &OwnedFd) -> std::io::Result<(Vec<Vec<u8>>, Vec<std::io::Error>)> {
    // Its own descriptor: the listing reads from it and closes it.
    let mut dir = nix::dir::Dir::from_fd(fd.try_clone()?)?;
    let (mut names, mut errors) = (Vec::new(), Vec::new());
    for e in dir.iter() {
        match e {
            Ok(e) => {
                let name = e.file_name().to_bytes();
                if name != b"." && name != b".." {
                    names.push(name.to_vec());
                }
            }
            Err(e) => {
                errors.push(e.into());
                break;
            }
        }
    }
    Ok((names, errors))
}

/// Kernel pseudo file systems: their files describe the running system
/// rather than hold data (sizes of 0 with content, `/proc/kcore` of 128 TiB),
/// so a backup stores their mount point as an empty directory and never
/// reads below it, whether or not `--one-file-system` is given.
/// Only checked where the device changes (a mount point), one `fstatfs` each.
fn pseudo_fs(dir: &OwnedFd) -> bool {
    nix::sys::statfs::fstatfs(dir).is_ok_and(|fs| is_pseudo(&fs))
}

/// Whether `path` is on a kernel pseudo file system (see [`pseudo_fs`]).
pub fn is_pseudo_fs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|fs| is_pseudo(&fs))
}

fn is_pseudo(fs: &nix::sys::statfs::Statfs) -> bool {
    // Magic numbers from linux/magic.h (nix names most, not all).
    const PSEUDO: &[i64] = &[
        0x9fa0,      // proc
        0x6265_6572, // sysfs
        0x1cd1,      // devpts
        0x0027_e0eb, // cgroup
        0x6367_7270, // cgroup2
        0x6462_6720, // debugfs
        0x7472_6163, // tracefs
        0x7363_6673, // securityfs
        0xcafe_4a11, // bpf
        0x6165_676c, // pstore
        0xde5e_81e4, // efivarfs
        0xf97c_ff8c, // selinuxfs
        0x6e73_6673, // nsfs
        0x4249_4e4d, // binfmt_misc
        0x6265_6570, // configfs
        0x6573_5546, // fusectl
        0x1980_0202, // mqueue
        0x0187,      // autofs
    ];
    // fs_type_t is i64 on glibc, an unsigned long on musl.
    #[allow(clippy::unnecessary_cast)]
    let magic = fs.filesystem_type().0 as i64;
    PSEUDO.contains(&magic)
}

/// A directory above the sources that cannot be stat'ed.
fn synthetic_dir(name: &[u8]) -> Node {
    Node { mode: 0o40755, ..Node::new(name, NodeKind::Dir) }
}

/// A folder's entry once its content is known. Held for one folder at a
/// time; boxing the nodes would cost the allocation per entry that `Same`
/// saves.
#[allow(clippy::large_enum_variant)]
enum Entry {
    Node(Node),
    /// The parent tree's node at this position.
    Same(usize),
}

/// Builds a tree for each finished directory, in the order they arrive.
/// Answers `None` to a directory's parent when the backup is failing.
pub fn build_trees(
    rx: Receiver<DirDone>,
    sink: BlobSink,
    names: Arc<NameCache>,
    progress: Arc<dyn Progress>,
    stats: Arc<Stats>,
) {
    for dir in rx {
        let mut entries: Vec<Entry> = Vec::with_capacity(dir.entries.len());
        let mut ok = true;
        let mut reads = Outcomes { batches: dir.reads.into_iter(), batch: Vec::new().into_iter() };
        for p in dir.entries {
            let (mut node, outcome, is_new) = match p {
                Pending::Ready(n) => {
                    entries.push(Entry::Node(n));
                    continue;
                }
                Pending::Same(i) => {
                    entries.push(Entry::Same(i));
                    continue;
                }
                Pending::Dir { mut node, rx } => {
                    match rx.recv() {
                        Ok(Some(id)) => {
                            node.subtree = Some(id);
                            entries.push(Entry::Node(node));
                        }
                        _ => ok = false,
                    }
                    continue;
                }
                Pending::File { node, is_new } => (node, reads.next(), is_new),
                Pending::Stream { node, rx, is_new } => (node, rx.recv().ok(), is_new),
            };
            match outcome {
                Some(FileOutcome::Done { content, size, changed, xattrs, saved_over }) => {
                    if let Some(msg) = changed {
                        stats.add_error();
                        progress.warning(&msg);
                    }
                    if let Some(md) = saved_over {
                        node = metadata::node(&node.name.0, &md, &names, None, Vec::new());
                    }
                    node.content = content;
                    node.size = size;
                    if let Some(xattrs) = xattrs {
                        node.xattrs = xattrs;
                    }
                    if is_new {
                        stats.add_new();
                    } else {
                        stats.add_changed();
                    }
                    entries.push(Entry::Node(node));
                }
                Some(FileOutcome::Failed(msg)) => {
                    stats.add_error();
                    progress.warning(&msg);
                }
                Some(FileOutcome::Vanished) => {}
                Some(FileOutcome::Aborted) | None => ok = false,
            }
        }
        if !ok {
            let _ = dir.reply.send(None);
            continue;
        }
        // Nothing changed below: the parent's tree, without encoding and
        // hashing it again (a quarter of a no-change backup's CPU was trees
        // encoded to find them stored already).
        if let Some(ParentDir { id: Some(id), tree: old }) = &dir.parent
            && entries.len() == old.nodes.len()
            && entries.iter().zip(&old.nodes).enumerate().all(|(k, (e, o))| match e {
                Entry::Same(i) => *i == k,
                Entry::Node(n) => n == o,
            })
            && sink.repo().index().contains(id)
        {
            let _ = dir.reply.send(Some(*id));
            continue;
        }
        let old = dir.parent.as_ref().map(|p| &p.tree.nodes);
        let mut tree = Tree {
            nodes: entries
                .into_iter()
                .filter_map(|e| match e {
                    Entry::Node(n) => Some(n),
                    // Only made for entries of the parent's tree.
                    Entry::Same(i) => old.map(|nodes| nodes[i].clone()),
                })
                .collect(),
        };
        let bytes = tree.encode();
        let id = sink.repo().repo().blob_id(&bytes);
        let sent = sink.submit(BlobKind::Tree, id, bytes, Choice::default()).is_ok();
        let _ = dir.reply.send(sent.then_some(id));
    }
}
