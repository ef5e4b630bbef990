//! The in-memory index: blob id -> pack, offset, length (docs/FORMAT.md, "Index files").

use std::collections::HashMap;

use cairn_format::index::{IndexBlob, IndexFile, IndexPack};
use cairn_format::{BlobId, BlobKind, PackId};

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack holding it.
    pub pack: PackId,
    /// Kind of the blob (and of its pack).
    pub kind: BlobKind,
    /// Offset of its envelope in the pack.
    pub offset: u32,
    /// Length of its envelope.
    pub length: u32,
    /// Length of its plaintext.
    pub raw_length: u32,
    /// End of the last blob the index lists in the same pack (where its
    /// header starts), so readers can read ahead without passing it.
    pub pack_end: u32,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    pack: u32,
    offset: u32,
    length: u32,
    raw_length: u32,
}

/// All blobs of a repository by id. Packs are numbered in a side table so an
/// entry does not repeat its 32-byte pack id.
#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<(PackId, BlobKind)>,
    pack_ends: Vec<u32>,
    pack_numbers: HashMap<PackId, u32>,
    blobs: HashMap<BlobId, Slot>,
}

impl Index {
    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// True when no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Whether a blob is stored.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    /// Where a blob is stored.
    pub fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        self.blobs.get(id).map(|s| {
            let (pack, kind) = self.packs[s.pack as usize];
            let pack_end = self.pack_ends[s.pack as usize];
            BlobLocation { pack, kind, offset: s.offset, length: s.length, raw_length: s.raw_length, pack_end }
        })
    }

    /// Adds the packs of an index file. A blob stored twice keeps its first location.
    pub fn add_file(&mut self, file: &IndexFile) {
        for p in &file.packs {
            self.add_pack(p);
        }
    }

    /// Adds one pack's blobs.
    pub fn add_pack(&mut self, p: &IndexPack) {
        let number = match self.pack_numbers.get(&p.id) {
            Some(n) => *n,
            None => {
                let n = self.packs.len() as u32;
                self.packs.push((p.id, p.kind));
                self.pack_ends.push(0);
                self.pack_numbers.insert(p.id, n);
                n
            }
        };
        let end = p.blobs.iter().map(|b| b.offset.saturating_add(b.length)).max().unwrap_or(0);
        let slot = &mut self.pack_ends[number as usize];
        *slot = (*slot).max(end);
        for b in &p.blobs {
            self.blobs.entry(b.id).or_insert(Slot {
                pack: number,
                offset: b.offset,
                length: b.length,
                raw_length: b.raw_length,
            });
        }
    }

    /// All packs with their kind.
    pub fn packs(&self) -> &[(PackId, BlobKind)] {
        &self.packs
    }

    /// The blobs the index says each pack holds, grouped by pack.
    pub fn blobs_by_pack(&self) -> HashMap<PackId, Vec<IndexBlob>> {
        let mut out: HashMap<PackId, Vec<IndexBlob>> = HashMap::new();
        for (id, s) in &self.blobs {
            let (pack, _) = self.packs[s.pack as usize];
            out.entry(pack).or_default().push(IndexBlob {
                id: *id,
                offset: s.offset,
                length: s.length,
                raw_length: s.raw_length,
            });
        }
        for v in out.values_mut() {
            v.sort_by_key(|b| b.offset);
        }
        out
    }
}
