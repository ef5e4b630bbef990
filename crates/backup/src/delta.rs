//! Choosing delta bases (docs/FORMAT.md, "Delta blobs" and "Sketches").
//!
//! A nightly database dump changes a few rows all over, so every chunk is
//! new but nearly equal to some stored one: [`choose`] finds it by the
//! chunk's sketch among all indexed blobs, wherever that content was
//! before. [`BaseFinder`] is the fallback for chunks without a sketch match
//! (blobs written before sketches existed, chunks under 64 KiB): it walks
//! the parent version's chunk list alongside the new stream and pairs each
//! new chunk with the old chunk at the same content position.
//!
//! When an edit removes a cut point, a new chunk holds two old chunks'
//! content, and one base covers only part of it. [`split`] then cuts the new
//! chunk where its most similar blob's content begins and ends, so each
//! piece has a base that covers it (the writer chooses cut points; readers
//! only see a file's list of blobs).

use std::collections::HashMap;
use std::ops::Range;

use cairn_format::sketch::{FEATURES, MIN_SKETCHED_LEN, Sketch};
use cairn_format::{BlobId, payload};
use cairn_repo::{Index, IndexedRepository};

/// What to store a data blob as: its sketch (recorded in the index for
/// later runs) and the stored blob to code it against, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Choice {
    pub sketch: Option<Sketch>,
    pub base: Option<BlobId>,
}

/// The sketch and base of a new data chunk; `hint` is the parent version's
/// chunk at its place ([`BaseFinder`]), which wins ties and stands in when
/// no sketch matches.
pub fn choose(repo: &IndexedRepository, data: &[u8], hint: Option<BlobId>) -> Choice {
    choose_counted(repo, data, hint).0
}

/// [`choose`], and how many sketch features the base shares (0 when it
/// is the hint or there is none).
fn choose_counted(repo: &IndexedRepository, data: &[u8], hint: Option<BlobId>) -> (Choice, usize) {
    let sketchable = data.len() >= MIN_SKETCHED_LEN;
    // Media and other incompressible data gain nothing from a delta: the
    // cheap sample test spares sketching them and reading a base.
    if !(sketchable || hint.is_some()) || !payload::looks_compressible(data) {
        return (Choice::default(), 0);
    }
    let sketch = if sketchable { Sketch::of(data) } else { None };
    match sketch.as_ref().and_then(|s| repo.index().most_similar(s, hint.as_ref())) {
        Some((base, shared)) => (Choice { sketch, base: Some(base) }, shared),
        None => (Choice { sketch, base: hint }, 0),
    }
}

/// The sketch of a new data chunk and no base: what a backup that stores
/// every chunk whole records, so later ones can code against it.
pub fn sketch_only(data: &[u8]) -> Choice {
    let sketchable = data.len() >= MIN_SKETCHED_LEN && payload::looks_compressible(data);
    Choice { sketch: if sketchable { Sketch::of(data) } else { None }, base: None }
}

/// Pieces shorter than this are not cut off: not worth a blob of their own.
const MIN_PIECE: usize = MIN_SKETCHED_LEN;

/// Features a chunk shares with its base when it is the same content with
/// edits: 3 of 4 (on pg_dump output, looking only below 12 of 12 made a
/// day-2 backup take 2.2 s instead of 1.3 and stored the same; below 7 of
/// 12 left a few chunks with half a base).
const SAME_CONTENT: usize = FEATURES * 3 / 4;

/// Bytes of the base's head and tail looked for in the new chunk.
const PROBE: usize = 64;

/// [`choose`] for a new chunk, cut into up to three pieces when its most
/// similar blob's content covers only part of it: what comes before that
/// content and what comes after (each with a base of its own), and it.
pub fn split(repo: &IndexedRepository, data: &[u8], hint: Option<BlobId>) -> Vec<(Range<usize>, Choice)> {
    let (whole, shared) = choose_counted(repo, data, hint);
    let one = || vec![(0..data.len(), whole)];
    let Some(base) = whole.base.filter(|_| shared > 0) else { return one() };
    let Some(base_len) = repo.index().get(&base).map(|l| l.raw_length as usize) else { return one() };
    // Most features shared and about the same length: the same content,
    // edited here and there; reading the base to look is not worth it.
    if shared >= SAME_CONTENT && data.len().abs_diff(base_len) <= base_len / 8 {
        return one();
    }
    let Ok(old) = repo.read_delta_base(&base) else { return one() };
    let Some(span) = find_within(data, &old) else { return one() };
    let mut cuts = vec![0];
    if span.start >= MIN_PIECE {
        cuts.push(span.start);
    }
    if data.len() - span.end >= MIN_PIECE {
        cuts.push(span.end);
    }
    cuts.push(data.len());
    if cuts.len() == 2 {
        return one();
    }
    cuts.windows(2)
        .map(|w| {
            let r = w[0]..w[1];
            let c = if r == span {
                Choice { sketch: Sketch::of(&data[r.clone()]), base: Some(base) }
            } else {
                choose(repo, &data[r.clone()], None)
            };
            (r, c)
        })
        .collect()
}

/// Where `old`'s content sits in `data`: from where its head is found
/// (or from the start, if `data` begins inside it) to where its tail ends
/// (or to the end). A few probes from each end, in case the very first or
/// last bytes were edited. `None` when neither end is found.
fn find_within(data: &[u8], old: &[u8]) -> Option<Range<usize>> {
    if old.len() < 8 * PROBE {
        return None;
    }
    let steps = [0, 4096, 16384, 65536].into_iter().filter(|s| s + PROBE <= old.len() / 2);
    let start = steps.clone().find_map(|s| {
        let at = memchr::memmem::find(data, &old[s..s + PROBE])?;
        at.checked_sub(s)
    });
    let end = steps.into_iter().find_map(|s| {
        let probe = &old[old.len() - s - PROBE..old.len() - s];
        let at = memchr::memmem::rfind(data, probe)?;
        Some((at + PROBE + s).min(data.len()))
    });
    if start.is_none() && end.is_none() {
        return None;
    }
    let (start, end) = (start.unwrap_or(0), end.unwrap_or(data.len()));
    (start < end).then_some(start..end)
}

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

    fn rows(from: usize, to: usize) -> Vec<u8> {
        (from..to).flat_map(|i| format!("INSERT INTO t VALUES ({i}, 'row {i}');\n").into_bytes()).collect()
    }

    #[test]
    fn finds_where_the_old_content_begins_and_ends_in_the_new_chunk() {
        let old = rows(1000, 3000);
        // The old chunk between other content; its very first and last
        // bytes edited.
        let mut edited = old.clone();
        edited[10] = b'#';
        let n = edited.len();
        edited[n - 10] = b'#';
        let new = [rows(0, 1000), edited, rows(3000, 4000)].concat();
        let (a, b) = (rows(0, 1000).len(), rows(0, 3000).len());
        assert_eq!(find_within(&new, &old), Some(a..b));
        // The new chunk starts inside the old one, or ends inside it.
        assert_eq!(find_within(&new[a + 5000..], &old), Some(0..b - a - 5000));
        assert_eq!(find_within(&new[..b - 5000], &old), Some(a..b - 5000));
        // Unrelated content.
        assert_eq!(find_within(&rows(5000, 9000), &old), None);
    }

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
