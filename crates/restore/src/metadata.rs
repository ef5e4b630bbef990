//! Applying a node's metadata to a restored path: ownership (as root),
//! extended attributes, mode and times, in that order: chown clears setuid
//! bits and file capabilities (`security.capability`), a read-only mode
//! would forbid an unprivileged user setting `user.*` attributes, and every
//! change moves the ctime and every write the mtime.

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cairn_format::tree::{Node, NodeKind};
use filetime::FileTime;
use xattr::FileExt;

/// What metadata is applied to: a path, or a file still open after its
/// content was written (no path lookup per call, and done by the worker
/// that wrote it rather than by one thread at the end).
pub enum Target<'a> {
    /// By name; a symlink itself, never what it points to.
    Path(&'a Path),
    /// An open regular file.
    File(&'a File),
}

/// Applies metadata; returns a description of each part that failed.
pub fn apply(target: Target, node: &Node, as_root: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if as_root {
        let owned = match target {
            Target::Path(p) => std::os::unix::fs::lchown(p, Some(node.uid), Some(node.gid)),
            Target::File(f) => std::os::unix::fs::fchown(f, Some(node.uid), Some(node.gid)),
        };
        if let Err(e) = owned {
            problems.push(format!("ownership: {e}"));
        }
    }
    for x in &node.xattrs {
        let name = std::ffi::OsStr::from_bytes(&x.name.0);
        let set = match target {
            Target::Path(p) => xattr::set(p, name, &x.value),
            Target::File(f) => f.set_xattr(name, &x.value),
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
            Target::Path(p) => std::fs::set_permissions(p, mode),
            Target::File(f) => f.set_permissions(mode),
        };
        if let Err(e) = set {
            problems.push(format!("mode: {e}"));
        }
    }
    let mtime = FileTime::from_unix_time(node.mtime.0, node.mtime.1);
    let set = match target {
        Target::Path(p) => filetime::set_symlink_file_times(p, mtime, mtime),
        Target::File(f) => filetime::set_file_handle_times(f, Some(mtime), Some(mtime)),
    };
    if let Err(e) = set {
        problems.push(format!("times: {e}"));
    }
    problems
}
