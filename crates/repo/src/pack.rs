//! Assembling pack files from sealed blobs (docs/FORMAT.md, "Packs").

use std::sync::Arc;

use cairn_backend::{Backend, StagedFile};
use cairn_crypto::{Keyring, ObjectKind};
use cairn_format::id::{FileHasher, file_hash};
use cairn_format::index::IndexPack;
use cairn_format::pack::{PackEntry, PackHeader};
use cairn_format::{BlobKind, Compression, PackId, payload};

use crate::repository::pack_file_kind;
use crate::{Result, SealedBlob};

/// A complete pack file, ready to upload, with its index entry.
#[derive(Debug)]
pub struct FinishedPack {
    /// BLAKE3 of the file's bytes.
    pub id: PackId,
    /// The file content.
    pub bytes: PackBytes,
    /// What the index will say about it.
    pub index: IndexPack,
    /// Plaintext bytes of the blobs in it.
    pub raw_bytes: u64,
}

/// Where a finished pack's bytes are.
pub enum PackBytes {
    /// In memory, to be written whole.
    Memory(Vec<u8>),
    /// Already written to a staged file, to be given the pack's name.
    Staged(Box<StagedFile>),
}

impl PackBytes {
    /// The pack file's size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Self::Memory(b) => b.len() as u64,
            Self::Staged(f) => f.size(),
        }
    }
}

impl std::fmt::Debug for PackBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory(b) => write!(f, "Memory({} bytes)", b.len()),
            Self::Staged(s) => write!(f, "Staged({} bytes)", s.size()),
        }
    }
}

/// The pack being built: its bytes so far, in memory or staged.
enum Body {
    Memory(Vec<u8>),
    Staged { file: Box<StagedFile>, hasher: Box<FileHasher> },
}

impl Body {
    fn size(&self) -> u64 {
        match self {
            Self::Memory(b) => b.len() as u64,
            Self::Staged { file, .. } => file.size(),
        }
    }
}

/// Accumulates blobs of one kind until the pack reaches its target size.
/// Made by [`Repository::pack_writer`](crate::Repository::pack_writer), which
/// gives it the keys its header is sealed with.
pub struct PackWriter {
    kind: BlobKind,
    keyring: Arc<Keyring>,
    target_size: usize,
    /// Where to stage packs, if the storage allows it ([`PackWriter::staged`]).
    storage: Option<Backend>,
    body: Option<Body>,
    entries: Vec<PackEntry>,
    raw_bytes: u64,
}

impl std::fmt::Debug for PackWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackWriter")
            .field("kind", &self.kind)
            .field("size", &self.body.as_ref().map_or(0, Body::size))
            .finish()
    }
}

impl PackWriter {
    /// A writer for blobs of `kind` making packs of about `target_size`
    /// bytes, each built in memory, or, given `storage` that can stage files
    /// (a local folder; see [`Backend::stage`]), written there as it is built
    /// so the pack is not held in memory.
    pub(crate) fn new(kind: BlobKind, target_size: usize, keyring: Arc<Keyring>, storage: Option<Backend>) -> Self {
        Self { kind, keyring, target_size, storage, body: None, entries: Vec::new(), raw_bytes: 0 }
    }

    /// Appends a blob; returns true when the pack has reached its target size
    /// and should be finished.
    pub fn add(&mut self, blob: SealedBlob) -> Result<bool> {
        debug_assert_eq!(blob.kind, self.kind);
        let body = match &mut self.body {
            Some(b) => b,
            None => self.body.insert(self.start(blob.envelope.len())?),
        };
        self.entries.push(PackEntry {
            id: blob.id,
            length: blob.envelope.len() as u32,
            raw_length: blob.raw_length,
            base: blob.base,
            sketch: blob.sketch,
        });
        self.raw_bytes += u64::from(blob.raw_length);
        match body {
            Body::Memory(buf) => buf.extend_from_slice(&blob.envelope),
            Body::Staged { file, hasher } => {
                hasher.update(&blob.envelope);
                file.append(blob.envelope)?;
            }
        }
        Ok(body.size() >= self.target_size as u64)
    }

    /// A new pack's body: staged if the storage can, else in memory.
    fn start(&self, first: usize) -> Result<Body> {
        if let Some(storage) = &self.storage
            && let Some(file) = storage.stage(pack_file_kind(self.kind))?
        {
            return Ok(Body::Staged { file: Box::new(file), hasher: Box::default() });
        }
        Ok(Body::Memory(Vec::with_capacity(self.target_size + first)))
    }

    /// Seals the header, appends it and the trailer, and hands out the pack.
    /// Returns `None` when no blob is pending.
    pub fn finish(&mut self) -> Result<Option<FinishedPack>> {
        let Some(body) = self.body.take() else {
            return Ok(None);
        };
        let header = PackHeader { kind: self.kind, entries: std::mem::take(&mut self.entries) };
        let sealed = self.keyring.seal(
            ObjectKind::PackHeader,
            &[0; 32],
            &payload::encode(&header.encode(), Compression::None),
        )?;
        let mut tail = sealed;
        tail.extend_from_slice(&(tail.len() as u32).to_le_bytes());
        let (id, bytes) = match body {
            Body::Memory(mut buf) => {
                buf.extend_from_slice(&tail);
                (file_hash(&buf), PackBytes::Memory(buf))
            }
            Body::Staged { mut file, mut hasher } => {
                hasher.update(&tail);
                file.append(tail)?;
                (hasher.finish(), PackBytes::Staged(file))
            }
        };
        let id = PackId::from_bytes(id);
        let raw_bytes = std::mem::take(&mut self.raw_bytes);
        Ok(Some(FinishedPack { id, bytes, index: header.index_pack(id), raw_bytes }))
    }
}
