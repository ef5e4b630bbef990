//! Where an entry of the sources is, and how the walk and the readers reach
//! it: through the open descriptor of the folder that holds it, by its name
//! there and without following a symlink, then checked to be what the walk
//! looked at: the same folder, or a regular file (perhaps a new one saved
//! over the old).
//!
//! A path is resolved again at every use. When files were opened by path,
//! an entry swapped for a symlink (or a folder on the way swapped for a
//! link to another) between the walk's look and the read led elsewhere:
//! root's backup of a user's folder stored another user's secret as the
//! user's own file, for a restore to hand over; a FIFO put in a file's place
//! hung the backup on its open. A folder's descriptor also reaches entries
//! below any depth, paths longer than `PATH_MAX` included.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_format::tree::{Bytes, Xattr};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::metadata::{self, Stat};

/// An entry: its path in the snapshot (excludes, messages) and how to reach it.
#[derive(Clone)]
pub struct Place {
    pub logical: PathBuf,
    at: At,
}

#[derive(Clone)]
enum At {
    /// A source named on the command line: by its path, a symlink followed
    /// (the user asked for what it points to, as `cp -H` does).
    Source,
    /// An entry of a folder being walked: its name in the open folder.
    In(Arc<OwnedFd>),
}

/// Why an entry could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Not the entry the walk saw: swapped for a symlink, for an entry of
    /// another kind, or (a folder) for another folder while the backup ran.
    Replaced,
    Io(io::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Replaced => {
                write!(f, "replaced by another entry while the backup ran; not read (the next backup reads it)")
            }
            Self::Io(e) => e.fmt(f),
        }
    }
}

impl Place {
    /// A source named on the command line.
    pub fn source(path: &Path) -> Self {
        Self { logical: path.to_path_buf(), at: At::Source }
    }

    /// The entry `name` of the open folder `dir`, whose path is `self`.
    pub fn child(&self, dir: &Arc<OwnedFd>, name: &[u8]) -> Self {
        let name = OsStr::from_bytes(name);
        let mut logical = PathBuf::with_capacity(self.logical.as_os_str().len() + 1 + name.len());
        logical.push(&self.logical);
        logical.push(name);
        Self { logical, at: At::In(dir.clone()) }
    }

    fn name(&self) -> &OsStr {
        self.logical.file_name().unwrap_or(OsStr::new("."))
    }

    /// Opens the entry with `flags`, refusing a symlink; answers what it
    /// opened.
    fn open(&self, flags: OFlag) -> Result<(OwnedFd, Stat), OpenError> {
        let flags = flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
        let opened = match &self.at {
            At::Source => nix::fcntl::open(&self.logical, flags, Mode::empty()),
            At::In(dir) => nix::fcntl::openat(dir.as_fd(), self.name(), flags | OFlag::O_NOFOLLOW, Mode::empty()),
        };
        let fd = match opened {
            Ok(fd) => fd,
            // O_NOFOLLOW met a symlink; O_DIRECTORY a non-folder.
            Err(nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR) => return Err(OpenError::Replaced),
            Err(e) => return Err(OpenError::Io(e.into())),
        };
        let now = nix::sys::stat::fstat(&fd).map_err(|e| OpenError::Io(e.into()))?;
        Ok((fd, Stat::from(now)))
    }

    /// Opens the folder the walk saw here, to list it: the same inode, as
    /// a folder can only be renamed over an empty one.
    pub fn open_dir(&self, seen: &Stat) -> Result<OwnedFd, OpenError> {
        let (fd, now) = self.open(OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        if !seen.same_inode(&now) {
            return Err(OpenError::Replaced);
        }
        Ok(fd)
    }

    /// Opens the regular file found here, to read it, and answers its
    /// metadata; never blocks (a FIFO in its place is refused, not waited
    /// on). It may be another file than the one the walk saw: editors and
    /// package managers save by renaming a new file over the old, and what
    /// the name holds now is what the user has; the caller records the
    /// metadata answered here, not the walk's. Anything but a regular file
    /// is refused.
    pub fn open_file(&self) -> Result<(File, Stat), OpenError> {
        let (fd, now) = self.open(OFlag::O_RDONLY | OFlag::O_NONBLOCK)?;
        if now.mode & nix::libc::S_IFMT != nix::libc::S_IFREG {
            return Err(OpenError::Replaced);
        }
        Ok((File::from(fd), now))
    }

    /// A symlink's target. `Replaced` when the entry is no symlink any
    /// more; not found when it is gone.
    pub fn read_link(&self) -> Result<Bytes, OpenError> {
        let target = match &self.at {
            At::Source => std::fs::read_link(&self.logical).map(|t| t.into_os_string()),
            At::In(dir) => nix::fcntl::readlinkat(dir.as_fd(), self.name()).map_err(io::Error::from),
        };
        match target {
            Ok(target) => Ok(Bytes(target.as_bytes().to_vec())),
            // EINVAL: not a symlink (any more).
            Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => Err(OpenError::Replaced),
            Err(e) => Err(OpenError::Io(e)),
        }
    }

    /// Extended attributes of an entry that is not opened (a symlink, a
    /// device, a FIFO, a socket): there is no `llistxattrat`, so through
    /// the folder's descriptor in /proc, by path where /proc is missing.
    pub fn xattrs(&self) -> Vec<Xattr> {
        match &self.at {
            At::Source => metadata::xattrs_of_path(&self.logical, true),
            At::In(dir) => {
                use std::os::fd::AsRawFd;
                let proc = Path::new("/proc/self/fd").join(dir.as_raw_fd().to_string());
                if proc.exists() {
                    metadata::xattrs_of_path(&proc.join(self.name()), false)
                } else {
                    metadata::xattrs_of_path(&self.logical, false)
                }
            }
        }
    }
}
