//! The archiver: turns sources (paths, stdin, a command's output) into a snapshot.
//!
//! Data flow, each stage a thread or pool joined by bounded queues so memory
//! does not grow with the input:
//!
//! ```text
//! walk (+ change detection against the parent snapshot)
//!   -> read + chunk + hash + dedup   (reader.rs, one worker per core)
//!   -> compress + encrypt            (pipeline.rs, worker pool)
//!   -> pack + upload                 (pipeline.rs, packer and uploaders)
//! trees are built bottom-up as directories complete (walker.rs), then the
//! index file, then the snapshot: packs, index, snapshot, in that order.
//! ```
//!
//! Entry point: [`backup`] with [`BackupOptions`]; progress and warnings go to
//! a [`Progress`] implementation.

mod archiver;
mod exclude;
mod metadata;
mod pipeline;
mod progress;
mod reader;
mod walker;

pub use archiver::{BackupOptions, BackupOutcome, ParentChoice, Source, backup};
pub use exclude::{ExcludeError, Excludes};
pub use progress::{NoProgress, Progress};

/// A backup failed and wrote no snapshot.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The repository failed (storage, damaged parent snapshot, ...).
    #[error(transparent)]
    Repo(#[from] cairn_repo::RepoError),
    /// None of the source paths could be read.
    #[error("no source could be read: {0}")]
    NoSources(String),
    /// `--stdin-from-command` failed.
    #[error("command {command:?} failed ({status}); no snapshot was written")]
    CommandFailed {
        /// The command line.
        command: String,
        /// How it ended.
        status: String,
    },
    /// Reading the standard input or a command's output failed.
    #[error("reading {name}: {source}")]
    Stream {
        /// The stream's file name in the snapshot.
        name: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Could not start a worker thread or the command.
    #[error("{0}")]
    Io(String),
}
