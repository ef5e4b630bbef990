//! The in-memory index: blob id -> pack, offset, length (docs/FORMAT.md, "Index files").
//!
//! Memory decides how large a repository one machine can handle, so each blob
//! costs 36 bytes: the first 20 bytes of its id, a pack number and three
//! u32s, in one vector sorted by id, plus a bucket directory on the ids'
//! leading bits (under one byte per blob) that narrows a lookup to a handful
//! of neighbours: one or two cache misses instead of a binary search's twenty.
//! Ids are keyed BLAKE3, so an attacker cannot make two ids share a 160-bit
//! prefix, and by chance it happens with probability about n^2 / 2^161
//! (1e-34 for ten million blobs); a blob read through a wrong entry would
//! still fail its keyed-hash verification.

use std::collections::HashMap;

use cairn_format::index::{IndexFile, IndexPack};
use cairn_format::sketch::Sketch;
use cairn_format::{BlobId, BlobKind, PackId};

use crate::blob_set::BlobKey;
use crate::similar::SketchTable;

/// Bytes of a blob id kept in memory.
const PREFIX: usize = 20;

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
    /// For a delta blob, the blob it is coded against (it cannot be read,
    /// and must not be deleted, without it).
    pub base: Option<BlobId>,
}

/// One stored copy of a blob, as [`Index::for_each_blob`] gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobCopy {
    /// The pack holding it, as a number into [`Index::packs`].
    pub pack: usize,
    /// Bytes of its envelope.
    pub length: u32,
    /// For a delta, the blob it is coded against.
    pub base: Option<BlobId>,
}

/// One blob: 36 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    id: [u8; PREFIX],
    pack: u32,
    offset: u32,
    length: u32,
    /// Plaintext length; the top bit marks a delta blob (see `bases`).
    raw_length: u32,
}

/// Marks a delta blob in `Entry::raw_length`; real lengths are far below it.
const DELTA_BIT: u32 = 1 << 31;

/// Orders id prefixes as their bytes do, comparing the first eight as one
/// number first: ids are keyed hashes, so those almost always decide, where
/// comparing the arrays called `memcmp` for every comparison of the sorts
/// and the lookups.
fn id_order(a: &[u8; PREFIX], b: &[u8; PREFIX]) -> std::cmp::Ordering {
    let head = |x: &[u8; PREFIX]| u64::from_be_bytes([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]]);
    head(a).cmp(&head(b)).then_with(|| a[8..].cmp(&b[8..]))
}

fn prefix(id: &BlobId) -> [u8; PREFIX] {
    let mut p = [0u8; PREFIX];
    p.copy_from_slice(&id.as_bytes()[..PREFIX]);
    p
}

/// Whether an index keeps the data blobs' similarity sketches: only a
/// backup looks them up (to choose delta bases), and they cost more than
/// the rest of an entry (a blob id and 12 features, 128 bytes a blob).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sketches {
    /// Kept, for writing.
    #[default]
    Kept,
    /// Left out, for reading.
    Dropped,
}

/// An index assembled a pack at a time, sorted once at the end.
#[derive(Debug, Default)]
pub struct IndexBuilder(Index);

impl IndexBuilder {
    /// A builder for an index that keeps or drops the sketches.
    pub fn new(sketches: Sketches) -> Self {
        Self(Index { sketch_use: sketches, ..Index::default() })
    }

    /// Makes room for `blobs` more entries at once: grown by doubling, the
    /// entries took up to three times their size while being moved.
    pub fn reserve(&mut self, blobs: usize) {
        self.0.entries.reserve(blobs);
    }

    /// Adds the blobs of one pack.
    pub fn add(&mut self, p: &IndexPack) {
        self.0.push_pack(p);
    }

    /// The index, sorted in place: the stable sort took room for half the
    /// entries, 180 MiB at ten million blobs, a third of that restore's
    /// peak. Which of two entries of one blob stays does not matter (each
    /// pack holds it), and the files come in the storage's order anyway.
    pub fn build(mut self) -> Index {
        self.0.entries.sort_unstable_by(|a, b| id_order(&a.id, &b.id));
        self.0.finish();
        self.0
    }
}

/// All blobs of a repository by id.
#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<(PackId, BlobKind)>,
    pack_ends: Vec<u32>,
    pack_numbers: HashMap<PackId, u32>,
    /// Sorted by id, one entry per id.
    entries: Vec<Entry>,
    /// The copies of blobs that `entries` holds in another pack, sorted by
    /// id (rare: two backups that stored the same new content at once, or
    /// a prune's copy while the pack it copied from is still there).
    /// Readers take any copy; prune weighs them all.
    copies: Vec<Entry>,
    /// `entries[buckets[b]..buckets[b + 1]]` holds the ids whose leading
    /// `bucket_bits` bits are `b`.
    buckets: Vec<u32>,
    bucket_bits: u32,
    /// Base of each delta blob by (pack number, offset): few blobs are
    /// deltas, so they cost nothing to the others.
    bases: HashMap<(u32, u32), BlobId>,
    /// Sketches of the data blobs that have one.
    sketches: SketchTable,
    /// Whether `sketches` is filled.
    sketch_use: Sketches,
}

impl Index {
    /// Builds an index from index files in one sort (loading a repository).
    pub fn from_files<'a>(files: impl IntoIterator<Item = &'a IndexFile>) -> Self {
        let mut index = IndexBuilder::default();
        for f in files {
            for p in &f.packs {
                index.add(p);
            }
        }
        index.build()
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of memory the blob entries and their directory take.
    pub fn entry_bytes(&self) -> usize {
        (self.entries.capacity() + self.copies.capacity()) * std::mem::size_of::<Entry>() + self.buckets.capacity() * 4
    }

    fn bucket_of(&self, key: &[u8; PREFIX]) -> usize {
        if self.bucket_bits == 0 {
            return 0;
        }
        let mut head = [0u8; 4];
        head.copy_from_slice(&key[..4]);
        (u32::from_be_bytes(head) >> (32 - self.bucket_bits)) as usize
    }

    fn find(&self, id: &BlobId) -> Option<&Entry> {
        let key = prefix(id);
        let b = self.bucket_of(&key);
        let (lo, hi) = (*self.buckets.get(b)? as usize, *self.buckets.get(b + 1)? as usize);
        let slice = &self.entries[lo..hi];
        slice.binary_search_by(|e| id_order(&e.id, &key)).ok().map(|i| &slice[i])
    }

    /// Whether a blob is stored.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.find(id).is_some()
    }

    /// Where a blob is stored.
    pub fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        self.find(id).map(|e| {
            let (pack, kind) = self.packs[e.pack as usize];
            BlobLocation {
                pack,
                kind,
                offset: e.offset,
                length: e.length,
                raw_length: e.raw_length & !DELTA_BIT,
                pack_end: self.pack_ends[e.pack as usize],
                base: if e.raw_length & DELTA_BIT != 0 { self.bases.get(&(e.pack, e.offset)).copied() } else { None },
            }
        })
    }

    /// Adds the packs of one more index file (e.g. after a backup). A blob
    /// stored twice is found at one location; both are valid.
    pub fn add_file(&mut self, file: &IndexFile) {
        for p in &file.packs {
            self.push_pack(p);
        }
        self.sort();
    }

    /// Adds one pack's blobs.
    pub fn add_pack(&mut self, p: &IndexPack) {
        self.push_pack(p);
        self.sort();
    }

    fn push_pack(&mut self, p: &IndexPack) {
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
            // A length with the top bit set is invalid anyway (reading the
            // blob fails on it); keep the bit for the delta mark.
            let mut raw_length = b.raw_length.min(DELTA_BIT - 1);
            if let Some(base) = b.base {
                self.bases.insert((number, b.offset), base);
                raw_length |= DELTA_BIT;
            }
            if let Some(sketch) = &b.sketch
                && p.kind == BlobKind::Data
                && self.sketch_use == Sketches::Kept
            {
                self.sketches.push(b.id, sketch);
            }
            self.entries.push(Entry {
                id: prefix(&b.id),
                pack: number,
                offset: b.offset,
                length: b.length,
                raw_length,
            });
        }
    }

    fn sort(&mut self) {
        // Nearly sorted after an append: the standard sort detects the runs
        // (for room of up to half the entries; see `IndexBuilder::build`).
        self.entries.sort_by(|a, b| id_order(&a.id, &b.id));
        self.finish();
    }

    /// Keeps one entry of each id, moves those of other packs to `copies`
    /// (one pack listed twice, as index files may, counts once), and
    /// indexes the sorted entries.
    fn finish(&mut self) {
        let mut found = Vec::new();
        self.entries.dedup_by(|later, kept| {
            let same = later.id == kept.id;
            if same && later.pack != kept.pack {
                found.push(*later);
            }
            same
        });
        self.entries.shrink_to_fit();
        if !found.is_empty() || !self.copies.is_empty() {
            self.copies.append(&mut found);
            self.copies.sort_unstable_by(|a, b| id_order(&a.id, &b.id).then(a.pack.cmp(&b.pack)));
            self.copies.dedup_by_key(|e| (e.id, e.pack));
            let entries = &self.entries;
            self.copies.retain(|c| {
                let at = entries.partition_point(|e| id_order(&e.id, &c.id).is_lt());
                entries.get(at).is_none_or(|e| e.id != c.id || e.pack != c.pack)
            });
            self.copies.shrink_to_fit();
        }
        self.sketches.sort();
        // About eight entries per bucket: a lookup touches one or two cache lines.
        let n = self.entries.len();
        self.bucket_bits = (usize::BITS - n.leading_zeros()).saturating_sub(3).min(24);
        let count = 1usize << self.bucket_bits;
        let mut buckets = Vec::with_capacity(count + 1);
        let mut at = 0usize;
        for b in 0..count {
            while at < n && self.bucket_of(&self.entries[at].id) < b {
                at += 1;
            }
            buckets.push(at as u32);
        }
        buckets.push(n as u32);
        self.buckets = buckets;
    }

    /// The stored data blob whose content most resembles a chunk with
    /// this sketch, as a delta base (`prefer` wins ties), and how many of
    /// the sketch's features it shares; `None` when no sketched blob
    /// shares one.
    pub fn most_similar(&self, sketch: &Sketch, prefer: Option<&BlobId>) -> Option<(BlobId, usize)> {
        self.sketches.most_similar(sketch, prefer)
    }

    /// The bases of the copies of `id` that are deltas: usually none or
    /// one, but two copies of a blob may be coded differently, and each
    /// must stay readable while its pack is kept.
    pub fn bases(&self, id: &BlobId) -> impl Iterator<Item = BlobId> + '_ {
        let key = prefix(id);
        // Without any delta (most repositories of files), no lookup: a
        // prune's marking asks this of every blob a snapshot names.
        let none = self.bases.is_empty();
        let at = if none { self.copies.len() } else { self.copies.partition_point(|e| id_order(&e.id, &key).is_lt()) };
        let others = self.copies[at..].iter().take_while(move |e| e.id == key);
        let found = if none { None } else { self.find(id) };
        found.into_iter().chain(others).filter_map(|e| self.base_of(e))
    }

    fn base_of(&self, e: &Entry) -> Option<BlobId> {
        if e.raw_length & DELTA_BIT == 0 {
            return None;
        }
        self.bases.get(&(e.pack, e.offset)).copied()
    }

    /// Calls `each` once per blob with every stored copy of it, in order of
    /// id (what prune decides by: which packs hold what, and how much).
    pub fn for_each_blob(&self, mut each: impl FnMut(BlobKey, &[BlobCopy])) {
        let mut copies = self.copies.iter().peekable();
        let mut group = Vec::with_capacity(2);
        for e in &self.entries {
            group.clear();
            group.push(self.copy_of(e));
            while let Some(c) = copies.next_if(|c| id_order(&c.id, &e.id).is_le()) {
                // Every copy has its entry (`finish`), so none is passed over.
                debug_assert_eq!(c.id, e.id);
                group.push(self.copy_of(c));
            }
            each(BlobKey::from_prefix(&e.id), &group);
        }
    }

    fn copy_of(&self, e: &Entry) -> BlobCopy {
        BlobCopy { pack: e.pack as usize, length: e.length, base: self.base_of(e) }
    }

    /// The number of a pack in [`Index::packs`].
    pub fn pack_number(&self, id: &PackId) -> Option<usize> {
        self.pack_numbers.get(id).map(|n| *n as usize)
    }

    /// Number of delta blobs.
    pub fn delta_count(&self) -> usize {
        self.entries.iter().filter(|e| e.raw_length & DELTA_BIT != 0).count()
    }

    /// All packs with their kind.
    pub fn packs(&self) -> &[(PackId, BlobKind)] {
        &self.packs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_format::index::IndexBlob;
    use proptest::prelude::*;

    fn id(seed: u64) -> BlobId {
        BlobId::from_bytes(*blake3::hash(&seed.to_le_bytes()).as_bytes())
    }

    fn file(ids: &[BlobId], pack: u8) -> IndexFile {
        IndexFile {
            supersedes: vec![],
            packs: vec![IndexPack {
                id: PackId::from_bytes([pack; 32]),
                kind: BlobKind::Data,
                blobs: ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| IndexBlob {
                        id: *id,
                        offset: i as u32 * 10,
                        length: 10,
                        raw_length: 7,
                        base: None,
                        sketch: None,
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn entries_are_thirty_six_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 36);
    }

    proptest! {
        #[test]
        fn finds_every_added_id_and_no_other(n in 0usize..3000, split in 0usize..3000) {
            let ids: Vec<BlobId> = (0..n as u64).map(id).collect();
            let split = split.min(n);
            let mut index = Index::from_files([&file(&ids[..split], 1)]);
            index.add_file(&file(&ids[split..], 2));
            prop_assert_eq!(index.len(), n);
            for (i, b) in ids.iter().enumerate() {
                let loc = index.get(b).expect("present");
                let (pack, pos) = if i < split { (1u8, i) } else { (2u8, i - split) };
                prop_assert_eq!(loc.pack, PackId::from_bytes([pack; 32]));
                prop_assert_eq!(loc.offset, pos as u32 * 10);
            }
            for k in 0..200u64 {
                prop_assert!(!index.contains(&id(1_000_000 + k)));
            }
        }
    }

    #[test]
    fn delta_blobs_keep_their_base_and_length() {
        let ids: Vec<BlobId> = (0..4).map(id).collect();
        let mut f = file(&ids, 1);
        f.packs[0].blobs[2].base = Some(ids[0]);
        let index = Index::from_files([&f]);
        assert_eq!(index.get(&ids[2]).map(|l| (l.base, l.raw_length)), Some((Some(ids[0]), 7)));
        assert_eq!(index.get(&ids[1]).map(|l| (l.base, l.raw_length)), Some((None, 7)));
    }

    #[test]
    fn duplicates_keep_one_entry() {
        let ids: Vec<BlobId> = (0..10).map(id).collect();
        let index = Index::from_files([&file(&ids, 1), &file(&ids, 2)]);
        assert_eq!(index.len(), 10);
        assert_eq!(index.packs().len(), 2);
    }

    #[test]
    fn every_copy_of_a_blob_is_told_once_per_pack() {
        let ids: Vec<BlobId> = (0..10).map(id).collect();
        // Pack 1 listed twice (two index files may name one pack), pack 2
        // holding the first half again, then pack 3 the last id, added later.
        let mut index = Index::from_files([&file(&ids, 1), &file(&ids[..5], 2), &file(&ids, 1)]);
        index.add_file(&file(&ids[9..], 3));
        index.add_file(&file(&ids[..5], 2));
        let mut told = Vec::new();
        index.for_each_blob(|key, copies| {
            let mut packs: Vec<u8> = copies.iter().map(|c| index.packs()[c.pack].0.as_bytes()[0]).collect();
            packs.sort();
            told.push((key, packs));
        });
        let mut expected: Vec<(BlobKey, Vec<u8>)> = (ids.iter().enumerate())
            .map(|(i, b)| {
                (
                    BlobKey::of(b),
                    if i < 5 {
                        vec![1, 2]
                    } else if i == 9 {
                        vec![1, 3]
                    } else {
                        vec![1]
                    },
                )
            })
            .collect();
        told.sort();
        expected.sort();
        assert_eq!(told, expected);
        assert_eq!(index.len(), 10, "readers still find one entry per blob");
    }

    #[test]
    fn the_bases_of_every_copy_are_told() {
        let ids: Vec<BlobId> = (0..4).map(id).collect();
        // ids[1] whole in pack 1, a delta against ids[0] in pack 2, in
        // either order of the files.
        let mut delta = file(&ids[1..2], 2);
        delta.packs[0].blobs[0].base = Some(ids[0]);
        for files in [[&file(&ids, 1), &delta], [&delta, &file(&ids, 1)]] {
            let index = Index::from_files(files);
            assert_eq!(index.bases(&ids[1]).collect::<Vec<_>>(), vec![ids[0]]);
            assert_eq!(index.bases(&ids[2]).count(), 0);
        }
    }
}
