//! Sealing blobs for packs and opening them again (docs/FORMAT.md, "Blobs").

use cairn_crypto::Keyring;
use cairn_format::{BlobId, BlobKind, Compression, payload};

use crate::{RepoError, Result};

/// A blob ready to be appended to a pack: compressed and encrypted.
#[derive(Debug)]
pub struct SealedBlob {
    /// Data or tree.
    pub kind: BlobKind,
    /// Keyed hash of the plaintext.
    pub id: BlobId,
    /// The envelope bytes.
    pub envelope: Vec<u8>,
    /// Plaintext length.
    pub raw_length: u32,
}

/// Compresses (when it pays) and encrypts a blob whose id is already known.
pub fn seal(
    keyring: &Keyring,
    kind: BlobKind,
    id: BlobId,
    plaintext: &[u8],
    compression: Compression,
) -> Result<SealedBlob> {
    let payload = payload::encode(plaintext, compression);
    let envelope = keyring.seal(kind.object_kind(), id.as_bytes(), &payload)?;
    Ok(SealedBlob { kind, id, envelope, raw_length: plaintext.len() as u32 })
}

/// Decrypts, decompresses and verifies a blob envelope read from a pack.
pub fn open(keyring: &Keyring, kind: BlobKind, id: &BlobId, envelope: &[u8], raw_length: u32) -> Result<Vec<u8>> {
    let object = || format!("{} blob {}", kind.name(), id.short());
    let payload =
        keyring.open(kind.object_kind(), id.as_bytes(), envelope).map_err(|e| RepoError::corrupt(object(), e))?;
    let limit = (raw_length as usize).min(crate::MAX_BLOB_SIZE);
    let plain = payload::decode(&payload, limit).map_err(|e| RepoError::format(object(), e))?;
    if plain.len() != raw_length as usize {
        return Err(RepoError::corrupt(object(), "length differs from the index"));
    }
    if keyring.blob_id(&plain) != *id.as_bytes() {
        return Err(RepoError::corrupt(object(), "content does not match its id"));
    }
    Ok(plain)
}
