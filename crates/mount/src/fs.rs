//! The kernel's requests answered from a view: lookups and listings from
//! the layout and the snapshots' trees, attributes and extended attributes
//! from tree nodes, reads from the shared blob cache. Everything is
//! read-only and a snapshot never changes, so the kernel may keep what it
//! is told about a snapshot's entries (and their pages) for long; the
//! layout's own folders change when snapshots come or go, so they are
//! looked up again after a second.
//!
//! Round trips to the kernel are what a walk over many small files pays
//! for (about 90 µs each on the 2-core benchmark machine), so the file
//! system asks for as few as the kernel allows: listings carry every
//! entry's attributes (READDIRPLUS: no lookup per name afterwards), and
//! files and folders need no open or release (NO_OPEN_SUPPORT,
//! NO_OPENDIR_SUPPORT): a read names the inode, whose blob list or listing
//! is kept in a small cache.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_format::tree::{Node, NodeKind, Time};
use cairn_view::{Entry, FileContent, Lru, View, ViewError};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig,
    LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEntry, ReplyOpen,
    ReplyXattr, Request,
};

use crate::inodes::{Inode, Inodes, Kind, ROOT};

/// How long the kernel may keep a snapshot entry's attributes: they never change.
const SNAPSHOT_TTL: Duration = Duration::from_secs(3600);
/// How long for the layout's names, which change as snapshots come and go.
const LAYOUT_TTL: Duration = Duration::from_secs(1);

/// A folder's entries, listed once when it is opened.
type Listing = Arc<Vec<(u64, FileType, Vec<u8>)>>;

/// Bytes of blob lists kept for files read without an open (about 40 per
/// blob: a 1 GiB file's list is 40 KiB).
const CONTENT_CACHE_BYTES: u64 = 8 << 20;

/// Bytes of folder listings kept while they are read (a few calls each).
const LISTING_CACHE_BYTES: u64 = 8 << 20;

pub struct SnapshotFs {
    view: Arc<View>,
    inodes: RwLock<Inodes>,
    /// Blob lists by inode, for reads without an open.
    contents: Lru<u64, FileContent>,
    /// The kernel opens files without asking (it accepted NO_OPEN_SUPPORT).
    no_open: bool,
    /// Folder listings by inode, made when a listing starts (offset 0) and
    /// kept for the calls that continue it.
    listings: Lru<u64, Vec<(u64, FileType, Vec<u8>)>>,
    /// The kernel lists folders without opening them (NO_OPENDIR_SUPPORT).
    no_opendir: bool,
    /// Where each inode's last read ended: a read starting there is
    /// sequential, and the file's next blob is decoded ahead.
    read_ends: Mutex<HashMap<u64, u64>>,
    /// The layout's folders belong to whoever mounted.
    uid: u32,
    gid: u32,
    mounted_at: SystemTime,
}

/// What an inode resolves to now.
enum Resolved {
    /// A folder of the layout (the root too).
    Folder(cairn_view::Folder),
    /// A link of the layout, with its target.
    Link(String),
    /// A folder whose entries are a tree: a tree node's, or (without a
    /// node) a snapshot's root, shown with the snapshot's time.
    Tree { id: cairn_format::BlobId, node: Option<Arc<Node>>, time: SystemTime },
    /// Any other entry of a snapshot.
    Node(Arc<Node>),
}

/// A tree's `[seconds, nanoseconds]` (seconds may be before 1970).
fn system_time(t: Time) -> SystemTime {
    let secs = Duration::from_secs(t.0.unsigned_abs());
    let base = if t.0 >= 0 { UNIX_EPOCH + secs } else { UNIX_EPOCH - secs };
    base + Duration::from_nanos(u64::from(t.1.min(999_999_999)))
}

fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::File => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::Socket => FileType::Socket,
        NodeKind::Chardev => FileType::CharDevice,
        NodeKind::Blockdev => FileType::BlockDevice,
    }
}

impl SnapshotFs {
    pub fn new(view: Arc<View>) -> Self {
        Self {
            view,
            inodes: RwLock::new(Inodes::new()),
            contents: Lru::new(CONTENT_CACHE_BYTES),
            no_open: false,
            listings: Lru::new(LISTING_CACHE_BYTES),
            no_opendir: false,
            read_ends: Mutex::new(HashMap::new()),
            uid: nix_uid(),
            gid: nix_gid(),
            mounted_at: SystemTime::now(),
        }
    }

    fn inode(&self, ino: u64) -> Option<Inode> {
        self.inodes.read().unwrap_or_else(|p| p.into_inner()).get(ino).cloned()
    }

    /// The path of `ino` as the user sees it below the mount point.
    fn shown_path(&self, ino: u64) -> String {
        let names = self.inodes.read().unwrap_or_else(|p| p.into_inner()).path(ino);
        names.iter().map(|n| format!("/{}", String::from_utf8_lossy(n))).collect()
    }

    /// Reports a failure the kernel can only see as EIO, naming the path
    /// and the repository's error (which names the blob).
    fn report(&self, ino: u64, what: &str, e: &ViewError) -> Errno {
        eprintln!("cairn: mount: {what} {}: {e}", self.shown_path(ino));
        Errno::EIO
    }

    /// What `ino` is now; `None` if its layout name has gone (a forgotten snapshot).
    fn resolve(&self, ino: u64) -> Result<Option<Resolved>, Errno> {
        let Some(inode) = self.inode(ino) else { return Ok(None) };
        Ok(match inode.kind {
            Kind::Snapshot(s) => Some(Resolved::Tree {
                id: s.tree,
                node: None,
                time: system_time(Time(s.time.as_second(), s.time.subsec_nanosecond().max(0).unsigned_abs())),
            }),
            Kind::Node(n) => match (n.kind, n.subtree) {
                (NodeKind::Dir, Some(id)) => Some(Resolved::Tree { id, time: system_time(n.mtime), node: Some(n) }),
                _ => Some(Resolved::Node(n)),
            },
            Kind::Layout => {
                let names = self.inodes.read().unwrap_or_else(|p| p.into_inner()).path(ino);
                let (layout, error) = self.view.layout();
                if let Some(e) = error {
                    eprintln!("cairn: mount: listing snapshots (showing the last list read): {e}");
                }
                if names.is_empty() {
                    return Ok(Some(Resolved::Folder(layout.root().clone())));
                }
                let names: Vec<String> = names.iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect();
                match layout.get(names.iter().map(String::as_str)) {
                    Some(Entry::Folder(f)) => Some(Resolved::Folder(f.clone())),
                    Some(Entry::Link(t)) => Some(Resolved::Link(t.clone())),
                    // A layout name now naming a snapshot is interned as one; not this inode.
                    Some(Entry::Snapshot(_)) | None => None,
                }
            }
        })
    }

    fn attr(&self, ino: u64, what: &Resolved) -> (FileAttr, Duration) {
        let mut a = FileAttr {
            ino: INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: self.mounted_at,
            mtime: self.mounted_at,
            ctime: self.mounted_at,
            crtime: self.mounted_at,
            kind: FileType::Directory,
            perm: 0o555,
            nlink: 2,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        };
        match what {
            Resolved::Folder(_) => (a, LAYOUT_TTL),
            Resolved::Link(t) => {
                a.kind = FileType::Symlink;
                a.perm = 0o777;
                a.nlink = 1;
                a.size = t.len() as u64;
                (a, LAYOUT_TTL)
            }
            Resolved::Tree { node: None, time, .. } => {
                (FileAttr { atime: *time, mtime: *time, ctime: *time, crtime: *time, ..a }, SNAPSHOT_TTL)
            }
            Resolved::Tree { node: Some(n), .. } | Resolved::Node(n) => (node_attr(ino, n), SNAPSHOT_TTL),
        }
    }

    /// The entries of the folder `ino`, each interned.
    fn list(&self, ino: u64) -> Result<Listing, Errno> {
        let parent = self.inode(ino).map(|i| i.parent).unwrap_or(ROOT);
        let mut out = vec![(ino, FileType::Directory, b".".to_vec()), (parent, FileType::Directory, b"..".to_vec())];
        match self.resolve(ino)? {
            Some(Resolved::Folder(f)) => {
                let mut inodes = self.inodes.write().unwrap_or_else(|p| p.into_inner());
                for (name, entry) in f.entries() {
                    let (kind, ft) = match entry {
                        Entry::Folder(_) => (Kind::Layout, FileType::Directory),
                        Entry::Link(_) => (Kind::Layout, FileType::Symlink),
                        Entry::Snapshot(s) => (Kind::Snapshot(s.clone()), FileType::Directory),
                    };
                    out.push((inodes.intern(ino, name.as_bytes(), kind), ft, name.as_bytes().to_vec()));
                }
            }
            Some(Resolved::Tree { id, .. }) => {
                let tree = self.view.tree(&id).map_err(|e| self.report(ino, "listing", &e))?;
                let mut inodes = self.inodes.write().unwrap_or_else(|p| p.into_inner());
                for n in &tree.nodes {
                    let child = inodes.intern(ino, &n.name.0, Kind::Node(Arc::new(n.clone())));
                    out.push((child, file_type(n.kind), n.name.0.clone()));
                }
            }
            Some(_) => return Err(Errno::ENOTDIR),
            None => return Err(Errno::ENOENT),
        }
        Ok(Arc::new(out))
    }

    /// The listing of folder `ino` for a call starting at `offset`: made
    /// afresh at 0 (a layout folder may have changed), else the one a
    /// previous call made.
    fn listing(&self, ino: u64, offset: u64) -> Result<Listing, Errno> {
        if offset > 0
            && let Some(l) = self.listings.get(&ino)
        {
            return Ok(l);
        }
        let listing = self.list(ino)?;
        let cost = listing.iter().map(|(_, _, n)| 48 + n.len() as u64).sum();
        self.listings.insert(ino, listing.clone(), cost);
        Ok(listing)
    }

    fn lookup_child(&self, parent: u64, name: &[u8]) -> Result<u64, Errno> {
        let kind = match self.resolve(parent)? {
            Some(Resolved::Folder(f)) => {
                let name = std::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
                match f.get(name).ok_or(Errno::ENOENT)? {
                    Entry::Snapshot(s) => Kind::Snapshot(s.clone()),
                    Entry::Folder(_) | Entry::Link(_) => Kind::Layout,
                }
            }
            Some(Resolved::Tree { id, .. }) => {
                let tree = self.view.tree(&id).map_err(|e| self.report(parent, "listing", &e))?;
                Kind::Node(Arc::new(tree.find(name).ok_or(Errno::ENOENT)?.clone()))
            }
            Some(_) => return Err(Errno::ENOTDIR),
            None => return Err(Errno::ENOENT),
        };
        Ok(self.inodes.write().unwrap_or_else(|p| p.into_inner()).intern(parent, name, kind))
    }

    /// The blob list of the file `ino`.
    fn content(&self, ino: u64) -> Result<Arc<FileContent>, Errno> {
        if let Some(c) = self.contents.get(&ino) {
            return Ok(c);
        }
        let node = match self.resolve(ino)? {
            Some(Resolved::Node(n)) if n.kind == NodeKind::File => n,
            Some(Resolved::Node(_)) => return Err(Errno::EINVAL),
            Some(_) => return Err(Errno::EISDIR),
            None => return Err(Errno::ENOENT),
        };
        let content = Arc::new(FileContent::new(&*self.view, &node).map_err(|e| self.report(ino, "opening", &e))?);
        self.contents.insert(ino, content.clone(), 64 + 40 * node.content.len() as u64);
        Ok(content)
    }

    fn xattrs(&self, ino: u64) -> Vec<cairn_format::tree::Xattr> {
        match self.inode(ino).map(|i| i.kind) {
            Some(Kind::Node(n)) => n.xattrs.clone(),
            _ => Vec::new(),
        }
    }
}

fn node_attr(ino: u64, n: &Node) -> FileAttr {
    let mtime = system_time(n.mtime);
    FileAttr {
        ino: INodeNo(ino),
        size: match n.kind {
            NodeKind::Symlink => n.target.as_ref().map_or(0, |t| t.0.len() as u64),
            NodeKind::Dir => 0,
            _ => n.size,
        },
        blocks: n.size.div_ceil(512),
        atime: mtime,
        mtime,
        ctime: system_time(n.ctime),
        crtime: mtime,
        kind: file_type(n.kind),
        perm: (n.mode & 0o7777) as u16,
        nlink: if n.kind == NodeKind::Dir { 2 } else { u32::try_from(n.links.max(1)).unwrap_or(u32::MAX) },
        uid: n.uid,
        gid: n.gid,
        rdev: n.rdev as u32,
        blksize: 4096,
        flags: 0,
    }
}

fn nix_uid() -> u32 {
    // SAFETY: getuid and getgid cannot fail.
    unsafe { libc::getuid() }
}

fn nix_gid() -> u32 {
    // SAFETY: as above.
    unsafe { libc::getgid() }
}

/// Answers a size query (`size` 0) or the data, as getxattr and listxattr want.
fn reply_sized(reply: ReplyXattr, size: u32, data: &[u8]) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if (size as usize) < data.len() {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(data);
    }
}

impl Filesystem for SnapshotFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Larger read-ahead: chunks are about 1 MiB, and a sequential reader
        // then asks for more of one decoded blob per request.
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO);
        self.no_open = config.add_capabilities(InitFlags::FUSE_NO_OPEN_SUPPORT).is_ok();
        self.no_opendir = config.add_capabilities(InitFlags::FUSE_NO_OPENDIR_SUPPORT).is_ok();
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let ino = match self.lookup_child(parent.0, name.as_bytes()) {
            Ok(i) => i,
            Err(e) => return reply.error(e),
        };
        match self.resolve(ino) {
            Ok(Some(r)) => {
                let (attr, ttl) = self.attr(ino, &r);
                reply.entry(&ttl, &attr, Generation(0));
            }
            Ok(None) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.resolve(ino.0) {
            Ok(Some(r)) => {
                let (attr, ttl) = self.attr(ino.0, &r);
                reply.attr(&ttl, &attr);
            }
            Ok(None) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.resolve(ino.0) {
            Ok(Some(Resolved::Link(t))) => reply.data(t.as_bytes()),
            Ok(Some(Resolved::Node(n))) if n.kind == NodeKind::Symlink => {
                reply.data(n.target.as_ref().map_or(&[][..], |t| &t.0))
            }
            Ok(Some(_)) => reply.error(Errno::EINVAL),
            Ok(None) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        if let Err(e) = self.content(ino.0) {
            return reply.error(e);
        }
        if self.no_open {
            // The kernel takes this as "no open needed, for any file from now
            // on" and keeps the file's pages (an implied FOPEN_KEEP_CACHE).
            return reply.error(Errno::ENOSYS);
        }
        // Snapshots never change: the kernel may keep the pages it read.
        reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let content = match self.content(ino.0) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        let len = (size as u64).min(content.len().saturating_sub(offset)) as usize;
        let mut buf = vec![0u8; len];
        match content.read_at(&*self.view, offset, &mut buf) {
            Ok(n) => {
                reply.data(&buf[..n]);
                let end = offset + n as u64;
                let sequential = {
                    let mut ends = self.read_ends.lock().unwrap_or_else(|p| p.into_inner());
                    if ends.len() > 4096 {
                        ends.clear();
                    }
                    ends.insert(ino.0, end) == Some(offset) || offset == 0
                };
                if let Some(next) = content.blob_after(end.saturating_sub(1)).filter(|_| sequential && n > 0) {
                    self.view.prefetch(next);
                }
            }
            Err(e) => reply.error(self.report(ino.0, "reading", &e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.resolve(ino.0) {
            Ok(Some(Resolved::Folder(_) | Resolved::Tree { .. })) if self.no_opendir => reply.error(Errno::ENOSYS),
            Ok(Some(Resolved::Folder(_) | Resolved::Tree { .. })) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Ok(Some(_)) => reply.error(Errno::ENOTDIR),
            Ok(None) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let listing = match self.listing(ino.0, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        for (i, (ino, ft, name)) in listing.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *ft, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let listing = match self.listing(ino.0, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        for (i, (child, _, name)) in listing.iter().enumerate().skip(offset as usize) {
            let Ok(Some(r)) = self.resolve(*child) else { continue };
            let (attr, ttl) = self.attr(*child, &r);
            if reply.add(INodeNo(*child), (i + 1) as u64, OsStr::from_bytes(name), &ttl, &attr, Generation(0)) {
                break;
            }
        }
        reply.ok();
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.xattrs(ino.0).iter().find(|x| x.name.0 == name.as_bytes()) {
            Some(x) => reply_sized(reply, size, &x.value),
            None => reply.error(Errno::ENODATA),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let mut names = Vec::new();
        for x in self.xattrs(ino.0) {
            names.extend_from_slice(&x.name.0);
            names.push(0);
        }
        reply_sized(reply, size, &names);
    }
}
