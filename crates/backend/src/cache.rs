//! The local cache of a remote repository's metadata: snapshots, index
//! files and tree packs, the files every command reads and which never
//! change once written (docs/FORMAT.md: every file is named by the BLAKE3
//! hash of its bytes).
//!
//! One folder per repository id under the user's cache directory. Every
//! read checks the content against its name, so a damaged or foreign file
//! is dropped and fetched again; the whole folder is safe to delete at any
//! time. Least recently used files go first when the size bound is hit.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::FileKind;

/// The default bound of one repository's cache.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;

/// A marker that backup tools skip (https://bford.info/cachedir/).
const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n# cairn's cache; safe to delete.\n";

/// One repository's cache folder.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
    /// Bytes this process believes the folder holds (others may add some;
    /// trimming recounts).
    size: AtomicU64,
}

/// Whether files of this kind are kept in the cache.
pub fn cacheable(kind: FileKind) -> bool {
    matches!(kind, FileKind::Snapshot | FileKind::Index | FileKind::TreePack)
}

impl Cache {
    /// Opens (creating) the cache folder `root/<repository id>`.
    pub fn open(root: &Path, repo_id: &str, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let tag = root.join("CACHEDIR.TAG");
        if !tag.exists() {
            std::fs::write(&tag, CACHEDIR_TAG)?;
        }
        let dir = root.join(repo_id);
        std::fs::create_dir_all(&dir)?;
        // The folder's mtime says when the cache was last used (`cairn cache`).
        let _ = std::fs::File::open(&dir).and_then(|f| f.set_modified(SystemTime::now()));
        let size = files(&dir).iter().map(|(_, len, _)| len).sum();
        Ok(Self { dir, max_bytes, size: AtomicU64::new(size) })
    }

    fn path(&self, kind: FileKind, name: &str) -> PathBuf {
        self.dir.join(kind.path(name))
    }

    /// The cached file, if present and intact.
    pub fn get(&self, kind: FileKind, name: &str) -> Option<Vec<u8>> {
        let path = self.path(kind, name);
        let bytes = std::fs::read(&path).ok()?;
        if blake3::hash(&bytes).to_hex().as_str() != name {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // Marks it recently used, for trimming.
        let _ = std::fs::File::options().append(true).open(&path).and_then(|f| f.set_modified(SystemTime::now()));
        Some(bytes)
    }

    /// Stores a file (best effort: a cache that cannot be written is no
    /// reason to fail a command).
    pub fn put(&self, kind: FileKind, name: &str, bytes: &[u8]) {
        if blake3::hash(bytes).to_hex().as_str() != name {
            return;
        }
        let path = self.path(kind, name);
        let Some(parent) = path.parent() else { return };
        let staging = parent.join(format!(".{name}.{}", std::process::id()));
        let stored = std::fs::create_dir_all(parent)
            .and_then(|()| std::fs::write(&staging, bytes))
            .and_then(|()| std::fs::rename(&staging, &path));
        if stored.is_err() {
            let _ = std::fs::remove_file(&staging);
            return;
        }
        if self.size.fetch_add(bytes.len() as u64, Ordering::Relaxed) + bytes.len() as u64 > self.max_bytes {
            self.trim();
        }
    }

    /// Forgets a file (deleted from the repository).
    pub fn remove(&self, kind: FileKind, name: &str) {
        if let Ok(m) = std::fs::metadata(self.path(kind, name))
            && std::fs::remove_file(self.path(kind, name)).is_ok()
        {
            self.size.fetch_sub(m.len().min(self.size.load(Ordering::Relaxed)), Ordering::Relaxed);
        }
    }

    /// Drops cached files of `kind` the repository no longer lists (a
    /// prune or forget by another process).
    pub fn retain(&self, kind: FileKind, listed: &HashSet<&str>) {
        let dir = self.dir.join(kind.dir());
        for (path, _, _) in files(&dir) {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if !listed.contains(name) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// Deletes least recently used files until the cache is at 80% of its bound.
    fn trim(&self) {
        let mut all = files(&self.dir);
        let mut size: u64 = all.iter().map(|(_, len, _)| len).sum();
        all.sort_by_key(|(_, _, used)| *used);
        for (path, len, _) in all {
            if size <= self.max_bytes / 5 * 4 {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                size -= len;
            }
        }
        self.size.store(size, Ordering::Relaxed);
    }
}

/// Every file under `dir`: path, size, last use.
fn files(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
            }
        }
    }
    out
}

/// A repository's cache folder, for `cairn cache`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CacheEntry {
    /// The repository id (the folder name).
    pub repository: String,
    /// Bytes held.
    pub bytes: u64,
    /// Files held.
    pub files: usize,
    /// Last use, seconds since the Unix epoch.
    pub last_used: u64,
}

/// The repository caches under `root`.
pub fn list_caches(root: &Path) -> Vec<CacheEntry> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else { return out };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(m) = e.metadata() else { continue };
        if !m.is_dir() || name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let f = files(&e.path());
        let last_used = m.modified().ok().and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok());
        out.push(CacheEntry {
            repository: name,
            bytes: f.iter().map(|(_, len, _)| len).sum(),
            files: f.len(),
            last_used: last_used.map_or(0, |d| d.as_secs()),
        });
    }
    out.sort_by(|a, b| a.repository.cmp(&b.repository));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(bytes: &[u8]) -> String {
        blake3::hash(bytes).to_hex().to_string()
    }

    #[test]
    fn files_come_back_only_intact_and_the_bound_holds() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::open(root.path(), &"ab".repeat(32), 10_000).unwrap();
        let a = vec![1u8; 4000];
        cache.put(FileKind::Index, &named(&a), &a);
        assert_eq!(cache.get(FileKind::Index, &named(&a)), Some(a.clone()));
        // A file whose content does not match its name is not stored...
        cache.put(FileKind::Index, &"00".repeat(32), &a);
        assert_eq!(cache.get(FileKind::Index, &"00".repeat(32)), None);
        // ...and one damaged in place is dropped on read.
        std::fs::write(root.path().join("ab".repeat(32)).join(FileKind::Index.path(&named(&a))), b"junk").unwrap();
        assert_eq!(cache.get(FileKind::Index, &named(&a)), None);
        // Past the bound, the least recently used go first.
        let files: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i + 10; 3000]).collect();
        for f in &files {
            cache.put(FileKind::TreePack, &named(f), f);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let held: u64 = list_caches(root.path())[0].bytes;
        assert!(held <= 10_000, "{held}");
        assert!(cache.get(FileKind::TreePack, &named(&files[4])).is_some());
        assert!(cache.get(FileKind::TreePack, &named(&files[0])).is_none());
        // Files the repository no longer lists are dropped.
        assert!(cache.get(FileKind::TreePack, &named(&files[3])).is_some());
        let keep = named(&files[4]);
        cache.retain(FileKind::TreePack, &HashSet::from([keep.as_str()]));
        assert!(cache.get(FileKind::TreePack, &named(&files[3])).is_none());
        assert!(cache.get(FileKind::TreePack, &keep).is_some());
    }
}
