//! Choosing delta bases: for each new chunk of a changed file, the chunk of
//! the parent version it most likely replaced (docs/FORMAT.md, "Delta blobs").
//!
//! A nightly database dump changes a few rows all over, so every chunk is
//! new but nearly equal to the one at the same place yesterday. The finder
//! walks the parent's chunk list alongside the new stream and pairs each
//! new chunk with the old chunk that covers the same content. Inserted and
//! deleted rows shift offsets, so it tracks the shift between the two
//! versions and re-anchors it on chunks whose ends still line up.

use std::collections::HashMap;

use cairn_format::BlobId;
use cairn_repo::Index;

/// Pairs new chunks with parent chunks, in stream order.
#[derive(Debug)]
pub struct BaseFinder {
    /// Parent chunks in file order: start, end, id.
    chunks: Vec<(u64, u64, BlobId)>,
    /// Where each parent chunk id sits in `chunks`.
    positions: HashMap<BlobId, usize>,
    /// New offset minus old offset of the content at the current position.
    shift: i64,
}

impl BaseFinder {
    /// A finder over the parent version's content; `None` when there is
    /// nothing to pair with (an empty file, or blobs the index lacks).
    pub fn new(parent: &[BlobId], index: &Index) -> Option<Self> {
        if parent.is_empty() {
            return None;
        }
        let mut chunks = Vec::with_capacity(parent.len());
        let mut positions = HashMap::with_capacity(parent.len());
        let mut at = 0u64;
        for id in parent {
            let len = u64::from(index.get(id)?.raw_length);
            positions.entry(*id).or_insert(chunks.len());
            chunks.push((at, at + len, *id));
            at += len;
        }
        Some(Self { chunks, positions, shift: 0 })
    }

    /// Called for every chunk of the new version in order: the parent chunk
    /// to code it against, or `None` (it is a parent chunk itself, or
    /// nothing overlaps it).
    pub fn base_for(&mut self, offset: u64, len: u64, id: &BlobId) -> Option<BlobId> {
        let end = (offset + len) as i64;
        if let Some(&j) = self.positions.get(id) {
            // Unchanged chunk: both versions agree exactly here.
            self.shift = end - self.chunks[j].1 as i64;
            return None;
        }
        let (want_start, want_end) = (offset as i64 - self.shift, end - self.shift);
        let first = self.chunks.partition_point(|c| c.1 as i64 <= want_start);
        let mut best: Option<(i64, usize)> = None;
        for (j, c) in self.chunks.iter().enumerate().skip(first) {
            if c.0 as i64 >= want_end {
                break;
            }
            let overlap = want_end.min(c.1 as i64) - want_start.max(c.0 as i64);
            if best.is_none_or(|(o, _)| overlap > o) {
                best = Some((overlap, j));
            }
        }
        let (_, j) = best?;
        let (start, old_end, base) = self.chunks[j];
        // Similar lengths mean both cut points survived the edit: the ends
        // correspond and fix the shift. Otherwise a cut point moved, and the
        // estimate carries on.
        let old_len = (old_end - start) as i64;
        if (len as i64 - old_len).abs() <= len as i64 / 16 {
            self.shift = end - old_end as i64;
        }
        Some(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_format::index::{IndexBlob, IndexFile, IndexPack};
    use cairn_format::{BlobKind, PackId};

    fn id(n: u8) -> BlobId {
        BlobId::from_bytes([n; 32])
    }

    fn index(lens: &[u32]) -> Index {
        let blobs = lens
            .iter()
            .enumerate()
            .map(|(i, l)| IndexBlob { id: id(i as u8), offset: 0, length: 1, raw_length: *l, base: None, sketch: None })
            .collect();
        Index::from_files([&IndexFile {
            supersedes: vec![],
            packs: vec![IndexPack { id: PackId::from_bytes([0; 32]), kind: BlobKind::Data, blobs }],
        }])
    }

    #[test]
    fn pairs_edited_chunks_through_insertions_and_resyncs_on_unchanged_ones() {
        let lens = [1000, 1000, 1000, 1000, 1000];
        let parent: Vec<BlobId> = (0..5).map(id).collect();
        let mut f = BaseFinder::new(&parent, &index(&lens)).expect("finder");
        // Chunk 0 grew by 300 bytes (an insertion), chunk 1 lost 10.
        assert_eq!(f.base_for(0, 1300, &id(100)), Some(id(0)));
        assert_eq!(f.base_for(1300, 990, &id(101)), Some(id(1)));
        // Chunk 2 unchanged: no base, shift re-anchored.
        assert_eq!(f.base_for(2290, 1000, &id(2)), None);
        // A cut point vanished: chunks 3 and 4 came back as one.
        assert_eq!(f.base_for(3290, 2005, &id(102)).map(|b| b == id(3) || b == id(4)), Some(true));
        // Past the end of the parent nothing overlaps.
        assert_eq!(f.base_for(9000, 100, &id(103)), None);
    }

    #[test]
    fn no_finder_without_parent_content() {
        assert!(BaseFinder::new(&[], &index(&[])).is_none());
        assert!(BaseFinder::new(&[id(9)], &index(&[10])).is_none());
    }
}
