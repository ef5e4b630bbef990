//! The read side of a repository: everything that shows snapshots without
//! restoring them (`cairn mount`, later the browser and WebDAV) reads
//! through a [`View`]:
//!
//! - [`layout`]: the snapshots as folders (`ids/`, `snapshots/` with
//!   `latest`, `hosts/HOST/`, `tags/TAG/`), rebuilt when snapshots come or go;
//! - [`FileContent::read_at`]: random access to a file's content over its
//!   blob list (prefix sums of plaintext lengths, binary search);
//! - one cache of decoded blobs and trees, bounded in bytes, shared by all
//!   readers;
//! - [`walk`]: the one depth-first walk over a tree, with a visitor;
//! - [`archive`]: a folder of a snapshot as a tar stream, on that walk;
//! - [`diff`]: what changed between two snapshots; [`find`]: where paths
//!   matching patterns are; [`stats`]: what snapshots hold.
//!
//! A view notices new snapshots without being reopened: [`View::layout`]
//! lists the snapshots again when its copy is older than
//! [`ViewOptions::refresh`], and reads the index files written since, so the
//! new snapshots' blobs can be read.
//!
//! ```
//! use cairn_backend::Backend;
//! use cairn_format::BlobKind;
//! use cairn_format::tree::{Node, NodeKind};
//! use cairn_repo::{InitOptions, PackWriter, Repository};
//! use cairn_view::FileContent;
//!
//! let repo = Repository::init(Backend::memory().unwrap(), b"pw", &InitOptions::fast_for_tests()).unwrap();
//! let mut repo = repo.load_index().unwrap();
//! let (a, b) = (b"hello, ".to_vec(), b"world".to_vec());
//! let mut w = repo.repo().pack_writer(BlobKind::Data);
//! let mut content = Vec::new();
//! for part in [&a, &b] {
//!     let id = repo.repo().blob_id(part);
//!     w.add(repo.seal_blob(BlobKind::Data, id, part).unwrap()).unwrap();
//!     content.push(id);
//! }
//! let (entry, _) = repo.repo().save_pack(w.finish().unwrap().unwrap()).unwrap();
//! repo.index_mut().add_pack(&entry);
//!
//! let node = Node { content, size: 12, ..Node::new(b"greeting", NodeKind::File) };
//! let file = FileContent::new(&repo, &node).unwrap();
//! let mut buf = [0u8; 8];
//! let n = file.read_at(&repo, 5, &mut buf).unwrap();
//! assert_eq!(&buf[..n], b", world");
//! ```

pub mod archive;
pub mod diff;
pub mod find;
pub mod layout;
mod reader;
pub mod stats;
pub mod walk;

#[cfg(test)]
mod testing;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cairn_format::snapshot::Snapshot;
use cairn_format::tree::Tree;
use cairn_format::{BlobId, IndexId, SnapshotId};
use cairn_repo::{IndexedRepository, PackWindows, RepoError, Repository, select::Filter};

pub use cairn_repo::lru::Lru;
pub use layout::{Entry, Folder, Layout, SnapshotRef};
pub use reader::{BlobSource, ContentReader, FileContent, ViewError};

/// How a view caches and how often it looks for new snapshots.
#[derive(Debug, Clone)]
pub struct ViewOptions {
    /// Which snapshots the layout shows.
    pub filter: Filter,
    /// Bytes of decoded blobs and trees kept for all readers together.
    pub cache_bytes: u64,
    /// How old the list of snapshots may get before it is read again.
    pub refresh: Duration,
}

impl Default for ViewOptions {
    fn default() -> Self {
        Self { filter: Filter::default(), cache_bytes: 64 << 20, refresh: Duration::from_secs(2) }
    }
}

/// What the view last read of the repository's snapshots.
struct Known {
    snapshots: BTreeMap<SnapshotId, Snapshot>,
    indexes: HashSet<IndexId>,
    layout: Arc<Layout>,
    read_at: Instant,
}

/// A repository's snapshots for reading: their layout, their trees and
/// their files' content, from any number of threads.
pub struct View {
    repo: RwLock<IndexedRepository>,
    options: ViewOptions,
    known: Mutex<Known>,
    blobs: Lru<BlobId, Vec<u8>>,
    trees: Lru<BlobId, Tree>,
    windows: PackWindows,
    /// Blobs being decoded now: a second reader of one waits for the first
    /// instead of decoding it again (the kernel's read-ahead asks for
    /// several pieces of one blob at once, and a prefetch may be under way).
    decoding: Mutex<HashMap<BlobId, Arc<Mutex<()>>>>,
}

/// Pack windows read around a small blob (its folder's other small files
/// come with it).
const WINDOW_BYTES: u32 = 1 << 20;

impl View {
    /// A view of `repo`'s snapshots passing `options.filter`.
    pub fn open(repo: Repository, options: ViewOptions) -> Result<Self, ViewError> {
        let indexes = repo.index_ids()?.into_iter().collect();
        let repo = repo.load_index()?;
        // Blobs, trees and pack windows share the budget: blobs are many and
        // about 1 MiB, trees few but maybe large (a folder of 100,000
        // entries), windows serve the small files.
        let budget = options.cache_bytes;
        let view = Self {
            repo: RwLock::new(repo),
            known: Mutex::new(Known {
                snapshots: BTreeMap::new(),
                indexes,
                layout: Arc::new(Layout::default()),
                read_at: Instant::now(),
            }),
            blobs: Lru::new(budget / 2),
            trees: Lru::new(budget / 4),
            windows: PackWindows::new(WINDOW_BYTES, budget / 4),
            decoding: Mutex::new(HashMap::new()),
            options,
        };
        view.read_snapshots()?;
        Ok(view)
    }

    /// The layout of the snapshots, read again if older than the refresh
    /// interval. A failure to read it again keeps the last one (a network
    /// hiccup must not empty a mounted folder) and is returned to report.
    pub fn layout(&self) -> (Arc<Layout>, Option<ViewError>) {
        let stale = {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            known.read_at.elapsed() >= self.options.refresh
        };
        let error = if stale { self.read_snapshots().err() } else { None };
        (self.known.lock().unwrap_or_else(|p| p.into_inner()).layout.clone(), error)
    }

    /// The snapshots the view shows (its filter applied), oldest first; as
    /// [`View::layout`], read again when older than the refresh interval,
    /// the last list kept (and the error returned) when that fails.
    pub fn snapshots(&self) -> (Vec<(SnapshotId, Snapshot)>, Option<ViewError>) {
        let (_, error) = self.layout();
        (self.shown(&self.known.lock().unwrap_or_else(|p| p.into_inner())), error)
    }

    /// Reads the snapshot list again now (after this process changed it);
    /// a failure keeps the last list, as a refresh does.
    pub fn reread(&self) {
        let _ = self.read_snapshots();
    }

    /// Of the snapshots `known`, those the filter lets through, oldest first.
    fn shown(&self, known: &Known) -> Vec<(SnapshotId, Snapshot)> {
        let mut shown: Vec<(SnapshotId, Snapshot)> = known
            .snapshots
            .iter()
            .filter(|(_, s)| self.options.filter.matches(s))
            .map(|(id, s)| (*id, s.clone()))
            .collect();
        shown.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        shown
    }

    /// Lists the snapshots; loads the new ones and the index files written
    /// since the last time, then rebuilds the layout if anything changed.
    fn read_snapshots(&self) -> Result<(), ViewError> {
        let repo = self.repo.read().unwrap_or_else(|p| p.into_inner());
        let ids: HashSet<SnapshotId> = repo.repo().snapshot_ids()?.into_iter().collect();
        let (new_ids, gone): (Vec<SnapshotId>, bool) = {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            let new = ids.iter().filter(|id| !known.snapshots.contains_key(id)).copied().collect();
            (new, known.snapshots.keys().any(|id| !ids.contains(id)) || known.snapshots.is_empty())
        };
        let mut loaded = Vec::new();
        for id in &new_ids {
            match repo.repo().load_snapshot(id) {
                Ok(s) => loaded.push((*id, s)),
                // Deleted between listing and reading (a concurrent forget).
                Err(RepoError::Backend(e)) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut new_index = Vec::new();
        if !loaded.is_empty() {
            let known_indexes = self.known.lock().unwrap_or_else(|p| p.into_inner()).indexes.clone();
            for id in repo.repo().index_ids()? {
                if !known_indexes.contains(&id) {
                    new_index.push((id, repo.repo().load_index_file(&id)?));
                }
            }
        }
        drop(repo);
        if !new_index.is_empty() {
            // Never waits: a reader may hold the repository for as long as
            // its client takes (a tar of a whole snapshot over HTTP), and a
            // waiting writer would make every other reader wait behind it.
            // The new snapshots then show at a later look.
            let mut repo = match self.repo.try_write() {
                Ok(repo) => repo,
                Err(std::sync::TryLockError::WouldBlock) => return Ok(()),
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            };
            for (_, file) in &new_index {
                repo.index_mut().add_file(file);
            }
        }
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.indexes.extend(new_index.iter().map(|(id, _)| *id));
        known.read_at = Instant::now();
        if loaded.is_empty() && !gone {
            return Ok(());
        }
        known.snapshots.retain(|id, _| ids.contains(id));
        known.snapshots.extend(loaded);
        let shown = self.shown(&known);
        known.layout = Arc::new(Layout::new(&shown, &jiff::tz::TimeZone::system()));
        Ok(())
    }

    /// The tree `id`, decoded (from the cache when there).
    pub fn tree(&self, id: &BlobId) -> Result<Arc<Tree>, ViewError> {
        if let Some(t) = self.trees.get(id) {
            return Ok(t);
        }
        let repo = self.repo.read().unwrap_or_else(|p| p.into_inner());
        let plain = repo.read_blob(id)?;
        let cost = plain.len() as u64 * 2;
        let tree = Tree::decode(&plain).map_err(|e| RepoError::format(format!("tree {}", id.short()), e))?;
        let tree = Arc::new(tree);
        self.trees.insert(*id, tree.clone(), cost);
        Ok(tree)
    }

    /// Runs `f` with the repository (for walks over whole trees).
    pub fn with_repo<T>(&self, f: impl FnOnce(&IndexedRepository) -> T) -> T {
        f(&self.repo.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Starts decoding blob `id` on another thread, for a sequential
    /// reader about to need it; nothing if it is cached or under way.
    pub fn prefetch(self: &Arc<Self>, id: BlobId) {
        if self.blobs.get(&id).is_some() || self.decoding.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&id) {
            return;
        }
        let view = self.clone();
        // A failure is the reader's to report when it gets there.
        rayon::spawn(move || drop(view.blob(&id)));
    }

    /// Bytes the caches hold now.
    pub fn cached_bytes(&self) -> u64 {
        self.blobs.used() + self.trees.used()
    }
}

impl BlobSource for View {
    fn raw_length(&self, id: &BlobId) -> Option<u64> {
        self.repo.read().unwrap_or_else(|p| p.into_inner()).raw_length(id)
    }

    fn blob(&self, id: &BlobId) -> Result<Arc<Vec<u8>>, RepoError> {
        if let Some(b) = self.blobs.get(id) {
            return Ok(b);
        }
        let slot = self.decoding.lock().unwrap_or_else(|p| p.into_inner()).entry(*id).or_default().clone();
        let _decoding = slot.lock().unwrap_or_else(|p| p.into_inner());
        // Decoded by the reader this one waited for?
        if let Some(b) = self.blobs.get(id) {
            return Ok(b);
        }
        let read = self.repo.read().unwrap_or_else(|p| p.into_inner()).read_blob_near(id, &self.windows);
        let data = read.map(Arc::new);
        if let Ok(d) = &data {
            self.blobs.insert(*id, d.clone(), d.len() as u64);
        }
        self.decoding.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        data
    }
}
