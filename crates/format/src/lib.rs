//! Repository format v1: typed ids and the encoders/decoders of every object
//! cairn stores (docs/FORMAT.md is the specification; each module names its section).
//!
//! No I/O and no policy: bytes in, typed values out, and back. Decoders check
//! every length before allocating and return [`FormatError`], never panic.
//!
//! - [`id`]: `BlobId`, `PackId`, `IndexId`, `SnapshotId`, `KeyId`.
//! - [`payload`]: the compression flag and zstd framing inside every envelope.
//! - [`pack`]: pack header and trailer.
//! - [`index`]: index files.
//! - [`sketch`]: similarity sketches of data blobs, for choosing delta bases.
//! - [`tree`], [`snapshot`], [`config`], [`keyfile`]: the JSON documents.
//! - [`lifecycle`]: prune's deletion plans and the run markers of backups and prunes.
//!
//! ```
//! use cairn_format::{payload, Compression};
//! let plain = payload::encode(&[b'a'; 10_000], Compression::Zstd(3));
//! assert!(plain.len() < 100);
//! assert_eq!(payload::decode(&plain, 1 << 20).unwrap(), vec![b'a'; 10_000]);
//! ```

pub mod config;
pub mod id;
pub mod index;
pub mod keyfile;
pub mod lifecycle;
pub mod pack;
pub mod payload;
pub mod sketch;
pub mod snapshot;
pub mod tree;

pub use id::{BlobId, IndexId, KeyId, MarkerId, PackId, PlanId, RepoId, SnapshotId};
pub use payload::Compression;

/// The repository format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// What kind of data a blob holds; data and tree blobs live in separate packs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum BlobKind {
    /// A chunk of file content.
    Data = 1,
    /// A serialized directory ([`tree::Tree`]).
    Tree = 2,
}

impl BlobKind {
    /// Decodes the one-byte kind used in pack headers and index files.
    pub fn from_byte(b: u8) -> Result<Self, FormatError> {
        match b {
            1 => Ok(Self::Data),
            2 => Ok(Self::Tree),
            _ => Err(FormatError::Invalid("unknown blob kind")),
        }
    }

    /// The envelope kind blobs of this kind are sealed with.
    pub fn object_kind(self) -> cairn_crypto::ObjectKind {
        match self {
            Self::Data => cairn_crypto::ObjectKind::DataBlob,
            Self::Tree => cairn_crypto::ObjectKind::TreeBlob,
        }
    }

    /// Lower-case name, as in paths and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Tree => "tree",
        }
    }
}

/// A decoding failure. Carries no object id: callers add it.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Input ended before a declared length.
    #[error("truncated: {0}")]
    Truncated(&'static str),
    /// A field holds a value the format does not allow.
    #[error("invalid: {0}")]
    Invalid(&'static str),
    /// A JSON document did not parse.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A version number newer than this build understands.
    #[error("format version {found} is newer than this cairn supports ({supported})")]
    NewerVersion {
        /// The version found.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// A compressed payload failed to decompress or exceeded its size bound.
    #[error("decompression failed: {0}")]
    Decompress(String),
}

/// `encode` (JSON) and `decode` (JSON, then the version check) for a
/// document type with a `version` field.
#[macro_export]
#[doc(hidden)]
macro_rules! json_document {
    ($t:ty) => {
        impl $t {
            /// Encodes as JSON.
            pub fn encode(&self) -> Vec<u8> {
                serde_json::to_vec(self).unwrap_or_default()
            }

            /// Decodes and checks the version.
            pub fn decode(buf: &[u8]) -> Result<Self, $crate::FormatError> {
                let d: Self = serde_json::from_slice(buf)?;
                $crate::check_version(d.version)?;
                Ok(d)
            }
        }
    };
}

/// Refuses a document written by a newer format version.
pub(crate) fn check_version(found: u32) -> Result<(), FormatError> {
    if found > FORMAT_VERSION {
        return Err(FormatError::NewerVersion { found, supported: FORMAT_VERSION });
    }
    Ok(())
}

/// A table of per-blob records after a list of blobs (docs/FORMAT.md,
/// section 8: delta and sketch tables): how many blobs have a record, then
/// each one's position in the list and its payload. What differs between
/// tables is the payload and the names errors give.
pub(crate) struct Table {
    /// Bytes of a record's payload, after its u32 position.
    pub(crate) payload: usize,
    pub(crate) count: &'static str,
    pub(crate) records: &'static str,
    pub(crate) position: &'static str,
    /// The error for a record of a tree blob.
    pub(crate) tree: &'static str,
    /// The error for positions out of order or out of range.
    pub(crate) order: &'static str,
}

/// Appends a table of the blobs whose item is `Some`, `put` writing each payload.
pub(crate) fn encode_table<'a, T: 'a>(
    out: &mut Vec<u8>,
    items: impl Iterator<Item = Option<&'a T>> + Clone,
    put: impl Fn(&T, &mut Vec<u8>),
) {
    let count = items.clone().flatten().count() as u32;
    out.extend_from_slice(&count.to_le_bytes());
    for (i, item) in items.enumerate() {
        if let Some(item) = item {
            out.extend_from_slice(&(i as u32).to_le_bytes());
            put(item, out);
        }
    }
}

/// Reads a table for `n` blobs of `kind`, `get` reading each payload:
/// (position, payload) pairs, positions strictly increasing and below `n`,
/// records only for data blobs, the count checked before allocating.
pub(crate) fn decode_table<T>(
    r: &mut Reader<'_>,
    n: usize,
    kind: BlobKind,
    table: &Table,
    get: impl Fn(&mut Reader<'_>) -> Result<T, FormatError>,
) -> Result<Vec<(usize, T)>, FormatError> {
    let count = r.u32(table.count)?;
    let count = r.check_count(count, 4 + table.payload, table.records)?;
    if count > 0 && kind != BlobKind::Data {
        return Err(FormatError::Invalid(table.tree));
    }
    let mut out: Vec<(usize, T)> = Vec::with_capacity(count);
    for _ in 0..count {
        let at = r.u32(table.position)? as usize;
        let item = get(r)?;
        if at >= n || out.last().is_some_and(|(prev, _)| *prev >= at) {
            return Err(FormatError::Invalid(table.order));
        }
        out.push((at, item));
    }
    Ok(out)
}

/// The delta table: each delta blob's base id (FORMAT.md 7.3).
const DELTAS: Table = Table {
    payload: 32,
    count: "delta count",
    records: "delta records",
    position: "delta position",
    tree: "delta record for a tree blob",
    order: "delta positions out of order or out of range",
};

/// Appends the delta table of a list of blobs.
pub(crate) fn encode_delta_table<'a>(out: &mut Vec<u8>, bases: impl Iterator<Item = Option<&'a BlobId>> + Clone) {
    encode_table(out, bases, |b, out| out.extend_from_slice(b.as_bytes()));
}

/// Reads the delta table for `n` blobs of `kind`: (position, base) pairs.
pub(crate) fn decode_delta_table(
    r: &mut Reader<'_>,
    n: usize,
    kind: BlobKind,
) -> Result<Vec<(usize, BlobId)>, FormatError> {
    decode_table(r, n, kind, &DELTAS, |r| Ok(BlobId::from_bytes(r.id32("delta base id")?)))
}

/// Little-endian reader over a byte slice that never panics.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FormatError> {
        if self.buf.len() < n {
            return Err(FormatError::Truncated(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, FormatError> {
        Ok(self.bytes(1, what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, FormatError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.bytes(4, what)?);
        Ok(u32::from_le_bytes(b))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, FormatError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.bytes(8, what)?);
        Ok(u64::from_le_bytes(b))
    }

    pub(crate) fn id32(&mut self, what: &'static str) -> Result<[u8; 32], FormatError> {
        let mut b = [0u8; 32];
        b.copy_from_slice(self.bytes(32, what)?);
        Ok(b)
    }

    /// Checks that `count` records of `size` bytes fit in what is left, so a
    /// hostile count cannot make the caller allocate without bound.
    pub(crate) fn check_count(&self, count: u32, size: usize, what: &'static str) -> Result<usize, FormatError> {
        let count = count as usize;
        match count.checked_mul(size) {
            Some(n) if n <= self.buf.len() => Ok(count),
            _ => Err(FormatError::Truncated(what)),
        }
    }
}
