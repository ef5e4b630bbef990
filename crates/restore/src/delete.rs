//! `restore --delete`: make the restored folders of the target equal the
//! snapshot's. Planned first — every entry in a folder the restore writes
//! that the snapshot's folder does not have (unless a pattern keeps it out
//! of the restore's business: excluded, or not included) — into the plan,
//! and removed by the restore only after it wrote everything without an
//! error (a failed restore deletes nothing), before folders get their times.
//! Everything is resolved beneath the target without following a symlink:
//! a link is removed, never what it points to; a folder is emptied through
//! its own descriptor, entry by entry.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;

use crate::beneath::{Beneath, Found, found_at};
use crate::plan::{ItemKind, Plan, Select};

/// An entry of the target the snapshot does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extra {
    /// Its path below the target.
    pub rel: PathBuf,
    /// What it is.
    pub found: Found,
}

/// The names in an open folder (not following it: `fd` is the folder).
fn names_in(fd: &OwnedFd) -> io::Result<Vec<OsString>> {
    // The descriptor's /proc entry names the folder already open, so
    // nothing above it is resolved again.
    let listed = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    listed.map(|e| e.map(|e| e.file_name())).collect()
}

/// The entries to delete so that the folders `plan` restores hold only
/// what the snapshot has. Folders not there yet, or not reachable without
/// a symlink, have nothing to delete.
///
/// `backed_up` are the snapshot's paths: only folders at or below one of
/// them are the snapshot's. The folders above them (`/`, `/home` for a
/// backup of `/home/me`) were only made to hold them; what else the target
/// has there was never backed up, so it is left alone.
pub fn extras(plan: &Plan, target: &Path, select: &Select<'_>, backed_up: &[String]) -> io::Result<Vec<Extra>> {
    let Ok(root) = Beneath::open_existing(target) else { return Ok(Vec::new()) };
    let is_backed_up = |dir: &str| backed_up.iter().any(|p| at_or_below(dir, p));
    let wanted: HashSet<&Path> = plan.items.iter().map(|i| i.rel.as_path()).collect();
    // Each folder in scope and its path in the snapshot (for the patterns).
    let mut folders: HashMap<PathBuf, String> = HashMap::new();
    if plan.root_is_folder {
        folders.insert(PathBuf::new(), select.path.unwrap_or("").trim_end_matches('/').to_string());
    }
    for item in plan.items.iter().filter(|i| i.kind == ItemKind::Dir) {
        folders.insert(item.rel.clone(), item.snapshot_path.clone());
    }
    let mut out = Vec::new();
    let mut ordered: Vec<(&PathBuf, &String)> = folders.iter().collect();
    ordered.sort();
    for (rel, snap_dir) in ordered {
        if !is_backed_up(snap_dir) {
            continue;
        }
        let Ok(fd) = root.dir(rel) else { continue };
        let mut names = names_in(&fd)?;
        names.sort();
        for name in names {
            let child = rel.join(&name);
            if wanted.contains(child.as_path()) {
                continue;
            }
            let snap_path = format!("{snap_dir}/{}", name.to_string_lossy());
            let left_alone = select.exclude.matches(&snap_path)
                || (!select.include.is_empty() && !select.include.matches(&snap_path));
            if !left_alone {
                out.push(Extra { rel: child, found: found_at(&fd, &name) });
            }
        }
    }
    Ok(out)
}

/// Whether snapshot path `dir` (`""` or `/` for the root) is `path` or
/// below it.
fn at_or_below(dir: &str, path: &str) -> bool {
    let (dir, path) = (dir.trim_end_matches('/'), path.trim_end_matches('/'));
    path.is_empty() || dir == path || dir.strip_prefix(path).is_some_and(|rest| rest.starts_with('/'))
}

/// Removes `name` in the folder `dir`, and for a folder everything in it
/// first, never following a symlink.
fn remove(dir: &impl AsFd, name: &OsStr) -> io::Result<()> {
    if found_at(dir, name) != Found::Dir {
        return Ok(nix::unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)?);
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let sub = nix::fcntl::openat(dir, name, flags, Mode::empty())?;
    for child in names_in(&sub)? {
        remove(&sub, &child)?;
    }
    Ok(nix::unistd::unlinkat(dir, name, UnlinkatFlags::RemoveDir)?)
}

/// Deletes the planned extras beneath `root`; returns how many went, and
/// the failures (path and reason) of those that could not.
pub(crate) fn delete_extras(root: &Beneath, extras: &[Extra]) -> (u64, Vec<(PathBuf, io::Error)>) {
    let (mut removed, mut failed) = (0, Vec::new());
    for x in extras {
        match root.at(&x.rel).and_then(|at| remove(&at.dir, &at.name)) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => failed.push((x.rel.clone(), e)),
        }
    }
    (removed, failed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_folders_at_or_below_a_backed_up_path_are_the_snapshots() {
        use super::at_or_below;
        assert!(at_or_below("/home/me", "/home/me") && at_or_below("/home/me/docs", "/home/me"));
        assert!(at_or_below("", "/") && at_or_below("/etc", "/"));
        assert!(!at_or_below("/home", "/home/me") && !at_or_below("", "/home/me"));
        assert!(!at_or_below("/home/meta", "/home/me"), "a name that only starts the same");
    }
}
