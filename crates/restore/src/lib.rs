//! The restorer: snapshot trees back to files, and single files to a writer.
//!
//! [`plan`] walks the snapshot and decides what to write (include/exclude,
//! hard links); [`restore`] executes a plan: directories, then file contents
//! in parallel (each written to a temporary name and renamed into place only
//! when every blob verified, so a damaged blob never leaves wrong bytes
//! under the real name), then metadata bottom-up. [`dump`] streams one file.

mod dump;
mod matcher;
mod metadata;
mod plan;
mod write;

pub use dump::dump;
pub use matcher::{Matcher, PatternError};
pub use plan::{Item, ItemKind, Plan, plan};
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
    /// Writing the dump output failed.
    #[error("writing output: {0}")]
    Output(#[source] std::io::Error),
}
