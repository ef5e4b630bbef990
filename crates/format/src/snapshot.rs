//! Snapshots: one JSON document per backup run (docs/FORMAT.md, "Snapshots").

use serde::{Deserialize, Serialize};

use crate::{BlobId, SnapshotId};

/// What a backup run did, stored with its snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Files not in the parent snapshot.
    pub files_new: u64,
    /// Files in the parent whose metadata changed (re-read).
    pub files_changed: u64,
    /// Files taken from the parent without reading.
    pub files_unchanged: u64,
    /// Directories stored.
    pub dirs: u64,
    /// Bytes of file content read from sources.
    pub bytes_read: u64,
    /// Total size of all files in the snapshot.
    pub total_bytes: u64,
    /// Blobs this run added to the repository.
    pub blobs_added: u64,
    /// Bytes of plaintext those blobs hold.
    pub bytes_added_raw: u64,
    /// Bytes this run added to the repository (compressed, encrypted).
    pub bytes_added: u64,
    /// Sources that could not be read (warnings; exit code 3).
    pub errors: u64,
    /// Start of the run.
    pub start: jiff::Timestamp,
    /// End of the run.
    pub end: jiff::Timestamp,
}

/// A snapshot: the root tree and what describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version of this document.
    pub version: u32,
    /// When the backup started.
    pub time: jiff::Timestamp,
    /// Root tree blob.
    pub tree: BlobId,
    /// Source paths as given (absolute).
    pub paths: Vec<String>,
    /// Host name.
    pub hostname: String,
    /// User name who ran the backup.
    pub username: String,
    /// User id who ran the backup.
    pub uid: u32,
    /// Group id who ran the backup.
    pub gid: u32,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The snapshot this one was made incrementally against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<SnapshotId>,
    /// Exclude patterns in force.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// The cairn that wrote it, e.g. `cairn 0.1.0`.
    pub program_version: String,
    /// What the run did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// No retention policy removes it (`cairn tag --protect`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,
    /// For a snapshot rewritten by `cairn tag`, the id it was first saved under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<SnapshotId>,
    /// Paths whose data was lost and left out by `cairn repair snapshots`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repaired: Vec<String>,
}

crate::json_document!(Snapshot);
