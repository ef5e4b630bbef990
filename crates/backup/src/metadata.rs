//! Reading a file's metadata into a tree node (everything but its content).

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
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

/// What `lstat` says of an entry (`stat` for a source named on the command
/// line, whose symlink is followed): all a node needs but names, target and
/// extended attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub mode: u32,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub mtime: Time,
    pub ctime: Time,
}

impl From<&Metadata> for Stat {
    fn from(md: &Metadata) -> Self {
        Self {
            mode: md.mode(),
            dev: md.dev(),
            ino: md.ino(),
            nlink: md.nlink(),
            uid: md.uid(),
            gid: md.gid(),
            rdev: md.rdev(),
            size: md.size(),
            mtime: Time(md.mtime(), md.mtime_nsec() as u32),
            ctime: Time(md.ctime(), md.ctime_nsec() as u32),
        }
    }
}

impl From<nix::sys::stat::FileStat> for Stat {
    // The field types of `struct stat` differ between targets.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    fn from(st: nix::sys::stat::FileStat) -> Self {
        Self {
            mode: st.st_mode as u32,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            nlink: st.st_nlink as u64,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev as u64,
            size: st.st_size as u64,
            mtime: Time(st.st_mtime as i64, st.st_mtime_nsec as u32),
            ctime: Time(st.st_ctime as i64, st.st_ctime_nsec as u32),
        }
    }
}

impl Stat {
    /// The node kind of its file type.
    pub fn kind(&self) -> NodeKind {
        match self.mode & nix::libc::S_IFMT {
            nix::libc::S_IFDIR => NodeKind::Dir,
            nix::libc::S_IFLNK => NodeKind::Symlink,
            nix::libc::S_IFIFO => NodeKind::Fifo,
            nix::libc::S_IFSOCK => NodeKind::Socket,
            nix::libc::S_IFCHR => NodeKind::Chardev,
            nix::libc::S_IFBLK => NodeKind::Blockdev,
            _ => NodeKind::File,
        }
    }

    /// Whether `other` is the same inode of the same kind: what was opened
    /// is what the walk looked at.
    pub fn same_inode(&self, other: &Stat) -> bool {
        self.dev == other.dev
            && self.ino == other.ino
            && self.mode & nix::libc::S_IFMT == other.mode & nix::libc::S_IFMT
    }
}

/// Extended attributes of `path` (not following symlinks, or following
/// them with `deref`). Errors, such as a file system without xattr
/// support, give an empty list.
pub fn xattrs_of_path(path: &Path, deref: bool) -> Vec<Xattr> {
    let names = if deref { xattr::list_deref(path) } else { xattr::list(path) };
    let Ok(names) = names else {
        return Vec::new();
    };
    let get = |n: &std::ffi::OsStr| if deref { xattr::get_deref(path, n) } else { xattr::get(path, n) };
    sorted(names.filter_map(|n| Some(Xattr { name: Bytes(n.as_bytes().to_vec()), value: get(&n).ok().flatten()? })))
}

/// Extended attributes of an open file or directory.
pub fn xattrs_of_fd(fd: std::os::fd::BorrowedFd<'_>) -> Vec<Xattr> {
    use xattr::FileExt;
    // `FileExt` is implemented for `File` only; any open descriptor does.
    struct Fd<'a>(std::os::fd::BorrowedFd<'a>);
    impl std::os::fd::AsRawFd for Fd<'_> {
        fn as_raw_fd(&self) -> std::os::fd::RawFd {
            self.0.as_raw_fd()
        }
    }
    impl FileExt for Fd<'_> {}
    let f = Fd(fd);
    let Ok(names) = f.list_xattr() else {
        return Vec::new();
    };
    sorted(
        names
            .filter_map(|n| Some(Xattr { name: Bytes(n.as_bytes().to_vec()), value: f.get_xattr(&n).ok().flatten()? })),
    )
}

fn sorted(xattrs: impl Iterator<Item = Xattr>) -> Vec<Xattr> {
    let mut out: Vec<Xattr> = xattrs.collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The extended attributes of `parent` (the same path's node in the parent
/// snapshot) when its inode and ctime are unchanged, so they need not be
/// read again (setting or removing one changes the ctime): this spares a
/// no-change backup one `llistxattr` per file.
pub fn parent_xattrs(parent: Option<&Node>, md: &Stat) -> Option<Vec<Xattr>> {
    parent.filter(|p| p.inode == md.ino && p.ctime == md.ctime && p.kind == md.kind()).map(|p| p.xattrs.clone())
}

/// Builds the node of an entry from its metadata; its symlink `target` and
/// `xattrs` are read by the caller, which knows how to reach the entry.
/// Content and subtree are filled later.
pub fn node(name: &[u8], md: &Stat, names: &NameCache, target: Option<Bytes>, xattrs: Vec<Xattr>) -> Node {
    let kind = md.kind();
    Node {
        name: Bytes(name.to_vec()),
        kind,
        mode: md.mode,
        uid: md.uid,
        gid: md.gid,
        user: names.user(md.uid),
        group: names.group(md.gid),
        mtime: md.mtime,
        ctime: md.ctime,
        size: if kind == NodeKind::File { md.size } else { 0 },
        inode: md.ino,
        device: md.dev,
        links: md.nlink,
        rdev: if matches!(kind, NodeKind::Chardev | NodeKind::Blockdev) { md.rdev } else { 0 },
        content: Vec::new(),
        subtree: None,
        // The walk stores no link whose target it could not read; an empty
        // target is what snapshots before that hold for one.
        target: if kind == NodeKind::Symlink { Some(target.unwrap_or_default()) } else { None },
        xattrs,
    }
}

/// Whether the regular file `md` describes is exactly `old`, its node in
/// the parent snapshot (the node [`node`] would build, with `old`'s
/// content), decided without building one: the names are compared, not
/// copied, and the extended attributes are `old`'s when inode and ctime
/// are.
pub fn same_file(old: &Node, md: &Stat, names: &NameCache) -> bool {
    old.kind == NodeKind::File
        && md.kind() == NodeKind::File
        && old.size == md.size
        && old.mtime == md.mtime
        && old.ctime == md.ctime
        && old.inode == md.ino
        && old.device == md.dev
        && old.links == md.nlink
        && old.mode == md.mode
        && old.uid == md.uid
        && old.gid == md.gid
        && old.rdev == 0
        && old.subtree.is_none()
        && old.target.is_none()
        && names.user_is(md.uid, &old.user)
        && names.group_is(md.gid, &old.group)
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
