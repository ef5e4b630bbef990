//! Errors of repository access, each naming the object involved.

use cairn_backend::BackendError;
use cairn_format::{BlobId, FormatError};

/// A repository operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// No config file at the location.
    #[error("no cairn repository at {location}")]
    NoRepository {
        /// Where we looked.
        location: String,
    },
    /// The location holds another tool's repository.
    #[error("{location} is a {tool} repository, not a cairn one")]
    Foreign {
        /// Where.
        location: String,
        /// Whose: `restic`, `borg`.
        tool: &'static str,
    },
    /// The repository keeps data packs in a cold location and none was
    /// given, or one was given to a repository without.
    #[error("{0}")]
    ColdTier(String),
    /// `init` found a repository already there.
    #[error("a repository already exists at {location}")]
    AlreadyExists {
        /// Where.
        location: String,
    },
    /// No key file opened with the password.
    #[error("wrong password: no key in {location} opens with it")]
    WrongPassword {
        /// The repository.
        location: String,
    },
    /// No key file opened with the password and one of them is damaged:
    /// perhaps the one this password belongs to.
    #[error("no key opens with this password, and {object} is damaged ({reason}): it may be this password's key")]
    KeyDamaged {
        /// The damaged key file, e.g. `key 1a2b3c4d`.
        object: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The repository was written by a newer cairn.
    #[error("{object} has format version {found}, newer than this cairn supports ({supported})")]
    NewerVersion {
        /// What had the version.
        object: String,
        /// Version found.
        found: u32,
        /// Newest version supported.
        supported: u32,
    },
    /// An object failed authentication, hashing or decoding.
    #[error("{object} is damaged: {reason}")]
    Corrupt {
        /// The object, e.g. `pack 1a2b3c4d`.
        object: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A blob the caller needs is in no index.
    #[error("blob {0} is not in the index")]
    BlobNotFound(BlobId),
    /// A snapshot selector matched nothing.
    #[error("no snapshot matches {0:?}")]
    SnapshotNotFound(String),
    /// An id prefix matched several snapshots.
    #[error("snapshot id prefix {0:?} is ambiguous")]
    AmbiguousSnapshot(String),
    /// A path does not exist in a snapshot.
    #[error("path {0:?} not found in the snapshot")]
    PathNotFound(String),
    /// Invalid parameters (init options, selectors).
    #[error("{0}")]
    Invalid(String),
    /// The storage failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Random number generation or key derivation failed.
    #[error("crypto: {0}")]
    Crypto(#[from] cairn_crypto::CryptoError),
}

impl RepoError {
    /// Wraps a decoding failure of `object`, keeping version errors distinct.
    pub fn format(object: impl Into<String>, e: FormatError) -> Self {
        match e {
            FormatError::NewerVersion { found, supported } => {
                Self::NewerVersion { object: object.into(), found, supported }
            }
            other => Self::Corrupt { object: object.into(), reason: other.to_string() },
        }
    }

    /// An object is damaged.
    pub fn corrupt(object: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::Corrupt { object: object.into(), reason: reason.to_string() }
    }
}
