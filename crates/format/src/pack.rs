//! Pack files: blobs, then an encrypted header listing them, then a 4-byte
//! trailer (docs/FORMAT.md, "Packs").
//!
//! ```text
//! blob envelope 0 | ... | blob envelope n-1 | header envelope | header envelope length (u32 LE)
//! ```

use crate::index::{IndexBlob, IndexPack};
use crate::sketch::{self, Sketch};
use crate::{BlobId, BlobKind, FormatError, PackId, Reader};

/// Version byte at the start of the header plaintext: 2 when a sketch
/// table follows the delta table, else 1 (what cairn before sketches reads).
pub const HEADER_VERSION: u8 = 2;
/// Bytes of the trailer: the header envelope's length.
pub const TRAILER_LEN: usize = 4;
/// Bytes of one header entry: id, length, raw length.
pub const ENTRY_LEN: usize = 32 + 4 + 4;
/// Bytes of a header without blobs: version, kind, count and the (empty) delta table.
pub const HEADER_FIXED_LEN: usize = 1 + 1 + 4 + 4;

/// One blob as the pack header lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// The blob's id.
    pub id: BlobId,
    /// Bytes of its envelope in the pack.
    pub length: u32,
    /// Bytes of its plaintext after decompression.
    pub raw_length: u32,
    /// For a delta blob (payload flag 2), the blob its content is coded against.
    pub base: Option<BlobId>,
    /// Its similarity sketch, for choosing delta bases (data blobs only).
    pub sketch: Option<Sketch>,
}

/// The decrypted header of a pack: what it holds, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackHeader {
    /// All blobs of a pack are of one kind.
    pub kind: BlobKind,
    /// Blobs in file order; offsets are the running sum of lengths.
    pub entries: Vec<PackEntry>,
}

impl PackHeader {
    /// Encodes the header plaintext (before the payload flag and envelope).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_FIXED_LEN + ENTRY_LEN * self.entries.len());
        let sketched = self.entries.iter().any(|e| e.sketch.is_some());
        out.push(if sketched { HEADER_VERSION } else { 1 });
        out.push(self.kind as u8);
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(e.id.as_bytes());
            out.extend_from_slice(&e.length.to_le_bytes());
            out.extend_from_slice(&e.raw_length.to_le_bytes());
        }
        crate::encode_delta_table(&mut out, self.entries.iter().map(|e| e.base.as_ref()));
        if sketched {
            sketch::encode_table(&mut out, self.entries.iter().map(|e| e.sketch.as_ref()));
        }
        out
    }

    /// Decodes a header plaintext.
    pub fn decode(buf: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(buf);
        let version = r.u8("pack header version")?;
        if !(1..=HEADER_VERSION).contains(&version) {
            return Err(FormatError::NewerVersion { found: version.into(), supported: HEADER_VERSION.into() });
        }
        let kind = BlobKind::from_byte(r.u8("pack header kind")?)?;
        let count = r.u32("pack header count")?;
        let count = r.check_count(count, ENTRY_LEN, "pack header entries")?;
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            entries.push(PackEntry {
                id: BlobId::from_bytes(r.id32("blob id")?),
                length: r.u32("blob length")?,
                raw_length: r.u32("blob raw length")?,
                base: None,
                sketch: None,
            });
        }
        for (at, base) in crate::decode_delta_table(&mut r, count, kind)? {
            entries[at].base = Some(base);
        }
        if version >= 2 {
            for (at, s) in sketch::decode_table(&mut r, count, kind)? {
                entries[at].sketch = Some(s);
            }
        }
        if r.remaining() != 0 {
            return Err(FormatError::Invalid("trailing bytes after pack header"));
        }
        Ok(Self { kind, entries })
    }

    /// Each entry with its offset in the pack file.
    pub fn with_offsets(&self) -> impl Iterator<Item = (u32, &PackEntry)> + '_ {
        let mut offset = 0u32;
        self.entries.iter().map(move |e| {
            let o = offset;
            offset = offset.saturating_add(e.length);
            (o, e)
        })
    }

    /// The index entries of pack `id` as its header describes it.
    pub fn index_pack(&self, id: PackId) -> IndexPack {
        let blobs = self
            .with_offsets()
            .map(|(offset, e)| IndexBlob {
                id: e.id,
                offset,
                length: e.length,
                raw_length: e.raw_length,
                base: e.base,
                sketch: e.sketch,
            })
            .collect();
        IndexPack { id, kind: self.kind, blobs }
    }

    /// Total bytes of blob envelopes, which is where the header starts.
    pub fn blobs_len(&self) -> u64 {
        self.entries.iter().map(|e| u64::from(e.length)).sum()
    }
}

/// Reads the header envelope's length from a pack's last [`TRAILER_LEN`]
/// bytes and checks it fits in a pack of `pack_len` bytes.
pub fn header_len_from_trailer(trailer: &[u8], pack_len: u64) -> Result<u32, FormatError> {
    let mut b = [0u8; TRAILER_LEN];
    if trailer.len() != TRAILER_LEN {
        return Err(FormatError::Truncated("pack trailer"));
    }
    b.copy_from_slice(trailer);
    let n = u32::from_le_bytes(b);
    if u64::from(n) + TRAILER_LEN as u64 > pack_len {
        return Err(FormatError::Invalid("pack header length exceeds the pack"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let h = PackHeader {
            kind: BlobKind::Data,
            entries: vec![
                PackEntry { id: BlobId::from_bytes([1; 32]), length: 100, raw_length: 300, base: None, sketch: None },
                PackEntry {
                    id: BlobId::from_bytes([2; 32]),
                    length: 50,
                    raw_length: 10,
                    base: Some(BlobId::from_bytes([1; 32])),
                    sketch: None,
                },
            ],
        };
        let enc = h.encode();
        assert_eq!(enc.len(), HEADER_FIXED_LEN + 2 * ENTRY_LEN + 36);
        // Without sketches, version 1: readable by cairn before sketches.
        assert_eq!(enc[0], 1);
        assert_eq!(PackHeader::decode(&enc).ok(), Some(h.clone()));
        let offs: Vec<u32> = h.with_offsets().map(|(o, _)| o).collect();
        assert_eq!(offs, vec![0, 100]);
        for n in 0..enc.len() {
            assert!(PackHeader::decode(&enc[..n]).is_err());
        }
        let mut huge = enc.clone();
        huge[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(PackHeader::decode(&huge).is_err());
        assert!(header_len_from_trailer(&[10, 0, 0, 0], 13).is_err());
        assert_eq!(header_len_from_trailer(&[10, 0, 0, 0], 14).ok(), Some(10));
    }

    #[test]
    fn sketches_make_version_two_and_round_trip() {
        let sketch = Some(Sketch(std::array::from_fn(|i| i as u32 * 0x0101_0101)));
        let entry = |n: u8, sketch| PackEntry {
            id: BlobId::from_bytes([n; 32]),
            length: 9,
            raw_length: 70_000,
            base: None,
            sketch,
        };
        let h = PackHeader { kind: BlobKind::Data, entries: vec![entry(1, None), entry(2, sketch)] };
        let enc = h.encode();
        assert_eq!(enc[0], 2);
        assert_eq!(enc.len(), HEADER_FIXED_LEN + 2 * ENTRY_LEN + 4 + 4 + sketch::SKETCH_LEN);
        assert_eq!(PackHeader::decode(&enc).ok(), Some(h));
        for n in 0..enc.len() {
            assert!(PackHeader::decode(&enc[..n]).is_err());
        }
        // A version 1 header with the same bytes has trailing bytes.
        let mut v1 = enc.clone();
        v1[0] = 1;
        assert!(PackHeader::decode(&v1).is_err());
        let tree = PackHeader { kind: BlobKind::Tree, entries: vec![entry(3, sketch)] };
        assert!(PackHeader::decode(&tree.encode()).is_err(), "a tree blob with a sketch");
        let mut newer = enc;
        newer[0] = 3;
        assert!(matches!(PackHeader::decode(&newer), Err(FormatError::NewerVersion { found: 3, .. })));
    }
}
