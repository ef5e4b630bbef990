//! Windows of data packs shared by random-access readers (mount, browsing).
//! A restore reads packs front to back; a browser reads one small file here
//! and the next there, and each storage request costs a round trip (on a
//! local folder, a hand-off to the I/O threads: about 100 µs). Small blobs
//! sit together in packs (the files of one folder were backed up together),
//! so reading the aligned window around a small blob, and keeping recent
//! windows, serves its neighbours without another request. Blobs too big
//! to gain from it (chunks of large files, about 1 MiB) are read alone.

use std::sync::Arc;

use cairn_format::{BlobId, BlobKind, PackId};

use crate::blob::{self, Verify};
use crate::lru::Lru;
use crate::{IndexedRepository, RepoError, Result};

/// Recently read windows of packs, bounded in bytes.
pub struct PackWindows {
    size: u32,
    cache: Lru<(PackId, u32), Vec<u8>>,
}

impl PackWindows {
    /// Windows of `size` bytes, at most `budget` bytes of them kept.
    pub fn new(size: u32, budget: u64) -> Self {
        Self { size: size.max(4096), cache: Lru::new(budget) }
    }
}

impl IndexedRepository {
    /// Reads, decrypts and verifies blob `id`; a small data blob through
    /// the window of its pack around it.
    pub fn read_blob_near(&self, id: &BlobId, windows: &PackWindows) -> Result<Vec<u8>> {
        let loc = self.index().get(id).ok_or(RepoError::BlobNotFound(*id))?;
        let size = windows.size;
        let start = loc.offset / size * size;
        let end = start.saturating_add(size).min(loc.pack_end);
        if loc.kind != BlobKind::Data || loc.length > size / 4 || loc.offset + loc.length > end {
            return self.read_blob(id);
        }
        let key = (loc.pack, start / size);
        let window = match windows.cache.get(&key) {
            Some(w) => w,
            None => {
                let w = Arc::new(self.read_pack_range(&loc, start, end - start)?);
                windows.cache.insert(key, w.clone(), u64::from(end - start));
                w
            }
        };
        let at = (loc.offset - start) as usize;
        let envelope = window.get(at..at + loc.length as usize).ok_or_else(|| {
            RepoError::corrupt(format!("data pack {}", loc.pack.short()), "shorter than the index says")
        })?;
        blob::open(&self.repo().keyring, loc.kind, id, envelope, loc.raw_length, Verify::Full, &mut |b| {
            self.read_delta_base(b)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InitOptions, Repository};
    use cairn_backend::Backend;

    #[test]
    fn small_blobs_read_through_a_window_equal_their_plaintext() {
        let repo = Repository::init(Backend::memory().expect("memory"), b"pw", &InitOptions::fast_for_tests());
        let mut repo = repo.expect("init").load_index().expect("index");
        let parts: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 100 + usize::from(i) * 37]).collect();
        let mut w = repo.repo().pack_writer(BlobKind::Data);
        let ids: Vec<BlobId> = parts.iter().map(|p| repo.repo().blob_id(p)).collect();
        for (p, id) in parts.iter().zip(&ids) {
            w.add(repo.seal_blob(BlobKind::Data, *id, p).expect("seal")).expect("add");
        }
        let (entry, _) = repo.repo().save_pack(w.finish().expect("finish").expect("pack")).expect("save");
        repo.index_mut().add_pack(&entry);
        // Windows smaller than the pack, so blobs straddle their edges too.
        let windows = PackWindows::new(4096, 1 << 20);
        for (p, id) in parts.iter().zip(&ids).rev() {
            assert_eq!(&repo.read_blob_near(id, &windows).expect("read"), p);
        }
        assert!(windows.cache.used() > 0, "windows were kept");
    }
}
