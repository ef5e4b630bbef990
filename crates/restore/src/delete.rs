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
use cairn_format::BlobId;
use cairn_repo::IndexedRepository;

use crate::RestoreError;
use crate::plan::{ItemKind, Planned, Select, Start};

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

/// A folder of the target the restore writes: its path in the snapshot
/// (for the patterns) and the names the plan puts in it.
struct Folder {
    snapshot_path: String,
    names: HashSet<OsString>,
}

/// The entries to delete so that the folders the plan of `root` and
/// `select` restores into `target` hold only what the snapshot has.
/// Folders not there yet, or not reachable without a symlink, have
/// nothing to delete. Found as the plan goes: a folder's names are held
/// until the plan is done with it, so memory follows the tree's width;
/// with --strip-components, where folders of the snapshot merge into one
/// of the target, every folder's names are held to the end.
///
/// `backed_up` are the snapshot's paths: only folders at or below one of
/// them are the snapshot's. The folders above them (`/`, `/home` for a
/// backup of `/home/me`) were only made to hold them; what else the target
/// has there was never backed up, so it is left alone.
pub fn extras(
    repo: &IndexedRepository,
    root: &BlobId,
    select: &Select<'_>,
    target: &Path,
    backed_up: &[String],
) -> Result<Vec<Extra>, RestoreError> {
    let Ok(beneath) = Beneath::open_existing(target) else { return Ok(Vec::new()) };
    let failed = |e: io::Error| RestoreError::Target { path: target.display().to_string(), source: e };
    let is_backed_up = |dir: &str| backed_up.iter().any(|p| at_or_below(dir, p));
    let mut open: HashMap<PathBuf, Folder> = HashMap::new();
    let start = select.path.unwrap_or("").trim_end_matches('/').to_string();
    open.insert(PathBuf::new(), Folder { snapshot_path: start, names: HashSet::new() });
    let mut out = Vec::new();
    let scan = |rel: &Path, folder: Folder, out: &mut Vec<Extra>| -> io::Result<()> {
        if !is_backed_up(&folder.snapshot_path) {
            return Ok(());
        }
        let Ok(fd) = beneath.dir(rel) else { return Ok(()) };
        for name in names_in(&fd)? {
            if folder.names.contains(&name) {
                continue;
            }
            let snap_path = format!("{}/{}", folder.snapshot_path, name.to_string_lossy());
            let left_alone = select.exclude.matches(&snap_path)
                || (!select.include.is_empty() && !select.include.matches(&snap_path));
            if !left_alone {
                out.push(Extra { rel: rel.join(&name), found: found_at(&fd, &name) });
            }
        }
        Ok(())
    };
    let merge = select.strip_components > 0;
    let start = crate::plan::plan(repo, root, select, &mut |p| {
        match p {
            Planned::Item(item) => {
                let parent = item.rel.parent().unwrap_or(Path::new(""));
                if let (Some(f), Some(name)) = (open.get_mut(parent), item.rel.file_name()) {
                    f.names.insert(name.to_os_string());
                }
                if item.kind == ItemKind::Dir {
                    let folder = Folder { snapshot_path: item.snapshot_path, names: HashSet::new() };
                    open.entry(item.rel).or_insert(folder);
                }
            }
            Planned::Done(dir) if !merge => {
                if let Some(folder) = open.remove(&dir.rel) {
                    scan(&dir.rel, folder, &mut out).map_err(failed)?;
                }
            }
            Planned::Done(_) => {}
        }
        Ok(())
    })?;
    let mut rest: Vec<(PathBuf, Folder)> = open.into_iter().collect();
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    for (rel, folder) in rest {
        // Restoring one file: the target's own folder is not the snapshot's.
        if rel.as_os_str().is_empty() && start == Start::File {
            continue;
        }
        scan(&rel, folder, &mut out).map_err(failed)?;
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
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
