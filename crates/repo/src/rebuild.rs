//! Rebuilding the index from the packs themselves (`cairn repair index`).
//! Every pack's encrypted header lists its blobs (docs/FORMAT.md section
//! 8), so the index can always be derived again: one new index file lists
//! every readable pack and supersedes all existing index files, which are
//! then deleted. Packs whose header cannot be read are named and left out.

use cairn_backend::FileKind;
use cairn_format::index::IndexFile;
use cairn_format::{BlobKind, IndexId, PackId};

use crate::{RepoError, Repository, Result};

/// What a rebuild did.
#[derive(Debug)]
pub struct RebuiltIndex {
    /// The new index file.
    pub index: IndexId,
    /// Packs it lists.
    pub packs: usize,
    /// Blobs it lists.
    pub blobs: usize,
    /// The index files it replaced (deleted).
    pub replaced: Vec<IndexId>,
    /// Packs left out: their header did not read.
    pub damaged: Vec<(BlobKind, PackId, RepoError)>,
}

impl Repository {
    /// Writes one index file from every pack's header, superseding and then
    /// deleting every index file there was.
    pub fn rebuild_index(&self) -> Result<RebuiltIndex> {
        // Existing index files first: whatever is listed now is superseded.
        let old = self.index_ids()?;
        let mut packs = Vec::new();
        let mut damaged = Vec::new();
        for (kind, fk) in [(BlobKind::Data, FileKind::DataPack), (BlobKind::Tree, FileKind::TreePack)] {
            for (name, size) in self.backend.list(fk)? {
                let Ok(id) = name.parse() else { continue };
                match self.read_pack_header(kind, &id, size) {
                    Ok(h) => packs.push(h.index_pack(id)),
                    Err(e) => damaged.push((kind, id, e)),
                }
            }
        }
        let blobs = packs.iter().map(|p| p.blobs.len()).sum();
        let n = packs.len();
        let index = self.save_index(&IndexFile { supersedes: old.clone(), packs })?;
        for id in old.iter().filter(|id| **id != index) {
            self.backend.delete(FileKind::Index, &id.to_hex())?;
        }
        Ok(RebuiltIndex { index, packs: n, blobs, replaced: old, damaged })
    }
}

#[cfg(test)]
mod tests {
    use crate::{InitOptions, Repository};
    use cairn_backend::Backend;
    use cairn_format::BlobKind;
    use cairn_format::index::IndexFile;

    #[test]
    fn the_index_is_derived_again_from_the_pack_headers() {
        let repo = Repository::init(Backend::memory().expect("memory"), b"pw", &InitOptions::fast_for_tests());
        let repo = repo.expect("init").load_index().expect("index");
        let mut listed = Vec::new();
        for n in 0..2u8 {
            let mut w = repo.repo().pack_writer(BlobKind::Data);
            for i in 0..3u8 {
                let plain = vec![n * 10 + i; 100];
                let id = repo.repo().blob_id(&plain);
                w.add(repo.seal_blob(BlobKind::Data, id, &plain).expect("seal")).expect("add");
            }
            listed.push(repo.repo().save_pack(w.finish().expect("finish").expect("pack")).expect("save").0);
        }
        // An index that lists only the first pack: the second is unknown.
        let stale =
            repo.repo().save_index(&IndexFile { supersedes: vec![], packs: listed[..1].to_vec() }).expect("index");
        let r = repo.repo().rebuild_index().expect("rebuild");
        assert_eq!((r.packs, r.blobs, r.replaced.clone(), r.damaged.len()), (2, 6, vec![stale], 0));
        assert_eq!(repo.repo().index_ids().expect("ids"), vec![r.index], "the old index file is gone");
        let rebuilt = repo.repo().load_index_file(&r.index).expect("load");
        let mut got: Vec<_> = rebuilt.packs.iter().map(|p| (p.id, p.blobs.len())).collect();
        let mut want: Vec<_> = listed.iter().map(|p| (p.id, p.blobs.len())).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }
}
