//! Sealing blobs for packs and opening them again (docs/FORMAT.md, "Blobs").

use cairn_crypto::Keyring;
use cairn_format::sketch::Sketch;
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
    /// The base blob of a delta blob.
    pub base: Option<BlobId>,
    /// The similarity sketch recorded for it (data blobs worth a delta).
    pub sketch: Option<Sketch>,
}

/// The largest plaintext a blob of `kind` may have, as readers accept it.
pub(crate) fn max_plaintext(kind: BlobKind) -> usize {
    match kind {
        BlobKind::Data => crate::MAX_BLOB_SIZE,
        BlobKind::Tree => crate::MAX_TREE_SIZE,
    }
}

/// Compresses (when it pays) and encrypts a blob whose id is already known.
pub fn seal(
    keyring: &Keyring,
    kind: BlobKind,
    id: BlobId,
    plaintext: &[u8],
    compression: Compression,
) -> Result<SealedBlob> {
    // Never write what no reader would open again.
    if plaintext.len() > max_plaintext(kind) {
        return Err(RepoError::Invalid(format!(
            "a {} blob of {} bytes is larger than the {} bytes cairn reads back; nothing was stored for it \
             (a file of over 33 million chunks or a folder of millions of entries: split it)",
            kind.name(),
            plaintext.len(),
            max_plaintext(kind)
        )));
    }
    // The payload is compressed straight into the envelope and encrypted
    // there: no intermediate buffers to allocate, fault in and copy.
    let room = payload::encoded_bound(plaintext.len());
    let mut envelope = keyring.seal_with(kind.object_kind(), id.as_bytes(), room, |out| {
        payload::encode_onto(plaintext, compression, out);
        Ok(())
    })?;
    // Room was made for an incompressible worst case; what compression
    // saved goes back to the allocator (glibc shrinks in place) instead of
    // waiting, unused, in the queue to the packer.
    envelope.shrink_to_fit();
    Ok(SealedBlob { kind, id, envelope, raw_length: plaintext.len() as u32, base: None, sketch: None })
}

/// Seals a data blob as a delta against `base` (whose plaintext is
/// `base_plain`) when that stores it in at most half the bytes of sealing
/// it on its own.
pub fn seal_delta(
    keyring: &Keyring,
    id: BlobId,
    plaintext: &[u8],
    base: BlobId,
    base_plain: &[u8],
    compression: Compression,
) -> Result<SealedBlob> {
    let Compression::Zstd(level) = compression else {
        return seal(keyring, BlobKind::Data, id, plaintext, compression);
    };
    // Long matches against the base carry a delta, and higher levels spend
    // their time on the short ones: on a 512 MiB dump, level 1 made deltas
    // 15% larger than level 3 in 20% less time.
    let delta = payload::encode_delta(plaintext, &base, base_plain, level.min(DELTA_LEVEL))
        .map_err(|e| RepoError::format(format!("delta of data blob {}", id.short()), e))?;
    // A delta under an eighth of the input saves half of any plain
    // compression of the text this is for; above that, pay for the
    // comparison.
    let (payload, base) = if delta.len() <= plaintext.len() / 8 {
        (delta, Some(base))
    } else {
        let plain = payload::encode(plaintext, compression);
        if delta.len() <= plain.len() / 2 { (delta, Some(base)) } else { (plain, None) }
    };
    let envelope = keyring.seal(BlobKind::Data.object_kind(), id.as_bytes(), &payload)?;
    Ok(SealedBlob { kind: BlobKind::Data, id, envelope, raw_length: plaintext.len() as u32, base, sketch: None })
}

// Why half: every read of a delta decodes its chain of bases too, and a
// chunk stored whole is a shorter chain's root for the next day's version.
// On 30 daily dumps of a PostgreSQL database (docs/BENCHMARKS.md), keeping
// any delta smaller than the plain payload left a quarter of day 30's
// deltas at 0.8x of their plain size or more; keeping only those under half
// stored days 2-30 in 288-308 MiB instead of 315-325 and restored day 30
// at 0.82-0.83x of the speed of the dump stored alone instead of
// 0.66-0.73x (page cache warm).

/// Highest zstd level deltas are coded at.
const DELTA_LEVEL: i32 = 1;

/// Deepest delta chain a reader follows (a delta whose base is a delta ...):
/// bounds the work one read may cause.
pub const MAX_DELTA_DEPTH: u32 = 16;

/// How much of a blob `open` verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// The envelope authenticates, the length matches, and the keyed hash
    /// of the plaintext equals the id.
    Full,
    /// All but the hash: for a delta base on the way to the blob built from
    /// it, whose own hash check covers the base's bytes too (a wrong base
    /// cannot produce content that hashes to the right id).
    Authenticated,
}

/// Decrypts, decompresses and verifies a blob envelope read from a pack.
/// A delta blob asks `base` for its base blob's plaintext.
pub fn open(
    keyring: &Keyring,
    kind: BlobKind,
    id: &BlobId,
    envelope: &[u8],
    raw_length: u32,
    verify: Verify,
    base: &mut dyn FnMut(&BlobId) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let object = || format!("{} blob {}", kind.name(), id.short());
    let payload =
        keyring.open(kind.object_kind(), id.as_bytes(), envelope).map_err(|e| RepoError::corrupt(object(), e))?;
    let range = 0..payload.len();
    decode(keyring, kind, id, payload, range, raw_length, verify, base)
}

/// Like [`open`], decrypting in the envelope's own buffer: a blob read
/// from storage into a buffer of its own then costs no copy of its body
/// (and a stored one no second buffer).
pub(crate) fn open_owned(
    keyring: &Keyring,
    kind: BlobKind,
    id: &BlobId,
    mut envelope: Vec<u8>,
    raw_length: u32,
    verify: Verify,
    base: &mut dyn FnMut(&BlobId) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let range = keyring
        .open_in_place(kind.object_kind(), id.as_bytes(), &mut envelope)
        .map_err(|e| RepoError::corrupt(format!("{} blob {}", kind.name(), id.short()), e))?;
    decode(keyring, kind, id, envelope, range, raw_length, verify, base)
}

/// Decodes and verifies the decrypted payload `buf[range]`.
#[allow(clippy::too_many_arguments)]
fn decode(
    keyring: &Keyring,
    kind: BlobKind,
    id: &BlobId,
    buf: Vec<u8>,
    range: std::ops::Range<usize>,
    raw_length: u32,
    verify: Verify,
    base: &mut dyn FnMut(&BlobId) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let object = || format!("{} blob {}", kind.name(), id.short());
    let payload = &buf[range.clone()];
    let limit = (raw_length as usize).min(max_plaintext(kind));
    let plain = match payload::delta_base(payload).map_err(|e| RepoError::format(object(), e))? {
        None => payload::decode_in(buf, range, limit).map_err(|e| RepoError::format(object(), e))?,
        Some(_) if kind != BlobKind::Data => return Err(RepoError::corrupt(object(), "a tree blob coded as a delta")),
        Some(base_id) if base_id == *id => return Err(RepoError::corrupt(object(), "a delta against itself")),
        Some(base_id) => {
            let base_plain = base(&base_id)?;
            payload::decode_delta(payload, &base_plain, limit).map_err(|e| RepoError::format(object(), e))?
        }
    };
    if plain.len() != raw_length as usize {
        return Err(RepoError::corrupt(object(), "length differs from the index"));
    }
    if verify == Verify::Full && keyring.blob_id(&plain) != *id.as_bytes() {
        return Err(RepoError::corrupt(object(), "content does not match its id"));
    }
    Ok(plain)
}
