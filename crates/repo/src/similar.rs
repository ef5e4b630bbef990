//! The sketch table: which stored data blob a new chunk most resembles
//! (docs/FORMAT.md, "Sketches"), to code it as a delta against that blob.
//!
//! Each sketched blob costs its id (32 bytes) and one (feature, blob)
//! pair per feature (12 x 8 bytes), in vectors sorted once after loading:
//! 128 bytes for a blob of 64 KiB to 8 MiB, on top of the index's 36.

use cairn_format::BlobId;
use cairn_format::sketch::Sketch;

/// Candidates one feature contributes at most.
const MAX_PER_FEATURE: usize = 64;

/// Sketched blobs, searchable by feature.
#[derive(Debug, Default)]
pub(crate) struct SketchTable {
    blobs: Vec<BlobId>,
    /// (feature, position in `blobs`), sorted by feature.
    features: Vec<(u32, u32)>,
}

impl SketchTable {
    pub(crate) fn push(&mut self, id: BlobId, sketch: &Sketch) {
        let at = self.blobs.len() as u32;
        self.blobs.push(id);
        self.features.extend(sketch.0.iter().map(|f| (*f, at)));
    }

    /// Restores the order lookups need, after pushes.
    pub(crate) fn sort(&mut self) {
        self.features.sort_unstable();
        self.features.dedup();
    }

    /// The blob sharing most features with `sketch`, and how many, if any shares one;
    /// among equals, `prefer` (the chunk the same place of the file's
    /// previous version held) and then the blob indexed last.
    pub(crate) fn most_similar(&self, sketch: &Sketch, prefer: Option<&BlobId>) -> Option<(BlobId, usize)> {
        // A feature that very many blobs share (boilerplate repeated in
        // many files) says little about any one of them: the last
        // `MAX_PER_FEATURE` indexed are enough, and bound the work.
        let mut votes: Vec<(u32, u32)> = Vec::new();
        for f in sketch.0 {
            let start = self.features.partition_point(|(g, _)| *g < f);
            let end = start + self.features[start..].partition_point(|(g, _)| *g == f);
            for (_, at) in &self.features[end.saturating_sub(MAX_PER_FEATURE).max(start)..end] {
                match votes.iter_mut().find(|(b, _)| b == at) {
                    Some((_, n)) => *n += 1,
                    None => votes.push((*at, 1)),
                }
            }
        }
        votes
            .iter()
            .map(|(at, n)| (*n, Some(&self.blobs[*at as usize]) == prefer, *at))
            .max()
            .map(|(n, _, at)| (self.blobs[at as usize], n as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_format::sketch::FEATURES;

    fn id(n: u8) -> BlobId {
        BlobId::from_bytes([n; 32])
    }

    /// A sketch whose first `shared` features are `base`'s, the rest its own.
    fn sketch(base: u32, shared: usize, own: u32) -> Sketch {
        Sketch(std::array::from_fn(|i| if i < shared { base + i as u32 } else { own + i as u32 }))
    }

    #[test]
    fn most_shared_features_win_and_ties_go_to_the_preferred_then_the_latest() {
        let mut t = SketchTable::default();
        t.push(id(1), &sketch(100, FEATURES, 100));
        t.push(id(2), &sketch(100, 7, 1000));
        t.push(id(3), &sketch(100, 7, 2000));
        t.sort();
        // Ten features of blob 1 (and seven of 2 and 3).
        assert_eq!(t.most_similar(&sketch(100, 10, 9000), None), Some((id(1), 10)));
        assert_eq!(t.most_similar(&sketch(100, 10, 9000), Some(&id(2))), Some((id(1), 10)));
        // Five each: the preferred one, else the one indexed last.
        assert_eq!(t.most_similar(&sketch(100, 5, 9000), Some(&id(2))), Some((id(2), 5)));
        assert_eq!(t.most_similar(&sketch(100, 5, 9000), None), Some((id(3), 5)));
        assert_eq!(t.most_similar(&sketch(50_000, FEATURES, 0), Some(&id(2))), None);
    }

    #[test]
    fn a_feature_shared_by_very_many_blobs_counts_for_the_last_of_them_only() {
        let mut t = SketchTable::default();
        for n in 0..200u8 {
            // Feature 0 in common (boilerplate), the rest each blob's own.
            let mut s = sketch(u32::from(n) * 100 + 10_000, FEATURES, 0);
            s.0[0] = 7;
            t.push(id(n), &s);
        }
        t.sort();
        let mut probe = sketch(999_999, 0, 999_999);
        probe.0[0] = 7;
        assert_eq!(t.most_similar(&probe, None), Some((id(199), 1)));
        // Blob 5 is not among the last 64 that share feature 0, but two
        // features of its own make it the best.
        probe.0[3] = 5 * 100 + 10_000 + 3;
        probe.0[4] = 5 * 100 + 10_000 + 4;
        assert_eq!(t.most_similar(&probe, None), Some((id(5), 2)));
    }
}
