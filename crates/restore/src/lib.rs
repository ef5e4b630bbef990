//! The restorer: snapshot trees back to files, and single files to a writer.
//!
//! [`plan`] walks the snapshot and decides what to write (include/exclude,
//! hard links), handing the steps on as it goes; [`restore`] writes them a
//! batch at a time while the walk plans the next, so its memory does not
//! grow with the snapshot: directories, then file contents in parallel
//! (each written to a temporary name and renamed into place only when
//! every blob verified, so a damaged blob never leaves wrong bytes under
//! the real name, and given its metadata while still open), then the
//! remaining metadata, each folder's once everything below it is written.
//! [`dump`] streams one file.
//!
//! ```
//! use cairn_backend::Backend;
//! use cairn_format::tree::{Bytes, Node, NodeKind, Time, Tree};
//! use cairn_format::BlobKind;
//! use cairn_repo::{InitOptions, PackWriter, Repository};
//!
//! // A repository holding one tree with one file, written by hand.
//! let repo = Repository::init(Backend::memory().unwrap(), b"pw", &InitOptions::fast_for_tests()).unwrap();
//! let mut repo = repo.load_index().unwrap();
//! let data = b"hello, restore".to_vec();
//! let data_id = repo.repo().blob_id(&data);
//! let node = Node {
//!     name: Bytes(b"hello.txt".to_vec()), kind: NodeKind::File, mode: 0o100644, uid: 0, gid: 0,
//!     user: None, group: None, mtime: Time(1_700_000_000, 0), ctime: Time(1_700_000_000, 0),
//!     size: data.len() as u64, inode: 1, device: 1, links: 1, rdev: 0,
//!     content: vec![data_id], subtree: None, target: None, xattrs: vec![],
//! };
//! let tree = Tree { nodes: vec![node] }.encode();
//! let tree_id = repo.repo().blob_id(&tree);
//! for (kind, id, plain) in [(BlobKind::Data, data_id, &data), (BlobKind::Tree, tree_id, &tree)] {
//!     let mut w = repo.repo().pack_writer(kind);
//!     w.add(repo.seal_blob(kind, id, plain).unwrap()).unwrap();
//!     let pack = w.finish().unwrap().unwrap();
//!     let (entry, _) = repo.repo().save_pack(pack).unwrap();
//!     repo.index_mut().add_pack(&entry);
//! }
//!
//! let target = tempfile::tempdir().unwrap();
//! let none = cairn_restore::Matcher::default();
//! let all = cairn_restore::Select { path: None, include: &none, exclude: &none, strip_components: 0 };
//! let summary = cairn_restore::restore(&repo, &tree_id, &all, target.path(), &Default::default(), &()).unwrap();
//! assert_eq!(summary.files, 1);
//! assert_eq!(std::fs::read(target.path().join("hello.txt")).unwrap(), data);
//! ```

mod beneath;
mod delete;
mod dump;
mod metadata;
mod plan;
mod preview;
mod write;

pub use beneath::Found;
pub use cairn_repo::pattern::{Matcher, PatternError};
pub use delete::{Extra, extras};
pub use dump::dump;
pub use plan::{Item, ItemKind, Planned, Select, Start, plan, total_bytes};
pub use preview::{Action, Preview};
pub use write::{Overwrite, RestoreOptions, RestoreProgress, RestoreSummary, restore};

/// A restore could not run at all (per-file failures are counted in the
/// summary instead).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The repository failed.
    #[error(transparent)]
    Repo(#[from] cairn_repo::RepoError),
    /// The target could not be prepared.
    #[error("{path}: {source}")]
    Target {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `dump` was asked for something that is not a file.
    #[error("{0} is not a regular file; use `cairn restore` for directories")]
    NotAFile(String),
    /// The restore stopped taking the plan (a writer failed).
    #[error("the restore stopped before its plan was done")]
    Stopped,
    /// Writing the dump output failed.
    #[error("writing output: {0}")]
    Output(#[source] std::io::Error),
}
