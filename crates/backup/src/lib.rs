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
//!
//! ```
//! use std::sync::Arc;
//! use cairn_backend::Backend;
//! use cairn_backup::{backup, BackupOptions, Excludes, NoProgress, ParentChoice, Sources};
//! use cairn_repo::{InitOptions, Repository};
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("notes.txt"), "remember the milk").unwrap();
//! let repo = Repository::init(Backend::memory().unwrap(), b"pw", &InitOptions::fast_for_tests()).unwrap();
//! let opts = BackupOptions {
//!     sources: Sources::paths(vec![dir.path().to_path_buf()]),
//!     excludes: Excludes::default(),
//!     tags: vec![],
//!     hostname: "example".into(),
//!     parent: ParentChoice::Auto,
//!     force: false,
//!     time: None,
//!     workers: None,
//!     writes: Default::default(),
//!     deltas: Default::default(),
//! };
//! let out = backup(repo.load_index().unwrap(), &opts, Arc::new(NoProgress)).unwrap();
//! let summary = out.snapshot.summary.unwrap();
//! assert_eq!((summary.files_new, summary.bytes_read), (1, 17));
//! ```

mod archiver;
pub mod children;
mod copy;
mod delta;
mod exclude;
mod metadata;
mod pipeline;
mod place;
mod progress;
mod reader;
mod source;
mod stream;
mod walker;
mod warm;

pub use archiver::{BackupOptions, BackupOutcome, Deltas, ParentChoice, Sources, Writes, backup};
pub use copy::{CopyOutcome, copy};
pub use exclude::Excludes;
pub use progress::{NoProgress, Progress};
pub use source::{absolute_source, absolute_sources};
pub use stream::{Stream, StreamFrom};
pub use walker::is_pseudo_fs;

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
    /// The standard input or the command gave no bytes at all: most often
    /// the dump upstream of a pipe failed, so no snapshot is written that
    /// would look like a good (empty) dump.
    #[error(
        "{} gave no data, so no snapshot of {name} was written; check the dump command{}",
        if *from_command { "the command" } else { "standard input" },
        if *from_command { "" } else { " before the pipe (with `set -o pipefail`)" }
    )]
    EmptyStream {
        /// The stream's file name in the snapshot.
        name: String,
        /// Whether it came from `--stdin-from-command`.
        from_command: bool,
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
