//! Stored files as maintenance sees them: listing, reading and deleting
//! packs and index files, staging leftovers, key files, and opening or
//! re-sealing a blob read straight from a pack.
//!
//! Check, prune and repair work on packs as files (a pack read front to
//! back, a damaged one deleted), which the blob-level reads of
//! [`IndexedRepository`](crate::IndexedRepository) do not cover. They do it
//! through these methods so that the storage and the keys stay inside this
//! crate.

use cairn_backend::FileKind;
use cairn_format::{BlobId, BlobKind, IndexId, PackId};

use crate::repository::pack_file_kind;
use crate::{KeyInfo, PackWriter, RepoError, Repository, Result, Verify};

/// A pack file the storage holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredPack {
    /// Its name.
    pub id: PackId,
    /// Which blobs it holds.
    pub kind: BlobKind,
    /// Its size as listed by the storage.
    pub size: u64,
}

impl Repository {
    /// The packs of `kind` the storage holds. Files whose names are not pack
    /// ids are not packs (a stray file someone put there) and are left out.
    pub fn list_packs(&self, kind: BlobKind) -> Result<Vec<StoredPack>> {
        Ok(self
            .backend
            .list(pack_file_kind(kind))?
            .into_iter()
            .filter_map(|(name, size)| name.parse().ok().map(|id| StoredPack { id, kind, size }))
            .collect())
    }

    /// A whole pack file's bytes.
    pub fn read_pack(&self, kind: BlobKind, id: &PackId) -> Result<Vec<u8>> {
        Ok(self.backend.read(pack_file_kind(kind), &id.to_hex())?)
    }

    /// `len` bytes of a pack file from `offset`.
    pub fn read_pack_bytes(&self, kind: BlobKind, id: &PackId, offset: u64, len: u64) -> Result<Vec<u8>> {
        Ok(self.backend.read_range(pack_file_kind(kind), &id.to_hex(), offset, len)?)
    }

    /// Like [`Repository::read_pack_bytes`], appending to `buf` (fewer
    /// bytes when the file is shorter than asked).
    pub fn read_pack_bytes_onto(
        &self,
        kind: BlobKind,
        id: &PackId,
        offset: u64,
        len: u64,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        Ok(self.backend.read_range_onto(pack_file_kind(kind), &id.to_hex(), offset, len, buf)?)
    }

    /// Deletes a pack file. Only for packs no live index lists any more.
    pub fn delete_pack(&self, kind: BlobKind, id: &PackId) -> Result<()> {
        Ok(self.backend.delete(pack_file_kind(kind), &id.to_hex())?)
    }

    /// Deletes an index file. Only for files a newer one supersedes.
    pub fn delete_index(&self, id: &IndexId) -> Result<()> {
        Ok(self.backend.delete(FileKind::Index, &id.to_hex())?)
    }

    /// Whether the storage is across a network (each request costs latency).
    pub fn is_remote(&self) -> bool {
        self.backend.is_remote()
    }

    /// Whether data packs live in a separate cold tier.
    pub fn has_cold_tier(&self) -> bool {
        self.backend.cold().is_some()
    }

    /// Staging files (packs being built) untouched since `before`: what a
    /// process killed mid-write left. Their paths and sizes.
    pub fn staging_leftovers(&self, before: std::time::SystemTime) -> Result<Vec<(String, u64)>> {
        Ok(self.backend.staging_leftovers(before)?)
    }

    /// Removes one staging leftover named by [`Repository::staging_leftovers`].
    pub fn delete_staging(&self, path: &str) -> Result<()> {
        Ok(self.backend.delete_staging(path)?)
    }

    /// Every key file by name, with whether it decodes: one damaged key
    /// file does not hide the others.
    pub fn key_files(&self) -> Result<Vec<(String, Result<KeyInfo>)>> {
        crate::keys::key_files(&self.backend)
    }

    /// A writer for packs of blobs of `kind`, of this repository's pack
    /// size, built in memory.
    pub fn pack_writer(&self, kind: BlobKind) -> PackWriter {
        PackWriter::new(kind, self.config.pack_size as usize, self.keyring.clone(), None)
    }

    /// Like [`Repository::pack_writer`], but each pack is written to the
    /// storage as it is built where the storage can (a local folder), so
    /// it is not held in memory.
    pub fn staged_pack_writer(&self, kind: BlobKind) -> PackWriter {
        PackWriter::new(kind, self.config.pack_size as usize, self.keyring.clone(), Some(self.backend.clone()))
    }

    /// Opens a blob's envelope as read from a pack and checks it against
    /// `id` and `raw_length`; a delta gets its base's plaintext from `base`.
    pub fn open_envelope(
        &self,
        kind: BlobKind,
        id: &BlobId,
        envelope: &[u8],
        raw_length: u32,
        verify: Verify,
        base: &mut dyn FnMut(&BlobId) -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        crate::blob::open(&self.keyring, kind, id, envelope, raw_length, verify, base)
    }

    /// Whether a blob's envelope is sealed under the current key epoch
    /// (after a key rotation, older envelopes are re-sealed by prune).
    pub fn envelope_is_current(&self, envelope: &[u8]) -> bool {
        cairn_crypto::envelope::epoch_of(envelope).is_ok_and(|e| e == self.keyring.current_epoch())
    }

    /// The same blob's envelope sealed anew under the current key epoch; its
    /// payload (compressed, or a delta) is kept as is.
    pub fn reseal_envelope(&self, kind: BlobKind, id: &BlobId, envelope: &[u8]) -> Result<Vec<u8>> {
        let object = || format!("{} blob {}", kind.name(), id.short());
        let payload = self
            .keyring
            .open(kind.object_kind(), id.as_bytes(), envelope)
            .map_err(|e| RepoError::corrupt(object(), e))?;
        Ok(self.keyring.seal(kind.object_kind(), id.as_bytes(), &payload)?)
    }
}

#[cfg(test)]
mod tests {
    use cairn_backend::Backend;

    use super::*;
    use crate::InitOptions;

    #[test]
    fn listing_skips_stray_files_and_deleting_removes_the_pack() {
        let repo = Repository::init(Backend::memory().unwrap(), b"pw", &InitOptions::fast_for_tests()).unwrap();
        let repo = repo.load_index().unwrap();
        let id = repo.repo().blob_id(b"hello");
        let mut w = repo.repo().pack_writer(BlobKind::Data);
        w.add(repo.seal_blob(BlobKind::Data, id, b"hello").unwrap()).unwrap();
        let (entry, size) = repo.repo().save_pack(w.finish().unwrap().unwrap()).unwrap();
        repo.repo().backend.write(FileKind::DataPack, "not-a-pack", b"x".to_vec()).unwrap();

        let listed = repo.repo().list_packs(BlobKind::Data).unwrap();
        assert_eq!(listed, vec![StoredPack { id: entry.id, kind: BlobKind::Data, size }]);
        assert!(repo.repo().list_packs(BlobKind::Tree).unwrap().is_empty());

        // A blob read as bytes opens to its plaintext; re-sealed, it still does.
        let b = entry.blobs[0];
        let envelope =
            repo.repo().read_pack_bytes(BlobKind::Data, &entry.id, b.offset.into(), b.length.into()).unwrap();
        assert!(repo.repo().envelope_is_current(&envelope));
        let resealed = repo.repo().reseal_envelope(BlobKind::Data, &id, &envelope).unwrap();
        assert_ne!(resealed, envelope, "a fresh nonce");
        for env in [&envelope, &resealed] {
            let plain = repo
                .repo()
                .open_envelope(BlobKind::Data, &id, env, b.raw_length, Verify::Full, &mut |_| unreachable!())
                .unwrap();
            assert_eq!(plain, b"hello");
        }
        // Opened as another blob, it fails: the envelope binds the id.
        let other = repo.repo().blob_id(b"other");
        assert!(repo.repo().reseal_envelope(BlobKind::Data, &other, &envelope).is_err());

        repo.repo().delete_pack(BlobKind::Data, &entry.id).unwrap();
        assert!(repo.repo().list_packs(BlobKind::Data).unwrap().is_empty());
    }
}
