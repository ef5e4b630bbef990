//! Applying a node's metadata to a restored path: ownership (as root),
//! extended attributes, mode and times, in that order: chown clears setuid
//! bits and file capabilities (`security.capability`), a read-only mode
//! would forbid an unprivileged user setting `user.*` attributes, and every
//! change moves the ctime and every write the mtime.

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

use cairn_format::tree::{Node, NodeKind};
use filetime::FileTime;
use nix::fcntl::AtFlags;
use nix::sys::stat::{FchmodatFlags, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use xattr::FileExt;

use crate::beneath::{At, Found};

/// What metadata is applied to: a name in a directory opened beneath the
/// restore target, or a file still open after its content was written (no
/// path lookup per call, and done by the worker that wrote it rather than
/// by one thread at the end).
pub enum Target<'a> {
    /// By name; a symlink itself, never what it points to.
    At(&'a At),
    /// An open regular file.
    File(&'a File),
}

/// Applies metadata; returns a description of each part that failed.
pub fn apply(target: Target, node: &Node, as_root: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if as_root {
        let owned = match target {
            Target::At(at) => nix::unistd::fchownat(
                &at.dir,
                at.name.as_os_str(),
                Some(node.uid.into()),
                Some(node.gid.into()),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(std::io::Error::from),
            Target::File(f) => std::os::unix::fs::fchown(f, Some(node.uid), Some(node.gid)),
        };
        if let Err(e) = owned {
            problems.push(format!("ownership: {e}"));
        }
    }
    // A file or folder is opened (never through a symlink) for its
    // attributes; a symlink or special file, which cannot be opened
    // safely, is named through its directory's descriptor in /proc.
    let opened = match (&target, node.xattrs.is_empty(), node.kind) {
        (Target::At(at), false, NodeKind::File | NodeKind::Dir) => Some(at.open(false)),
        _ => None,
    };
    for x in &node.xattrs {
        let name = std::ffi::OsStr::from_bytes(&x.name.0);
        let set = match (&target, &opened) {
            (Target::File(f), _) => f.set_xattr(name, &x.value),
            (_, Some(Ok(f))) => f.set_xattr(name, &x.value),
            (_, Some(Err(e))) => Err(std::io::Error::new(e.kind(), e.to_string())),
            (Target::At(at), None) => xattr::set(at.proc_path(), name, &x.value),
        };
        // Unprivileged users cannot set trusted.* / security.* attributes.
        if let Err(e) = set
            && (as_root || x.name.0.starts_with(b"user."))
        {
            problems.push(format!("xattr {}: {e}", x.name.display()));
        }
    }
    if node.kind != NodeKind::Symlink {
        let mode = std::fs::Permissions::from_mode(node.mode & 0o7777);
        let set = match target {
            // fchmodat follows a symlink at the name; what is there was just
            // made by this restore, and is checked not to be one.
            Target::At(at) => match at.found() {
                Found::Symlink => Err(std::io::Error::other("a symlink is there now; not followed")),
                _ => nix::sys::stat::fchmodat(
                    &at.dir,
                    at.name.as_os_str(),
                    Mode::from_bits_truncate(mode.mode() as _),
                    FchmodatFlags::FollowSymlink,
                )
                .map_err(std::io::Error::from),
            },
            Target::File(f) => f.set_permissions(mode),
        };
        if let Err(e) = set {
            problems.push(format!("mode: {e}"));
        }
    }
    let mtime = FileTime::from_unix_time(node.mtime.0, node.mtime.1);
    let set = match target {
        Target::At(at) => {
            let t = TimeSpec::new(node.mtime.0, i64::from(node.mtime.1));
            nix::sys::stat::utimensat(&at.dir, at.name.as_os_str(), &t, &t, UtimensatFlags::NoFollowSymlink)
                .map_err(std::io::Error::from)
        }
        Target::File(f) => filetime::set_file_handle_times(f, Some(mtime), Some(mtime)),
    };
    if let Err(e) = set {
        problems.push(format!("times: {e}"));
    }
    problems
}
