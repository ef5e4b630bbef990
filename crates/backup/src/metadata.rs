//! Reading a file's metadata into a tree node (everything but its content).

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Mutex;

use cairn_format::tree::{Bytes, Node, NodeKind, Time, Xattr};

/// Caches uid/gid -> name look-ups, which hit NSS for every file otherwise.
#[derive(Default)]
pub struct NameCache {
    users: Mutex<HashMap<u32, Option<String>>>,
    groups: Mutex<HashMap<u32, Option<String>>>,
}

impl NameCache {
    /// `f` of `uid`'s name, looked up once per uid.
    fn with_user<R>(&self, uid: u32, f: impl FnOnce(&Option<String>) -> R) -> R {
        let mut m = self.users.lock().unwrap_or_else(|e| e.into_inner());
        f(m.entry(uid).or_insert_with(|| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten().map(|u| u.name)
        }))
    }

    /// `f` of `gid`'s name, looked up once per gid.
    fn with_group<R>(&self, gid: u32, f: impl FnOnce(&Option<String>) -> R) -> R {
        let mut m = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        f(m.entry(gid).or_insert_with(|| {
            nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)).ok().flatten().map(|g| g.name)
        }))
    }

    pub fn user(&self, uid: u32) -> Option<String> {
        self.with_user(uid, Clone::clone)
    }

    pub fn group(&self, gid: u32) -> Option<String> {
        self.with_group(gid, Clone::clone)
    }

    /// Whether `uid`'s name is `name`, without copying it.
    pub fn user_is(&self, uid: u32, name: &Option<String>) -> bool {
        self.with_user(uid, |n| n == name)
    }

    /// Whether `gid`'s name is `name`, without copying it.
    pub fn group_is(&self, gid: u32, name: &Option<String>) -> bool {
        self.with_group(gid, |n| n == name)
    }
}

/// The node kind of a file type, `None` for types cairn cannot represent.
pub fn kind_of(md: &Metadata) -> NodeKind {
    let ft = md.file_type();
    if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_socket() {
        NodeKind::Socket
    } else if ft.is_char_device() {
        NodeKind::Chardev
    } else if ft.is_block_device() {
        NodeKind::Blockdev
    } else {
        NodeKind::File
    }
}

/// Extended attributes of `path` (not following symlinks). Errors, such as a
/// file system without xattr support, give an empty list.
fn xattrs(path: &Path) -> Vec<Xattr> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<Xattr> = names
        .filter_map(|n| {
            let value = xattr::get(path, &n).ok().flatten()?;
            Some(Xattr { name: Bytes(n.as_bytes().to_vec()), value })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Builds the node for `path` from its `lstat` metadata. Content, subtree and
/// (for symlinks) target are filled by the caller. `parent` is the same
/// path's node in the parent snapshot, if any: when its inode and ctime are
/// unchanged its extended attributes are taken over instead of read again
/// (setting or removing one changes the ctime), which spares a no-change
/// backup one `llistxattr` per file.
pub fn node(name: &[u8], path: &Path, md: &Metadata, names: &NameCache, parent: Option<&Node>) -> Node {
    let kind = kind_of(md);
    let target = if kind == NodeKind::Symlink {
        std::fs::read_link(path).ok().map(|t| Bytes(t.as_os_str().as_bytes().to_vec()))
    } else {
        None
    };
    Node {
        name: Bytes(name.to_vec()),
        kind,
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        user: names.user(md.uid()),
        group: names.group(md.gid()),
        mtime: Time(md.mtime(), md.mtime_nsec() as u32),
        ctime: Time(md.ctime(), md.ctime_nsec() as u32),
        size: if kind == NodeKind::File { md.size() } else { 0 },
        inode: md.ino(),
        device: md.dev(),
        links: md.nlink(),
        rdev: if matches!(kind, NodeKind::Chardev | NodeKind::Blockdev) { md.rdev() } else { 0 },
        content: Vec::new(),
        subtree: None,
        // A dangling or unreadable link still gets a node; an empty target
        // marks that its text could not be read.
        target: if kind == NodeKind::Symlink { Some(target.unwrap_or_default()) } else { None },
        xattrs: match parent {
            Some(p) if p.inode == md.ino() && p.ctime == Time(md.ctime(), md.ctime_nsec() as u32) && p.kind == kind => {
                p.xattrs.clone()
            }
            _ => xattrs(path),
        },
    }
}

/// Whether the regular file `md` describes is exactly `old`, its node in
/// the parent snapshot (the node [`node`] would build, with `old`'s
/// content), decided without building one: the names are compared, not
/// copied, and the extended attributes are `old`'s when inode and ctime
/// are.
pub fn same_file(old: &Node, md: &Metadata, names: &NameCache) -> bool {
    old.kind == NodeKind::File
        && md.file_type().is_file()
        && old.size == md.size()
        && old.mtime == Time(md.mtime(), md.mtime_nsec() as u32)
        && old.ctime == Time(md.ctime(), md.ctime_nsec() as u32)
        && old.inode == md.ino()
        && old.device == md.dev()
        && old.links == md.nlink()
        && old.mode == md.mode()
        && old.uid == md.uid()
        && old.gid == md.gid()
        && old.rdev == 0
        && old.subtree.is_none()
        && old.target.is_none()
        && names.user_is(md.uid(), &old.user)
        && names.group_is(md.gid(), &old.group)
}

/// Whether a file can be taken from the parent snapshot without reading it.
pub fn unchanged(old: &Node, new: &Node) -> bool {
    old.kind == NodeKind::File
        && new.kind == NodeKind::File
        && old.size == new.size
        && old.mtime == new.mtime
        && old.ctime == new.ctime
        && old.inode == new.inode
}
