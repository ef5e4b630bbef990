//! Assembling pack files from sealed blobs (docs/FORMAT.md, "Packs").

use cairn_crypto::{Keyring, ObjectKind};
use cairn_format::index::{IndexBlob, IndexPack};
use cairn_format::pack::{PackEntry, PackHeader};
use cairn_format::{BlobKind, Compression, PackId, id::file_hash, payload};

use crate::{Result, SealedBlob};

/// A complete pack file, ready to upload, with its index entry.
#[derive(Debug)]
pub struct FinishedPack {
    /// BLAKE3 of `bytes`.
    pub id: PackId,
    /// The file content.
    pub bytes: Vec<u8>,
    /// What the index will say about it.
    pub index: IndexPack,
    /// Plaintext bytes of the blobs in it.
    pub raw_bytes: u64,
}

/// Accumulates blobs of one kind until the pack reaches its target size.
#[derive(Debug)]
pub struct PackWriter {
    kind: BlobKind,
    target_size: usize,
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
    raw_bytes: u64,
}

impl PackWriter {
    /// A writer for blobs of `kind` making packs of about `target_size` bytes.
    pub fn new(kind: BlobKind, target_size: usize) -> Self {
        Self { kind, target_size, buf: Vec::new(), entries: Vec::new(), raw_bytes: 0 }
    }

    /// Appends a blob; returns true when the pack has reached its target size
    /// and should be finished.
    pub fn add(&mut self, blob: SealedBlob) -> bool {
        debug_assert_eq!(blob.kind, self.kind);
        if self.buf.capacity() == 0 {
            self.buf.reserve(self.target_size + blob.envelope.len());
        }
        self.entries.push(PackEntry {
            id: blob.id,
            length: blob.envelope.len() as u32,
            raw_length: blob.raw_length,
            base: blob.base,
        });
        self.raw_bytes += u64::from(blob.raw_length);
        self.buf.extend_from_slice(&blob.envelope);
        self.buf.len() >= self.target_size
    }

    /// Seals the header, appends it and the trailer, and hands out the pack.
    /// Returns `None` when no blob is pending.
    pub fn finish(&mut self, keyring: &Keyring) -> Result<Option<FinishedPack>> {
        if self.entries.is_empty() {
            return Ok(None);
        }
        let header = PackHeader { kind: self.kind, entries: std::mem::take(&mut self.entries) };
        let sealed =
            keyring.seal(ObjectKind::PackHeader, &[0; 32], &payload::encode(&header.encode(), Compression::None))?;
        let mut bytes = std::mem::take(&mut self.buf);
        bytes.extend_from_slice(&sealed);
        bytes.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        let id = PackId::from_bytes(file_hash(&bytes));
        let blobs = header
            .with_offsets()
            .map(|(offset, e)| IndexBlob { id: e.id, offset, length: e.length, raw_length: e.raw_length, base: e.base })
            .collect();
        let raw_bytes = std::mem::take(&mut self.raw_bytes);
        Ok(Some(FinishedPack { id, bytes, index: IndexPack { id, kind: self.kind, blobs }, raw_bytes }))
    }
}
