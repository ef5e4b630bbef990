//! Index files: which pack holds each blob, where (docs/FORMAT.md, "Index files").

use crate::sketch::{self, Sketch};
use crate::{BlobId, BlobKind, FormatError, IndexId, PackId, Reader};

/// Version byte at the start of an index plaintext: 2 when each pack's
/// delta table is followed by a sketch table, else 1 (what cairn before
/// sketches reads).
pub const INDEX_VERSION: u8 = 2;
const BLOB_LEN: usize = 32 + 4 + 4 + 4;
/// Bytes a blob takes in an index file, at least.
pub const BLOB_BYTES: usize = BLOB_LEN;
/// Pack id, kind, blob count, delta count.
const PACK_FIXED_LEN: usize = 32 + 1 + 4 + 4;

/// A blob's place in its pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexBlob {
    /// The blob's id.
    pub id: BlobId,
    /// Offset of its envelope in the pack file.
    pub offset: u32,
    /// Bytes of its envelope.
    pub length: u32,
    /// Bytes of its plaintext after decompression.
    pub raw_length: u32,
    /// For a delta blob (payload flag 2), the blob its content is coded against.
    pub base: Option<BlobId>,
    /// Its similarity sketch, for choosing delta bases (data blobs only).
    pub sketch: Option<Sketch>,
}

/// One pack and the blobs it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPack {
    /// The pack's id (and file name).
    pub id: PackId,
    /// Kind of all its blobs.
    pub kind: BlobKind,
    /// Its blobs in file order.
    pub blobs: Vec<IndexBlob>,
}

/// The decoded content of one index file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexFile {
    /// Index files this one replaces (written by compaction; readers ignore those).
    pub supersedes: Vec<IndexId>,
    /// Packs described here.
    pub packs: Vec<IndexPack>,
}

impl IndexFile {
    /// Encodes the index plaintext (before the payload flag and envelope).
    pub fn encode(&self) -> Vec<u8> {
        let blobs: usize = self.packs.iter().map(|p| p.blobs.len()).sum();
        let mut out =
            Vec::with_capacity(9 + 32 * self.supersedes.len() + PACK_FIXED_LEN * self.packs.len() + BLOB_LEN * blobs);
        let sketched = self.packs.iter().flat_map(|p| &p.blobs).any(|b| b.sketch.is_some());
        out.push(if sketched { INDEX_VERSION } else { 1 });
        out.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for s in &self.supersedes {
            out.extend_from_slice(s.as_bytes());
        }
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            out.extend_from_slice(p.id.as_bytes());
            out.push(p.kind as u8);
            out.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
            for b in &p.blobs {
                out.extend_from_slice(b.id.as_bytes());
                out.extend_from_slice(&b.offset.to_le_bytes());
                out.extend_from_slice(&b.length.to_le_bytes());
                out.extend_from_slice(&b.raw_length.to_le_bytes());
            }
            crate::encode_delta_table(&mut out, p.blobs.iter().map(|b| b.base.as_ref()));
            if sketched {
                sketch::encode_table(&mut out, p.blobs.iter().map(|b| b.sketch.as_ref()));
            }
        }
        out
    }

    /// Decodes an index plaintext.
    pub fn decode(buf: &[u8]) -> Result<Self, FormatError> {
        let mut packs = Vec::new();
        let supersedes = Self::decode_each(buf, &mut |p| packs.push(p))?;
        Ok(Self { supersedes, packs })
    }

    /// Decodes an index file a pack at a time, handing each to `each`, and
    /// returns the files it supersedes: loading a repository's index then
    /// holds one pack's blobs decoded (about 100 bytes each) instead of the
    /// whole file's. On an error, the packs handed on so far are not to be
    /// used.
    pub fn decode_each(buf: &[u8], each: &mut dyn FnMut(IndexPack)) -> Result<Vec<IndexId>, FormatError> {
        let mut r = Reader::new(buf);
        let version = r.u8("index version")?;
        if !(1..=INDEX_VERSION).contains(&version) {
            return Err(FormatError::NewerVersion { found: version.into(), supported: INDEX_VERSION.into() });
        }
        let n = r.u32("supersedes count")?;
        let n = r.check_count(n, 32, "supersedes")?;
        let mut supersedes = Vec::with_capacity(n);
        for _ in 0..n {
            supersedes.push(IndexId::from_bytes(r.id32("superseded id")?));
        }
        let n = r.u32("pack count")?;
        let n = r.check_count(n, PACK_FIXED_LEN, "packs")?;
        for _ in 0..n {
            let id = PackId::from_bytes(r.id32("pack id")?);
            let kind = BlobKind::from_byte(r.u8("pack kind")?)?;
            let count = r.u32("blob count")?;
            let count = r.check_count(count, BLOB_LEN, "blobs")?;
            let mut blobs = Vec::with_capacity(count);
            for _ in 0..count {
                blobs.push(IndexBlob {
                    id: BlobId::from_bytes(r.id32("blob id")?),
                    offset: r.u32("blob offset")?,
                    length: r.u32("blob length")?,
                    raw_length: r.u32("blob raw length")?,
                    base: None,
                    sketch: None,
                });
            }
            for (at, base) in crate::decode_delta_table(&mut r, count, kind)? {
                blobs[at].base = Some(base);
            }
            if version >= 2 {
                for (at, s) in sketch::decode_table(&mut r, count, kind)? {
                    blobs[at].sketch = Some(s);
                }
            }
            each(IndexPack { id, kind, blobs });
        }
        if r.remaining() != 0 {
            return Err(FormatError::Invalid("trailing bytes after index"));
        }
        Ok(supersedes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let f = IndexFile {
            supersedes: vec![IndexId::from_bytes([9; 32])],
            packs: vec![IndexPack {
                id: PackId::from_bytes([1; 32]),
                kind: BlobKind::Data,
                blobs: vec![
                    IndexBlob {
                        id: BlobId::from_bytes([2; 32]),
                        offset: 0,
                        length: 70,
                        raw_length: 1000,
                        base: None,
                        sketch: None,
                    },
                    IndexBlob {
                        id: BlobId::from_bytes([3; 32]),
                        offset: 70,
                        length: 9,
                        raw_length: 1000,
                        base: Some(BlobId::from_bytes([2; 32])),
                        sketch: None,
                    },
                ],
            }],
        };
        let enc = f.encode();
        assert_eq!(enc[0], 1, "without sketches, what cairn before sketches reads");
        assert_eq!(IndexFile::decode(&enc).ok(), Some(f.clone()));
        for n in 0..enc.len() {
            assert!(IndexFile::decode(&enc[..n]).is_err());
        }
        assert!(IndexFile::decode(&[1, 255, 255, 255, 255]).is_err());

        let mut sketched = f;
        sketched.packs[0].blobs[1].sketch = Some(Sketch([7; sketch::FEATURES]));
        let enc = sketched.encode();
        assert_eq!(enc[0], 2);
        assert_eq!(IndexFile::decode(&enc).ok(), Some(sketched));
        for n in 0..enc.len() {
            assert!(IndexFile::decode(&enc[..n]).is_err());
        }
        let mut newer = enc;
        newer[0] = 3;
        assert!(matches!(IndexFile::decode(&newer), Err(FormatError::NewerVersion { found: 3, .. })));
    }
}
