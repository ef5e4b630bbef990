//! A set of blob ids held for a whole command: the blobs a backup adds
//! (checked before each is queued), the blobs a prune finds in use. Such a
//! set grows with the repository, so it keeps 16 bytes of each id, in a
//! hash table keyed by those bytes themselves: a whole id took 33 bytes a
//! slot, twice that while the table doubled. Ids are keyed BLAKE3 hashes,
//! so no input can make two share a prefix; by chance it happens with
//! probability about n^2 / 2^129 (3e-25 for ten million blobs).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use cairn_format::BlobId;

/// The first 16 bytes of a blob id: how sets and tables that grow with the
/// repository tell blobs apart (the index keeps 20, and iterating it gives
/// these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey(u128);

impl BlobKey {
    /// The key of `id`.
    pub fn of(id: &BlobId) -> Self {
        Self::from_prefix(id.as_bytes())
    }

    /// The key of an id of which `bytes` are the first 16 or more.
    pub(crate) fn from_prefix(bytes: &[u8]) -> Self {
        let mut prefix = [0u8; 16];
        prefix.copy_from_slice(&bytes[..16]);
        Self(u128::from_le_bytes(prefix))
    }
}

/// Blob ids by their first 16 bytes.
#[derive(Debug, Default, Clone)]
pub struct BlobSet(HashSet<BlobKey, BuildHasherDefault<PrefixHash>>);

impl BlobSet {
    /// Adds `id`; false when it was there already.
    pub fn insert(&mut self, id: &BlobId) -> bool {
        self.0.insert(BlobKey::of(id))
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.0.contains(&BlobKey::of(id))
    }

    /// Adds the blob of this key; false when it was there already.
    pub fn insert_key(&mut self, key: BlobKey) -> bool {
        self.0.insert(key)
    }

    pub fn contains_key(&self, key: BlobKey) -> bool {
        self.0.contains(&key)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Somewhere blob ids are gathered (see `IndexedRepository::add_with_bases`).
pub trait BlobIds {
    /// Adds `id`; false when it was there already.
    fn add_id(&mut self, id: BlobId) -> bool;
}

impl BlobIds for BlobSet {
    fn add_id(&mut self, id: BlobId) -> bool {
        self.insert(&id)
    }
}

impl BlobIds for HashSet<BlobId> {
    fn add_id(&mut self, id: BlobId) -> bool {
        self.insert(id)
    }
}

/// The keys are uniformly random already: their low 64 bits serve as the
/// hash, where SipHash would only spend time.
#[derive(Default)]
pub struct PrefixHash(u64);

impl Hasher for PrefixHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_every_added_id_from_every_other() {
        // Ids spread over the 16 bytes kept, as keyed hashes are.
        let ids: Vec<BlobId> = (0..10_000u64)
            .map(|i| {
                let mut b = [0u8; 32];
                b[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
                b[31] = 1;
                BlobId::from_bytes(b)
            })
            .collect();
        let mut set = BlobSet::default();
        for id in &ids[..5_000] {
            assert!(set.insert(id), "first time");
        }
        for id in &ids[..5_000] {
            assert!(!set.insert(id) && set.contains(id), "there already");
        }
        assert!(ids[5_000..].iter().all(|id| !set.contains(id)), "never added");
        assert_eq!(set.len(), 5_000);
    }
}
