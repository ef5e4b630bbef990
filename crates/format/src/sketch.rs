//! Similarity sketches of data blobs (docs/FORMAT.md, "Sketches"): twelve
//! min-hashes of a chunk's content, so a new chunk can find the stored blob
//! it most resembles and be coded as a delta against it, wherever that
//! blob's content sat before (another place in the file, another file).
//!
//! A rolling hash over the last 64 bytes marks content-defined anchors
//! (about one every 256 bytes); each feature is the least of one hash
//! function over all anchors. An edit changes a feature only when it hits
//! the anchor that held the minimum, so a chunk with a few rows changed
//! keeps most features of its old version, and a chunk made of two old
//! ones shares features with each.

/// Features per sketch.
pub const FEATURES: usize = 12;

/// Blobs shorter than this get no sketch: small files are rarely worth a
/// delta, and they would make the sketch table as large as the index.
pub const MIN_SKETCHED_LEN: usize = 64 * 1024;

/// Bytes of a sketch in pack headers and index files.
pub const SKETCH_LEN: usize = 4 * FEATURES;

/// Rolling hashes whose top `ANCHOR_BITS` bits are zero are anchors.
const ANCHOR_BITS: u32 = 8;

/// A data blob's sketch: feature `i` is the low 32 bits of the least
/// `mix(h ^ i * SALT)` over its anchors' rolling hashes `h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sketch(pub [u32; FEATURES]);

impl Sketch {
    /// The sketch of a chunk's plaintext; `None` when the content has no
    /// anchor at all (short, or one byte repeated that never makes one).
    pub fn of(data: &[u8]) -> Option<Self> {
        let gear = &*GEAR;
        let mut mins = [u64::MAX; FEATURES];
        let mut anchors = 0usize;
        let mut h = 0u64;
        for &b in data {
            h = (h << 1).wrapping_add(gear[b as usize]);
            if h >> (64 - ANCHOR_BITS) == 0 {
                anchors += 1;
                for (i, m) in mins.iter_mut().enumerate() {
                    let v = mix(h ^ (i as u64).wrapping_mul(SALT));
                    *m = (*m).min(v);
                }
            }
        }
        // The low half: a least value's high bits are mostly zeros, so
        // unrelated chunks would share them by chance.
        (anchors > 0).then(|| Self(mins.map(|m| m as u32)))
    }

    /// Encodes as [`SKETCH_LEN`] bytes, features little-endian in order.
    pub fn to_bytes(&self) -> [u8; SKETCH_LEN] {
        let mut out = [0u8; SKETCH_LEN];
        for (dst, f) in out.chunks_exact_mut(4).zip(self.0) {
            dst.copy_from_slice(&f.to_le_bytes());
        }
        out
    }

    /// Decodes [`SKETCH_LEN`] bytes.
    pub fn from_bytes(b: &[u8; SKETCH_LEN]) -> Self {
        let mut f = [0u32; FEATURES];
        for (dst, src) in f.iter_mut().zip(b.chunks_exact(4)) {
            *dst = u32::from_le_bytes([src[0], src[1], src[2], src[3]]);
        }
        Self(f)
    }
}

/// Odd constant that makes the twelve hash functions differ.
const SALT: u64 = 0x632B_E59B_D9B4_E019;

/// SplitMix64's finalizer: a fast, well-mixed 64-bit hash.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The rolling hash's byte table: `mix(b + 0x5ce7c4)`. Fixed, not keyed:
/// sketches are stored only inside encrypted headers and index files, and
/// a fixed table keeps them comparable across repositories (`copy`).
static GEAR: std::sync::LazyLock<[u64; 256]> =
    std::sync::LazyLock::new(|| std::array::from_fn(|b| mix(b as u64 + 0x5ce7c4)));

/// The sketch table: each sketched blob's sketch (FORMAT.md 7.4).
const SKETCHES: crate::Table = crate::Table {
    payload: SKETCH_LEN,
    count: "sketch count",
    records: "sketch records",
    position: "sketch position",
    tree: "sketch of a tree blob",
    order: "sketch positions out of order or out of range",
};

/// Appends the sketch table of a list of blobs.
pub(crate) fn encode_table<'a>(out: &mut Vec<u8>, sketches: impl Iterator<Item = Option<&'a Sketch>> + Clone) {
    crate::encode_table(out, sketches, |s, out| out.extend_from_slice(&s.to_bytes()));
}

/// Reads the sketch table for `n` blobs of `kind`: (position, sketch) pairs.
pub(crate) fn decode_table(
    r: &mut crate::Reader<'_>,
    n: usize,
    kind: crate::BlobKind,
) -> Result<Vec<(usize, Sketch)>, crate::FormatError> {
    crate::decode_table(r, n, kind, &SKETCHES, |r| {
        let mut b = [0u8; SKETCH_LEN];
        b.copy_from_slice(r.bytes(SKETCH_LEN, "sketch")?);
        Ok(Sketch::from_bytes(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize, seed: u64) -> Vec<u8> {
        // Rows of hex text, like a dump's COPY section.
        let mut out = Vec::with_capacity(n + 80);
        let mut i = seed;
        while out.len() < n {
            i += 1;
            out.extend_from_slice(format!("{i}\t{:016x}{:016x}\t{}\n", mix(i), mix(i ^ 7), i % 97).as_bytes());
        }
        out.truncate(n);
        out
    }

    /// Computed once from section 7.4's text by a separate Python
    /// implementation, which agreed with this one.
    const KNOWN: [u32; FEATURES] = [
        256885296, 2181670062, 563221525, 2296137971, 3511970975, 3768161918, 2741732273, 4223421058, 2019630323,
        4131599183, 2095298159, 1600134162,
    ];

    fn shared(a: &Sketch, b: &Sketch) -> usize {
        a.0.iter().zip(b.0.iter()).filter(|(x, y)| x == y).count()
    }

    #[test]
    fn edited_content_keeps_most_features_and_unrelated_content_none() {
        let a = text(1 << 20, 0);
        let mut edited = a.clone();
        // A hundred small edits spread over the chunk, a row's worth each.
        for k in 0..100 {
            let at = k * 10_000 + 77;
            edited.splice(at..at + 20, *b"changed row 00000000");
        }
        let (sa, se) = (Sketch::of(&a).expect("anchors"), Sketch::of(&edited).expect("anchors"));
        assert!(shared(&sa, &se) >= 9, "{} of 12 features kept", shared(&sa, &se));
        let other = Sketch::of(&text(1 << 20, 1 << 40)).expect("anchors");
        assert_eq!(shared(&sa, &other), 0);
    }

    #[test]
    fn a_chunk_made_of_two_halves_resembles_both() {
        let (a, b) = (text(1 << 20, 0), text(1 << 20, 1 << 40));
        let mixed: Vec<u8> = a[..1 << 19].iter().chain(&b[1 << 19..]).copied().collect();
        let s = Sketch::of(&mixed).expect("anchors");
        let (sa, sb) = (Sketch::of(&a).expect("anchors"), Sketch::of(&b).expect("anchors"));
        // Each feature of the mix is the least over both halves, so it is
        // A's or B's wherever their least anchor sat in the half kept.
        assert!(shared(&s, &sa) >= 1 && shared(&s, &sb) >= 1, "{} {}", shared(&s, &sa), shared(&s, &sb));
    }

    #[test]
    fn known_answer_pins_the_algorithm_of_format_md() {
        // Sketches written by one version are compared by the next: a change
        // to the algorithm is a format change (docs/FORMAT.md, section 7.4).
        let s = Sketch::of(&text(1 << 16, 5)).expect("anchors");
        assert_eq!(s.0, KNOWN);
    }

    #[test]
    fn no_sketch_without_anchors_and_bytes_round_trip() {
        assert_eq!(Sketch::of(&[]), None);
        assert_eq!(Sketch::of(&[0x41; 1000]).is_some(), Sketch::of(&[0x41; 1 << 16]).is_some());
        let s = Sketch::of(&text(1 << 17, 3)).expect("anchors");
        assert_eq!(Sketch::from_bytes(&s.to_bytes()), s);
    }
}
