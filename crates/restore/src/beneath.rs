//! Every path a restore touches, resolved beneath its target without
//! following a symlink: one already in the target (planted there, or left
//! by an earlier restore of another snapshot) would otherwise carry the
//! restore's writes, chmods and chowns outside it. Directories are opened
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where the kernel
//! has it, else component by component with `O_NOFOLLOW`; the final name is
//! then used only through `*at` calls on that directory.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, ResolveFlag};
use nix::sys::stat::{Mode, SFlag};

/// The restore target, held open: every path below is resolved from it.
pub struct Beneath {
    /// Shared, not duplicated, by every name resolved in it.
    root: Arc<OwnedFd>,
    path: PathBuf,
}

/// A name in a directory opened beneath the target.
pub struct At {
    /// The directory (shared with its other names: no `dup` per file).
    pub dir: Arc<OwnedFd>,
    /// The name in it (one component).
    pub name: OsString,
}

/// What is at a name, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing.
    Nothing,
    /// A directory.
    Dir,
    /// A regular file, with its size and mtime.
    File { size: u64, mtime: (i64, u32) },
    /// A symlink.
    Symlink,
    /// Anything else (fifo, device, socket).
    Other,
}

/// Relative paths at least this long are resolved a component at a time.
const LONG_PATH: usize = 3072;

/// Set once openat2 turned out missing (kernels before 5.6, some sandboxes).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

fn in_the_way(found: Found, rel: &Path) -> io::Error {
    let what = match found {
        Found::Symlink => "a symlink",
        Found::File { .. } => "a file",
        Found::Dir => "a folder",
        Found::Other | Found::Nothing => "something else",
    };
    io::Error::other(format!(
        "{what} is in the way at {} (never followed or removed; --overwrite always replaces it)",
        rel.display()
    ))
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

impl Beneath {
    /// Creates the target folder if needed and opens it. The target itself
    /// is followed if it is a symlink: the user named it.
    pub fn open(target: &Path) -> io::Result<Self> {
        if target.is_file() {
            return Err(io::Error::other("it is a file; give a folder to restore into"));
        }
        std::fs::create_dir_all(target)?;
        Self::open_existing(target)
    }

    /// Opens the target folder, which must exist.
    pub fn open_existing(target: &Path) -> io::Result<Self> {
        let root = nix::fcntl::open(target, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?;
        Ok(Self { root: Arc::new(root), path: target.to_path_buf() })
    }

    /// The target as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the directory `rel` (relative to the target, plain names
    /// only), failing on any symlink on the way.
    pub fn dir(&self, rel: &Path) -> io::Result<Arc<OwnedFd>> {
        if rel.as_os_str().is_empty() {
            return Ok(self.root.clone());
        }
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(io::Error::other(format!("{}: not a plain relative path", rel.display())));
        }
        // One call resolves at most PATH_MAX bytes: longer paths (trees of
        // any depth restore) go component by component.
        let resolved = if NO_OPENAT2.load(Ordering::Relaxed) || rel.as_os_str().len() >= LONG_PATH {
            Err(Errno::ENOSYS)
        } else {
            let how = nix::fcntl::OpenHow::new()
                .flags(dir_flags())
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
            nix::fcntl::openat2(&*self.root, rel, how)
        };
        match resolved {
            Ok(fd) => Ok(Arc::new(fd)),
            Err(Errno::ENOSYS | Errno::EPERM) => {
                NO_OPENAT2.store(true, Ordering::Relaxed);
                self.dir_by_components(rel).map(Arc::new)
            }
            Err(Errno::ELOOP | Errno::ENOTDIR | Errno::EXDEV) => Err(self.explain(rel)),
            Err(e) => Err(e.into()),
        }
    }

    fn dir_by_components(&self, rel: &Path) -> io::Result<OwnedFd> {
        let mut fd = self.root.try_clone()?;
        for c in rel.components() {
            fd = match nix::fcntl::openat(&fd, c.as_os_str(), dir_flags(), Mode::empty()) {
                Ok(next) => next,
                Err(Errno::ELOOP | Errno::ENOTDIR) => return Err(self.explain(rel)),
                Err(e) => return Err(e.into()),
            };
        }
        Ok(fd)
    }

    /// Names the first component of `rel` that is not a directory.
    fn explain(&self, rel: &Path) -> io::Error {
        let mut fd = match self.root.try_clone() {
            Ok(fd) => fd,
            Err(e) => return e,
        };
        let mut so_far = PathBuf::new();
        for c in rel.components() {
            so_far.push(c);
            let found = found_at(&fd, c.as_os_str());
            if found != Found::Dir {
                return in_the_way(found, &so_far);
            }
            match nix::fcntl::openat(&fd, c.as_os_str(), dir_flags(), Mode::empty()) {
                Ok(next) => fd = next,
                Err(e) => return e.into(),
            }
        }
        io::Error::other(format!("{}: changed while being resolved", rel.display()))
    }

    /// Opens the directory holding `rel` and names `rel` in it.
    pub fn at(&self, rel: &Path) -> io::Result<At> {
        let name = rel.file_name().ok_or_else(|| io::Error::other(format!("{}: no file name", rel.display())))?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        Ok(At { dir: self.dir(parent)?, name: name.to_os_string() })
    }

    /// Lets this user write into the existing folder `rel` when it owns
    /// it: a read-only folder from an earlier restore (mode 0555) would
    /// refuse every file of this one. Its own mode is set again at the end.
    pub fn make_writable(&self, rel: &Path) -> io::Result<()> {
        let at = self.at(rel)?;
        let st = nix::sys::stat::fstatat(&at.dir, at.name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let mode = st.st_mode & 0o7777;
        if st.st_uid == nix::unistd::geteuid().as_raw() && mode & 0o700 != 0o700 {
            let flag = nix::sys::stat::FchmodatFlags::FollowSymlink;
            // Checked above to be a folder, not a symlink.
            nix::sys::stat::fchmodat(
                &at.dir,
                at.name.as_os_str(),
                Mode::from_bits_truncate((mode | 0o700) as _),
                flag,
            )?;
        }
        Ok(())
    }

    /// Creates the directory `rel` (its parent must exist) mode 0700, or
    /// keeps the one there. Anything else in the way is an error, or removed
    /// first with `replace` (a folder in the way is never removed).
    /// Returns whether it existed already.
    pub fn mkdir(&self, rel: &Path, replace: bool) -> io::Result<bool> {
        if rel.as_os_str().is_empty() {
            return Ok(true);
        }
        let at = self.at(rel)?;
        match nix::sys::stat::mkdirat(&at.dir, at.name.as_os_str(), Mode::from_bits_truncate(0o700)) {
            Ok(()) => Ok(false),
            Err(Errno::EEXIST) => match at.found() {
                Found::Dir => Ok(true),
                found if replace && found != Found::Nothing => {
                    at.unlink()?;
                    nix::sys::stat::mkdirat(&at.dir, at.name.as_os_str(), Mode::from_bits_truncate(0o700))?;
                    Ok(false)
                }
                found => Err(in_the_way(found, rel)),
            },
            Err(e) => Err(e.into()),
        }
    }
}

/// What is at `name` in `dir`, not following a symlink.
pub fn found_at(dir: &impl AsFd, name: &OsStr) -> Found {
    match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(_) => Found::Nothing,
        Ok(st) => match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFDIR => Found::Dir,
            SFlag::S_IFREG => Found::File { size: st.st_size as u64, mtime: (st.st_mtime, st.st_mtime_nsec as u32) },
            SFlag::S_IFLNK => Found::Symlink,
            _ => Found::Other,
        },
    }
}

impl At {
    /// What is there now.
    pub fn found(&self) -> Found {
        found_at(&self.dir, &self.name)
    }

    /// Another name in the same directory.
    pub fn sibling(&self, name: &OsStr) -> At {
        At { dir: self.dir.clone(), name: name.to_os_string() }
    }

    /// Creates a new file there, mode 0600 until its own metadata is set,
    /// never through a symlink. `Err(AlreadyExists)` when taken.
    pub fn create_new(&self) -> io::Result<File> {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        Ok(File::from(nix::fcntl::openat(&self.dir, self.name.as_os_str(), flags, Mode::from_bits_truncate(0o600))?))
    }

    /// Opens the file there, never through a symlink.
    pub fn open(&self, write: bool) -> io::Result<File> {
        let access = if write { OFlag::O_WRONLY } else { OFlag::O_RDONLY };
        let flags = access | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        Ok(File::from(nix::fcntl::openat(&self.dir, self.name.as_os_str(), flags, Mode::empty())?))
    }

    /// Removes what is there (not a directory).
    pub fn unlink(&self) -> io::Result<()> {
        Ok(nix::unistd::unlinkat(&self.dir, self.name.as_os_str(), nix::unistd::UnlinkatFlags::NoRemoveDir)?)
    }

    /// Renames this entry over `to` in the same directory (replacing a file
    /// or symlink there, not following it).
    pub fn rename_to(&self, to: &OsStr) -> io::Result<()> {
        Ok(nix::fcntl::renameat(&self.dir, self.name.as_os_str(), &self.dir, to)?)
    }

    /// A path naming this entry for calls that have no `*at` form (extended
    /// attributes of symlinks and special files): the directory through
    /// /proc, so the kernel still does not resolve anything above it.
    pub fn proc_path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        let mut p = PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd()));
        p.push(&self.name);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_on_the_way_is_never_followed() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let target = t.path().join("target");
        let b = Beneath::open(&target).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(outside.path(), target.join("link")).unwrap_or_else(|e| panic!("{e}"));
        for rel in ["link", "link/sub"] {
            let e = b.mkdir(Path::new(rel), false).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("a symlink is in the way at link"), "{rel}: {e}");
            // Both ways of resolving say so.
            let e = b.dir_by_components(Path::new(rel)).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("a symlink is in the way at link"), "{rel}: {e}");
        }
        assert_eq!(std::fs::read_dir(outside.path()).map(|d| d.count()).unwrap_or(1), 0);
        // Replaced on request: the link goes, the folder outside stays.
        assert_eq!(b.mkdir(Path::new("link"), true).ok(), Some(false));
        assert!(target.join("link").symlink_metadata().is_ok_and(|m| m.is_dir()));
        assert!(outside.path().is_dir());
        assert!(b.dir(Path::new("../x")).is_err());
    }
}
