//! Applying a node's metadata to a restored path: ownership (as root),
//! mode, extended attributes and times, in that order (chown clears setuid
//! bits, and every write changes mtime).

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cairn_format::tree::{Node, NodeKind};
use filetime::FileTime;

/// Applies metadata; returns a description of each part that failed.
pub fn apply(path: &Path, node: &Node, as_root: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if as_root && let Err(e) = std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)) {
        problems.push(format!("ownership: {e}"));
    }
    if node.kind != NodeKind::Symlink
        && let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode & 0o7777))
    {
        problems.push(format!("mode: {e}"));
    }
    for x in &node.xattrs {
        if let Err(e) = xattr::set(path, std::ffi::OsStr::from_bytes(&x.name.0), &x.value) {
            // Unprivileged users cannot set trusted.* / security.* attributes.
            if as_root || x.name.0.starts_with(b"user.") {
                problems.push(format!("xattr {}: {e}", x.name.display()));
            }
        }
    }
    let mtime = FileTime::from_unix_time(node.mtime.0, node.mtime.1);
    if let Err(e) = filetime::set_symlink_file_times(path, mtime, mtime) {
        problems.push(format!("times: {e}"));
    }
    problems
}
