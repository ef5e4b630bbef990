//! A cairn repository: the only crate that touches keys, storage, packs and
//! the index.
//!
//! Input: a [`Backend`](cairn_backend::Backend) and a password. Output: typed
//! access to what is stored. Backup, restore and check see the repository
//! through these types only:
//!
//! - [`Repository`]: unlocked keys and the config; snapshots; raw objects.
//! - [`IndexedRepository`]: a repository whose index is loaded; reads blobs and
//!   trees, writes packs ([`PackWriter`]) and index files. A repository that
//!   has not loaded its index cannot read blobs.
//! - [`select`]: snapshot selectors (`latest`, id prefixes, filters, `--at`).
//! - [`pattern`]: path patterns for excludes and includes.
//! - [`units`]: sizes and shares as users write them.
//!
//! ```
//! use cairn_backend::Backend;
//! use cairn_repo::{InitOptions, Repository};
//! let repo = Repository::init(Backend::memory().unwrap(), b"pw", &InitOptions::fast_for_tests()).unwrap();
//! let repo = repo.load_index().unwrap();
//! assert_eq!(repo.index().len(), 0);
//! ```

mod blob;
mod blob_set;
mod error;
pub mod expansion;
mod index;
mod keys;
pub mod lifecycle;
pub mod lru;
mod pack;
pub mod parallel;
pub mod pattern;
mod rebuild;
mod repository;
pub mod select;
mod similar;
mod stored;
pub mod units;
mod windows;

pub use blob::{MAX_DELTA_DEPTH, SealedBlob, Verify};
pub use blob_set::{BlobIds, BlobKey, BlobSet};
pub use error::RepoError;
pub use index::{BlobCopy, BlobLocation, Index, IndexBuilder, Sketches};
pub use keys::{KeyInfo, RotateReport};
pub use lifecycle::RunGuard;
pub use pack::{FinishedPack, PackBytes, PackWriter};
pub use rebuild::RebuiltIndex;
pub use repository::{
    IndexFiles, IndexListing, IndexedRepository, InitOptions, ListedIndexFile, MAX_WRITE_DEPTH, ReadWindow, Repository,
    SharedPacks, pack_file_kind,
};
pub use stored::StoredPack;
pub use windows::PackWindows;

/// Result of this crate.
pub type Result<T> = std::result::Result<T, RepoError>;

/// Blobs an index file lists at most, as cairn writes them (a backup
/// writes one each time this many blobs are stored; prune rewrites files
/// in parts of this size): one file decoded whole stays a few MiB.
pub const INDEX_FILE_BLOBS: usize = 100_000;

/// Largest plaintext a data blob may have: bounds allocations when
/// decoding (the chunker cuts at most 8 MiB).
pub const MAX_BLOB_SIZE: usize = 64 * 1024 * 1024;
/// Largest plaintext a tree blob may have. A tree holds each file's list of
/// chunk ids (32 bytes a chunk), so a file of two million chunks (2 TB at
/// the default 1 MiB chunks, a few GB at small ones) made a tree of 64
/// MiB, which backup wrote and every reader then refused as damaged. 1 GiB
/// is 33 million chunks, or a folder of about ten million entries; writers
/// refuse more.
pub const MAX_TREE_SIZE: usize = 1 << 30;
/// Largest decoded snapshot, index or config file.
pub const MAX_FILE_SIZE: usize = 1 << 30;
